"""Partial sums of one output tile, kept across its inner tiles."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    """Adds each beat's dot products to the sum stored for its (group, row) slot.

    One slot per output beat of a tile (M * M / N slots of N sums). On the first inner
    tile the stored value is ignored; on the last one the bias is added and the sum leaves
    on ``result`` instead of being stored. Sums wrap at ``acc_width`` bits like the
    reference; the golden model reports the shapes where that could happen. Latency 2:
    the memory is read in the cycle a beat arrives and written back in the next.

    Members
    -------
    valid, slot, dot, first, last, bias : In
    result : Out(ArrayLayout(signed(acc_width), N)), result_valid : Out(1)
    """

    latency = 2

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG):
        self._config = config
        self._slots = config.M * config.M // config.N
        sums = data.ArrayLayout(signed(config.acc_width), config.N)
        super().__init__({
            "valid": In(1),
            "slot": In(range(self._slots)),
            "dot": In(sums),
            "first": In(1),
            "last": In(1),
            "bias": In(data.ArrayLayout(signed(config.bias_width), config.N)),
            "result": Out(sums),
            "result_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        sums = data.ArrayLayout(signed(cfg.acc_width), cfg.N)
        m.submodules.memory = memory = Memory(shape=sums, depth=self._slots, init=[])
        write = memory.write_port()
        # Transparent: a beat of the same slot in the very next cycle (one slot per tile,
        # N = M = 1) must see the sum written back in this cycle.
        read = memory.read_port(transparent_for=(write,))

        valid, slot, first, last = Signal(), Signal.like(self.slot), Signal(), Signal()
        dot, bias = Signal(sums), Signal.like(self.bias)
        m.d.comb += read.addr.eq(self.slot)
        m.d.sync += [valid.eq(self.valid), slot.eq(self.slot), first.eq(self.first),
                     last.eq(self.last), dot.eq(self.dot), bias.eq(self.bias)]

        total = Signal(sums)
        for unit in range(cfg.N):
            stored = read.data[unit].as_signed()
            m.d.comb += total[unit].eq(dot[unit] + Mux(first, 0, stored)
                                       + Mux(last, bias[unit], 0))
        m.d.comb += [
            write.addr.eq(slot),
            write.data.eq(total),
            write.en.eq(valid & ~last),
        ]
        m.d.sync += [self.result.eq(total), self.result_valid.eq(valid & last)]
        return m
