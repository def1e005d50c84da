"""The event unit's hardware barrier, over the cores' register ports.

The cores are free within the TCDM rules (a request is held unchanged until granted), may
set BARRIER_COUNT at any time with whole-word writes, and receive free events. The shadow
keeps BARRIER_COUNT (the highest-numbered writer of a cycle wins) and the number of
completed barriers.
"""

from amaranth import Cat, Elaboratable, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from cluster_integration import memory_map
from cluster_integration.event_unit import EventUnit
from cluster_integration.registers import (
    WORD_BYTES,
    RegisterDecoder,
    field_bits,
    region_window_bits,
)
from formal.harness import CORES, Internals, Tampered, drive_freely, no_reset

__all__ = ["BarrierHarness", "event_unit", "lets_core0_through"]

#: The fewest event lines the unit takes: up to the first software event.
LINES = max(memory_map.EVENT_LINES.values()) + 1

_REGISTERS = {r.name: r for r in memory_map.EVENT_UNIT}
_BARRIER = _REGISTERS["BARRIER"]
_BARRIER_COUNT = _REGISTERS["BARRIER_COUNT"]
_WINDOW_BITS = region_window_bits(memory_map.region("EVENT_UNIT").size)


def event_unit():
    return EventUnit(cores=CORES, lines=LINES)


def lets_core0_through():
    """Broken: core 0's BARRIER load is granted at once, without waiting for the others."""
    def tamper(m, outer, inner):
        early = RegisterDecoder(outer.core0, _WINDOW_BITS).reads(_BARRIER)
        m.d.comb += outer.core0.gnt.eq(inner.core0.gnt | early)
    return Tampered(event_unit(), tamper, {("core0", "gnt")})


def _count(bits):
    total = 0
    for bit in bits:
        total = total + bit
    return total


class BarrierHarness(Elaboratable):
    """The barrier releases exactly BARRIER_COUNT cores (0 counts as 1), only once that many
    have arrived, at once when they have, and they read the completed-barrier count.

    ``invariants`` ties the shadow to the unit's registers, for k-induction (checked like
    the other assertions; a broken variant is judged without them)."""

    def __init__(self, block=event_unit, *, invariants=False):
        self.block, self.invariants = block, invariants

    def elaborate(self, platform):
        m = Module()
        dut = self.block()
        internals = Internals(dut, platform) if self.invariants else None
        m.submodules.dut = internals.fragment if internals else dut
        drive_freely(m, dut)
        no_reset(m)
        ports = [getattr(dut, f"core{c}") for c in range(CORES)]
        decoders = [RegisterDecoder(port, _WINDOW_BITS) for port in ports]
        full_word = (1 << WORD_BYTES) - 1

        count = Signal(_BARRIER_COUNT.field("count").width, init=CORES)
        completed = Signal(_BARRIER.field("generation").width)
        for port, decoder in zip(ports, decoders, strict=True):
            # TCDM rule 3: a request waits unchanged for its grant.
            waiting = Signal()
            held = Signal.like(Cat(port.addr, port.we, port.be, port.wdata))
            payload = Cat(port.addr, port.we, port.be, port.wdata)
            m.d.sync += [waiting.eq(port.req & ~port.gnt), held.eq(payload)]
            m.d.comb += Assume(~waiting | (port.req & (payload == held)))
            writing_count = decoder.writes(_BARRIER_COUNT)
            m.d.comb += Assume(~writing_count | (port.be == full_word))
            with m.If(writing_count):
                m.d.sync += count.eq(field_bits(port.wdata, _BARRIER_COUNT.field("count")))

        arrived = Cat(decoder.reads(_BARRIER) for decoder in decoders)
        released = Cat(a & port.gnt for a, port in zip(arrived, ports, strict=True))
        needed = Mux(count == 0, 1, count)
        m.d.comb += [
            Assert(~released.any() | (_count(arrived) >= needed)),
            Assert(~released.any() | (_count(released) == needed)),
            Assert((_count(arrived) < needed) | released.any()),
        ]
        with m.If(released.any()):
            m.d.sync += completed.eq(completed + 1)
        for c, port in enumerate(ports):
            was_released = Signal(name=f"core{c}_released")
            m.d.sync += was_released.eq(released[c])
            m.d.comb += Assert(~was_released | (port.r_valid & (port.r_data == completed)))

        if internals:
            # For k-induction: the unit's count and generation are the shadow's.
            m.d.comb += [Assert(internals["barrier_count"] == count),
                         Assert(internals["generation"] == completed)]

        # Witness: every core released together, core 0 having waited alone before.
        alone = Signal()
        m.d.sync += alone.eq(arrived[0] & ~ports[0].gnt & ~arrived[1:].any())
        m.d.comb += Cover(alone & released.all())
        return m
