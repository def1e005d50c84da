"""The ITA HWPE on Verilator, programmed through registers; results compared in memory.

Runs the pyuvm tests of verif/hwpe/tests.py through the same entry point as
``make sim TEST=ita_hwpe`` / ``TEST=uvm_hwpe_*``; the scenarios and seeds of the second part
come from verif/testplan.yaml (``ci_seeds``).
"""

import pytest

from verif.hwpe.sim import TESTS, run_hwpe_test
from verif.regress import regression_tests

pytestmark = pytest.mark.verilator

DEFAULTS = {"MODE": "attention", "S": 64, "E": 64, "P": 64, "F": 64, "H": 1, "ACT": "gelu",
            "BIAS": True, "CAUSAL": False, "VALID_KEYS": 0, "LOGIT_FRAC": 0, "STALLS": True,
            "ARRAY_N": 16, "ARRAY_M": 64, "SEED": 1, "WAVES": False}

CASES = [
    dict(S=128, E=128, P=128, SEED=1),
    dict(S=100, E=72, P=40, CAUSAL=True, H=3, SEED=2),   # three heads queued in two contexts
    dict(MODE="ffn", S=96, E=64, F=160, ACT="gelu", SEED=3),
    dict(MODE="linear", S=65, E=33, P=17, ACT="relu", BIAS=False, SEED=4),
    dict(MODE="qkav", S=130, P=64, VALID_KEYS=120, SEED=5),
    dict(S=96, E=64, P=64, CAUSAL=True, LOGIT_FRAC=3, H=2, SEED=6),  # the MODE field's step
]


@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_hwpe_bit_exact(opts):
    status, fields = run_hwpe_test({**DEFAULTS, **opts})
    assert status == "PASS", fields
    assert fields["cycles"] >= fields["ideal_cycles"]


UVM_CASES = [(t["name"], seed, t["expect"]) for t in regression_tests()
             if t["name"] in TESTS for seed in t["ci_seeds"]]


@pytest.mark.parametrize("name, seed, expect", UVM_CASES,
                         ids=[f"{n}-seed{s}" for n, s, _e in UVM_CASES])
def test_hwpe_uvm(name, seed, expect):
    test = TESTS[name]
    options = {"SEED": seed, "WAVES": False, "COUNT": 0, "STALLS": True,
               "STALL_PROFILE": "auto", "ARRAY_N": 16, "ARRAY_M": 64}
    status, fields = run_hwpe_test(options, name, test.testcase)
    if expect == "pass":
        assert status == "PASS", fields
        assert fields["errors"] == 0 and fields["tcdm_accesses"] > 0
    else:
        assert status == "FAIL", f"{name} passed although it must fail: {fields}"
        # The wrong value is reported when the job ends and again by the final check.
        assert fields["errors"] == 2, fields


def test_clock_gate_keeps_results_and_cycles():
    """The gated HWPE (every other test here, and the cluster's) and the free-running one:
    same PASS, same cycles, on a stalling memory, with two heads queued."""
    opts = {**DEFAULTS, **dict(S=100, E=72, P=40, CAUSAL=True, H=2, SEED=7)}
    runs = {gate: run_hwpe_test(opts, clock_gate=gate) for gate in (True, False)}
    for status, fields in runs.values():
        assert status == "PASS", fields
    assert runs[True][1]["cycles"] == runs[False][1]["cycles"]
