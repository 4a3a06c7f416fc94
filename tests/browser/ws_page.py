"""A test page that talks WebSocket to the mgpy server it came from, in headless Chromium.

``PageServer`` writes the page as ``index.html`` into a directory, serves it with mgpy
(polled in a background thread) and hands every other event to ``ws_handler``;
``page_results`` opens the page and returns its ``window.results`` once the page saw
the WebSocket close (``window.results.closeCode`` set).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mgpy
from mgpy import Ev, Limits
from tests.ws_servers import MgpyThread

if TYPE_CHECKING:
    from playwright.sync_api import Browser


class PageServer(MgpyThread):
    """mgpy serving ``page`` at / from ``root``; WebSocket events go to ``ws_handler``."""

    def __init__(self, root: Path, page: str) -> None:
        (root / "index.html").write_text(page, encoding="utf-8")
        self.opts = mgpy.ServeOpts(document_root=str(root))
        super().__init__(Limits(ws_max_message=2 << 20))
        self.url = f"http://127.0.0.1:{self.port}/"

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            mgpy.serve_http(c, ev_data, self.opts)
        else:
            self.ws_handler(c, ev, ev_data)

    def ws_handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        raise NotImplementedError


def page_results(browser: Browser, url: str) -> Any:
    """Open ``url`` in a new page; return its ``window.results`` once its socket closed."""
    page = browser.new_page()
    try:
        page.goto(url, timeout=15000)
        page.wait_for_function("window.results.closeCode !== null", timeout=15000)
        return page.evaluate("window.results")
    finally:
        page.close()
