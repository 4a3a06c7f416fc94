"""The CLI's live push: /ws/push and /events on the pubsub hub, optionally across processes
and hosts through Redis (``--redis URL``).

Topics (docs/push_protocol.md):
  stats   one sample a second from *this* process (published locally: each worker pushes
          its own counters, so a page shows the worker that serves it)
  chat    every text message a /ws/push client sends, relayed as is to every /ws/push and
          /events client of every process bridged by Redis
  mqtt    the dashboard lines of --mqtt (local: the broker runs in this process)

/ws/push clients get the greeting (a stats sample with history) then the three topics as
WebSocket text messages.  /events clients get the same JSON as Server-Sent Events, named
by topic (``event: stats`` / ``chat`` / ``mqtt``); a reconnecting EventSource's
``Last-Event-ID`` replays the chat (and, without Redis, everything) it missed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import mgpy

from ..pubsub import Hub, sse_send, sse_start
from ..workers import Worker

if TYPE_CHECKING:
    import argparse

__all__ = ["TOPICS", "Push"]

log = logging.getLogger("mgpy.cli")

#: what a /ws/push or /events client is subscribed to
TOPICS = ("stats", "chat", "mqtt")
#: what an EventSource waits before reconnecting (ms)
SSE_RETRY_MS = 2000


class Push:
    """The hub of the CLI's server and what goes through it."""

    def __init__(self, mgr: mgpy.Manager, args: argparse.Namespace, worker: Worker | None):
        self.mgr = mgr
        self.worker = worker
        redis = getattr(args, "redis", None)
        prefix = getattr(args, "redis_prefix", "mgpy:")
        self.hub = Hub(mgr, redis, prefix=prefix)
        self.sse_clients = 0

    # -- clients ------------------------------------------------------------------
    def ws_client(self, c: mgpy.Connection, greeting: str) -> None:
        """A /ws/push WebSocket is open: greet it, then subscribe it."""
        c.send_websocket_frame(mgpy.WS_OP_TEXT, greeting)
        self.hub.subscribe(c, TOPICS)

    def sse_client(self, c: mgpy.Connection, hm: mgpy.HttpMessage, greeting: str) -> None:
        """GET /events: start the stream, greet it, replay what it missed, subscribe it."""
        if sse_start(c, hm, retry=SSE_RETRY_MS) is None:
            return  # HEAD: the head only
        sse_send(c, greeting, event="stats")
        self.hub.subscribe(c, TOPICS)

    # -- messages -------------------------------------------------------------------
    def chat(self, data: bytes) -> None:
        """A /ws/push client sent text: every /ws/push and /events client gets it."""
        try:
            self.hub.publish("chat", data, event="chat")
        except mgpy.LocalProtocolError as e:
            log.debug("chat message not relayed: %s", e)

    def local(self, topic: str, data: str) -> None:
        """Push this process' own data (stats, MQTT lines) to its own clients."""
        self.hub.publish(topic, data, event=topic, local=True)

    # -- stats ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The push fields of a stats sample: bytes before/after compression, the clients,
        the worker that serves, the Redis link."""
        cnt = self.mgr.counters
        out: dict[str, Any] = {
            # the push stream's bytes before and after permessage-deflate (ratio = raw/wire)
            "push_raw_bytes": cnt.get("pubsub.ws_raw_bytes", 0),
            "push_wire_bytes": cnt.get("ws.broadcast_wire", 0),
            "sse_clients": sum(1 for m in self.hub.members.values() if m.stream is not None),
            "worker": None,
            "redis": None,
        }
        w = self.worker
        if w is not None:
            out["worker"] = {"index": w.index, "count": w.count, "pid": w.pid}
        bridge = self.hub.bridge
        if bridge is not None:
            out["redis"] = {
                "url": str(bridge.url),
                "up": bridge.up,
                "not_crossed": cnt.get("pubsub.not_crossed", 0),
            }
        return out
