"""The cores' integer kernels of a Llama-family decoder layer, bit for bit.

The engine runs the GEMM steps (:mod:`ita.golden.layers`); between them the cores compute
RMSNorm, RoPE, SiLU x up, the residual stream and the per-channel dequantisation. Each is a
pure integer function here with every width stated, so that C with 32-bit integers and
64-bit products (``mul``/``mulh`` on rv32) reproduces it exactly. Each has a float twin in
the same integer units without rounding, for measuring what the integer form costs.

Formats:

* **residual stream**: int32 with ``F`` fraction bits (chosen by the quantiser from the
  calibrated maximum; SmolLM2's attention sink reaches about 24,000);
* **wide activations**: the int8 value the engine takes, plus a rare excess beyond int8
  (the decomposition below), held in int32: at most 24 bits for the GEMM inputs (norm
  outputs, SiLU x up: SmolLM2's sink reaches 118,000 int8 steps in SiLU x up), any int32 for
  GEMM outputs;
* **multipliers**: ``scale_round(v, mult, shift) = (v * mult + 2**(shift-1)) >> shift``
  (round half up, as :func:`ita.golden.requant`), ``|v * mult| < 2**62``.

**Decomposition** (LLM.int8(), Dettmers et al. 2022): a decoder's residual carries a few
huge activations (massive activations at the first token, a few outlier channels). The
engine takes the inputs clipped to int8 and requantizes to int8; the cores add the
contribution of the clipped excess (with int16 weight rows for the known outlier channels)
and recompute every saturated output from the wide row (:func:`decomposed_gemm`). On SmolLM2
this is well under 1 % of the MACs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

from .layers import gemm_step

__all__ = [
    "NORM_FRACTION_BITS",
    "ROPE_FRACTION_BITS",
    "ROPE_EXTRA_BITS",
    "SILU_FRACTION_BITS",
    "SIGMOID_BITS",
    "WIDE",
    "FINE_BITS",
    "UP_BOUND",
    "GemmCount",
    "scale_round",
    "fixed_multiplier",
    "saturate",
    "rms_norm",
    "rms_norm_float",
    "rope_table",
    "rope",
    "rope_float",
    "sigmoid_table",
    "silu",
    "silu_float",
    "gated",
    "gated_float",
    "decomposed_gemm",
    "decomposed_gemm_float",
    "dequantise_add",
    "dequantise_add_float",
]

#: Fraction bits of the normalised value ``t = x / sqrt(sum x^2)`` in :func:`rms_norm`.
NORM_FRACTION_BITS = 15
#: Fraction bits of the RoPE cos/sin tables (``|cos| <= 2**14`` keeps a rotation in int32).
ROPE_FRACTION_BITS = 14
#: Extra fraction bits of the RoPE operands over their int8 output scale.
ROPE_EXTRA_BITS = 8
#: Fraction bits of the gate value entering the SiLU.
SILU_FRACTION_BITS = 12
#: Fraction bits of the sigmoid table entries.
SIGMOID_BITS = 15
#: Extra fraction bits of the fine weight rows the cores keep for known outlier channels.
FINE_BITS = 8
#: Largest magnitude of a wide GEMM input (24 bits).
WIDE = (1 << 23) - 1
#: Largest magnitude of the up projection entering SiLU x up (keeps the product in 46 bits).
UP_BOUND = (1 << 21) - 1

# The RoPE operand bound: 2 * (2**16 - 1) * 2**14 < 2**31.
_ROPE_OPERAND = (1 << 16) - 1
# The sigmoid table spans [-16, 16) in steps of 1/16: 513 entries.
_SIGMOID_RANGE = 16
_SIGMOID_STEP_BITS = 4
# SiLU input bound (Q12): 4096 in real units; beyond it silu(x) = x to float precision.
_SILU_INPUT = 1 << 24
_INT32 = (1 << 31) - 1
_INT16 = (1 << 15) - 1


def _int(name, value):
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {array.dtype}")
    return array.astype(np.int64)


def saturate(v, bound):
    """Clamp integers to ``[-bound - 1, bound]`` (two's complement range of ``bound``)."""
    return np.clip(np.asarray(v, np.int64), -bound - 1, bound)


def scale_round(v, mult, shift):
    """``(v * mult + 2**(shift-1)) >> shift``: a fixed-point multiplication rounding half up.

    ``mult`` may be signed; ``shift`` is 0..62; all broadcast. Raises if a product could
    leave 62 bits (the C form is one 64-bit product).
    """
    v, mult, shift = _int("v", v), _int("mult", mult), _int("shift", shift)
    if np.any((shift < 0) | (shift > 62)):
        raise ValueError("scale_round shift must lie in 0..62")
    bound = (np.abs(v).max(initial=0), np.abs(mult).max(initial=0))
    if bound[0] and bound[1] and math.log2(bound[0]) + math.log2(bound[1]) >= 62:
        raise ValueError(f"scale_round product {bound[0]} * {bound[1]} leaves 62 bits")
    product = v * mult
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return (product + half) >> shift


def fixed_multiplier(ratio, bits=16):
    """Per-element ``(mult, shift)`` with ``mult / 2**shift`` closest to ``ratio``.

    ``|mult|`` lands in ``[2**(bits-1), 2**bits)`` (``bits`` significant bits) unless the
    shift would be negative; then ``shift = 0`` and ``mult = round(ratio)``, at most 2**31.
    A zero ratio gives (0, 0). The sign of ``ratio`` stays with ``mult``.
    """
    ratio = np.asarray(ratio, np.float64)
    if not np.all(np.isfinite(ratio)):
        raise ValueError("multiplier ratio must be finite")
    mag = np.abs(ratio)
    exponent = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    shift = np.clip(bits - 1 - exponent, 0, 62).astype(np.int64)
    mult = np.rint(mag * 2.0**shift)
    over = mult >= 2.0**bits
    shift = np.where(over & (shift > 0), shift - 1, shift)
    mult = np.rint(mag * 2.0**shift)
    if np.any(mult > 2.0**31):
        raise ValueError(f"multiplier ratio {float(mag.max())} exceeds 2**31")
    mult = np.where(mag > 0, mult, 0).astype(np.int64) * np.where(ratio < 0, -1, 1)
    return mult, np.where(mag > 0, shift, 0)


def _bit_length(v):
    """Exact bit length of non-negative int64 values below 2**62."""
    return (v[..., None] >= (1 << np.arange(62, dtype=np.int64))).sum(axis=-1)


def _isqrt(v):
    """Exact ``floor(sqrt(v))`` for non-negative int64 below 2**53."""
    root = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    root -= root * root > v
    root += (root + 1) * (root + 1) <= v
    return root


# --- RMSNorm ---------------------------------------------------------------------------------


def rms_norm(x, mult, shift, eps=0, *, bound=WIDE):
    """Integer RMSNorm of int32 residual rows (S, E), one output (mult, shift) per column.

    Per row of n values:

    1. ``a = max(0, bit_length(max |x|) - 15)``; ``V = sum((x >> a)**2) + (eps >> 2a)``
       (each square below 2**30, the sum in uint64); ``eps`` is the model's epsilon in units
       of ``x``'s LSB squared times n;
    2. ``c = (bit_length(V) - 31) // 2`` (floor); ``root = isqrt(V >> 2c)`` (or ``<<`` for
       negative c): the operand lies in [2**30, 2**32), ``root`` in [2**15, 2**16);
    3. ``inv = 2**31 // root``; ``t = scale_round(x, inv, 16 + a + c)`` (a 47-bit product), so
       ``t ~ x / sqrt(sum x^2) * 2**15``, ``|t| <= 2**15 + 1``; a zero row gives t = 0;
    4. ``out = saturate(scale_round(t, mult[c], shift[c]), bound)``: ``mult / 2**shift`` folds
       the gain, ``sqrt(n)`` and the output scale (``|mult| < 2**16``).

    One square root and one division per row.
    """
    x = _int("x", x)
    if x.ndim != 2:
        raise ValueError(f"rms_norm takes (S, E) rows, got shape {x.shape}")
    if np.abs(x).max(initial=0) > _INT32 + 1:
        raise ValueError("rms_norm input must be int32")
    mult, shift = _int("mult", mult), _int("shift", shift)
    if np.abs(mult).max(initial=0) >= 1 << 16:
        raise ValueError("rms_norm mult must lie below 2**16 in magnitude")
    a = np.maximum(_bit_length(np.abs(x).max(axis=1)) - 15, 0)
    xs = x >> a[:, None]
    v = (xs * xs).sum(axis=1) + (int(eps) >> (2 * a))
    c = (_bit_length(v) - 31) // 2
    operand = np.where(c >= 0, v >> np.maximum(2 * c, 0), v << np.maximum(-2 * c, 0))
    root = _isqrt(operand)
    inv = np.where(v > 0, (1 << 31) // np.maximum(root, 1), 0)
    t = scale_round(x, inv[:, None], (16 + a + c)[:, None])
    return saturate(scale_round(t, mult, shift), bound)


def rms_norm_float(x, mult, shift, eps=0, *, bound=WIDE):
    """Float twin of :func:`rms_norm`: exact root and division, saturation kept."""
    x = np.asarray(x, np.float64)
    norm = np.sqrt((x * x).sum(axis=1, keepdims=True) + float(eps))
    t = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0) * 2.0**NORM_FRACTION_BITS
    out = t * np.asarray(mult, np.float64) / 2.0 ** np.asarray(shift, np.float64)
    return np.clip(out, -bound - 1, bound)


# --- RoPE ------------------------------------------------------------------------------------


def rope_table(theta, head_dim, positions):
    """``(cos, sin)`` of shape ``(len(positions), head_dim / 2)`` in Q14 integers.

    Angle ``p * theta**(-2i / D)`` for pair ``i``, formed in float64 as in the float
    reference; the rounded table is data the cores read, not something they compute.
    """
    inv_freq = float(theta) ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.asarray(positions, np.float64)[:, None] * inv_freq[None, :]
    one = 1 << ROPE_FRACTION_BITS
    return (np.rint(np.cos(angles) * one).astype(np.int64),
            np.rint(np.sin(angles) * one).astype(np.int64))


def rope(x, mult, shift, cos, sin):
    """Per-channel dequantisation, rotation and requantization of Q or K to int8.

    ``x`` (heads, T, D) are wide GEMM outputs with per-channel scales; ``mult``, ``shift``
    (heads, D) bring them to ``ROPE_EXTRA_BITS`` fraction bits of the head's int8 output
    scale: ``u = saturate(scale_round(x, mult, shift), 2**16 - 1)``. Pairs ``(i, i + D/2)``
    rotate with the Q14 tables (T, D/2): ``a cos - b sin``, ``a sin + b cos`` (each below
    2**31), then ``saturate(scale_round(., 1, 14 + 8), 127)``.
    """
    x = _int("x", x)
    u = saturate(scale_round(x, np.asarray(mult)[:, None, :], np.asarray(shift)[:, None, :]),
                 _ROPE_OPERAND)
    a, b = np.split(u, 2, axis=-1)
    cos, sin = _int("cos", cos)[None], _int("sin", sin)[None]
    rotated = np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    return saturate(scale_round(rotated, 1, ROPE_FRACTION_BITS + ROPE_EXTRA_BITS),
                    127).astype(np.int8)


def rope_float(x, mult, shift, angles_cos, angles_sin):
    """Float twin of :func:`rope` with exact cos/sin (float arrays (T, D/2))."""
    x = np.asarray(x, np.float64)
    u = x * (np.asarray(mult, np.float64) / 2.0 ** np.asarray(shift, np.float64))[:, None, :]
    u = np.clip(u, -_ROPE_OPERAND - 1, _ROPE_OPERAND)
    a, b = np.split(u, 2, axis=-1)
    rotated = np.concatenate([a * angles_cos - b * angles_sin,
                              a * angles_sin + b * angles_cos], axis=-1)
    return np.clip(rotated / 2.0**ROPE_EXTRA_BITS, -128, 127)


# --- SiLU x up -------------------------------------------------------------------------------


def sigmoid_table():
    """Sigmoid at ``x = -16 + i / 16``, ``i = 0 .. 512``, in Q15 integers (513 entries)."""
    steps = 2 * _SIGMOID_RANGE << _SIGMOID_STEP_BITS
    x = -_SIGMOID_RANGE + np.arange(steps + 1, dtype=np.float64) / (1 << _SIGMOID_STEP_BITS)
    return np.rint((1 << SIGMOID_BITS) / (1.0 + np.exp(-x))).astype(np.int64)


_SIGMOID = sigmoid_table()
_SIGMOID.setflags(write=False)


def silu(x):
    """Integer SiLU of Q12 values: ``x * sigmoid(x)`` with a linearly interpolated table.

    ``x`` saturates to ``+-2**24``; outside [-16, 16) the sigmoid is 0 or 1 (``2**15``).
    Inside, ``j = x + 16 * 2**12``, index ``i = j >> 8``, fraction ``f = j & 255``:
    ``s = T[i] + (((T[i+1] - T[i]) * f + 128) >> 8)``; the result is
    ``scale_round(x, s, 15)`` (a 40-bit product), Q12.
    """
    x = saturate(_int("x", x), _SILU_INPUT)
    frac_bits = SILU_FRACTION_BITS - _SIGMOID_STEP_BITS
    j = x + (_SIGMOID_RANGE << SILU_FRACTION_BITS)
    top = (2 * _SIGMOID_RANGE) << SILU_FRACTION_BITS
    inside = (j >= 0) & (j < top)
    jc = np.clip(j, 0, top - 1)
    i, f = jc >> frac_bits, jc & ((1 << frac_bits) - 1)
    lo, hi = _SIGMOID[i], _SIGMOID[i + 1]
    s = lo + (((hi - lo) * f + (1 << (frac_bits - 1))) >> frac_bits)
    s = np.where(inside, s, np.where(j < 0, 0, 1 << SIGMOID_BITS))
    return scale_round(x, s, SIGMOID_BITS)


def silu_float(x):
    """Float twin of :func:`silu`, Q12 in and out."""
    x = np.clip(np.asarray(x, np.float64), -_SILU_INPUT - 1, _SILU_INPUT)
    real = x / 2.0**SILU_FRACTION_BITS
    return x / (1.0 + np.exp(-real))


def gated(gate, up, gate_mult, gate_shift, out_mult, out_shift, *, bound=WIDE):
    """``silu(gate) * up`` per column, requantized to the down projection's input.

    ``g = scale_round(gate, gate_mult, gate_shift)`` takes the wide gate (per-channel scale)
    to Q12; ``p = silu(g) * saturate(up, 2**21 - 1)`` (below 2**46);
    ``out = saturate(scale_round(p, out_mult, out_shift), bound)`` with ``out_mult < 2**16``.
    """
    g = scale_round(_int("gate", gate), gate_mult, gate_shift)
    p = silu(g) * saturate(_int("up", up), UP_BOUND)
    if np.abs(_int("out_mult", out_mult)).max(initial=0) >= 1 << 16:
        raise ValueError("gated out_mult must lie below 2**16")
    return saturate(scale_round(p, out_mult, out_shift), bound)


def gated_float(gate, up, gate_mult, gate_shift, out_mult, out_shift, *, bound=WIDE):
    """Float twin of :func:`gated`."""
    g = np.asarray(gate, np.float64) * np.asarray(gate_mult) / 2.0 ** np.asarray(gate_shift)
    p = silu_float(g) * np.clip(np.asarray(up, np.float64), -UP_BOUND - 1, UP_BOUND)
    return np.clip(p * np.asarray(out_mult) / 2.0 ** np.asarray(out_shift), -bound - 1, bound)


# --- GEMM with decomposition -----------------------------------------------------------------


@dataclass(frozen=True)
class GemmCount:
    """MACs of one GEMM: on the engine, and on the cores for the decomposition."""

    engine: int = 0
    cores: int = 0
    clipped: int = 0     #: input elements beyond int8
    recomputed: int = 0  #: saturated outputs recomputed exactly

    def __add__(self, other):
        return GemmCount(self.engine + other.engine, self.cores + other.cores,
                         self.clipped + other.clipped, self.recomputed + other.recomputed)


def _exact(a, w):
    """Exact integer product through float64 BLAS (every sum here stays below 2**53)."""
    return np.rint(np.asarray(a, np.float64) @ np.asarray(w, np.float64)).astype(np.int64)


def decomposed_gemm(x, w, rq, *, fine=None, decompose=True, step="GEMM",
                    config: ITAConfig = DEFAULT_CONFIG):
    """``x @ w`` requantized by ``rq = (mult, shift)``, int8 on the engine plus the cores'
    corrections; returns ``(y, GemmCount)`` with ``y`` int32.

    ``x`` (S, K) holds wide integers (24 bits), ``w`` (K, N) int8.

    1. engine: ``y8 = requant(clip8(x) @ w, mult, shift)`` (:func:`ita.golden.gemm_step`;
       K must fit the accumulator, ``config.max_inner_without_bias``);
    2. cores, clipped inputs: ``r = x - clip8(x)`` is non-zero at a few elements; with
       ``wf = w << 8`` except the rows ``fine = (rows, int16 weights)`` the cores keep at 8
       more bits (the known outlier channels, where one input carries a whole output),
       ``c = r @ wf`` (int64, below 2**50; one MAC per non-zero of ``r`` and output column)
       and ``y = y8 + scale_round(c, mult, shift + 8)``;
    3. cores, saturated outputs (``y8`` at -128 or 127): ``y = scale_round((clip8(x) @ w
       << 8) + c, mult, shift + 8)`` from the wide row (K MACs each);
    4. ``y`` saturates to int32.

    With ``decompose=False`` the result is ``y8`` alone: clipped inputs and saturated outputs
    stay wrong, as on the engine by itself.
    """
    x, w = _int("x", x), _int("w", w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"{step}: cannot multiply {x.shape} by {w.shape}")
    if np.abs(x).max(initial=0) > WIDE + 1 or np.abs(w).max(initial=0) > 128:
        raise ValueError(f"{step}: inputs must fit 24 bits and weights int8")
    mult, shift = (int(v) for v in rq)
    x8 = np.clip(x, -128, 127)
    y8 = gemm_step(step, x8, w, None, (mult, shift, 0), config).astype(np.int64)
    count = GemmCount(engine=x.shape[0] * x.shape[1] * w.shape[1])
    if not decompose:
        return y8, count
    wf = w << FINE_BITS
    if fine is not None:
        fine_rows, fine_w = _int("fine rows", fine[0]), _int("fine weights", fine[1])
        if fine_w.shape != (fine_rows.size, w.shape[1]) or np.abs(fine_w).max(
                initial=0) > _INT16:
            raise ValueError(f"{step}: fine weights must be int16 rows of {w.shape[1]}")
        wf[fine_rows] = fine_w
    y = y8.copy()
    r = x - x8
    rows = np.flatnonzero(np.any(r != 0, axis=1))
    c = np.zeros(y.shape, np.int64)
    if rows.size:
        c[rows] = _exact(r[rows], wf)
        y[rows] += scale_round(c[rows], mult, shift + FINE_BITS)
    sat_r, sat_c = np.nonzero((y8 == 127) | (y8 == -128))
    if sat_r.size:
        acc = (x8[sat_r] * w[:, sat_c].T).sum(axis=1) << FINE_BITS
        y[sat_r, sat_c] = scale_round(acc + c[sat_r, sat_c], mult, shift + FINE_BITS)
    clipped = int(np.count_nonzero(r))
    count = GemmCount(engine=count.engine, cores=clipped * w.shape[1] + sat_r.size * w.shape[0],
                      clipped=clipped, recomputed=int(sat_r.size))
    return saturate(y, _INT32), count


def decomposed_gemm_float(x, w, rq):
    """Float twin of :func:`decomposed_gemm`: the exact product times ``mult / 2**shift``."""
    mult, shift = (float(v) for v in rq)
    return np.asarray(x, np.float64) @ np.asarray(w, np.float64) * (mult / 2.0**shift)


# --- residual stream -------------------------------------------------------------------------


def dequantise_add(residual, y, mult, shift):
    """``saturate32(residual + scale_round(y, mult[c], shift[c]))``: a GEMM output with
    per-channel scales (``|mult| < 2**31``, ``|y| < 2**31``) added to the int32 residual."""
    residual = _int("residual", residual)
    return saturate(residual + scale_round(y, mult, shift), _INT32)


def dequantise_add_float(residual, y, mult, shift):
    """Float twin of :func:`dequantise_add`."""
    return (np.asarray(residual, np.float64)
            + np.asarray(y, np.float64) * np.asarray(mult) / 2.0 ** np.asarray(shift))
