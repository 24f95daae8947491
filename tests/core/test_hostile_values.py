"""Values that fight back never reach the agent as an exception from us: the
agent gets its own result unchanged, we log once per cause and hash a
placeholder. Strict mode (conftest) is on, so any internal error fails."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.hashing import Hasher, canonical_json
from tests.ingest_server import IngestServer


class Boom(Exception):
    pass


class BadRepr:
    def __repr__(self) -> str:
        raise Boom("repr")

    __str__ = __repr__


class BadHash:
    def __hash__(self) -> int:
        raise Boom("hash")

    def __repr__(self) -> str:
        raise Boom("repr")


class BadEq:
    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    __lt__ = __gt__ = __le__ = __ge__ = __ne__ = __eq__
    __hash__ = object.__hash__


class BadStr(str):
    def __str__(self) -> str:
        raise Boom("str")

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    def strip(self, *args: Any) -> str:
        raise Boom("strip")

    def encode(self, *args: Any) -> bytes:
        raise Boom("encode")

    __hash__ = str.__hash__


class BadBool:
    def __bool__(self) -> bool:
        raise Boom("bool")


class BadInt(int):
    def __lt__(self, other: object) -> bool:
        raise Boom("lt")

    __ne__ = __ge__ = __lt__


class BadAttr:
    def __getattr__(self, name: str) -> Any:
        raise Boom(name)

    def __repr__(self) -> str:
        raise Boom("repr")


class BadError(Exception):
    def __str__(self) -> str:
        raise Boom("str of an exception")


def deep(n: int) -> Any:
    value: Any = []
    for i in range(n):
        value = [value] if i % 2 else {"k": value}
    return value


def recursive() -> Any:
    a: list[Any] = [1]
    a.append(a)
    d: dict[str, Any] = {"self": None}
    d["self"] = d
    o = BadEq()
    o.__dict__["me"] = o
    return [a, d, o]


HOSTILE = [
    BadRepr,
    BadHash,
    BadEq,
    lambda: BadStr("name"),
    lambda: BadStr(""),
    BadBool,
    lambda: BadInt(5),
    BadAttr,
    BadError,
    lambda: {BadEq(): 1, BadEq(): 2},
    lambda: [BadRepr(), {"a": BadAttr()}],
]

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.integers(0, len(HOSTILE) - 1).map(lambda i: HOSTILE[i]()),
    st.builds(recursive),
    st.builds(lambda: deep(2_000)),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def server() -> Iterator[IngestServer]:
    s = IngestServer()
    yield s
    s.close()


def every_method(client: Dunetrace, value: Any) -> None:
    """Every public method of a run, with ``value`` in every place."""
    with client.run("hostile", user_input=value, system_prompt=value, model=value) as run:
        step = run.llm_called(value, value, prompt=value)
        assert isinstance(step, int)
        run.llm_responded(value, value, value, value, prompt_tokens=value, output=value, step=value)
        run.llm_responded(1, 2.0, "stop", output=value, step=step)
        step = run.tool_called(value, value)
        assert isinstance(step, int)
        run.tool_responded(value, value, value, value, value, output=value, step=value, from_cache=value)
        run.tool_responded("t", True, error=value, output=value)
        assert isinstance(run.retrieval_called(value, value), int)
        run.retrieval_responded(value, value, value, value, step=value)
        run.external_signal(value, value, meta=value)
        run.external_signal("s", "src", x=value)
        run.final_answer()
        assert isinstance(run.step_index, int)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(value=_values)
def test_every_run_method_takes_any_value(server: IngestServer, value: Any) -> None:
    client = Dunetrace(endpoint=server.url, flush_interval=0.05, hash_key="k")
    before = len(server.events)
    every_method(client, value)
    assert client.shutdown(5)
    assert client.stats()["dropped_total"] == 0
    assert len(server.events) - before == 12


@settings(max_examples=100, deadline=None)
@given(value=_values)
def test_hashing_never_raises_and_is_stable(value: Any) -> None:
    h = Hasher("k")
    first = h.value(value)
    assert first is None or (isinstance(first, str) and len(first) == 64)
    assert isinstance(canonical_json(value), str)
    assert isinstance(h.error(value if isinstance(value, (BaseException, str)) else BadError()), str)


def test_deep_and_recursive_values_hash_as_placeholders_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    h = Hasher()
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        assert h.value(deep(100_000)) == h.value(deep(100_000))
        for value in (deep(100_000), BadRepr(), BadRepr()):
            h.value({"x": [value]})
    assert caplog.text.count("a list value could not be read") == 1
    assert caplog.text.count("a dict value could not be read") == 1
    # a recursive list is written as its repr, not a failure
    a: list[Any] = []
    a.append(a)
    assert canonical_json(a) == "[[...]]"


def test_a_value_mutated_while_hashed_by_another_thread(dt: Dunetrace, ingest: IngestServer) -> None:
    shared: dict[str, int] = {str(i): i for i in range(2_000)}
    stop = threading.Event()

    def mutate() -> None:
        i = 0
        while not stop.is_set():
            shared[f"n{i % 500}"] = i
            shared.pop(f"n{(i + 250) % 500}", None)
            i += 1

    thread = threading.Thread(target=mutate)
    thread.start()
    try:
        with dt.run("mutating") as run:
            for _ in range(200):
                run.tool_called("t", shared)
                run.tool_responded("t", True, output=shared)
    finally:
        stop.set()
        thread.join()
    assert dt.flush(10)
    assert len([e for e in ingest.events if e["agent_id"] == "mutating"]) == 402


def test_decorators_give_the_agent_its_own_result_and_exception(dt: Dunetrace, ingest: IngestServer) -> None:
    result = BadEq()
    error = BadError()

    @dt.tool
    def tool(*args: Any, **kwargs: Any) -> Any:
        return result

    @dt.tool(name="failing")
    async def failing(*args: Any) -> Any:
        raise error

    @dt.trace
    def agent(question: Any) -> Any:
        assert tool(BadRepr(), deep(100_000), x=BadHash()) is result
        with pytest.raises(BadError) as caught:
            asyncio.run(failing(BadStr("q")))
        assert caught.value is error
        return result

    assert agent(BadAttr()) is result
    assert tool(1) is result  # outside a run: untouched
    assert dt.flush(5)
    assert [e["event_type"] for e in ingest.events] == [
        "run.started",
        "tool.called",
        "tool.responded",
        "tool.called",
        "tool.responded",
        "run.completed",
    ]


def test_a_plugin_returning_a_hostile_value(dt: Dunetrace, ingest: IngestServer) -> None:
    from dunetrace import hookimpl

    class Hostile:
        @hookimpl
        def dunetrace_event(self, event: dict[str, Any]) -> Any:
            return BadEq()

    dt.plugins.register(Hostile())
    with dt.run("a") as run:
        run.tool_called("t")
    assert dt.flush(5)
    assert len(ingest.events) == 3
