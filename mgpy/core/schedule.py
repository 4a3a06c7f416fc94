"""The Manager's timers: one heap of TimerHandles, deferred calls, and the send watchdog.

``Scheduler`` is a base class of ``Manager`` (see ``timers.py`` for the handles and the
heap's theory of operation): ``call_later``/``call_soon`` for the application and the
protocols, the user's ``set_timer`` (``_fire_timer``), the ``send_timeout`` watchdog,
and running what is due in each poll round (``_run_timers``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ._consts import _CLOSE_IMMEDIATELY, _CONNECTING, _RESOLVING, _W, EV_TIMER
from .conn import Connection
from .timers import TimerHandle, check_delay

if TYPE_CHECKING:
    from ..events import Ev
    from .manager import Manager

__all__ = ["Scheduler"]

log = logging.getLogger("mgpy")

#: stale timer-heap entries tolerated before the heap is rebuilt without them
_HEAP_SLACK = 256
#: fired handles a connection keeps listed (its close releases them): a protocol's own
#: deadline handle (WebSocket's, HTTP's) holds (c, state) and is held by that state, a
#: reference cycle that would keep a closed connection until the cyclic GC; beyond this
#: many handles, fired ones are unlisted so one-shot call_later handles do not pile up
_KEEP_FIRED = 4


class Scheduler:
    """Timers and deferred calls (a base class of ``Manager``)."""

    if TYPE_CHECKING:  # provided by Manager
        monotonic: float
        _heap: list[tuple[float, int, TimerHandle]]
        _seq: itertools.count[int]
        _dead: int
        _soon: list[tuple[Callable[..., None], tuple[Any, ...]]]
        _polling: bool
        _stopping: bool
        _cur: Connection | None

        def _call(self, c: Connection, ev: Ev, data: Any) -> None: ...
        def _after(self, c: Connection) -> None: ...
        def _handler_raised(self, c: Connection, ev: Any) -> None: ...

    @property
    def stopping(self) -> bool:
        """True while ``close()`` runs: a CLOSE handler may still queue a goodbye.

        During ``Manager.close()`` what a CLOSE handler queues with ``send`` is written
        once, without blocking, before the socket closes (WebSocket 1001, MQTT DISCONNECT).
        """
        return self._stopping

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` on the loop thread after ``delay`` seconds; return its handle.

        Monotonic clock; ``handle.cancel()`` stops it.  Loop thread only (from other
        threads use ``broadcast`` or ``wakeup``).  An exception it raises is logged.
        """
        delay = check_delay(delay)
        h = TimerHandle(cast("Manager", self), None, fn, args)
        h.arm_at(self._now_mono() + delay)
        return h

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in this poll round, after the current I/O (loop thread only)."""
        self._soon.append((self._run_soon, (fn, args)))

    def _run_soon(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("deferred call %r raised", fn)

    def _run_for(self, c: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run deferred work of connection ``c`` (``c.call_soon``), then write/close."""
        if c._closed:
            return
        self._cur = c
        try:
            fn(*args)
        except Exception:
            self._handler_raised(c, None)
        self._after(c)

    def _now_mono(self) -> float:
        # inside poll() the round's cached clock; between polls the real one
        return self.monotonic if self._polling else time.monotonic()

    def _wall_to_mono(self, when: float) -> float:
        return when - time.time() + time.monotonic()

    def _stale(self, n: int) -> None:
        """``n`` heap entries became stale: rebuild the heap once they are the majority."""
        self._dead += n
        if self._dead > _HEAP_SLACK and 2 * self._dead > len(self._heap):
            self._compact_heap()

    def _compact_heap(self) -> None:
        """Rebuild the timer heap without stale entries (cancelled or moved deadlines).

        Entries are not removed when a deadline is cancelled or moved earlier, so under
        connection churn they would pile up; this keeps the heap proportional to live work.
        """
        keep = [e for e in self._heap if e[2]._q == e[0]]
        heapq.heapify(keep)
        self._heap[:] = keep  # in place: _run_timers may be iterating it
        self._dead = 0

    def _run_timers(self, mono: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= mono:
            q, _, h = heapq.heappop(heap)
            if h._q != q:
                if self._dead:
                    self._dead -= 1  # a stale entry left the heap
                continue
            h._q = 0.0
            when = h.when
            if when > q:  # pushed back since this entry was queued: queue the new time
                if when > mono:
                    h._q = when
                    heapq.heappush(heap, (when, next(self._seq), h))
                    continue
            h.when = 0.0
            fn = h._fn
            if fn is None:
                continue
            c = h._conn
            if c is None:
                try:
                    fn(*h._args)
                except Exception:
                    log.exception("timer call %r raised", fn)
                continue
            if h._listed:
                hs = c._handles
                if isinstance(hs, list) and len(hs) > _KEEP_FIRED:
                    h._listed = False  # many handles: let one-shot ones go
                    c._unlist(h)
            if c._closed:
                continue
            self._cur = c
            try:
                fn(*h._args)
            except Exception:
                self._handler_raised(c, None)
            self._after(c)

    def _fire_timer(self, c: Connection) -> None:
        """The user's ``set_timer`` deadline passed: deliver TIMER with it."""
        when = c._timer
        if not when:
            return
        c._timer = 0.0
        self._call(c, EV_TIMER, when)

    def _send_timed_out(self, c: Connection) -> None:
        """``send_timeout`` watchdog: fail a peer that took none of our data for too long."""
        if not c._mask & _W or c._flags & (_CONNECTING | _RESOLVING):
            return
        t = c.limits.send_timeout
        if self.monotonic - c._wprog >= t:
            c._error = f"send timed out: the peer took no data for {t:g}s"
            c._flags |= _CLOSE_IMMEDIATELY
        elif c._send_h is not None:
            c._send_h.arm_at(c._wprog + t)
