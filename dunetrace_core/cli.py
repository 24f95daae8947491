"""The ``dunetrace`` command.

``serve`` and ``demo`` need the collector extra and import it only when
called; ``runs`` and ``signals`` read a running collector's JSON API with
the core package alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Any

__all__ = ["format_runs", "format_signals", "main"]

COLLECTOR_EXTRA = "pip install 'dunetrace[collector]'"
DEFAULT_COLLECTOR = "http://127.0.0.1:8001"


def _collector_missing() -> str | None:
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"dunetrace: the local collector needs {' and '.join(missing)}, which are not installed: {COLLECTOR_EXTRA}"


# -- tables -------------------------------------------------------------------


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def format_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "(no runs)"
    rows = [
        [
            str(r.get("run_id", "")),
            str(r.get("agent_id", "")),
            str(r.get("status", "")),
            str(r.get("total_steps", "")),
            str(r.get("event_count", "")),
            str(r.get("signal_count", "")),
            str(r.get("error_type") or r.get("exit_reason") or ""),
            _when(r.get("last_seen")),
        ]
        for r in runs
    ]
    return _table(["RUN", "AGENT", "STATUS", "STEPS", "EVENTS", "SIGNALS", "ENDED", "LAST SEEN"], rows)


def format_signals(signals: list[dict[str, Any]], explain: bool = False) -> str:
    if not signals:
        return "(no signals)"
    rows = [
        [
            str(s.get("severity", "")),
            str(s.get("detector", "")),
            str(s.get("agent_id", "")),
            str(s.get("run_id", "")),
            "" if s.get("step_index") is None else str(s["step_index"]),
            _when(s.get("created_at")),
        ]
        for s in signals
    ]
    text = _table(["SEVERITY", "DETECTOR", "AGENT", "RUN", "STEP", "FOUND"], rows)
    if explain:
        for s in signals:
            x = s.get("explanation") or {}
            text += f"\n\n{s.get('detector')} in run {s.get('run_id')}"
            for key, label in (("what", "What happened"), ("why", "Why it matters"), ("try", "What to try")):
                if x.get(key):
                    text += f"\n  {label}: {x[key]}"
    return text


# -- commands -----------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    problem = _collector_missing()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from dunetrace.collector import store
    from dunetrace.collector.server import serve
    from dunetrace.collector.settings import Settings

    try:
        settings = Settings.from_env(
            db_path=args.db,
            sync=args.sync,
            api_keys=args.api_key or None,
            run_timeout=args.run_timeout,
            judge_max_delay=args.judge_max_delay,
            judge_worker=not args.judge_in_process,
            detectors_path=args.detectors,
            slack_webhook_url=args.slack_webhook,
            webhook_url=args.webhook,
            webhook_secret=args.webhook_secret,
            alert_min_severity=args.alert_min_severity.upper() if args.alert_min_severity else None,
        )
        store.judge_lease_from_env()
    except (ValueError, TypeError) as exc:
        print(f"dunetrace serve: {exc}", file=sys.stderr)
        return 2
    problem = store.missing_driver(settings.db_path)
    if problem:
        print(f"dunetrace serve: {problem}", file=sys.stderr)
        return 1
    database = settings.db_path if store.is_postgres_url(settings.db_path) else os.path.abspath(settings.db_path)
    mode = "dev mode: any API key accepted" if settings.dev_mode else f"{len(settings.api_keys)} API key(s)"
    print(
        f"dunetrace collector on http://{args.host}:{args.port} (database {store.describe_target(database)}, {mode})",
        file=sys.stderr,
    )
    try:
        serve(settings, args.host, args.port, log_level=args.log_level)
    except store.StoreUnavailable as exc:  # the database cannot be opened: say which and why, no traceback
        print(f"dunetrace serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    problem = _collector_missing()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from dunetrace.collector.demo import run_demo

    return run_demo(db_path=args.db, keep_serving=args.serve, timeout=args.timeout)


def _read(args: argparse.Namespace, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    import httpx

    url = args.url.rstrip("/") + path
    try:
        response = httpx.get(url, params={k: v for k, v in params.items() if v is not None}, timeout=10)
    except httpx.HTTPError as exc:
        print(
            f"dunetrace: no collector answered at {args.url} ({type(exc).__name__}); "
            "start one with `dunetrace serve` or pass --url",
            file=sys.stderr,
        )
        return None
    if response.status_code != 200:
        print(f"dunetrace: {url} answered HTTP {response.status_code}: {response.text[:300]}", file=sys.stderr)
        return None
    data: dict[str, Any] = response.json()
    return data


def _runs(args: argparse.Namespace) -> int:
    path = f"/api/agents/{_quote(args.agent)}/runs" if args.agent else "/api/runs"
    data = _read(args, path, {"limit": args.limit, "with_signals": "true" if args.with_signals else None})
    if data is None:
        return 1
    print(json.dumps(data["items"], indent=2) if args.json else format_runs(data["items"]))
    return 0


def _signals(args: argparse.Namespace) -> int:
    path = f"/api/agents/{_quote(args.agent)}/signals" if args.agent else "/api/signals"
    params = {"limit": args.limit, "severity": args.severity, "detector": args.detector}
    data = _read(args, path, params)
    if data is None:
        return 1
    print(json.dumps(data["items"], indent=2) if args.json else format_signals(data["items"], explain=args.explain))
    return 0


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _version(args: argparse.Namespace) -> int:
    from . import __version__

    print(__version__)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunetrace", description="Runtime failure detection for AI agents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the local collector (ingest API, detectors, dashboard)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8001, help="default 8001, the SDK's default endpoint")
    p.add_argument(
        "--db",
        help="SQLite file, or a postgresql://user:password@host/database URL that several collectors share "
        "(needs dunetrace[postgres]); default: $DUNETRACE_DB or ./dunetrace.db",
    )
    p.add_argument(
        "--sync", choices=["full", "normal"],
        help="full (default): each batch reaches the disk before its 202; normal: survives a collector crash, "
        "not a power cut, and is faster",
    )  # fmt: skip
    p.add_argument("--api-key", action="append", help="accept only this key (repeatable); none: dev mode")
    p.add_argument("--run-timeout", type=float, help="judge a run silent this many seconds (default 90)")
    p.add_argument(
        "--judge-max-delay", type=float,
        help="with --judge-in-process, judge an ended run at most this many seconds late while ingest is busy "
        "(default 1)",
    )  # fmt: skip
    p.add_argument(
        "--judge-in-process", action="store_true",
        help="run the detectors in the collector's own process, not in a worker process of their own",
    )  # fmt: skip
    p.add_argument("--detectors", help="detectors.yml with thresholds")
    p.add_argument("--slack-webhook", help="Slack incoming-webhook URL for alerts")
    p.add_argument("--webhook", help="URL that receives each alert as JSON")
    p.add_argument("--webhook-secret", help="sign webhook bodies with HMAC-SHA256 (or $DUNETRACE_WEBHOOK_SECRET)")
    p.add_argument("--alert-min-severity", help="LOW, MEDIUM, HIGH (default) or CRITICAL")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_serve)

    p = sub.add_parser("demo", help="run the offline example agents against a local collector")
    p.add_argument("--db", help="SQLite file (default: a new temporary file)")
    p.add_argument("--serve", action="store_true", help="keep the dashboard up after the demo, until Ctrl-C")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for detection")
    p.set_defaults(func=_demo)

    url = os.environ.get("DUNETRACE_COLLECTOR_URL") or DEFAULT_COLLECTOR
    for name, func, text in (("runs", _runs, "recent runs"), ("signals", _signals, "recent signals")):
        p = sub.add_parser(name, help=f"list {text} of a running collector")
        p.add_argument("--url", default=url, help=f"the collector (default: $DUNETRACE_COLLECTOR_URL or {url})")
        p.add_argument("--agent", help="only this agent")
        p.add_argument("--limit", type=int, default=20)
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "runs":
            p.add_argument("--with-signals", action="store_true", help="only runs with signals")
        else:
            p.add_argument("--severity", type=str.upper, choices=["LOW", "MEDIUM", "HIGH", "CRITICAL"])
            p.add_argument("--detector", type=str.upper, help="e.g. TOOL_LOOP")
            p.add_argument("--explain", action="store_true", help="print each signal's explanation")
        p.set_defaults(func=func)

    p = sub.add_parser("version", help="print the installed version")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
