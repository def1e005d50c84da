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
from ita.models import bert
from ita.quant import integer as qi
from ita.quant.calibration import calibrate
from ita.quant.quantiser import QuantOptions, quantise
from tests.models.test_bert import TINY, tiny_tensors, write_checkpoint
from verif.cluster.bert_layer import (
    prepare_block,
    quantised_minilm,
    run_prepared,
    run_real_layer,
)
from verif.cluster.encoder import cluster_spec
from verif.deploy import check_bert_plan, execute, expected_bert_tensors
from verif.deploy.execute import first_mismatch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm():
    return quantised_minilm()


def test_plan_of_a_padded_layer_is_exact_in_every_tensor(minilm):
    """Layer 3 (three FFN parts) on 9 tokens in 16 rows: padded keys masked, every tensor the
    integer model's; a changed expected element is found by tensor, row and column."""
    model, integer = minilm
    ids = model.tokenizer.encode("A man is playing a guitar.")
    run = qi.run(integer, ids, pad_to=16)
    imodel = bert_layer_model(integer, 3, 16, valid=len(ids), pool=True)
    assert len(integer.layers[3].ffn) == 3
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


@pytest.fixture(scope="module")
def per_head(tmp_path_factory):
    """A small synthetic checkpoint (E=64, 4 heads) quantised with per-head output scales
    (``head_scales``, no ``rq_sum``), its layer 1 on 11 tokens in 16 rows."""
    config = dict(TINY, hidden_size=64, num_attention_heads=4, intermediate_size=128)
    folder = tmp_path_factory.mktemp("per_head") / "ckpt"
    model = bert.load(write_checkpoint(folder, config, tiny_tensors(config, 3)))
    texts = ["the cat sat on a mat.", "a dog sat on the cat.", "the mat.", "a cat, a dog."]
    integer = quantise(model, calibrate(model, texts), QuantOptions(head_scales=True))
    ids = model.tokenizer.encode("the dog sat on a mat, the cat.")
    run = qi.run(integer, ids, pad_to=16)
    return integer, run, bert_layer_model(integer, 1, 16, valid=len(ids))


def test_plan_with_the_heads_summed_by_the_residual_add_is_exact(per_head):
    """Every head's output is an operand of ``k_residual_add_rows`` (1 + H operands)."""
    integer, run, imodel = per_head
    assert integer.layers[1].rq_sum is None and integer.layers[1].add1.shape == (10, 64)
    program = compile_model(imodel, cluster_spec(), probes=("add1", "ln1", "add2", "out",
                                                               "pooled"))
    kernels = [k for ph in program.schedule.phases for k in ph.kernels]
    assert not [k for k in kernels if k.kind.startswith("head_")]
    assert [len(k.args[0]) for k in kernels if k.kind == "residual_add_rows"] == [5, 2]
    assert check_bert_plan(program, imodel, run.hidden[1]) is None


@pytest.mark.verilator
def test_per_head_operands_on_the_cluster_are_exact(per_head, tmp_path):
    _, run, imodel = per_head
    prepared = prepare_block(tmp_path, imodel, run.hidden[1], debug=True, reference=run)
    status, result, _, _ = run_prepared(prepared)
    checks = dict((t, int(m)) for t, _, m in re.findall(
        r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", result.output))
    assert checks == {"add1": 0, "ln1": 0, "add2": 0, "out": 0, "pooled": 0}, result.output
    assert status == "PASS", result.output[-2000:]


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
