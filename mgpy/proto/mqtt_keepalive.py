"""MQTT keepalive bookkeeping (MQTT 5.0 3.1.2.10, 3.12, 3.13), driven by the caller's clock.

Strategy: no clock is read here; every method takes ``now`` (monotonic seconds).  The
server side times out a client that sent nothing for one and a half keepalive periods
[MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24]).  The client side asks for a PINGREQ when it
has sent nothing for a keepalive period [MQTT-3.1.2-20] (3.1.1: [MQTT-3.1.2-23]) and
times out when the PINGRESP does not come within ``ping_timeout`` (3.1.2.10: "a
reasonable amount of time"; default one keepalive period, as paho-mqtt).  A keepalive
of 0 turns the mechanism off.  A 5.0 Server Keep Alive replaces the client's value
[MQTT-3.2.2-21]: call ``set_keepalive``.  ``next_deadline`` tells the caller when to
call ``poll`` again.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal

__all__ = ["Keepalive", "KeepaliveAction"]

#: [MQTT-3.1.2-22]: the server allows one and a half keepalive periods
SERVER_GRACE: Final = 1.5


class KeepaliveAction(Enum):
    """What ``Keepalive.poll`` asks the connection to do."""

    NONE = 0
    SEND_PINGREQ = 1  #: client: send a PINGREQ now (already counted as sent)
    TIMEOUT = 2  #: close the connection (5.0 server: DISCONNECT 0x8D Keep Alive timeout)


class Keepalive:
    """Keepalive deadlines of one connection.

    Example (client)::

        ka = Keepalive("client", 60, now)
        ka.sent(now)                                  # after every packet written
        ka.received(now, pingresp=True)               # after a PINGRESP is read
        if ka.poll(now) is KeepaliveAction.SEND_PINGREQ: send(PingReq().encode(v))
    """

    __slots__ = ("_last_recv", "_last_sent", "_ping_at", "keepalive", "ping_timeout", "side")

    def __init__(
        self,
        side: Literal["server", "client"],
        keepalive: float,
        now: float,
        ping_timeout: float | None = None,
    ) -> None:
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        self.side = side
        #: seconds; 0 = off
        self.keepalive = keepalive
        #: client: seconds to wait for the PINGRESP (None = one keepalive period)
        self.ping_timeout = ping_timeout
        self._last_recv = now
        self._last_sent = now
        self._ping_at: float | None = None

    def set_keepalive(self, keepalive: float, now: float) -> None:
        """Use a new keepalive from ``now`` on (5.0 Server Keep Alive, [MQTT-3.2.2-21])."""
        self.keepalive = keepalive
        self._last_recv = self._last_sent = now

    def received(self, now: float, pingresp: bool = False) -> None:
        """A control packet arrived (``pingresp``: it was a PINGRESP)."""
        self._last_recv = now
        if pingresp:
            self._ping_at = None

    def sent(self, now: float) -> None:
        """A control packet was written."""
        self._last_sent = now

    @property
    def awaiting_pingresp(self) -> bool:
        return self._ping_at is not None

    def _timeout(self) -> float:
        return self.keepalive if self.ping_timeout is None else self.ping_timeout

    def next_deadline(self) -> float | None:
        """When ``poll`` has something to do next (None: never)."""
        if not self.keepalive:
            return None
        if self.side == "server":
            return self._last_recv + SERVER_GRACE * self.keepalive
        if self._ping_at is not None:
            return self._ping_at + self._timeout()
        return self._last_sent + self.keepalive

    def poll(self, now: float) -> KeepaliveAction:
        """Return what is due at ``now``; SEND_PINGREQ also records the ping as sent."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return KeepaliveAction.NONE
        if self.side == "server" or self._ping_at is not None:
            return KeepaliveAction.TIMEOUT
        self._ping_at = now
        self._last_sent = now
        return KeepaliveAction.SEND_PINGREQ
