"""Requantization of wide sums to int8 (``docs/arithmetic.md`` section 3)."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """``clamp(floor((mult * value + 2**(shift-1)) / 2**shift) + add, -128, 127)`` per lane.

    Matches :func:`ita.golden.requant` bit for bit: an arithmetic right shift that adds back
    the first dropped bit (round half up), then the signed offset, then saturation. Shifts
    beyond the product's width give the sign fill, rounded back to 0.

    Every lane has its own constants so that per-column requantization needs no rewrite. The
    pipeline is free-running with a fixed latency and no handshake: ``result`` shows the
    inputs (values and constants alike) presented ``latency`` cycles earlier, so a caller
    stalls it simply by ignoring the outputs.

    Parameters
    ----------
    lanes:
        Independent requantizers side by side.
    input_width:
        Signed width of ``value``; the product is exact for any width.
    config:
        Engine configuration; uses ``requant_width`` (constants) and ``input_width`` (result).
    """

    def __init__(self, *, lanes, input_width, config: ITAConfig = DEFAULT_CONFIG):
        if not isinstance(lanes, int) or lanes < 1:
            raise TypeError(f"lanes must be a positive integer, not {lanes!r}")
        if not isinstance(input_width, int) or input_width < 1:
            raise TypeError(f"input_width must be a positive integer, not {input_width!r}")
        if not isinstance(config, ITAConfig):
            raise TypeError(f"config must be an ITAConfig, not {config!r}")
        self._lanes = lanes
        constant = config.requant_width

        def per_lane(shape):
            return data.ArrayLayout(shape, lanes)

        super().__init__({
            "value": In(per_lane(signed(input_width))),
            "mult": In(per_lane(unsigned(constant))),
            "shift": In(per_lane(unsigned(constant))),
            "add": In(per_lane(signed(constant))),
            "result": Out(per_lane(signed(config.input_width))),
        })

    #: Cycles from the inputs to their ``result``: multiply and round, then add and saturate.
    #: A class constant, so that enclosing pipelines can plan their stages without an instance.
    LATENCY = 2

    @property
    def latency(self):
        """Cycles from the inputs to their ``result``."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()

        result_shape = self.result.shape().elem_shape
        lowest, highest = -(1 << (result_shape.width - 1)), (1 << (result_shape.width - 1)) - 1

        for lane in range(self._lanes):
            value, mult = self.value[lane], self.mult[lane]
            shift, add = self.shift[lane], self.add[lane]

            # Stage 1. Rounding half up is floor((floor(p / 2**(s-1)) + 1) / 2): one barrel
            # shifter by s-1 instead of one by s plus a bit select at s-1. Amaranth (and the
            # Verilog it emits) fills with the sign when the amount exceeds the width, so huge
            # shifts round -1 and 0 alike to 0, as the golden model does.
            product = mult * value  # unsigned mult is zero-extended: exact signed product
            with_round_bit = product >> (shift - 1)[:len(shift)]
            rounded_shift = (with_round_bit + 1) >> 1
            rounded = Signal(product.shape(), name=f"rounded_{lane}")
            offset = Signal.like(add, name=f"add_{lane}")
            m.d.sync += [
                rounded.eq(Mux(shift == 0, product, rounded_shift)),
                offset.eq(add),
            ]

            # Stage 2.
            total = rounded + offset
            m.d.sync += self.result[lane].eq(
                Mux(total > highest, highest, Mux(total < lowest, lowest, total)))

        return m
