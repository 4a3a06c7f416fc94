"""Event numbers and flag bits as plain module constants, shared by the core modules.

``Ev.RECV`` is an attribute lookup on an enum class (~80 ns); these are module
globals, and the flag bits are plain ints so ``c._flags & _CLOSING`` stays at C speed.
"""

from __future__ import annotations

import selectors

from ..events import Ev, F

_R = selectors.EVENT_READ
_W = selectors.EVENT_WRITE

EV_POLL = Ev.POLL
EV_ACCEPT = Ev.ACCEPT
EV_CONNECT = Ev.CONNECT
EV_RECV = Ev.RECV
EV_SEND = Ev.SEND
EV_CLOSE = Ev.CLOSE
EV_TIMER = Ev.TIMER
EV_WRITABLE = Ev.WRITABLE
EV_ERROR = Ev.ERROR

_LISTENING = int(F.LISTENING)
_UDP = int(F.UDP)
_RESOLVING = int(F.RESOLVING)
_CONNECTING = int(F.CONNECTING)
_SSL = int(F.SSL)
_HANDSHAKE_DONE = int(F.SSL_HANDSHAKE_DONE)
_SSL_READY = _SSL | _HANDSHAKE_DONE
_SEND_AND_CLOSE = int(F.SEND_AND_CLOSE)
_CLOSE_IMMEDIATELY = int(F.CLOSE_IMMEDIATELY)
_CLOSING = _SEND_AND_CLOSE | _CLOSE_IMMEDIATELY

# Connection.shutdown_write() states
_SHUT_NONE = 0
_SHUT_PENDING = 1  # FIN once the send queue is empty
_SHUT_DONE = 2
