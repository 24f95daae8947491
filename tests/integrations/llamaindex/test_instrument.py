"""instrument() / uninstrument(), the public handler classes, and imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.tools import FunctionTool

import dunetrace.integrations.llamaindex as integration
from dunetrace import Dunetrace
from dunetrace.integrations.llamaindex import (
    DunetraceEventHandler,
    DunetraceSpanHandler,
    instrument,
    uninstrument,
)

from .fakes import Call, ScriptedLLM
from .recorded import by_run, well_formed


def ours(dispatcher: Any) -> tuple[list[Any], list[Any]]:
    return (
        [h for h in dispatcher.span_handlers if isinstance(h, DunetraceSpanHandler)],
        [h for h in dispatcher.event_handlers if isinstance(h, DunetraceEventHandler)],
    )


class OtherEventHandler(BaseEventHandler):
    def handle(self, event: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture
def foreign() -> Iterator[tuple[Any, Any]]:
    """Someone else's handlers on the root dispatcher, which must survive."""
    root = get_dispatcher()
    span_handler, event_handler = SimpleSpanHandler(), OtherEventHandler()
    root.add_span_handler(span_handler)
    root.add_event_handler(event_handler)
    yield span_handler, event_handler
    root.span_handlers = [h for h in root.span_handlers if h is not span_handler]
    root.event_handlers = [h for h in root.event_handlers if h is not event_handler]


def test_instrument_is_idempotent_and_uninstrument_removes_exactly_its_own(
    dt: Dunetrace, foreign: tuple[Any, Any]
) -> None:
    root = get_dispatcher()
    before_spans, before_events = list(root.span_handlers), list(root.event_handlers)
    first = instrument(dt, agent_id="a")
    assert instrument(dt, agent_id="a") is first
    assert ours(root) == ([first], [root.event_handlers[-1]])
    assert dt.plugins.get_plugin("dunetrace.llamaindex") is not None
    uninstrument()
    assert root.span_handlers == before_spans and root.event_handlers == before_events
    assert all(a is b for a, b in zip(root.span_handlers, before_spans, strict=True))
    assert foreign[0] in root.span_handlers and foreign[1] in root.event_handlers
    assert dt.plugins.get_plugin("dunetrace.llamaindex") is None
    uninstrument()  # twice is fine
    assert root.span_handlers == before_spans


def test_instrument_with_another_client_or_agent_replaces(dt: Dunetrace, ingest: Any) -> None:
    root = get_dispatcher()
    first = instrument(dt, agent_id="a")
    second = instrument(dt, agent_id="b")
    other = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    try:
        third = instrument(other, agent_id="b")
        assert len({id(first), id(second), id(third)}) == 3
        assert ours(root)[0] == [third] and len(ours(root)[1]) == 1
        assert dt.plugins.get_plugin("dunetrace.llamaindex") is None
    finally:
        uninstrument()
        other.shutdown(1)
    assert ours(root) == ([], [])


def test_shutdown_detaches(ingest: Any) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    instrument(client, agent_id="a")
    assert ours(get_dispatcher())[0]
    client.shutdown(2)
    assert ours(get_dispatcher()) == ([], [])


def test_instrument_rejects_a_bad_agent_id(dt: Dunetrace) -> None:
    with pytest.raises(ValueError, match="agent_id"):
        instrument(dt, agent_id="")
    assert ours(get_dispatcher()) == ([], [])


async def test_handlers_added_by_hand(dt: Dunetrace, received: Any) -> None:
    dispatcher = get_dispatcher()
    span_handler = DunetraceSpanHandler(dt, agent_id="by-hand")
    event_handler = DunetraceEventHandler(span_handler)
    dispatcher.add_span_handler(span_handler)
    dispatcher.add_event_handler(event_handler)
    try:
        agent = FunctionAgent(
            tools=[FunctionTool.from_defaults(lambda x: x, name="echo", description="echo")],
            llm=ScriptedLLM([Call("echo", {"x": 1}), "ok"]),
        )
        await agent.run("go")
    finally:
        dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not span_handler]
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not event_handler]
    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[0]["agent_id"] == "by-hand"
    with pytest.raises(TypeError):
        DunetraceEventHandler(object())


def test_public_names() -> None:
    assert integration.__all__ == sorted(integration.__all__)
    for name in integration.__all__:
        assert getattr(integration, name) is not None
    assert DunetraceSpanHandler.__module__ == "dunetrace.integrations.llamaindex"
    with pytest.raises(AttributeError):
        integration.Nope  # noqa: B018


def _python(code: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_importing_the_integration_does_not_import_llama_index() -> None:
    result = _python(
        "import sys, json\n"
        "import dunetrace.integrations.llamaindex as m\n"
        "from dunetrace.integrations.llamaindex import instrument, uninstrument\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules if k.startswith('llama')})))\n"
    )
    assert result == []  # type: ignore[comparison-overlap]


def test_without_llama_index_the_error_names_the_extra() -> None:
    result = _python(
        "import sys, json\n"
        "sys.modules['llama_index'] = None\n"
        "from dunetrace import Dunetrace\n"
        "from dunetrace.integrations.llamaindex import instrument\n"
        "out = {}\n"
        "try:\n"
        "    instrument(Dunetrace(), agent_id='a')\n"
        "except ImportError as exc:\n"
        "    out['instrument'] = str(exc)\n"
        "try:\n"
        "    from dunetrace.integrations.llamaindex import DunetraceSpanHandler\n"
        "except ImportError as exc:\n"
        "    out['class'] = str(exc)\n"
        "print(json.dumps(out))\n"
    )
    assert set(result) == {"instrument", "class"}
    for message in result.values():
        assert "pip install 'dunetrace[llamaindex]'" in message
