"""Pipelined reciprocal of the ITAmax denominator (``docs/arithmetic.md`` section 4.5)."""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["ReciprocalDivider"]


class ReciprocalDivider(wiring.Component):
    """``floor(config.softmax_scalar / divisor)``, one division accepted per cycle.

    A restoring division with the constant dividend unrolled into a pipeline: each stage
    decides ``bits_per_stage`` quotient bits, so the result leaves ``latency`` cycles after
    ``valid_in``. Fixed latency and full throughput let ITAmax hand over one finished row sum
    per cycle without the FIFO and round-robin serial dividers of the reference. The tag (the
    row index) travels with the division; a zero divisor (fully masked row) gives quotient 0.

    Parameters
    ----------
    config:
        Engine configuration; uses ``softmax_sum_width`` and ``softmax_scalar``.
    tag_width:
        Width of the tag; defaults to a row index of the ``config.M`` row block.
    bits_per_stage:
        Quotient bits decided per pipeline stage (more bits: fewer stages, longer paths).

    Attributes
    ----------
    latency:
        Cycles from ``valid_in`` to ``valid_out`` of the same division.
    quotient_width:
        Bits of the quotient, enough for the largest quotient (divisor 1).
    """

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG, tag_width=None, bits_per_stage=1):
        if not isinstance(config, ITAConfig):
            raise TypeError(f"config must be an ITAConfig, not {config!r}")
        if config.softmax_scalar < 1:
            raise ValueError(f"softmax_scalar must be positive, not {config.softmax_scalar}")
        if tag_width is None:
            tag_width = max(1, (config.M - 1).bit_length())
        if not isinstance(tag_width, int) or tag_width < 1:
            raise ValueError(f"tag_width must be a positive integer, not {tag_width!r}")
        if not isinstance(bits_per_stage, int) or bits_per_stage < 1:
            raise ValueError(f"bits_per_stage must be a positive integer, not {bits_per_stage!r}")
        self._config = config
        self.quotient_width = config.softmax_scalar.bit_length()
        self.bits_per_stage = min(bits_per_stage, self.quotient_width)
        self.latency = self.latency_of(config=config, bits_per_stage=bits_per_stage)
        super().__init__({
            "divisor": In(unsigned(config.softmax_sum_width)),
            "valid_in": In(1),
            "tag_in": In(tag_width),
            "quotient": Out(unsigned(self.quotient_width)),
            "valid_out": Out(1),
            "tag_out": Out(tag_width),
        })

    @staticmethod
    def latency_of(*, config: ITAConfig = DEFAULT_CONFIG, bits_per_stage=1):
        """The ``latency`` of a divider with these parameters, without building one."""
        return -(-config.softmax_scalar.bit_length() // bits_per_stage)

    def elaborate(self, platform):
        m = Module()

        dividend, width = self._config.softmax_scalar, self.quotient_width
        divisor, valid, tag = self.divisor, self.valid_in, self.tag_in
        remainder, quotient = Const(0, 0), Const(0, 0)
        for stage in range(self.latency):
            for bit in reversed(range(max(0, width - (stage + 1) * self.bits_per_stage),
                                      width - stage * self.bits_per_stage)):
                # trial = 2 * remainder + next dividend bit; the remainder never exceeds
                # the dividend bits seen so far, so the early stages stay narrow.
                trial = Cat(Const((dividend >> bit) & 1, 1), remainder)
                fits = trial >= divisor
                # A named signal per bit keeps the expression a chain, not a tree that
                # doubles with every bit of a multi-bit stage.
                next_remainder = Signal((dividend >> bit).bit_length(), name=f"remainder_b{bit}")
                m.d.comb += next_remainder.eq(Mux(fits, trial - divisor, trial))
                remainder, quotient = next_remainder, Cat(fits, quotient)

            last = stage == self.latency - 1
            if last:
                quotient = Mux(divisor == 0, 0, quotient)
            stage_remainder = Signal(len(remainder), name=f"remainder_{stage}")
            stage_quotient = Signal(len(quotient), name=f"quotient_{stage}")
            stage_divisor = Signal.like(divisor, name=f"divisor_{stage}")
            stage_valid = Signal(name=f"valid_{stage}")
            stage_tag = Signal.like(tag, name=f"tag_{stage}")
            m.d.sync += [
                stage_quotient.eq(quotient),
                stage_valid.eq(valid),
                stage_tag.eq(tag),
            ]
            if not last:
                m.d.sync += [
                    stage_remainder.eq(remainder),
                    stage_divisor.eq(divisor),
                ]
            remainder, quotient = stage_remainder, stage_quotient
            divisor, valid, tag = stage_divisor, stage_valid, stage_tag

        m.d.comb += [
            self.quotient.eq(quotient),
            self.valid_out.eq(valid),
            self.tag_out.eq(tag),
        ]
        return m

