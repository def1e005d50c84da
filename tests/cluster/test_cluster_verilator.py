"""Programs on the whole cluster (8 CV32E40P cores, L1, ITA HWPE, event unit, DMA, L2).

The same entry points as ``make sim TEST=hello`` and ``make sim TEST=attention_head``.
"""

import pytest

from ita.cluster_config import DEFAULT
from verif.sim import REGISTRY, load_tests

pytestmark = pytest.mark.verilator


def run(test, **options):
    load_tests()
    entry = REGISTRY[test]
    values = {key.name: key.default for key in entry.keys}
    values.update(options)
    return entry.run(values)


def test_hello_every_core_prints():
    from sw.build import build_app
    from verif.cluster.model import run_program
    result = run_program(build_app("hello"), test_name="hello")
    assert result.status == "PASS", result.fields
    lines = result.outcome["output"].splitlines()
    assert lines[:8] == [f"hello from core {i}" for i in range(8)]


@pytest.mark.parametrize("options", [
    {"SHAPE": "small"},     # the README's quick check (the default shape takes minutes)
    {"S": 50, "E": 40, "P": 24, "H": 2, "CAUSAL": 1, "SEED": 3},  # padded, causal, 2 heads
], ids=["small", "padded-causal-2heads"])
def test_attention_head_bit_exact(options):
    status, fields = run("attention_head", **options)
    assert status == "PASS", fields
    assert fields["outcome"] == "exit:0"


def test_attention_head_shape_names_and_overrides():
    from verif.cluster.sim import ATTENTION_SHAPES, attention_shape
    load_tests()
    defaults = {key.name: key.default for key in REGISTRY["attention_head"].keys}
    assert attention_shape(defaults) == ATTENTION_SHAPES["default"]
    small = attention_shape({**defaults, "SHAPE": "small", "H": 2})
    assert small == {**ATTENTION_SHAPES["small"], "H": 2}


def test_trap_is_reported_with_cause_and_pc():
    from sw.build import build_app
    from verif.cluster.model import run_program
    app = build_app("trap")
    result = run_program(app, test_name="cluster_trap", expect="exit:0")
    assert result.status == "FAIL"
    assert result.outcome["trap_cause"] == 2 and result.outcome["trap_pc"] is not None


def test_hung_program_fails_with_every_core_pc():
    from sw.build import build_app
    from verif.cluster.model import run_program
    result = run_program(build_app("hello"), test_name="hello_timeout", max_cycles=300)
    assert result.status == "FAIL"
    assert result.outcome["timed_out"] and len(result.outcome["pcs"]) == 8
    l2 = DEFAULT.region("L2")
    assert all(l2.contains(pc) for pc in result.outcome["pcs"])
