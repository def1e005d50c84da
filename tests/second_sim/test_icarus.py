"""The engine and HWPE Verilog of ``make verilog`` on Icarus Verilog, bit-exact with the
golden vectors the Verilator tests use (issue 19, "a second simulator").

Each run goes through the ``make sim TEST=icarus_*`` entry point with its defaults: the small
configuration, two attention heads back to back over several tiles, stalls on.
"""

import pytest

from hw import icarus
from hw.configs import get as get_config
from verif import second_sim
from verif.sim import parse_args

pytestmark = [pytest.mark.icarus,
              pytest.mark.skipif(not icarus.available(),
                                 reason="iverilog not installed (tools/bootstrap.sh installs it)")]


def options(test, **given):
    _test, opts = parse_args([f"TEST={test}", *(f"{k}={v}" for k, v in given.items())])
    return opts


def engine_size(opts):
    ita = get_config(opts["CONFIG"]).ita
    return {"N": ita.N, "M": ita.M}


@pytest.mark.parametrize("top", ["ita", "ita_hwpe"])
def test_iverilog_compiles_without_warnings(top):
    handle = second_sim.build(top, second_sim.DEFAULT_CONFIG)
    assert icarus.warnings(handle) == []


def test_engine_attention_bit_exact():
    opts = options("icarus_engine")
    status, fields = second_sim.run_engine(opts)
    assert status == "PASS", fields
    assert fields["mismatches"] == 0 and fields["H"] == opts["H"] and fields["stalls"] == 1
    assert {k: fields[k] for k in ("N", "M")} == engine_size(opts)
    assert fields["cycles"] >= fields["ideal_cycles"]


def test_engine_wrong_expectation_fails():
    """The beat-by-beat check bites on Icarus too: one expected LSB off must FAIL."""
    status, fields = second_sim.run_engine(options("icarus_engine", S=16, E=16, P=16, H=1),
                                           inject="lsb")
    assert status == "FAIL" and fields["mismatches"] >= 1, fields


def test_hwpe_attention_bit_exact():
    opts = options("icarus_hwpe")
    status, fields = second_sim.run_hwpe(opts)
    assert status == "PASS", fields
    assert fields["errors"] == 0 and fields["jobs"] == opts["H"]
    assert fields["cycles"] >= fields["ideal_cycles"]
