"""A layer of the real all-MiniLM-L6-v2 through the compiler: the plan in numpy and on the
cluster, bit-exact with ita.quant.integer (the integer model is quantised once and cached in
build/quant, about a minute the first time)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ita.deploy import CompileError, bert_layer_model, compile_model
from ita.quant import integer as qi
from verif.cluster.bert_layer import quantised_minilm, run_real_layer
from verif.cluster.encoder import cluster_spec
from verif.deploy import check_bert_plan, execute, expected_bert_tensors
from verif.deploy.execute import first_mismatch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm():
    return quantised_minilm()


def test_plan_of_a_padded_layer_is_exact_in_every_tensor(minilm):
    """Layer 3 (two FFN parts) on 9 tokens in 16 rows: padded keys masked, every tensor the
    integer model's; a changed expected element is found by tensor, row and column."""
    model, integer = minilm
    ids = model.tokenizer.encode("A man is playing a guitar.")
    run = qi.run(integer, ids, pad_to=16)
    imodel = bert_layer_model(integer, 3, 16, valid=len(ids), pool=True)
    assert len(integer.layers[3].ffn) == 2
    probes = ("attn", "add1", "ln1", "add2", "out", "pooled")
    program = compile_model(imodel, cluster_spec(), probes=probes, fc=128, ec=32)
    assert check_bert_plan(program, imodel, run.hidden[3]) is None
    expected = expected_bert_tensors(imodel, run.hidden[3], probes, program.schedule.spec.config)
    np.testing.assert_array_equal(expected["out"], run.hidden[4])
    assert expected["add1"].dtype == np.int16 and np.abs(expected["add1"]).max() <= 1 << 13
    got = execute(program, {"x": run.hidden[3]})
    value = np.ascontiguousarray(got["add2"]).view(np.int16)
    wrong = dict(expected, add2=expected["add2"].copy())
    wrong["add2"][4, 100] += 1
    assert first_mismatch({**{k: v for k, v in got.items() if k in ("attn", "ln1", "out")},
                           "add2": value}, {k: wrong[k] for k in ("attn", "ln1", "out", "add2")}) \
        == f"tensor=add2 row=4 col=100 got={value[4, 100]} expected={value[4, 100] + 1}"


def test_bad_blocks_are_compile_errors(minilm):
    _, integer = minilm
    spec = cluster_spec()
    with pytest.raises(CompileError, match="unknown tensor 'pooled'"):
        compile_model(bert_layer_model(integer, 0, 8), spec, probes=("pooled",))
    with pytest.raises(CompileError, match="valid rows 9 must lie in 1..S=8"):
        compile_model(bert_layer_model(integer, 0, 8, valid=9), spec)
    with pytest.raises(ValueError, match="layer 6 does not exist"):
        bert_layer_model(integer, 6, 8)


@pytest.mark.verilator
def test_last_layer_on_the_cluster_is_exact_and_a_wrong_sum_is_named(tmp_path):
    """The last layer on a 4-token sentence with every intermediate checked in C; one column
    sum of the pooling is expected off by one: that element alone is reported."""
    status, result, output, breakdown, _ = run_real_layer(
        tmp_path, layer=5, text="Wow.", debug=True, corrupt=("pooled", 0, 7))
    checks = dict((t, int(m)) for t, _, m in
                  re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output))
    assert checks == {"attn": 0, "add1": 0, "ln1": 0, "add2": 0, "out": 0, "pooled": 1}, output
    assert re.search(r"mismatch: tensor=pooled row=0 col=7 ", output), output[-2000:]
    assert status == "FAIL"
    assert result["tokens"] == 4 and result["S"] == 4 and result["layer_cycles"] > 0
    assert "kernel residual_add2" in breakdown and "kernel layer_norm_ln2" in breakdown


@pytest.mark.parametrize("words, what", [(["TEXT="], "TEXT"), (["LAYER=6"], "layer"),
                                         (["TEXT=caf\u00e9"], "ASCII"), (["S=64"], "sizes")])
def test_bad_input_is_a_one_line_usage_error(minilm, words, what):
    proc = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=encoder_layer",
                           "MODEL=minilm-real", *words], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr[-1000:]
    assert proc.stderr.strip().count("\n") == 0 and what in proc.stderr, proc.stderr
