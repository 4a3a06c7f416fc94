"""The architecture is checked, not just described (docs/protocols.md, DESIGN.md section 1).

import-linter's contracts (pyproject.toml) keep imports one-way and proto/ sans-IO; there
is no runtime import cycle; and no module outside mgpy/core uses a private member of the
core (tools/check_private.py), which this test also shows catching a violation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import check_private  # noqa: E402  (tools/ is not a package)


def test_import_linter_contracts_are_kept() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_no_runtime_import_cycle() -> None:
    graph = grimp.build_graph("mgpy", exclude_type_checking_imports=True)
    adj = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(adj.get(m, ())):
            if n not in adj:
                continue
            if state.get(n) == 1:
                cycles.append([*path[path.index(n) :], n])
            elif not state.get(n):
                visit(n, path)
        path.pop()
        state[m] = 2

    for m in sorted(adj):
        if not state.get(m):
            visit(m, [])
    assert cycles == []


def test_no_module_outside_core_uses_core_internals() -> None:
    assert check_private.check(ROOT) == []


def test_the_private_member_check_catches_a_violation(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "mgpy", tmp_path / "mgpy", ignore=shutil.ignore_patterns("*.so"))
    bad = tmp_path / "mgpy" / "http" / "sneaky.py"
    bad.write_text(
        "from mgpy.core._consts import _CLOSING\n"
        "def f(c):\n"
        "    return c._flags & _CLOSING or c.mgr._mono or c.recv_mbuf.buf\n"
    )
    found = check_private.check(tmp_path)
    assert any("sneaky.py:3" in f and "'_flags'" in f for f in found)
    assert any("sneaky.py:1" in f and "mgpy.core._consts" in f for f in found)
    assert not any("'buf'" in f for f in found)  # Mbuf.buf is public
