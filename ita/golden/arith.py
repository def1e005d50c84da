"""Element-wise integer arithmetic of the engine: requantization and activations.

All functions take array-likes, compute in int64 and return int8 arrays. They follow the
hardware bit for bit (see ``docs/arithmetic.md`` sections 3 and 5), not the reference's
floating-point golden model, which rounds differently for shifts of 23 and more.
"""

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = [
    "ACTIVATIONS",
    "AccumulatorOverflowError",
    "requant",
    "relu",
    "i_gelu_poly",
    "i_gelu",
    "activate",
    "check_accumulator",
]

ACTIVATIONS = ("identity", "gelu", "relu")

# Shifts beyond this give the same result for any accumulator value, and keep numpy's
# shift count inside the int64 width.
_MAX_EFFECTIVE_SHIFT = 62


class AccumulatorOverflowError(ArithmeticError):
    """A sum left the hardware accumulator's range; the hardware would silently wrap."""


def _check_requant_constants(mult, shift, add, width=8):
    mult, shift, add = (np.asarray(v, dtype=np.int64) for v in (mult, shift, add))
    if np.any((mult < 0) | (mult >= 1 << width)):
        raise ValueError(f"requant mult must be in 0..{(1 << width) - 1}, got {mult}")
    if np.any((shift < 0) | (shift >= 1 << width)):
        raise ValueError(f"requant shift must be in 0..{(1 << width) - 1}, got {shift}")
    if np.any((add < -(1 << (width - 1))) | (add >= 1 << (width - 1))):
        raise ValueError(f"requant add must be an int8, got {add}")


def requant(x, mult, shift, add=0):
    """Requantize accumulator values to int8.

    ``out = clamp(floor((mult * x + 2**(shift-1)) / 2**shift) + add, -128, 127)``, that is an
    arithmetic right shift that adds back the first dropped bit (rounding half up, towards
    +inf: -1.5 -> -1, 2.5 -> 3), then the signed offset, then saturation. With ``shift == 0``
    nothing is rounded. ``mult``, ``shift`` and ``add`` broadcast against ``x`` so that a
    per-column vector of constants works like a scalar.
    """
    _check_requant_constants(mult, shift, add)
    x = np.asarray(x, dtype=np.int64)
    product = np.asarray(mult, dtype=np.int64) * x
    shift = np.minimum(np.asarray(shift, dtype=np.int64), _MAX_EFFECTIVE_SHIFT)
    first_dropped = (product >> np.maximum(shift - 1, 0)) & 1
    rounded = np.where(shift > 0, (product >> shift) + first_dropped, product)
    return np.clip(rounded + np.asarray(add, dtype=np.int64), -128, 127).astype(np.int8)


def relu(q, act_rq):
    """ReLU on int8 values, always followed by the activation requantization."""
    q = np.asarray(q, dtype=np.int64)
    return requant(np.maximum(q, 0), *act_rq)


def _wrap(x, width):
    """Two's-complement wrap of int64 values to ``width`` bits."""
    half = 1 << (width - 1)
    return ((x + half) & ((1 << width) - 1)) - half


def i_gelu_poly(q, b, c, config: ITAConfig = DEFAULT_CONFIG):
    """Integer i-GELU before its requantization (I-BERT polynomial, hardware widths).

    ``t = min(|q|, -b)``, ``L = (t + b)**2 + c``, ``e = -L if q < 0 else L``,
    ``g = q * (e + c)``; intermediates wrap at ``config.gelu_width`` bits as in hardware.
    ``c`` serves as both the polynomial offset and the "+1" of ``erf + 1``, so the result
    has a negative scale: it is the real GELU with its sign inverted.
    """
    lo, hi = -(1 << (config.gelu_const_width - 1)), (1 << (config.gelu_const_width - 1)) - 1
    for name, value in (("b", b), ("c", c)):
        if not lo <= int(value) <= hi:
            raise ValueError(f"gelu {name}={value} does not fit int{config.gelu_const_width}")
    q = np.asarray(q, dtype=np.int64)
    b, c, width = int(b), int(c), config.gelu_width
    clipped = np.minimum(np.abs(q), -b)
    poly = _wrap((clipped + b) ** 2 + c, width)
    erf = np.where(q < 0, -poly, poly)
    return _wrap(q * _wrap(erf + c, width), width)


def i_gelu(q, b, c, act_rq, config: ITAConfig = DEFAULT_CONFIG):
    """Integer i-GELU on int8 values followed by the activation requantization."""
    return requant(i_gelu_poly(q, b, c, config), *act_rq)


def activate(q, activation, *, gelu_b=0, gelu_c=0, act_rq=(1, 0, 0),
             config: ITAConfig = DEFAULT_CONFIG):
    """Apply the activation unit to the int8 output of a step's requantizer.

    ``identity`` passes values through unchanged; ``relu`` and ``gelu`` are each followed by
    the activation requantization ``act_rq = (mult, shift, add)``.
    """
    if activation == "identity":
        return np.asarray(q, dtype=np.int8)
    if activation == "relu":
        return relu(q, act_rq)
    if activation == "gelu":
        return i_gelu(q, gelu_b, gelu_c, act_rq, config)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def check_accumulator(acc, step, config: ITAConfig = DEFAULT_CONFIG):
    """Raise :class:`AccumulatorOverflowError` if any value leaves the accumulator range.

    The hardware wraps at ``config.acc_width`` bits; partial sums may wrap harmlessly, so only
    the final value (all inner tiles plus bias) matters. The message names the step and the
    first offending row and column.
    """
    acc = np.asarray(acc)
    bad = (acc < config.acc_min) | (acc > config.acc_max)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        names = ("batch", "head", "row", "col")[-len(index):]
        where = ", ".join(f"{n}={i}" for n, i in zip(names, index, strict=True))
        raise AccumulatorOverflowError(
            f"step {step}: accumulator overflow at {where}: {int(acc[index])} outside the "
            f"{config.acc_width}-bit range [{config.acc_min}, {config.acc_max}]")
