"""Choosing integer constants from real-valued scales.

A requantization multiplies by ``mult / 2**shift``; these helpers find the (mult, shift)
pair that best represents a real scale factor, and derive the i-GELU constants for a
layer's calibrated input scale (I-BERT, Kim et al. 2021).
"""

import math
from dataclasses import dataclass

__all__ = [
    "requant_constants",
    "GeluConstants",
    "gelu_constants",
    "REFERENCE_GELU",
    "reference_requant_shift",
    "SOFTMAX_LOGIT_SCALE",
]

#: Real value of one logit step at the softmax input: ITAmax is a base-2 softmax.
SOFTMAX_LOGIT_SCALE = math.log(2)

# I-BERT's second-order erf approximation: erf(x) ~ sgn(x) * (a * (min(|x|, -b) + b)**2 + 1).
_ERF_A, _ERF_B = -0.2888, -1.769


def requant_constants(scale, *, mult_bits=8, max_shift=62):
    """(mult, shift) with ``mult / 2**shift`` closest to ``scale`` and mult as large as fits.

    ``scale`` must be positive and representable: at most ``2**mult_bits - 1``. Precision is
    best when mult uses all its bits, so mult lands in [2**(mult_bits-1), 2**mult_bits - 1]
    unless the shift would have to be negative.
    """
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"requantization scale must be positive and finite, got {scale}")
    top = (1 << mult_bits) - 1
    if round(scale) > top:
        raise ValueError(f"scale {scale} needs a multiplier above {top}")
    shift = max(0, min(max_shift, mult_bits - 1 - math.floor(math.log2(scale))))
    mult = round(scale * 2.0**shift)
    if mult > top:  # rounding pushed it to 2**mult_bits
        shift -= 1
        mult = round(scale * 2.0**shift)
    if mult == 0:
        raise ValueError(f"scale {scale} is below the smallest representable factor "
                         f"1 / 2**{max_shift}")
    return mult, shift


def reference_requant_shift(mult, inner, extra_bits):
    """The shift the ITA reference generator pairs with a random ``mult`` for a step.

    ``floor(log2(mult * inner * 2**extra_bits)) - 6`` with ``extra_bits`` 9 for Q, K, V, OW
    and the FFN steps, 8 for QK, 5 for AV and 7 for the head sum (``docs/arithmetic.md`` 3.3).
    """
    return int(math.floor(math.log2(mult * inner * 2**extra_bits))) - 6


@dataclass(frozen=True)
class GeluConstants:
    """i-GELU polynomial constants and the activation requantization that follows."""

    b: int
    c: int
    mult: int
    shift: int
    add: int
    output_scale: float  #: negative: the integer GELU is sign-inverted

    @property
    def act_rq(self):
        return (self.mult, self.shift, self.add)


def gelu_constants(input_scale, output_scale=None, *, shift=None):
    """i-GELU constants for int8 inputs of real scale ``input_scale``.

    ``b = round(-1.769 / S2)`` and ``c = round(1 / (a * S2**2))`` with ``S2 = S / sqrt(2)``.
    The polynomial's result has scale ``S * a * S2**2 / 2``, which is negative; the activation
    requantization maps it to ``-output_scale`` (default ``output_scale = input_scale``), so
    the int8 output is the real GELU with its sign inverted, as in the reference hardware.
    With ``shift`` given, mult is ``round(ratio * 2**shift)`` (the reference uses shift 20);
    otherwise :func:`requant_constants` picks both.
    """
    if not input_scale > 0:
        raise ValueError(f"input scale must be positive, got {input_scale}")
    output_scale = input_scale if output_scale is None else output_scale
    if not output_scale > 0:
        raise ValueError(f"output scale must be positive, got {output_scale}")
    s2 = input_scale / math.sqrt(2)
    b = round(_ERF_B / s2)
    c = round(1 / (_ERF_A * s2**2))
    poly_scale = input_scale * _ERF_A * s2**2 / 2
    ratio = -poly_scale / output_scale
    if shift is None:
        mult, shift = requant_constants(ratio)
    else:
        mult = round(ratio * 2**shift)
        if not 0 < mult < 256:
            raise ValueError(f"shift {shift} gives GELU multiplier {mult}, outside 1..255")
    for name, value in (("b", b), ("c", c)):
        if not -(1 << 15) <= value < 1 << 15:
            raise ValueError(f"input scale {input_scale} gives GELU constant {name}={value}, "
                             "outside int16")
    return GeluConstants(b=b, c=c, mult=mult, shift=shift, add=0, output_scale=-output_scale)


#: The reference's defaults: input scale 4 * (254/256) / 127 = 1/32, activation shift 20.
REFERENCE_GELU = gelu_constants(4 * (254 / 256) / 127, shift=20)
