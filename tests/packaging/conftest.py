"""Helpers for the packaging tests: a clean copy of the source tree, pip, versions.

The builds run on a copy of the files git knows about (tracked, or new and not
ignored), never on the working tree itself: a ``build/`` left there by an earlier
build would otherwise leak stale modules into the wheel, and the tests must not
write into the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 300  # a cold pip cache downloads setuptools and brotli once


def source_files() -> list[str]:
    """The repository's files as a fresh clone (plus uncommitted work) would have them."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return [f for f in out.stdout.decode().split("\0") if f and os.path.lexists(ROOT / f)]


def copy_source(dest: Path) -> Path:
    """Copy the source tree into ``dest`` (symlinks kept as symlinks); return ``dest``."""
    for name in source_files():
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    return dest


def user_env() -> dict[str, str]:
    """This environment without what would make Python import from elsewhere than a venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def project_version() -> str:
    """The version declared in pyproject.toml (the only place it is written)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    assert m, "pyproject.toml declares a version"
    return m.group(1)


def pip(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip quietly; fail the test with pip's output on an error."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    env = user_env() if env is None else env  # what pip finds installed is the target's only
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout}\n{r.stderr}"
    return r
