"""``dunetrace runs`` / ``dunetrace signals`` print what any client of the
collector stored: terminal control sequences in those values are stripped
before printing (an agent id could otherwise clear the screen, retitle the
window or hide a row), and against a collector with keys they send one."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunetrace.cli import format_runs, format_signals, main, printable
from dunetrace.collector.server import BackgroundServer

from .wire import batch, tool_loop_run

HOSTILE = "agent\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil.example\x1b\\click\x1b\\\x9b31m\u202eevil\r\nFAKE ROW"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe(text: str) -> bool:
    return all(
        (ch == "\n" or unicodedata.category(ch) != "Cc") and ch not in BIDI and ch not in "\u2028\u2029" for ch in text
    )


@given(st.text())
def test_printable_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    out = printable(text)
    assert safe(out) and "\n" not in out
    assert printable(out) == out  # printing it again changes nothing


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_printable_keeps_ordinary_text(text: str) -> None:
    assert printable(text) == text


def test_tables_strip_controls_from_stored_values() -> None:
    runs = format_runs([{"run_id": HOSTILE, "agent_id": HOSTILE, "status": "judged", "error_type": HOSTILE}])
    signals = format_signals(
        [
            {
                "severity": "HIGH",
                "detector": HOSTILE,
                "agent_id": HOSTILE,
                "run_id": "r",
                "explanation": {"what": HOSTILE, "why": "x", "try": "y"},
            }
        ],
        explain=True,
    )
    for text in (runs, signals):
        assert safe(text) and "\x1b" not in text and "\x9b" not in text
        assert "pwned" not in text  # a window title is dropped with its sequence
    assert runs.count("\n") == 1  # a header and one row: no forged row


def test_runs_and_signals_of_a_collector_with_keys(
    start_collector: Callable[..., BackgroundServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_collector(api_keys=frozenset({"reader-key"}))
    body = batch(tool_loop_run("\x1b[31mred-run\x1b[0m", agent=HOSTILE), api_key="reader-key", agent=HOSTILE)
    assert httpx.post(server.url + "/v1/ingest", json=body).status_code == 202
    assert server.collector.judge.wait_idle(10)
    assert main(["runs", "--url", server.url]) == 1
    assert "needs an API key" in capsys.readouterr().err
    assert main(["runs", "--url", server.url, "--api-key", "wrong"]) == 1
    assert "the one given was refused" in capsys.readouterr().err
    assert main(["runs", "--url", server.url, "--api-key", "reader-key"]) == 0
    out = capsys.readouterr().out
    assert "red-run" in out and safe(out) and "\x1b" not in out
    monkeypatch.setenv("DUNETRACE_API_KEY", "reader-key")
    assert main(["signals", "--url", server.url, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "TOOL_LOOP" in out and safe(out)
