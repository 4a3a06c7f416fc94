"""Timer handles: ``mgr.call_later`` / ``c.call_later`` and every deadline of the core.

Theory of operation.  The manager keeps one heap of ``(when, seq, handle)`` entries
(monotonic seconds).  A handle is the single owner of its deadline, ``handle.when``
(0 = not armed); ``handle._q`` is the deadline of the one heap entry it has queued
(0 = none).  So:

- ``reschedule`` to a *later* time is one assignment: the queued entry pops at the
  old time, sees ``when`` moved on and re-queues itself (the way a keep-alive deadline
  is pushed back on every request without touching the heap);
- ``reschedule`` to an *earlier* time queues a new entry; the old one is stale;
- ``cancel`` drops the deadline, the function and its arguments; its entry is stale
  and references nothing but the spent handle.

An entry is stale when ``handle._q`` no longer equals its time.  The manager counts
stale entries and rebuilds the heap when they are the majority, so cancelled work does
not pile up.  A handle owned by a connection is cancelled when the connection closes:
nothing in the heap keeps a closed connection (or its buffers) alive.

Deadlines must be finite numbers >= 0: ``nan`` would sit on top of the heap and stop
every timer, ``inf`` would never fire; both raise ``ValueError`` at the call.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Error

if TYPE_CHECKING:
    from .conn import Connection
    from .manager import Manager

__all__ = ["TimerHandle", "check_delay"]

_INF = math.inf


def check_delay(value: object, what: str = "delay") -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise.

    Raises ``TypeError`` for a non-number (``bool`` included) and ``ValueError`` for
    ``nan``, an infinity or a negative number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return v


class TimerHandle:
    """A scheduled call, returned by ``call_later``; ``cancel()`` it or ``reschedule()`` it.

    Example::

        h = c.call_later(30.0, on_idle, c)   # cancelled automatically if c closes first
        h.reschedule(30.0)                   # push it back (cheap: no heap operation)
        h.cancel()
    """

    __slots__ = ("_args", "_conn", "_fn", "_listed", "_mgr", "_q", "when")

    def __init__(
        self,
        mgr: Manager,
        conn: Connection | None,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self._mgr = mgr
        self._conn = conn
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        #: the monotonic deadline, 0 when not armed (fired, cancelled or never set)
        self.when = 0.0
        self._q = 0.0  # deadline of the heap entry this handle has queued, 0 = none
        self._listed = False  # in its connection's list of handles

    @property
    def active(self) -> bool:
        """True while the call is scheduled (not fired, not cancelled)."""
        return self.when > 0.0

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called (or the owning connection closed)."""
        return self._fn is None

    def cancel(self) -> None:
        """Do not run the call; the handle is spent (like asyncio's ``TimerHandle.cancel``).

        It drops its function and arguments at once, so nothing it referenced is kept
        alive by a stale heap entry.  A no-op if it was cancelled already.
        """
        if self._q:
            self._q = 0.0
            self._mgr._stale(1)
        self.when = 0.0
        self._fn = None
        self._args = ()
        c = self._conn
        self._conn = None
        if self._listed and c is not None:
            self._listed = False
            c._unlist(self)

    def retarget(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` instead when it fires; the deadline is kept.

        For a protocol handing its connection over to the next one (HTTP's deadline
        becomes WebSocket's keepalive on the 101): no new handle, no new heap entry.
        """
        if self._fn is None:
            raise Error("retarget() on a cancelled timer")
        self._fn = fn
        self._args = args

    def reschedule(self, delay: float) -> None:
        """Run the call ``delay`` seconds from now (re-arms a fired or cancelled handle).

        Raises ``ValueError``/``TypeError`` for a delay that is not a finite number >= 0,
        and ``mgpy.Error`` for a cancelled handle (its connection's close cancels it).
        """
        if delay.__class__ is not float or not 0.0 <= delay < _INF:
            delay = check_delay(delay)
        mgr = self._mgr
        # inside poll() the round's cached clock; between polls the real one
        when = (mgr.monotonic if mgr._polling else time.monotonic()) + delay
        q = self._q
        if q and q <= when:  # (a cancelled handle has no queued entry)
            self.when = when  # the queued entry pops first and re-queues itself: no heap work
            return
        self.arm_at(when)

    def arm_at(self, when: float) -> None:
        """Run the call at monotonic time ``when`` (``mgr.monotonic`` based)."""
        if self._fn is None:
            raise Error("the timer was cancelled (or its connection closed): call call_later again")
        self.when = when
        q = self._q
        if q:
            if q <= when:
                return  # the queued entry pops first and re-queues itself for ``when``
            self._mgr._stale(1)
        self._q = when
        mgr = self._mgr
        heapq.heappush(mgr._heap, (when, next(mgr._seq), self))
        c = self._conn
        if c is not None and not self._listed:
            self._listed = True
            c._list(self)

    def __repr__(self) -> str:
        state = f"at {self.when:.3f}" if self.when else "idle"
        return f"<TimerHandle {getattr(self._fn, '__name__', self._fn)!s} {state}>"
