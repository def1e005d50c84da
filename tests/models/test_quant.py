"""Quantiser and integer model: the residual add bit for bit, padding invariance, determinism,
errors, and the measured accuracy of the integer all-MiniLM-L6-v2."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from ita.golden import residual_add
from ita.models import bert, bert_reference
from ita.models.ir import ModelError
from ita.quant import (
    CALIBRATION_FILE,
    EVALUATION_FILE,
    QuantError,
    calibrate,
    dequantise,
    quantise,
    read_sentences,
    residual_add_rows,
    run,
)
from ita.quant.minilm import evaluate, spearman
from ita.quant.quantiser import _residual

from .test_bert import TINY, write_checkpoint

# Measured on the 24 evaluation sentences, calibrated on the 48 calibration sentences:
# cosine mean 0.9674, min 0.8555 ("Wow."), Spearman over all 276 pairs 0.934.
MEASURED_COS_MEAN, MEASURED_COS_MIN, MEASURED_SPEARMAN = 0.9674, 0.8555, 0.934
MARGIN = 0.01


def test_residual_add_rows_is_golden_residual_add_with_each_rows_shift():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (6, 40)).astype(np.int8)
    y = rng.integers(-128, 128, (6, 40)).astype(np.int8)
    x[2] //= 16  # a row of small values gets a smaller shift
    y[2] //= 16
    out = residual_add_rows(x, y, np.array([[200] * 40, [90] * 40, [0] * 40]))
    for row in range(6):
        top = int(np.abs(x[row].astype(np.int64) * 200 + y[row].astype(np.int64) * 90).max())
        shift = max(top.bit_length() - 7, 0)
        expected = residual_add(x[row], y[row], mult_x=200, mult_y=90, shift=shift, add=0)
        assert np.array_equal(out[row], expected)
    assert 64 <= np.abs(out).max(axis=1).min()  # every row uses its int8 range


def test_residual_add_rows_by_hand():
    # Column 1 is shifted left by 2: v = [3*100 + 1*50, (2*100 + -1*50) * 4] = [350, 600];
    # bit_length(600) = 10, shift 3: round(350 / 8) = 44 (43.75), round(600 / 8) = 75.
    out = residual_add_rows(np.array([[3, 2]]), np.array([[1, -1]]),
                            np.array([[100, 100], [50, 50], [0, 2]]))
    assert out.tolist() == [[44, 75]]


def test_residual_constants_follow_the_scales():
    sx, sy = np.array([1.0, 0.5, 40.0, 3.0]), np.array([0.25, 2.0, 1.0, 3.0])
    mx, my, lshift = _residual(sx, sy, "test")
    assert max(mx.max(), my.max()) <= 255 and min(np.maximum(mx, my)) >= 128
    factor = (mx * 2.0**lshift) / sx
    assert np.allclose(factor, factor[0], rtol=1 / 128)
    assert np.allclose(my * 2.0**lshift / sy, factor[0], rtol=1 / 64)
    with pytest.raises(QuantError, match="span more than"):
        _residual(np.array([1.0, 1e6]), np.array([1.0, 1.0]), "wide")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = bert.load(write_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt"))
    texts = ["the cat sat on a mat.", "a dog sat on the cat.", "the mat.", "a cat, a dog."]
    return model, quantise(model, calibrate(model, texts))


def test_tiny_model_runs_and_is_deterministic(tiny):
    model, qmodel = tiny
    ids = model.tokenizer.encode("the dog sat on a mat.")
    first, second = run(qmodel, ids), run(qmodel, ids)
    assert len(first.hidden) == TINY["num_hidden_layers"] + 1
    assert all(h.dtype == np.int8 for h in first.hidden)
    assert np.array_equal(first.pooled_sum, second.pooled_sum)
    vector = dequantise(qmodel, first)
    assert vector @ bert_reference.embed(model, ids) > 0.9


def test_padded_keys_are_masked(tiny):
    model, qmodel = tiny
    ids = model.tokenizer.encode("the cat sat.")
    plain, padded = run(qmodel, ids), run(qmodel, ids, pad_to=TINY["max_position_embeddings"])
    assert np.array_equal(plain.pooled_sum, padded.pooled_sum)
    for a, b in zip(plain.hidden, padded.hidden, strict=True):
        assert np.array_equal(a, b[: len(ids)])


def test_run_refuses_empty_and_short_buffers(tiny):
    _, qmodel = tiny
    with pytest.raises(ModelError, match="at least one token"):
        run(qmodel, [])
    with pytest.raises(ModelError, match="shorter than the 3 tokens"):
        run(qmodel, [4, 5, 6], pad_to=2)


def test_quantiser_refuses_other_families(tiny):
    model, _ = tiny
    with pytest.raises(QuantError, match="not 'llama'"):
        quantise(replace(model, family="llama"), calibrate(model, ["the cat."]))


def test_sentence_sets_are_disjoint():
    calibration, evaluation = read_sentences(CALIBRATION_FILE), read_sentences(EVALUATION_FILE)
    assert len(evaluation) >= 16 and not set(calibration) & set(evaluation)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def minilm():
    model = bert.load_minilm()
    return model, quantise(model, calibrate(model, read_sentences(CALIBRATION_FILE)))


def test_minilm_accuracy(minilm):
    model, qmodel = minilm
    acc = evaluate(model, qmodel, read_sentences(EVALUATION_FILE))
    assert acc.cos_mean >= MEASURED_COS_MEAN - MARGIN
    assert acc.cos_min >= MEASURED_COS_MIN - MARGIN
    assert acc.spearman_all >= MEASURED_SPEARMAN - MARGIN


def test_minilm_padded_run_is_identical(minilm):
    model, qmodel = minilm
    ids = model.tokenizer.encode("A man is playing a guitar.")
    assert np.array_equal(run(qmodel, ids).pooled_sum, run(qmodel, ids, pad_to=64).pooled_sum)


def test_cli_result_line_and_bad_input(tmp_path):
    sentences = tmp_path / "s.txt"
    sentences.write_text("A man is playing a guitar.\nThe new movie is awesome.\n"
                         "What is the capital of Australia?\n")
    result = subprocess.run([sys.executable, "-m", "ita.quant.minilm", "--sentences",
                             str(sentences)], capture_output=True, text=True, timeout=120)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT test=minilm_accuracy status=") and "sentences=3" in last
    assert result.returncode == (0 if "status=PASS" in last else 1)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    result = subprocess.run([sys.executable, "-m", "ita.quant.minilm", "--sentences",
                             str(empty)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().endswith("no sentences")
    assert len(result.stderr.strip().splitlines()) == 1
