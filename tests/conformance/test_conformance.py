"""Every conformance case the engine compiles evaluates as the CEL conformance suite says."""

from __future__ import annotations

import pytest

from .suite import Case, load_cases, run


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: case.id)
def test_conformance(case: Case) -> None:
    outcome = run(case)
    if outcome.status in ("out of scope", "refused"):
        pytest.skip(f"{outcome.status}: {outcome.detail}")
    assert outcome.status == "passed", outcome.detail
