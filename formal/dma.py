# amaranth: UnusedElaboratable=no
"""Properties of the DMA, over its register port, its two memory masters and its port to the
chip-to-chip links (destinations in the remote windows, :class:`ita.cluster_config.RemoteWindows`).

:class:`TransferHarness`: the environment programs whole-word registers and one 1-D transfer
at a time (START only while STATUS is 0, ROWS 1); the memories grant and answer freely. The
shadow keeps the destination range ``[DST, DST + LENGTH)`` and the starting core of the
transfer in flight.

:class:`RefusalHarness`: any descriptor, one transfer at a time. Legality is the DMA's own
rule (:meth:`cluster_integration.dma.Dma.refusal`), applied by the harness to the registers
START queues (found by name, :class:`formal.harness.Internals`); an honest DMA only lends
the rule, so it is never elaborated: hence the pragma above.
"""

from types import SimpleNamespace

from amaranth import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from cluster_integration import memory_map
from cluster_integration.dma import CAUSE_LAYOUT, CAUSES, Dma
from cluster_integration.registers import (
    WORD_BYTES,
    RegisterDecoder,
    field_bits,
    region_window_bits,
)
from formal.harness import CORES, ID_WIDTH, Internals, Tampered, drive_freely, no_reset
from ita.cluster_config import DEFAULT

__all__ = ["TransferHarness", "RefusalHarness", "REFUSAL_CYCLES", "dma", "writes_one_word_late",
           "checks_first_row_only"]

_REGISTERS = {r.name: r for r in memory_map.DMA}
_WINDOW = memory_map.region("DMA").size
_FULL_WORD = (1 << WORD_BYTES) - 1


#: Cycles from the START of a refused transfer to its event.
REFUSAL_CYCLES = 3


def dma(cls=Dma):
    return cls(l1_region=memory_map.region("L1"), l2_region=memory_map.region("L2"),
               window=_WINDOW, queue_depth=1, cores=CORES, id_width=ID_WIDTH,
               remote=DEFAULT.remote)


class _FirstRowDma(Dma):
    """A DMA whose range check sees only the first row of each side."""

    @staticmethod
    def _span(m, name, base, stride, rows, length):
        return base, base + length


def checks_first_row_only():
    """Broken: the range check ignores every row but the first."""
    return dma(_FirstRowDma)


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
        offset_bits = (WORD_BYTES - 1).bit_length()   # with low bits set, LENGTH is refused
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

        for port in (dut.l1, dut.l2, dut.link):
            written = port.req & port.gnt & port.we & port.be.any()
            m.d.comb += Assert(~written | (active & (port.addr >= low) & (port.addr < high)))
            with m.If(written & ~starting):
                m.d.sync += writes.eq(writes + (writes != (1 << len(writes)) - 1))

        expected = Cat(starter == c for c in range(CORES))
        m.d.comb += [Assert(~dut.events.any() | (active & (dut.events == expected))),
                     Cover(dut.events.any() & (writes >= 2))]
        return m


class RefusalHarness(Elaboratable):
    """A transfer the DMA's rule refuses makes no memory request; its event comes
    REFUSAL_CYCLES after its START, on its starting core's line, with ``refused``; no legal
    transfer raises ``refused``; and an ERROR read returns exactly the reading core's causes
    and count of refusals since its last ERROR read (a shadow kept per core)."""

    def __init__(self, block=dma):
        self.block = block

    def elaborate(self, platform):
        m = Module()
        dut = self.block()
        internals = Internals(dut, platform)
        m.submodules.dut = internals.fragment
        drive_freely(m, dut)
        no_reset(m)
        bus = dut.regs
        decoder = RegisterDecoder(bus, region_window_bits(_WINDOW))
        m.d.comb += Assume(bus.id < CORES)
        # The honest rule over the registers START queues (as the HWPE harness applies the
        # engine's check to the job the slave starts): the same nets as the block's own check
        # when the block is honest, so the proof never has to match two multipliers.
        programmed = {name: internals[f"programmed_{name}"] for name in
                      ("src", "dst", "length", "rows", "src_stride", "dst_stride")}
        causes_now = dma().refusal(m, SimpleNamespace(**programmed))

        # One transfer at a time.
        starting = decoder.writes(_REGISTERS["START"])
        m.d.comb += Assume(~starting | ~dut.busy)
        watching = Signal()                  # a refused transfer is in flight
        causes = Signal(CAUSE_LAYOUT)
        starter = Signal.like(bus.id)
        age = Signal(range(REFUSAL_CYCLES + 2))
        event = dut.events.any()
        with m.If(starting):
            m.d.sync += [watching.eq(causes_now.as_value().any()), causes.eq(causes_now),
                         starter.eq(bus.id), age.eq(1)]
        with m.Elif(event):
            m.d.sync += watching.eq(0)
        with m.Elif(watching & (age <= REFUSAL_CYCLES)):
            m.d.sync += age.eq(age + 1)
        line = Cat(starter == c for c in range(CORES))
        m.d.comb += [
            Assert(~watching | ~(dut.l1.req | dut.l2.req | dut.link.req)),
            Assert(~watching | (age <= REFUSAL_CYCLES)),
            Assert(~(watching & event) | ((age == REFUSAL_CYCLES) & (dut.events == line)
                                          & (dut.refused == line))),
            Assert(~dut.refused.any() | (watching & event)),
        ]

        # ERROR, per core: what a read must return, the refusal ending now included.
        count = _REGISTERS["ERROR"].field("refused")
        saturated = (1 << count.width) - 1
        expected_causes = Array(Signal(CAUSE_LAYOUT.size, name=f"shadow_causes{c}")
                                for c in range(CORES))
        expected_count = Array(Signal(count.width, name=f"shadow_refused{c}")
                               for c in range(CORES))
        reading = decoder.reads(_REGISTERS["ERROR"]) & bus.gnt
        now_causes, now_count = [], []
        for c in range(CORES):
            ending_here = watching & event & line[c]
            now_causes.append(expected_causes[c] | Mux(ending_here, causes.as_value(), 0))
            now_count.append(expected_count[c]
                             + (ending_here & (expected_count[c] != saturated)))
            cleared = reading & (bus.id == c)
            m.d.sync += [expected_causes[c].eq(Mux(cleared, 0, now_causes[c])),
                         expected_count[c].eq(Mux(cleared, 0, now_count[c]))]
        asked = Signal()
        answer = Signal(CAUSE_LAYOUT)
        answer_count = Signal(count.width)
        m.d.sync += [asked.eq(reading), answer.eq(Array(now_causes)[bus.id]),
                     answer_count.eq(Array(now_count)[bus.id])]
        error = _REGISTERS["ERROR"]
        got = Cat(field_bits(bus.r_data, error.field(name)) for name in CAUSES)
        m.d.comb += [
            Assert(~asked | ((got == answer.as_value())
                             & (field_bits(bus.r_data, count) == answer_count))),
            Cover(asked & (answer_count != 0) & answer.dst_range),
            Cover(asked & (answer_count != 0) & answer.link),
        ]
        return m
