"""The collector's OpenAPI 3.0 document, written by hand from the contract.

Served at ``/openapi.json``; the schema-driven fuzz test reads it, so a
route or an answer added to the app belongs here too.
"""

from __future__ import annotations

from typing import Any

from dunetrace._version import __version__

from .dashboard_reads import RANGES
from .schema import EVENT_TYPES, MAX_INT
from .settings import MAX_EVENTS_PER_BATCH

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "what is wrong, naming the field")

_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}},
]

_SEVERITY = {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]}


def _listing(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset", "next_offset"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer", "nullable": True},
        },
    }


def _get(
    summary: str, item_schema: dict[str, Any], parameters: list[dict[str, Any]], *, not_found: bool = False
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(item_schema, summary), "422": _ERROR}
    if not_found:
        responses["404"] = _ERROR
    return {"get": {"summary": summary, "parameters": parameters, "responses": responses}}


_AGENT_PATH = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}

SCHEMAS: dict[str, Any] = {
    "Event": {
        "type": "object",
        "required": ["event_type", "run_id", "agent_id", "agent_version", "step_index", "timestamp", "payload"],
        "properties": {
            "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
            "run_id": {"type": "string", "minLength": 1},
            "agent_id": {"type": "string", "minLength": 1},
            "agent_version": {"type": "string", "minLength": 1},
            "step_index": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
            "timestamp": {"type": "number"},
            "payload": {"type": "object"},
            "parent_run_id": {"type": "string", "minLength": 1, "nullable": True},
            "event_id": {"type": "string", "minLength": 1, "nullable": True},
        },
    },
    "Batch": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "api_key": {"type": "string"},
            "agent_id": {"type": "string"},
            "events": {"type": "array", "minItems": 1, "maxItems": MAX_EVENTS_PER_BATCH, "items": _ref("Event")},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["accepted", "batch_id", "queued_at"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 1},
            "batch_id": {"type": "string"},
            "queued_at": {"type": "number"},
        },
    },
    "Deploy": {
        "type": "object",
        "required": ["agent_id", "version"],
        "properties": {
            "api_key": {"type": "string"},
            "agent_id": {"type": "string", "minLength": 1},
            "version": {"type": "string", "minLength": 1},
            "meta": {"type": "object", "nullable": True},
        },
    },
    "Error": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}, "field": {"type": "string"}, "reason": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "db"],
        "properties": {
            "status": {"type": "string"},
            "version": {"type": "string"},
            "db": {"type": "string"},
            "reason": {"type": "string", "description": "why a write would fail now (503 only)"},
        },
    },
    "Agent": {
        "type": "object",
        "required": ["agent_id", "runs", "signals", "open_runs", "last_seen"],
        "properties": {
            "agent_id": {"type": "string"},
            "agent_version": {"type": "string", "nullable": True},
            "runs": {"type": "integer"},
            "signals": {"type": "integer", "nullable": True},
            "open_runs": {"type": "integer", "nullable": True},
            "last_seen": {"type": "number"},
        },
    },
    "Run": {
        "type": "object",
        "required": ["run_id", "agent_id", "agent_version", "status", "event_count", "signal_count"],
        "properties": {
            "run_id": {"type": "string"},
            "agent_id": {"type": "string"},
            "agent_version": {"type": "string"},
            "parent_run_id": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": ["open", "ended", "judged"]},
            "first_ts": {"type": "number"},
            "last_ts": {"type": "number"},
            "last_seen": {"type": "number"},
            "end_type": {"type": "string", "nullable": True},
            "exit_reason": {"type": "string", "nullable": True},
            "error_type": {"type": "string", "nullable": True},
            "total_steps": {"type": "integer"},
            "event_count": {"type": "integer"},
            "signal_count": {"type": "integer"},
            "judged_at": {"type": "number", "nullable": True},
        },
    },
    "Signal": {
        "type": "object",
        "required": ["id", "run_id", "agent_id", "detector", "severity", "evidence", "explanation"],
        "properties": {
            "id": {"type": "integer"},
            "run_id": {"type": "string"},
            "agent_id": {"type": "string"},
            "detector": {"type": "string"},
            "severity": _SEVERITY,
            "step_index": {"type": "integer", "nullable": True},
            "evidence": {"type": "object"},
            "explanation": {
                "type": "object",
                "properties": {"what": {"type": "string"}, "why": {"type": "string"}, "try": {"type": "string"}},
            },
            "created_at": {"type": "number"},
            "live": {
                "type": "boolean",
                "description": "Found in the agent's process while the run was going (sent by the SDK), "
                "not by the collector's judgement of the ended run.",
            },
        },
    },
    "DeployMarker": {
        "type": "object",
        "required": ["id", "agent_id", "version", "meta", "at"],
        "properties": {
            "id": {"type": "integer"},
            "agent_id": {"type": "string"},
            "version": {"type": "string"},
            "meta": {"type": "object"},
            "at": {"type": "number"},
        },
    },
    "RunDetail": {
        "type": "object",
        "required": ["run", "events", "signals"],
        "properties": {
            "run": _ref("Run"),
            "events": {"type": "array", "items": _ref("Event")},
            "signals": {"type": "array", "items": _ref("Signal")},
            "children": {
                "type": "array",
                "description": "child runs (and theirs), parents first, each with its events and signals",
                "items": {"type": "object", "required": ["run", "events", "signals"]},
            },
        },
    },
    "Timeline": {
        "type": "object",
        "required": [
            "range",
            "start",
            "end",
            "bucket_seconds",
            "buckets",
            "runs",
            "errored",
            "error_rate",
            "detectors",
            "markers",
            "total_runs",
            "truncated",
        ],
        "properties": {
            "agent_id": {"type": "string", "nullable": True},
            "range": {"type": "string", "enum": list(RANGES)},
            "start": {"type": "number"},
            "end": {"type": "number"},
            "bucket_seconds": {"type": "integer"},
            "buckets": {"type": "array", "items": {"type": "number"}},
            "runs": {"type": "array", "items": {"type": "integer"}},
            "errored": {"type": "array", "items": {"type": "integer"}},
            "error_rate": {"type": "array", "items": {"type": "number", "nullable": True}},
            "detectors": {"type": "object", "description": "detector -> percent of each bucket's runs it fired on"},
            "markers": {
                "type": "array",
                "items": {"type": "object", "required": ["kind", "agent_id", "version", "at"]},
            },
            "total_runs": {"type": "integer"},
            "truncated": {"type": "boolean"},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    signal_filters = [
        {"name": "severity", "in": "query", "schema": _SEVERITY},
        {"name": "detector", "in": "query", "schema": {"type": "string"}, "description": "e.g. TOOL_LOOP"},
        {
            "name": "since",
            "in": "query",
            "schema": {"type": "number", "minimum": 0, "maximum": 1e11},
            "description": "only signals found at this unix time or later",
        },
    ]
    agent_query = {"name": "agent_id", "in": "query", "schema": {"type": "string"}}
    with_signals = {"name": "with_signals", "in": "query", "schema": {"type": "boolean"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Dunetrace local collector",
            "version": __version__,
            "description": "Ingest API of the Dunetrace wire contract, and a read API over what was stored.",
        },
        "paths": {
            "/v1/ingest": {
                "post": {
                    "summary": "Store a batch of events (202 once it is on disk)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Batch")}}},
                    "responses": {
                        "202": _json(_ref("Accepted"), "stored"),
                        "401": _ERROR,
                        "403": _ERROR,  # a write from another site
                        "413": _ERROR,
                        "415": _ERROR,  # a body that is not JSON
                        "422": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/v1/deploy": {
                "post": {
                    "summary": "Record a deploy marker",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Deploy")}}},
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {"accepted": {"type": "boolean"}, "id": {"type": "integer"}},
                            },
                            "stored",
                        ),
                        "401": _ERROR,
                        "403": _ERROR,  # a write from another site
                        "413": _ERROR,
                        "415": _ERROR,  # a body that is not JSON
                        "422": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/v1/traces": {
                "post": {
                    "summary": "OTLP/HTTP trace export: GenAI spans become runs",
                    "description": "An OTLP ExportTraceServiceRequest, protobuf (needs opentelemetry-proto) or "
                    "JSON, optionally gzip-encoded. Agent spans become runs, model, tool and retrieval spans "
                    "their steps; content attributes are hashed, never stored.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"resourceSpans": {"type": "array"}},
                                }
                            },
                            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "received",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "413": _ERROR,
                        "415": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness and database check",
                    "responses": {
                        "200": _json(_ref("Health"), "a write would succeed now"),
                        "503": _json(_ref("Health"), "a write would fail now: see reason"),
                    },
                }
            },
            "/api/agents": _get("Agents with run and signal counts", _listing("Agent"), _PAGE),
            "/api/agents/{agent_id}/runs": _get(
                "An agent's runs, newest first", _listing("Run"), [_AGENT_PATH, with_signals, *_PAGE]
            ),
            "/api/agents/{agent_id}/signals": _get(
                "An agent's signals, newest first", _listing("Signal"), [_AGENT_PATH, *signal_filters, *_PAGE]
            ),
            "/api/runs": _get("Recent runs of all agents", _listing("Run"), [with_signals, *_PAGE]),
            "/api/runs/{run_id}": _get(
                "One run with its events and signals",
                _ref("RunDetail"),
                [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}],
                not_found=True,
            ),
            "/api/signals": _get(
                "Recent signals of all agents (or of agent_id)",
                _listing("Signal"),
                [agent_query, *signal_filters, *_PAGE],
            ),
            "/api/timeline": _get(
                "Runs, error rate and each detector's rate per bucket, with deploys and version changes",
                _ref("Timeline"),
                [agent_query, {"name": "range", "in": "query", "schema": {"type": "string", "enum": list(RANGES)}}],
            ),
            "/api/deploys": _get(
                "Deploy markers, newest first",
                _listing("DeployMarker"),
                [{"name": "agent_id", "in": "query", "schema": {"type": "string"}}, *_PAGE],
            ),
        },
        "components": {"schemas": SCHEMAS},
    }
