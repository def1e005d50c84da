"""The pyuvm engine environment on Verilator: the CI subset of the regression list.

Cases and seeds come from ``verif/testplan.yaml`` (``ci_seeds``); negative tests must fail,
and fail for the right reason.
"""

import pytest

from verif import engine_uvm
from verif.regress import regression_tests

CI_CASES = [(t["name"], seed, t["expect"]) for t in regression_tests()
            if t["name"] in engine_uvm.TESTS for seed in t["ci_seeds"]]

#: What the failure message of each negative test must contain.
NEGATIVE_REASONS = {
    "uvm_engine_inject_lsb": "differ from the golden model",
    "uvm_engine_inject_drop": "output beat",
    "uvm_engine_inject_hang": "watchdog: hung",
}


@pytest.mark.verilator
@pytest.mark.parametrize("name, seed, expect", CI_CASES,
                         ids=[f"{n}-seed{s}" for n, s, _e in CI_CASES])
def test_engine_uvm(name, seed, expect):
    outcome = engine_uvm.run_engine_uvm(name, seed)
    fields = outcome.fields
    if expect == "pass":
        assert outcome.status == "PASS", outcome.message
        assert fields["mismatches"] == 0 and fields["errors"] == 0
        assert fields["checked_beats"] > 0
    else:
        assert outcome.status == "FAIL", f"{name} passed although it must fail: {fields}"
        assert NEGATIVE_REASONS[name] in (outcome.message or ""), outcome.message
