"""``dunetrace demo``: a collector on a free local port, every offline
example agent whose framework is installed run against it, and what the
detectors found, printed; then the collector keeps serving the dashboard
until Ctrl-C (``--exit``: it stops when the demo ends, for scripts).

An example is a module ``dunetrace.examples.<name>_agent`` with ``EXTRA``
(the pip extra it needs, or None), ``AGENT_ID`` and ``main(dt)``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from .settings import Settings

__all__ = ["Example", "find_examples", "missing_requirements", "run_demo"]


@dataclass
class Example:
    module: str
    extra: str | None

    @property
    def name(self) -> str:
        return self.module.rsplit(".", 1)[1]


def _extra_of(module: str) -> str | None:
    """``EXTRA`` read from the source, without importing the module (which
    may import a framework that is not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):  # EXTRA: str | None = "..."
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "EXTRA" for t in targets):
            value = node.value
            if isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, str)):
                return value.value or None
    return None


def find_examples() -> list[Example]:
    import dunetrace.examples as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_agent"))
    # The framework-free example first: it needs nothing and shows TOOL_LOOP.
    names.sort(key=lambda n: (n != "manual_agent", n))
    return [Example(f"dunetrace.examples.{n}", _extra_of(f"dunetrace.examples.{n}")) for n in names]


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def missing_requirements(extra: str | None) -> list[str]:
    """Distributions of ``dunetrace[extra]`` that are not installed."""
    if not extra:
        return []
    try:
        requires = importlib.metadata.requires("dunetrace") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + """["']""")
    missing = []
    for requirement in requires:
        if ";" not in requirement or not marker.search(requirement.split(";", 1)[1]):
            continue
        match = _NAME.match(requirement)
        if match is None:
            continue
        try:
            importlib.metadata.version(match.group(1))
        except importlib.metadata.PackageNotFoundError:
            missing.append(match.group(1))
    return missing


def _print_tables(out: IO[str], runs: list[dict[str, Any]], signals: list[dict[str, Any]]) -> None:
    from dunetrace.cli import format_runs, format_signals

    out.write("\nRuns\n" + format_runs(runs) + "\n")
    out.write("\nSignals\n" + format_signals(signals, explain=True) + "\n")


def run_demo(
    out: IO[str] = sys.stdout, db_path: str | None = None, keep_serving: bool = False, timeout: float = 30.0
) -> int:
    """Returns the exit status: 0 when every installed example ran and a
    signal was found."""
    from .server import BackgroundServer

    started = time.monotonic()
    if db_path is None:
        db_path = os.path.join(tempfile.mkdtemp(prefix="dunetrace-demo-"), "demo.db")
    # Runs of the demo all end with a terminal event; the short timeout only
    # matters for an example that dies half-way.
    settings = Settings.from_env(db_path=db_path, run_timeout=5.0, sweep_interval=0.5)
    server = BackgroundServer(settings).start()
    out.write(f"Collector listening on {server.url} (database {db_path})\n")
    out.flush()
    try:
        runnable: list[Example] = []
        for example in find_examples():
            missing = missing_requirements(example.extra)
            if missing:
                out.write(
                    f"- {example.name}: skipped, needs {', '.join(missing)}: pip install 'dunetrace[{example.extra}]'\n"
                )
            else:
                runnable.append(example)
        ran, failed = _run_examples(runnable, server.url, out, timeout=max(60.0, timeout * 2))
        runs, signals = _wait_for_judgement(server, ran, timeout)
        _print_tables(out, runs, signals)
        out.write(f"\nDashboard: {server.url}/  (demo took {time.monotonic() - started:.1f}s)\n")
        loops = sorted((s for s in signals if s["detector"] == "TOOL_LOOP"), key=lambda s: s["created_at"])
        loop = loops[0] if loops else None
        if loop is not None:
            out.write(f"The loop, step by step: {server.url}/#run={loop['run_id']}&flag=TOOL_LOOP\n")
        if keep_serving:
            out.write("The collector keeps serving it until Ctrl-C (`dunetrace demo --exit` stops it here).\n")
            out.flush()
            _serve_until_interrupted()
            out.write("Stopped.\n")
        else:
            out.write(f"The collector stops now; to look again: dunetrace serve --db {db_path}\n")
    finally:
        server.stop()
    return 1 if failed or not signals else 0


def _serve_until_interrupted() -> None:
    """Until Ctrl-C, or a SIGTERM (a terminal closed, a process manager):
    both end the demo the same way, the collector stopped cleanly."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run_examples(examples: list[Example], url: str, out: IO[str], timeout: float) -> tuple[list[str], int]:
    """Each example in a process of its own, as many at once as there are
    cores: importing a framework takes most of an example's time, and one
    example's imports and globals cannot disturb another's."""
    env = dict(os.environ)
    # Offline: frameworks that phone home are told not to.
    env.update(CREWAI_DISABLE_TELEMETRY="true", OTEL_SDK_DISABLED="true", DUNETRACE_ENDPOINT=url)
    env.pop("DUNETRACE_API_KEY", None)
    waiting = list(examples)
    running: list[tuple[Example, subprocess.Popen[str], float]] = []
    ran: list[str] = []
    failed = 0
    slots = max(2, os.cpu_count() or 2)
    while waiting or running:
        while waiting and len(running) < slots:
            example = waiting.pop(0)
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, example.module],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running.append((example, process, time.monotonic()))
        time.sleep(0.02)
        for item in list(running):
            example, process, began = item
            overdue = time.monotonic() - began > timeout
            if process.poll() is None and not overdue:
                continue
            running.remove(item)
            if overdue and process.poll() is None:
                process.kill()
            output = process.communicate()[0]
            lines = output.strip().splitlines()
            if process.returncode == 0 and lines and lines[-1].startswith(_DONE):
                agent = lines[-1][len(_DONE) :]
                ran.append(agent)
                out.write(f"- {example.name}: ran agent {agent!r} ({time.monotonic() - began:.1f}s)\n")
                # What the example saw while it ran (the policy examples: live
                # signals as they arrive, the stop that ended a loop).
                for line in lines[:-1]:
                    out.write(f"    {line}\n")
            elif process.returncode == _MISSING:
                out.write(f"- {example.name}: skipped, {lines[-1] if lines else 'a framework is missing'}\n")
            else:
                failed += 1
                why = "timed out" if overdue else f"exit status {process.returncode}"
                out.write(f"- {example.name}: FAILED ({why})\n{output[-3000:]}\n")
            out.flush()
    return ran, failed


_DONE = "dunetrace-demo-ran:"
_MISSING = 3


def _child(module_name: str) -> int:
    """One example against the collector at ``DUNETRACE_ENDPOINT``."""
    from dunetrace import Dunetrace

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _extra_of(module_name) or "all"
        print(f"{exc}: pip install 'dunetrace[{extra}]'")
        return _MISSING
    dt = Dunetrace(flush_interval=0.05)
    try:
        said = module.main(dt)
        if getattr(module, "SHOW_OUTPUT", False) and isinstance(said, list):
            for line in said:
                print(line)
    finally:
        delivered = dt.shutdown(timeout=10)
    if not delivered:
        print(f"not every event was delivered: {dt.stats()}")
        return 1
    print(f"{_DONE}{module.AGENT_ID}")
    return 0


def _wait_for_judgement(
    server: Any, agents: list[str], timeout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    store = server.collector.store
    deadline = time.monotonic() + timeout
    while True:
        # An example's child runs are agents of their own ("research-crew.researcher"
        # for a CrewAI agent, "li-agent/<tool>" for a LlamaIndex agent used as a tool).
        known = [a["agent_id"] for a in store.agents(1000, 0)[0]]
        agents = [k for k in known if any(k == a or k.startswith((a + ".", a + "/")) for a in agents)]
        runs = [r for a in agents for r in store.runs(a, None, 200, 0)[0]]
        if all(r["status"] == "judged" for r in runs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    signals = [s for a in agents for s in store.signals(agent_id=a, limit=200)[0]]
    return runs, signals


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1]))
