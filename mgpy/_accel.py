"""Optional C accelerators, and the switch that turns them off.

``mgpy._speedups`` (WebSocket masking, built from ``_speedups.c`` when a compiler is
present at install time) is loaded through ``load_speedups()`` only: every user of it
keeps a pure-Python twin and picks it when this returns None.  Setting
``MGPY_NO_EXTENSIONS`` to a non-empty value other than ``"0"`` forces the pure-Python
paths, like ``AIOHTTP_NO_EXTENSIONS``, so the fallback a compiler-less install gets can
be tested as a whole.  The variable is read once, when a module asks at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Final

__all__ = ["NO_EXTENSIONS_ENV", "extensions_disabled", "load_speedups"]

#: the environment variable that forces pure Python
NO_EXTENSIONS_ENV: Final = "MGPY_NO_EXTENSIONS"


def extensions_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """Return True when ``MGPY_NO_EXTENSIONS`` is set to anything but ``""`` or ``"0"``."""
    value = (os.environ if environ is None else environ).get(NO_EXTENSIONS_ENV, "")
    return value not in ("", "0")


def load_speedups() -> ModuleType | None:
    """Return ``mgpy._speedups``, or None when it is not built or extensions are disabled."""
    if extensions_disabled():
        return None
    try:
        from . import _speedups
    except ImportError:  # no compiler at install time: stay pure Python
        return None
    return _speedups
