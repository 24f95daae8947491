"""Every hook a Dunetrace plugin can implement, in one place.

A plugin is any object or module with functions marked ``@hookimpl`` (from
``dunetrace.plugins``) named like the specifications below. Third-party
plugins are found through the entry-point group ``dunetrace``. The built-in
behaviour is made of plugins too: the client registers its exporters (HTTP,
stdout), and each integration's ``instrument()`` registers its own.

The two hooks for deferred work, ``dunetrace_flush`` and ``dunetrace_drain``,
are here rather than inside the CrewAI integration that first needed them:
the OpenTelemetry span exporter needs the same two moments, and so does any
plugin that records in its framework's callbacks and translates later. Their
section below says when each is called, in shutdown's order.

Rules that hold for every hook:

* Hooks are called with keyword arguments only. An implementation may accept
  fewer arguments than the specification lists; arguments are only ever
  added, never renamed.
* Hooks are called by pluggy itself, so ``wrapper=True`` and
  ``hookwrapper=True`` implementations, ``tryfirst`` / ``trylast`` and a
  plugin's own ``firstresult`` specifications behave as pluggy documents.
* A plugin that raises never takes the agent down. As pluggy defines it, the
  exception ends that call: the implementations pluggy had not yet called
  are skipped for that call (only that one), and wrappers see the exception
  and may handle it. If none does, it is logged once per plugin, hook and
  exception class on the ``dunetrace`` logger (naming the plugin), and the
  call answers as if no plugin had: ``[]``, or None for ``firstresult``.
  For ``dunetrace_event`` the event goes on as the plugins before the raise
  left it; for ``dunetrace_export`` the built-in exporters run first
  (``tryfirst``), so a batch one of them delivered counts as delivered, and
  otherwise it is dropped and counted as ``export_plugin_error``. What is
  not an ``Exception`` (KeyboardInterrupt, SystemExit) and an exception
  whose class sets ``dunetrace_passthrough = True`` (``PolicyViolation``)
  go on as raised.
* Hooks no plugin implements cost nothing: the per-event hook is not called
  at all then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .client import Dunetrace
    from .export import ExportBatch, ExportResult
    from .run import Run

hookspec = pluggy.HookspecMarker("dunetrace")

# -- set-up -----------------------------------------------------------------


@hookspec(historic=True)
def dunetrace_configure(client: Dunetrace) -> None:
    """A client was created and its plugins loaded.

    Historic: a plugin registered later still receives this call, once, at
    registration. Called on the thread that built the client (or registered
    the plugin). Return value ignored.
    """


# -- deferred work and shutdown -----------------------------------------------
#
# A plugin that keeps its framework's callbacks cheap, by recording there and
# turning what it recorded into run events later (CrewAI's event handlers on
# CrewAI's thread pool, the OpenTelemetry span exporter), needs two moments
# only the client knows: the drain thread's wake, to do that work off the
# agent's threads, and a flush, to have it done before the queue is waited
# on. Both hooks are general: any such plugin uses them, and they cost
# nothing while no plugin implements them.
#
# ``flush()`` calls ``dunetrace_flush``, then waits on the queue (the drain
# thread calls ``dunetrace_drain`` at each wake meanwhile). ``shutdown()``,
# and the end of the process, go in this order:
#
# 1. ``dunetrace_flush``: what plugins hold is queued;
# 2. ``dunetrace_shutdown``: plugins end the runs they keep open and detach;
# 3. the client ends every run still open (``abandoned``);
# 4. the queue is delivered within the time left (``dunetrace_drain`` still
#    runs at each wake), then no event is taken and the drain thread stops;
# 5. the HTTP exporter closes, once a request under way has its answer.


@hookspec
def dunetrace_flush(client: Dunetrace, timeout: float) -> None:
    """Queue now what the plugin still holds: ``flush()`` or ``shutdown()``
    was called, or the process is ending.

    A plugin whose framework hands it events late waits for them here, at
    most ``timeout`` seconds, and queues their run events, so that the flush
    that follows finds them in the queue. Called on the thread that flushes,
    before the client waits on the queue. Return value ignored.
    """


@hookspec
def dunetrace_drain(client: Dunetrace) -> None:
    """The drain thread is about to take what is queued: do now the work the
    plugin deferred.

    For a plugin that only records in its framework's callbacks and turns the
    records into run events (or spans) later, off the agent's threads. Called
    on the drain thread at every wake (every ``flush_interval``, or sooner
    when a batch is full or a flush waits); while some plugin implements this
    hook the drain thread runs from the moment the plugin is registered, so
    it wakes before any event exists. Return value ignored.
    """


@hookspec
def dunetrace_shutdown(client: Dunetrace) -> None:
    """The client is shutting down: end the runs the plugin keeps open and
    release what it holds (an integration finishes its open runs as
    ``abandoned`` and detaches from its framework).

    Called after ``dunetrace_flush``, while events are still accepted: the
    client then ends the runs still open itself, delivers what is queued,
    and closes (the order is above). Called on the thread that called
    ``shutdown()``, or at interpreter exit (or at the end of a
    ``multiprocessing`` child). Return value ignored.
    """


# -- runs -------------------------------------------------------------------


@hookspec
def dunetrace_run_started(run: Run) -> None:
    """A run began; its ``run.started`` event is already queued.

    Called on the caller's thread, inline: keep it cheap. Return value ignored.
    """


@hookspec
def dunetrace_run_finished(run: Run, error: BaseException | None) -> None:
    """A run ended; its ``run.completed`` or ``run.errored`` event is queued.

    ``error`` is the exception that ended it, or None. Called on the caller's
    thread, or, for a run ended as ``abandoned`` by ``shutdown()`` or at
    exit, on the thread that shuts down. Return value ignored.
    """


# -- events -----------------------------------------------------------------


@hookspec
def dunetrace_event(event: dict[str, Any]) -> bool | None:
    """An event is about to be queued: enrich, redact or drop it.

    ``event`` is the wire dict (``event_type``, ``run_id``, ``agent_id``,
    ``step_index``, ``timestamp``, ``payload``, ...); change it in place.
    Return ``False`` to drop it (counted as ``dropped_by_plugin``). Only
    called when some plugin implements it, on the caller's thread, inline:
    every microsecond here is the agent's. An event a plugin leaves outside
    the contract (empty ids, a non-dict payload) is dropped and logged.
    """


# -- export -----------------------------------------------------------------


@hookspec
def dunetrace_export(batch: ExportBatch) -> ExportResult | None:
    """Deliver one batch of events (all of one agent, in order, at most
    ``max_batch_size``).

    Called on the client's background threads, never on the agent's: two
    calls may run at once, for batches of two different agents (never two
    batches of one agent), so an exporter must be thread-safe. Every
    exporter is called; return ``ExportResult.ok()`` (or None) once delivered,
    ``ExportResult.retry(after=seconds)`` to have the batch offered again
    later (exporters that already delivered it see ``batch.delivered_by``
    holding their name and skip), ``ExportResult.drop(reason)`` to give
    it up, counted under that reason, or ``ExportResult.split(reason,
    rejected)`` when the receiver refused part of it: the events named in
    ``rejected`` (their index in the batch) are dropped under ``reason``,
    or, with none named, the batch is halved and the halves offered in
    order, a single event being dropped. The HTTP transport and the stdout
    NDJSON writer are exporters of this kind.
    """
