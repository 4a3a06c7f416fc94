"""mgpy as a user gets it from a package index: a wheel and an sdist, installed outside
the repository.

The wheel is built with ``pip wheel . --no-deps`` from a clean copy of the tree and
installed into an empty venv (brotli, the one dependency, comes from the package
index or pip's cache).  From there: ``mgpy --version`` names the version written in
pyproject.toml, and ``mgpy`` started in an empty directory serves the dashboard that
ships inside the package, with live stats on ``/ws/push``.  The sdist carries the
library, the C source and the dashboard and no tests (see MANIFEST.in), and a wheel
built from it ships the dashboard too, with or without a C compiler.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.examples._proc import Proc
from tests.packaging.conftest import (
    PIP_TIMEOUT,
    ROOT,
    copy_source,
    pip,
    project_version,
    user_env,
)

pytestmark = pytest.mark.slow

DASHBOARD = ["index.html", "app.js", "style.css", "favicon.svg"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = copy_source(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheels")
    pip("wheel", ".", "--no-deps", "-w", str(out), cwd=src)
    (whl,) = out.glob("mgpy_net-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv (no pip of its own) with the wheel installed by this pip."""
    v = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(v)], check=True, timeout=60)
    pip("--python", str(v / "bin" / "python"), "install", str(wheel))
    return v


def test_wheel_ships_the_package_the_dashboard_and_no_tests(wheel: Path) -> None:
    version = project_version()
    assert wheel.name.startswith(f"mgpy_net-{version}-")
    names = zipfile.ZipFile(wheel).namelist()
    for f in DASHBOARD:
        assert f"mgpy/web_root/{f}" in names
        shipped = zipfile.ZipFile(wheel).read(f"mgpy/web_root/{f}")
        assert shipped == (ROOT / "mgpy" / "web_root" / f).read_bytes()
    assert "mgpy/__main__.py" in names and "mgpy/py.typed" in names
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".c")]
    meta = zipfile.ZipFile(wheel).read(f"mgpy_net-{version}.dist-info/METADATA").decode()
    assert "Name: mgpy-net" in meta and "Requires-Dist: brotli" in meta
    assert "Requires-Python: >=3.10" in meta
    assert "Classifier: Operating System :: POSIX :: Linux" in meta
    entry_points = zipfile.ZipFile(wheel).read(f"mgpy_net-{version}.dist-info/entry_points.txt")
    assert b"mgpy = mgpy.__main__:main" in entry_points


def test_installed_command_reports_the_version(venv: Path) -> None:
    env = user_env()
    out = subprocess.run(
        [str(venv / "bin" / "mgpy"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 0 and out.stdout == f"mgpy {project_version()}\n"
    usage = subprocess.run(
        [str(venv / "bin" / "mgpy"), "--help"], capture_output=True, text=True, timeout=30, env=env
    )
    assert usage.stdout.startswith("usage: mgpy ")
    code = "import importlib.metadata as m, mgpy._version as v\n"
    code += "print(m.version('mgpy-net'), v.__version__)"
    meta = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert meta.stdout.split() == [project_version()] * 2, meta.stderr


def test_installed_command_serves_the_dashboard_with_live_push(venv: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    srv = Proc(
        [str(venv / "bin" / "mgpy"), "--listen", "127.0.0.1:0", "--log-level", "warning"],
        cwd=empty,
        env=user_env(),
    )
    try:
        m = srv.wait_for(r"^mgpy serving the dashboard \((.+)\) on (http://127\.0\.0\.1:(\d+)/) ")
        assert Path(m.group(1)).is_relative_to(venv)  # the copy inside the installed package
        url, port = m.group(2), int(m.group(3))
        for name in DASHBOARD:
            with urllib.request.urlopen(url + name, timeout=5) as r:
                assert r.status == 200
                assert r.read() == (ROOT / "mgpy" / "web_root" / name).read_bytes(), name
        with connect(f"ws://127.0.0.1:{port}/ws/push", open_timeout=5, close_timeout=2) as ws:
            first = json.loads(ws.recv(timeout=5))
            assert first["type"] == "stats" and first["ws_clients"] == 1
            assert first["version"] == project_version()
            assert first["upload"]["enabled"] is False  # no --upload-dir given
            assert isinstance(first["history"], list)
            start = time.monotonic()
            second = json.loads(ws.recv(timeout=5))  # pushed by the once-a-second timer
            assert second["type"] == "stats" and second["time"] > first["time"]
            assert time.monotonic() - start < 3
        assert list(empty.iterdir()) == []  # it wrote nothing where it was started
        assert srv.stop(signal.SIGTERM) == 0 and "mgpy: stopped." in srv.stdout()
        assert "Traceback" not in srv.stderr()
    finally:
        srv.kill()


def test_sdist_carries_the_library_and_no_tests(tmp_path: Path) -> None:
    src = copy_source(tmp_path / "src")
    out = tmp_path / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(out), str(src)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (sdist,) = out.glob("mgpy_net-*.tar.gz")
    top = f"mgpy_net-{project_version()}"
    with tarfile.open(sdist) as tf:
        names = {n.removeprefix(top + "/") for n in tf.getnames()}
        pkg_info = tf.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        meta = pkg_info.read().decode()
    wanted = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "setup.py"]
    wanted += ["mgpy/_speedups.c", "mgpy/py.typed", *(f"mgpy/web_root/{n}" for n in DASHBOARD)]
    for f in wanted:
        assert f in names, f
    assert not [n for n in names if n.startswith("tests")], "tests in the sdist"
    assert "Name: mgpy-net" in meta
    # A wheel built from the sdist (what pip does on a machine without a matching wheel)
    # still ships the dashboard.
    pip("wheel", str(sdist), "--no-deps", "-w", str(out))
    (whl,) = out.glob("mgpy_net-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert {f"mgpy/web_root/{n}" for n in DASHBOARD} <= names
    # Without a C compiler the build still succeeds: the optional extension is left out
    # and mgpy runs its pure-Python code.
    nocc = tmp_path / "nocc"
    pip("wheel", str(sdist), "--no-deps", "-w", str(nocc), env={**user_env(), "CC": "false"})
    (whl,) = nocc.glob("mgpy_net-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert not [n for n in names if n.startswith("mgpy/_speedups") and n.endswith(".so")]
    assert {"mgpy/__init__.py", *(f"mgpy/web_root/{n}" for n in DASHBOARD)} <= names
