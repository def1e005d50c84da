"""A compiled encoder layer on the cluster (C++ harness): bit-exact, and a check that fails."""

import re
import subprocess
import sys
from pathlib import Path

from verif.cluster.encoder import run_layer

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_layer_is_bit_exact_in_every_tensor(tmp_path):
    status, result, output, breakdown, prepared = run_layer(tmp_path, model="tiny", seed=4,
                                                            debug=True)
    checks = re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output)
    assert [c[0] for c in checks] == ["attn", "add1", "ln1", "f1", "f2", "add2", "out"]
    assert all(c[2] == "0" for c in checks), output
    assert status == "PASS", output[-2000:]
    assert result["layer_cycles"] > 0 and float(result["ops_per_cycle"]) > 0
    assert 0 < float(result["ita_busy_pct"]) <= 100
    assert result["ita_jobs"] == sum(1 for p in prepared.program.schedule.phases if p.job)
    assert "kernel add_layernorm" in breakdown
    jobs = re.search(r"^jobs:((?: \d+)+)$", output, re.M).group(1).split()
    assert len(jobs) == result["ita_jobs"] and all(int(j) > 0 for j in jobs)
    stages = re.findall(r"^(attention|f1|f2) +(\d+) +(\d+) +(\d+) ", breakdown, re.M)
    assert sum(int(n) for _, n, _, _ in stages) == result["ita_jobs"]
    assert all(int(got) >= int(ideal) for _, _, got, ideal in stages), breakdown


def test_corrupted_expected_byte_fails_naming_tensor_row_and_column(tmp_path):
    status, _, output, _, _ = run_layer(tmp_path, model="tiny", seed=4,
                                        corrupt=("out", 5, 17))
    assert status == "FAIL"
    assert re.search(r"mismatch: tensor=out row=5 col=17 ", output), output[-2000:]
    assert "check: tensor=out elements=4096 mismatches=1" in output


def test_unknown_model_is_a_one_line_usage_error():
    proc = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=encoder_layer",
                           "MODEL=gpt"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "MODEL" in proc.stderr


def test_a_kernel_past_its_limit_fails_the_layer_naming_kernel_and_code(tmp_path, monkeypatch):
    """A requantization multiplier beyond 8 bits in the second add & norm: the kernel returns
    K_ERR_REQUANT, the program reports it and exits non-zero (no silently wrong output)."""
    from ita.deploy import lower

    original = lower._EncoderLowering._add_layernorm

    def with_bad_multiplier(self, ln, *args, **kwargs):
        kernel = original(self, ln, *args, **kwargs)
        if ln == "ln2":
            kernel.args = (*kernel.args[:7], 256, *kernel.args[8:])  # mult_y: 9 bits
        return kernel

    monkeypatch.setattr(lower._EncoderLowering, "_add_layernorm", with_bad_multiplier)
    status, _, output, _, _ = run_layer(tmp_path, model="tiny", seed=4)
    assert status == "FAIL"
    assert "kernel limit: kernel=add_layernorm status=1 (" in output, output[-2000:]
    assert "kernel limit" in output and "requant" in output.split("kernel limit")[1][:80]
