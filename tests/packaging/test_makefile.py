"""``make run`` and ``make test`` on a machine that has only Python and make.

``make run`` sets up a venv holding mgpy and its runtime dependency only, no test tools
(on a small board playwright has no wheel at all); ``make test`` adds the test extra.
Both stop with the one-line fix when the interpreter cannot create a venv because
Debian's ``python3.X-venv`` (ensurepip) is missing; as root they first try to install
it with apt-get (``APT_GET`` points that at a stand-in here, so nothing is installed).
The missing ensurepip is simulated with a ``python3`` wrapper that puts a failing
``ensurepip`` module first on the path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.examples._proc import Proc
from tests.packaging.conftest import PIP_TIMEOUT, ROOT, copy_source, user_env


def make(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in user_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def python_without_ensurepip(tmp_path: Path) -> Path:
    mod = tmp_path / "shadow"
    mod.mkdir()
    (mod / "ensurepip.py").write_text('raise ImportError("no ensurepip (simulated)")\n')
    wrapper = tmp_path / "python3"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={mod} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize("target", ["run", "test"])
def test_missing_python3_venv_gets_the_one_line_fix(
    target: str, python_without_ensurepip: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    r = make(target, f"PYTHON={python_without_ensurepip}", f"VENV={venv}", "APT_GET=false")
    assert r.returncode != 0
    ver = "{}.{}".format(*sys.version_info[:2])
    fix = [line for line in r.stderr.splitlines() if "Fix:" in line]
    assert fix == [
        f"make: {python_without_ensurepip} cannot create a virtual environment (no ensurepip). "
        f"Fix: sudo apt-get install python{ver}-venv"
    ], r.stderr
    if os.geteuid() == 0:  # as root it tried apt-get first, and said so
        assert f"installing python{ver}-venv with apt-get" in r.stderr
    assert not venv.exists()  # no half-made venv left behind


def test_run_installs_the_runtime_dependency_only_and_test_adds_the_extra() -> None:
    run = make("-n", "run", "VENV=/nonexistent/venv")
    assert "pip --disable-pip-version-check install -q -e .\n" in run.stdout
    assert "[test]" not in run.stdout
    test = make("-n", "test", "VENV=/nonexistent/venv")
    assert "install -q -e '.[test]'" in test.stdout


@pytest.mark.slow
def test_make_run_on_a_fresh_clone_serves_and_its_venv_has_no_pytest(tmp_path: Path) -> None:
    clone = copy_source(tmp_path / "clone")
    setup = make(".venv/.installed-stamp", cwd=clone, timeout=PIP_TIMEOUT)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    py = clone / ".venv" / "bin" / "python"
    has = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(bool(u.find_spec('pytest')), "
         "bool(u.find_spec('playwright')), bool(u.find_spec('brotli')))"],
        capture_output=True, text=True, timeout=30, env=user_env(),
    )  # fmt: skip
    assert has.stdout.split() == ["False", "False", "True"], has.stderr
    srv = Proc(["make", "--no-print-directory", "run", "HOST=127.0.0.1", "PORT=0"],
               cwd=clone, env=user_env())  # fmt: skip
    try:
        url = srv.wait_for(r"^mgpy serving .*/web_root on (http://127\.0\.0\.1:\d+/) ").group(1)
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200 and b"<title>mgpy" in r.read()
        os.killpg(srv.p.pid, signal.SIGINT)  # Ctrl-C in the terminal: make and the server
        srv.wait(10)
        assert "mgpy: stopped." in srv.stdout() and "Traceback" not in srv.stderr(), srv.text()
    finally:
        srv.kill()
