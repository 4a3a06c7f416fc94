"""The optional hiredis accelerator behind ``RespReader``'s interface (``new_reader``).

Used only when asked for (``accelerated=True``), installed, and ``MGPY_NO_EXTENSIONS``
is unset: hiredis is faster on small replies but cannot keep the reader's element, depth
and reply limits (it allocates a declared aggregate up front), so the pure reader stays
the default.  See resp.py's module notes.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from .._accel import extensions_disabled
from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ._sentinel import NEED_DATA
from .resp import ReaderBase, RespError, RespLimits, RespReader

__all__ = ["HIREDIS_AVAILABLE", "HiredisReader", "new_reader"]

_hiredis: Any = None
if not extensions_disabled():  # MGPY_NO_EXTENSIONS forces pure Python (mgpy/_accel.py)
    try:
        _hiredis = importlib.import_module("hiredis")
    except ImportError:  # the optional accelerator is absent: pure Python only
        pass

HIREDIS_AVAILABLE: Final = _hiredis is not None


class _HiredisProtocolError(Exception):
    """What hiredis raises for bytes that are not RESP (turned into RemoteProtocolError)."""


class HiredisReader(ReaderBase):
    """``RespReader``'s interface on ``hiredis.Reader`` (see the module notes on its limits)."""

    __slots__ = ("_push_type", "_reader")

    def __init__(self, limits: RespLimits | None = None) -> None:
        if _hiredis is None:
            raise LocalProtocolError("hiredis is not installed")
        super().__init__(limits)
        self._reader = _hiredis.Reader(
            protocolError=_HiredisProtocolError, replyError=RespError, notEnoughData=NEED_DATA
        )
        self._push_type: type = _hiredis.PushNotification

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (copied into hiredis' buffer)."""
        if data:
            self._reader.feed(data)

    def next_event(self) -> object:
        """Return the next reply value or typed event, or ``NEED_DATA`` (see RespReader)."""
        if self._failed is not None:
            raise self._failed
        try:
            value = self._reader.gets()
        except _HiredisProtocolError as exc:
            self._failed = RemoteProtocolError(f"RESP: {exc}")
            raise self._failed from None
        except (TypeError, MemoryError) as exc:  # an unhashable map key; a huge declared count
            self._failed = RemoteProtocolError(f"RESP: {exc!r}")
            raise self._failed from None
        if value is NEED_DATA:
            # hiredis keeps an incomplete blob whole in its buffer: bound that
            if self._reader.len() > self.limits.max_bulk + self.limits.max_line:
                self._failed = LimitExceeded("RESP blob string longer than max_bulk")
                raise self._failed
            return value
        t = type(value)
        if t is self._push_type:
            try:
                return self._typed(list(value), True)
            except RemoteProtocolError as exc:
                self._failed = exc
                raise
        if t is list and self.pubsub and value:
            return self._typed(value, False)
        return value


def new_reader(
    limits: RespLimits | None = None, *, accelerated: bool = False
) -> RespReader | HiredisReader:
    """Return a reply reader: ``HiredisReader`` if ``accelerated`` and hiredis is installed."""
    if accelerated and HIREDIS_AVAILABLE:
        return HiredisReader(limits)
    return RespReader(limits)
