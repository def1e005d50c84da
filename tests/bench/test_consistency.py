"""make bench reports what make sim prints: a tiny bench run against the same make sim run."""

import json
import subprocess
import sys

import pytest

from hw import toolchain
from verif.result import find_result


@pytest.mark.verilator
def test_bench_point_equals_make_sim(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "bench", "QUICK=1", "ONLY=engine",
                           f"OUT={out}"], capture_output=True, text=True, cwd=toolchain.ROOT,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[1/3]" in proc.stderr and "[3/3]" in proc.stderr  # the progress indicator
    results = json.loads((out / "results.json").read_text())
    row = next(r for r in results["engine"] if r["mode"] == "attention" and r["S"] == 64)
    sim = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=ita_attention", "S=64",
                          "E=64", "P=64", "STALLS=0", "SEED=1"], capture_output=True, text=True,
                         cwd=toolchain.ROOT, timeout=900)
    assert sim.returncode == 0, sim.stderr[-3000:]
    want = find_result(sim.stdout)
    assert row["command"] == "make sim TEST=ita_attention S=64 E=64 P=64 STALLS=0 SEED=1"
    for key in ("cycles", "ideal_cycles", "utilization", "seed"):
        assert row["result"][key] == want[key], key
    text = (out / "report.md").read_text()
    line = next(x for x in text.splitlines() if f"`{row['command']}`" in x)
    assert f"| {want['cycles']:,} | {want['utilization']} |" in line
    assert (out / "engine_utilization.png").is_file()
