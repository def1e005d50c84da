"""The engine on Verilator against the golden model: shapes, modes, stalls, geometries.

Every case runs the cocotb testbench verif/engine/tb_engine.py through the same entry point
as ``make sim``; a case passes only on status PASS with every output beat checked.
"""

import pytest

from verif.engine import run_engine_test

pytestmark = pytest.mark.verilator

DEFAULTS = {"S": 64, "E": 64, "P": 64, "F": 64, "H": 1, "ACT": "gelu", "BIAS": True,
            "CAUSAL": False, "VALID_KEYS": 0, "LOGIT_FRAC": 0, "STALLS": True, "ARRAY_N": 16,
            "ARRAY_M": 64, "SEED": 1, "WAVES": False}

CASES = [
    # The reference's CI shapes (S, E, P, F), with and without stalls.
    ("ita_attention", "attention", dict(S=64, E=64, P=64, F=64, SEED=1)),
    ("ita_attention", "attention", dict(S=128, E=192, P=256, F=256, STALLS=False, SEED=2)),
    ("ita_attention", "attention", dict(S=192, E=256, P=128, F=128, ACT="relu", SEED=3)),
    ("ita_ffn", "ffn", dict(S=64, E=64, F=64, SEED=4)),
    ("ita_ffn", "ffn", dict(S=192, E=256, F=128, ACT="relu", STALLS=False, SEED=5)),
    ("ita_linear", "linear", dict(S=128, E=64, P=192, ACT="identity", SEED=6)),
    ("ita_qkav", "qkav", dict(S=128, P=64, SEED=7)),
    # Padded shapes, masks and several heads back to back.
    ("ita_attention", "attention", dict(S=100, E=72, P=40, CAUSAL=True, SEED=8)),
    ("ita_attention", "attention", dict(S=70, E=64, P=64, VALID_KEYS=50, H=2, SEED=9)),
    ("ita_ffn", "ffn", dict(S=30, E=100, F=150, ACT="gelu", SEED=10)),
    ("ita_linear", "linear", dict(S=65, E=33, P=17, ACT="relu", BIAS=False, SEED=11)),
    # Finer softmax logit steps (ln 2 / 2**k), also with masks.
    ("ita_attention", "attention", dict(S=100, E=64, P=64, LOGIT_FRAC=3, CAUSAL=True, SEED=14)),
    ("ita_qkav", "qkav", dict(S=130, P=64, LOGIT_FRAC=2, VALID_KEYS=120, SEED=15)),
    ("ita_attention", "attention", dict(S=64, E=64, P=64, LOGIT_FRAC=1, H=2, SEED=16)),
    # A second geometry: ARRAY_N=8 units of ARRAY_M=32.
    ("ita_attention", "attention",
     dict(S=90, E=40, P=48, CAUSAL=True, ARRAY_N=8, ARRAY_M=32, SEED=12)),
    ("ita_ffn", "ffn", dict(S=40, E=64, F=96, ACT="gelu", ARRAY_N=8, ARRAY_M=32, SEED=13)),
]


def _id(case):
    name, _mode, opts = case
    return f"{name}-" + "-".join(f"{k}{v}" for k, v in opts.items())


@pytest.mark.parametrize("name, mode, opts", CASES, ids=[_id(c) for c in CASES])
def test_engine_bit_exact(name, mode, opts):
    status, fields = run_engine_test(name, mode, {**DEFAULTS, **opts})
    assert status == "PASS", fields
    assert fields["mismatches"] == 0
    assert fields["cycles"] >= fields["ideal_cycles"]


@pytest.mark.parametrize("inject", ["lsb", "drop"])
def test_checks_bite(inject):
    """A one-LSB error in the expected data and a lost output beat must both fail."""
    status, fields = run_engine_test("ita_attention", "attention",
                                     {**DEFAULTS, "S": 64, "SEED": 21}, inject=inject)
    assert status == "FAIL", fields
