"""The dashboard a newcomer meets (issue #8): web_root in headless Chromium, ``python -m mgpy``.

Strategy: each test starts the CLI as a subprocess (``mgpy_server``), opens the real
page in Debian's Chromium and drives it only through what docs/push_protocol.md
section 4 promises to test writers: element ids and ``data-*`` attributes.  A
MutationObserver installed in the page (``RECORDER``) keeps a snapshot of the
link state and counters every time the DOM changes, so "the counters updated"
is checked on values the page really showed, without sampling races; every wait
is a poll with a deadline (``wait_for_function``), never a sleep.  Screenshots
of the states a person would want to look at go to ``test-artifacts/``.

Console errors fail a test.  The one exception is the reconnect test: while the
server is down, Chromium itself logs "WebSocket connection to 'ws://…/ws/push'
failed: …" for every refused attempt.  That line comes from the browser's
network stack, not from the page's code, and JavaScript cannot suppress it (the
page handles the failure in its close handler and retries), so that test
tolerates exactly that message once the server has been stopped.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import ConsoleLog, MgpyProcess, screenshot

pytestmark = pytest.mark.browser

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 375, "height": 667},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
TIMEOUT_MS = 15_000
UNKNOWN = "\u2013"  # the en dash the page shows for a value it does not know

# Records what the page shows each time the counters, the chart or the link badge change.
# ``window.__mark`` is a phase number set by the test; each snapshot carries the phase it
# was taken in, so a test can ask for "samples shown after I made my requests".
RECORDER = """() => {
  const $ = (id) => document.getElementById(id);
  const num = (id) => {
    const v = Number($(id).textContent.replace(/,/g, ""));
    return Number.isFinite(v) ? v : null;
  };
  window.__mark = 0;
  window.__snaps = [];
  const snap = () => {
    const s = {
      state: $("ws-state").dataset.state,
      stale: $("stats").dataset.stale,
      samples: Number($("chart").dataset.samples),
      rps: num("stat-rps"),
      requests: num("stat-requests"),
      wsClients: num("stat-ws-clients"),
      uptime: $("stat-uptime").textContent,
    };
    const key = JSON.stringify(s);
    const last = window.__snaps[window.__snaps.length - 1];
    if (!last || last.key !== key) window.__snaps.push({ ...s, key, mark: window.__mark });
  };
  const mo = new MutationObserver(snap);
  mo.observe($("stats"), { subtree: true, childList: true, characterData: true, attributes: true });
  mo.observe($("chart"), { attributes: true, attributeFilter: ["data-samples"] });
  mo.observe($("ws-state"), { attributes: true, attributeFilter: ["data-state"] });
  snap();
}"""

# True once, since phase ``mark``, the chart has >= 2 samples and the uptime shown changed.
UPDATED_SINCE = """(mark) => {
  const snaps = window.__snaps.filter((s) => s.mark >= mark && s.state === "open");
  const uptimes = new Set(snaps.filter((s) => s.stale === "false").map((s) => s.uptime));
  const last = snaps[snaps.length - 1];
  return uptimes.size >= 2 && last !== undefined && last.samples >= 2;
}"""


def open_dashboard(ctx: BrowserContext, srv: MgpyProcess, console: ConsoleLog, label: str) -> Page:
    """Open the dashboard, wait for the live link and the first sample, install RECORDER."""
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console.attach(page, label)
    resp = page.goto(srv.url)
    assert resp is not None and resp.status == 200
    assert page.title() == "mgpy · device dashboard"
    page.wait_for_selector("#ws-state[data-state=open]")
    page.wait_for_selector("#stats[data-stale=false]", state="attached")
    page.evaluate(RECORDER)
    return page


def wait_js(page: Page, expr: str, arg: Any = None, timeout: float = TIMEOUT_MS) -> None:
    """Poll ``expr`` in the page every 100 ms until it is truthy; fail at the deadline."""
    page.wait_for_function(expr, arg=arg, timeout=timeout, polling=100)


def mark(page: Page, phase: int) -> None:
    """Start phase ``phase``: later snapshots are tagged with it."""
    page.evaluate("(m) => { window.__mark = m; }", phase)


def snaps(page: Page, since: int = 0) -> list[dict[str, Any]]:
    """The recorded snapshots of phase ``since`` and later."""
    out: list[dict[str, Any]] = page.evaluate(
        "(m) => window.__snaps.filter((s) => s.mark >= m)", since
    )
    return out


def text(page: Page, selector: str) -> str:
    """The text content of ``selector``."""
    return page.locator(selector).inner_text().strip()


def chart_pixels(page: Page) -> int:
    """How many canvas pixels have the requests/s line colour (the chart drew a series)."""
    n: int = page.evaluate(
        """() => {
      const canvas = document.getElementById("chart");
      const ctx = canvas.getContext("2d");
      const css = getComputedStyle(document.documentElement).getPropertyValue("--chart-rps").trim();
      ctx.fillStyle = css;
      const hex = String(ctx.fillStyle);
      const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        const close = Math.abs(d[i] - want[0]) + Math.abs(d[i + 1] - want[1])
          + Math.abs(d[i + 2] - want[2]) < 40;
        if (close && d[i + 3] > 200) n += 1;
      }
      return n;
    }"""
    )
    return n


@pytest.fixture
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(**DESKTOP)
    try:
        yield ctx
    finally:
        ctx.close()


def test_dashboard_loads_clean_and_counters_and_chart_follow_the_pushes(
    desktop: BrowserContext, mgpy_server: MgpyProcess, console: ConsoleLog
) -> None:
    page = open_dashboard(desktop, mgpy_server, console, "desktop")
    assert text(page, "#ws-state") == "live"
    assert page.locator("#ws-retry").is_hidden()
    assert page.locator("#chat-send").is_enabled()

    # Pushes arrive once a second: the chart grows and the uptime moves.
    wait_js(page, UPDATED_SINCE, 0)

    # Requests made by someone else show up in the counters within a sample or two.
    mark(page, 1)
    base = snaps(page)[-1]["requests"]
    assert isinstance(base, (int, float)) and base >= 4  # page, style.css, app.js, handshake
    for _ in range(20):
        with urllib.request.urlopen(mgpy_server.url + "favicon.svg", timeout=5) as r:
            assert r.status == 200 and r.read().startswith(b"<svg")
    wait_js(
        page,
        """([mark, want]) => {
          const s = window.__snaps.filter((x) => x.mark >= mark);
          return s.some((x) => x.requests >= want) && s.some((x) => x.rps >= 8);
        }""",
        [1, base + 20],
    )
    # 20 requests within a few ms: whichever way they fall across sample boundaries, one
    # one-second sample holds at least 10 of them.
    after = snaps(page, 1)
    assert max(s["requests"] for s in after) >= base + 20
    assert max(s["rps"] for s in after if s["rps"] is not None) >= 8
    assert after[-1]["wsClients"] == 1

    # Every counter shows a humanised value, none is left unknown.
    counters = ["connections", "ws-clients", "rps", "requests", "ws-mps", "ws-messages"]
    for sel in [f"#stat-{c}" for c in [*counters, "uptime", "started"]]:
        assert text(page, sel) not in ("", UNKNOWN), sel
    for sel in ("#stat-bytes-in", "#stat-bytes-out"):
        assert re.fullmatch(r"\d+ B|\d+(\.\d+)? [KMG]iB", text(page, sel)), text(page, sel)
    for sel in ("#stat-in-rate", "#stat-out-rate"):
        assert re.fullmatch(r"(\d+ B|\d+(\.\d+)? [KMG]iB)/s", text(page, sel)), text(page, sel)
    assert re.fullmatch(r"\d+s|\d+m \d\ds", text(page, "#stat-uptime"))
    assert int(page.locator("#chart").get_attribute("data-samples") or 0) >= 3
    assert chart_pixels(page) > 50, "the requests/s line is not drawn"

    screenshot(page, "dashboard-desktop")
    console.assert_clean()


def test_dashboard_fits_a_phone_in_light_and_dark(
    browser: Browser, mgpy_server: MgpyProcess, console: ConsoleLog
) -> None:
    ctx = browser.new_context(**PHONE)
    try:
        page = open_dashboard(ctx, mgpy_server, console, "phone")
        wait_js(page, UPDATED_SINCE, 0)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"
        assert page.locator("#chart").bounding_box() is not None
        assert chart_pixels(page) > 20
        screenshot(page, "dashboard-phone")

        page.emulate_media(color_scheme="dark")
        mark(page, 1)
        wait_js(page, UPDATED_SINCE, 1)  # redrawn with the dark palette and still updating
        screenshot(page, "dashboard-phone-dark")
    finally:
        ctx.close()
    console.assert_clean()


def chat_items(page: Page) -> list[dict[str, Any]]:
    """The chat log as the user sees it."""
    items: list[dict[str, Any]] = page.evaluate(
        """() => Array.from(document.querySelectorAll("#chat-log li.chat-msg"), (li) => ({
          name: li.querySelector(".chat-name").textContent,
          text: li.querySelector(".chat-text").textContent,
          mine: li.classList.contains("is-mine"),
          time: li.querySelector(".chat-time").textContent,
        }))"""
    )
    return items


SEES_TEXT = """(t) => Array.from(document.querySelectorAll("#chat-log .chat-text"))
  .some((e) => e.textContent === t)"""


def test_chat_message_typed_in_one_page_appears_in_another_as_text(
    browser: Browser, mgpy_server: MgpyProcess, console: ConsoleLog
) -> None:
    ctx_a = browser.new_context(**DESKTOP)
    ctx_b = browser.new_context(**DESKTOP)
    try:
        alice = open_dashboard(ctx_a, mgpy_server, console, "alice")
        bob = open_dashboard(ctx_b, mgpy_server, console, "bob")
        alice.fill("#chat-name", "alice")
        bob.fill("#chat-name", "bob")

        markup = (
            '<b>bold?</b> <img src=x onerror="window.__pwned=1"> '
            "<script>window.__pwned=2</script> & ünïcode ✓"
        )
        alice.fill("#chat-text", markup)
        alice.press("#chat-text", "Enter")
        wait_js(bob, SEES_TEXT, markup)
        wait_js(alice, SEES_TEXT, markup)
        assert alice.input_value("#chat-text") == ""

        bob.fill("#chat-text", "hi alice")
        bob.click("#chat-send")
        wait_js(alice, SEES_TEXT, "hi alice")
        wait_js(bob, SEES_TEXT, "hi alice")

        for page, me in ((alice, "alice"), (bob, "bob")):
            got = [(i["name"], i["text"], i["mine"]) for i in chat_items(page)]
            assert got == [
                ("alice", markup, me == "alice"),
                ("bob", "hi alice", me == "bob"),
            ], me
            assert all(re.fullmatch(r"\d\d:\d\d", i["time"]) for i in chat_items(page))
            # The markup stayed text: no element was made from it and nothing ran.
            assert page.locator("#chat-log b, #chat-log img, #chat-log script").count() == 0
            assert page.evaluate("() => window.__pwned") is None
            assert text(page, "#chat-status") == ""

        # The server counted both chat messages; the next sample shows it on both pages.
        for page in (alice, bob):
            wait_js(
                page, "() => Number(document.getElementById('stat-ws-messages').textContent) >= 2"
            )
        screenshot(alice, "chat-sender")
        screenshot(bob, "chat-receiver")
    finally:
        ctx_a.close()
        ctx_b.close()
    console.assert_clean()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_through_the_form_arrives_on_disk_intact(
    desktop: BrowserContext, mgpy_server: MgpyProcess, console: ConsoleLog, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    originals = {
        "random-3MiB.bin": os.urandom(3 * 1024 * 1024),
        "notes.txt": "héllo from the dashboard ✓\n".encode() * 40,
    }
    for name, data in originals.items():
        (src / name).write_bytes(data)

    page = open_dashboard(desktop, mgpy_server, console, "upload")
    assert page.locator("#upload-button").is_disabled()
    page.set_input_files("#upload-file", [str(src / n) for n in originals])
    assert text(page, "#upload-chosen") == "2 files · 3.00 MiB"
    page.click("#upload-button")
    try:
        page.wait_for_selector("#upload-result[data-state]", state="attached", timeout=30_000)
    except PlaywrightTimeoutError:
        shown = text(page, "#upload-result")
        pytest.fail(f"no answer to the upload within 30 s; the page shows {shown!r}")
    result = text(page, "#upload-result")
    assert page.get_attribute("#upload-result", "data-state") == "ok", result
    txt = len(originals["notes.txt"])
    assert result == f"Saved random-3MiB.bin (3.00 MiB), notes.txt ({txt / 1024:.2f} KiB)"
    assert page.eval_on_selector("#upload-progress", "(p) => p.value") == 100
    assert page.locator("#upload-cancel").is_hidden()

    # The next pushed sample counts the upload's bytes.
    wait_js(
        page,
        """() => {
          const m = /^([\\d.]+) MiB$/.exec(document.getElementById("stat-bytes-in").textContent);
          return m !== null && Number(m[1]) >= 3;
        }""",
    )

    saved = {p.name: p.read_bytes() for p in mgpy_server.upload_dir.iterdir()}
    assert sorted(saved) == sorted(originals)
    for name, data in originals.items():
        assert len(saved[name]) == len(data), name
        assert sha256(saved[name]) == sha256(data), name

    screenshot(page, "upload-done")
    console.assert_clean()


def test_page_reconnects_after_the_server_restarts(
    desktop: BrowserContext, mgpy_server: MgpyProcess, console: ConsoleLog
) -> None:
    page = open_dashboard(desktop, mgpy_server, console, "reconnect")
    wait_js(page, UPDATED_SINCE, 0)
    before = snaps(page)[-1]
    requests_before = before["requests"]

    # From here on Chromium's own "connection refused" log lines are expected (module doc).
    port = mgpy_server.port
    console.tolerate(rf"^WebSocket connection to 'ws://127\.0\.0\.1:{port}/ws/push' failed")
    mark(page, 1)
    mgpy_server.stop()
    page.wait_for_selector("#ws-state[data-state=closed]", timeout=10_000)
    assert page.get_attribute("#stats", "data-stale") == "true"
    assert page.locator("#chat-send").is_disabled()
    assert page.locator("#ws-retry").is_visible()
    # The page keeps trying while the server is down: closed -> connecting -> closed.
    wait_js(
        page,
        """() => window.__snaps.filter((s) => s.mark >= 1).map((s) => s.state).join(",")
            .replace(/(\\w+)(,\\1)+/g, "$1").includes("closed,connecting,closed")""",
        timeout=10_000,
    )
    assert re.fullmatch(r"reconnecting in \d+s", text(page, "#ws-state")), text(page, "#ws-state")
    screenshot(page, "reconnect-server-down")

    mark(page, 2)
    mgpy_server.restart()
    assert mgpy_server.port == port
    page.wait_for_selector("#ws-state[data-state=open]", timeout=30_000)
    page.wait_for_selector("#stats[data-stale=false]", state="attached", timeout=10_000)
    wait_js(page, UPDATED_SINCE, 2)  # counters resume
    now = snaps(page, 2)[-1]
    assert now["samples"] > before["samples"]  # the chart kept its history and grew
    assert now["requests"] < requests_before  # the counters are the new server's
    assert now["wsClients"] == 1
    assert page.locator("#chat-send").is_enabled()
    assert page.locator("#ws-retry").is_hidden()
    screenshot(page, "reconnect-back")

    console.assert_clean()
