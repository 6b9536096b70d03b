"""`python -m tests.conformance [-v]`: the conformance counts per file; `-v` lists every failure."""

from __future__ import annotations

import sys

from .suite import results, summary

outcomes = results()
print(summary(outcomes))
if "-v" in sys.argv[1:]:
    for case, outcome in outcomes:
        if outcome.status == "failed" or (outcome.status in sys.argv[2:]):
            print(f"{outcome.status}: {case.id}: {outcome.detail}")
failed = sum(1 for _, outcome in outcomes if outcome.status == "failed")
sys.exit(1 if failed else 0)
