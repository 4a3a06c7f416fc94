"""Fixtures for driving the real dashboard: Debian's Chromium, a ``python -m mgpy`` process.

Strategy: the browser tests exercise the product exactly as a newcomer meets it, so
the server is the CLI started as a subprocess (``python -m mgpy --root web_root``)
with a temporary ``--upload-dir``, and the browser is the system's Chromium driven
by Playwright through ``executable_path`` (Playwright never downloads a browser
here).  The server listens on port 0; the port is read from the URL line the CLI
prints, and ``restart()`` brings it back on that same port so that an open page
can reconnect.  Console messages and uncaught page errors of every page opened
through ``open_page`` are recorded by ``ConsoleLog`` so a test can assert that
the dashboard logged nothing.  Screenshots go to ``test-artifacts/`` at the repo
root (git-ignored) so that a person can look at them after the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Response

REPO = Path(__file__).resolve().parents[2]
WEB_ROOT = REPO / "web_root"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL_LINE = re.compile(r" on (http://127\.0\.0\.1:(\d+)/) ")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class MgpyProcess:
    """``python -m mgpy`` serving web_root on 127.0.0.1, with uploads saved in ``upload_dir``."""

    def __init__(self, upload_dir: Path) -> None:
        self.upload_dir = upload_dir
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []  # everything the current process printed
        self.extra_args: list[str] = []  # more command-line options (e.g. --mqtt ADDR)
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the server (on the previous port if there was one) and wait for its URL line."""
        assert self.proc is None, "already running"
        self.lines = []
        cmd = [
            sys.executable, "-m", "mgpy",
            "--root", str(WEB_ROOT),
            "--listen", f"127.0.0.1:{self.port}",
            "--upload-dir", str(self.upload_dir),
            "--log-level", "warning",
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a Ctrl-C in pytest's terminal is not sent to it
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while True:
                m = next(filter(None, map(URL_LINE.search, self.lines)), None)
                if m:
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out = "".join(self.lines)
                    self.kill()
                    pytest.fail(f"python -m mgpy did not start: {cmd}\n{out}")
                self._cond.wait(0.1)
        self.url, port = m.group(1), int(m.group(2))
        assert self.port in (0, port), f"restarted on port {port}, not {self.port}"
        self.port = port

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def stop(self) -> str:
        """Stop the server with SIGINT, like Ctrl-C; return what it printed."""
        proc = self.proc
        assert proc is not None, "not running"
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"mgpy did not stop within {STOP_TIMEOUT}s of SIGINT")
        self.proc = None
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)  # it has read everything up to EOF
        out = "".join(self.lines)
        assert rc == 0 and "mgpy: stopped." in out, f"unclean stop (exit {rc}):\n{out}"
        return out

    def restart(self) -> None:
        """Start again on the same port."""
        self.start()

    def kill(self) -> None:
        """Kill the process if it is still running (cleanup after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None


class ConsoleLog:
    """Console errors, uncaught exceptions and HTTP errors of every page attached to it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.tolerated: list[str] = []
        self._tolerate: re.Pattern[str] | None = None

    def attach(self, page: Page, label: str) -> None:
        """Record ``page``'s console errors and page errors under ``label``."""
        page.on("console", lambda msg: self._on_console(label, msg))
        page.on("pageerror", lambda exc: self._on_pageerror(label, exc))
        page.on("response", lambda r: self._on_response(label, r))

    def tolerate(self, pattern: str) -> None:
        """From now on, count console errors matching ``pattern`` as expected."""
        self._tolerate = re.compile(pattern)

    def _on_console(self, label: str, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        line = f"{label}: console.error: {msg.text} ({msg.location.get('url', '')})"
        if self._tolerate is not None and self._tolerate.search(msg.text):
            self.tolerated.append(line)
        else:
            self.errors.append(line)

    def _on_response(self, label: str, resp: Response) -> None:
        if resp.status >= 400:
            self.errors.append(f"{label}: HTTP {resp.status} for {resp.url}")

    def _on_pageerror(self, label: str, exc: Error) -> None:
        self.errors.append(f"{label}: uncaught: {exc.name}: {exc.message}\n{exc.stack}")

    def assert_clean(self) -> None:
        """Fail if any page logged an error that was not expected."""
        assert self.errors == [], "the dashboard logged errors:\n" + "\n".join(self.errors)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (never a Playwright-downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package. "
            "Run `make test` (it runs tools/sysdeps.sh) or `sudo apt-get install chromium`.",
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def mgpy_server(tmp_path: Path) -> Iterator[MgpyProcess]:
    """A running ``python -m mgpy --root web_root`` with uploads in a temp directory."""
    upload_dir = tmp_path / "uploads"
    srv = MgpyProcess(upload_dir)
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
        srv.kill()


@pytest.fixture
def console() -> ConsoleLog:
    """Where the pages of one test report their console errors."""
    return ConsoleLog()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save ``page`` as ``test-artifacts/<name>.png`` and return the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if full_page:
        # A full-page capture of a scrolled page paints the sticky header at the scroll
        # offset, in the middle of the picture; show the page as it is first seen.
        page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    assert path.stat().st_size > 0
    return path
