"""The dashboard with `mgpy --mqtt`: a device publishing under sensors/ gets a line on
the device chart (real mosquitto_pub as the device, real Chromium), and the push
stream's compression shows on the page."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import ConsoleLog, MgpyProcess, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _publish(port: int, topic: str, value: str) -> None:
    subprocess.run(
        [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", value],
        check=True,
        timeout=10,
        capture_output=True,
    )


def test_device_values_appear_as_lines_on_the_dashboard(
    browser: Browser, tmp_path: Path, console: ConsoleLog
) -> None:
    mqtt_port = _free_port()
    srv = MgpyProcess(tmp_path / "uploads")
    srv.extra_args = ["--mqtt", f"127.0.0.1:{mqtt_port}"]
    srv.start()
    try:
        page = browser.new_page()
        console.attach(page, "dashboard")
        page.goto(srv.url)
        page.wait_for_function("document.getElementById('ws-state').dataset.state === 'open'")
        assert page.locator("#devices").is_hidden()  # nothing published yet
        deadline = time.monotonic() + 10
        while page.locator("#devices-legend li").count() < 2:
            assert time.monotonic() < deadline, "device lines did not appear"
            _publish(mqtt_port, "sensors/kitchen/temp", "21.5")
            _publish(mqtt_port, "sensors/garage/humidity", "48")
            _publish(mqtt_port, "other/ignored", "1")  # outside --mqtt-prefix
            page.wait_for_timeout(100)
        _publish(mqtt_port, "sensors/kitchen/temp", "22.25")
        kitchen = page.locator('#devices-legend li[data-topic="sensors/kitchen/temp"]')
        page.wait_for_function(
            """() => document.querySelector('#devices-legend li[data-topic="sensors/kitchen/temp"]')
                     ?.dataset.value === '22.25'"""
        )
        assert "22.3" in kitchen.inner_text() or "22.25" in kitchen.inner_text()
        assert page.locator('#devices-legend li[data-topic="other/ignored"]').count() == 0
        assert page.locator("#devices-chart").get_attribute("data-series") == "2"
        assert "sensors/garage/humidity 48" in page.locator("#devices-summary").inner_text()
        # the stats pushed once a second compress: the page says by how much
        page.wait_for_function(
            "document.getElementById('stat-push-ratio').textContent.includes('smaller')",
            timeout=10_000,
        )
        screenshot(page, "dashboard-mqtt")
        console.assert_clean()
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
        srv.kill()
