"""Run an example (or the CLI) as a user would: a subprocess, its output read by threads.

``Proc`` collects stdout and stderr line by line on two threads, so a test can wait for a
line with a deadline (never a sleep) and still see everything the process printed when an
assertion fails.  ``background=True`` starts it the way a non-interactive shell starts
``cmd &``: with SIGINT ignored, which Python keeps unless the program installs a handler.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Proc:
    """A subprocess whose output lines are collected; waits use deadlines."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        background: bool = False,
    ) -> None:
        cmd = list(args)
        if background:  # like `cmd &` in a script: SIGINT ignored from the start
            cmd = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *cmd]
        self.args = cmd
        self.p = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C in pytest's terminal is not sent to it
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                into.append(line)
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first stdout line matching ``pattern``; fail if the process exits first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = next(filter(None, map(rx.search, self.out)), None)
                if m is not None:
                    return m
                left = deadline - time.monotonic()
                if self.p.poll() is not None or left <= 0:
                    self.kill()
                    raise AssertionError(f"{pattern!r} not printed by {self.args}\n{self.text()}")
                self._cond.wait(min(left, 0.1))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` and return the exit status; fail if it does not exit in time."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"still running {timeout} s after {signal.Signals(sig).name}\n{self.text()}"
            ) from None
        self.join()
        return rc

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit by itself; return its status."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"did not exit within {timeout} s\n{self.text()}") from None
        self.join()
        return rc

    def join(self) -> None:
        for t in self._threads:
            t.join(5)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    def stdout(self) -> str:
        with self._cond:
            return "".join(self.out)

    def stderr(self) -> str:
        with self._cond:
            return "".join(self.err)

    def text(self) -> str:
        return f"--- stdout\n{self.stdout()}--- stderr\n{self.stderr()}"


def example(name: str, *args: str, **kw: object) -> Proc:
    """Start ``examples/<name>`` with this interpreter."""
    return Proc([sys.executable, str(EXAMPLES / name), *args], **kw)  # type: ignore[arg-type]
