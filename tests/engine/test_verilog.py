"""``make verilog``: the emitted engine passes Verilator's -Wall lint with our waivers."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("args", [["TOP=ita"], ["TOP=ita", "N=8", "M=32"], ["TOP=ita_hwpe"]])
def test_verilog_lints_clean(args):
    proc = subprocess.run([sys.executable, "-m", "hw.verilog", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lint clean" in proc.stdout
    assert "%Warning" not in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["TOP=nope"], "unknown TOP"),
    (["N=3"], "multiple of N"),
    (["N=4", "M=12"], "power of two"),
    (["X=1"], "unknown or empty argument"),
])
def test_bad_arguments(args, message):
    proc = subprocess.run([sys.executable, "-m", "hw.verilog", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
