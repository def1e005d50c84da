# amaranth: UnusedElaboratable=no
"""The CV32E40P wrapper: its source list, its parameters and ports in the emitted Verilog,
and a clean Verilator lint of the core with the documented waivers."""

import re
import subprocess

import pytest
from amaranth.back import verilog

from cluster_integration import core as core_mod
from cluster_integration.core import CLOCK_GATE, CORE_LINT_WAIVERS, Cv32e40p, core_sources
from hw import toolchain
from ita.cluster_config import DEFAULT

BOOT = {"boot_address": DEFAULT.boot_address, "trap_vector": DEFAULT.trap_vector}


def test_core_sources():
    sources = core_sources()
    names = [s.name for s in sources]
    assert len(sources) == 29 and len(set(names)) == 29  # 28 of the manifest + the gate
    assert all(s.is_file() for s in sources)
    assert sources[-1] == CLOCK_GATE
    for dropped in ("cv32e40p_tb_wrapper.sv", "cv32e40p_tracer_pkg.sv",
                    "cv32e40p_sim_clock_gate.sv"):
        assert dropped not in names
    packages = [i for i, n in enumerate(names) if n.endswith("_pkg.sv")]
    assert packages == [0, 1, 2], "packages must come first"
    assert "cv32e40p_top.sv" in names
    assert all(d.is_dir() for d in core_mod.core_include_dirs())


def test_emitted_instance():
    text = verilog.convert(Cv32e40p(hart_id=5, perf_counters=3, **BOOT), name="wrapped",
                           emit_src=False)
    instance = text[text.index("cv32e40p_top #("):]
    params = dict(re.findall(r"\.(\w+)\(32'd(\d+)\)", instance[:instance.index(") core")]))
    assert params == {"COREV_PULP": "1", "COREV_CLUSTER": "0", "FPU": "0",
                      "FPU_ADDMUL_LAT": "0", "FPU_OTHERS_LAT": "0", "ZFINX": "0",
                      "NUM_MHPMCOUNTERS": "3"}
    assert f".boot_addr_i(32'd{DEFAULT.boot_address})" in instance
    assert f".mtvec_addr_i(32'd{DEFAULT.trap_vector})" in instance
    assert ".hart_id_i(32'd5)" in instance
    assert ".debug_req_i(1'h0)" in instance
    # The data port maps one to one; the instruction port is read-only.
    for core_port, ours in (("data_we_o", "data__we"), ("data_be_o", "data__be"),
                            ("data_wdata_o", "data__wdata"), ("instr_addr_o", "instr__addr"),
                            ("data_rdata_i", "data__r_data"), ("instr_rvalid_i", "instr__r_valid")):
        assert re.search(rf"\.{core_port}\({ours}\)", instance), core_port
    assert re.search(r"assign instr__we = 1'h0;", text)
    assert re.search(r"assign instr__be = 4'hf;", text)


@pytest.mark.parametrize("kwargs, message", [
    ({"hart_id": -1}, "hart_id must be an integer"),
    ({"boot_address": DEFAULT.boot_address + 2}, "word-aligned"),
    ({"trap_vector": DEFAULT.boot_address}, "256-byte aligned"),
    ({"perf_counters": 30}, r"perf_counters must be an integer in \[0, 29\]"),
    ({"boot_address": 1 << 32}, "boot_address must be an integer"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Cv32e40p(**{**BOOT, **kwargs})


def test_properties():
    c = Cv32e40p(hart_id=3, perf_counters=2, **BOOT)
    assert (c.hart_id, c.boot_address, c.trap_vector, c.perf_counters) == (
        3, DEFAULT.boot_address, DEFAULT.trap_vector, 2)


def test_lint_with_waivers_is_clean():
    cmd = ["verilator", "--lint-only", *CORE_LINT_WAIVERS, *map(str, core_sources()),
           "--top-module", core_mod.TOP_MODULE, "-GCOREV_PULP=1", "-GNUM_MHPMCOUNTERS=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=toolchain.verilator_env(),
                          timeout=300)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr
