"""The integer model of a whole BERT encoder: the bit-exact contract for the cluster.

Every step is an :mod:`ita.golden` function with constants from the quantiser
(:mod:`ita.quant.quantiser`); nothing here is float except the host's two ends:

* **host, before**: the embedding rows (token + position + type 0) are summed in float64 and
  each row is scaled to a 13-bit integer row (:func:`embed_rows`; the lookup stays with the
  host);
* **cluster**: integer LayerNorm of the embeddings, then per layer the engine's attention
  heads (Q, K, V, QK, ITAmax with padded keys masked, AV, OW), the cores' head sum, a
  residual add, LayerNorm, the engine's FFN parts (F1 with i-GELU, F2), a residual add
  that also sums the parts, LayerNorm; finally the int32 column sums of the valid rows
  (mean pooling);
* **host, after**: the sums times the per-column output scale over the token count, and the
  L2 normalisation.

Two integer kernels of the cores are defined here rather than in :mod:`ita.golden`:
:func:`residual_add_rows` multiplies each operand's columns by their own constants, which
undoes the per-output-channel weight scales of OW and F2 and the SmoothQuant factors of
the LayerNorm before it, and gives each row its own shift into 13-bit rows, which the
LayerNorm after it ignores; :func:`layer_norm_rows` is :func:`ita.golden.layer_norm` with
a 64-bit sum of squares for those rows (on int8 rows it is the golden function, bit for
bit). Int8 rows were the largest error of the integer model: a row with an outlier column
kept its other columns a level or two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import attention_head, ffn, layer_norm, multi_head_attention, requant
from ita.golden.encoder import LN_FRACTION_BITS, isqrt
from ita.models import bert_reference
from ita.models.ir import Embedding, ModelError

__all__ = ["ROW_BITS", "NormConstants", "FFNPart", "IntegerLayer", "IntegerModel", "IntegerResult",
           "residual_add_rows", "layer_norm_rows", "embed_rows", "run", "dequantise"]


@dataclass(frozen=True)
class NormConstants:
    """Integer LayerNorm: int8 ``gamma``, 24-bit ``beta`` (E,) and the output (mult, shift,
    add)."""

    gamma: np.ndarray
    beta: np.ndarray
    rq: tuple

    def __call__(self, x):
        """:func:`ita.golden.layer_norm` of int8 rows."""
        mult, shift, add = self.rq
        return layer_norm(x, self.gamma, self.beta, mult=mult, shift=shift, add=add)

    def rows(self, x):
        """:func:`layer_norm_rows` of the residual add's wide rows."""
        mult, shift, add = self.rq
        return layer_norm_rows(x, self.gamma, self.beta, mult=mult, shift=shift, add=add)


@dataclass(frozen=True)
class FFNPart:
    """One engine FFN over a subset of the hidden units: F1 with its activation, then F2.

    The layer's FFN is the sum of its parts' F2 outputs (the residual add sums them); each
    part has its own scales, so a few outlier units need not coarsen the others.
    """

    units: np.ndarray      #: (F_part,) hidden units of the float layer, for reports
    w1: np.ndarray         #: (E, F_part) int8
    b1: np.ndarray         #: (F_part,) int32
    w2: np.ndarray         #: (F_part, E) int8, per-column scales
    b2: np.ndarray         #: (E,) int32
    rq: np.ndarray         #: (2, 3) for F1, F2
    gelu_b: int
    gelu_c: int
    act_rq: tuple          #: activation requantization after i-GELU / ReLU
    activation: str = "gelu"

    def __call__(self, x, config: ITAConfig = DEFAULT_CONFIG):
        """The int8 F2 output (S, E) of :func:`ita.golden.ffn`."""
        return ffn(x, self.w1, self.b1, self.w2, self.b2, rq=self.rq,
                   activation=self.activation, gelu_b=self.gelu_b, gelu_c=self.gelu_c,
                   act_rq=self.act_rq, config=config).f2


@dataclass(frozen=True)
class IntegerLayer:
    """Weights and constants of one encoder layer; the attention's names follow
    :class:`ita.golden.EncoderParams`; ``add1`` (2 (1 + H), E) or (4, E) and ``add2``
    (2 (1 + parts), E) are the per-column constants of :func:`residual_add_rows`."""

    wq: np.ndarray         #: (H, E, P) int8
    wk: np.ndarray
    wv: np.ndarray
    bq: np.ndarray         #: (H, P) int32
    bk: np.ndarray
    bv: np.ndarray
    wo: np.ndarray         #: (H, P, E) int8, per-column scales shared by the heads
    bo: np.ndarray         #: (H, E) int32
    rq_attn: np.ndarray    #: (H, 6, 3) for Q, K, V, QK, AV, OW
    rq_sum: np.ndarray | None  #: (3,) the cores' head sum; None: add1 sums the heads
    add1: np.ndarray       #: x + attn, or x + each head
    norm1: NormConstants
    ffn: tuple             #: FFNPart, ...
    add2: np.ndarray       #: ln1 + the parts' F2 outputs
    norm2: NormConstants
    logit_frac: tuple = ()  #: per head the ITAmax step ln 2 / 2**k (empty: k = 0)

    def head_logit_frac(self, head: int) -> int:
        """Head ``head``'s k (as :meth:`ita.golden.EncoderParams.head_logit_frac`)."""
        return _logit_frac(self, head)


@dataclass(frozen=True)
class IntegerModel:
    """A quantized encoder: the host's embedding table, integer blocks, output dequantisation.

    ``embedding`` is the float description's table (the host's lookup); ``out_scale`` (E,)
    the real value of one LSB
    of each column of the last layer's output; ``scales`` records every calibrated scale by
    name, for reports.
    """

    name: str
    embedding: Embedding
    embed_norm: NormConstants
    layers: tuple
    out_scale: np.ndarray
    normalize: bool = True
    config: ITAConfig = DEFAULT_CONFIG
    scales: dict | None = None


@dataclass(frozen=True)
class IntegerResult:
    """The tensors at every block boundary and the pooled column sums."""

    embed: np.ndarray      #: (S, E) int16 embedding sums, the cluster's input
    hidden: tuple          #: (S, E) int8: the embedding LayerNorm, then each layer's output
    pooled_sum: np.ndarray  #: (E,) int64 column sums over the valid rows
    tokens: int            #: valid rows


#: Magnitude bits a row keeps after the residual add: its largest value lands in
#: [2**(ROW_BITS - 1), 2**ROW_BITS]. Int8 (7 bits) is not enough for the LayerNorm after it:
#: a row with one outlier column leaves its other columns a level or two, and the integer
#: mean's rounding then shifts the whole row. 13 bits keep the LayerNorm's deviations within
#: 15 bits, so ``d * inv`` stays below 2**31.
ROW_BITS = 13


# The sum of the residual add's shifted products stays inside a signed 32-bit word.
_SUM_LIMIT = 1 << 31
# Largest |int8 x 8-bit multiplier| product.
_PRODUCT_MAX = 128 * 255


def _residual_constants(consts, operands, cols):
    c = np.asarray(consts)
    if c.shape != (2 * operands, cols) or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"residual constants must be ({2 * operands}, {cols}) integers "
                         f"(a multiplier, then a left shift per operand), got {c.shape}")
    c = c.astype(np.int64)
    mults, lshifts = c[:operands], c[operands:]
    if mults.min() < 0 or mults.max() > 255:
        raise ValueError("residual multipliers must lie in 0..255")
    if lshifts.min() < 0 or (_PRODUCT_MAX << lshifts).sum(axis=0).max() >= _SUM_LIMIT:
        raise ValueError("residual left shifts must be non-negative and keep the sum "
                         "below 2**31")
    return mults, lshifts


def _bit_length(v):
    """Exact bit length of non-negative int64 values below 2**62."""
    return (v[..., None] >= (1 << np.arange(62, dtype=np.int64))).sum(axis=-1)


def _round_shift(v, shift):
    """``round_half_up(v / 2**shift)`` (shift >= 0), :func:`ita.golden.requant`'s rounding."""
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return (v + half) >> shift


def residual_add_rows(x, y, consts):
    """Residual add for a LayerNorm input: per-column multipliers, a per-row shift.

    ``y`` is one int8 (S, E) operand or a sequence of them (the heads' outputs, the FFN
    parts' outputs); ``consts`` (2n, E) holds for each of the n operands, x first, a
    multiplier per column, then for each a left shift per column:
    ``v = sum_i (y_i * mult_i[c]) << lshift_i[c]`` is exact (below 2**31, checked), the
    constants chosen so that ``v`` has one scale across the columns although the operands
    carry per-column scales (per-channel weights, SmoothQuant factors, per-head scales), each
    multiplier keeping 8 significant bits. Each row then shifts right by
    ``max(0, bit_length(max |v|) - ROW_BITS)``, rounding half up as
    :func:`ita.golden.requant`, into int16 values of at most ``2**ROW_BITS``.

    The row's scale is thrown away, which is exact for what follows: in a post-norm encoder
    the sum feeds only a LayerNorm (:func:`layer_norm_rows`), and LayerNorm does not depend
    on a row's scale. A fixed scale cannot serve the residual stream: MiniLM's [CLS] row
    reaches 222 in one column while the other rows stay below 12.
    """
    operands = [np.asarray(x)] + ([np.asarray(y)] if np.ndim(y) == 2 else
                                  [np.asarray(v) for v in y])
    for index, v in enumerate(operands):
        if v.shape != operands[0].shape or v.ndim != 2:
            raise ValueError(f"residual operands must be equal (S, E) arrays: "
                             f"{[o.shape for o in operands]}")
        if not np.issubdtype(v.dtype, np.integer) or v.min() < -128 or v.max() > 127:
            raise ValueError(f"residual operand {'x' if index == 0 else 'y'} must be int8")
    mults, lshifts = _residual_constants(consts, len(operands), operands[0].shape[1])
    v = sum((o.astype(np.int64) * m) << sh
            for o, m, sh in zip(operands, mults, lshifts, strict=True))
    shift = np.maximum(_bit_length(np.abs(v).max(axis=1)) - ROW_BITS, 0)
    return _round_shift(v, shift[:, None]).astype(np.int16)


def layer_norm_rows(x, gamma, beta, *, mult, shift, add):
    """:func:`ita.golden.layer_norm` for rows of up to ``ROW_BITS`` magnitude bits.

    The steps and constants are the golden LayerNorm's (same ``gamma``, ``beta`` and output
    requantization); only the sum of squares is wider. Per row of n values:

    1. ``mean = floor((sum(x) + n // 2) / n)``, ``d = x - mean`` (``|d| <= 2**(ROW_BITS+1)``);
    2. ``V = sum(d**2)`` in 64 bits; ``k = max(0, ceil((bit_length(V) - 32) / 2))`` and
       ``W = V >> 2k`` (32 bits, at least 2**30 when k > 0);
    3. ``a = clz32(W) >> 1``, ``root = isqrt(W << 2a)``, ``inv = floor(2**31 / root)``;
    4. ``t = (d * inv + 2**(r-1)) >> r`` with ``r = 16 - a + k`` (``|d * inv| <= 2**30``);
    5. ``out = requant(t * gamma + beta, mult, shift, add)``.

    For int8 rows V fits 32 bits, k = 0 and the result is :func:`ita.golden.layer_norm`'s.
    """
    x = np.asarray(x)
    limit = 1 << ROW_BITS
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or x.shape[1] < 1:
        raise ValueError(f"layer_norm_rows needs (S, n) integer rows, got {x.shape} {x.dtype}")
    if x.size and np.abs(x.astype(np.int64)).max() > limit:
        raise ValueError(f"layer_norm_rows values must lie in [-{limit}, {limit}]")
    x = x.astype(np.int64)
    n = x.shape[1]
    mean = (x.sum(axis=1) + n // 2) // n
    d = x - mean[:, None]
    var_sum = (d * d).sum(axis=1)
    k = np.maximum(0, (_bit_length(var_sum) - 31) // 2)      # ceil((bits - 32) / 2)
    w = var_sum >> (2 * k)
    a = np.where(w > 0, (32 - _bit_length(w)) // 2, 0)
    root = isqrt(w << (2 * a))
    inv = np.where(w > 0, (1 << 31) // np.maximum(root, 1), 0)
    r = (31 - LN_FRACTION_BITS - a + k)[:, None]
    t = (d * inv[:, None] + (1 << (r - 1))) >> r
    return requant(t * np.asarray(gamma, dtype=np.int64) + np.asarray(beta, dtype=np.int64),
                   mult, shift, add)


def embed_rows(model: IntegerModel, ids) -> np.ndarray:
    """The host's part: (S, E) int16 embedding sums, each row scaled to ``ROW_BITS``.

    The sum (token + position + type 0 rows) is float64 on the host; it feeds only the
    embedding LayerNorm, so each row may take its own scale, as the residual add's rows do.
    One int8 scale for all rows would leave a typical value 4 levels: the sums' 99.99th
    percentile is 30 times their RMS.
    """
    total = bert_reference.embedding_sum(model.embedding, ids)
    top = np.maximum(np.abs(total).max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return np.rint(total / top * ((1 << ROW_BITS) - 1)).astype(np.int16)


def _logit_frac(L: IntegerLayer, head):
    return L.logit_frac[head] if L.logit_frac else 0


def _layer(x, L: IntegerLayer, valid, config):
    if L.rq_sum is None:  # one engine job per head; the residual add sums the heads
        heads = [attention_head(x, x, L.wq[h], L.wk[h], L.wv[h], L.wo[h], L.bq[h], L.bk[h],
                                L.bv[h], L.bo[h], rq=L.rq_attn[h], valid_keys=valid,
                                logit_frac=_logit_frac(L, h), config=config).out
                 for h in range(len(L.wq))]
        add1 = residual_add_rows(x, heads, L.add1)
    else:
        att = multi_head_attention(x, x, L.wq, L.wk, L.wv, L.wo, L.bq, L.bk, L.bv, L.bo,
                                   rq=L.rq_attn, rq_sum=L.rq_sum, valid_keys=valid,
                                   logit_frac=[_logit_frac(L, h) for h in range(len(L.wq))],
                                   config=config)
        add1 = residual_add_rows(x, att.out_sum, L.add1)   # out_sum: the cores' head sum
    ln1 = L.norm1.rows(add1)
    add2 = residual_add_rows(ln1, [part(ln1, config) for part in L.ffn], L.add2)
    return L.norm2.rows(add2)


def run(model: IntegerModel, ids, *, pad_to: int | None = None) -> IntegerResult:
    """The whole integer network on one sentence's token ids.

    ``pad_to`` runs the sentence in a longer buffer of ``[PAD]`` rows (id 0), as a tiled
    deployment may; the padded keys are masked out of every softmax, so the valid rows and
    the pooled sums are the same bytes as without padding.
    """
    ids = [int(i) for i in ids]
    tokens = len(ids)
    if tokens == 0:
        raise ModelError("a sentence needs at least one token")
    seq = tokens if pad_to is None else int(pad_to)
    if seq < tokens:
        raise ModelError(f"pad_to={seq} is shorter than the {tokens} tokens")
    embed = embed_rows(model, ids + [0] * (seq - tokens))
    x = model.embed_norm.rows(embed)
    hidden = [x]
    valid = tokens if seq > tokens else None
    for layer in model.layers:
        x = _layer(x, layer, valid, model.config)
        hidden.append(x)
    pooled_sum = x[:tokens].astype(np.int64).sum(axis=0)
    return IntegerResult(embed=embed, hidden=tuple(hidden), pooled_sum=pooled_sum,
                         tokens=tokens)


def dequantise(model: IntegerModel, result: IntegerResult) -> np.ndarray:
    """The host's last step: (E,) float mean of the valid rows, L2-normalised."""
    vector = result.pooled_sum * model.out_scale / result.tokens
    if model.normalize:
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return vector
