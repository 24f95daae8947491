"""A third-party plugin installed as a real distribution and found through
its entry point: pluggy's wrappers, tryfirst / trylast and firstresult behave
as pluggy documents, and a plugin that raises never reaches the agent."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

from tests.ingest_server import IngestServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def install_distribution(target: pathlib.Path) -> None:
    """What pip leaves in site-packages for a one-module distribution."""
    (target / "dt_audit_plugin.py").write_text((HERE / "plugin_dist" / "dt_audit_plugin.py").read_text())
    info = target / "dt_audit_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dt-audit-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dunetrace]\naudit = dt_audit_plugin\n")
    (info / "top_level.txt").write_text("dt_audit_plugin\n")
    (info / "RECORD").write_text("")


SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(message)s")
from importlib.metadata import entry_points
from dunetrace import Dunetrace
found = [ep.value for ep in entry_points(group="dunetrace")]
dt = Dunetrace(endpoint=sys.argv[1], flush_interval=0.05)
import dt_audit_plugin as plugin
assert dt.plugins.get_plugin("audit") is plugin, "entry point plugin not registered"
with dt.run("agent") as run:
    del plugin.ORDER[:]
    run.tool_called("plain")
    order = list(plugin.ORDER)
    run.tool_called("wrapped-raise")     # a wrapper handles it
    run.tool_called("unhandled-raise")   # nobody does: logged, the agent goes on
picks = [dt.plugins.hook.audit_pick(number=n) for n in (2, 3, -1)]
dt.shutdown(5)
print(json.dumps({"found": found, "order": order, "handled": plugin.HANDLED,
                  "outcomes": plugin.OUTCOMES, "picks": picks}))
"""


def test_entry_point_plugin_with_wrappers(ingest: IngestServer, tmp_path: pathlib.Path) -> None:
    install_distribution(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), ingest.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert "dt_audit_plugin" in out["found"]
    # tryfirst, then the rest, then trylast, all inside the new-style wrapper
    assert out["order"] == ["wrapper:before", "tryfirst", "trylast", "wrapper:after"]
    assert out["handled"] == ["handled by the wrapper"]
    # the old-style hookwrapper saw the call's result (no plain implementation: [])
    assert out["outcomes"] == [["agent", []]]
    # firstresult: the first non-None answer; the trylast fallback otherwise;
    # a raise answers None
    assert out["picks"] == ["even:2", "fallback:3", None]
    events = ingest.events
    assert [e["event_type"] for e in events] == [
        "run.started",
        "tool.called",
        "tool.called",
        "tool.called",
        "run.completed",
    ]
    # the wrapper's change after the yield reached the wire, seeing what
    # tryfirst set; a raise the wrapper lets through skips its after-part
    unhandled = [e for e in events if e["payload"].get("tool_name") == "unhandled-raise"]
    assert len(unhandled) == 1 and "audited" not in unhandled[0]["payload"]
    assert all(e["payload"]["audited"] == "search" for e in events if e not in unhandled)
    # the unhandled raise: one warning naming the plugin; the event still went
    assert result.stderr.count("plugin 'audit.last' raised KeyError in dunetrace_event") == 1
    assert "plugin 'audit.picks' raised ArithmeticError in audit_pick" in result.stderr
