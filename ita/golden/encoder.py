"""A whole Transformer encoder layer: the engine's steps plus the cores' integer kernels.

The engine computes the GEMM steps, ITAmax and i-GELU (:mod:`ita.golden.layers`). What is
left for the cluster's cores is defined here, bit for bit and with every intermediate width,
so that a C kernel with 32-bit integers (and one 64-bit product in the requantization)
reproduces it exactly (``docs/encoder-arithmetic.md``):

* :func:`residual_add`: ``requant(x * mult_x + y * mult_y, 1, shift, add)``;
* :func:`head_sum`: ``requant(sum over heads, mult, shift, add)``;
* :func:`layer_norm`: integer LayerNorm in the I-BERT style (integer mean, integer variance,
  integer square root, one division per row);
* :func:`core_softmax`: ITAmax itself, so either the engine or the cores may compute it.

:func:`encoder_layer` composes them into attention -> add & norm -> FFN -> add & norm;
:func:`random_encoder` draws a layer whose constants are calibrated from a float model, and
:func:`encoder_layer_float` is the float twin used to report quantization error.
"""

import math
from dataclasses import dataclass, fields

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

from .arith import requant
from .layers import MultiHeadResult, attention_mask, ffn, multi_head_attention
from .quant import SOFTMAX_LOGIT_SCALE, gelu_constants, requant_constants
from .reference import attention_head_float, gelu_float, softmax_float
from .softmax import itamax
from .vectors import LayerShape

__all__ = [
    "LN_FRACTION_BITS",
    "EncoderShape",
    "MOBILEBERT",
    "MINILM",
    "SHAPES",
    "EncoderParams",
    "EncoderResult",
    "residual_add",
    "head_sum",
    "isqrt",
    "layer_norm",
    "layer_norm_stats",
    "core_softmax",
    "encoder_layer",
    "encoder_layer_float",
    "random_encoder",
]

#: Fraction bits of the normalised value ``t = (x - mean) / sqrt(sum of squares)`` in
#: :func:`layer_norm`; ``|t| <= 2**15`` keeps ``t * gamma + beta`` inside 26 bits.
LN_FRACTION_BITS = 15

# Largest row the LayerNorm sum of squares holds in 32 unsigned bits: n * 255**2 < 2**32.
_LN_MAX_COLS = ((1 << 32) - 1) // (255 * 255)


# --- checks ----------------------------------------------------------------------------------


def _ints(name, value, lo, hi, shape=None, ndim=None):
    """``value`` as an int64 array after checking dtype, dimensions, shape and range."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if array.size and (array.min() < lo or array.max() > hi):
        raise ValueError(f"{name} values must lie in [{lo}, {hi}]")
    return array.astype(np.int64)


def _const(name, value, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return int(value)


def _rq(name, value):
    """A (mult, shift, add) triple with the requantizer's ranges."""
    rq = np.asarray(value)
    if rq.shape != (3,) or not np.issubdtype(rq.dtype, np.integer):
        raise ValueError(f"{name} must be three integers (mult, shift, add), got {value!r}")
    return (_const(f"{name} mult", rq[0], 0, 255), _const(f"{name} shift", rq[1], 0, 255),
            _const(f"{name} add", rq[2], -128, 127))


# --- the cores' element-wise and row-wise kernels --------------------------------------------


def residual_add(x, y, *, mult_x, mult_y, shift, add):
    """Residual connection of two int8 tensors with different scales, requantized to int8.

    ``requant(x * mult_x + y * mult_y, 1, shift, add)``: the two products (unsigned 8-bit
    multipliers) are summed exactly (``|sum| <= 2 * 128 * 255``, 17 bits), then shifted
    right by ``shift`` rounding half up, offset by ``add`` and saturated. ``mult_x / 2**shift``
    and ``mult_y / 2**shift`` are the ratios of the input scales to the output scale.
    """
    x = _ints("x", x, -128, 127)
    y = _ints("y", y, -128, 127)
    if x.shape != y.shape:
        raise ValueError(f"residual_add operands differ in shape: {x.shape} and {y.shape}")
    mult_x = _const("mult_x", mult_x, 0, 255)
    mult_y = _const("mult_y", mult_y, 0, 255)
    shift = _const("shift", shift, 0, 255)
    add = _const("add", add, -128, 127)
    return requant(x * mult_x + y * mult_y, 1, shift, add)


def head_sum(outs, rq):
    """Sum of the heads' int8 outputs (H, S, E), requantized: ``requant(sum_h outs[h], *rq)``.

    The sum is exact (``|sum| <= 128 * H``); equals ``multi_head_attention(...).out_sum``.
    """
    outs = _ints("outs", outs, -128, 127, ndim=3)
    if outs.shape[0] < 1:
        raise ValueError("outs needs at least one head")
    return requant(outs.sum(axis=0), *_rq("rq", rq))


def isqrt(v):
    """Exact ``floor(sqrt(v))`` of non-negative integers below 2**53, element-wise (int64)."""
    v = np.asarray(v, dtype=np.int64)
    if np.any(v < 0):
        raise ValueError("isqrt of a negative number")
    root = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    root -= (root * root > v)               # float rounding can land one above ...
    root += ((root + 1) * (root + 1) <= v)  # ... or one below the exact root
    return root


def layer_norm_stats(x):
    """Per-row integers of :func:`layer_norm`: mean, sum of squares, (inv, r) of each row.

    Returns a dict of int64 arrays with one entry per row: ``mean``, ``var_sum``, ``a``
    (normalising shift), ``root``, ``inv`` and ``r`` (the final right shift).
    """
    x = _ints("x", x, -128, 127, ndim=2)
    rows, n = x.shape
    if n < 1:
        raise ValueError("layer_norm needs at least one column")
    if n > _LN_MAX_COLS:
        raise ValueError(f"layer_norm rows of {n} columns overflow the 32-bit sum of squares "
                         f"(at most {_LN_MAX_COLS})")
    total = x.sum(axis=1)
    # floor((sum + n // 2) / n): round half up. With the offset 128 * n the dividend is never
    # negative, so a C kernel can use unsigned division and subtract 128 afterwards.
    mean = (total + 128 * n + n // 2) // n - 128
    d = x - mean[:, None]
    var_sum = (d * d).sum(axis=1)                        # < 2**32: n * 255**2
    bits = np.where(var_sum > 0, np.floor(np.log2(np.maximum(var_sum, 1))).astype(np.int64)
                    + 1, 0)
    # clz32(var_sum) >> 1; a constant row (var_sum = 0) takes a = 0 and gets t = 0.
    a = np.where(var_sum > 0, (32 - bits) // 2, 0)
    root = isqrt(var_sum << (2 * a))                     # in [2**15, 2**16) when var_sum > 0
    inv = np.where(var_sum > 0, (1 << 31) // np.maximum(root, 1), 0)   # in (2**15, 2**16]
    r = 31 - LN_FRACTION_BITS - a                        # in [1, 16]
    return {"mean": mean, "var_sum": var_sum, "a": a, "root": root, "inv": inv, "r": r}


def layer_norm(x, gamma, beta, *, mult, shift, add):
    """Integer LayerNorm of int8 rows (S, E) with int8 ``gamma`` and 24-bit ``beta`` (E,).

    Per row of n values (the I-BERT recipe, with every width bounded for 32-bit C):

    1. ``mean = floor((sum(x) + n // 2) / n)`` (round half up), ``d = x - mean`` (9 bits);
    2. ``V = sum(d**2)`` (unsigned 32 bits, n <= 66,051);
    3. ``a = clz32(V) >> 1``; ``root = isqrt(V << 2a)`` (16 bits, at least 2**15);
       ``inv = floor(2**31 / root)`` (17 bits) -- the row's one square root and division;
    4. ``t = (d * inv + 2**(r-1)) >> r`` with ``r = 16 - a``, so that
       ``t ~ d / sqrt(V) * 2**15`` with ``|t| <= 2**15 + 1``; a constant row (V = 0) gives t = 0;
    5. ``out = requant(t * gamma + beta, mult, shift, add)`` (the sum fits 26 bits).

    ``d / sqrt(V) = (x - mean) / (std * sqrt(n))``: the constant ``sqrt(n)`` is folded into
    the requantization and the scale of ``beta``, so a calibrated layer gives
    ``gamma_real * (x - mean) / std + beta_real`` (without epsilon).
    """
    x = _ints("x", x, -128, 127, ndim=2)
    n = x.shape[1]
    gamma = _ints("gamma", gamma, -128, 127, shape=(n,))
    beta = _ints("beta", beta, DEFAULT_CONFIG.bias_min, DEFAULT_CONFIG.bias_max, shape=(n,))
    rq = _rq("layer_norm rq", (mult, shift, add))
    st = layer_norm_stats(x)
    d = x - st["mean"][:, None]
    r = st["r"][:, None]
    t = (d * st["inv"][:, None] + (1 << (r - 1))) >> r
    return requant(t * gamma + beta, *rq)


def core_softmax(a, *, n=None, mask=None, logit_frac=0, config: ITAConfig = DEFAULT_CONFIG):
    """The cores' softmax: ITAmax with column groups of ``n`` (default ``config.N``).

    Identical to :func:`ita.golden.itamax` at every logit step, so a layer may compute its
    softmax on the engine or on the cores and get the same bytes.
    """
    return itamax(a, config.N if n is None else n, mask, logit_frac=logit_frac, config=config)


# --- shapes and parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderShape:
    """Sizes of one encoder layer: S tokens, hidden E, H heads of P, FFN hidden F."""

    S: int
    E: int
    P: int
    H: int
    F: int
    activation: str = "gelu"

    def validate(self, config: ITAConfig = DEFAULT_CONFIG):
        """Raise ValueError naming the first size that cannot be computed exactly."""
        for name in ("S", "E", "P", "H", "F"):
            value = getattr(self, name)
            if isinstance(value, bool):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # The attention and FFN limits are those of one engine layer.
        LayerShape(S=self.S, E=self.E, P=self.P, F=self.F, H=self.H,
                   activation=self.activation).validate(config)
        if self.E > _LN_MAX_COLS:
            raise ValueError(f"E={self.E} overflows the LayerNorm sum of squares "
                             f"(at most {_LN_MAX_COLS})")
        return self


MOBILEBERT = EncoderShape(128, 128, 32, 4, 512)
MINILM = EncoderShape(64, 384, 32, 12, 1536)
SHAPES = {"mobilebert": MOBILEBERT, "minilm": MINILM}


@dataclass(frozen=True)
class EncoderParams:
    """Weights and constants of one encoder layer (int8 weights, 24-bit biases).

    Requantization sets are (mult, shift, add); ``add1``/``add2`` are the residual adds'
    (mult_x, mult_y, shift, add), x being the skip connection.
    """

    wq: np.ndarray         #: (H, E, P) int8
    wk: np.ndarray         #: (H, E, P) int8
    wv: np.ndarray         #: (H, E, P) int8
    bq: np.ndarray         #: (H, P) int32
    bk: np.ndarray         #: (H, P) int32
    bv: np.ndarray         #: (H, P) int32
    wo: np.ndarray         #: (H, P, E) int8
    bo: np.ndarray         #: (H, E) int32
    rq_attn: np.ndarray    #: (H, 6, 3) for Q, K, V, QK, AV, OW
    rq_sum: np.ndarray     #: (3,) head sum
    add1: np.ndarray       #: (4,) residual add after attention
    ln1_gamma: np.ndarray  #: (E,) int8
    ln1_beta: np.ndarray   #: (E,) int32
    ln1_rq: np.ndarray     #: (3,)
    w1: np.ndarray         #: (E, F) int8
    b1: np.ndarray         #: (F,) int32
    w2: np.ndarray         #: (F, E) int8
    b2: np.ndarray         #: (E,) int32
    rq_ffn: np.ndarray     #: (2, 3) for F1, F2
    gelu_b: int
    gelu_c: int
    act_rq: np.ndarray     #: (3,) activation requantization after GELU / ReLU
    add2: np.ndarray       #: (4,) residual add after the FFN
    ln2_gamma: np.ndarray  #: (E,) int8
    ln2_beta: np.ndarray   #: (E,) int32
    ln2_rq: np.ndarray     #: (3,)
    activation: str = "gelu"
    logit_frac: tuple = ()  #: per head the ITAmax logit step ln 2 / 2**k (empty: k = 0)

    def head_logit_frac(self, head: int) -> int:
        """The logit step k of head ``head``'s attention job."""
        return int(self.logit_frac[head]) if len(self.logit_frac) else 0

    def shape(self, seq: int) -> EncoderShape:
        """The :class:`EncoderShape` these weights belong to, for ``seq`` tokens."""
        heads, emb, proj = np.shape(self.wq)
        return EncoderShape(seq, emb, proj, heads, np.shape(self.w1)[1], self.activation)


@dataclass(frozen=True)
class EncoderResult:
    """Every intermediate of one encoder layer (int8, except ``attention.a_soft``)."""

    attention: MultiHeadResult  #: per-head intermediates and outputs
    attn: np.ndarray            #: (S, E) requantized head sum
    add1: np.ndarray            #: (S, E) x + attn
    ln1: np.ndarray             #: (S, E) LayerNorm 1
    f1: np.ndarray              #: (S, F) first FFN GEMM with activation
    f2: np.ndarray              #: (S, E) second FFN GEMM
    add2: np.ndarray            #: (S, E) ln1 + f2
    out: np.ndarray             #: (S, E) LayerNorm 2: the layer's output


RESULT_KEYS = tuple(f.name for f in fields(EncoderResult))


def _check_params(x, params: EncoderParams, config):
    x = _ints("x", x, -128, 127, ndim=2)
    if np.ndim(params.wq) != 3:
        raise ValueError(f"wq must have shape (H, E, P), got {np.shape(params.wq)}")
    shape = params.shape(x.shape[0])
    shape.validate(config)
    E, P, H, F = shape.E, shape.P, shape.H, shape.F
    if x.shape[1] != E:
        raise ValueError(f"x must have shape (S, {E}) to match the weights, got {x.shape}")
    expected = {"wq": (H, E, P), "wk": (H, E, P), "wv": (H, E, P), "bq": (H, P),
                "bk": (H, P), "bv": (H, P), "wo": (H, P, E), "bo": (H, E), "rq_attn": (H, 6, 3),
                "rq_sum": (3,), "add1": (4,), "ln1_gamma": (E,), "ln1_beta": (E,),
                "ln1_rq": (3,), "w1": (E, F), "b1": (F,), "w2": (F, E), "b2": (E,),
                "rq_ffn": (2, 3), "act_rq": (3,), "add2": (4,), "ln2_gamma": (E,),
                "ln2_beta": (E,), "ln2_rq": (3,)}
    for name, want in expected.items():
        got = np.shape(getattr(params, name))
        if got != want:
            raise ValueError(f"params.{name} must have shape {want}, got {got}")
    return x, shape


def _residual(x, y, consts, name):
    c = np.asarray(consts)
    if c.shape != (4,):
        raise ValueError(f"{name} must be (mult_x, mult_y, shift, add), got {consts!r}")
    return residual_add(x, y, mult_x=c[0], mult_y=c[1], shift=c[2], add=c[3])


def encoder_layer(x, params: EncoderParams, *, causal=False, valid_keys=None,
                  config: ITAConfig = DEFAULT_CONFIG) -> EncoderResult:
    """One encoder layer on int8 tokens ``x`` (S, E), bit-exact with the cluster.

    ``attention = multi_head_attention(x, x)`` -> ``attn = head_sum`` -> ``add1 = x + attn``
    -> ``ln1`` -> ``f1 = act(ln1 @ w1 + b1)``, ``f2 = f1 @ w2 + b2`` -> ``add2 = ln1 + f2``
    -> ``out = ln2(add2)``. ``causal`` and ``valid_keys`` mask the softmax as in
    :func:`ita.golden.attention_head`.
    """
    x, shape = _check_params(x, params, config)
    p = params
    attention = multi_head_attention(x, x, p.wq, p.wk, p.wv, p.wo, p.bq, p.bk, p.bv, p.bo,
                                     rq=p.rq_attn, rq_sum=p.rq_sum, causal=causal,
                                     valid_keys=valid_keys,
                                     logit_frac=[p.head_logit_frac(h)
                                                 for h in range(np.shape(p.wq)[0])],
                                     config=config)
    attn = head_sum(attention.out, p.rq_sum)
    add1 = _residual(x, attn, p.add1, "add1")
    ln1 = layer_norm(add1, p.ln1_gamma, p.ln1_beta, **_rq_kwargs(p.ln1_rq, "ln1_rq"))
    ff = ffn(ln1, p.w1, p.b1, p.w2, p.b2, rq=p.rq_ffn, activation=shape.activation,
             gelu_b=p.gelu_b, gelu_c=p.gelu_c, act_rq=_rq("act_rq", p.act_rq), config=config)
    add2 = _residual(ln1, ff.f2, p.add2, "add2")
    out = layer_norm(add2, p.ln2_gamma, p.ln2_beta, **_rq_kwargs(p.ln2_rq, "ln2_rq"))
    return EncoderResult(attention=attention, attn=attn, add1=add1, ln1=ln1, f1=ff.f1,
                         f2=ff.f2, add2=add2, out=out)


def _rq_kwargs(rq, name):
    mult, shift, add = _rq(name, rq)
    return {"mult": mult, "shift": shift, "add": add}


# --- float twin ------------------------------------------------------------------------------


def _scale(rq):
    mult, shift, add = (float(v) for v in rq)
    return lambda v: np.clip(v * (mult / 2.0**shift) + add, -128, 127)


def _residual_float(x, y, consts):
    mult_x, mult_y, shift, add = (float(v) for v in consts)
    return np.clip((x * mult_x + y * mult_y) / 2.0**shift + add, -128, 127)


def _layer_norm_float(x, gamma, beta, rq):
    d = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt((d * d).sum(axis=1, keepdims=True))
    t = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0) * 2.0**LN_FRACTION_BITS
    return _scale(rq)(t * np.asarray(gamma, dtype=np.float64) + np.asarray(beta, np.float64))


# I-BERT's erf constant a; gelu_constants() sets c = round(1 / (a * S2**2)), S2 = S / sqrt 2.
_ERF_A = -0.2888


def _gelu_scales(b, c, act_rq):
    """(input scale, signed output scale) that the i-GELU constants stand for."""
    s2_squared = 1.0 / (_ERF_A * float(c))
    input_scale = math.sqrt(2.0 * s2_squared)
    poly_scale = input_scale * _ERF_A * s2_squared / 2.0
    mult, shift = float(act_rq[0]), float(act_rq[1])
    return input_scale, poly_scale * 2.0**shift / mult


def encoder_layer_float(x, params: EncoderParams, *, causal=False, valid_keys=None):
    """Float twin of :func:`encoder_layer` in the same integer units (LSBs).

    The same integer inputs, weights and constants, without rounding or integer
    approximation: requantizations multiply by ``mult / 2**shift``, add and saturate; the
    softmax is a real base-2 softmax times 255; GELU is the real function at the scale its
    constants stand for; LayerNorm uses the exact mean and square root. Each stage is fed
    by the twin's own float output of the stage before, so errors accumulate as in a float
    model. Returns a dict with the keys of :class:`EncoderResult`; ``attention`` holds the
    per-head float arrays stacked along a leading head axis.
    """
    x = np.asarray(x, dtype=np.float64)
    p = params
    heads = np.shape(p.wq)[0]
    per_head = [attention_head_float(x, x, p.wq[h], p.wk[h], p.wv[h], p.wo[h], p.bq[h],
                                     p.bk[h], p.bv[h], p.bo[h], rq=p.rq_attn[h],
                                     causal=causal, valid_keys=valid_keys,
                                     logit_frac=p.head_logit_frac(h))
                for h in range(heads)]
    attention = {k: np.stack([r[k] for r in per_head]) for k in per_head[0]}
    attn = _scale(p.rq_sum)(attention["out"].sum(axis=0))
    add1 = _residual_float(x, attn, p.add1)
    ln1 = _layer_norm_float(add1, p.ln1_gamma, p.ln1_beta, p.ln1_rq)
    rq1, rq2 = np.asarray(p.rq_ffn)
    u = _scale(rq1)(ln1 @ np.asarray(p.w1, np.float64) + np.asarray(p.b1, np.float64))
    if p.activation == "gelu":
        s_in, s_out = _gelu_scales(p.gelu_b, p.gelu_c, p.act_rq)
        f1 = np.clip(gelu_float(u * s_in) / s_out + float(p.act_rq[2]), -128, 127)
    elif p.activation == "relu":
        f1 = _scale(p.act_rq)(np.maximum(u, 0.0))
    else:
        f1 = u
    f2 = _scale(rq2)(f1 @ np.asarray(p.w2, np.float64) + np.asarray(p.b2, np.float64))
    add2 = _residual_float(ln1, f2, p.add2)
    out = _layer_norm_float(add2, p.ln2_gamma, p.ln2_beta, p.ln2_rq)
    return {"attention": attention, "attn": attn, "add1": add1, "ln1": ln1, "f1": f1,
            "f2": f2, "add2": add2, "out": out}


# --- random, calibrated layers ---------------------------------------------------------------

# Share of values allowed beyond the int8 range when a scale is calibrated from a tensor.
_CLIP_PERCENTILE = 99.9


def _calibrate(values):
    """Scale that maps the 99.9th percentile of |values| to 127."""
    top = float(np.percentile(np.abs(values), _CLIP_PERCENTILE))
    return max(top, 1e-6) / 127.0


def _quantize(values, scale, lo=-128, hi=127, dtype=np.int8):
    return np.clip(np.rint(np.asarray(values) / scale), lo, hi).astype(dtype)


def _residual_constants(scale_x, scale_y, scale_out):
    """(mult_x, mult_y, shift, add) with ``mult / 2**shift`` closest to the scale ratios."""
    ratios = (scale_x / scale_out, scale_y / scale_out)
    shift = max(0, min(62, 7 - math.floor(math.log2(max(ratios)))))
    mults = [round(r * 2.0**shift) for r in ratios]
    if max(mults) > 255:
        shift -= 1
        mults = [round(r * 2.0**shift) for r in ratios]
    return np.array([*mults, shift, 0], dtype=np.int32)


def _layer_norm_real(v, gamma, beta):
    d = v - v.mean(axis=1, keepdims=True)
    return gamma * d / np.sqrt((d * d).mean(axis=1, keepdims=True) + 1e-6) + beta


def random_encoder(shape: EncoderShape, seed: int, config: ITAConfig = DEFAULT_CONFIG):
    """Draw tokens and a layer for ``shape`` with ``seed``; constants from float statistics.

    A float layer (Gaussian weights scaled by fan-in, LayerNorm gains near 1, unit-variance
    tokens) runs once; each tensor's int8 scale maps its 99.9th percentile to 127, every
    weight tensor is quantized per tensor (per head for the attention), biases at the product
    of their GEMM's input and weight scales, and every requantization is the ratio of scales.
    QK logits get the softmax's fixed scale of ln 2 per step, probabilities 1/255. GELU's
    constants follow its calibrated input scale; its output is sign-inverted, so ``w2`` is
    quantized from ``-W2``. Deterministic per seed; returns ``(x, params)``.
    """
    shape.validate(config)
    S, E, P, H, F = shape.S, shape.E, shape.P, shape.H, shape.F
    rng = np.random.default_rng(seed)

    def normal(*dims, std=1.0):
        return rng.standard_normal(dims) * std

    xf = normal(S, E)
    wq, wk = normal(H, E, P, std=math.sqrt(2.0 / E)), normal(H, E, P, std=math.sqrt(2.0 / E))
    wv, wo = normal(H, E, P, std=math.sqrt(1.0 / E)), normal(H, P, E, std=math.sqrt(1.0 / (H * P)))
    bq, bk, bv = normal(H, P, std=0.1), normal(H, P, std=0.1), normal(H, P, std=0.1)
    bo = normal(H, E, std=0.1 / H)
    g1, beta1 = 1.0 + normal(E, std=0.2), normal(E, std=0.1)
    w1, b1 = normal(E, F, std=math.sqrt(2.0 / E)), normal(F, std=0.1)
    w2, b2 = normal(F, E, std=math.sqrt(2.0 / F)), normal(E, std=0.1)
    g2, beta2 = 1.0 + normal(E, std=0.2), normal(E, std=0.1)

    # Float forward pass, recording every tensor that gets an int8 scale.
    s_x = _calibrate(xf)
    qf = np.einsum("se,hep->hsp", xf, wq) + bq[:, None]
    kf = np.einsum("se,hep->hsp", xf, wk) + bk[:, None]
    vf = np.einsum("se,hep->hsp", xf, wv) + bv[:, None]
    mask = attention_mask(S)
    logits = qf @ kf.transpose(0, 2, 1) / math.sqrt(P)
    probs = softmax_float(logits / SOFTMAX_LOGIT_SCALE, mask)
    of = probs @ vf
    outf = np.einsum("hsp,hpe->hse", of, wo) + bo[:, None]
    attnf = outf.sum(axis=0)
    add1f = xf + attnf
    ln1f = _layer_norm_real(add1f, g1, beta1)
    uf = ln1f @ w1 + b1
    act = shape.activation
    f1f = gelu_float(uf) if act == "gelu" else np.maximum(uf, 0) if act == "relu" else uf
    f2f = f1f @ w2 + b2
    add2f = ln1f + f2f
    outf2 = _layer_norm_real(add2f, g2, beta2)

    s_out_head = _calibrate(outf)
    s_attn, s_add1, s_ln1 = _calibrate(attnf), _calibrate(add1f), _calibrate(ln1f)
    s_u, s_f1, s_f2 = _calibrate(uf), _calibrate(f1f), _calibrate(f2f)
    s_add2, s_ln2 = _calibrate(add2f), _calibrate(outf2)

    def rq(ratio):
        return [*requant_constants(ratio), 0]

    def bias(values, scale):
        return _quantize(values, scale, config.bias_min, config.bias_max, np.int32)

    p = {k: np.zeros((H,) + d, dtype=t) for k, d, t in (
        ("wq", (E, P), np.int8), ("wk", (E, P), np.int8), ("wv", (E, P), np.int8),
        ("wo", (P, E), np.int8), ("bq", (P,), np.int32), ("bk", (P,), np.int32),
        ("bv", (P,), np.int32), ("bo", (E,), np.int32), ("rq_attn", (6, 3), np.int32))}
    for h in range(H):
        s_wq, s_wk, s_wv, s_wo = (_calibrate(w[h]) for w in (wq, wk, wv, wo))
        s_q, s_k, s_v, s_o = (_calibrate(t[h]) for t in (qf, kf, vf, of))
        p["wq"][h], p["wk"][h] = _quantize(wq[h], s_wq), _quantize(wk[h], s_wk)
        p["wv"][h], p["wo"][h] = _quantize(wv[h], s_wv), _quantize(wo[h], s_wo)
        p["bq"][h], p["bk"][h] = bias(bq[h], s_x * s_wq), bias(bk[h], s_x * s_wk)
        p["bv"][h], p["bo"][h] = bias(bv[h], s_x * s_wv), bias(bo[h], s_o * s_wo)
        p["rq_attn"][h] = [rq(s_x * s_wq / s_q), rq(s_x * s_wk / s_k), rq(s_x * s_wv / s_v),
                           rq(s_q * s_k / math.sqrt(P) / SOFTMAX_LOGIT_SCALE),
                           rq(s_v / 255.0 / s_o), rq(s_o * s_wo / s_out_head)]

    def layer_norm_consts(gamma, beta, s_out):
        s_gamma = np.max(np.abs(gamma)) / 127.0
        # acc = t * gamma_q + beta_q has scale s_gamma * sqrt(E) / 2**15 (see layer_norm).
        s_acc = s_gamma * math.sqrt(E) / 2.0**LN_FRACTION_BITS
        return (_quantize(gamma, s_gamma), bias(beta, s_acc),
                np.array(rq(s_acc / s_out), dtype=np.int32))

    ln1_gamma, ln1_beta, ln1_rq = layer_norm_consts(g1, beta1, s_ln1)
    ln2_gamma, ln2_beta, ln2_rq = layer_norm_consts(g2, beta2, s_ln2)
    s_w1 = _calibrate(w1)
    if act == "gelu":
        gelu = gelu_constants(s_u, s_f1)
        gelu_b, gelu_c, act_rq, sign = gelu.b, gelu.c, gelu.act_rq, -1.0
    else:
        # ReLU and identity keep F1's scale: act_rq is the identity requantization.
        gelu_b, gelu_c, act_rq, sign, s_f1 = 0, 0, (1, 0, 0), 1.0, s_u
    s_w2 = _calibrate(w2)
    params = EncoderParams(
        **p,
        rq_sum=np.array(rq(s_out_head / s_attn), dtype=np.int32),
        add1=_residual_constants(s_x, s_attn, s_add1),
        ln1_gamma=ln1_gamma, ln1_beta=ln1_beta, ln1_rq=ln1_rq,
        w1=_quantize(w1, s_w1), b1=bias(b1, s_ln1 * s_w1),
        w2=_quantize(sign * w2, s_w2), b2=bias(b2, s_f1 * s_w2),
        rq_ffn=np.array([rq(s_ln1 * s_w1 / s_u), rq(s_f1 * s_w2 / s_f2)], dtype=np.int32),
        gelu_b=int(gelu_b), gelu_c=int(gelu_c), act_rq=np.array(act_rq, dtype=np.int32),
        add2=_residual_constants(s_ln1, s_f2, s_add2),
        ln2_gamma=ln2_gamma, ln2_beta=ln2_beta, ln2_rq=ln2_rq, activation=act)
    return _quantize(xf, s_x), params
