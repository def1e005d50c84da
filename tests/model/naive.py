"""Deliberately naive second implementation of the engine's arithmetic.

Written from the contract (``docs/arithmetic.md``) independently of ``ita.golden``: Python
integers element by element, the hardware's tile loop with a wrapping 26-bit accumulator,
zero padding to whole tiles, and the reference generator's floating-point requantization
for comparison. Slow on purpose; tests use it on small and medium shapes.
"""

import math

import numpy as np

ACC_BITS = 26


def wrap(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def requant_int(x, mult, shift, add):
    """Contract section 3.1, step by step with Python integers."""
    product = mult * x
    shifted = product >> shift
    if shift > 0:
        shifted += (product >> (shift - 1)) & 1
    return max(-128, min(127, shifted + add))


def requant_float(x, mult, shift, add):
    """The reference generator's float64 formula (agrees with hardware for shift < 23)."""
    value = math.floor(mult * x / 2.0**shift + add + 0.5 + float(np.finfo(np.float32).eps))
    return max(-128, min(127, value))


def gelu_int(q, b, c, mult, shift, add):
    def w(v):
        return wrap(v, 26)

    t = min(abs(q), -b)
    poly = w((t + b) ** 2 + c)
    erf = -poly if q < 0 else poly
    return requant_int(w(q * w(erf + c)), mult, shift, add)


def softmax_rows(logits, n, keep=None, softmax_shift=0, logit_frac=0):
    """Contract section 4 per row, per group, per element."""
    def sh(d):
        return d if softmax_shift == 0 else (d >> softmax_shift) + ((d >> (softmax_shift - 1)) & 1)

    steps = 2 ** logit_frac

    def scale(value, d):  # floor(value * 2**(-d / steps)) with the 8-bit fraction table
        d = sh(d)
        entry = round(256 * 2 ** (-(d % steps) / steps))
        return (value * entry) >> min(8 + d // steps, 63)

    rows, cols = len(logits), len(logits[0])
    out = np.zeros((rows, cols), dtype=np.uint8)
    for r in range(rows):
        x = [int(v) for v in logits[r]]
        k = [True] * cols if keep is None else [bool(v) for v in keep[r]]
        mx, acc = -128, 0
        for g, start in enumerate(range(0, cols, n)):
            idx = [c for c in range(start, min(start + n, cols))]
            prev = -128 if g == 0 else mx
            new = prev
            for c in idx:
                if k[c]:
                    new = max(new, x[c])
            part = 0
            for c in idx:
                if k[c]:
                    part += scale(256, new - x[c])
            if g > 0:
                part += scale(acc, new - prev)
            mx, acc = new, part
        inv = 65280 // acc if acc else 0
        for c in range(cols):
            out[r, c] = scale(inv, max(mx - x[c], 0)) & 0xFF if k[c] else 0
    return out


def _pad(a, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def tiled_step(a, w, bias, rq, tile, *, bias_per_row=False, act=None, a_unsigned=False,
               rq_fn=requant_int):
    """One GEMM step the way the engine runs it, on tiles of ``tile`` x ``tile``.

    ``a`` (R x K) is the input operand, ``w`` (K x C). Everything is zero-padded to whole
    tiles; partial sums wrap at 26 bits; the bias is added on the last inner tile; padded
    output rows and columns are written as zero. Returns the padded output.
    """
    rows, inner = a.shape
    cols = w.shape[1]
    rt, kt, ct = (-(-d // tile) for d in (rows, inner, cols))
    ap = _pad(np.asarray(a, dtype=np.int64), rt * tile, kt * tile)
    wt = _pad(np.asarray(w, dtype=np.int64), kt * tile, ct * tile)
    if a_unsigned:
        assert ap.min() >= 0
    out = np.zeros((rt * tile, ct * tile), dtype=np.int64)
    for i in range(rt):
        for j in range(ct):
            acc = np.zeros((tile, tile), dtype=np.int64)
            for k in range(kt):
                part = ap[i * tile:(i + 1) * tile, k * tile:(k + 1) * tile] @ \
                    wt[k * tile:(k + 1) * tile, j * tile:(j + 1) * tile]
                acc = ((acc + part + (1 << (ACC_BITS - 1))) & ((1 << ACC_BITS) - 1)) \
                    - (1 << (ACC_BITS - 1))
            for r in range(tile):
                for c in range(tile):
                    row, col = i * tile + r, j * tile + c
                    if row >= rows or col >= cols:
                        continue
                    b = 0
                    if bias is not None:
                        b = int(bias[row] if bias_per_row else bias[col])
                    value = rq_fn(wrap(int(acc[r, c]) + b, ACC_BITS), *map(int, rq))
                    out[row, col] = value if act is None else act(value)
    return out


def attention_head(q_in, kv_in, wq, wk, wv, wo, bq, bk, bv, bo, rq, *, n, tile, mask=None,
                   rq_fn=requant_int):
    """Attention head through padded tiles; V is computed transposed as in the engine."""
    seq, emb = q_in.shape
    proj = wq.shape[1]

    def step(*args, **kwargs):
        return tiled_step(*args, tile, rq_fn=rq_fn, **kwargs)

    qp = step(q_in, wq, bq, rq[0])[:seq, :proj]
    kp = step(kv_in, wk, bk, rq[1])[:seq, :proj]
    vpt = step(np.asarray(wv).T, np.asarray(kv_in).T, bv, rq[2], bias_per_row=True)[:proj, :seq]
    a = step(qp, kp.T, None, rq[3])[:seq, :seq]
    a_soft = softmax_rows(a, n, mask)
    o = step(a_soft, vpt.T, None, rq[4], a_unsigned=True)[:seq, :proj]
    out = step(o, wo, bo, rq[5])[:seq, :emb]
    return {"qp": qp, "kp": kp, "vp": vpt.T, "a": a, "a_soft": a_soft, "o": o, "out": out}


def ffn(x, w1, b1, w2, b2, rq, act, *, tile, rq_fn=requant_int):
    """Feed-forward block through padded tiles; ``act`` maps one int8 value."""
    seq, emb = x.shape
    hidden = w1.shape[1]
    f1 = tiled_step(x, w1, b1, rq[0], tile, act=act, rq_fn=rq_fn)[:seq, :hidden]
    f2 = tiled_step(f1, w2, b2, rq[1], tile, rq_fn=rq_fn)[:seq, :emb]
    return {"f1": f1, "f2": f2}
