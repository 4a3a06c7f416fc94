"""The dashboard shipped in the package, as ``mgpy`` serves it with no options, in Debian's
headless Chromium: the chart starts with the last minute instead of one dot, the chart
has a text alternative a screen reader announces, and the upload form is shown disabled,
with the reason, because uploads are off.

The server runs in an empty directory with neither ``--root`` nor ``--upload-dir``: what
a user who installed the package gets by typing ``mgpy``.  Fixtures and the console-error
check come from tests/browser/conftest.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from websockets.sync.client import connect

from tests.browser.conftest import ConsoleLog, browser, screenshot  # noqa: F401 (fixture)
from tests.examples._proc import Proc

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
REASON = "Uploads are off: this server was started without --upload-dir."
# Remembers how many samples the chart held the first time it drew any: history or one dot.
FIRST_DRAW = """
document.addEventListener("DOMContentLoaded", () => {
  const chart = document.getElementById("chart");
  new MutationObserver((_, mo) => {
    const n = Number(chart.dataset.samples);
    if (n > 0) { window.__firstSamples = n; mo.disconnect(); }
  }).observe(chart, { attributes: true, attributeFilter: ["data-samples"] });
});
"""


@pytest.fixture
def plain_mgpy(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``python -m mgpy`` with no --root and no --upload-dir, in an empty directory."""
    p = Proc(
        [sys.executable, "-m", "mgpy", "--listen", "127.0.0.1:0", "--log-level", "warning"],
        cwd=tmp_path,
    )
    try:
        m = p.wait_for(r" on (http://127\.0\.0\.1:(\d+)/) ")
        yield m.group(1), int(m.group(2))
        assert p.stop() == 0
    finally:
        p.kill()


def test_chart_starts_with_history_and_uploads_off_are_explained(
    browser: Browser,  # noqa: F811
    plain_mgpy: tuple[str, int],
) -> None:
    url, port = plain_mgpy
    # Let the server collect a few once-a-second samples before the page opens.
    with connect(f"ws://127.0.0.1:{port}/ws/push", open_timeout=5) as ws:
        seen = [json.loads(ws.recv(timeout=5)) for _ in range(4)]
    assert all(m["type"] == "stats" for m in seen)

    console = ConsoleLog()
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        console.attach(page, "dashboard")
        page.add_init_script(FIRST_DRAW)
        resp = page.goto(url)
        assert resp is not None and resp.status == 200
        page.wait_for_selector("#ws-state[data-state=open]")
        page.wait_for_selector("#stats[data-stale=false]", state="attached")
        page.wait_for_function("() => window.__firstSamples !== undefined", polling=100)

        # The first drawing already holds the samples the server kept (3 or more pushes
        # happened above), not the single dot of a page that starts from nothing.
        first = page.evaluate("() => window.__firstSamples")
        assert first >= 4, f"the chart started with {first} sample(s)"

        # A screen reader gets the chart as text: the latest values and the peaks.
        chart = page.locator("#chart")
        expect(chart).to_have_accessible_name(re.compile("Line chart of requests per second"))
        expect(chart).to_have_accessible_description(
            re.compile(
                r"^Latest: [\d.,]+ requests per second, [\d.,]+ WebSocket messages per second\. "
                r"Highest over the last \d+ seconds: [\d.,]+ requests per second, "
                r"[\d.,]+ messages per second\.$"
            )
        )

        # Uploads are off: the form says why and nothing in it can be used.
        expect(page.locator("#upload-off")).to_be_visible()
        expect(page.locator("#upload-off")).to_have_text(REASON)
        expect(page.locator("#upload-file")).to_be_disabled()
        expect(page.locator("#upload-file")).to_have_accessible_description(REASON)
        expect(page.locator("#upload-button")).to_be_disabled()
        expect(page.locator("#upload-drop")).to_have_attribute("aria-disabled", "true")
        screenshot(page, "dashboard-uploads-off")
    finally:
        ctx.close()
    console.assert_clean()
