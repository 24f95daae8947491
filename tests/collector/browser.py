"""Debian's headless ``chromium``, driven by Playwright: the one browser
driver of the page and browser-access tests."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: apt-get install -y chromium"
    return found


@contextlib.contextmanager
def launched(*flags: str) -> Iterator[Any]:
    """A Playwright ``Browser`` on Debian's chromium, with extra command-line
    ``flags`` (``--host-resolver-rules=...``), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests drive Chromium with Playwright: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage", *flags]
        )
        try:
            yield browser
        finally:
            browser.close()
