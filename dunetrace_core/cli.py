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
import re
import sys
import time
from typing import Any

from ._version import __version__

__all__ = ["format_runs", "format_signals", "main", "printable"]

COLLECTOR_EXTRA = "pip install 'dunetrace[collector]'"
DEFAULT_COLLECTOR = "http://127.0.0.1:8001"


def _collector_missing() -> str | None:
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"dunetrace: the local collector needs {' and '.join(missing)}, which are not installed: {COLLECTOR_EXTRA}"


# -- tables -------------------------------------------------------------------

#: What a terminal would act on rather than print: escape sequences (CSI,
#: OSC such as a title change or a hyperlink, DCS and the like, and lone
#: ESC), C0 and C1 control characters (0x9b is a one-byte CSI to some
#: terminals), and the Unicode marks that reorder text right-to-left.
_TERMINAL_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves, erasing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, ...: strings
    r"|\x1b[\s\S]?"  # any other escape
    r"|[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def printable(value: Any) -> str:
    """``value`` as text a terminal prints as is: stored values come from
    any client of the collector, and an escape sequence in an agent id
    could rewrite the screen, retitle the window or hide a row. Line
    breaks and tabs become spaces; every other control is dropped."""
    return _TERMINAL_CONTROL.sub(lambda m: " " if m.group() in "\t\n\r\x0b\x0c" else "", str(value))


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    return "\n".join(lines)


def format_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "(no runs)"
    rows = [
        [
            printable(r.get("run_id", "")),
            printable(r.get("agent_id", "")),
            printable(r.get("status", "")),
            printable(r.get("total_steps", "")),
            printable(r.get("event_count", "")),
            printable(r.get("signal_count", "")),
            printable(r.get("error_type") or r.get("exit_reason") or ""),
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
            printable(s.get("severity", "")),
            printable(s.get("detector", "")),
            printable(s.get("agent_id", "")),
            printable(s.get("run_id", "")),
            "" if s.get("step_index") is None else printable(s["step_index"]),
            _when(s.get("created_at")),
        ]
        for s in signals
    ]
    text = _table(["SEVERITY", "DETECTOR", "AGENT", "RUN", "STEP", "FOUND"], rows)
    if explain:
        for s in signals:
            found = s.get("explanation")
            x: dict[str, Any] = found if isinstance(found, dict) else {}
            text += f"\n\n{printable(s.get('detector'))} in run {printable(s.get('run_id'))}"
            for key, label in (("what", "What happened"), ("why", "Why it matters"), ("try", "What to try")):
                if x.get(key):
                    text += f"\n  {label}: {printable(x[key])}"
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
            api_keys_file=args.api_keys_file,
            allowed_hosts=args.allowed_host or None,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            max_connections=args.max_connections,
            run_timeout=args.run_timeout,
            judge_max_delay=args.judge_max_delay,
            judge_worker=not args.judge_in_process,
            detectors_path=args.detectors,
            slack_webhook_url=args.slack_webhook,
            webhook_url=args.webhook,
            webhook_secret=args.webhook_secret,
            alert_min_severity=args.alert_min_severity.upper() if args.alert_min_severity else None,
            otlp_endpoint=args.otlp_endpoint,
        )
        store.judge_lease_from_env()
    except (ValueError, TypeError) as exc:
        print(f"dunetrace serve: {exc}", file=sys.stderr)
        return 2
    problem = store.missing_driver(settings.db_path)
    if problem:
        print(f"dunetrace serve: {problem}", file=sys.stderr)
        return 1
    try:
        serve(
            settings,
            args.host,
            args.port,
            log_level=args.log_level,
            log_format=args.log_format,
            insecure=args.insecure,
            forwarded_allow_ips=args.forwarded_allow_ips,
        )
    except (ValueError, TypeError) as exc:
        print(f"dunetrace serve: {exc}", file=sys.stderr)
        return 2
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

    return run_demo(db_path=args.db, keep_serving=not args.exit, timeout=args.timeout)


def _read(args: argparse.Namespace, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    import httpx

    url = args.url.rstrip("/") + path
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        response = httpx.get(
            url, params={k: v for k, v in params.items() if v is not None}, headers=headers, timeout=10
        )
    except httpx.HTTPError as exc:
        print(
            f"dunetrace: no collector answered at {args.url} ({type(exc).__name__}); "
            "start one with `dunetrace serve` or pass --url",
            file=sys.stderr,
        )
        return None
    if response.status_code == 401:
        print(
            f"dunetrace: {args.url} needs an API key: pass --api-key KEY or set DUNETRACE_API_KEY"
            + (" (the one given was refused)" if args.api_key else ""),
            file=sys.stderr,
        )
        return None
    if response.status_code != 200:
        print(
            f"dunetrace: {url} answered HTTP {response.status_code}: {printable(response.text[:300])}", file=sys.stderr
        )
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
        "--sync",
        choices=["full", "normal"],
        help="full (default): each batch reaches the disk before its 202; normal: survives a collector crash, "
        "not a power cut, and is faster",
    )
    p.add_argument(
        "--api-key",
        action="append",
        help="require this key on every route (repeatable; shown by ps: prefer --api-keys-file); none: dev "
        "mode, which listens on loopback only",
    )
    p.add_argument("--api-keys-file", help="require one of the keys in this file (one a line, # comments)")
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a name browsers and clients reach the collector by (repeatable; loopback names and IP "
        "addresses are always allowed; '*': any)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond this machine without an API key (anyone who reaches it reads everything)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        help="proxies whose X-Forwarded-For/-Proto are trusted (default 127.0.0.1; '*': any)",
    )
    p.add_argument("--header-timeout", type=float, help="seconds a client has to send request headers (default 10)")
    p.add_argument("--body-timeout", type=float, help="seconds a client has to send a request body (default 60)")
    p.add_argument(
        "--max-connections",
        type=int,
        help="connections open at once, at most (default: 4096, or less below the file-descriptor limit)",
    )
    p.add_argument("--run-timeout", type=float, help="judge a run silent this many seconds (default 90)")
    p.add_argument(
        "--judge-max-delay",
        type=float,
        help="with --judge-in-process, judge an ended run at most this many seconds late while ingest is busy "
        "(default 1)",
    )
    p.add_argument(
        "--judge-in-process",
        action="store_true",
        help="run the detectors in the collector's own process, not in a worker process of their own",
    )
    p.add_argument("--detectors", help="detectors.yml with thresholds")
    p.add_argument("--slack-webhook", help="Slack incoming-webhook URL for alerts")
    p.add_argument("--webhook", help="URL that receives each alert as JSON")
    p.add_argument("--webhook-secret", help="sign webhook bodies with HMAC-SHA256 (or $DUNETRACE_WEBHOOK_SECRET)")
    p.add_argument("--alert-min-severity", help="LOW, MEDIUM, HIGH (default) or CRITICAL")
    p.add_argument(
        "--otlp-endpoint",
        help="send each judged run's signals as a span in the run's OpenTelemetry trace to this OTLP/HTTP "
        "traces URL, e.g. http://127.0.0.1:4318/v1/traces (or $DUNETRACE_OTLP_ENDPOINT; needs dunetrace[otel])",
    )
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error", "critical"]
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (default) or json: one JSON object a line on stderr, for log shippers",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("demo", help="run the offline example agents against a local collector")
    p.add_argument("--db", help="SQLite file (default: a new temporary file)")
    p.add_argument(
        "--exit",
        action="store_true",
        help="stop the collector when the demo ends (for scripts); without it the dashboard stays up until Ctrl-C",
    )
    p.add_argument(
        "--serve", action="store_true", help=argparse.SUPPRESS
    )  # serving is the default; scripts may still pass it
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for detection")
    p.set_defaults(func=_demo)

    url = os.environ.get("DUNETRACE_COLLECTOR_URL") or DEFAULT_COLLECTOR
    for name, func, text in (("runs", _runs, "recent runs"), ("signals", _signals, "recent signals")):
        p = sub.add_parser(name, help=f"list {text} of a running collector")
        p.add_argument("--url", default=url, help=f"the collector (default: $DUNETRACE_COLLECTOR_URL or {url})")
        p.add_argument(
            "--api-key",
            default=os.environ.get("DUNETRACE_API_KEY") or None,
            help="the collector's API key, when it has one (default: $DUNETRACE_API_KEY)",
        )
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
