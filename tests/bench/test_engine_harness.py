"""The C++ engine harness (verif/harness/engine.py, engine_main.cpp): same cycles as the cocotb
flow, bit-exact checking that catches a wrong byte, and its usage errors.

The first test builds the C++ model (about 30 s on 2 cores, then cached by content hash).
"""

import subprocess
import sys

import numpy as np
import pytest

from hw import toolchain
from ita.config import ITAConfig
from verif.harness import engine
from verif.result import find_result

verilator = pytest.mark.verilator


def _run(module, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=toolchain.ROOT, timeout=timeout)


@verilator
@pytest.mark.parametrize("keys", [
    ("MODE=attention", "S=50", "E=40", "P=24", "CAUSAL=1", "SEED=3"),
    ("MODE=ffn", "S=64", "E=64", "F=256", "ACT=gelu", "SEED=7"),
])
def test_same_cycles_as_make_sim(keys):
    cpp = _run("verif.harness.engine", *keys)
    assert cpp.returncode == 0, cpp.stdout + cpp.stderr
    test = "ita_" + keys[0].partition("=")[2]
    sim = _run("verif.sim", f"TEST={test}", *keys[1:], "STALLS=0")
    assert sim.returncode == 0, sim.stdout[-3000:] + sim.stderr[-3000:]
    got, want = find_result(cpp.stdout), find_result(sim.stdout)
    assert got["flow"] == "cpp" and got["mismatches"] == 0
    for key in ("test", "cycles", "ideal_cycles", "utilization", "seed"):
        assert got[key] == want[key], key
    assert got["sim_cycles_per_s"] > 0 and got["cpu_cycles_per_s"] > 0


@pytest.fixture(scope="module")
def small_job(tmp_path_factory):
    build = engine.build_engine_harness(ITAConfig())
    job = tmp_path_factory.mktemp("job")
    engine.write_job(job, mode="attention", S=64, E=64, P=64, seed=2)
    return build.executable, job


def _exe(executable, job, *extra):
    return subprocess.run([str(executable), f"+JOB={job}", *extra], capture_output=True,
                          text=True, timeout=300)


@verilator
def test_a_wrong_expected_byte_is_named_by_step_row_and_column(small_job, tmp_path):
    executable, job = small_job
    for name in job.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    expected = np.frombuffer((job / "output.bin").read_bytes(), dtype=np.int8).copy()
    out_map = np.frombuffer((job / "output.map").read_bytes(), dtype="<i4").reshape(-1, 3)
    beat = 100
    lanes = expected.size // out_map.shape[0]
    expected[beat * lanes + 3] ^= 1
    (tmp_path / "output.bin").write_bytes(expected.tobytes())
    proc = _exe(executable, tmp_path)
    assert proc.returncode == 1, proc.stdout
    step, row, col = out_map[beat]
    names = (job / "steps.txt").read_text().split()
    assert (f"mismatch: output beat {beat}: step {names[step]} row {row} column {col + 3}:"
            in proc.stdout)
    assert "summary status=FAIL" in proc.stdout and "mismatches=1" in proc.stdout


@verilator
def test_a_beat_whose_data_never_comes_stops_the_job(small_job, tmp_path):
    executable, job = small_job
    for name in job.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    deps = np.frombuffer((job / "input.dep").read_bytes(), dtype="<i4").copy()
    deps[-1] = 1 << 30  # waits for an output that never leaves the engine
    (tmp_path / "input.dep").write_bytes(deps.tobytes())
    proc = _exe(executable, tmp_path, "+MAX_CYCLES=4000")
    assert proc.returncode == 1
    assert "watchdog: no end of job after 4000 cycles" in proc.stdout
    # the untouched job passes
    assert _exe(executable, job).returncode == 0


@verilator
def test_executable_usage_errors(small_job, tmp_path):
    executable, job = small_job
    for args, message in (([], "missing +JOB=<dir>"),
                          ([f"+JOB={tmp_path}"], "cannot read"),
                          ([f"+JOB={job}", "+MAX_CYCLES=0"], "MAX_CYCLES must be a positive"),
                          ([f"+JOB={job}", "-x"], "unexpected argument '-x'")):
        proc = subprocess.run([str(executable), *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, args
        assert message in proc.stderr, (args, proc.stderr)


@pytest.mark.parametrize("args, message", [
    (("MODE=conv",), "bad value 'conv' for key MODE (expected attention, ffn, linear or qkav)"),
    (("S=0",), "bad value '0' for key S"),
    (("WAVES=1",), "unknown key WAVES"),
    (("N=8",), "unknown key N"),
    (("S=64", "S=32"), "key S given twice"),
])
def test_command_line_usage_errors(args, message):
    proc = _run("verif.harness.engine", *args, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("engine: error: ")
    assert message in lines[0]
