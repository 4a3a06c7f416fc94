"""Markers the sans-IO cores return instead of an event (shared, compared with ``is``)."""

from __future__ import annotations

from typing import Final


class Sentinel:
    """A named marker object; its repr is its name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: every core's ``next_event`` returns this when it cannot go on without more bytes
NEED_DATA: Final = Sentinel("NEED_DATA")
