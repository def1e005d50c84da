"""The vector command line: files, keys, determinism and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ita.golden.vectors import INPUT_KEYS, OUTPUT_KEYS


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ita.golden", *args], capture_output=True,
                          text=True, timeout=120)


def test_writes_vectors_and_manifest(tmp_path):
    out = tmp_path / "v"
    result = run_cli("S=128", "E=128", "P=64", "F=256", "H=2", "ACT=gelu", "CAUSAL=1",
                     "SEED=7", f"OUT={out}")
    assert result.returncode == 0, result.stderr
    v = np.load(out / "vectors.npz")
    assert set(v.files) == set(INPUT_KEYS + OUTPUT_KEYS)
    expected_shapes = {"q_in": (128, 128), "kv_in": (128, 128), "wq": (2, 128, 64),
                       "wo": (2, 64, 128), "bq": (2, 64), "bo": (2, 128), "w1": (128, 256),
                       "b1": (256,), "w2": (256, 128), "b2": (128,), "rq_attn": (2, 6, 3),
                       "rq_ffn": (2, 3), "rq_sum": (3,), "act_rq": (3,), "qp": (2, 128, 64),
                       "a": (2, 128, 128), "a_soft": (2, 128, 128), "out": (2, 128, 128),
                       "out_sum": (128, 128), "f1": (128, 256), "f2": (128, 128)}
    for key, shape in expected_shapes.items():
        assert v[key].shape == shape, key
    assert v["q_in"].dtype == np.int8 and v["bq"].dtype == np.int32
    assert v["a_soft"].dtype == np.uint8 and str(v["activation"]) == "gelu"
    assert bool(v["causal"]) and np.all(v["a_soft"][:, 0, 1:] == 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["shape"]["F"] == 256
    assert manifest["tensors"]["a_soft"] == {"role": "output", "shape": [2, 128, 128],
                                             "dtype": "uint8"}


def test_deterministic_per_seed(tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_cli(f"SEED={seed}", f"OUT={tmp_path / name}").returncode == 0
    same = [(tmp_path / n / "vectors.npz").read_bytes() for n in "abc"]
    assert same[0] == same[1]
    assert same[0] != same[2]


def test_make_style_arguments(tmp_path):
    result = run_cli("S=32", "E=48", "ACT=relu", "BIAS=0", "SEED=2", f"OUT={tmp_path}")
    assert result.returncode == 0, result.stderr
    v = np.load(tmp_path / "vectors.npz")
    assert v["q_in"].shape == (32, 48) and str(v["activation"]) == "relu"
    assert not v["bq"].any()


def test_full_size_layer_runs(tmp_path):
    result = run_cli("S=512", "E=512", "P=512", "F=512", f"OUT={tmp_path}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args, words", [
    (["S=-4"], ["bad value '-4' for key S", "an integer >= 1"]),
    (["P=0"], ["bad value '0' for key P"]),
    (["E=4000"], ["E=4000", "accumulator"]),
    (["S=3000"], ["S=3000", "softmax"]),
    (["ACT=swish"], ["bad value 'swish' for key ACT", "identity, gelu or relu"]),
    (["VALID_KEYS=99"], ["valid_keys"]),
    (["S=abc"], ["bad value 'abc' for key S"]),
    (["S=64", "FOO=1"], ["unknown key FOO"]),
    (["BIAS=2"], ["bad value '2' for key BIAS (expected 0 or 1)"]),
    (["ARRAY_N=16", "ARRAY_M=40"], ["ARRAY_N=16 ARRAY_M=40", "multiple of N"]),
    (["--S", "128"], ["expected KEY=VALUE, got '--S'"]),
])
def test_bad_arguments_one_line(args, words):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vectors: error: ")
    for word in words:
        assert word in lines[0]
