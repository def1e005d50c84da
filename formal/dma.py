"""Properties of the DMA, over its register port and its two memory masters.

The environment programs whole-word registers and one 1-D transfer at a time (START only
while STATUS is 0, ROWS 1); the memories grant and answer freely. The shadow keeps the
destination range ``[DST, DST + LENGTH)`` and the starting core of the transfer in flight.
"""

from amaranth import Cat, Const, Elaboratable, Module, Signal
from amaranth.hdl import Assert, Assume, Cover

from cluster_integration import memory_map
from cluster_integration.dma import Dma
from cluster_integration.registers import (
    WORD_BYTES,
    RegisterDecoder,
    field_bits,
    region_window_bits,
)
from formal.harness import CORES, ID_WIDTH, Tampered, drive_freely, no_reset

__all__ = ["TransferHarness", "dma", "writes_one_word_late"]

_REGISTERS = {r.name: r for r in memory_map.DMA}
_WINDOW = memory_map.region("DMA").size
_FULL_WORD = (1 << WORD_BYTES) - 1


def dma():
    return Dma(l1_region=memory_map.region("L1"), l2_region=memory_map.region("L2"),
               window=_WINDOW, queue_depth=1,
               cores=CORES, id_width=ID_WIDTH)


def writes_one_word_late():
    """Broken: every write lands one word after the address the DMA computed."""
    def tamper(m, outer, inner):
        for port in ("l1", "l2"):
            o, i = getattr(outer, port), getattr(inner, port)
            m.d.comb += o.addr.eq(i.addr + (i.we * WORD_BYTES))
    return Tampered(dma(), tamper, {("l1", "addr"), ("l2", "addr")})


class TransferHarness(Elaboratable):
    """Every write granted to either master lies in the destination range of the transfer in
    flight; each transfer raises exactly one event, on its starting core's line, and no event
    comes without a transfer."""

    def __init__(self, block=dma):
        self.block = block

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.block()
        drive_freely(m, dut)
        no_reset(m)
        bus = dut.regs
        decoder = RegisterDecoder(bus, region_window_bits(_WINDOW))
        m.d.comb += Assume(bus.id < CORES)

        programmed = {}
        for name in ("DST", "LENGTH", "ROWS"):
            register = _REGISTERS[name]
            field = register.field()
            value = Signal(field.width, name=f"shadow_{name.lower()}")
            writing = decoder.writes(register)
            m.d.comb += Assume(~writing | (bus.be == _FULL_WORD))
            with m.If(writing):
                m.d.sync += value.eq(field_bits(bus.wdata, field))
            programmed[name] = value

        # One word-aligned 1-D transfer at a time, its range not wrapping past the top.
        starting = decoder.writes(_REGISTERS["START"])
        offset_bits = (WORD_BYTES - 1).bit_length()   # LENGTH's low bits are ignored
        length = Cat(Const(0, offset_bits), programmed["LENGTH"][offset_bits:])
        end = Signal(len(programmed["DST"]) + 1)
        m.d.comb += end.eq(programmed["DST"] + length)
        m.d.comb += Assume(~starting | (~dut.busy & (programmed["ROWS"] == 1)
                                        & (programmed["DST"][:offset_bits] == 0) & ~end[-1]))
        active = Signal()
        low, high = Signal(len(end)), Signal(len(end))
        starter = Signal.like(bus.id)
        writes = Signal(4)
        with m.If(starting):
            m.d.sync += [active.eq(1), low.eq(programmed["DST"]),
                         high.eq(end), starter.eq(bus.id),
                         writes.eq(0)]
        with m.Elif(dut.events.any()):
            m.d.sync += active.eq(0)

        for port in (dut.l1, dut.l2):
            written = port.req & port.gnt & port.we & port.be.any()
            m.d.comb += Assert(~written | (active & (port.addr >= low) & (port.addr < high)))
            with m.If(written & ~starting):
                m.d.sync += writes.eq(writes + (writes != (1 << len(writes)) - 1))

        expected = Cat(starter == c for c in range(CORES))
        m.d.comb += [Assert(~dut.events.any() | (active & (dut.events == expected))),
                     Cover(dut.events.any() & (writes >= 2))]
        return m
