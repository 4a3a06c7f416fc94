"""Optional C accelerators, their pure-Python twins, and the switch that turns them off.

``mgpy._speedups`` (WebSocket masking, built from ``_speedups.c`` when a compiler is
present at install time) is loaded through ``load_speedups()`` only: every user of it
picks the pure-Python twin kept here (``apply_mask_py``) when this returns None.  Setting
``MGPY_NO_EXTENSIONS`` to a non-empty value other than ``"0"`` forces the pure-Python
paths, like ``AIOHTTP_NO_EXTENSIONS``, so the fallback a compiler-less install gets can
be tested as a whole.  The variable is read once, when a module asks at import time.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Final, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = ["NO_EXTENSIONS_ENV", "apply_mask_py", "extensions_disabled", "load_speedups"]

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
        # by name: a compiled module is no node of the import graph ``make lint`` checks,
        # and ``from . import _speedups`` would read as an import of the whole package
        return importlib.import_module("mgpy._speedups")
    except ImportError:  # no compiler at install time: stay pure Python
        return None


# -- the pure-Python twins ------------------------------------------------------
# WebSocket masking (RFC 6455 5.3), twin of _speedups.apply_mask.  Small payloads
# XOR as one big int (two conversions, no loop); larger ones use bytes.translate on
# the four byte lanes (a stride-4 slice per mask byte, each translated through a
# 256-byte XOR table), which beats the int conversions past ~512 bytes
# (bench/micro_ws.py measures both).

#: _XOR_TABLES[k] maps every byte b to b ^ k (built with one big-int XOR per table)
_XOR_TABLES: Final = [
    (int.from_bytes(bytes(range(256)), "big") ^ int.from_bytes(bytes((k,)) * 256, "big")).to_bytes(
        256, "big"
    )
    for k in range(256)
]
_INT_MASK_MAX: Final = 512


def apply_mask_py(data: Buffer, mask: Buffer) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` repeated (pure Python)."""
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    n = len(data)
    if n <= _INT_MASK_MAX:
        if not n:
            return b""
        pattern = (bytes(mask) * ((n >> 2) + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(pattern, "little")).to_bytes(
            n, "little"
        )
    out = bytearray(data)
    a, b, c, d = bytes(mask)
    t = _XOR_TABLES
    out[0::4] = out[0::4].translate(t[a])
    out[1::4] = out[1::4].translate(t[b])
    out[2::4] = out[2::4].translate(t[c])
    out[3::4] = out[3::4].translate(t[d])
    return bytes(out)
