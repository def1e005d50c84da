"""ITAmax: the engine's streaming integer softmax (``docs/arithmetic.md`` section 4).

The hardware sees the int8 logits of a row in groups of N columns, in ascending order, and
keeps a running maximum and a running denominator per row; the reciprocal is taken once per
row and applied when the logits are streamed again in the AV step. This model performs the
same steps, vectorised across rows, so it is bit-exact with the hardware for every N.
"""

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

from .arith import AccumulatorOverflowError

__all__ = ["itamax", "causal_mask", "key_mask"]


def _scaled_shift(diff, softmax_shift):
    """``round_half_up(diff / 2**softmax_shift)`` for non-negative ``diff``."""
    if softmax_shift == 0:
        return diff
    return (diff >> softmax_shift) + ((diff >> (softmax_shift - 1)) & 1)


def causal_mask(rows, cols=None, offset=0):
    """Boolean mask that lets query row r see key columns 0..r + offset."""
    cols = rows if cols is None else cols
    return np.arange(cols)[None, :] <= np.arange(rows)[:, None] + offset


def key_mask(rows, cols, valid_keys):
    """Boolean mask that lets every row see only the first ``valid_keys`` key columns."""
    return np.broadcast_to(np.arange(cols)[None, :] < valid_keys, (rows, cols))


def _exp_weights(diff, logit_frac, table):
    """Fraction entry and integer shift of ``2**(-diff / 2**logit_frac)`` (non-negative diff):
    the value is ``table[f] / 256 >> q``, the shift capped for numpy."""
    return table[diff & ((1 << logit_frac) - 1)], np.minimum(diff >> logit_frac, 62)


def itamax(logits, n=None, mask=None, *, logit_frac=0, config: ITAConfig = DEFAULT_CONFIG):
    """Streaming integer softmax of int8 logits, one probability row per logit row.

    Parameters
    ----------
    logits:
        int8 array of shape (..., rows, columns); one logit step means ln 2 / 2**logit_frac.
    n:
        Column group width (the engine's N); defaults to ``config.N``.
    mask:
        Optional boolean array broadcastable to ``logits``; True keeps a key. Masked keys
        take no part in the maximum or the denominator and get probability 0. Padded key
        columns of a tile are masked this way.
    logit_frac:
        The job's k in 0..``config.logit_frac_max``: the low k bits of every difference
        ``d = max - x`` select an entry ``T[f]`` of ``config.exp_table(k)`` (256 at f = 0),
        the others shift: ``2**(-d / 2**k) ~ T[d mod 2**k] / 256 >> (d >> k)``.

    Returns
    -------
    uint8 array of the same shape, ``~ 255 * 2**(x - max) / sum(2**(x_j - max))``.

    Semantics per row, with groups of ``n`` columns taken in ascending order and
    ``q = d >> k``, ``f = d mod 2**k`` of each difference d:

    1. ``new = max(prev, max of the unmasked logits of the group)``, ``prev = -128`` at the
       first group (a masked logit behaves as -128, which never raises the maximum).
    2. ``part = sum over unmasked x of T[f] >> q`` (d = new - x) plus, after the first group,
       ``(old_sum * T[f]) >> (8 + q)`` (d = new - prev).
    3. After the last group ``inv = floor(65280 / sum)`` (0 for a fully masked row).
    4. ``p = (inv * T[f]) >> (8 + q)`` (d = max - x) for unmasked keys, else 0.

    With k = 0 the table is (256,) and these are the reference's ``256 >> d``, ``sum >> d``
    and ``inv >> d``. Differences are ``round_half_up(d / 2**softmax_shift)`` instead of
    ``d`` when the configuration uses the older /32 variant. Raises
    :class:`AccumulatorOverflowError` if a running sum leaves ``config.softmax_sum_width``
    bits.
    """
    n = config.N if n is None else int(n)
    if n < 1:
        raise ValueError(f"group width n must be positive, got {n}")
    table = np.array(config.exp_table(int(logit_frac)), dtype=np.int64)
    k, one = int(logit_frac), config.input_width
    x = np.asarray(logits)
    if x.ndim < 2:
        raise ValueError("logits must have at least two dimensions (rows, columns)")
    if np.any((x < -128) | (x > 127)):
        raise ValueError("itamax logits must be int8 values")
    shape = x.shape
    cols = shape[-1]
    x = x.astype(np.int64).reshape(-1, cols)
    if mask is None:
        keep = np.ones_like(x, dtype=bool)
    else:
        keep = np.broadcast_to(np.asarray(mask, dtype=bool), shape).reshape(-1, cols)

    groups = -(-cols // n)
    pad = groups * n - cols
    xg = np.pad(x, ((0, 0), (0, pad)), constant_values=-128).reshape(len(x), groups, n)
    kg = np.pad(keep, ((0, 0), (0, pad)), constant_values=False).reshape(len(x), groups, n)

    shift, limit = config.softmax_shift, 1 << config.softmax_sum_width
    row_max = np.full(len(x), -128, dtype=np.int64)
    row_sum = np.zeros(len(x), dtype=np.int64)
    for g in range(groups):
        group, kept = xg[:, g], kg[:, g]
        new_max = np.maximum(row_max, np.where(kept, group, -128).max(axis=1))
        frac, exponent = _exp_weights(_scaled_shift(new_max[:, None] - group, shift), k, table)
        part = np.where(kept, frac >> exponent, 0).sum(axis=1)
        frac, exponent = _exp_weights(_scaled_shift(new_max - row_max, shift), k, table)
        row_sum = part + ((row_sum * frac) >> np.minimum(exponent + one, 62))
        row_max = new_max
        if np.any(row_sum >= limit):
            row = int(np.argmax(row_sum >= limit))
            raise AccumulatorOverflowError(
                f"softmax: running sum of row {row} exceeds {config.softmax_sum_width} bits "
                f"after column group {g}")

    inverse = np.where(row_sum > 0, config.softmax_scalar // np.maximum(row_sum, 1), 0)
    frac, exponent = _exp_weights(_scaled_shift(np.maximum(row_max[:, None] - x, 0), shift),
                                  k, table)
    probs = np.where(keep, (inverse[:, None] * frac) >> np.minimum(exponent + one, 62), 0)
    return probs.astype(np.uint8).reshape(shape)
