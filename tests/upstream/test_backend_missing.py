"""Without the upstream backend's source the upstream tests fail, saying
what is missing: they never pass without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.backend import backend_dir


def test_a_missing_shared_folder_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNETRACE_SHARED_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="upstream Dunetrace backend is missing: no folder"):
        backend_dir()
    (tmp_path / "upstream-backend" / "services" / "ingest").mkdir(parents=True)
    with pytest.raises(pytest.fail.Exception, match=r"incomplete: .* lacks services/ingest/requirements\.txt"):
        backend_dir()
