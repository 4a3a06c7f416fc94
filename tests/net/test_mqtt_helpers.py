"""Shared helpers for the MQTT socket tests (and checks of the helpers themselves).

* ``Recorder``: a handler that records every MQTT event (and ERROR/CLOSE) per connection.
* ``RawClient``: a non-blocking socket speaking MQTT through the sans-IO codec, for tests
  that must stop a handshake at an exact step; its waits poll the Manager (the broker runs
  in the same thread) until a deadline.
* ``Mosquitto``: a mosquitto 2.0 broker on a free 127.0.0.1 port with a generated config,
  waited for by polling a TCP connect, stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import mgpy
from mgpy.mqtt import MqttEv
from mgpy.proto.mqtt import NEED_DATA, Connack, Connect, MqttReader, Packet
from tests.conftest import run_until
from tests.waiting import wait_listening

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
START_TIMEOUT = 10.0
IO_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Recorder:
    """A handler recording ``(event, data)`` per connection; ``of(c, ev)`` filters."""

    def __init__(self, on: Any = None) -> None:
        self.events: list[tuple[mgpy.Connection, int, Any]] = []
        self.on = on

    def __call__(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev >= MqttEv.CONNACK or ev in (mgpy.Ev.ERROR, mgpy.Ev.CLOSE, mgpy.Ev.CONNECT):
            self.events.append((c, ev, ev_data))
        if self.on is not None:
            self.on(c, ev, ev_data)

    def of(self, c: mgpy.Connection | None, ev: int) -> list[Any]:
        return [d for cc, e, d in self.events if e == ev and (c is None or cc is c)]

    def payloads(self, c: mgpy.Connection | None = None) -> list[bytes]:
        return [p.payload for p in self.of(c, MqttEv.PUBLISH)]


class RawClient:
    """An MQTT client on a raw socket: ``send(packet)``, ``expect()`` the next packet."""

    def __init__(self, mgr: mgpy.Manager, port: int, version: int = 4) -> None:
        self.mgr = mgr
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.sock.setblocking(False)
        self.reader = MqttReader(version, side="client")
        self.buf = bytearray()
        self.eof = False

    def send(self, pkt: Packet | bytes) -> None:
        data = pkt if isinstance(pkt, bytes) else pkt.encode(self.version)
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)
        self.mgr.poll(0)

    def _pump(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.eof = True
            return
        if not data:
            self.eof = True
        self.buf += data

    def expect(self, timeout: float = IO_TIMEOUT) -> Packet:
        deadline = time.monotonic() + timeout
        while True:
            pkt, n = self.reader.next_event(self.buf)
            if pkt is not NEED_DATA:
                del self.buf[:n]
                return pkt  # type: ignore[return-value]
            if self.eof or time.monotonic() > deadline:
                raise AssertionError(f"no packet within {timeout}s (eof={self.eof})")
            self.mgr.poll(5)
            self._pump()

    def connect(self, client_id: str, clean: bool = True, **kw: Any) -> Connack:
        self.send(Connect(client_id, clean, version=self.version, **kw))
        ack = self.expect()
        assert isinstance(ack, Connack), ack
        return ack

    def wait_closed(self, timeout: float = IO_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not close the connection")
            self.mgr.poll(5)
            self._pump()

    def drop(self) -> None:
        """Cut the connection abruptly (RST), as a lost network would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self.sock.close()


class Mosquitto:
    """mosquitto on a free port; ``url`` to connect; ``stop()`` by PID."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        assert MOSQUITTO is not None
        for _ in range(5):  # another process may take the free port first: try another
            self.port = free_port()
            conf = workdir / f"mosquitto-{self.port}.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence false\nlog_dest stderr\n{extra}"
            )
            self.log = workdir / f"mosquitto-{self.port}.log"
            with open(self.log, "wb") as logf:
                self.proc = subprocess.Popen(
                    [MOSQUITTO, "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT
                )
            if self._wait_ready():
                return
        raise AssertionError(f"mosquitto did not start: {self.log.read_text()[-500:]}")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _wait_ready(self) -> bool:
        """Poll a TCP connect: True once listening; False if it exited (port taken)."""
        try:
            wait_listening(self.port, START_TIMEOUT, self.proc, "mosquitto")
        except AssertionError:
            if self.proc.poll() is None:
                raise  # still running, not listening: the deadline
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_for(mgr: mgpy.Manager, cond: Any, timeout: float = IO_TIMEOUT) -> None:
    """Poll ``mgr`` until ``cond()``; fail at the deadline."""
    run_until(mgr, cond, timeout)


def test_raw_client_reads_a_broker_connack(mgr: mgpy.Manager) -> None:
    from mgpy.mqtt import MqttBroker

    lc = MqttBroker(mgr).listen("127.0.0.1:0")
    raw = RawClient(mgr, lc.local[1])
    ack = raw.connect("helper")
    assert ack.reason_code == 0 and not ack.session_present


def test_mosquitto_helper_starts_and_stops(tmp_path: Path) -> None:
    assert MOSQUITTO is not None, (
        "mosquitto is not installed: `make test` installs it (tools/sysdeps.sh)"
    )
    m = Mosquitto(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", m.port), timeout=IO_TIMEOUT):
            pass
    finally:
        m.stop()
    assert m.proc.returncode is not None
