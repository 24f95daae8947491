"""A client's process lifecycle: the end of the interpreter, of a
``multiprocessing`` child, and a fork.

At interpreter exit every client is closed as ``shutdown()`` closes it (runs
still open end as ``abandoned``, what is queued gets ``exit_timeout`` to
leave) and, unless everything was delivered, one line on stderr says how
many events were delivered, dropped (by reason), left and in flight.

``multiprocessing`` fork and forkserver children never run atexit: they end
with ``os._exit``, and their ``Process._bootstrap`` clears multiprocessing's
finalizers before the target runs. So a client re-arms itself through
``multiprocessing.util.register_after_fork`` (which that ``_bootstrap``
calls; a spawn child, which clears nothing, is armed when its ``__main__``
is imported, or when the client is built in the target) with a
``multiprocessing.util.Finalize`` that closes the clients when the child's
target returns, and, where SIGTERM still has its default action, a SIGTERM
handler that closes them before the child dies: ``Pool.terminate()`` (and so
``with Pool(...)``) ends its workers with SIGTERM. A SIGTERM handler already
installed (inherited from the parent) is kept and called after the clients
are flushed; one the target installs replaces ours, and the finalizer still
closes the clients when it exits the child with ``sys.exit``.

After ``os.fork()`` the child starts with fresh locks, an empty queue and
no runs of its own: the parent's open runs (and a lock a parent's thread held
at the fork) are the parent's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import log, plugins

if TYPE_CHECKING:
    from .client import Dunetrace

__all__ = ["exit_report", "track"]

_clients: weakref.WeakSet[Dunetrace] = weakref.WeakSet()


class _Marker:
    """register_after_fork keeps its objects weakly: this one lives as long
    as the module."""


_MARKER = _Marker()
_after_fork_registered = False


def track(client: Dunetrace) -> None:
    """Close ``client`` at the end of this process (and of its children)."""
    _clients.add(client)
    _register_after_fork()
    process = sys.modules.get("multiprocessing.process")
    if process is not None and (
        process.parent_process() is not None  # in a child's target: after _bootstrap's clearing
        or getattr(process.current_process(), "_inheriting", False)  # a spawn child importing __main__
    ):
        _arm_child()


def forget(client: Dunetrace) -> None:
    _clients.discard(client)


def exit_report(counts: Mapping[str, Any], endpoint: str) -> str | None:
    """The line that tells what became of a client's events; None when every
    event was delivered."""
    dropped: dict[str, int] = counts["dropped"]
    left, in_flight = counts["left"], counts["in_flight"]
    total = sum(dropped.values())
    if not (total or left or in_flight):
        return None
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items()))
    text = (
        f"dunetrace: {counts['delivered']} events delivered to {endpoint}, "
        f"{total} dropped{f' ({reasons})' if reasons else ''}, {left} left undelivered"
    )
    if in_flight:
        text += f", {in_flight} in flight with no answer yet (the server may have them)"
    return text


#: True while this thread closes the clients at the end of the process. A
#: SIGTERM that arrives meanwhile (a Pool worker ending on its own as
#: ``Pool.terminate()`` kills it) waits for the close to finish.
_closing = False
_deferred: tuple[Any, int, Any] | None = None


def close_all(at_exit: bool = True) -> None:
    """Close every client within the longest ``exit_timeout`` among them."""
    global _closing, _deferred
    clients = list(_clients)
    if not clients or _closing:
        return
    _closing = True
    try:
        deadline = time.monotonic() + max(c.options.exit_timeout for c in clients)
        for client in clients:
            try:
                report = client._close(max(0.0, deadline - time.monotonic()))
                if report is not None and at_exit:
                    sys.stderr.write(report + "\n")
                    sys.stderr.flush()
            except Exception:  # the process is going away; say nothing more
                pass
    finally:
        _closing = False
        deferred, _deferred = _deferred, None
        if deferred is not None:
            handler, signum, frame = deferred
            handler(signum, frame)


def flush_all() -> None:
    """Deliver what every client has queued, within the longest
    ``exit_timeout``; nothing is closed."""
    clients = list(_clients)
    if not clients:
        return
    deadline = time.monotonic() + max(c.options.exit_timeout for c in clients)
    for client in clients:
        with contextlib.suppress(Exception):  # called from a signal handler: never raise there
            client.flush(max(0.0, deadline - time.monotonic()))


def _at_exit() -> None:
    close_all()


atexit.register(_at_exit)


# -- multiprocessing children -------------------------------------------------


def _register_after_fork() -> None:
    global _after_fork_registered
    if _after_fork_registered:
        return
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_MARKER, _in_child)
        _after_fork_registered = True


def _in_child(_marker: object) -> None:
    # Called by Process._bootstrap in every multiprocessing child, after it
    # cleared the finalizers inherited or registered so far.
    _arm_child()


def _arm_child() -> None:
    # Every time: a finalizer registered while __main__ was imported may
    # since have been cleared by _bootstrap (a forkserver child that imports
    # __main__ itself). A second one finds the clients closed.
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    util.Finalize(None, close_all, exitpriority=10)
    if threading.current_thread() is threading.main_thread():
        _chain_sigterm()


def _chain_sigterm() -> None:
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):
        return
    if previous is signal.SIG_IGN or previous is None or getattr(previous, "_dunetrace", False):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        global _deferred
        if _closing:  # interrupted our own close: let it finish first
            _deferred = (on_sigterm, signum, frame)
            return
        if callable(previous):
            # The user's handler decides whether the child ends: deliver what
            # is queued first, close nothing (the finalizer closes at exit).
            flush_all()
            previous(signum, frame)
            return
        close_all()
        # The default action, as if we had never been here.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    on_sigterm._dunetrace = True  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, OSError):  # not the main thread of the main interpreter
        signal.signal(signal.SIGTERM, on_sigterm)


def quiet_signals() -> None:
    """Called first by each of our threads: SIGTERM and SIGINT go to another
    thread. Python runs signal handlers on the main thread, but the kernel
    hands a process's signal to any thread that does not block it; one that
    lands on ours leaves a main thread blocked in a lock (a Pool worker
    waiting for its next task) never running the handler."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no pthread_sigmask here
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))


# -- os.fork ------------------------------------------------------------------


_held: list[threading.Lock] = []
_transport_imported = False


def _before_fork() -> None:
    global _transport_imported
    # A fork by multiprocessing: have its child's _bootstrap re-arm us.
    _register_after_fork()
    for client in list(_clients):
        http = client._http
        if http is None:
            continue
        if not _transport_imported:
            # httpx imports its transport stack with the first client built;
            # once here, not in every child's first send (a Pool's workers
            # would each pay it, on a busy machine for seconds).
            _transport_imported = True
            with contextlib.suppress(Exception):
                import httpcore  # noqa: F401

                from .http_export import import_connect_codecs

                # On this thread: one of ours importing it now holds the
                # import until it is done, and the fork waits.
                import_connect_codecs()
        # The child reuses the parent's TLS context (HttpExporter.tls_context).
        with contextlib.suppress(Exception):  # the child then builds its own
            http.tls_context()
        # Not while a sender thread builds its HTTP client: that imports
        # httpcore and the idna codec, and a module half imported at the
        # fork stays locked forever in the child. Bounded: a fork is never
        # held up for long.
        lock = http._lock
        if lock.acquire(timeout=5.0):
            _held.append(lock)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop().release()


def _after_fork_in_child() -> None:
    # Locks a thread of the parent held at the fork stay held in the child:
    # every lock the child may take is new.
    _held.clear()
    log.reset_after_fork()
    plugins._entry_lock = threading.Lock()
    for client in list(_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
