"""Worker processes sharing one listening port, and the supervisor that keeps them.

Theory of operation
-------------------
``run_workers(n, target, listen=ADDR)`` is the supervisor.  It first checks that
``ADDR`` is free and keeps a bound, not listening, ``SO_REUSEPORT`` socket on it for as
long as it runs: the port is reserved (port 0 is resolved once, so every worker gets
the same port) and another program cannot take it while a worker restarts.  Then it
forks ``n`` workers.  Each calls ``target(worker)`` in its own process, which makes its
own Manager and binds ``worker.listen`` with ``reuse_port=True``: the kernel spreads
new connections over the workers' listening sockets.  Nothing is shared but the port;
limits, counters and stats are per process (``worker.index`` tells which one served).

The supervisor holds SIGCHLD, SIGINT and SIGTERM blocked and waits for them with
``sigtimedwait`` (no handler runs at an awkward moment, no signal is lost):

* a worker that exits with status 0 was done: it is not restarted;
* status 2 means "cannot run at all" (a bad option, a busy port, as the CLI says it):
  the supervisor stops every worker and returns 2 rather than restarting forever;
* any other exit (a crash, SIGKILL, an exception) is restarted in the same slot after a
  backoff: ``min_restart_delay``, doubled for each crash in a row of a worker that ran
  less than ``healthy_after`` seconds, at most ``max_restart_delay``;
* SIGINT or SIGTERM is forwarded to every worker; the supervisor waits up to ``grace``
  seconds for them to close gracefully (``worker.run(mgr)`` returns from its loop and
  closes the Manager: WebSocket peers get 1001), then SIGKILLs what is left.

A worker whose supervisor dies gets SIGTERM (Linux ``PR_SET_PDEATHSIG``), so no orphan
keeps serving on the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .core import bind_error, parse_addr
from .errors import Error

if TYPE_CHECKING:
    from .core import Manager

__all__ = ["Worker", "current_worker", "run_workers"]

log = logging.getLogger("mgpy.workers")

_SIGNALS = {signal.SIGCHLD, signal.SIGINT, signal.SIGTERM}
#: exit status of a worker that cannot run at all (mirrors the CLI's usage errors)
EXIT_UNUSABLE = 2
_PR_SET_PDEATHSIG = 1


class Worker:
    """What a worker process knows about itself: given to ``target`` by ``run_workers``.

    ``index`` is the slot, 0 .. n-1, kept across restarts; ``count`` is n; ``start``
    counts the starts of this slot (1 the first time); ``listen`` is the address to bind
    with ``reuse_port=True`` (its port resolved by the supervisor); ``stopping`` turns
    True on SIGTERM/SIGINT.
    """

    def __init__(self, index: int, count: int, start: int, listen: str | None) -> None:
        self.index = index
        self.count = count
        self.start = start
        self.listen = listen
        self.pid = os.getpid()
        self.stopping = False
        self._mgrs: list[Manager] = []

    def __repr__(self) -> str:
        return f"<Worker {self.index}/{self.count} pid={self.pid} start={self.start}>"

    def stop(self) -> None:
        """Ask ``run`` to return (what SIGTERM and SIGINT do)."""
        self.stopping = True
        for m in self._mgrs:
            m.wakeup()

    def run(self, mgr: Manager, timeout_ms: float = 1000) -> None:
        """Poll ``mgr`` until the worker is asked to stop, then close it gracefully."""
        self._mgrs.append(mgr)
        try:
            while not self.stopping:
                mgr.poll(timeout_ms)
        finally:
            mgr.close()


_current: Worker | None = None


def current_worker() -> Worker | None:
    """This process' ``Worker`` when it runs under ``run_workers``, else None."""
    return _current


@dataclasses.dataclass
class _Slot:
    index: int
    pid: int = 0
    starts: int = 0
    started: float = 0.0
    crashes: int = 0  # in a row, each within healthy_after of its start
    due: float = 0.0  # when to start it again (0: not waiting)
    done: bool = False  # exited 0: not restarted


def _reserve(listen: str) -> tuple[socket.socket, str]:
    """Check that ``listen`` is free and hold it; return the socket and the address to bind."""
    a = parse_addr(listen, "tcp")
    if a.udp:
        raise Error(f"workers share TCP listeners, not {listen!r}")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise Error("worker processes need SO_REUSEPORT (Linux, BSD, macOS)")
    fam = a.numeric_family()
    if fam is None:
        try:
            info = socket.getaddrinfo(a.host, a.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise Error(f"cannot bind {listen}: cannot resolve {a.host!r}: {e.strerror}") from e
        fam, sa = info[0][0], info[0][4]
    else:
        sa = (a.host or "0.0.0.0", a.port)
    probe = socket.socket(fam, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(sa)  # without SO_REUSEPORT: fails if anybody listens there
        port = probe.getsockname()[1]
    except OSError as e:
        probe.close()
        raise bind_error(listen, e) from e
    probe.close()
    held = socket.socket(fam, socket.SOCK_STREAM)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((sa[0], port, *sa[2:]))
    except OSError as e:
        held.close()
        raise Error(f"cannot bind {listen}: {e.strerror or e}") from e
    return held, str(dataclasses.replace(a, port=port))


def run_workers(
    n: int,
    target: Callable[[Worker], int | None],
    *,
    listen: str | None = None,
    min_restart_delay: float = 0.1,
    max_restart_delay: float = 10.0,
    healthy_after: float = 5.0,
    grace: float = 10.0,
) -> int:
    """Run ``target(worker)`` in ``n`` processes, restart the ones that crash; return the
    exit status (0 after SIGINT/SIGTERM or when every worker finished, 2 when a worker
    could not run).  Call it from the main thread of a process that started no threads.

    Example::

        def serve(w: mgpy.Worker) -> None:
            mgr = mgpy.Manager()
            mgr.bind(w.listen, handler, reuse_port=True).set_protocol_http_websocket()
            w.run(mgr)            # until SIGTERM/SIGINT, then mgr.close()

        sys.exit(mgpy.run_workers(4, serve, listen="0.0.0.0:8000"))

    Raises:
        Error: ``listen`` is busy or not a TCP address; ``n`` < 1.
    """
    if n < 1:
        raise Error("run_workers needs at least one worker")
    held, addr = _reserve(listen) if listen is not None else (None, None)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    slots = [_Slot(i) for i in range(n)]
    sup = _Supervisor(slots, target, addr, old_mask, min_restart_delay, max_restart_delay)
    sup.held = held
    try:
        for s in slots:
            sup.spawn(s)
        return sup.loop(healthy_after, grace)
    finally:
        sup.kill_all()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if held is not None:
            held.close()


class _Supervisor:
    def __init__(
        self,
        slots: list[_Slot],
        target: Callable[[Worker], int | None],
        listen: str | None,
        old_mask: Any,
        min_delay: float,
        max_delay: float,
    ) -> None:
        self.slots = slots
        self.target = target
        self.listen = listen
        self.old_mask = old_mask
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.parent = os.getpid()
        self.held: socket.socket | None = None  # the port reservation (not for workers)

    def spawn(self, s: _Slot) -> None:
        s.starts += 1
        s.due = 0.0
        s.started = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self._child(s))  # never returns into the supervisor's code
        s.pid = pid
        log.info("worker %d started (pid %d)", s.index, pid)

    def _child(self, s: _Slot) -> int:
        global _current
        code = 1
        try:
            if self.held is not None:
                self.held.close()
            w = _current = Worker(s.index, len(self.slots), s.starts, self.listen)
            signal.signal(signal.SIGINT, lambda *a: w.stop())
            signal.signal(signal.SIGTERM, lambda *a: w.stop())
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
            _die_with_parent()
            if os.getppid() != self.parent:
                return 0  # the supervisor died before we could ask to follow it
            ret = self.target(w)
            code = 0 if ret is None else int(ret)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def loop(self, healthy_after: float, grace: float) -> int:
        status = 0
        stop_at = 0.0
        while True:
            live = [s for s in self.slots if s.pid]
            if stop_at and not live:
                return status
            if not stop_at and not live and all(s.done for s in self.slots):
                return 0
            now = time.monotonic()
            waits = [s.due - now for s in self.slots if s.due and not stop_at]
            if stop_at:
                waits.append(stop_at - now)
            timeout = max(0.0, min(waits)) if waits else 1.0
            info = signal.sigtimedwait(_SIGNALS, timeout)
            if info is not None and info.si_signo in (signal.SIGINT, signal.SIGTERM):
                if not stop_at:
                    stop_at = time.monotonic() + grace
                    self.signal_all(info.si_signo)
            if self.reap(healthy_after, bool(stop_at)) and not stop_at:
                status = EXIT_UNUSABLE
                stop_at = time.monotonic() + grace
                self.signal_all(signal.SIGTERM)
            now = time.monotonic()
            if stop_at and now >= stop_at:
                self.kill_all()
            elif not stop_at:
                for s in self.slots:
                    if s.due and s.due <= now:
                        self.spawn(s)

    def reap(self, healthy_after: float, stopping: bool) -> bool:
        """Collect exited workers and plan their restarts; True if one cannot run at all."""
        unusable = False
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return unusable
            if pid == 0:
                return unusable
            s = next((s for s in self.slots if s.pid == pid), None)
            if s is None:
                continue
            s.pid = 0
            code = os.waitstatus_to_exitcode(wstatus)
            if stopping:
                log.info("worker %d (pid %d) stopped (%s)", s.index, pid, _how(code))
                continue
            if code == 0:
                s.done = True
                log.info("worker %d (pid %d) finished", s.index, pid)
                continue
            if code == EXIT_UNUSABLE:
                log.error("worker %d (pid %d) cannot run (exit status 2); stopping", s.index, pid)
                unusable = True
                continue
            ran = time.monotonic() - s.started
            s.crashes = s.crashes + 1 if ran < healthy_after else 1
            delay = min(self.max_delay, self.min_delay * 2.0 ** (s.crashes - 1))
            s.due = time.monotonic() + delay
            log.warning(
                "worker %d (pid %d) %s; restarting in %.1f s", s.index, pid, _how(code), delay
            )

    def signal_all(self, sig: int) -> None:
        for s in self.slots:
            if s.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, sig)

    def kill_all(self) -> None:
        """SIGKILL what is left and reap it (the grace period is over)."""
        for s in self.slots:
            if s.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(s.pid, 0)
                log.warning("worker %d (pid %d) killed: no graceful exit in time", s.index, s.pid)
                s.pid = 0


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the supervisor dies (no orphan keeps the port)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
