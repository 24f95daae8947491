"""The sequencer with plain fakes: CrewAI-shaped events delivered in any
order come out in emission order."""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace
from typing import Any

from dunetrace.integrations.crewai.sequencer import Sequencer


def _stream(prefix: str, n: int, fan_out_from: int = 3) -> list[Any]:
    """A kickoff like CrewAI 1.15 emits it: a chain for the first events,
    then flow steps whose first event points back at the flow start (their
    contexts are copies), all numbered by one shared counter."""
    events = []
    for seq in range(1, n + 1):
        if seq == 1:
            previous = None
        elif seq > fan_out_from and seq % 2 == 0:
            previous = f"{prefix}{fan_out_from}"  # a flow step: a sibling branch
        else:
            previous = f"{prefix}{seq - 1}"
        events.append(
            SimpleNamespace(
                event_id=f"{prefix}{seq}", previous_event_id=previous, parent_event_id=None, emission_sequence=seq
            )
        )
    return events


def _collect() -> tuple[list[str], Any]:
    out: list[str] = []
    return out, lambda event, source: out.append(getattr(event, "event_id", event))


# Most tests admit at every push (defer=1), the path a pool thread takes once
# ``defer`` events wait; this one shows the default: pushes only queue.
def test_pushes_queue_until_admitted_or_until_defer_events_wait() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=4)
    events = _stream("d", 8)
    for event in events[:3]:
        sequencer.push(event)
    assert out == []  # a pool thread only queued them
    sequencer.admit()  # what the drain thread does at every wake
    assert out == ["d1", "d2", "d3"]
    for event in reversed(events[3:7]):  # the fourth waiting event: its pool thread admits all four
        sequencer.push(event)
    assert out == ["d1", "d2", "d3", "d4", "d5", "d6", "d7"]
    sequencer.push(events[7])
    assert out[-1] == "d7"
    sequencer.flush()
    assert out[-1] == "d8" and sequencer.waiting() == 0


def test_shuffled_stream_comes_out_in_order() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=1)
    events = _stream("a", 40)
    for seed in range(3):
        out.clear()
        sequencer = Sequencer(deliver, grace=5, defer=1)
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        for event in shuffled:
            sequencer.push(event)
        assert out == [e.event_id for e in events]
        assert sequencer.waiting() == 0 and sequencer.forced == 0


def test_two_streams_interleaved_each_in_order() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=1)
    a, b = _stream("a", 20), _stream("b", 20)
    mixed = a + b
    random.Random(7).shuffle(mixed)
    for event in mixed:
        sequencer.push(event)
    assert [x for x in out if x.startswith("a")] == [e.event_id for e in a]
    assert [x for x in out if x.startswith("b")] == [e.event_id for e in b]


def test_pushes_from_many_threads() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=1)
    events = _stream("t", 200)
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    chunks = [shuffled[i::8] for i in range(8)]
    threads = [threading.Thread(target=lambda c=c: [sequencer.push(e) for e in c]) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [e.event_id for e in events]


def test_a_missing_number_is_given_up_after_the_grace() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=0.05, defer=1)
    events = _stream("g", 6)
    del events[2]  # number 3 never arrives (a class nobody subscribed to)
    for event in events[2:]:
        event.previous_event_id = "g2"
    for event in reversed(events):
        sequencer.push(event)
    assert out == ["g1", "g2"]
    deadline = time.monotonic() + 5
    while len(out) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out == ["g1", "g2", "g4", "g5", "g6"] and sequencer.forced >= 1


def test_a_predecessor_that_never_comes_starts_a_stream() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=1)
    events = _stream("o", 5)[2:]  # installed mid-kickoff: o3's predecessor was never seen
    for event in reversed(events):
        sequencer.push(event)
    assert out == [] and sequencer.waiting() == 3
    sequencer.flush()
    assert out == ["o3", "o4", "o5"]
    sequencer.close()


def test_inline_events_are_ordered_with_the_rest() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, grace=5, defer=1)
    first, chunk, last = _stream("s", 3)
    sequencer.push_inline(chunk)  # a stream chunk, dispatched on the agent's thread
    sequencer.push(last)
    assert out == []
    sequencer.push(first)
    assert out == ["s1", "s2", "s3"]


def test_events_without_a_sequence_pass_through() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, defer=1)
    sequencer.push(SimpleNamespace(event_id="x", emission_sequence=None))
    sequencer.push(None)
    assert out == ["x", None]


def test_memory_is_bounded() -> None:
    out, deliver = _collect()
    sequencer = Sequencer(deliver, remember=50, defer=1)
    for n in range(20):
        for event in _stream(f"m{n}-", 10):
            sequencer.push(event)
    assert len(out) == 200
    assert len(sequencer._stream_of) <= 50
