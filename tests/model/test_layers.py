"""Layer functions against the naive tile-by-tile model, on the reference's CI shapes and on
padded and causal shapes."""

import numpy as np
import pytest

from ita.config import ITAConfig
from ita.golden import (
    AccumulatorOverflowError,
    attention_head,
    attention_mask,
    ffn,
    linear,
    multi_head_attention,
    requant,
)
from ita.golden.reference import attention_head_float, ffn_float, lsb_error
from ita.golden.vectors import LayerShape, generate
from tests.model import naive

# The reference's CI configurations (S, E, P, F, activation), all with bias.
REFERENCE_CI_SHAPES = [(64, 64, 64, 64, "gelu"), (128, 192, 256, 256, "gelu"),
                       (192, 256, 128, 128, "relu")]


def _act_fn(v, activation):
    if activation == "gelu":
        b, c = int(v["gelu_b"]), int(v["gelu_c"])
        return lambda q: naive.gelu_int(q, b, c, *map(int, v["act_rq"]))
    if activation == "relu":
        return lambda q: naive.requant_int(max(q, 0), *map(int, v["act_rq"]))
    return None


def _check_against_naive(v, shape, *, tile, n, rq_fn=naive.requant_int):
    mask = attention_mask(shape.S, causal=shape.causal, valid_keys=shape.valid_keys)
    for h in range(shape.H):
        want = naive.attention_head(
            v["q_in"], v["kv_in"], v["wq"][h], v["wk"][h], v["wv"][h], v["wo"][h], v["bq"][h],
            v["bk"][h], v["bv"][h], v["bo"][h], v["rq_attn"][h], n=n, tile=tile, mask=mask,
            rq_fn=rq_fn)
        for key, expected in want.items():
            np.testing.assert_array_equal(v[key][h], expected, err_msg=f"head {h} tensor {key}")
    want = naive.ffn(v["ff_in"], v["w1"], v["b1"], v["w2"], v["b2"], v["rq_ffn"],
                     _act_fn(v, shape.activation), tile=tile, rq_fn=rq_fn)
    for key, expected in want.items():
        np.testing.assert_array_equal(v[key], expected, err_msg=f"tensor {key}")


@pytest.mark.parametrize("S, E, P, F, act", REFERENCE_CI_SHAPES)
def test_reference_ci_shapes(S, E, P, F, act):
    shape = LayerShape(S=S, E=E, P=P, F=F, activation=act)
    v = generate(shape, seed=S + E)
    assert v["rq_attn"][..., 1].max() < 23  # shifts where the reference's float formula is exact
    _check_against_naive(v, shape, tile=64, n=16)
    # The reference generator's float requantization agrees on these constants.
    _check_against_naive(v, shape, tile=64, n=16, rq_fn=naive.requant_float)


@pytest.mark.parametrize("shape", [
    LayerShape(S=50, E=70, P=30, F=90, activation="gelu"),
    LayerShape(S=65, E=64, P=64, F=64, activation="relu", causal=True),
    LayerShape(S=100, E=40, P=72, F=33, activation="identity", causal=True, valid_keys=77),
    LayerShape(S=64, E=64, P=64, F=64, activation="gelu", valid_keys=23, bias=False),
    LayerShape(S=20, E=24, P=8, F=16, H=3, activation="relu"),
], ids=lambda s: f"S{s.S}E{s.E}P{s.P}F{s.F}H{s.H}{'c' if s.causal else ''}k{s.valid_keys}")
def test_padded_and_causal_shapes(shape):
    v = generate(shape, seed=11)
    _check_against_naive(v, shape, tile=64, n=16)


@pytest.mark.parametrize("n, tile", [(8, 32), (4, 16), (8, 64)])
def test_other_engine_geometries(n, tile):
    cfg = ITAConfig(N=n, M=tile)
    shape = LayerShape(S=45, E=40, P=36, F=20, activation="gelu", causal=True)
    v = generate(shape, seed=3, config=cfg)
    _check_against_naive(v, shape, tile=tile, n=n)


def test_multi_head_sum_is_requantized_sum_of_heads():
    shape = LayerShape(S=16, E=32, P=16, F=16, H=4)
    v = generate(shape, seed=4)
    total = v["out"].astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(v["out_sum"], requant(total, *v["rq_sum"]))
    for h in range(4):
        single = attention_head(v["q_in"], v["kv_in"], v["wq"][h], v["wk"][h], v["wv"][h],
                                v["wo"][h], v["bq"][h], v["bk"][h], v["bv"][h], v["bo"][h],
                                rq=v["rq_attn"][h])
        np.testing.assert_array_equal(single.out, v["out"][h])


def test_causal_rows_ignore_future_keys():
    """Changing a future key must not change earlier query rows under a causal mask."""
    shape = LayerShape(S=40, E=32, P=32, F=16, causal=True)
    v = generate(shape, seed=8)
    args = [v[k][0] if v[k].ndim == 3 or k.startswith("b") else v[k]
            for k in ("q_in", "kv_in", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo")]
    base = attention_head(*args, rq=v["rq_attn"][0], causal=True)
    changed = args.copy()
    kv = changed[1].copy()
    kv[30:] = -kv[30:] - 1
    changed[1] = kv
    other = attention_head(*changed, rq=v["rq_attn"][0], causal=True)
    np.testing.assert_array_equal(base.out[:30], other.out[:30])
    assert not np.array_equal(base.out[30:], other.out[30:])
    assert np.all(base.a_soft[np.triu_indices(40, 1)] == 0)


def test_linear_matches_gemm():
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (33, 70)).astype(np.int8)
    w = rng.integers(-128, 128, (70, 21)).astype(np.int8)
    b = rng.integers(-1000, 1000, 21)
    y = linear(x, w, b, rq=(90, 15, 3), activation="relu", act_rq=(200, 8, -5))
    want = naive.tiled_step(x, w, b, (90, 15, 3), 64,
                            act=lambda q: naive.requant_int(max(q, 0), 200, 8, -5))[:33, :21]
    np.testing.assert_array_equal(y, want)


def test_accumulator_overflow_detected_not_wrapped():
    x = np.full((4, 2100), -128, dtype=np.int8)
    w = np.full((2100, 8), -128, dtype=np.int8)
    with pytest.raises(AccumulatorOverflowError, match="step Linear: .* row=0, col=0"):
        linear(x, w, rq=(1, 10, 0))
    with pytest.raises(AccumulatorOverflowError, match="step F1"):
        ffn(x, w, None, w.T[:, :8], None, rq=[(1, 10, 0), (1, 10, 0)], activation="identity")


def test_bad_arguments_are_named():
    x = np.zeros((4, 8), dtype=np.int8)
    with pytest.raises(ValueError, match="inner dimensions"):
        linear(x, np.zeros((7, 3), dtype=np.int8), rq=(1, 0, 0))
    with pytest.raises(ValueError, match="b values"):
        linear(x, np.zeros((8, 3), dtype=np.int8), np.full(3, 1 << 23), rq=(1, 0, 0))
    with pytest.raises(ValueError, match="x values"):
        linear(np.full((4, 8), 200), np.zeros((8, 3), dtype=np.int8), rq=(1, 0, 0))
    with pytest.raises(ValueError, match="rq must have shape"):
        multi_head_attention(x, x, np.zeros((2, 8, 4), np.int8), np.zeros((2, 8, 4), np.int8),
                             np.zeros((2, 8, 4), np.int8), np.zeros((2, 4, 8), np.int8),
                             rq=np.ones((1, 6, 3)), rq_sum=(1, 0, 0))
    with pytest.raises(ValueError, match="valid_keys"):
        attention_mask(8, valid_keys=9)


def test_float_twin_errors_are_small():
    shape = LayerShape(S=64, E=64, P=64, F=64, activation="gelu")
    v = generate(shape, seed=12)
    names = ("q_in", "kv_in", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo")
    args = [v[k][0] if k.startswith(("w", "b")) else v[k] for k in names]
    golden = attention_head(*args, rq=v["rq_attn"][0])
    per_step = attention_head_float(*args, rq=v["rq_attn"][0], golden=golden)
    for key in ("qp", "kp", "vp", "a", "o", "out"):  # requantization alone: half an LSB
        assert lsb_error(getattr(golden, key), per_step[key])["max"] <= 0.5 + 1e-9, key
    assert lsb_error(golden.a_soft, per_step["a_soft"])["mean"] < 3  # ITAmax approximation
    end_to_end = attention_head_float(*args, rq=v["rq_attn"][0])
    assert lsb_error(golden.out, end_to_end["out"])["mean"] < 8
    real_ffn = ffn_float(v["ff_in"], v["w1"], v["b1"], v["w2"], v["b2"], rq=v["rq_ffn"])
    assert lsb_error(v["f1"], real_ffn["f1"])["mean"] < 2
