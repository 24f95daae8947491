"""When the next request may go, after a 429.

The ingest API allows 60 requests a minute per client in a sliding window:
it keeps the times of the requests it let through in the last 60 s and
refuses (429, no ``Retry-After``) while it holds 60; a refused request is
not counted. So after a 429 a client gets through again exactly when its
oldest request in the window is a minute old, and then as fast as its
earlier requests age out, not one a second.

:class:`RequestWindow` keeps the same record on our side: the times our
requests were answered (no earlier than the server counted them). At a 429
it learns the limit as the number it holds for the last minute (fewer than
60 when other processes on the host share the limit), and from then on a
full batch goes as soon as the window has room, while a partial one waits
as well for ``60 s / limit`` after the previous request, so a trickle never
spends the slots a backlog will need. A minute after the last 429 the limit
is forgotten (the server's refusals cost nothing to find it again).
"""

from __future__ import annotations

from collections import deque

__all__ = ["PACE", "RequestWindow"]

#: The server's window, in seconds.
SPAN = 60.0

#: Seconds added to the moment a request ages out of the window: our clock
#: and the server's tick at the same rate, and our record of a request is
#: later than the server's, so this only covers rounding.
MARGIN = 0.05

#: Seconds between requests after a 429 when our own record cannot explain
#: it (other clients filled the window): just under 60 a minute.
PACE = 1.02


class RequestWindow:
    __slots__ = ("_times", "limit", "until")

    def __init__(self) -> None:
        #: Times (monotonic) our requests were answered, oldest first.
        self._times: deque[float] = deque(maxlen=1_000)
        #: Requests a minute the server allows us (0: unknown), while ``until``.
        self.limit = 0
        self.until = 0.0

    def record(self, at: float) -> None:
        self._times.append(at)

    def in_window(self, now: float) -> int:
        n = 0
        for at in reversed(self._times):
            if now - at >= SPAN:
                break
            n += 1
        return n

    def throttled(self, now: float) -> None:
        """A 429 without Retry-After: what we sent in the last minute is
        the limit."""
        self.limit = self.in_window(now)
        self.until = now + SPAN

    def active(self, now: float) -> bool:
        """Whether requests are paced (a 429 in the last minute)."""
        if self.until and now >= self.until:
            self.until = 0.0
            self.limit = 0
        return bool(self.until)

    def next_send(self, now: float, last_send: float, full: bool) -> float:
        """The earliest time the next request may go while paced: a full
        batch as soon as the window has room, a partial one no sooner than
        one request's share of the minute after the previous one."""
        limit = self.limit
        if not limit:
            return last_send + PACE
        at = now
        if self.in_window(now) >= limit:
            at = self._times[-limit] + SPAN + MARGIN
        if not full:
            at = max(at, last_send + SPAN / limit)
        return at
