"""The ITA HWPE on Verilator, programmed through registers; results compared in memory.

Runs the cocotb testbench verif/hwpe/tb_hwpe.py through the same entry point as
``make sim TEST=ita_hwpe``.
"""

import pytest

from verif.hwpe.sim import run_hwpe_test

pytestmark = pytest.mark.verilator

DEFAULTS = {"MODE": "attention", "S": 64, "E": 64, "P": 64, "F": 64, "H": 1, "ACT": "gelu",
            "BIAS": True, "CAUSAL": False, "VALID_KEYS": 0, "STALLS": True, "N": 16,
            "M": 64, "SEED": 1, "WAVES": False}

CASES = [
    dict(S=128, E=128, P=128, SEED=1),
    dict(S=100, E=72, P=40, CAUSAL=True, H=3, SEED=2),   # three heads queued in two contexts
    dict(MODE="ffn", S=96, E=64, F=160, ACT="gelu", SEED=3),
    dict(MODE="linear", S=65, E=33, P=17, ACT="relu", BIAS=False, SEED=4),
    dict(MODE="qkav", S=130, P=64, VALID_KEYS=120, SEED=5),
]


@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_hwpe_bit_exact(opts):
    status, fields = run_hwpe_test({**DEFAULTS, **opts})
    assert status == "PASS", fields
    assert fields["cycles"] >= fields["ideal_cycles"]
