"""Run mgpy's benchmarks against its peers and print the ratio table (`make bench`).

Strategy: four suites (tcp, http, static, ws).  Each suite starts one server at a time,
pinned to CPU 0, and drives it with the same generator pinned to CPU 1 (wrk for HTTP,
bench/loadgen/build/wsload for everything else): mgpy and its peers run in the same
invocation with the same settings, so only the ratios matter, not the machine.  Each
throughput number follows a short warm-up run; every measurement records the CPU used by
the server, the generator and everything else, which tells whether the server was the
bottleneck and whether the machine was quiet.  A failure (server does not start, errors on
the wire) is recorded as ERROR for that cell and the run goes on.  Results are printed and
written to bench/results/latest.json and latest.md; MISS is reported, never hidden.

    python bench/run.py [--only tcp,http,static,ws] [--quick] [--servers mgpy,aiohttp]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness as h

PY = sys.executable
SERVERS = h.BENCH / "servers"
RESULTS = h.BENCH / "results"
SUITES = ("tcp", "http", "static", "ws")
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
    servers: frozenset[str] | None


@dataclass(frozen=True)
class Row:
    """One line of the report: a metric, the peers it is compared with, and its target."""

    suite: str
    metric: str
    label: str
    unit: str
    higher_is_better: bool
    peers: tuple[str, ...]
    target_peer: str | None = None  # ratio target against this peer
    target: float | None = None  # ratio (or absolute value when target_peer is None)


ROWS = (
    Row("tcp", "echo", "TCP echo, 32 B x 50 conns", "round trips/s", True, ("asyncio", "uvloop")),
    Row("tcp", "idle_mem", "TCP memory per idle conn (N=10 000)", "KiB", False,
        ("asyncio", "uvloop")),
    Row("http", "hello", "HTTP hello keep-alive (wrk -c50)", "req/s", True,
        ("uvicorn", "aiohttp"), "uvicorn", 1.5),
    Row("static", "small", "Static 1 KiB file (wrk -c50)", "req/s", True,
        ("aiohttp", "nginx"), "aiohttp", 5.0),
    Row("static", "big", "Static 100 MiB file (4 conns)", "MB/s", True,
        ("nginx", "aiohttp"), "nginx", 0.9),
    Row("ws", "echo_small", "WebSocket echo, 32 B text x 50", "round trips/s", True,
        ("aiohttp", "websockets"), "aiohttp", 1.0),
    Row("ws", "echo_64k", "WebSocket echo, 64 KiB binary x 50", "round trips/s", True,
        ("aiohttp", "websockets"), "aiohttp", 1.0),
    Row("ws", "idle_mem", "WebSocket memory per idle conn (N=10 000)", "KiB", False,
        ("aiohttp", "websockets"), None, 2.0),
    Row("ws", "push", "WebSocket push to 10 000 conns (median)", "ms", False,
        ("aiohttp", "websockets"), "aiohttp", 0.7),
)


class Results:
    """suite -> metric -> server -> record ({"value": ...} or {"error": ...})."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}

    def put(self, suite: str, metric: str, server: str, record: dict[str, Any]) -> None:
        """Store one measurement and print it."""
        self.data.setdefault(suite, {}).setdefault(metric, {})[server] = record
        if "error" in record:
            print(f"    {metric:<11} ERROR {record['error']}", flush=True)
            return
        load = record.get("load")
        extra = ""
        if load:
            extra = (f"  (server CPU {load['server_cpu_pct']:.0f}%, generator "
                     f"{load['gen_cpu_pct']:.0f}%, other {load['other_cpu_pct']:.0f}%)")
        print(f"    {metric:<11} {fmt(record['value'], record['unit'])} {record['unit']}{extra}",
              flush=True)

    def get(self, suite: str, metric: str, server: str) -> dict[str, Any] | None:
        """The record for one cell, if measured."""
        return self.data.get(suite, {}).get(metric, {}).get(server)


def fmt(value: float, unit: str) -> str:
    """Format a number for the table."""
    if unit in ("KiB", "ms"):
        return f"{value:,.1f}".replace(",", " ")
    return f"{value:,.0f}".replace(",", " ")


def measure(
    res: Results,
    suite: str,
    metric: str,
    server: h.Server,
    unit: str,
    fn: Callable[[], tuple[float, dict[str, Any]]],
) -> None:
    """Run fn under a CpuMeter and store (value, extras) with the load, or the error."""
    meter = h.CpuMeter(server.pid)
    try:
        meter.start()
        value, extra = fn()
        load = meter.stop()
    except h.BenchError as e:
        msg = str(e) if server.alive() else f"{e}; server died: {server.tail()}"
        res.put(suite, metric, server.name, {"error": msg})
        return
    res.put(suite, metric, server.name, {"value": value, "unit": unit, "load": load.as_dict(),
                                         **extra})


def idle_memory(
    res: Results, suite: str, server: h.Server, args: list[str], n: int
) -> h.HeldGenerator | None:
    """Open n idle connections with wsload; store RSS delta / n. Returns the held generator."""
    base_rss = h.rss_kib(server.pid)
    gen = h.HeldGenerator(args)
    try:
        ready = gen.read_json(180)
        if ready.get("event") != "ready" or ready.get("conns") != n or ready.get("errors"):
            raise h.BenchError(f"only {ready.get('conns')} of {n} connections opened "
                               f"({ready.get('errors')} errors)")
        time.sleep(0.5)
        after = h.rss_kib(server.pid)
    except h.BenchError as e:
        gen.close()
        res.put(suite, "idle_mem", server.name, {"error": str(e)})
        return None
    res.put(suite, "idle_mem", server.name, {
        "value": (after - base_rss) / n, "unit": "KiB", "rss_before_kib": base_rss,
        "rss_after_kib": after, "conns": n, "connect_s": ready.get("connect_s"),
    })
    return gen


# ---------------------------------------------------------------- suites

ServerList = list[tuple[str, list[str], int]]


def tcp_servers() -> ServerList:
    """Name, argv and port of every TCP echo server."""
    script = str(SERVERS / "asyncio_tcp_echo.py")
    ports = [h.free_port() for _ in range(3)]
    out = [("mgpy", [PY, str(SERVERS / "mgpy_tcp_echo.py"), "--port", str(ports[0])], ports[0]),
           ("asyncio", [PY, script, "--port", str(ports[1])], ports[1])]
    if importlib.util.find_spec("uvloop") is not None:
        out.append(("uvloop", [PY, script, "--port", str(ports[2]), "--uvloop"], ports[2]))
    return out


def suite_tcp(res: Results, st: Settings, server: h.Server) -> None:
    """Idle memory on a fresh server, then 32-byte echo round trips."""
    port = str(server.port)
    h.wsload(["tcp", h.HOST, port, "1", "32", "0.3"], 30)
    fds = h.open_fds(server.pid)
    gen = idle_memory(res, "tcp", server, ["tcphold", h.HOST, port, str(st.idle_conns)],
                      st.idle_conns)
    if gen:
        gen.close()
    server.wait_fds_below(fds + 10)

    def echo() -> tuple[float, dict[str, Any]]:
        r = h.wsload(["tcp", h.HOST, port, str(ECHO_CONNS), "32", f"{st.seconds:g}"],
                     st.seconds + 60)
        return r["round_trips_per_s"], {}

    h.wsload(["tcp", h.HOST, port, str(ECHO_CONNS), "32", f"{st.warmup:g}"], st.warmup + 60)
    measure(res, "tcp", "echo", server, "round trips/s", echo)


def http_servers() -> ServerList:
    """Name, argv and port of every hello-world HTTP server."""
    return [(name, [PY, str(SERVERS / f"{name}_http.py"), "--port", str(port)], port)
            for name, port in (("mgpy", h.free_port()), ("aiohttp", h.free_port()),
                               ("uvicorn", h.free_port()))]


def suite_http(res: Results, st: Settings, server: h.Server) -> None:
    """wrk -t1 -c50 against GET /."""
    url = f"http://{h.HOST}:{server.port}/"
    h.wrk(url, ECHO_CONNS, st.warmup)

    def run() -> tuple[float, dict[str, Any]]:
        r = h.wrk(url, ECHO_CONNS, st.seconds)
        return r["requests_per_s"], {}

    measure(res, "http", "hello", server, "req/s", run)


def static_servers(www: Path, tmp: Path) -> ServerList:
    """Name, argv and port of every static file server (renders nginx's config)."""
    port = h.free_port()
    prefix = tmp / f"nginx-{port}"
    prefix.mkdir(exist_ok=True)
    user_line = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        user_line = (f"user {pwd.getpwuid(os.getuid()).pw_name} "
                     f"{grp.getgrgid(os.getgid()).gr_name};")
    conf = (h.BENCH / "nginx.conf").read_text()
    for key, val in (("USER_LINE", user_line), ("PREFIX", str(prefix)), ("PORT", str(port)),
                     ("ROOT", str(www))):
        conf = conf.replace(f"@{key}@", val)
    (prefix / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p_mgpy, p_aio = h.free_port(), h.free_port()
    return [
        ("mgpy", [PY, "-m", "mgpy", "--root", str(www), "--listen", f"{h.HOST}:{p_mgpy}"],
         p_mgpy),
        ("nginx", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                   "-e", str(prefix / "error.log")], port),
        ("aiohttp", [PY, str(SERVERS / "aiohttp_static.py"), "--port", str(p_aio),
                     "--root", str(www)], p_aio),
    ]


def make_files(www: Path) -> None:
    """Write the 1 KiB and 100 MiB files served by the static suite."""
    www.mkdir(exist_ok=True)
    (www / FILE_SMALL).write_bytes(os.urandom(1024))
    block = os.urandom(1 << 20)
    with open(www / FILE_BIG, "wb") as f:
        for _ in range(100):
            f.write(block)


def suite_static(res: Results, st: Settings, server: h.Server) -> None:
    """wrk -c50 on the 1 KiB file; wsload get with 4 connections on the 100 MiB file."""
    port = str(server.port)
    url = f"http://{h.HOST}:{port}/{FILE_SMALL}"
    h.wrk(url, ECHO_CONNS, st.warmup)

    def small() -> tuple[float, dict[str, Any]]:
        r = h.wrk(url, ECHO_CONNS, st.seconds)
        return r["requests_per_s"], {}

    measure(res, "static", "small", server, "req/s", small)

    def big() -> tuple[float, dict[str, Any]]:
        r = h.wsload(["get", h.HOST, port, f"/{FILE_BIG}", str(BIG_CONNS), f"{st.seconds:g}"],
                     st.seconds + 60)
        return r["bytes_per_s"] / 1e6, {"files_per_s": r["requests_per_s"]}

    h.wsload(["get", h.HOST, port, f"/{FILE_BIG}", str(BIG_CONNS), f"{st.warmup:g}"],
             st.warmup + 60)
    measure(res, "static", "big", server, "MB/s", big)


def ws_servers() -> ServerList:
    """Name, argv and port of every WebSocket server."""
    return [(name, [PY, str(SERVERS / f"{name}_ws.py"), "--port", str(port)], port)
            for name, port in (("mgpy", h.free_port()), ("aiohttp", h.free_port()),
                               ("websockets", h.free_port()))]


def suite_ws(res: Results, st: Settings, server: h.Server) -> None:
    """Idle memory and push with N connections on a fresh server, then the echo runs."""
    port = str(server.port)
    h.wsload(["echo", h.HOST, port, "/", "2", "32", "0.3"], 30)
    fds = h.open_fds(server.pid)
    n = st.idle_conns
    gen = idle_memory(res, "ws", server, ["push", h.HOST, port, "/", str(n), str(st.pushes),
                                          "--wait"], n)
    if gen:
        try:
            gen.say("go")
            r = gen.read_json(60 + 35 * st.pushes)
            gen.finish()
            if r.get("errors") or r.get("missing") or r.get("bad"):
                raise h.BenchError(f"push: {r.get('missing')} messages missing, "
                                   f"{r.get('bad')} wrong, {r.get('errors')} connection errors")
            res.put("ws", "push", server.name, {
                "value": r["push_ms_median"], "unit": "ms", "runs_ms": r["push_ms"],
                "from_send_ms": r["push_ms_from_send"], "conns": r["conns"],
            })
        except h.BenchError as e:
            res.put("ws", "push", server.name, {"error": str(e)})
        finally:
            gen.close()
    server.wait_fds_below(fds + 10)

    for metric, size, kind in (("echo_small", 32, "text"), ("echo_64k", 65536, "binary")):
        base = ["echo", h.HOST, port, "/", str(ECHO_CONNS), str(size)]
        try:
            h.wsload([*base, f"{st.warmup:g}", kind], st.warmup + 60)
        except h.BenchError as e:
            res.put("ws", metric, server.name, {"error": f"warm-up: {e}"})
            continue

        def echo(base: list[str] = base, kind: str = kind) -> tuple[float, dict[str, Any]]:
            r = h.wsload([*base, f"{st.seconds:g}", kind], st.seconds + 60)
            return r["round_trips_per_s"], {}

        measure(res, "ws", metric, server, "round trips/s", echo)


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
    body: Callable[[Results, Settings, h.Server], None],
    tmp: Path,
) -> None:
    """Start each server in turn, run the suite body against it, stop it."""
    metrics = [r.metric for r in ROWS if r.suite == suite]
    missing = mgpy_missing()
    for name, argv, port in servers:
        if st.servers is not None and name not in st.servers:
            continue
        print(f"  [{suite}] {name}", flush=True)
        if name == "mgpy" and missing:
            for m in metrics:
                res.put(suite, m, name, {"error": missing})
            continue
        server = h.Server(name, argv, port, tmp)
        try:
            server.start()
            body(res, st, server)
        except h.BenchError as e:
            for m in metrics:
                if res.get(suite, m, name) is None:
                    res.put(suite, m, name, {"error": str(e)})
        finally:
            server.stop()


@dataclass
class Line:
    """The report strings for one Row."""

    values: str
    ratios: str
    target: str
    status: str
    errors: list[str]


def judge(res: Results, row: Row) -> Line:
    """Compute the values, mgpy/peer ratios, target and PASS/MISS/ERROR for one row."""
    errors: list[str] = []
    values: list[str] = []
    ratios: list[str] = []
    cells = {}
    for name in ("mgpy", *row.peers):
        rec = res.get(row.suite, row.metric, name)
        if rec is None:
            continue
        if "error" in rec:
            values.append(f"{name} ERROR")
            errors.append(f"{row.label} / {name}: {rec['error']}")
            continue
        cells[name] = float(rec["value"])
        values.append(f"{name} {fmt(rec['value'], row.unit)}")
    mine = cells.get("mgpy")
    for peer in row.peers:
        if mine is not None and cells.get(peer):
            ratios.append(f"{mine / cells[peer]:.2f}x {peer}")
    target, status = "-", "-"
    if row.target is not None:
        op = ">=" if row.higher_is_better else "<="
        if row.target_peer is None:
            target = f"{op} {row.target:g} {row.unit}"
            got = mine
        else:
            target = f"{op} {row.target:g}x {row.target_peer}"
            peer_v = cells.get(row.target_peer)
            got = mine / peer_v if mine is not None and peer_v else None
        if got is None:
            status = "ERROR"
        elif (got >= row.target) if row.higher_is_better else (got <= row.target):
            status = "PASS"
        else:
            status = "MISS"
    return Line(" · ".join(values), ", ".join(ratios) or "-", target, status, errors)


def report(res: Results, st: Settings, meta: dict[str, Any], started: float) -> None:
    """Print the table and write latest.json / latest.md."""
    rows_out: list[dict[str, Any]] = []
    notes: list[str] = []
    lines = ["| Benchmark | Unit | Results | mgpy ratio | Target | Result |",
             "|---|---|---|---|---|---|"]
    for row in ROWS:
        if row.suite not in res.data:
            continue
        ln = judge(res, row)
        notes.extend(ln.errors)
        status = f"**{ln.status}**" if ln.status in ("MISS", "ERROR") else ln.status
        lines.append(f"| {row.label} | {row.unit} | {ln.values} | {ln.ratios} | {ln.target} | "
                     f"{status} |")
        rows_out.append({"suite": row.suite, "metric": row.metric, "label": row.label,
                         "unit": row.unit, "values": ln.values, "ratios": ln.ratios,
                         "target": ln.target, "status": ln.status})
    load_lines = ["| Run | Server CPU | Generator CPU | Other CPU | Verdict |",
                  "|---|---|---|---|---|"]
    for suite, metrics in res.data.items():
        for metric, cells in metrics.items():
            for name, rec in cells.items():
                load = rec.get("load")
                if not load:
                    continue
                load_lines.append(
                    f"| {suite} {metric} / {name} | {load['server_cpu_pct']:.0f}% | "
                    f"{load['gen_cpu_pct']:.0f}% | {load['other_cpu_pct']:.0f}% | "
                    f"{load['verdict']} |")
                if load["other_cpu_pct"] > 15:
                    notes.append(f"{suite} {metric} / {name}: other processes used "
                                 f"{load['other_cpu_pct']:.0f}% of a CPU; numbers are noisy")
                if load["verdict"].startswith("generator"):
                    notes.append(f"{suite} {metric} / {name}: the generator saturated its CPU; "
                                 "the number is a lower bound")
    elapsed = time.monotonic() - started
    head = (f"mgpy benchmarks, {meta['date']}, {meta['machine']}; servers pinned to CPU "
            f"{meta['server_cpu']}, generators to CPU {meta['gen_cpu']}; "
            f"{st.seconds:g} s per throughput run; total {elapsed:.0f} s.")
    md = [head, "", *lines, "", "Load check (percent of one CPU during each run):", "",
          *load_lines]
    if notes:
        md += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    out = {"meta": {**meta, "elapsed_s": round(elapsed, 1)}, "rows": rows_out,
           "results": res.data, "notes": notes}
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")


def main() -> int:
    """Parse options, run the chosen suites, report."""
    ap = argparse.ArgumentParser(description="mgpy benchmarks (see bench/README.md)")
    ap.add_argument("--only", default=",".join(SUITES),
                    help="comma-separated suites to run: tcp,http,static,ws")
    ap.add_argument("--quick", action="store_true", help="3 s runs, 3 pushes (smoke test)")
    ap.add_argument("--servers", default=None,
                    help="comma-separated server names to run (default: all)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per throughput run")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    bad = [s for s in only if s not in SUITES]
    if bad:
        ap.error(f"unknown suite(s): {', '.join(bad)}")
    if not h.WSLOAD.exists():
        ap.error(f"{h.WSLOAD} is missing; run bash bench/setup.sh first")
    st = Settings(
        seconds=args.seconds or (3.0 if args.quick else 10.0),
        warmup=0.5 if args.quick else 1.0,
        idle_conns=IDLE_CONNS,
        pushes=3 if args.quick else 5,
        servers=frozenset(args.servers.split(",")) if args.servers else None,
    )
    nofile = h.raise_nofile()
    if nofile < st.idle_conns + 100:
        print(f"warning: RLIMIT_NOFILE hard limit {nofile} < {st.idle_conns + 100}; "
              "the 10 000-connection runs will fail", file=sys.stderr)
    if h.SERVER_CPU is None:
        print("warning: fewer than 2 CPUs or no taskset; running unpinned", file=sys.stderr)
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "server_cpu": h.SERVER_CPU, "gen_cpu": h.GEN_CPU, "seconds": st.seconds,
        "quick": args.quick, "suites": only,
    }
    started = time.monotonic()
    res = Results()
    tmp = h.make_tempdir()
    try:
        for suite in only:
            print(f"[{suite}]", flush=True)
            if suite == "tcp":
                run_suite(res, st, suite, tcp_servers(), suite_tcp, tmp)
            elif suite == "http":
                run_suite(res, st, suite, http_servers(), suite_http, tmp)
            elif suite == "static":
                www = tmp / "www"
                make_files(www)
                run_suite(res, st, suite, static_servers(www, tmp), suite_static, tmp)
            else:
                run_suite(res, st, suite, ws_servers(), suite_ws, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(res, st, meta, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
