"""The pytest module behind ``make regress``: one test case per (test, seed).

Not part of ``make test`` (it lives outside ``tests/``); :mod:`verif.regress` runs it under
pytest-xdist and passes it :class:`verif.regress.RegressOptions` (the JSON list of cases
and the directory for the per-case records) through :mod:`verif.channel`. A case passes when
the run's outcome is the expected one (PASS, or FAIL for the negative tests), so the JUnit
XML shows real regressions only.

With a Dask scheduler in the options, one pytest process submits every case to the cluster
at the start (:class:`verif.distributed.Submission`) and each test waits for its own: the
cases run in parallel on the workers while the test ids, records and JUnit XML stay those of
a local run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verif.channel import receive
from verif.distributed import Submission
from verif.regress import (
    RegressOptions,
    case_id,
    load_cases,
    record_from_reply,
    run_case,
    run_case_portable,
)

OPTIONS = receive(RegressOptions, keep_copy=False)
CASES = load_cases(OPTIONS.cases_file)


@pytest.fixture(scope="session")
def runner():
    """case -> record: here, or through the Dask cluster."""
    if not OPTIONS.dask:
        yield run_case
        return
    target = f"{run_case_portable.__module__}:{run_case_portable.__name__}"
    with Submission(OPTIONS.dask, target, CASES, [case_id(c) for c in CASES]) as jobs:
        yield lambda case: record_from_reply(case, lambda: jobs.reply(case_id(case)),
                                             Path(OPTIONS.out))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_regression_case(case, runner):
    record = runner(case)
    out = Path(OPTIONS.out) / "records"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{case_id(case)}.json").write_text(json.dumps(record, indent=1))
    assert record["ok"], (f"{case['test']} seed {case['seed']}: {record['status']} "
                          f"(expected {case['expect']}): {record['message']}; rerun: "
                          f"{record['rerun']}")
