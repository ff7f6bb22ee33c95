"""Every fault case of tests/fault_cases.py, run once, as the Reliability table of docs/reliability.md.

    python tests/fault_table.py                 # Markdown table + the closing figures
    python tests/fault_table.py --json out.json # the outcomes as data too

The figures: cases tried, cases that lost a finished row (or wrote one twice), cases that printed a
traceback, and cases whose exit code or checks differed from the expected ones. The 200,000-length
grid is run at its full size here (the test suite uses 20,000), and so are the large files of 26.16
(100,000 rows; 2,000 in the suite). It lives beside the cases it runs
(not a test module: pytest collects test_*.py only).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import fault_cases
import fault_cases_26


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the outcomes here")
    ap.add_argument("-k", help="only cases whose id contains this")
    args = ap.parse_args()
    fault_cases.GRID_SIZE["n"] = 200_000
    fault_cases_26.SCALE["rows"] = 100_000
    cases = [c for c in fault_cases.CASES if not args.k or args.k in c.id]
    results = fault_cases.run_all(cases)
    print("| # | case | what must happen | exit | what happened |")
    print("|---|---|---|---|---|")
    for c, o in results:
        seen = "skipped: " + o.note if o.rc is None and o.note.startswith("skipped") else cell(o.first_line()) or "(nothing on stderr)"
        if o.rows_expected:
            seen += f"; rows {o.rows_found}/{o.rows_expected}"
        if o.note and not o.note.startswith("skipped"):
            seen += f"; {o.note}"
        if o.problems:
            seen += "; **PROBLEMS: " + cell("; ".join(o.problems)) + "**"
        print(f"| {c.item} | {cell(c.what)} | {cell(c.expect)} | {o.rc} (expected {c.rc}) | {cell(seen)} |")
    ran = [(c, o) for c, o in results if not (o.rc is None and o.note.startswith("skipped"))]
    lost = sum(o.lost > 0 or o.duplicates > 0 for _, o in ran)
    tracebacks = sum(o.traceback for _, o in ran)
    wrong = sum(o.rc != c.rc or bool(o.problems) for c, o in ran)
    print(f"\n{len(ran)} fault cases tried ({len(results) - len(ran)} skipped); {lost} lost or doubled a row; "
          f"{tracebacks} printed a traceback; {wrong} ended otherwise than expected.")
    if args.json:
        args.json.write_text(json.dumps([{"id": c.id, "item": c.item, "expected_rc": c.rc, **asdict(o)}
                                         for c, o in results], indent=2))
    return 0 if not (lost or tracebacks or wrong) else 1


if __name__ == "__main__":
    sys.exit(main())
