"""The one description of an ITA engine configuration.

Every number that the RTL, the golden model, the generated C header, the tests and the docs
need comes from an :class:`ITAConfig`. Only hardware sizes live here; shapes, requantization
constants, activation and mode are run-time values.
"""

from dataclasses import dataclass

__all__ = ["ITAConfig", "DEFAULT_CONFIG"]


@dataclass(frozen=True)
class ITAConfig:
    """Hardware sizes and arithmetic constants of one ITA engine.

    Parameters
    ----------
    N:
        Number of dot-product units: output columns produced per cycle.
    M:
        Dot-product length, which is also the tile edge (rows and columns of a tile).
    input_width:
        Width of inputs, weights and outputs (int8).
    acc_width:
        Signed accumulator width; sums wrap at this width in hardware.
    bias_width:
        Signed bias width (sign-extended into the accumulator).
    requant_width:
        Width of the requantization multiplier (unsigned) and shift.
    output_fifo_depth:
        Entries of N outputs each in the output FIFO. It must cover the beats in flight
        between issue and output (about 11) for full throughput, hence 16 instead of the
        reference's 12.
    softmax_sum_width:
        Unsigned width of the running softmax denominator.
    softmax_scalar:
        Numerator of the softmax reciprocal (255 * 256).
    softmax_shift:
        Extra right shift applied to (max - x) in ITAmax; 0 is the current reference.
    logit_frac_max:
        Largest per-job ``logit_frac`` k of ITAmax: a logit step of ln 2 / 2**k, the k low
        bits of (max - x) looked up in :meth:`exp_table` (``docs/arithmetic.md`` 4.9).
    gelu_const_width:
        Signed width of the i-GELU constants b and c.
    gelu_width:
        Width of the i-GELU polynomial and product.
    contexts:
        Job contexts in the HWPE control slave.
    """

    N: int = 16
    M: int = 64
    input_width: int = 8
    acc_width: int = 26
    bias_width: int = 24
    requant_width: int = 8
    output_fifo_depth: int = 16
    softmax_sum_width: int = 19
    softmax_scalar: int = 65280
    softmax_shift: int = 0
    logit_frac_max: int = 3
    gelu_const_width: int = 16
    gelu_width: int = 26
    contexts: int = 2

    def __post_init__(self):
        if self.N < 1 or self.M < 1:
            raise ValueError(f"N and M must be positive, not N={self.N}, M={self.M}")
        if self.M % self.N:
            raise ValueError(f"M={self.M} must be a multiple of N={self.N}")
        if self.input_width != 8:
            raise ValueError("only int8 data (input_width=8) is supported")
        if not self.bias_width < self.acc_width:
            raise ValueError("bias_width must be smaller than acc_width")
        if self.softmax_shift < 0:
            raise ValueError("softmax_shift must not be negative")
        if self.logit_frac_max not in (1, 3, 7):
            # 2**b - 1: every value of the b-bit job field is a step the engine takes
            raise ValueError(f"logit_frac_max must be 1, 3 or 7, not {self.logit_frac_max}")
        if self.contexts < 1:
            raise ValueError("at least one job context is needed")

    @property
    def macs_per_cycle(self) -> int:
        """Peak multiply-accumulates per cycle."""
        return self.N * self.M

    @property
    def beats_per_tile(self) -> int:
        """Cycles one M x M x M tile occupies the dot-product array."""
        return self.M * self.M // self.N

    @property
    def acc_min(self) -> int:
        return -(1 << (self.acc_width - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_width - 1)) - 1

    @property
    def bias_min(self) -> int:
        return -(1 << (self.bias_width - 1))

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_width - 1)) - 1

    @property
    def max_inner_with_bias(self) -> int:
        """Largest inner dimension whose worst-case int8 sum plus bias fits the accumulator.

        The worst case is (-128) * (-128) per product plus the largest positive bias.
        """
        return (self.acc_max - self.bias_max) // (128 * 128)

    @property
    def max_inner_without_bias(self) -> int:
        """Largest inner dimension of a bias-free step (QK) that cannot overflow."""
        return self.acc_max // (128 * 128)

    @property
    def logit_frac_bits(self) -> int:
        """Width of the job field that carries ``logit_frac`` (0..``logit_frac_max``)."""
        return self.logit_frac_max.bit_length()

    def exp_table(self, logit_frac: int) -> tuple:
        """ITAmax's fraction table for a logit step of ln 2 / 2**k: entry f is
        ``round(256 * 2**(-f / 2**k))``, f in 0..2**k - 1, so entry 0 is exactly 256 and
        k = 0 is the shift-only arithmetic of the reference."""
        if not 0 <= logit_frac <= self.logit_frac_max:
            raise ValueError(f"logit_frac must lie in 0..{self.logit_frac_max}, got {logit_frac}")
        one = 1 << self.input_width
        steps = 1 << logit_frac
        return tuple(int(round(one * 2.0 ** (-f / steps))) for f in range(steps))

    @property
    def max_keys(self) -> int:
        """Most keys per softmax row before the running denominator could overflow."""
        return ((1 << self.softmax_sum_width) - 1) // 256


DEFAULT_CONFIG = ITAConfig()
