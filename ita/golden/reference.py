"""Float twins of the golden layers and error metrics.

A float twin runs the same layer with the same integer inputs and constants but without
rounding or integer approximation: requantization multiplies by ``mult / 2**shift``, adds
``add`` and saturates to the int8 range (saturation is part of the quantized model, not an
error of it), the softmax is a true base-2 softmax scaled to 255, GELU is the real function.
Results are in the same integer units (LSBs) as the golden model, so ``golden - float`` is
the quantization error in LSBs.

With ``golden=`` a twin feeds every step with the golden model's integer inputs of that
step instead of its own float outputs; the errors then belong to each step alone.
"""

import math

import numpy as np

from .layers import attention_mask
from .quant import REFERENCE_GELU, SOFTMAX_LOGIT_SCALE

__all__ = [
    "softmax_float",
    "gelu_float",
    "attention_head_float",
    "ffn_float",
    "lsb_error",
    "softmax_mae",
]


def _scale(rq):
    mult, shift, add = (float(v) for v in rq)
    return lambda x: np.clip(x * (mult / 2.0**shift) + add, -128, 127)


def softmax_float(logits, mask=None, logit_scale=SOFTMAX_LOGIT_SCALE):
    """Real softmax of int8 logits whose step is ``logit_scale``; masked keys get 0."""
    x = np.asarray(logits, dtype=np.float64) * logit_scale
    keep = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(mask, x.shape)
    x = np.where(keep, x, -np.inf)
    peak = np.max(x, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    e = np.where(keep, np.exp(x - peak), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def gelu_float(x):
    """Exact GELU, ``x * (1 + erf(x / sqrt 2)) / 2``."""
    x = np.asarray(x, dtype=np.float64)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return x * (1 + erf(x / math.sqrt(2))) / 2


def attention_head_float(q_in, kv_in, wq, wk, wv, wo, bq=None, bk=None, bv=None, bo=None, *,
                         rq, causal=False, valid_keys=None, logit_frac=0, golden=None):
    """Float twin of :func:`ita.golden.attention_head`; returns a dict of float arrays.

    ``golden`` (an :class:`ita.golden.AttentionResult`) switches to per-step inputs.
    """
    f = [_scale(r) for r in np.asarray(rq)]
    q_in, kv_in = (np.asarray(v, dtype=np.float64) for v in (q_in, kv_in))

    def bias(b, n):
        return np.zeros(n) if b is None else np.asarray(b, dtype=np.float64)

    proj, emb = np.shape(wq)[1], np.shape(wo)[1]
    qp = f[0](q_in @ wq + bias(bq, proj))
    kp = f[1](kv_in @ wk + bias(bk, proj))
    vp = f[2](kv_in @ wv + bias(bv, proj))
    def step_input(own, name):
        return own if golden is None else np.asarray(getattr(golden, name), dtype=np.float64)

    a = f[3](step_input(qp, "qp") @ step_input(kp, "kp").T)
    mask = attention_mask(len(q_in), causal=causal, valid_keys=valid_keys)
    a_soft = 255.0 * softmax_float(step_input(a, "a"), mask,
                                   logit_scale=SOFTMAX_LOGIT_SCALE / 2**logit_frac)
    o = f[4](step_input(a_soft, "a_soft") @ step_input(vp, "vp"))
    out = f[5](step_input(o, "o") @ np.asarray(wo, dtype=np.float64) + bias(bo, emb))
    return {"qp": qp, "kp": kp, "vp": vp, "a": a, "a_soft": a_soft, "o": o, "out": out}


def ffn_float(x, w1, b1, w2, b2, *, rq, activation="gelu", act_rq=REFERENCE_GELU.act_rq,
              gelu_input_scale=1 / 32, gelu_output_scale=REFERENCE_GELU.output_scale):
    """Float twin of :func:`ita.golden.ffn`; returns a dict with ``f1`` and ``f2``.

    The GELU twin evaluates the real function at ``u * gelu_input_scale`` and expresses the
    result in output LSBs of ``gelu_output_scale`` (negative for the reference constants).
    """
    f = [_scale(r) for r in np.asarray(rq)]
    u = f[0](np.asarray(x, dtype=np.float64) @ w1 + np.asarray(b1, dtype=np.float64))
    if activation == "identity":
        f1 = u
    elif activation == "relu":
        f1 = _scale(act_rq)(np.maximum(u, 0))
    elif activation == "gelu":
        f1 = gelu_float(u * gelu_input_scale) / gelu_output_scale + act_rq[2]
    else:
        raise ValueError(f"unknown activation {activation!r}")
    f2 = f[1](f1 @ np.asarray(w2, dtype=np.float64) + np.asarray(b2, dtype=np.float64))
    return {"f1": f1, "f2": f2}


def lsb_error(actual, expected):
    """Max and mean absolute error in LSBs of an integer result against its float twin."""
    expected = np.asarray(expected, dtype=np.float64)
    diff = np.abs(np.asarray(actual, dtype=np.float64) - expected)
    return {"max": float(diff.max(initial=0.0)), "mean": float(diff.mean()) if diff.size else 0.0}


def softmax_mae(probs_uint8, logits, mask=None):
    """Mean absolute error of ITAmax probabilities (uint8 / 255) against the real softmax."""
    real = softmax_float(logits, mask)
    return float(np.mean(np.abs(np.asarray(probs_uint8, dtype=np.float64) / 255.0 - real)))
