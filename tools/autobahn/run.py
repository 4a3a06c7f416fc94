#!/usr/bin/env python3
"""Run the Autobahn|Testsuite WebSocket conformance cases against a server or a client.

Strategy: wstest (Python 2.7, tools/autobahn/.venv27, made by setup.sh) is only ever
started through wstest_local.py, which binds every listener to 127.0.0.1. This script
(Python 3, stdlib only) owns every process of a run and the run's time budget:

  server mode  pick a free port, start `--cmd` (the server under test, `{port}`
               substituted), wait until the port accepts connections, run
               `wstest -m fuzzingclient` with a generated spec, stop the server.
  client mode  pick a free port, start `wstest -m fuzzingserver` there (check in
               /proc/net/tcp that it listens on loopback only), run `--cmd` (the client
               under test, `{url}` and `{agent}` substituted) until it exits, ask the
               fuzzing server for its reports if the client did not, stop the server.

Reports go to tools/autobahn/reports/<mode>/ (emptied first): wstest's index.html,
index.json and per-case files, the spec, wstest.log and testee.log, and summary.md.
summary.py turns index.json into the verdict: exit 1 when a case FAILED (or its close
was FAILED/UNCLEAN) or is missing, or the run timed out; 2 on usage/setup errors (no
.venv27, a server that never listens); 130 when interrupted.

Every child leads a session and process group of its own and is stopped as a whole
(SIGTERM, then SIGKILL) whatever ends the run: success, failure, timeout, Ctrl-C,
SIGTERM/SIGHUP. On Linux it also gets PR_SET_PDEATHSIG, so it dies with this script even
if this script is SIGKILLed. The whole run is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import SummaryError, expected_cases, summarize

HERE = Path(__file__).resolve().parent
VENV27_PY = HERE / ".venv27" / "bin" / "python"
WRAPPER = HERE / "wstest_local.py"
REPORTS = HERE / "reports"
HOST = "127.0.0.1"

PROGRESS_EVERY = 10.0  # seconds between progress lines
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
AGENT_RE = re.compile(r"^[A-Za-z0-9._-]+$")


class RunError(Exception):
    """A run could not be carried out (setup missing, peer did not start, timeout...)."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP received: unwind like Ctrl-C so every child is stopped."""


# --- time budget and processes -------------------------------------------------------


class Deadline:
    """The whole-run time budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds remaining (never negative)."""
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """True once the budget is spent."""
        return self.left() <= 0.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if run.py dies (Linux prctl)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


# Characters that need /bin/sh; commands without them are exec'd directly, so that
# PR_SET_PDEATHSIG lands on the peer itself rather than on an intermediate shell.
SHELL_CHARS = frozenset(";&|<>()$`*?[]#~\n")


def _argv_if_simple(cmd: str) -> list[str] | None:
    """`cmd` as an argv when no shell feature is needed, else None."""
    if SHELL_CHARS & set(cmd):
        return None
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return None
    if not argv or "=" in argv[0]:  # VAR=value prefix: leave it to the shell
        return None
    return argv


class Children:
    """Every process this run started; each leads its own session and process group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: str | Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        """Start `cmd` (a command line or an argv) with its output appended to `log`."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = _argv_if_simple(cmd) if isinstance(cmd, str) else list(cmd)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv if argv is not None else cmd,
                shell=argv is None,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop `proc` and everything it started: SIGTERM, then SIGKILL after a grace period.

        start_new_session makes the child the leader of a new session and process group,
        both numbered with its pid. Signals go to that group and, where /proc is readable,
        to every live member of that session (which also catches descendants that moved
        to a group of their own, like `timeout`). A session id cannot be reused while any
        process is still in the session, so nothing else can be hit.
        """
        sid = proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None and not _session_alive(sid):
                break
            _signal_session(sid, sig)
            end = time.monotonic() + STOP_GRACE
            while time.monotonic() < end:
                if proc.poll() is not None and not _session_alive(sid):
                    break
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)

    def stop_all(self) -> None:
        """Stop every process started, newest first."""
        while self.procs:
            self.stop(self.procs.pop())


def _session_members(sid: int) -> list[int] | None:
    """Pids of live (non-zombie) processes in session `sid`, None without /proc."""
    proc_dir = Path("/proc")
    if not (proc_dir / "self" / "stat").exists():
        return None
    pids: list[int] = []
    for d in proc_dir.iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "pid (comm)": state ppid pgrp session ...
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(d.name))
    return pids


def _signal_session(sid: int, sig: int) -> None:
    """Send `sig` to process group `sid` and to every member of session `sid`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    for pid in _session_members(sid) or []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _session_alive(sid: int) -> bool:
    """True while any process remains in session (or, without /proc, group) `sid`."""
    members = _session_members(sid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(sid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


# --- sockets -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path
) -> None:
    """Poll until 127.0.0.1:`port` accepts a connection; fail if `proc` exits first."""
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RunError(
                f"{what} exited with status {proc.returncode} before accepting connections "
                f"on {HOST}:{port}\n{tail(log)}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= end:
            raise RunError(f"{what} did not accept connections on {HOST}:{port} "
                           f"within {timeout:.0f} s\n{tail(log)}")
        time.sleep(0.05)


def listening_addresses(port: int) -> list[str] | None:
    """Local addresses with a TCP listener on `port` (from /proc/net), None if unknown."""
    found: list[str] = []
    seen_any = False
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        seen_any = True
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A = TCP_LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)  # host-order 32-bit words
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, raw))
    return found if seen_any else None


def is_loopback(addr: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and v4-mapped loopback)."""
    return addr.startswith("127.") or addr == "::1" or addr.startswith("::ffff:127.")


def ws_control(port: int, path: str, timeout: float) -> None:
    """Open a WebSocket to the fuzzing server at `path` and wait for its close frame.

    Used for /updateReports: the server writes every report before it sends its close.
    """
    end = time.monotonic() + timeout
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""

        def need(n: int) -> None:
            nonlocal buf
            while len(buf) < n:
                s.settimeout(max(0.1, end - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    raise RunError(f"fuzzing server closed {path} early")
                buf += chunk

        while b"\r\n\r\n" not in buf:
            need(len(buf) + 1)
        head, buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RunError(f"fuzzing server refused {path}: {head.splitlines()[0]!r}")
        while True:  # RFC 6455 5.2 frames, unmasked from the server
            need(2)
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            hdr = 2
            if length == 126:
                need(4)
                length, hdr = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                need(10)
                length, hdr = int.from_bytes(buf[2:10], "big"), 10
            need(hdr + length)
            buf = buf[hdr + length :]
            if opcode == 0x8:  # answer the close (masked, RFC 6455 5.3), then done
                mask = os.urandom(4)
                code = (1000).to_bytes(2, "big")
                masked = bytes(b ^ mask[i] for i, b in enumerate(code))
                s.sendall(bytes([0x88, 0x82]) + mask + masked)
                return


# --- cases and reports ---------------------------------------------------------------


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  (no {path.name})"
    if not text:
        return f"  ({path} is empty)"
    return f"  --- last lines of {path}:\n" + "\n".join("  | " + t for t in text)


def split_patterns(value: str) -> list[str]:
    """'1.*, 2.*' -> ['1.*', '2.*']."""
    return [p.strip() for p in value.split(",") if p.strip()]


def count_lines(path: Path, needle: bytes) -> int:
    """How many times `needle` occurs in the file (progress from wstest.log)."""
    try:
        return path.read_bytes().count(needle)
    except OSError:
        return 0


# --- the two modes -------------------------------------------------------------------


def fresh_outdir(mode: str) -> Path:
    """reports/<mode>/, emptied."""
    outdir = REPORTS / mode
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    return outdir


def substitute(template: str, **values: str) -> str:
    """Replace {name} placeholders (only those; other braces stay as they are)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def wait_with_progress(
    proc: subprocess.Popen[bytes], deadline: Deadline, progress: Callable[[], str],
    started: float,
) -> bool:
    """Wait for `proc` within the deadline, printing progress; False on timeout."""
    next_report = time.monotonic() + PROGRESS_EVERY
    while proc.poll() is None:
        if deadline.expired():
            return False
        if time.monotonic() >= next_report:
            print(f"  ... {progress()} ({time.monotonic() - started:.0f} s)", flush=True)
            next_report += PROGRESS_EVERY
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=min(0.2, max(0.01, deadline.left())))
    return True


def run_server_mode(args: argparse.Namespace, kids: Children, deadline: Deadline) -> bool:
    """Fuzz the server started by --cmd with wstest -m fuzzingclient."""
    if "{port}" not in args.cmd:
        raise RunError("--cmd must contain {port}")
    outdir = fresh_outdir("server")
    port = free_port()
    path = args.path if args.path.startswith("/") else "/" + args.path
    url = f"ws://{HOST}:{port}{path}"
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": args.agent, "url": url}],
        "cases": split_patterns(args.cases),
        "exclude-cases": split_patterns(args.exclude),
        "exclude-agent-cases": {},
    }
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    cases, _ = expected_cases(spec_path)

    cmd = substitute(args.cmd, port=str(port), host=HOST, url=url)
    testee_log, wstest_log = outdir / "testee.log", outdir / "wstest.log"
    print(f"server under test: {cmd}", flush=True)
    started = time.monotonic()
    server = kids.spawn(cmd, testee_log, Path.cwd())
    wait_listening(port, server, min(args.startup_timeout, deadline.left()),
                   "server under test", testee_log)
    print(f"fuzzing {url} with {len(cases)} cases (wstest log: {wstest_log})", flush=True)
    wstest = kids.spawn([str(VENV27_PY), str(WRAPPER), "-m", "fuzzingclient", "-s",
                         str(spec_path)], wstest_log, outdir)

    def progress() -> str:
        return f"{count_lines(wstest_log, b'Running test case ID')}/{len(cases)} cases"

    notes: list[str] = []
    finished = wait_with_progress(wstest, deadline, progress, started)
    elapsed = time.monotonic() - started
    if not finished:
        notes.append(f"timed out after {deadline.seconds:.0f} s (at {progress()}); "
                     "wstest writes its report only at the end")
        kids.stop(wstest)
    elif wstest.returncode != 0:
        notes.append(f"wstest exited with status {wstest.returncode}\n{tail(wstest_log)}")
    if server.poll() is not None:
        notes.append(f"server under test exited with status {server.returncode} during "
                     f"the run\n{tail(testee_log)}")
    kids.stop(server)
    ok = summarize(outdir, "server", args.agent, elapsed, notes)
    return ok and finished


def run_client_mode(args: argparse.Namespace, kids: Children, deadline: Deadline) -> bool:
    """Run the client started by --cmd against wstest -m fuzzingserver."""
    if "{url}" not in args.cmd:
        raise RunError("--cmd must contain {url}")
    agent: str | None = args.agent if "{agent}" in args.cmd else None
    outdir = fresh_outdir("client")
    port = free_port()
    url = f"ws://{HOST}:{port}"
    spec = {
        "url": url,
        "outdir": str(outdir),
        "cases": split_patterns(args.cases),
        "exclude-cases": split_patterns(args.exclude),
        "exclude-agent-cases": {},
    }
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    cases, _ = expected_cases(spec_path)

    testee_log, wstest_log = outdir / "testee.log", outdir / "wstest.log"
    started = time.monotonic()
    fuzzer = kids.spawn([str(VENV27_PY), str(WRAPPER), "-m", "fuzzingserver", "-s",
                         str(spec_path), "--webport", "0"], wstest_log, outdir)
    wait_listening(port, fuzzer, min(args.startup_timeout, deadline.left()),
                   "wstest fuzzingserver", wstest_log)
    addrs = listening_addresses(port)
    if addrs is not None and (not addrs or not all(map(is_loopback, addrs))):
        raise RunError(f"fuzzing server listens on {addrs}, expected loopback only")
    print(f"fuzzing server at {url}, listening on {addrs or '?'} "
          f"({len(cases)} cases, wstest log: {wstest_log})", flush=True)

    cmd = substitute(args.cmd, url=url, agent=args.agent, port=str(port), host=HOST)
    print(f"client under test: {cmd}", flush=True)
    client = kids.spawn(cmd, testee_log, Path.cwd())

    def progress() -> str:
        return f"{count_lines(wstest_log, b'Running test case ID')}/{len(cases)} cases"

    notes: list[str] = []
    finished = wait_with_progress(client, deadline, progress, started)
    elapsed = time.monotonic() - started
    if not finished:
        notes.append(f"timed out after {deadline.seconds:.0f} s (at {progress()})")
        kids.stop(client)
    elif client.returncode != 0:
        notes.append(f"client exited with status {client.returncode}\n{tail(testee_log)}")
    index_path = outdir / "index.json"
    want = agent or args.agent
    has_report = index_path.exists() and (
        agent is None or agent in json.loads(index_path.read_text()))
    if not has_report and fuzzer.poll() is None:
        if finished and client.returncode == 0:
            notes.append("the client did not call /updateReports; run.py asked for the report")
        else:
            notes.append("run.py asked the fuzzing server for the report of the cases run so far")
        try:
            ws_control(port, f"/updateReports?agent={want}", min(120.0, max(15.0, deadline.left())))
        except (OSError, RunError) as e:
            notes.append(f"could not get the report from the fuzzing server: {e}")
    if fuzzer.poll() is not None:
        notes.append(f"wstest fuzzingserver exited with status {fuzzer.returncode}\n"
                     f"{tail(wstest_log)}")
    kids.stop(fuzzer)
    ok = summarize(outdir, "client", agent, elapsed, notes)
    return ok and finished


# --- command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see --help)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cmd", required=True,
                        help="command to start the peer under test (run directly, or by "
                        "/bin/sh if it uses shell syntax; placeholders: server {port} "
                        "{host} {url}; client {url} {agent})")
    common.add_argument("--cases", default="*",
                        help="comma-separated case patterns (default: %(default)s)")
    common.add_argument("--exclude", default="",
                        help="comma-separated patterns to leave out (default: none, every "
                             "case of sections 1-13; e.g. '12.*,13.*' skips permessage-deflate)")
    common.add_argument("--agent", default="mgpy",
                        help="agent name in the report (default: %(default)s)")
    common.add_argument("--timeout", type=float, default=2400.0,
                        help="whole-run limit in seconds (default: %(default)s)")
    common.add_argument("--startup-timeout", type=float, default=30.0,
                        help="seconds for a server to start listening (default: %(default)s)")
    parser = argparse.ArgumentParser(
        description="Autobahn|Testsuite WebSocket conformance for a server or a client "
                    "(reports in tools/autobahn/reports/<mode>/; run setup.sh first).")
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server", parents=[common],
                            help="fuzz a WebSocket server (--cmd ... {port})")
    server.add_argument("--path", default="/",
                        help="URL path of the echo endpoint to fuzz (default: %(default)s)")
    sub.add_parser("client", parents=[common],
                   help="fuzz a WebSocket client (--cmd ... {url} {agent})")
    summary = sub.add_parser("summary", help="re-print the summary of an earlier run")
    summary.add_argument("which", choices=("server", "client"))
    args = parser.parse_args(argv)
    if args.mode != "summary" and not AGENT_RE.match(args.agent):
        parser.error("--agent may only contain letters, digits, '.', '_' and '-'")
    return args


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception for the duration, so cleanup runs."""
    old = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode; 0 = conformant, 1 = failures/missing/timeout, 2 = error, 130 = interrupted."""
    args = parse_args(argv)
    if not VENV27_PY.exists():
        print(f"run.py: {VENV27_PY} is missing: run tools/autobahn/setup.sh first",
              file=sys.stderr)
        return 2
    if args.mode == "summary":
        outdir = REPORTS / args.which
        if not (outdir / "spec.json").exists():
            print(f"run.py: no earlier {args.which} run in {outdir}", file=sys.stderr)
            return 2
        return 0 if summarize(outdir, args.which, None, None, []) else 1
    kids = Children()
    deadline = Deadline(args.timeout)
    try:
        with signals_unwind():
            run = run_server_mode if args.mode == "server" else run_client_mode
            return 0 if run(args, kids, deadline) else 1
    except (RunError, SummaryError) as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("run.py: interrupted, stopping child processes", file=sys.stderr)
        return 130
    finally:
        kids.stop_all()


if __name__ == "__main__":
    sys.exit(main())
