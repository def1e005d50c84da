"""``make verilog``: the emitted tops pass Verilator's -Wall lint with our waivers, the output
directory is self-contained and reproducible."""

import subprocess
import sys

import pytest

from hw import verilog

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("args", [["TOP=ita"], ["TOP=ita", "ARRAY_N=8", "ARRAY_M=32"],
                                  ["TOP=ita_hwpe"], ["TOP=cluster", "CONFIG=small"]])
def test_verilog_lints_clean(args):
    proc = subprocess.run([sys.executable, "-m", "hw.verilog", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lint clean" in proc.stdout
    assert "%Warning" not in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["TOP=nope"], "bad value 'nope' for key TOP (expected ita, ita_hwpe or cluster)"),
    (["ARRAY_N=3"], "ARRAY_N=3: M=64 must be a multiple of N=3"),
    (["ARRAY_N=4", "ARRAY_M=12"], "ARRAY_N=4 ARRAY_M=12: the engine needs M to be a power of two"),
    (["ARRAY_N=x"], "bad value 'x' for key ARRAY_N (expected an integer >= 1)"),
    (["N=8"], "unknown key N"),
    (["X=1"], "unknown key X"),
    (["CONFIG=medium"], "bad value 'medium' for key CONFIG"),
])
def test_bad_arguments(args, message):
    proc = subprocess.run([sys.executable, "-m", "hw.verilog", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert proc.stderr.startswith("verilog: error: ")


def test_output_is_reproducible_and_names_its_command(tmp_path):
    options = {"CONFIG": "small", "ARRAY_N": 4, "ARRAY_M": 8}
    first = verilog.generate("ita", options, out_root=tmp_path / "a")
    second = verilog.generate("ita", options, out_root=tmp_path / "b")
    for a, b in ((first.verilog, second.verilog), (first.filelist, second.filelist)):
        assert a.read_bytes() == b.read_bytes()
    head = first.verilog.read_text().splitlines()[:5]
    assert head[1] == "// Command: make verilog TOP=ita CONFIG=small ARRAY_N=4 ARRAY_M=8"
    assert head[2].startswith("// Configuration small: engine N=4 M=8 ")
    assert first.filelist.read_text().splitlines()[-1] == "ita.v"


def test_cluster_file_list_is_self_contained():
    """The cluster's list names the core's SystemVerilog (copied from the installed
    package), the hand-written SystemVerilog and the cluster, all inside the directory."""
    from cluster_integration.core import core_sources

    pairs = verilog.third_party_sources("cluster")
    assert len(pairs) == len(core_sources()) + 1
    rels = [rel.as_posix() for _src, rel in pairs]
    assert rels[0] == "vendor/cv32e40p/rtl/include/cv32e40p_apu_core_pkg.sv"
    assert "sv/cluster_l2_ram.sv" in rels and "vendor/cv32e40p/rtl/cv32e40p_top.sv" in rels
    assert all(not rel.startswith("/") and ".." not in rel for rel in rels)
