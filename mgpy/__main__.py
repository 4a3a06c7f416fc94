"""``python -m mgpy`` and the ``mgpy`` command: see ``mgpy.cli``."""

from __future__ import annotations

import sys

try:
    from mgpy.cli import Server, build_parser, main
except ImportError:
    import mgpy

    if getattr(mgpy, "__file__", None) is None:
        # ``python -m mgpy`` run next to a directory named mgpy/ without __init__.py (the
        # parent of a clone of the repository): Python took that directory for the package.
        where = ", ".join(getattr(mgpy, "__path__", [])) or "a directory named mgpy"
        sys.stderr.write(
            f"mgpy: error: Python imported {where} as the package 'mgpy' instead of the "
            "installed one (a directory named mgpy/ in the current directory hides it). "
            "Run the `mgpy` command, or `python -m mgpy` from another directory.\n"
        )
        sys.exit(2)
    raise

__all__ = ["Server", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m mgpy"))
