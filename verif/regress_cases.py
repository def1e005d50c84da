"""The pytest module behind ``make regress``: one test case per (test, seed).

Not part of ``make test`` (it lives outside ``tests/``); :mod:`verif.regress` runs it under
pytest-xdist with ``REGRESS_CASES`` naming a JSON list of cases and ``REGRESS_OUT`` the
directory for the per-case records. A case passes when the run's outcome is the expected one
(PASS, or FAIL for the negative tests), so the JUnit XML shows real regressions only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from verif.regress import load_cases, run_case

CASES = load_cases(os.environ.get("REGRESS_CASES"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c['test']}-seed{c['seed']}" for c in CASES])
def test_regression_case(case):
    record = run_case(case)
    out = Path(os.environ["REGRESS_OUT"]) / "records"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{case['test']}-seed{case['seed']}.json").write_text(json.dumps(record, indent=1))
    assert record["ok"], (f"{case['test']} seed {case['seed']}: {record['status']} "
                          f"(expected {case['expect']}): {record['message']}; rerun: "
                          f"{record['rerun']}")
