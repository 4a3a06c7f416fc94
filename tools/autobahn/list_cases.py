"""Print, as JSON, the Autobahn cases a fuzzing spec selects (run by run.py).

Strategy: use the test suite's own CaseSet.parseSpecCases, the function wstest itself
uses to expand "cases"/"exclude-cases" patterns, so run.py knows exactly which case ids
a run must produce and can flag any that are missing from the report. Output:
    {"cases": [{"id": "1.1.1", "description": "..."}, ...],
     "categories": {"1": "Framing", ...}}

Usage: .venv27/bin/python list_cases.py SPEC.json
Runs under the Python 2.7 of tools/autobahn/.venv27 (syntax kept valid for Python 3 too).
"""
from __future__ import print_function  # noqa: UP010 -- this file runs on Python 2.7

import json
import sys
import warnings


def main(argv):
    """Print the expanded case list of the spec file argv[1]."""
    if len(argv) != 2:
        print("usage: list_cases.py SPEC.json", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", message=".*Python 2 is no longer supported.*")
    from autobahntestsuite.case import (
        CaseBasename,
        CaseCategories,
        Cases,
        CaseSetname,
        CaseSubCategories,
    )
    from autobahntestsuite.caseset import CaseSet

    with open(argv[1]) as f:
        spec = json.load(f)
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    try:
        ids = case_set.parseSpecCases(spec)
        cases = [
            {
                "id": i,
                "description": case_set.caseClassToPrettyDescription(case_set.CasesById[i]),
            }
            for i in ids
        ]
    except (KeyError, ValueError) as e:
        print("list_cases.py: unknown case id in spec: " + str(e), file=sys.stderr)
        return 2
    json.dump({"cases": cases, "categories": CaseCategories}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
