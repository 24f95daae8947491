"""Kickoffs interrupted from outside: ``KeyboardInterrupt`` in
``Crew.kickoff()``, ``task.cancel()`` or an ``asyncio`` timeout around
``Crew.akickoff()``.

CrewAI 1.15 catches only ``Exception`` in a kickoff, so neither interruption
emits a failure event: the crew's runs would stay open with a model or tool
call in flight. :class:`KickoffWatch` wraps ``Crew.kickoff`` and
``Crew.akickoff`` once per process; when one ends by a ``BaseException``
that is not an ``Exception``, every instrumented client first translates the
events emitted so far, then ends that crew's runs as ``cancelled`` (the call
in flight answered as failed). The exception goes on to the caller unchanged.

``Crew.kickoff_async()`` runs ``kickoff()`` in a worker thread: cancelling
the task that awaits it does not stop the crew, which runs on and ends as it
ends.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from dunetrace.log import capture_internal_errors

__all__ = ["KickoffWatch", "kickoff_watch"]

Listener = Callable[[Any], None]


class KickoffWatch:
    """Wraps ``Crew.kickoff`` / ``Crew.akickoff``; ``remove`` of the last
    listener puts CrewAI's own methods back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._originals: dict[str, Any] = {}
        self._crew_class: Any = None

    def _interrupted(self, crew: Any) -> None:
        for listener in tuple(self._listeners):
            with capture_internal_errors("crewai.kickoff_interrupted"):
                listener(crew)

    def add(self, crew_class: Any, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            if self._crew_class is not None:
                return
            self._crew_class = crew_class
            watch = self
            kickoff = crew_class.__dict__.get("kickoff")
            akickoff = crew_class.__dict__.get("akickoff")
            if kickoff is not None:

                @functools.wraps(kickoff)
                def sync_kickoff(self: Any, *args: Any, **kwargs: Any) -> Any:
                    try:
                        return kickoff(self, *args, **kwargs)
                    except Exception:
                        raise  # CrewAI reported it (crew_kickoff_failed)
                    except BaseException:
                        watch._interrupted(self)
                        raise

                self._originals["kickoff"] = kickoff
                crew_class.kickoff = sync_kickoff
            if akickoff is not None:

                @functools.wraps(akickoff)
                async def async_kickoff(self: Any, *args: Any, **kwargs: Any) -> Any:
                    try:
                        return await akickoff(self, *args, **kwargs)
                    except Exception:
                        raise
                    except BaseException:
                        watch._interrupted(self)
                        raise

                self._originals["akickoff"] = akickoff
                crew_class.akickoff = async_kickoff

    def remove(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if self._listeners or self._crew_class is None:
                return
            for name, original in self._originals.items():
                setattr(self._crew_class, name, original)
            self._originals.clear()
            self._crew_class = None


#: The one watch of this process.
kickoff_watch = KickoffWatch()
