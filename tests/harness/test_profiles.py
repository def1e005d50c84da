"""Build profiles (``SIM_PROFILE``, :data:`hw.toolchain.SIM_PROFILES`) and the one-file L2 image
that the ``fast`` profile loads with ``$readmemh`` instead of VPI writes per word."""

import os
import subprocess
import sys

import numpy as np
import pytest

from cluster_integration.memory_map import region
from hw import toolchain
from verif.harness import run as harness

verilator = pytest.mark.verilator


def test_profiles_are_cumulative_and_the_default_is_fast(monkeypatch):
    monkeypatch.delenv("SIM_PROFILE", raising=False)
    assert toolchain.sim_profile().name == toolchain.DEFAULT_SIM_PROFILE == "fast"
    base, public, fast = (toolchain.SIM_PROFILES[n] for n in ("baseline", "public", "fast"))
    assert not base.listed_public and not base.bulk_load
    assert public.listed_public and not public.bulk_load
    assert fast.listed_public and fast.bulk_load
    monkeypatch.setenv("SIM_PROFILE", "baseline")
    assert toolchain.sim_profile() is base
    with pytest.raises(ValueError, match="SIM_PROFILE must be one of baseline, public, fast"):
        toolchain.sim_profile("quick")


def test_bad_profile_is_a_usage_error(capsys, monkeypatch):
    assert harness.main(["APP=hello", "SIM_PROFILE=quick"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "SIM_PROFILE" in err
    monkeypatch.setenv("SIM_PROFILE", "quick")
    assert harness.main(["APP=hello"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "SIM_PROFILE must be one of" in err


def _hex(path, base, words):
    path.write_text(f"// {path.name}: {len(words)} words from {base:#010x}\n"
                    + "".join(f"{w:08x}\n" for w in words))
    return path


def test_merged_image_places_program_and_data_at_their_word_offsets(tmp_path):
    l2 = region("L2")
    program = _hex(tmp_path / "p.hex", l2.base, [0x13, 0xDEADBEEF])
    data = tmp_path / "d.npz"
    np.savez(data, **{f"addr_{l2.base + 0x100:x}": np.arange(1, 6, dtype=np.uint8)})
    out = harness.merged_l2_image(program, data, tmp_path / "m.hex")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("//")
    # 5 bytes pad to 2 words, little-endian as the cores read them
    assert lines[1:] == ["@0", "00000013", "deadbeef", "@40", "04030201", "00000005"]


def test_merged_image_refuses_overlap_and_outside_l2(tmp_path):
    l2 = region("L2")
    program = _hex(tmp_path / "p.hex", l2.base, [1, 2, 3])
    overlap = tmp_path / "o.npz"
    np.savez(overlap, **{f"addr_{l2.base + 8:x}": np.ones(8, dtype=np.uint8)})
    with pytest.raises(ValueError, match="overlaps"):
        harness.merged_l2_image(program, overlap, tmp_path / "m.hex")
    outside = tmp_path / "x.npz"
    np.savez(outside, **{f"addr_{l2.end:x}": np.ones(4, dtype=np.uint8)})
    with pytest.raises(ValueError, match="not inside L2"):
        harness.merged_l2_image(program, outside, tmp_path / "m.hex")


SV = """
module vis_top(input logic clk, output logic [7:0] count);
  vis_mid mid(.clk(clk));
  assign count = mid.inner.seen;
endmodule
module vis_mid(input logic clk);
  logic [7:0] hidden = 0;
  always_ff @(posedge clk) hidden <= hidden + 1;
  vis_inner inner(.clk(clk), .x(hidden));
endmodule
module vis_inner(input logic clk, input logic [7:0] x);
  logic [7:0] seen = 0;
  always_ff @(posedge clk) seen <= x;
endmodule
"""
VLT = '`verilator_config\npublic_flat_rw -module "vis_inner" -var "seen"\n'


@verilator
@pytest.mark.parametrize("profile", ["baseline", "fast"])
def test_listed_public_hides_every_signal_the_control_files_do_not_name(tmp_path, profile):
    """Under ``fast`` a VPI handle reaches the top's ports and the listed signals only."""
    src, vlt = tmp_path / "vis.sv", tmp_path / "vis.vlt"
    src.write_text(SV)
    vlt.write_text(VLT)
    handle = toolchain.build([src], "vis_top", public=[vlt], profile=profile)
    tb = tmp_path / "tb_vis.py"
    tb.write_text(
        "import cocotb\nfrom cocotb.clock import Clock\nfrom cocotb.triggers import ClockCycles\n"
        "@cocotb.test()\nasync def vis(dut):\n"
        "    Clock(dut.clk, 10, unit='ns').start()\n"
        "    await ClockCycles(dut.clk, 4)\n"
        "    assert int(dut.mid.inner.seen.value) == int(dut.count.value) > 0\n"
        f"    assert hasattr(dut.mid, 'hidden') == {profile == 'baseline'}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        toolchain.run(handle, "tb_vis", seed=1, results_name=f"vis-{profile}")
    finally:
        sys.path.remove(str(tmp_path))


@verilator
def test_merged_image_runs_on_the_harness(tmp_path):
    """The file the cocotb flow loads with ``+L2_HEX`` is a valid image for the C++ model."""
    from sw.build import build_app

    l2 = region("L2")
    data = tmp_path / "d.npz"
    np.savez(data, **{f"addr_{l2.base + l2.size // 2:x}": np.full(64, 7, dtype=np.uint8)})
    image = harness.merged_l2_image(build_app("hello").hex, data, tmp_path / "hello.l2.hex")
    run = harness.run_image("hello", image, stream=False, readmemh=True)
    assert run.status == "PASS", run.output
    assert "hello from core 7" in run.output


@pytest.mark.parametrize("words, env", [(["TEST=hello"], {"SIM_PROFILE": "bogus"}),
                                        (["SIM_PROFILE=bogus", "TEST=hello"], {})])
def test_bad_profile_under_make_sim_is_one_line_and_exit_2(words, env):
    proc = subprocess.run([sys.executable, "-m", "verif.sim", *words], capture_output=True,
                          text=True, cwd=toolchain.ROOT, timeout=300, env={**os.environ, **env})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sim: error: SIM_PROFILE must be one of baseline, public, " \
                                  "fast, not 'bogus'"
