"""The whole all-MiniLM-L6-v2 as one program (``make sim TEST=minilm``): the embedding
LayerNorm, six layers and the pooling chained by the compiler, weights in L3; its plan in
numpy and one short sentence on the cluster, bit-exact with ita.quant.integer."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ita.deploy import bert_model, compile_model
from ita.quant import integer as qi
from verif.cluster.bert_layer import quantised_minilm
from verif.cluster.encoder import cluster_spec
from verif.cluster.minilm import run_minilm
from verif.deploy import check_bert_plan, expected_bert_tensors

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm():
    return quantised_minilm()


def test_whole_model_plan_is_the_integer_model(minilm):
    """Six blocks on a 4-token sentence: the first normalises the int16 embedding rows, the
    last pools; the plan's output and column sums equal ita.quant.integer.run's."""
    model, integer = minilm
    ids = model.tokenizer.encode("Wow.")
    result = qi.run(integer, ids)
    imodel = bert_model(integer, len(ids))
    assert [b.index for b in imodel.blocks] == list(range(6))
    assert imodel.blocks[0].input.dtype == "int16" and imodel.blocks[-1].pool
    spec = cluster_spec(weights="l3")
    program = compile_model(imodel, spec, probes=("out", "b5_pooled", "b0_ln0", "b2_out"))
    assert program.manifest["layers"] == 6 and program.l3_image
    expected = expected_bert_tensors(imodel, result.embed, ["out", "b5_pooled", "b0_ln0",
                                                            "b2_out"], spec.config)
    np.testing.assert_array_equal(expected["out"], result.hidden[-1])
    np.testing.assert_array_equal(expected["b0_ln0"], result.hidden[0])
    np.testing.assert_array_equal(expected["b2_out"], result.hidden[3])
    np.testing.assert_array_equal(expected["b5_pooled"][0], result.pooled_sum)
    assert check_bert_plan(program, imodel, result.embed) is None


@pytest.mark.verilator
def test_a_sentence_on_the_cluster_is_exact(tmp_path):
    status, fields, breakdown, (float_emb, int_emb) = run_minilm(tmp_path, "Thank you!")
    assert status == "PASS", breakdown
    assert fields["mismatches"] == 0 and fields["tokens"] == 5 and fields["layers"] == 6
    assert fields["cycles"] > 0 and float(fields["peak_pct"]) > 0
    assert len(fields["block_cycles"].split(",")) == 6
    cos = float(int_emb @ float_emb / np.linalg.norm(int_emb) / np.linalg.norm(float_emb))
    assert float(fields["cos"]) == pytest.approx(cos, abs=1e-4) and cos > 0.9


@pytest.mark.parametrize("words, what", [(["TEXT="], "TEXT"), (["TEXT=caf\u00e9"], "ASCII"),
                                         (["TEXT2=\u00e9t\u00e9"], "ASCII")])
def test_bad_text_is_a_one_line_usage_error(minilm, words, what):
    proc = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=minilm", *words],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2, proc.stderr[-1000:]
    assert proc.stderr.strip().count("\n") == 0 and what in proc.stderr, proc.stderr
    assert re.search(r"error: ", proc.stderr)
