"""The exception tree.  Everything mgpy raises is an ``mgpy.Error``.

Protocol cores raise ``RemoteProtocolError`` when the peer breaks the protocol;
the I/O layer turns it into the HTTP status or WebSocket close code it carries,
then closes the connection.  The text is for logs only and is never echoed to
the peer.  ``LocalProtocolError`` means the application misused the API (for
example a CR in a header value it asked to send).
"""

from __future__ import annotations

__all__ = [
    "Error",
    "LimitExceeded",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class Error(Exception):
    """Base class of every exception mgpy raises."""


class ProtocolError(Error):
    """A protocol rule was broken.

    ``status`` is the HTTP status to answer with (400 by default) and
    ``ws_code`` the WebSocket close code (1002 by default).
    """

    def __init__(self, msg: str, status: int = 400, ws_code: int = 1002) -> None:
        super().__init__(msg)
        self.status = status
        self.ws_code = ws_code


class LocalProtocolError(ProtocolError):
    """The application asked for something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""


class LimitExceeded(RemoteProtocolError):
    """The peer exceeded a configured limit (413/414/431, close code 1009)."""

    def __init__(self, msg: str, status: int = 413, ws_code: int = 1009) -> None:
        super().__init__(msg, status, ws_code)
