"""Run mgpy's benchmarks against its peers and print the ratio table (`make bench`).

Strategy: six suites (tcp, http, https, static, ws, and wsz: WebSocket with permessage-
deflate on in every server, offered by the generator like Chromium). A suite starts all
its servers (mgpy and the peers), each pinned to CPU 0 on its own port, and drives them
with the same generator pinned to CPU 1 (wrk for HTTP, bench/loadgen/build/wsload for the
rest), so mgpy and its peers are measured in one invocation with the same settings: only
the ratios matter.

1. Per server, on the still-fresh process: the idle-memory measurement (RSS delta over
   10 000 connections) and, for WebSocket, the push timing over those connections (wsz:
   the memory again after one 1 KiB JSON push to all of them, then 32-byte and 1 KiB JSON
   pushes; for mgpy the same pushes over uncompressed connections too, "mgpy-plain").
2. Throughput runs in rounds: each round visits every server and metric in turn (a
   warm-up run precedes the first measurement of each).  Every measurement records the CPU
   used by the server, the generator and everything else; a run during which other
   processes used more than report.NOISY_PCT (15 %) of a CPU is "noisy".  Rounds repeat
   (up to --rounds) only for the cells that have no quiet sample yet.  A cell's value is
   its best quiet sample (best of all samples, flagged, if none was quiet): interference
   only ever slows a server down, so the best quiet run is the closest to what the server
   can do.

Failures (a server that does not start or dies, errors on the wire) become ERROR cells and
the run goes on.  The table (with PASS/MISS against the targets; a MISS is never hidden)
is printed and written to bench/results/latest.json and latest.md.

    python bench/run.py [--only tcp,http,https,static,ws,wsz] [--quick] [--servers mgpy,aiohttp]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness as h
from report import ROWS, Results, report

PY = sys.executable
SERVERS = h.BENCH / "servers"
SUITES = ("tcp", "http", "https", "static", "ws", "wsz")
ECHO_CONNS = 50
IDLE_CONNS = 10_000
FILE_SMALL = "1k.bin"
FILE_BIG = "100m.bin"
BIG_CONNS = 4


@dataclass(frozen=True)
class Settings:
    """How long and how hard each measurement runs."""

    seconds: float
    warmup: float
    idle_conns: int
    pushes: int
    rounds: int
    wait_quiet: float
    deadline: float  # time.monotonic() after which no extra round starts
    servers: frozenset[str] | None


def measure(
    res: Results,
    st: Settings,
    suite: str,
    metric: str,
    server: h.Server,
    unit: str,
    fn: Callable[[], tuple[float, dict[str, Any]]],
) -> None:
    """Run fn under a CpuMeter and store (value, extras) with the load, or the error."""
    if st.wait_quiet > 0:
        h.wait_quiet(st.wait_quiet)
    meter = h.CpuMeter(server.pid)
    try:
        meter.start()
        value, extra = fn()
        load = meter.stop()
    except h.BenchError as e:
        msg = str(e) if server.alive() else f"{e}; server died: {server.tail()}"
        res.fail(suite, metric, server.name, msg)
        return
    res.put(
        suite, metric, server.name, {"value": value, "unit": unit, "load": load.as_dict(), **extra}
    )


def idle_memory(
    res: Results, suite: str, server: h.Server, args: list[str], n: int
) -> tuple[h.HeldGenerator, dict[str, Any]] | None:
    """Open n idle connections with wsload and store RSS delta / n.

    Returns the generator (still holding the connections) and its ready line, or None.
    """
    base_rss = h.rss_kib(server.pid)
    gen = h.HeldGenerator(args)
    try:
        ready = gen.read_json(180)
        if ready.get("event") != "ready" or ready.get("conns") != n or ready.get("errors"):
            raise h.BenchError(
                f"only {ready.get('conns')} of {n} connections opened "
                f"({ready.get('errors')} errors)"
            )
        time.sleep(0.5)
        after = h.rss_kib(server.pid)
    except h.BenchError as e:
        gen.close()
        res.fail(suite, "idle_mem", server.name, str(e))
        return None
    res.put(
        suite,
        "idle_mem",
        server.name,
        {
            "value": (after - base_rss) / n,
            "unit": "KiB",
            "rss_before_kib": base_rss,
            "rss_after_kib": after,
            "conns": n,
            "connect_s": ready.get("connect_s"),
        },
    )
    return gen, ready


@dataclass(frozen=True)
class Job:
    """One throughput metric: a warm-up and a measured run against a server."""

    metric: str
    unit: str
    warm: Callable[[h.Server], None]
    run: Callable[[h.Server], tuple[float, dict[str, Any]]]


ServerList = list[tuple[str, list[str], int]]
Prepare = Callable[[Results, Settings, h.Server], None]
#: the metrics each suite's prepare step measures
PREPARED = {
    "tcp": ("idle_mem",),
    "ws": ("idle_mem", "push"),
    "wsz": ("idle_mem", "idle_mem_pushed", "push_32", "push_1k"),
}
#: permessage-deflate suite: the pushed JSON sizes and the echoed message's size
WSZ_PUSHES = (("push_32", 32), ("push_1k", 1024))
WSZ_ECHO = 512


# ---------------------------------------------------------------- suites


def tcp_servers() -> ServerList:
    """Name, argv and port of every TCP echo server."""
    script = str(SERVERS / "asyncio_tcp_echo.py")
    out: ServerList = []
    for name, extra in (("mgpy", None), ("asyncio", []), ("uvloop", ["--uvloop"])):
        port = h.free_port()
        if extra is None:
            out.append((name, [PY, str(SERVERS / "mgpy_tcp_echo.py"), "--port", str(port)], port))
        elif name != "uvloop" or importlib.util.find_spec("uvloop") is not None:
            out.append((name, [PY, script, "--port", str(port), *extra], port))
    return out


def tcp_prepare(res: Results, st: Settings, server: h.Server) -> None:
    """Idle memory on the fresh server."""
    port = str(server.port)
    h.wsload(["tcp", h.HOST, port, "1", "32", "0.3"], 30)
    fds = h.open_fds(server.pid)
    held = idle_memory(
        res, "tcp", server, ["tcphold", h.HOST, port, str(st.idle_conns)], st.idle_conns
    )
    if held:
        held[0].close()
    server.wait_fds_below(fds + 10)


def tcp_jobs(st: Settings) -> list[Job]:
    """32-byte echo round trips over 50 connections."""

    def args(server: h.Server, secs: float) -> list[str]:
        return ["tcp", h.HOST, str(server.port), str(ECHO_CONNS), "32", f"{secs:g}"]

    def warm(server: h.Server) -> None:
        h.wsload(args(server, st.warmup), st.warmup + 60)

    def run(server: h.Server) -> tuple[float, dict[str, Any]]:
        return h.wsload(args(server, st.seconds), st.seconds + 60)["round_trips_per_s"], {}

    return [Job("echo", "round trips/s", warm, run)]


def http_servers() -> ServerList:
    """Name, argv and port of every hello-world HTTP server."""
    out: ServerList = []
    for name in ("mgpy", "aiohttp", "uvicorn"):
        port = h.free_port()
        out.append((name, [PY, str(SERVERS / f"{name}_http.py"), "--port", str(port)], port))
    return out


def http_jobs(st: Settings) -> list[Job]:
    """wrk -t1 -c50 against GET /."""

    def url(server: h.Server) -> str:
        return f"http://{h.HOST}:{server.port}/"

    def warm(server: h.Server) -> None:
        h.wrk(url(server), ECHO_CONNS, st.warmup)

    def run(server: h.Server) -> tuple[float, dict[str, Any]]:
        return h.wrk(url(server), ECHO_CONNS, st.seconds)["requests_per_s"], {}

    return [Job("hello", "req/s", warm, run)]


def https_servers(tmp: Path) -> ServerList:
    """mgpy's hello world over TLS ("mgpy") and plain ("mgpy-http"), with a fresh key pair."""
    key, cert = tmp / "tls-key.pem", tmp / "tls-cert.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    p_tls, p_plain = h.free_port(), h.free_port()
    tls_argv = [
        PY,
        str(SERVERS / "mgpy_http.py"),
        "--port",
        str(p_tls),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    ]
    plain_argv = [PY, str(SERVERS / "mgpy_http.py"), "--port", str(p_plain)]
    return [("mgpy", tls_argv, p_tls), ("mgpy-http", plain_argv, p_plain)]


def https_jobs(st: Settings) -> list[Job]:
    """wrk -t1 -c50 against GET / over TLS (mgpy) and plain HTTP (mgpy-http)."""

    def url(server: h.Server) -> str:
        scheme = "http" if server.name == "mgpy-http" else "https"
        return f"{scheme}://{h.HOST}:{server.port}/"

    def warm(server: h.Server) -> None:
        h.wrk(url(server), ECHO_CONNS, st.warmup)

    def run(server: h.Server) -> tuple[float, dict[str, Any]]:
        return h.wrk(url(server), ECHO_CONNS, st.seconds)["requests_per_s"], {}

    return [Job("hello", "req/s", warm, run)]


#: the CLI's access log is on by default; the other static servers run without one
NO_LOG = "--no-access-log"


def static_servers(www: Path, tmp: Path) -> ServerList:
    """Name, argv and port of every static file server (renders nginx's config)."""
    p_mgpy, p_nginx, p_aio = h.free_port(), h.free_port(), h.free_port()
    prefix = tmp / f"nginx-{p_nginx}"
    prefix.mkdir(exist_ok=True)
    user_line = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        user_line = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    conf = (h.BENCH / "nginx.conf").read_text()
    for key, val in (
        ("USER_LINE", user_line),
        ("PREFIX", str(prefix)),
        ("PORT", str(p_nginx)),
        ("ROOT", str(www)),
    ):
        conf = conf.replace(f"@{key}@", val)
    (prefix / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [
        # access logs off for all three (nginx: access_log off; aiohttp: access_log=None)
        (
            "mgpy",
            [PY, "-m", "mgpy", "--root", str(www), "--listen", f"{h.HOST}:{p_mgpy}", NO_LOG],
            p_mgpy,
        ),
        (
            "nginx",
            [
                nginx,
                "-p",
                str(prefix),
                "-c",
                str(prefix / "nginx.conf"),
                "-e",
                str(prefix / "error.log"),
            ],
            p_nginx,
        ),
        (
            "aiohttp",
            [PY, str(SERVERS / "aiohttp_static.py"), "--port", str(p_aio), "--root", str(www)],
            p_aio,
        ),
    ]


def make_files(www: Path) -> None:
    """Write the 1 KiB and 100 MiB files served by the static suite."""
    www.mkdir(exist_ok=True)
    (www / FILE_SMALL).write_bytes(os.urandom(1024))
    block = os.urandom(1 << 20)
    with open(www / FILE_BIG, "wb") as f:
        for _ in range(100):
            f.write(block)


def static_jobs(st: Settings) -> list[Job]:
    """wrk -c50 on the 1 KiB file; wsload get with 4 connections on the 100 MiB file."""

    def url(server: h.Server) -> str:
        return f"http://{h.HOST}:{server.port}/{FILE_SMALL}"

    def warm_small(server: h.Server) -> None:
        h.wrk(url(server), ECHO_CONNS, st.warmup)

    def warm_big(server: h.Server) -> None:
        get(server, st.warmup)

    def small(server: h.Server) -> tuple[float, dict[str, Any]]:
        return h.wrk(url(server), ECHO_CONNS, st.seconds)["requests_per_s"], {}

    def get(server: h.Server, secs: float) -> dict[str, Any]:
        return h.wsload(
            ["get", h.HOST, str(server.port), f"/{FILE_BIG}", str(BIG_CONNS), f"{secs:g}"],
            secs + 60,
        )

    def big(server: h.Server) -> tuple[float, dict[str, Any]]:
        r = get(server, st.seconds)
        return r["bytes_per_s"] / 1e6, {"files_per_s": r["requests_per_s"]}

    return [Job("small", "req/s", warm_small, small), Job("big", "MB/s", warm_big, big)]


def ws_servers() -> ServerList:
    """Name, argv and port of every WebSocket server."""
    out: ServerList = []
    for name in ("mgpy", "aiohttp", "websockets"):
        port = h.free_port()
        out.append((name, [PY, str(SERVERS / f"{name}_ws.py"), "--port", str(port)], port))
    return out


def ws_prepare(res: Results, st: Settings, server: h.Server) -> None:
    """Idle memory with N connections on the fresh server, then pushes over them."""
    port = str(server.port)
    h.wsload(["echo", h.HOST, port, "/", "2", "32", "0.3"], 30)
    fds = h.open_fds(server.pid)
    n = st.idle_conns
    held = idle_memory(
        res, "ws", server, ["push", h.HOST, port, "/", str(n), str(st.pushes), "--wait"], n
    )
    if held is None:
        res.fail("ws", "push", server.name, "the connections for the push could not be opened")
        server.wait_fds_below(fds + 10)
        return
    gen, ready = held
    try:
        push_runs(res, st, "ws", "push", server, server.name, gen, float(ready.get("cpu_s", 0.0)))
    except h.BenchError as e:
        res.fail("ws", "push", server.name, str(e))
    finally:
        gen.close()
    server.wait_fds_below(fds + 10)


def push_runs(
    res: Results,
    st: Settings,
    suite: str,
    metric: str,
    server: h.Server,
    cell: str,
    gen: h.HeldGenerator,
    gen_cpu: float,
    size: int = 0,
) -> float:
    """Batches of pushes over the held connections (more only while every batch was noisy).

    ``size`` 0 pushes the bare time stamp, else a JSON text of that many bytes.  The
    sample goes to ``cell`` (the server's name, or e.g. "mgpy-plain").  Returns the
    generator's CPU seconds so far.
    """
    for batch in range(st.rounds):
        if batch and time.monotonic() > st.deadline:
            break
        if st.wait_quiet > 0:
            h.wait_quiet(st.wait_quiet)
        meter = h.CpuMeter(server.pid)
        meter.start()
        gen.say(f"go {size}" if size else "go")
        r = gen.read_json(60 + 35 * st.pushes)
        load = meter.stop(gen_cpu_override=float(r["cpu_s"]) - gen_cpu)
        gen_cpu = float(r["cpu_s"])
        if r.get("errors") or r.get("missing") or r.get("bad"):
            raise h.BenchError(
                f"push: {r.get('missing')} messages missing, "
                f"{r.get('bad')} wrong, {r.get('errors')} connection errors "
                f"({r.get('first_error', '')})"
            )
        res.put(
            suite,
            metric,
            cell,
            {
                "value": r["push_ms_median"],
                "unit": "ms",
                "runs_ms": r["push_ms"],
                "from_send_ms": r["push_ms_from_send"],
                "conns": r["conns"],
                "size": size,
                "compressed_msgs": r.get("compressed_msgs"),
                "load": load.as_dict(),
            },
        )
        if not res.needs_sample(suite, metric, cell):
            break
    return gen_cpu


def ws_jobs(st: Settings) -> list[Job]:
    """Echo round trips over 50 WebSockets: 32-byte text and 64 KiB binary messages."""
    jobs = []
    for metric, size, kind in (("echo_small", 32, "text"), ("echo_64k", 65536, "binary")):

        def args(server: h.Server, secs: float, size: int = size, kind: str = kind) -> list[str]:
            return [
                "echo",
                h.HOST,
                str(server.port),
                "/",
                str(ECHO_CONNS),
                str(size),
                f"{secs:g}",
                kind,
            ]

        def run(server: h.Server, args: Any = args) -> tuple[float, dict[str, Any]]:
            r = h.wsload(args(server, st.seconds), st.seconds + 60)
            return r["round_trips_per_s"], {}

        def warm(server: h.Server, args: Any = args) -> None:
            h.wsload(args(server, st.warmup), st.warmup + 60)

        jobs.append(Job(metric, "round trips/s", warm, run))
    return jobs


def wsz_servers() -> ServerList:
    """The WebSocket servers again, each with permessage-deflate on (its own defaults)."""
    return [(name, [*argv, "--compress"], port) for name, argv, port in ws_servers()]


def wsz_prepare(res: Results, st: Settings, server: h.Server) -> None:
    """Compressed connections (offered like Chromium): idle memory, after one push, pushes.

    For mgpy the same pushes are then measured over uncompressed connections on the same
    process ("mgpy-plain"): compression must cost little on top of them.
    """
    port = str(server.port)
    h.wsload(["echo", h.HOST, port, "/", "2", str(WSZ_ECHO), "0.3", "text", "--deflate"], 30)
    fds = h.open_fds(server.pid)
    n = st.idle_conns
    args = ["push", h.HOST, port, "/", str(n), str(st.pushes), "--wait", "--deflate"]
    held = idle_memory(res, "wsz", server, args, n)
    if held is None:
        for metric in PREPARED["wsz"][1:]:
            res.fail("wsz", metric, server.name, "the connections could not be opened")
        server.wait_fds_below(fds + 10)
        return
    gen, ready = held
    gen_cpu = float(ready.get("cpu_s", 0.0))
    try:
        base = res.data["wsz"]["idle_mem"][server.name][-1]["rss_before_kib"]
        gen.say("go 1024 1")  # one compressible message to every connection
        r = gen.read_json(120)
        gen_cpu = float(r["cpu_s"])
        if r.get("errors") or r.get("missing") or r.get("bad"):
            raise h.BenchError(f"the first push failed: {r}")
        time.sleep(0.5)
        after = h.rss_kib(server.pid)
        res.put(
            "wsz",
            "idle_mem_pushed",
            server.name,
            {
                "value": (after - base) / n,
                "unit": "KiB",
                "rss_before_kib": base,
                "rss_after_kib": after,
                "conns": n,
                "compressed_msgs": r.get("compressed_msgs"),
            },
        )
        for metric, size in WSZ_PUSHES:
            gen_cpu = push_runs(res, st, "wsz", metric, server, server.name, gen, gen_cpu, size)
    except h.BenchError as e:
        for metric in PREPARED["wsz"][1:]:
            if res.best("wsz", metric, server.name) is None:
                res.fail("wsz", metric, server.name, str(e))
    finally:
        gen.close()
    server.wait_fds_below(fds + 10)
    if server.name == "mgpy":
        plain_pushes(res, st, server, fds)


def plain_pushes(res: Results, st: Settings, server: h.Server, fds: int) -> None:
    """mgpy's own pushes of the same JSON over uncompressed connections ("mgpy-plain")."""
    n = st.idle_conns
    gen = h.HeldGenerator(["push", h.HOST, str(server.port), "/", str(n), str(st.pushes), "--wait"])
    try:
        ready = gen.read_json(180)
        if ready.get("conns") != n:
            raise h.BenchError(f"only {ready.get('conns')} of {n} connections opened")
        gen_cpu = float(ready.get("cpu_s", 0.0))
        for metric, size in WSZ_PUSHES:
            gen_cpu = push_runs(res, st, "wsz", metric, server, "mgpy-plain", gen, gen_cpu, size)
    except h.BenchError as e:
        for metric, _size in WSZ_PUSHES:
            res.fail("wsz", metric, "mgpy-plain", str(e))
    finally:
        gen.close()
    server.wait_fds_below(fds + 10)


def wsz_jobs(st: Settings) -> list[Job]:
    """Echo round trips of a 512-byte compressible JSON text over 50 compressed WebSockets."""

    def args(server: h.Server, secs: float) -> list[str]:
        return [
            "echo",
            h.HOST,
            str(server.port),
            "/",
            str(ECHO_CONNS),
            str(WSZ_ECHO),
            f"{secs:g}",
            "text",
            "--deflate",
        ]

    def run(server: h.Server) -> tuple[float, dict[str, Any]]:
        r = h.wsload(args(server, st.seconds), st.seconds + 60)
        return r["round_trips_per_s"], {"frame_bytes": r.get("frame_bytes")}

    def warm(server: h.Server) -> None:
        h.wsload(args(server, st.warmup), st.warmup + 60)

    return [Job("echo_512", "round trips/s", warm, run)]


# ---------------------------------------------------------------- driver


def mgpy_missing() -> str | None:
    """Why mgpy's servers cannot run yet, or None."""
    try:
        import mgpy
    except ImportError as e:
        return f"mgpy does not import: {e}"
    if not hasattr(mgpy, "Manager"):
        return "mgpy.Manager is not available yet"
    return None


def run_suite(
    res: Results,
    st: Settings,
    suite: str,
    servers: ServerList,
    prepare: Prepare | None,
    jobs: list[Job],
    tmp: Path,
) -> None:
    """Start the suite's servers, run prepare on each, then the throughput rounds."""
    metrics = [r.metric for r in ROWS if r.suite == suite]
    missing = mgpy_missing()
    started: list[h.Server] = []
    try:
        for name, argv, port in servers:
            if st.servers is not None and name not in st.servers:
                continue
            if name == "mgpy" and missing:
                for m in metrics:
                    res.fail(suite, m, name, missing)
                continue
            server = h.Server(name, argv, port, tmp)
            try:
                server.start()
            except h.BenchError as e:
                for m in metrics:
                    res.fail(suite, m, name, str(e))
                continue
            started.append(server)
        if prepare is not None:
            for server in started:
                print(
                    f"  [{suite}] {server.name}: memory"
                    + (" and push" if suite in ("ws", "wsz") else ""),
                    flush=True,
                )
                try:
                    prepare(res, st, server)
                except h.BenchError as e:
                    for m in PREPARED.get(suite, ()):
                        if res.best(suite, m, server.name) is None:
                            res.fail(suite, m, server.name, str(e))
        run_rounds(res, st, suite, started, jobs)
    finally:
        for server in started:
            server.stop()


def run_rounds(
    res: Results, st: Settings, suite: str, servers: list[h.Server], jobs: list[Job]
) -> None:
    """Measure every (server, job) in interleaved rounds until each has a quiet sample."""
    warmed: set[tuple[str, str]] = set()
    for rnd in range(st.rounds):
        todo = [(s, j) for s in servers for j in jobs if res.needs_sample(suite, j.metric, s.name)]
        if not todo:
            return
        if rnd and time.monotonic() > st.deadline:
            print(f"  [{suite}] time budget used up: no more rounds for noisy cells", flush=True)
            return
        print(
            f"  [{suite}] round {rnd + 1}" + (" (repeating noisy cells)" if rnd else ""), flush=True
        )
        for server, job in todo:
            if not server.alive():
                res.fail(suite, job.metric, server.name, f"server died: {server.tail()}")
                continue
            key = (server.name, job.metric)
            if key not in warmed:
                try:
                    job.warm(server)
                except h.BenchError as e:
                    res.fail(suite, job.metric, server.name, f"warm-up: {e}")
                    continue
                warmed.add(key)
            measure(
                res, st, suite, job.metric, server, job.unit, functools.partial(job.run, server)
            )


def main() -> int:
    """Parse options, run the chosen suites, report."""
    ap = argparse.ArgumentParser(description="mgpy benchmarks (see bench/README.md)")
    ap.add_argument(
        "--only",
        default=",".join(SUITES),
        help="comma-separated suites to run: tcp,http,https,static,ws,wsz",
    )
    ap.add_argument(
        "--quick", action="store_true", help="3 s runs, one round, 3 pushes (a smoke test)"
    )
    ap.add_argument(
        "--servers", default=None, help="comma-separated server names to run (default: all)"
    )
    ap.add_argument("--seconds", type=float, default=None, help="seconds per throughput run")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="at most this many rounds while runs are noisy (default 3)",
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=540.0,
        metavar="SECONDS",
        help="no extra round for noisy cells starts after this many seconds (default 540)",
    )
    ap.add_argument(
        "--no-idle-poll",
        action="store_true",
        help="do not hold /dev/cpu_dma_latency at 0 during the run",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for other processes "
        "to go quiet (for shared machines)",
    )
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    bad = [s for s in only if s not in SUITES]
    if bad:
        ap.error(f"unknown suite(s): {', '.join(bad)}")
    if not h.WSLOAD.exists():
        ap.error(f"{h.WSLOAD} is missing; run bash bench/setup.sh first")
    st = Settings(
        seconds=args.seconds or (3.0 if args.quick else 10.0),
        warmup=1.0,
        idle_conns=IDLE_CONNS,
        pushes=3 if args.quick else 5,
        rounds=max(1, args.rounds or (1 if args.quick else 3)),
        wait_quiet=args.wait_quiet,
        deadline=time.monotonic() + args.budget,
        servers=frozenset(args.servers.split(",")) if args.servers else None,
    )
    nofile = h.raise_nofile()
    if nofile < st.idle_conns + 100:
        print(
            f"warning: RLIMIT_NOFILE hard limit {nofile} < {st.idle_conns + 100}; "
            "the 10 000-connection runs will fail",
            file=sys.stderr,
        )
    if h.SERVER_CPU is None:
        print("warning: fewer than 2 CPUs or no taskset; running unpinned", file=sys.stderr)
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "server_cpu": h.SERVER_CPU,
        "gen_cpu": h.GEN_CPU,
        "seconds": st.seconds,
        "rounds": st.rounds,
        "quick": args.quick,
        "suites": only,
    }
    started = time.monotonic()
    res = Results()
    tmp = h.make_tempdir()
    with contextlib.ExitStack() as stack:
        idle_poll = h.IdlePoll()
        if not args.no_idle_poll:
            stack.enter_context(idle_poll)
        meta["idle_poll"] = idle_poll.active
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        for suite in only:
            print(f"[{suite}]", flush=True)
            if suite == "tcp":
                run_suite(res, st, suite, tcp_servers(), tcp_prepare, tcp_jobs(st), tmp)
            elif suite == "http":
                run_suite(res, st, suite, http_servers(), None, http_jobs(st), tmp)
            elif suite == "https":
                run_suite(res, st, suite, https_servers(tmp), None, https_jobs(st), tmp)
            elif suite == "static":
                www = tmp / "www"
                make_files(www)
                run_suite(res, st, suite, static_servers(www, tmp), None, static_jobs(st), tmp)
            elif suite == "ws":
                run_suite(res, st, suite, ws_servers(), ws_prepare, ws_jobs(st), tmp)
            else:
                run_suite(res, st, suite, wsz_servers(), wsz_prepare, wsz_jobs(st), tmp)
    report(res, meta, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
