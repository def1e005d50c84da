"""Layer functions of the golden model: the steps the engine runs, composed.

Shapes are the natural ones (``y = x @ w``); nothing needs to be a multiple of the tile
edge. The engine pads every dimension to a multiple of M with zeros, masks padded key
columns out of the softmax and writes zeros to padded output rows and columns, so the
values it produces inside the natural shape are exactly these.

Step semantics (``docs/arithmetic.md`` sections 2, 3, 6):

* every GEMM step computes ``acc = a @ w (+ bias)`` exactly and requantizes it with its own
  (mult, shift, add) set; a sum outside the 26-bit accumulator raises
  :class:`AccumulatorOverflowError` instead of wrapping;
* QK and AV have no bias; AV multiplies the uint8 softmax probabilities (zero-extended) with
  the int8 values;
* the activation (F1, or a linear layer) is applied to the requantized int8 output.
"""

from dataclasses import dataclass

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

from .arith import activate, check_accumulator, requant
from .softmax import causal_mask, itamax

__all__ = [
    "ATTENTION_STEPS",
    "AttentionResult",
    "MultiHeadResult",
    "FFNResult",
    "gemm_step",
    "attention_head",
    "attention_mask",
    "multi_head_attention",
    "ffn",
    "linear",
]

ATTENTION_STEPS = ("Q", "K", "V", "QK", "AV", "OW")


def _int_array(name, value, lo, hi, ndim):
    array = np.asarray(value)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got {array.dtype}")
    if array.size and (array.min() < lo or array.max() > hi):
        raise ValueError(f"{name} values must lie in [{lo}, {hi}]")
    return array.astype(np.int64)


def _int8(name, value, ndim):
    return _int_array(name, value, -128, 127, ndim)


def _bias(name, value, length, config):
    if value is None:
        return np.zeros(length, dtype=np.int64)
    bias = _int_array(name, value, config.bias_min, config.bias_max, 1)
    if bias.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {bias.shape}")
    return bias


def _matmul(a, w):
    """Exact integer matrix product through float64 BLAS (all sums stay below 2**53)."""
    return np.rint(a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)


def gemm_step(step, a, w, bias, rq, config: ITAConfig = DEFAULT_CONFIG):
    """One GEMM step: ``requant(a @ w + bias)``, checking the accumulator range.

    ``a`` may be int8 or (in step AV) uint8 probabilities; ``w`` is int8 with shape
    (inner, columns); ``bias`` is per output column or None.
    """
    if a.shape[-1] != w.shape[0]:
        raise ValueError(f"step {step}: inner dimensions differ: {a.shape} @ {w.shape}")
    acc = _matmul(a, w)
    if bias is not None:
        acc = acc + bias
    check_accumulator(acc, step, config)
    return requant(acc, *rq)


def _rq_table(name, value, rows):
    table = np.asarray(value, dtype=np.int64)
    if table.shape != (rows, 3):
        raise ValueError(f"{name} must have shape ({rows}, 3) = (mult, shift, add) per step, "
                         f"got {table.shape}")
    return table


@dataclass(frozen=True)
class AttentionResult:
    """Every intermediate of one attention head (int8 unless noted)."""

    qp: np.ndarray      #: (S, P) query projection
    kp: np.ndarray      #: (S, P) key projection
    vp: np.ndarray      #: (S, P) value projection
    a: np.ndarray       #: (S, S) requantized logits
    a_soft: np.ndarray  #: (S, S) uint8 ITAmax probabilities
    o: np.ndarray       #: (S, P) attention output before the output projection
    out: np.ndarray     #: (S, E) head output after the output projection


def attention_head(q_in, kv_in, wq, wk, wv, wo, bq=None, bk=None, bv=None, bo=None, *, rq,
                   causal=False, valid_keys=None, logit_frac=0,
                   config: ITAConfig = DEFAULT_CONFIG):
    """One attention head, step by step as the engine runs it.

    ``Q = rq0(q_in @ wq + bq)``, ``K = rq1(kv_in @ wk + bk)``, ``V = rq2(kv_in @ wv + bv)``,
    ``A = rq3(Q @ K.T)``, ``A_soft = itamax(A)``, ``O = rq4(A_soft @ V)``,
    ``out = rq5(O @ wo + bo)``.

    Parameters
    ----------
    q_in, kv_in:
        (S, E) int8 inputs; keys and values share ``kv_in`` as in the reference.
    wq, wk, wv:
        (E, P) int8 weights; ``wo`` is (P, E).
    bq, bk, bv, bo:
        int biases in the 24-bit range (P,) and (E,), or None for no bias.
    rq:
        (6, 3) table of (mult, shift, add) for Q, K, V, QK, AV, OW.
    causal:
        Query row r attends only to keys 0..r.
    valid_keys:
        Only the first ``valid_keys`` keys take part in the softmax (a shorter sentence in a
        longer buffer); None means all S keys.
    logit_frac:
        The job's ITAmax logit step ln 2 / 2**logit_frac (:func:`ita.golden.itamax`); QK's
        requantization maps real logits to that step.
    """
    q_in, kv_in = _int8("q_in", q_in, 2), _int8("kv_in", kv_in, 2)
    wq, wk, wv, wo = (_int8(n, w, 2) for n, w in (("wq", wq), ("wk", wk), ("wv", wv),
                                                  ("wo", wo)))
    seq, emb = q_in.shape
    proj = wq.shape[1]
    if kv_in.shape != (seq, emb):
        raise ValueError(f"kv_in must have the shape of q_in {q_in.shape}, got {kv_in.shape}")
    for name, w, shape in (("wq", wq, (emb, proj)), ("wk", wk, (emb, proj)),
                           ("wv", wv, (emb, proj)), ("wo", wo, (proj, emb))):
        if w.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {w.shape}")
    rq = _rq_table("rq", rq, 6)
    bq, bk, bv = (_bias(n, b, proj, config) for n, b in (("bq", bq), ("bk", bk), ("bv", bv)))
    bo = _bias("bo", bo, emb, config)

    qp = gemm_step("Q", q_in, wq, bq, rq[0], config)
    kp = gemm_step("K", kv_in, wk, bk, rq[1], config)
    vp = gemm_step("V", kv_in, wv, bv, rq[2], config)
    a = gemm_step("QK", qp, kp.T, None, rq[3], config)
    mask = attention_mask(seq, causal=causal, valid_keys=valid_keys)
    a_soft = itamax(a, config.N, mask, logit_frac=logit_frac, config=config)
    o = gemm_step("AV", a_soft, vp, None, rq[4], config)
    out = gemm_step("OW", o, wo, bo, rq[5], config)
    return AttentionResult(qp=qp, kp=kp, vp=vp, a=a, a_soft=a_soft, o=o, out=out)


def attention_mask(seq, *, causal=False, valid_keys=None):
    """Softmax key mask for an attention head, or None when every key is visible."""
    if valid_keys is not None and not 1 <= valid_keys <= seq:
        raise ValueError(f"valid_keys must be in 1..{seq}, got {valid_keys}")
    if not causal and valid_keys in (None, seq):
        return None
    mask = causal_mask(seq) if causal else np.ones((seq, seq), dtype=bool)
    if valid_keys is not None:
        mask = mask & (np.arange(seq)[None, :] < valid_keys)
    return mask


@dataclass(frozen=True)
class MultiHeadResult:
    """Per-head intermediates stacked along a leading head axis, and the summed output."""

    qp: np.ndarray       #: (H, S, P)
    kp: np.ndarray       #: (H, S, P)
    vp: np.ndarray       #: (H, S, P)
    a: np.ndarray        #: (H, S, S)
    a_soft: np.ndarray   #: (H, S, S) uint8
    o: np.ndarray        #: (H, S, P)
    out: np.ndarray      #: (H, S, E) per-head outputs
    out_sum: np.ndarray  #: (S, E) requantized sum over heads


def multi_head_attention(q_in, kv_in, wq, wk, wv, wo, bq=None, bk=None, bv=None, bo=None, *,
                         rq, rq_sum, causal=False, valid_keys=None, logit_frac=0,
                         config: ITAConfig = DEFAULT_CONFIG):
    """H attention heads on the same inputs, then ``out_sum = rq_sum(sum_h out[h])``.

    Weights carry a leading head axis: ``wq`` (H, E, P), ``wo`` (H, P, E), biases (H, P) and
    (H, E), ``rq`` (H, 6, 3); ``logit_frac`` is one ITAmax step for all heads or one per
    head. The engine runs one head per job; the head sum with its own requantization is
    done by software (the cores), exactly as defined here.
    """
    wq = np.asarray(wq)
    heads = wq.shape[0] if wq.ndim == 3 else 0
    if heads < 1:
        raise ValueError(f"wq must have shape (H, E, P) with H >= 1, got {wq.shape}")
    rq = np.asarray(rq, dtype=np.int64)
    if rq.shape != (heads, 6, 3):
        raise ValueError(f"rq must have shape ({heads}, 6, 3), got {rq.shape}")

    fracs = np.broadcast_to(np.asarray(logit_frac, dtype=np.int64), (heads,))

    def head_arg(value, h):
        return None if value is None else np.asarray(value)[h]

    results = [attention_head(q_in, kv_in, wq[h], head_arg(wk, h), head_arg(wv, h),
                              head_arg(wo, h), head_arg(bq, h), head_arg(bk, h),
                              head_arg(bv, h), head_arg(bo, h), rq=rq[h], causal=causal,
                              valid_keys=valid_keys, logit_frac=int(fracs[h]), config=config)
                   for h in range(heads)]
    stacked = {f: np.stack([getattr(r, f) for r in results])
               for f in ("qp", "kp", "vp", "a", "a_soft", "o", "out")}
    head_sum = stacked["out"].astype(np.int64).sum(axis=0)
    out_sum = requant(head_sum, *np.asarray(rq_sum, dtype=np.int64))
    return MultiHeadResult(**stacked, out_sum=out_sum)


@dataclass(frozen=True)
class FFNResult:
    f1: np.ndarray  #: (S, F) after the activation
    f2: np.ndarray  #: (S, E)


def ffn(x, w1, b1, w2, b2, *, rq, activation="gelu", gelu_b=0, gelu_c=0, act_rq=(1, 0, 0),
        config: ITAConfig = DEFAULT_CONFIG):
    """Feed-forward block: ``f1 = act(rq0(x @ w1 + b1))``, ``f2 = rq1(f1 @ w2 + b2)``.

    ``rq`` is the (2, 3) table for F1 and F2; ``activation`` is identity, relu or gelu with
    the i-GELU constants ``gelu_b``, ``gelu_c`` and the activation requantization ``act_rq``.
    """
    rq = _rq_table("rq", rq, 2)
    f1 = linear(x, w1, b1, rq=rq[0], activation=activation, gelu_b=gelu_b, gelu_c=gelu_c,
                act_rq=act_rq, step="F1", config=config)
    f2 = linear(f1, w2, b2, rq=rq[1], step="F2", config=config)
    return FFNResult(f1=f1, f2=f2)


def linear(x, w, b=None, *, rq, activation="identity", gelu_b=0, gelu_c=0, act_rq=(1, 0, 0),
           step="Linear", config: ITAConfig = DEFAULT_CONFIG):
    """A single linear layer ``act(rq(x @ w + b))`` with x (S, K), w (K, C), b (C,)."""
    x, w = _int8("x", x, 2), _int8("w", w, 2)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x {x.shape} and w {w.shape} have different inner dimensions")
    bias = _bias("b", b, w.shape[1], config)
    y = gemm_step(step, x, w, bias, np.asarray(rq, dtype=np.int64), config)
    return activate(y, activation, gelu_b=gelu_b, gelu_c=gelu_c, act_rq=act_rq, config=config)
