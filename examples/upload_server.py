"""Upload files from a browser into a directory, with a progress bar.

``GET /`` is a page with a file form (several files at once) that posts to
``/upload`` over XMLHttpRequest and shows the upload progress; without
JavaScript the form still works.  ``POST /upload`` streams each file to disk
with ``mgpy.file_upload_handler``: names are sanitised, data goes to a hidden
temporary file renamed into place when the file is complete, and too large a
file is refused with 413.  The answer is JSON: ``{"ok":true,"files":[...]}``.

Try it:  python examples/upload_server.py --dir uploads --listen 127.0.0.1:8000
         curl -F file=@photo.jpg -F file=@notes.txt http://127.0.0.1:8000/upload
"""

from __future__ import annotations

import argparse
import html
import os
import signal
import sys
from typing import Any

import mgpy
from mgpy import Ev

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mgpy upload</title>
<style>body{{font:16px system-ui;margin:2em auto;max-width:40em}}progress{{width:100%}}</style>
</head><body>
<h1>Upload files</h1>
<form id="form" method="post" action="/upload" enctype="multipart/form-data">
  <input id="file" type="file" name="file" multiple required>
  <button id="send">Upload</button>
</form>
<p><progress id="progress" max="100" value="0"></progress></p>
<p id="result" role="status"></p>
<h2>In {dir}</h2>
<ul id="files">{files}</ul>
<script>
document.getElementById("form").addEventListener("submit", (ev) => {{
  ev.preventDefault();
  const xhr = new XMLHttpRequest(), bar = document.getElementById("progress");
  const result = document.getElementById("result");
  xhr.upload.onprogress = (e) => {{
    if (e.lengthComputable) bar.value = 100 * e.loaded / e.total;
  }};
  xhr.onload = () => {{
    let r = {{}};
    try {{ r = JSON.parse(xhr.responseText); }} catch (e) {{}}
    const saved = r.ok ? r.files.map((f) => f.name + " (" + f.size + " B)").join(", ") : "";
    result.textContent = r.ok ? "Saved " + saved
                              : "Failed (" + xhr.status + "): " + (r.error || xhr.statusText);
    if (r.ok) setTimeout(() => location.reload(), 800);
  }};
  xhr.onerror = () => {{ result.textContent = "Failed: the server could not be reached"; }};
  xhr.open("POST", "/upload");
  xhr.send(new FormData(ev.target));
}});
</script>
</body></html>
"""


def main() -> None:
    ap = argparse.ArgumentParser(description="Receive file uploads into a directory.")
    ap.add_argument("--listen", default="127.0.0.1:8000", help="address (default 127.0.0.1:8000)")
    ap.add_argument("--dir", default="uploads", help="where files are saved (default: uploads)")
    ap.add_argument(
        "--max-size", type=int, default=100 << 20, help="largest file in bytes (default 100 MiB)"
    )
    ap.add_argument(
        "--max-total",
        type=int,
        default=None,
        help="largest request (sum of its files) in bytes (default: no limit)",
    )
    args = ap.parse_args()
    updir = os.path.abspath(args.dir)
    os.makedirs(updir, exist_ok=True)

    def name_fn(c: mgpy.Connection, name: str) -> str | None:
        # ``name`` is already a safe base name (no directories, no leading dot);
        # return None here to refuse a file (403)
        return os.path.join(updir, name)

    upload = mgpy.file_upload_handler(name_fn, args.max_size, args.max_total)

    def handler(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if ev_data.uri != "/":
                mgpy.http_send_error(c, 404)
                return
            names = sorted(n for n in os.listdir(updir) if not n.startswith("."))
            files = "".join(f"<li>{html.escape(n)}</li>" for n in names) or "<li>(none)</li>"
            page = PAGE.format(dir=html.escape(updir), files=files)
            mgpy.http_reply(c, 200, page, {"Content-Type": "text/html; charset=utf-8"})

    with mgpy.Manager() as mgr:
        try:
            lc = mgr.bind(args.listen, handler)
        except mgpy.Error as e:
            sys.exit(f"upload_server: {e}")
        mgpy.register_http_endpoint(lc, "/upload", upload)
        stop: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            stop.append(signum)  # leave the loop below; the `with` then closes every connection
            mgr.wakeup()  # now, not when poll() times out

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when started in the background
        signal.signal(signal.SIGTERM, on_signal)  # kill, systemd, docker stop
        print(f"upload server on http://{lc.local[0]}:{lc.local[1]}/ saving to {updir}", flush=True)
        while not stop:
            mgr.poll(1000)


if __name__ == "__main__":
    main()
