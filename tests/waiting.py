"""Waiting for what a test cannot be told about: poll a condition until a deadline.

A test that runs an mgpy Manager itself waits with ``tests.conftest.run_until`` (the
Manager's own poll is the wait).  What is left is state that no event announces to the
test: a thread's progress, another process's output file or /proc entry, a port another
process binds.  Those are polled here, every ``interval`` seconds, and the wait fails at
its deadline naming what did not happen.  This module is the only place a test pauses.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ["wait_listening", "wait_until"]


def wait_until(
    cond: Callable[[], object],
    timeout: float,
    what: str = "condition",
    interval: float = 0.01,
) -> None:
    """Return once ``cond()`` is true; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)  # the poll interval of a condition nothing announces


def wait_listening(
    port: int,
    timeout: float,
    proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    what: str = "the server",
) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:``port``.

    ``proc``: the process expected to listen; its exit fails the wait at once.
    """

    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        except OSError:
            return False
        return True

    wait_until(up, timeout, f"{what} listening on 127.0.0.1:{port}", interval=0.02)
