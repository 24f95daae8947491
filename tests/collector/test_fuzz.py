"""A schema-driven fuzz of the collector's API: schemathesis reads the app's
own /openapi.json and sends what it describes (valid and invalid requests
alike). No request may get a 5xx, and every answer must match the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from dunetrace.collector.app import create_app
from dunetrace.collector.settings import Settings

from .wire import tool_loop_run


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    # schemathesis's ASGI client sends ``Host: testserver``.
    settings = Settings(db_path=str(path), max_body_bytes=256 * 1024, allowed_hosts=frozenset({"testserver"}))
    application = create_app(settings)
    collector = application.state.collector
    # Something to read, so the read API's answers are checked with data.
    collector.store.ingest(tool_loop_run("fuzz-run", agent="fuzz-agent"), "seed")
    collector.judge.judge("fuzz-run")
    collector.store.add_deploy("fuzz-agent", "v1", {"sha": "abc"})
    yield application
    collector.store.close()


@pytest.fixture(scope="module")
def api_schema(app: Any) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=30, deterministic=True
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_answers_match_the_document(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    case.validate_response(response)


def test_the_document_describes_every_route(app: Any) -> None:
    from starlette.routing import Route

    documented = set(create_app.__globals__["openapi_document"]()["paths"])
    served = {r.path.replace(":path", "") for r in app.routes if isinstance(r, Route)}
    # The dashboard and its sign-in are pages, not the JSON API.
    assert served - {"/openapi.json", "/", "/login", "/logout"} == documented


def test_the_seed_data_is_there(app: Any) -> None:
    store = app.state.collector.store
    assert store.run("fuzz-run")["status"] == "judged"
    assert store.signals(run_id="fuzz-run")[1] == 1
