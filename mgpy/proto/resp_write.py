"""RESP command encoder: one command, or many pipelined into one write (RESP2 = RESP3 here).

Every argument becomes a blob string (``$<len>\r\n<bytes>\r\n``), the command an array
of them; ``str`` is sent as UTF-8, ``int``/``float`` as their decimal text.  A large
argument is not copied to join its header (the parts are joined once at the end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

from ..errors import LocalProtocolError

__all__ = ["Arg", "pack_command", "pack_pipeline"]

#: what a command argument may be
Arg: TypeAlias = "bytes | bytearray | memoryview | str | int | float"
_CRLF: Final = b"\r\n"
#: arguments from this size up are appended as their own part instead of formatted in
_BIG_ARG: Final = 1024


def _pack_into(parts: list[bytes], args: Sequence[Arg]) -> None:
    """Append one command, an array of blob strings, to ``parts``."""
    if not args:
        raise LocalProtocolError("a RESP command needs at least a name")
    parts.append(b"*%d\r\n" % len(args))
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bool):
            raise TypeError("RESP argument must be bytes, str, int or float, not bool")
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        elif isinstance(arg, (bytearray, memoryview)):
            data = bytes(arg)
        else:
            name = type(arg).__name__
            raise TypeError(f"RESP argument must be bytes, str, int or float, not {name}")
        if len(data) < _BIG_ARG:
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        else:
            parts.append(b"$%d\r\n" % len(data))
            parts.append(data)
            parts.append(_CRLF)


def pack_command(*args: Arg) -> bytes:
    """Encode one command: ``pack_command("SET", "key", 1)`` -> ``b"*3\\r\\n$3\\r\\nSET..."``.

    Raises:
        TypeError: an argument is not bytes-like, str, int or float (``bool`` is refused).
        LocalProtocolError: no argument.
    """
    parts: list[bytes] = []
    _pack_into(parts, args)
    return b"".join(parts)


def pack_pipeline(commands: Iterable[Sequence[Arg]]) -> bytes:
    """Encode many commands into one ``bytes`` to write at once (pipelining)."""
    parts: list[bytes] = []
    for args in commands:
        _pack_into(parts, args)
    return b"".join(parts)
