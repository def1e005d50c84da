"""The smoke-test design: a running sum over an 8-bit signed stream."""

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class Accumulate(wiring.Component):
    """``sum`` register adds every accepted ``i`` payload; wraps modulo 2**16.

    ``clear`` zeroes the sum before the payload accepted in the same cycle is added, so a
    value arriving with ``clear`` is the first term of the new sum. ``i.ready`` is always 1.
    """

    def __init__(self):
        super().__init__(
            {
                "i": In(stream.Signature(signed(8))),
                "clear": In(1),
                "sum": Out(signed(16)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        base = Mux(self.clear, 0, self.sum)
        addend = Mux(self.i.valid & self.i.ready, self.i.payload, 0)
        m.d.sync += self.sum.eq(base + addend)
        return m
