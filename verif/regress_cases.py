"""The pytest module behind ``make regress``: one test case per (test, seed).

Not part of ``make test`` (it lives outside ``tests/``); :mod:`verif.regress` runs it under
pytest-xdist and passes it :class:`verif.regress.RegressOptions` (the JSON list of cases
and the directory for the per-case records) through :mod:`verif.channel`. A case passes when
the run's outcome is the expected one (PASS, or FAIL for the negative tests), so the JUnit
XML shows real regressions only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verif.channel import receive
from verif.regress import RegressOptions, load_cases, run_case

OPTIONS = receive(RegressOptions, keep_copy=False)
CASES = load_cases(OPTIONS.cases_file)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['test']}-seed{c['seed']}" for c in CASES])
def test_regression_case(case):
    record = run_case(case)
    out = Path(OPTIONS.out) / "records"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{case['test']}-seed{case['seed']}.json").write_text(json.dumps(record, indent=1))
    assert record["ok"], (f"{case['test']} seed {case['seed']}: {record['status']} "
                          f"(expected {case['expect']}): {record['message']}; rerun: "
                          f"{record['rerun']}")
