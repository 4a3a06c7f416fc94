"""Fail if code outside ``mgpy/core`` reads a private member of the core.

The layering rule of docs/protocols.md: protocols (``mgpy/http``, ``mgpy/ws``, ...) and
the facade use only the public, documented interface of ``Connection``, ``Manager``,
``Mbuf`` and ``TimerHandle``.  This checker collects every underscored name those
classes define (slots, methods, attributes set in ``__init__``) and reports any
``<expr>._name`` outside ``mgpy/core`` (and outside the class's own module) that uses
one of them, plus any import of a private core module (``mgpy.core._consts``).
``self._x`` inside a class of the same module is the class's own business and allowed.

Usage: ``python tools/check_private.py [root]`` (exit status 1 when something is found).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE_CLASSES = {
    "mgpy/core/conn.py": ["Connection"],
    "mgpy/core/manager.py": ["Manager"],
    "mgpy/core/dial.py": ["Dialer"],
    "mgpy/core/accept.py": ["Acceptor"],
    "mgpy/core/schedule.py": ["Scheduler"],
    "mgpy/core/writer.py": ["Writer"],
    "mgpy/core/timers.py": ["TimerHandle"],
    "mgpy/mbuf.py": ["Mbuf"],
}
#: names every Python object has; never a finding
_DUNDER_OK = {"__class__", "__dict__", "__doc__", "__name__", "__slots__", "__weakref__"}


def private_names(root: Path) -> set[str]:
    """Underscored attribute names defined by the core classes."""
    names: set[str] = set()
    for rel, classes in CORE_CLASSES.items():
        tree = ast.parse((root / rel).read_text(), rel)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name in classes):
                continue
            for item in ast.walk(node):
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
                    if item.value.id == "self":
                        names.add(item.attr)
                elif isinstance(item, ast.Constant) and isinstance(item.value, str):
                    names.add(item.value)  # __slots__ entries
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def check(root: Path) -> list[str]:
    """Return the findings, one ``path:line: message`` string each."""
    private = private_names(root)
    found: list[str] = []
    for path in sorted((root / "mgpy").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("mgpy/core/") or rel in CORE_CLASSES:
            continue
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                found.append(f"{rel}:{node.lineno}: reads core private member {node.attr!r}")
            elif isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module
                if node.level:  # relative: resolve against the file's package
                    pkg = rel[: -len(".py")].split("/")[: -node.level]
                    mod = ".".join([*pkg, *mod.split(".")]) if mod else ".".join(pkg)
                parts = mod.split(".")
                if parts[:2] == ["mgpy", "core"] and any(p.startswith("_") for p in parts[2:]):
                    found.append(f"{rel}:{node.lineno}: imports private core module {mod}")
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = check(root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} use(s) of core internals outside mgpy/core (see docs/protocols.md)")
        return 1
    print("check_private: no module outside mgpy/core uses a private member of the core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
