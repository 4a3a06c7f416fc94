"""The README's quick start runs as written (port changed) and does what it says."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]


def quick_start_code() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S)
    assert m, "README has a Quick start python block"
    return m.group(1)


def test_quick_start_serves_files_echoes_and_pushes(tmp_path: Path) -> None:
    code = quick_start_code()
    assert "127.0.0.1:8000" in code
    code = code.replace("127.0.0.1:8000", "127.0.0.1:0").replace(
        "    lc.set_timer(time.time() + 1)\n",
        "    lc.set_timer(time.time() + 1)\n    print(lc.local[1], flush=True)\n",
    )
    (tmp_path / "web_root").mkdir()
    (tmp_path / "web_root" / "index.html").write_text("<h1>hello</h1>")
    script = tmp_path / "quick.py"
    script.write_text(code)
    p = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        port = int(p.stdout.readline())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"<h1>hello</h1>"
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
            ws.send("echo me")
            got = [ws.recv(timeout=5) for _ in range(2)]  # the echo and a pushed time
            assert "echo me" in got
            assert any(re.search(r"\d\d:\d\d:\d\d", g) for g in got if g != "echo me") or re.search(
                r"\d\d:\d\d:\d\d", str(ws.recv(timeout=5))
            )
    finally:
        p.terminate()
        p.wait(10)
