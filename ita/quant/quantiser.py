"""From a float BERT description and its calibration to an :class:`IntegerModel`.

Every int8 tensor gets one real scale (its LSB). Activations take the scale that maps a
high percentile of their calibrated magnitude to 127 (99.999 by default: the maximum is set
by a handful of outliers and would waste bits on every other value); weights take their
maximum. Each requantization is then the ratio of the scales around it, as a (mult, shift)
pair for the engine's 8-bit multiplier (:func:`ita.golden.requant_constants`).

What makes a real checkpoint work with ITA arithmetic (all-MiniLM-L6-v2 measurements in
``docs/models.md``):

* **Per-output-channel weight scales for OW and F2.** A few columns of these weights are
  tens of times larger than the rest; one scale per tensor leaves the other columns with a
  handful of levels. The engine still requantizes with one scalar per step, so each output
  column keeps its weight's scale; the per-column residual add that follows
  (:func:`ita.quant.integer.residual_add_rows`) brings the columns to one scale. OW's
  column scales are shared by all heads, so the cores can sum the heads exactly.
* **SmoothQuant** (Xiao et al. 2023): a LayerNorm output feeding a GEMM is divided per
  channel by ``s_j = max|x_j|**alpha / max|w_j|**(1 - alpha)`` (folded into gamma and beta)
  and the GEMM's weight rows multiplied by it. The residual add that also reads the
  LayerNorm output undoes the factor per column. alpha is 0.7 before Q, K and V (their
  per-head weight scales take the migrated outliers well; the int8 LayerNorm output,
  which the residual add also reads, gets the finer columns) and 0.5 before F1: on the
  held sentences 0.5 everywhere left the worst one at 0.94 (``docs/models.md``).
* **The softmax's input scale is its logit step**: ITAmax computes ``2**((x - max) / 2**k)``
  of its int8 input, so one logit step is ln 2 / 2**k and the QK requantization is
  ``s_q * s_k / sqrt(P) / (ln 2 / 2**k)``, never calibrated (another scale would change the
  softmax's temperature). k is the job's ``logit_frac``: per head the finest step whose
  int8 range (127 steps) holds the head's largest calibrated logit
  (:func:`logit_frac_for`); the public ITA's k = 0 rounds logits to ln 2, the largest
  single error term. Probabilities have scale 1/255 (``floor(65280 / sum)`` times
  ``2**((x - max) / 2**k)`` with the maximum's term 256).
* **The FFN's outlier hidden units in their own engine FFN** (:func:`_ffn_groups`), so that
  one or two units reaching 13-25 on [CLS] do not coarsen the GELU outputs of the other
  1,534, and likewise the few units whose F1 weight column is more than 3 times wider than
  the median column, so that they do not coarsen F1's one weight scale; the residual add
  sums the parts' F2 outputs.
* **GELU outputs over all 256 codes**: they reach only about -0.17 below zero, so the
  activation requantization's offset moves the range (:func:`_offset_scale`) and F2's bias
  takes the offset back out.
* **GELU inputs scaled by their positive side**: pre-activations reach -17 but only +6,
  and GELU maps everything below -4 to zero, so the F1 output's scale ignores the negative
  tail (:func:`_gelu_input_scale`): three times finer codes where GELU is not flat.
* **i-GELU constants from each part's calibrated F1 scale**
  (:func:`ita.golden.gelu_constants`). The integer GELU is sign-inverted, so F2's weights are
  quantized from ``-W2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import gelu_constants, requant_constants
from ita.golden.encoder import LN_FRACTION_BITS
from ita.golden.quant import SOFTMAX_LOGIT_SCALE
from ita.models.ir import LayerNorm, Model, ModelError

from .calibration import Calibration, percentile_scale
from .integer import (
    _PRODUCT_MAX,
    _SUM_LIMIT,
    FFNPart,
    IntegerLayer,
    IntegerModel,
    NormConstants,
)

__all__ = ["QuantOptions", "QuantError", "quantise"]

_INT8_MAX = 127
_INT8_MIN = -128


class QuantError(ModelError):
    """A model whose calibrated constants do not fit the hardware's widths (one line)."""


@dataclass(frozen=True)
class QuantOptions:
    """Calibration choices; the defaults are the recipe that works on MiniLM.

    ``percentile`` sets activation scales; ``smooth_alpha`` is SmoothQuant's migration
    strength for the LayerNorm output feeding the FFN, ``qkv_alpha`` for those feeding Q, K
    and V (None: no smoothing there); ``per_channel`` gives OW and F2 one weight scale per
    output column (False: one per tensor); ``outlier_ratio`` separates the FFN's outlier
    hidden units into their own engine FFN (None: one FFN), ``weight_ratio`` those of wide
    F1 weight columns into another (None: none), see :func:`_ffn_groups`; ``head_scales``
    gives each attention head's output its own scale, the residual add summing the heads
    (False: one scale, the cores' head sum, then the add);
    ``logit_frac`` is the ITAmax logit step ln 2 / 2**logit_frac of every attention job
    (None: per head, the finest step whose int8 range holds the head's calibrated logits,
    :func:`logit_frac_for`); ``gelu_floor`` bounds the GELU input's calibrated range below
    (:func:`_gelu_input_scale`; None: symmetric).
    """

    percentile: float = 99.999
    smooth_alpha: float | None = 0.5
    qkv_alpha: float | None = 0.7
    per_channel: bool = True
    outlier_ratio: float | None = 6.0
    weight_ratio: float | None = 3.0
    head_scales: bool = False
    logit_frac: int | None = None
    gelu_floor: float | None = 4.0


def _gelu_input_scale(u, percentile, floor):
    """Scale of F1's int8 output (i-GELU's input) from the range that matters to GELU.

    MiniLM's pre-activations reach -17 but only +6: a symmetric percentile of ``|u|`` is set
    by the negative tail, which GELU maps to zero (i-GELU returns exactly zero below about
    -2.5), and leaves the positive side a third of the codes. Values below ``-floor`` count
    as ``-floor`` (None: the plain percentile of ``|u|``); int8 then saturates them at
    ``-128 * scale``, at least ``-floor``, where GELU is within 1.3e-4 of zero for 4.
    """
    if floor is None:
        return percentile_scale(u, percentile)
    return percentile_scale(np.maximum(u, -floor), percentile)


def logit_frac_for(logit_max, config: ITAConfig = DEFAULT_CONFIG) -> int:
    """The largest k in 0..``config.logit_frac_max`` whose logit step ln 2 / 2**k keeps a
    logit of magnitude ``logit_max`` (nats) inside int8: a finer step resolves the
    probabilities better, but QK's requantization saturates what lies beyond 127 steps and
    merges the largest logits of a row."""
    k = 0
    while (k < config.logit_frac_max
           and logit_max * 2**(k + 1) / SOFTMAX_LOGIT_SCALE <= _INT8_MAX):
        k += 1
    return k


def _int8(values, scale):
    return np.clip(np.rint(values / scale), -128, _INT8_MAX).astype(np.int8)


def _weight_scale(w, axis=None):
    """Scale that maps max |w| (per column with ``axis=0``) to 127."""
    top = np.abs(w).max(axis=axis)
    return np.maximum(top, np.finfo(np.float32).tiny) / _INT8_MAX


def _check_bias(q, name, config):
    if q.min() < config.bias_min or q.max() > config.bias_max:
        raise QuantError(f"{name}: bias needs {int(np.abs(q).max())}, beyond the "
                         f"{config.bias_width}-bit range")


def _bias(values, scale, name, config):
    q = np.rint(np.asarray(values, dtype=np.float64) / scale)
    _check_bias(q, name, config)
    return q.astype(np.int32)


def _offset_scale(values, percentile):
    """(scale, offset) for a sign-inverted int8 of values bounded below (GELU outputs).

    GELU's outputs reach only about -0.17 below zero, so a symmetric scale would leave half
    of int8 unused. The calibrated range [min, high percentile] spans all 256 codes instead:
    ``code = -value / scale + offset``, the minimum landing on 127.
    """
    low = float(values.min())
    span = percentile_scale(values - low, percentile) * _INT8_MAX
    scale = span / (_INT8_MAX - _INT8_MIN)
    return scale, int(round(_INT8_MAX + low / scale))


def _rq(ratio, name):
    try:
        return (*requant_constants(float(ratio)), 0)
    except ValueError as error:
        raise QuantError(f"{name}: {error}") from None


def _residual(scales, name):
    """(2n, E): a multiplier per operand and column, then a left shift per operand and
    column, for :func:`ita.quant.integer.residual_add_rows`.

    ``scales`` are the n operands' per-column LSBs. ``mult * 2**lshift`` is proportional to
    them with one factor for all columns and operands, chosen so that the finest scale gets
    a multiplier of 128 if the 32-bit sum allows, else as large as it allows; multipliers
    land in 128..255 (8 significant bits) except for the finest scales: a shift shared by
    the operands would leave an operand with a 20 times finer scale a multiplier of about
    10, a gain error of 5 % in some columns.
    """
    scales = np.broadcast_arrays(*(np.asarray(s, np.float64) for s in scales))
    factor = 128.0 / np.minimum.reduce(scales).min()
    while True:  # halve the factor until the widest column's sum fits 32 bits
        mults, lshifts = [], []
        for scale in scales:
            target = scale * factor
            lshift = np.maximum(np.floor(np.log2(target / 128.0)), 0).astype(np.int64)
            lshift = np.where(np.rint(target / 2.0**lshift) > 255, lshift + 1, lshift)
            mults.append(np.rint(target / 2.0**lshift))
            lshifts.append(lshift)
        if sum(np.int64(_PRODUCT_MAX) << sh for sh in lshifts).max() < _SUM_LIMIT:
            break
        factor /= 2
    if min(m.max() for m in mults) < 1:
        raise QuantError(f"{name}: column scales span too much for a 32-bit residual sum")
    return np.stack(mults + lshifts).astype(np.int64)


def _column_scales(w, per_channel):
    """Weight scale of each output column: its own maximum, or the tensor's."""
    if per_channel:
        return _weight_scale(w, axis=0)
    return np.full(w.shape[1], _weight_scale(w))


def _ffn_groups(f1, w1, ratio, weight_ratio):
    """Hidden units split into (units, label) groups: the ordinary ones, the outliers, and
    the units of wide weights.

    A hidden unit is an outlier when its calibrated maximum |GELU output| exceeds ``ratio``
    times the median unit's. MiniLM has one or two in each of layers 0-3, reaching 13-25 on
    [CLS] while the median unit stays near 1.3: one F1 output scale for all units would
    leave the others a few codes, and clipping the outliers loses what [CLS] carries.

    A unit of wide weights is one whose (smoothed) F1 weight column reaches more than
    ``weight_ratio`` times the median column's maximum. F1 has one weight scale per part
    (its requantization is one scalar); MiniLM's widest columns reach 3-4.5 against a median
    of 0.6, so a handful of columns (1-11 per layer at 3 times) set the scale of all 1,536.
    """
    top = np.abs(f1).max(axis=0)
    outlier = (top > ratio * np.median(top) if ratio is not None
               else np.zeros(top.shape, dtype=bool))
    width = np.abs(w1).max(axis=0)
    wide = (width > weight_ratio * np.median(width) if weight_ratio is not None
            else np.zeros(width.shape, dtype=bool)) & ~outlier
    groups = [(np.flatnonzero(~outlier & ~wide), "ordinary"),
              (np.flatnonzero(outlier), "outliers"), (np.flatnonzero(wide), "wide weights")]
    return [(units, label) for units, label in groups if len(units)]


def _ffn_part(units, ff, w1, tr, s_ln1, options, name, config):
    """One engine FFN (F1 + activation, F2) over ``units`` of the hidden layer, and the
    per-column LSB of its int8 F2 output.

    The part that holds unit 0 carries F2's bias; the parts' outputs are summed by the
    residual add. GELU outputs span all 256 codes (:func:`_offset_scale`); the integer GELU
    is sign-inverted, so F2's weights are quantized from ``-W2``.
    """
    pct = options.percentile
    w1, w2 = w1[:, units], ff.w2[units]
    u, f1 = tr["u"][:, units], tr["f1"][:, units]
    with_bias = units[0] == 0
    f2 = f1 @ w2 + (ff.b2 if with_bias else 0.0)
    s_w1 = float(_weight_scale(w1))
    s_w2 = _column_scales(w2, options.per_channel)
    if ff.activation == "gelu":
        s_u = _gelu_input_scale(u, pct, options.gelu_floor)
        s_f1, offset = _offset_scale(f1, pct)
        gelu = gelu_constants(s_u, s_f1)
        gelu_b, gelu_c, sign = gelu.b, gelu.c, -1.0
        act_rq = (gelu.mult, gelu.shift, offset)
    else:  # ReLU keeps F1's scale
        s_u = percentile_scale(u, pct)
        gelu_b, gelu_c, act_rq, sign, s_f1, offset = 0, 0, (1, 0, 0), 1.0, s_u, 0
    s_f2 = percentile_scale(f2 / s_w2, pct)
    w2_int = _int8(sign * w2, s_w2)
    # F2 reads f1 + offset: the bias takes the offset's share back out.
    b2 = (_bias(ff.b2 if with_bias else np.zeros(w2.shape[1]), s_f1 * s_w2, f"{name} b2",
                config)
          - offset * w2_int.astype(np.int64).sum(axis=0))
    _check_bias(b2, f"{name} b2 with the GELU offset", config)
    part = FFNPart(units=units, w1=_int8(w1, s_w1),
                   b1=_bias(ff.b1[units], s_ln1 * s_w1, f"{name} b1", config), w2=w2_int,
                   b2=b2.astype(np.int32),
                   rq=np.array([_rq(s_ln1 * s_w1 / s_u, f"{name} F1"),
                                _rq(s_f1 / s_f2, f"{name} F2")], dtype=np.int64),
                   gelu_b=int(gelu_b), gelu_c=int(gelu_c), act_rq=tuple(act_rq),
                   activation=ff.activation)
    return part, s_w2 * s_f2


def _smoothing(acts, weights, alpha):
    """SmoothQuant factors per input channel of ``weights`` (rows) from activations (T, E)."""
    if alpha is None:
        return np.ones(acts.shape[1])
    tiny = np.finfo(np.float32).tiny
    a = np.maximum(np.abs(acts).max(axis=0), tiny)
    w = np.maximum(np.abs(weights).max(axis=1), tiny)
    return a**alpha / w ** (1.0 - alpha)


def _norm(norm: LayerNorm, smooth, out_scale, name, config):
    """Integer LayerNorm whose int8 output is ``norm(x) / smooth`` at ``out_scale``.

    The integer LayerNorm's accumulator ``t * gamma + beta`` has scale
    ``s_gamma * sqrt(n) / 2**LN_FRACTION_BITS`` (see :func:`ita.golden.layer_norm`).
    """
    gamma, beta = norm.gamma / smooth, norm.beta / smooth
    s_gamma = float(_weight_scale(gamma))
    s_acc = s_gamma * math.sqrt(len(gamma)) / 2.0**LN_FRACTION_BITS
    return NormConstants(gamma=_int8(gamma, s_gamma), beta=_bias(beta, s_acc, name, config),
                         rq=_rq(s_acc / out_scale, name))


def _qkv_rows(layer):
    att = layer.attention
    return np.concatenate([att.wq, att.wk, att.wv], axis=1)


def quantise(model: Model, calibration: Calibration, options: QuantOptions = QuantOptions(),
             config: ITAConfig = DEFAULT_CONFIG) -> IntegerModel:
    """Integer constants for every step of ``model`` from ``calibration``."""
    if model.family != "bert":
        raise QuantError(f"{model.name}: the quantiser handles BERT encoders, not "
                         f"{model.family!r}")
    pct = options.percentile
    alpha, qkv_alpha = options.smooth_alpha, options.qkv_alpha
    if options.logit_frac is not None:
        config.exp_table(options.logit_frac)  # refuses a step the engine cannot take
    prob_one = config.softmax_scalar // 256  # ITAmax: 65280 / sum of 256 >> (max - x) terms
    layers = model.layers
    traces = calibration.layers
    scales = {}

    smooth = _smoothing(traces[0]["x"], _qkv_rows(layers[0]), qkv_alpha)
    s_x = percentile_scale(traces[0]["x"] / smooth, pct)
    embed_norm = _norm(model.embedding.norm, smooth, s_x, "embedding LayerNorm", config)
    # The layer input: int8 of (real / smooth) at s_x, so one LSB of column c is
    # smooth[c] * s_x.

    int_layers = []
    for index, (layer, tr) in enumerate(zip(layers, traces, strict=True)):
        name = f"layer {index}"
        att, ff = layer.attention, layer.ffn
        H, P = att.heads, att.head_dim
        per_head = {k: [] for k in ("wq", "wk", "wv", "bq", "bk", "bv", "wo", "bo", "rq")}
        logit_frac = tuple(logit_frac_for(float(m), config) for m in tr["logit_max"]) \
            if options.logit_frac is None else (options.logit_frac,) * H

        s_wo = _column_scales(att.wo, options.per_channel)
        # Head outputs: int8 of head_out / s_wo at s_head (per head, or one for all heads).
        s_head = ([percentile_scale(tr["head_out"][h] / s_wo, pct) for h in range(H)]
                  if options.head_scales else
                  [percentile_scale(tr["head_out"] / s_wo, pct)] * H)
        s_attn = percentile_scale(tr["attn"] / s_wo, pct)
        for h in range(H):
            cols = slice(h * P, (h + 1) * P)
            rq = []
            projections = {}
            for key, w, b in (("q", att.wq, att.bq), ("k", att.wk, att.bk),
                              ("v", att.wv, att.bv)):
                w_h = w[:, cols] * smooth[:, None]
                s_w = float(_weight_scale(w_h))
                s_out = percentile_scale(tr[key][h], pct)
                per_head["w" + key].append(_int8(w_h, s_w))
                per_head["b" + key].append(_bias(b[cols], s_x * s_w, f"{name} b{key}", config))
                rq.append(_rq(s_x * s_w / s_out, f"{name} head {h} {key.upper()}"))
                projections[key] = s_out
            s_o = percentile_scale(tr["o"][h], pct)
            logit_step = SOFTMAX_LOGIT_SCALE / 2**logit_frac[h]
            rq.append(_rq(projections["q"] * projections["k"] / math.sqrt(P) / logit_step,
                          f"{name} head {h} QK"))
            rq.append(_rq(projections["v"] / prob_one / s_o, f"{name} head {h} AV"))
            rq.append(_rq(s_o / s_head[h], f"{name} head {h} OW"))
            per_head["wo"].append(_int8(att.wo[cols], s_wo))
            per_head["bo"].append(_bias(att.bo / H / (s_o * s_wo), 1.0, f"{name} bo", config))
            per_head["rq"].append(rq)

        if options.head_scales:  # the residual add sums the heads
            add1 = _residual([smooth * s_x] + [s_wo * s for s in s_head], f"{name} add1")
            rq_sum = None
        else:
            add1 = _residual([smooth * s_x, s_wo * s_attn], f"{name} add1")
            rq_sum = np.array(_rq(s_head[0] / s_attn, f"{name} head sum"), dtype=np.int64)
        smooth1 = _smoothing(tr["ln1"], ff.w1, alpha)
        s_ln1 = percentile_scale(tr["ln1"] / smooth1, pct)
        norm1 = _norm(layer.norm1, smooth1, s_ln1, f"{name} LayerNorm 1", config)

        w1 = ff.w1 * smooth1[:, None]
        parts = [_ffn_part(units, ff, w1, tr, s_ln1, options, f"{name} FFN units {label}",
                           config)
                 for units, label in _ffn_groups(tr["f1"], w1, options.outlier_ratio,
                                                 options.weight_ratio)]
        add2 = _residual([smooth1 * s_ln1] + [scale for _, scale in parts], f"{name} add2")
        last = index == len(layers) - 1
        smooth2 = (np.ones(model.embed_dim) if last
                   else _smoothing(tr["out"], _qkv_rows(layers[index + 1]), qkv_alpha))
        s_out = percentile_scale(tr["out"] / smooth2, pct)
        norm2 = _norm(layer.norm2, smooth2, s_out, f"{name} LayerNorm 2", config)

        int_layers.append(IntegerLayer(
            wq=np.stack(per_head["wq"]), wk=np.stack(per_head["wk"]),
            wv=np.stack(per_head["wv"]), bq=np.stack(per_head["bq"]),
            bk=np.stack(per_head["bk"]), bv=np.stack(per_head["bv"]),
            wo=np.stack(per_head["wo"]), bo=np.stack(per_head["bo"]),
            rq_attn=np.array(per_head["rq"], dtype=np.int64),
            rq_sum=rq_sum,
            add1=add1, norm1=norm1, ffn=tuple(part for part, _ in parts),
            add2=add2, norm2=norm2, logit_frac=logit_frac))
        # Real value of one LSB of every int8 tensor at a block boundary (per column where
        # it varies), named as in the float trace; f1 is sign-inverted with i-GELU.
        scales[name] = {"x": smooth * s_x, "heads": [s_wo * s for s in s_head],
                        "attn": s_wo * s_attn, "ln1": smooth1 * s_ln1,
                        "f2": [scale for _, scale in parts], "out": smooth2 * s_out}
        smooth, s_x = smooth2, s_out

    return IntegerModel(name=model.name, embedding=model.embedding,
                        embed_norm=embed_norm, layers=tuple(int_layers), out_scale=smooth * s_x,
                        normalize=model.head.normalize, config=config, scales=scales)
