"""Quantiser and integer model: the residual add bit for bit, padding invariance, determinism,
errors, and the measured accuracy of the integer all-MiniLM-L6-v2."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from ita.golden import layer_norm
from ita.models import bert, bert_reference
from ita.models.ir import ModelError
from ita.quant import (
    CALIBRATION_FILE,
    EVALUATION_FILES,
    PAIRS_FILE,
    QuantError,
    calibrate,
    dequantise,
    quantise,
    read_pairs,
    read_sentences,
    residual_add_rows,
    run,
)
from ita.quant.integer import ROW_BITS, embed_rows, layer_norm_rows
from ita.quant.minilm import evaluate, spearman, with_pairs
from ita.quant.quantiser import (
    QuantOptions,
    _ffn_groups,
    _gelu_input_scale,
    _offset_scale,
    _residual,
    logit_frac_for,
)

from .test_bert import TINY, write_checkpoint

# Measured on the 64 evaluation sentences and 24 hand-made pairs, calibrated on the 96
# calibration sentences (docs/models.md).
MEASURED_COS_MEAN, MEASURED_COS_MIN = 0.9937, 0.9635
MEASURED_SPEARMAN_PAIRS, MEASURED_SPEARMAN = 0.9983, 0.9908
MARGIN = 0.01


def _round_half_up(v, shift):
    return v if shift == 0 else (v + (1 << (shift - 1))) >> shift


def test_residual_add_rows_shifts_each_row_to_row_bits():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (6, 40)).astype(np.int8)
    y = rng.integers(-128, 128, (6, 40)).astype(np.int8)
    x[2] //= 16  # a row of small values gets a smaller shift
    y[2] //= 16
    consts = np.array([[200] * 40, [90] * 40, [4] * 40, [6] * 40])
    out = residual_add_rows(x, y, consts)
    for row in range(6):
        v = [((int(a) * 200) << 4) + ((int(b) * 90) << 6)
             for a, b in zip(x[row], y[row], strict=True)]
        shift = max(max(abs(e) for e in v).bit_length() - ROW_BITS, 0)
        assert out[row].tolist() == [_round_half_up(e, shift) for e in v]
    top = np.abs(out.astype(np.int64)).max(axis=1)
    assert (top >= 1 << (ROW_BITS - 1)).all() and (top <= 1 << ROW_BITS).all()


def test_residual_add_rows_by_hand():
    # v = [100*200 + 50*100, (-100*200) << 3 + 0] = [25000, -160000]; bit_length(160000) = 18,
    # shift 18 - 13 = 5: round(25000 / 32) = 781 (781.25), -160000 / 32 = -5000.
    out = residual_add_rows(np.array([[100, -100]]), np.array([[50, 0]]),
                            np.array([[200, 200], [100, 100], [0, 3], [0, 0]]))
    assert ROW_BITS == 13 and out.tolist() == [[781, -5000]]


def test_residual_add_rows_sums_several_operands():
    # (10 * 3 << 1) + (20 * 2) + (-5 * 4 << 2) = 60 + 40 - 80 = 20.
    out = residual_add_rows(np.array([[10]]), [np.array([[20]]), np.array([[-5]])],
                            np.array([[3], [2], [4], [1], [0], [2]]))
    assert out.tolist() == [[20]]
    with pytest.raises(ValueError, match="below 2\\*\\*31"):  # 3 * 128 * 255 << 15 >= 2**31
        residual_add_rows(np.array([[1]]), [np.array([[1]])] * 2,
                          np.array([[1], [1], [1], [15], [15], [15]]))


def test_layer_norm_rows_is_golden_layer_norm_on_int8_rows():
    rng = np.random.default_rng(1)
    for n in (1, 7, 384, 1536):
        x = rng.integers(-128, 128, (8, n))
        x[3] = 5  # a constant row
        gamma, beta = rng.integers(-128, 128, n), rng.integers(-2**20, 2**20, n)
        expected = layer_norm(x, gamma, beta, mult=150, shift=20, add=3)
        assert np.array_equal(layer_norm_rows(x, gamma, beta, mult=150, shift=20, add=3),
                              expected)


def test_layer_norm_rows_with_a_wide_sum_of_squares():
    # Deviations of +-2**13 over 384 columns: V = 384 * 2**26 needs 35 bits, so V is shifted
    # right by 2k = 4 before the square root; t = d / sqrt(V) * 2**15 = +-2**15 / sqrt(384).
    n = 384
    x = np.where(np.arange(n) % 2 == 0, 1 << 13, -(1 << 13))[None, :]
    out = layer_norm_rows(x, np.ones(n, np.int64), np.zeros(n, np.int64), mult=1, shift=0,
                          add=0)
    assert out[0, :2].tolist() == [127, -128]  # 1672 saturates
    out = layer_norm_rows(x, np.ones(n, np.int64), np.zeros(n, np.int64), mult=1, shift=4,
                          add=0)
    t = round(2**15 / np.sqrt(n))
    assert out[0, :2].tolist() == [_round_half_up(t, 4), _round_half_up(-t, 4)]
    with pytest.raises(ValueError, match="must lie in"):
        layer_norm_rows(x * 2, np.ones(n, np.int64), np.zeros(n, np.int64), mult=1, shift=0,
                        add=0)


def test_gelu_offset_spans_all_codes():
    values = np.concatenate([np.linspace(-0.17, 0.0, 50), np.linspace(0.0, 10.0, 50)])
    scale, offset = _offset_scale(values, 100.0)
    assert scale == pytest.approx(10.17 / 255)
    assert round(0.17 / scale) + offset == 127 and round(-10.0 / scale) + offset == -128


def test_gelu_input_scale_ignores_the_negative_tail():
    # GELU is flat below -4: MiniLM's pre-activations reach -17 but only +6.
    u = np.linspace(-17.0, 6.0, 1001)
    assert _gelu_input_scale(u, 100, 4.0) == pytest.approx(6.0 / 127)
    assert _gelu_input_scale(u, 100, None) == pytest.approx(17.0 / 127)
    # a small positive side still keeps the codes down to -4
    assert _gelu_input_scale(np.linspace(-17.0, 2.0, 1001), 100, 4.0) == pytest.approx(4 / 127)


def test_embedding_rows_use_row_bits(tiny):
    model, qmodel = tiny
    rows = embed_rows(qmodel, model.tokenizer.encode("the cat sat on a mat."))
    assert rows.dtype == np.int16
    assert (np.abs(rows.astype(np.int64)).max(axis=1) == (1 << ROW_BITS) - 1).all()


def test_residual_constants_follow_the_scales():
    sx, sy = np.array([1.0, 0.5, 40.0, 3.0]), np.array([0.25, 2.0, 1.0, 3.0])
    mx, my, lx, ly = _residual([sx, sy], "test")
    assert min(mx.min(), my.min()) >= 128 and max(mx.max(), my.max()) <= 255
    assert my[0] == 128 and ly[0] == 0  # the finest scale
    factor = mx * 2.0**lx / sx
    assert np.allclose(factor, factor[0], rtol=1 / 256)
    assert np.allclose(my * 2.0**ly / sy, factor[0], rtol=1 / 256)
    with pytest.raises(QuantError, match="span too much"):
        _residual([np.array([1.0, 1e12]), np.array([1.0, 1.0])], "wide")


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


def _evaluation():
    return [t for path in EVALUATION_FILES for t in read_sentences(path)]


def test_sentence_sets_are_disjoint_and_pairs_are_evaluation_sentences():
    calibration, evaluation = read_sentences(CALIBRATION_FILE), _evaluation()
    assert len(evaluation) >= 50 and len(set(evaluation)) == len(evaluation)
    assert not set(calibration) & set(evaluation)
    pairs = read_pairs(PAIRS_FILE)
    assert len(pairs) >= 20 and {t for pair in pairs for t in pair} <= set(evaluation)


def test_read_pairs_refuses_lines_without_two_sentences(tmp_path):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("one\ttwo\nthree\n")
    with pytest.raises(ModelError, match="pair 2 is not two tab-separated"):
        read_pairs(bad)


def test_with_pairs_appends_missing_sentences():
    texts, pairs = with_pairs(["a", "b"], [("b", "c"), ("c", "a")])
    assert texts == ["a", "b", "c"] and pairs == [(1, 2), (2, 0)]


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def minilm():
    model = bert.load_minilm()
    return model, quantise(model, calibrate(model, read_sentences(CALIBRATION_FILE)))


def test_minilm_accuracy(minilm):
    model, qmodel = minilm
    texts, pairs = with_pairs(_evaluation(), read_pairs(PAIRS_FILE))
    acc = evaluate(model, qmodel, texts, pairs=pairs)
    assert acc.cos_mean >= MEASURED_COS_MEAN - MARGIN
    assert acc.cos_min >= MEASURED_COS_MIN - MARGIN
    assert acc.spearman_pairs >= MEASURED_SPEARMAN_PAIRS - MARGIN
    assert acc.spearman_all >= MEASURED_SPEARMAN - MARGIN
    assert acc.passes(), (f"goals missed: cos_mean={acc.cos_mean:.4f} "
                          f"cos_min={acc.cos_min:.4f} at {texts[int(acc.cos.argmin())]!r}, "
                          f"spearman_pairs={acc.spearman_pairs:.4f} "
                          f"spearman_all={acc.spearman_all:.4f}")


def test_logit_frac_for_keeps_the_largest_logit_inside_int8():
    step = np.log(2)
    assert logit_frac_for(126.9 * step / 8) == 3         # 126.9 steps of ln 2 / 8
    assert logit_frac_for(127 * step / 8 * 1.01) == 2
    assert logit_frac_for(127 * step / 2 * 1.01) == 0
    assert logit_frac_for(0.0) == 3


def test_minilm_heads_take_their_own_logit_step(minilm):
    _, qmodel = minilm
    fracs = np.array([layer.logit_frac for layer in qmodel.layers])
    assert fracs.shape == (6, 12) and fracs.min() >= 0 and fracs.max() <= 3
    # Layer 0 head 2 reaches logits of 37 nats (53 octaves): only ln 2 / 2 holds them; most
    # heads stay below 11 nats and take ln 2 / 8.
    assert fracs[0, 2] == 1 and (fracs == 3).sum() >= 60


def test_fixed_logit_step_scales_the_qk_requantization(tiny):
    model, _ = tiny
    texts = ["the cat sat on a mat.", "a dog sat on the cat."]
    cal = calibrate(model, texts)
    coarse, fine = (quantise(model, cal, QuantOptions(logit_frac=k)) for k in (0, 2))
    for a, b in zip(coarse.layers, fine.layers, strict=True):
        assert set(a.logit_frac) == {0} and set(b.logit_frac) == {2}
        for h in range(len(a.rq_attn)):
            (m0, s0, _), (m2, s2, _) = a.rq_attn[h][3], b.rq_attn[h][3]
            assert abs(m2 / 2.0**s2 / (m0 / 2.0**s0) - 4) < 0.1
    with pytest.raises(ValueError, match="logit_frac"):
        quantise(model, cal, QuantOptions(logit_frac=4))


def test_minilm_ffn_outlier_units_get_their_own_engine_ffn(minilm):
    model, qmodel = minilm
    for layer in qmodel.layers:
        units = np.concatenate([part.units for part in layer.ffn])
        assert sorted(units.tolist()) == list(range(model.layers[0].ffn.w1.shape[1]))
        # the ordinary units, then parts of a few units each (one engine tile)
        assert len(layer.ffn[0].units) > 1500
        assert all(len(part.units) <= 16 for part in layer.ffn[1:])
        assert layer.add2.shape == (2 * (1 + len(layer.ffn)), model.embed_dim)
    assert sum(len(layer.ffn) == 3 for layer in qmodel.layers) >= 3


def test_wide_weight_columns_get_their_own_part():
    f1 = np.ones((4, 6))
    f1[:, 1] = 50.0  # an activation outlier
    w1 = np.ones((3, 6))
    w1[0, 4] = 10.0  # a wide weight column
    w1[0, 1] = 10.0  # wide too, but already an outlier
    groups = {label: units.tolist() for units, label in _ffn_groups(f1, w1, 6.0, 3.0)}
    assert groups == {"ordinary": [0, 2, 3, 5], "outliers": [1], "wide weights": [4]}
    assert [label for _, label in _ffn_groups(f1, w1, None, None)] == ["ordinary"]


def test_one_ffn_without_outlier_split(tiny):
    model, _ = tiny
    texts = ["the cat sat on a mat.", "a dog sat on the cat."]
    qmodel = quantise(model, calibrate(model, texts),
                      QuantOptions(outlier_ratio=None, weight_ratio=None))
    assert all(len(layer.ffn) == 1 for layer in qmodel.layers)


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
