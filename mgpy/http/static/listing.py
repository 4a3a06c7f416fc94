"""Static files: the HTML directory listing (``ServeOpts.enable_directory_listing``).

Directories first, then files, each sorted by name; hidden names are left
out, and so are symlinks the server would refuse to follow (outside the root
unless ``allow_outside_symlinks``, or any symlink when ``follow_symlinks`` is
off).  Every name is escaped for
HTML and percent-encoded (from its raw bytes) for the href, so a file called
``<script>`` or ``a"b&c`` is shown as text and links to itself.  A listing is
capped at ``MAX_ENTRIES`` rows.
"""

from __future__ import annotations

import html
import os
import time
from urllib.parse import quote

from .fs import PROTECTED, Refused, Root

__all__ = ["MAX_ENTRIES", "render_listing"]

#: rows in one listing; a larger directory says how many were left out
MAX_ENTRIES = 10000

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}"
    "table{border-collapse:collapse}td,th{padding:.2em 1em;text-align:left}"
    "td.s{text-align:right;font-variant-numeric:tabular-nums}"
)


def _display(name: str) -> str:
    """Text for a name that may hold undecodable bytes (surrogate escapes)."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def render_listing(root: Root, real_dir: str, segs: list[str]) -> bytes:
    """Render the listing of ``real_dir`` (URL path ``segs``) as UTF-8 HTML."""
    rows: list[tuple[bool, str, int, float]] = []
    more = 0
    try:
        it = os.scandir(real_dir)
    except OSError as e:
        raise Refused(403, f"cannot list directory: {e.strerror}") from None
    with it:
        for de in it:
            name = de.name
            if root.is_hidden(name) or (PROTECTED and de.path in PROTECTED):
                continue
            try:
                if de.is_symlink():
                    if not root.follow_symlinks:
                        continue
                    root.check_real(os.path.join(real_dir, name))
                st = de.stat()
            except (OSError, Refused):
                continue
            if len(rows) >= MAX_ENTRIES:
                more += 1
                continue
            isdir = de.is_dir()
            rows.append((not isdir, name, -1 if isdir else st.st_size, st.st_mtime))
    rows.sort(key=lambda r: (r[0], os.fsencode(r[1])))
    path = "/" + "".join(s + "/" for s in segs)
    title = html.escape(_display(path))
    out = [
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">',
        f"<title>Index of {title}</title><style>{_STYLE}</style></head>\n",
        f"<body><h1>Index of {title}</h1>\n<table>\n",
        "<tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n",
    ]
    if segs:
        out.append('<tr><td><a href="../">../</a></td><td class="s">-</td><td></td></tr>\n')
    for isfile, name, size, mtime in rows:
        href = quote(os.fsencode(name), safe="!$&'()*+,;=:@~")
        text = html.escape(_display(name), quote=True)
        slash = "" if isfile else "/"
        shown = "-" if size < 0 else str(size)
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        out.append(
            f'<tr><td><a href="./{href}{slash}">{text}{slash}</a></td>'
            f'<td class="s">{shown}</td><td>{when}</td></tr>\n'
        )
    out.append("</table>\n")
    if more:
        out.append(f"<p>{more} more entries not shown.</p>\n")
    out.append("</body></html>\n")
    return "".join(out).encode("utf-8")
