"""Summarise an Autobahn|Testsuite report (index.json) against the cases a spec selects.

Strategy: the expected case list comes from the suite's own pattern expansion
(list_cases.py, run under .venv27), so a case the report lacks is reported as MISSING
rather than silently ignored. Each case gets one verdict column: its `behavior` (OK,
NON-STRICT, INFORMATIONAL, UNIMPLEMENTED), or FAILED when the behavior is FAILED or
unknown or when `behaviorClose` is FAILED or UNCLEAN (the cells Autobahn's HTML report
paints red). Other close behaviours (WRONG CODE, FAILED BY CLIENT) on passing cases are
counted as notes. Output: a plain-text table per top-level section, the failing cases
with Autobahn's explanation, missing ids, and summary.md (a Markdown table). Used by
run.py; stdlib only.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
VENV27_PY = HERE / ".venv27" / "bin" / "python"
LIST_CASES = HERE / "list_cases.py"

# Per-case verdict columns, in Autobahn's words, plus cases the report lacks.
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "MISSING")
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"})
FAILING_CLOSE = frozenset({"FAILED", "UNCLEAN"})


class SummaryError(Exception):
    """The expected case list could not be computed."""


def expected_cases(spec_path: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The cases `spec_path` selects and the section names, via list_cases.py."""
    res = subprocess.run(
        [str(VENV27_PY), str(LIST_CASES), str(spec_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if res.returncode != 0:
        raise SummaryError(f"list_cases.py failed:\n{res.stderr.strip()}")
    data = json.loads(res.stdout)
    return list(data["cases"]), dict(data["categories"])


def testsuite_version() -> str:
    """The installed autobahntestsuite version, from its dist-info directory name."""
    for d in (HERE / ".venv27" / "lib").glob("python2.7/site-packages/autobahntestsuite-*"):
        return d.name.removesuffix(".dist-info").split("-")[1]
    return "?"


def id_key(case_id: str) -> tuple[int, ...]:
    """'9.10.2' -> (9, 10, 2) for numeric ordering."""
    return tuple(int(x) for x in case_id.split("."))


def verdict(entry: dict[str, Any]) -> str:
    """One column of COLUMNS for a case entry of index.json."""
    behavior = str(entry.get("behavior"))
    if behavior not in PASSING or entry.get("behaviorClose") in FAILING_CLOSE:
        return "FAILED"
    return behavior


def strip_html(text: str) -> str:
    """Case descriptions are HTML fragments: plain text, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def summarize(
    outdir: Path, mode: str, agent: str | None, elapsed: float | None, notes: list[str],
    out: TextIO = sys.stdout,
) -> bool:
    """Print the summary, write summary.md; return True when nothing FAILED or is missing."""
    spec = json.loads((outdir / "spec.json").read_text())
    cases, categories = expected_cases(outdir / "spec.json")
    index_path = outdir / "index.json"
    index: dict[str, dict[str, dict[str, Any]]] = {}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:
        notes.append("no index.json: wstest wrote no report")
    if agent is None or agent not in index:
        if agent is None and len(index) == 1:
            agent = next(iter(index))
        elif index:
            notes.append(f"agent {agent!r} not in the report (agents there: {sorted(index)})")
    results = index.get(agent or "", {})
    extra = sorted(set(results) - {c["id"] for c in cases}, key=id_key)
    if extra:
        notes.append(f"report has cases the spec did not select: {', '.join(extra)}")

    sections: dict[str, dict[str, int]] = {}
    failed: list[tuple[str, str, dict[str, Any]]] = []
    missing: list[str] = []
    close_notes: dict[str, int] = {}
    for case in cases:
        cid = case["id"]
        row = sections.setdefault(cid.split(".")[0], dict.fromkeys(COLUMNS, 0))
        entry = results.get(cid)
        if entry is None:
            row["MISSING"] += 1
            missing.append(cid)
            continue
        v = verdict(entry)
        row[v] += 1
        close = str(entry.get("behaviorClose"))
        if v == "FAILED":
            failed.append((cid, case["description"], entry))
        elif close not in ("OK", "INFORMATIONAL"):
            close_notes[close] = close_notes.get(close, 0) + 1

    total = dict.fromkeys(COLUMNS, 0)
    for row in sections.values():
        for col in COLUMNS:
            total[col] += row[col]
    ok = not failed and not missing and bool(cases)
    if not cases:
        notes.append("the spec selects no cases")

    # Plain-text table for the terminal.
    heads = ("Section", "Cases", *COLUMNS)
    rows = [
        (f"{sec} {categories.get(sec, '')}".strip(), str(sum(r.values())), *map(str, r.values()))
        for sec, r in sorted(sections.items(), key=lambda kv: int(kv[0]))
    ]
    rows.append(("Total", str(len(cases)), *map(str, total.values())))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                         enumerate(zip(cells, widths, strict=True)))

    who = f"agent {agent!r}" if agent else "no agent"
    took = f" in {elapsed:.1f} s" if elapsed is not None else ""
    print(f"\nAutobahn|Testsuite {testsuite_version()}, {mode} mode, {who}: "
          f"{len(cases)} cases{took}", file=out)
    print(line(heads), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for r in rows:
        print(line(r), file=out)
    if close_notes:
        print("close behaviour notes (not failures): "
              + ", ".join(f"{k}: {n}" for k, n in sorted(close_notes.items())), file=out)
    for cid, desc, entry in failed:
        detail = _case_detail(outdir, entry)
        print(f"FAILED {cid} (behavior {entry.get('behavior')}, close "
              f"{entry.get('behaviorClose')}): {desc}{detail}", file=out)
    if missing:
        more = f" ... (+{len(missing) - 30})" if len(missing) > 30 else ""
        shown = ", ".join(missing[:30]) + more
        print(f"MISSING {len(missing)} case(s): {shown}", file=out)
    for n in notes:
        print(f"note: {n}", file=out)
    print(f"report: {outdir / 'index.html'}", file=out)
    print(("PASS" if ok and not notes else "PASS (see notes)" if ok else "FAIL")
          + f": {total['FAILED']} failed, {total['MISSING']} missing", file=out)

    _write_markdown(outdir, mode, agent, spec, sections, categories, total, failed, missing,
                    elapsed, ok)
    return ok


def _case_detail(outdir: Path, entry: dict[str, Any]) -> str:
    """' -- result / close result' from a case's own JSON report, if readable."""
    try:
        case = json.loads((outdir / str(entry.get("reportfile"))).read_text())
    except (OSError, ValueError):
        return ""
    parts = [strip_html(str(case.get(k, ""))) for k in ("result", "resultClose")]
    return " -- " + " / ".join(p for p in parts if p)


def _write_markdown(
    outdir: Path, mode: str, agent: str | None, spec: dict[str, Any],
    sections: dict[str, dict[str, int]], categories: dict[str, str], total: dict[str, int],
    failed: list[tuple[str, str, dict[str, Any]]], missing: list[str],
    elapsed: float | None, ok: bool,
) -> None:
    """summary.md: a table ready to paste into a README."""
    heads = ["Section", "Cases", "OK", "Non-strict", "Informational", "Unimplemented",
             "Failed", "Missing"]
    md = [
        f"### Autobahn|Testsuite {testsuite_version()}: {mode} mode, agent `{agent}`",
        "",
        f"Cases `{', '.join(spec.get('cases', []))}`"
        + (f" excluding `{', '.join(spec['exclude-cases'])}`" if spec.get("exclude-cases") else "")
        + f"; run {datetime.date.today().isoformat()}"
        + (f", {elapsed:.0f} s" if elapsed is not None else "") + ".",
        "",
        "| " + " | ".join(heads) + " |",
        "|---|" + "---:|" * (len(heads) - 1),
    ]
    for sec, r in sorted(sections.items(), key=lambda kv: int(kv[0])):
        name = f"{sec} {categories.get(sec, '')}".strip()
        md.append(f"| {name} | {sum(r.values())} | " + " | ".join(map(str, r.values())) + " |")
    md.append(f"| **Total** | **{sum(total.values())}** | "
              + " | ".join(f"**{v}**" for v in total.values()) + " |")
    md.append("")
    md.append(f"Result: **{'PASS' if ok else 'FAIL'}** ({total['FAILED']} failed, "
              f"{total['MISSING']} missing).")
    for cid, desc, _ in failed:
        md.append(f"- FAILED {cid}: {desc}")
    if missing:
        md.append(f"- Missing: {', '.join(missing)}")
    (outdir / "summary.md").write_text("\n".join(md) + "\n")
