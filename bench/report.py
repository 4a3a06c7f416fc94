"""The benchmark table: rows and targets, collected samples, PASS/MISS, latest.json/.md.

Strategy: `ROWS` is the single list of what is reported, with each target.  `Results`
keeps every sample of every (suite, metric, server) cell; a cell's value is its best quiet
sample (its best sample, marked `*`, when every run was noisy).  `report` turns the cells
into the printed table, the load-check table and the notes, and writes both files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from harness import BENCH

RESULTS = BENCH / "results"
#: a sample is noisy when other processes used more than this share of one CPU (percent)
NOISY_PCT = 15.0


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
    Row(
        "tcp",
        "idle_mem",
        "TCP memory per idle conn (N=10 000)",
        "KiB",
        False,
        ("asyncio", "uvloop"),
    ),
    Row(
        "http",
        "hello",
        "HTTP hello keep-alive (wrk -c50)",
        "req/s",
        True,
        ("uvicorn", "aiohttp"),
        "uvicorn",
        1.5,
    ),
    Row(
        "https",
        "hello",
        "HTTPS hello keep-alive vs plain HTTP, mgpy (wrk -c50)",
        "req/s",
        True,
        ("mgpy-http",),
    ),
    Row(
        "static",
        "small",
        "Static 1 KiB file (wrk -c50)",
        "req/s",
        True,
        ("aiohttp", "nginx"),
        "aiohttp",
        5.0,
    ),
    Row(
        "static",
        "big",
        "Static 100 MiB file (4 conns)",
        "MB/s",
        True,
        ("nginx", "aiohttp"),
        "nginx",
        0.9,
    ),
    Row(
        "ws",
        "echo_small",
        "WebSocket echo, 32 B text x 50",
        "round trips/s",
        True,
        ("aiohttp", "websockets"),
        "aiohttp",
        1.0,
    ),
    Row(
        "ws",
        "echo_64k",
        "WebSocket echo, 64 KiB binary x 50",
        "round trips/s",
        True,
        ("aiohttp", "websockets"),
        "aiohttp",
        1.0,
    ),
    Row(
        "ws",
        "idle_mem",
        "WebSocket memory per idle conn (N=10 000)",
        "KiB",
        False,
        ("aiohttp", "websockets"),
        None,
        2.0,
    ),
    Row(
        "ws",
        "push",
        "WebSocket push to 10 000 conns (median)",
        "ms",
        False,
        ("aiohttp", "websockets"),
        "aiohttp",
        0.7,
    ),
    # permessage-deflate on in every server (RFC 7692), offered like Chromium
    Row(
        "wsz",
        "echo_512",
        "Compressed WebSocket echo, 512 B JSON x 50",
        "round trips/s",
        True,
        ("aiohttp", "websockets"),
        "aiohttp",
        1.0,
    ),
    Row(
        "wsz",
        "idle_mem",
        "Memory per idle compressed WebSocket (N=10 000)",
        "KiB",
        False,
        ("aiohttp", "websockets"),
        None,
        4.0,
    ),
    Row(
        "wsz",
        "idle_mem_pushed",
        "... after one 1 KiB push to all of them",
        "KiB",
        False,
        ("aiohttp", "websockets"),
        None,
        4.0,
    ),
    Row(
        "wsz",
        "push_32",
        "Compressed push, 32 B JSON to 10 000 conns (median)",
        "ms",
        False,
        ("aiohttp", "websockets", "mgpy-plain"),
        "aiohttp",
        0.5,
    ),
    Row(
        "wsz",
        "push_32",
        "... the same vs mgpy's uncompressed push",
        "ms",
        False,
        ("mgpy-plain",),
        "mgpy-plain",
        1.2,
    ),
    Row(
        "wsz",
        "push_1k",
        "Compressed push, 1 KiB JSON to 10 000 conns (median)",
        "ms",
        False,
        ("aiohttp", "websockets", "mgpy-plain"),
        "aiohttp",
        0.5,
    ),
    Row(
        "wsz",
        "push_1k",
        "... the same vs mgpy's uncompressed push",
        "ms",
        False,
        ("mgpy-plain",),
        "mgpy-plain",
        1.2,
    ),
)
HIGHER_IS_BETTER = {(r.suite, r.metric): r.higher_is_better for r in ROWS}


def fmt(value: float, unit: str) -> str:
    """Format a number for the table."""
    if unit in ("KiB", "ms"):
        return f"{value:,.1f}".replace(",", " ")
    return f"{value:,.0f}".replace(",", " ")


def is_noisy(rec: dict[str, Any]) -> bool:
    """True when other processes used more than NOISY_PCT of a CPU during the sample."""
    load = rec.get("load")
    return load is not None and float(load["other_cpu_pct"]) > NOISY_PCT


class Results:
    """suite -> metric -> server -> list of samples ({"value": ...} or {"error": ...})."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}

    def put(self, suite: str, metric: str, server: str, record: dict[str, Any]) -> None:
        """Store one sample (or an error) and print it."""
        cell = self.data.setdefault(suite, {}).setdefault(metric, {}).setdefault(server, [])
        cell.append(record)
        if "error" in record:
            print(f"    {server:<10} {metric:<10} ERROR {record['error']}", flush=True)
            return
        load = record.get("load")
        extra = ""
        if load:
            extra = (
                f"  (server CPU {load['server_cpu_pct']:.0f}%, generator "
                f"{load['gen_cpu_pct']:.0f}%, other {load['other_cpu_pct']:.0f}%"
                f"{', noisy' if is_noisy(record) else ''})"
            )
        print(
            f"    {server:<10} {metric:<10} {fmt(record['value'], record['unit'])} "
            f"{record['unit']}{extra}",
            flush=True,
        )

    def fail(self, suite: str, metric: str, server: str, msg: str) -> None:
        """Record that a cell could not be measured."""
        self.put(suite, metric, server, {"error": msg})

    def best(self, suite: str, metric: str, server: str) -> dict[str, Any] | None:
        """The cell's value: its best quiet sample, else its best sample, else its error."""
        samples = self.data.get(suite, {}).get(metric, {}).get(server)
        if not samples:
            return None
        good = [s for s in samples if "error" not in s]
        if not good:
            return samples[-1]
        quiet = [s for s in good if not is_noisy(s)] or good
        sign = 1.0 if HIGHER_IS_BETTER.get((suite, metric), True) else -1.0
        return max(quiet, key=lambda s: sign * float(s["value"]))

    def needs_sample(self, suite: str, metric: str, server: str) -> bool:
        """True while a cell has neither an error nor a quiet sample."""
        samples = self.data.get(suite, {}).get(metric, {}).get(server, [])
        return not any("error" in s or not is_noisy(s) for s in samples)


@dataclass
class Line:
    """The report strings for one Row."""

    values: str
    ratios: str
    target: str
    status: str
    errors: list[str]
    noisy: list[str]


def judge(res: Results, row: Row) -> Line:
    """Compute the values, mgpy/peer ratios, target and PASS/MISS/ERROR for one row."""
    errors: list[str] = []
    noisy: list[str] = []
    values: list[str] = []
    ratios: list[str] = []
    cells: dict[str, float] = {}
    for name in ("mgpy", *row.peers):
        rec = res.best(row.suite, row.metric, name)
        if rec is None:
            continue
        if "error" in rec:
            values.append(f"{name} ERROR")
            errors.append(f"{row.label} / {name}: {rec['error']}")
            continue
        cells[name] = float(rec["value"])
        mark = "*" if is_noisy(rec) else ""
        if mark:
            noisy.append(f"{row.label} / {name}")
        values.append(f"{name} {fmt(rec['value'], row.unit)}{mark}")
    mine = cells.get("mgpy")
    for peer in row.peers:
        if mine is not None and cells.get(peer):
            ratios.append(f"{mine / cells[peer]:.2f}x {peer}")
    target, status = "-", "-"
    if row.target is not None:
        op = ">=" if row.higher_is_better else "<="
        got: float | None
        if row.target_peer is None:
            target = f"{op} {row.target:g} {row.unit}"
            got = mine
        else:
            target = f"{op} {row.target:g}x {row.target_peer}"
            peer_v = cells.get(row.target_peer)
            got = mine / peer_v if mine is not None and peer_v else None
        ran = res.best(row.suite, row.metric, "mgpy") is not None and (
            row.target_peer is None or res.best(row.suite, row.metric, row.target_peer) is not None
        )
        if not ran:
            status = "-"  # excluded with --servers
        elif got is None:
            status = "ERROR"
        elif (got >= row.target) if row.higher_is_better else (got <= row.target):
            status = "PASS"
        else:
            status = "MISS"
    return Line(" · ".join(values), ", ".join(ratios) or "-", target, status, errors, noisy)


def report(res: Results, meta: dict[str, Any], started: float) -> None:
    """Print the table and write latest.json / latest.md."""
    rows_out: list[dict[str, Any]] = []
    notes: list[str] = []
    noisy: list[str] = []
    lines = [
        "| Benchmark | Unit | Results | mgpy ratio | Target | Result |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        if row.suite not in res.data:
            continue
        ln = judge(res, row)
        notes.extend(ln.errors)
        noisy.extend(ln.noisy)
        status = f"**{ln.status}**" if ln.status in ("MISS", "ERROR") else ln.status
        lines.append(
            f"| {row.label} | {row.unit} | {ln.values} | {ln.ratios} | {ln.target} | {status} |"
        )
        rows_out.append(
            {
                "suite": row.suite,
                "metric": row.metric,
                "label": row.label,
                "unit": row.unit,
                "values": ln.values,
                "ratios": ln.ratios,
                "target": ln.target,
                "status": ln.status,
            }
        )
    load_lines = [
        "| Run | Server CPU | Generator CPU | Other CPU | Verdict |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        for name in res.data.get(row.suite, {}).get(row.metric, {}):
            rec = res.best(row.suite, row.metric, name)
            load = rec.get("load") if rec else None
            if not load or row.metric.startswith("push"):
                continue
            load_lines.append(
                f"| {row.label} / {name} | {load['server_cpu_pct']:.0f}% | "
                f"{load['gen_cpu_pct']:.0f}% | {load['other_cpu_pct']:.0f}% | "
                f"{load['verdict']} |"
            )
            if load["verdict"].startswith("generator"):
                notes.append(
                    f"{row.label} / {name}: the generator saturated its CPU; the "
                    "number is a lower bound for the server"
                )
    if noisy:
        notes.append(
            "* measured while other processes used more than "
            f"{NOISY_PCT:.0f}% of a CPU in every round (noisy): " + "; ".join(noisy)
        )
    elapsed = time.monotonic() - started
    head = (
        f"mgpy benchmarks, {meta['date']}, {meta['machine']}; servers pinned to CPU "
        f"{meta['server_cpu']}, generators to CPU {meta['gen_cpu']}; "
        f"{'idle CPUs poll (cpu_dma_latency 0); ' if meta['idle_poll'] else ''}"
        f"{meta['seconds']:g} s per throughput run, best quiet run of up to "
        f"{meta['rounds']}; "
        f"total {elapsed:.0f} s."
    )
    md = [
        head,
        "",
        *lines,
        "",
        "Load check for the runs shown (percent of one CPU):",
        "",
        *load_lines,
    ]
    if notes:
        md += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    out = {
        "meta": {**meta, "elapsed_s": round(elapsed, 1)},
        "rows": rows_out,
        "results": res.data,
        "notes": notes,
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")
