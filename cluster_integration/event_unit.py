"""The cluster event unit: core ids, the hardware barrier and per-core event sleeping.

Cores synchronise without polling (``memory_map`` module docstring): a load from BARRIER or
EVT_WAIT is simply not granted until the barrier completes or an enabled event is pending, so
the core sits in its load-store unit with the request held and makes no bus traffic. This is
the effect of PULP's ``p.elw`` on its event unit, with the register map of
:data:`cluster_integration.memory_map.EVENT_UNIT`.
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from cluster_integration import memory_map
from cluster_integration.protocols import TcdmSignature
from cluster_integration.registers import (
    WORD_BITS,
    RegisterDecoder,
    field_bits,
    read_mux,
    region_window_bits,
)

__all__ = ["EventUnit"]

#: Word-index bits decoded: the EU region, so the register window repeats above it.
_WINDOW_BITS = region_window_bits(memory_map.region("EVENT_UNIT").size)

_REGISTERS = {r.name: r for r in memory_map.EVENT_UNIT}
_CORE_ID = _REGISTERS["CORE_ID"]
_BARRIER = _REGISTERS["BARRIER"]
_BARRIER_COUNT = _REGISTERS["BARRIER_COUNT"]
_EVT_MASK = _REGISTERS["EVT_MASK"]
_EVT_WAIT = _REGISTERS["EVT_WAIT"]
_EVT_PENDING = _REGISTERS["EVT_PENDING"]
_SW_EVENT = _REGISTERS["SW_EVENT"]

_ID = _CORE_ID.field("id")
_GENERATION = _BARRIER.field("generation")
_COUNT = _BARRIER_COUNT.field("count")
_MASK = _EVT_MASK.field("mask")
_WAITED = _EVT_WAIT.field("events")
_PENDING = _EVT_PENDING.field("events")
_SW_EVENT_INDEX = _SW_EVENT.field("event")
_SW_EVENT_CORES = _SW_EVENT.field("cores")
_SW0 = memory_map.EVENT_LINES["SW0"]


class EventUnit(wiring.Component):
    """Per-core event buffers and masks plus one hardware barrier shared by all cores.

    Each core has a private register port ``core<n>`` (the cluster decoder routes a core's
    accesses to the EU region there), so "the reading core" needs no id. Only the word-index
    bits of the EU region are decoded. Accesses are granted in their own cycle and answered
    one cycle later (reads and writes alike; ``r_data`` is 0 for writes), except two loads:

    * BARRIER is granted once ``BARRIER_COUNT`` cores hold a BARRIER load: those cores are
      granted together (when more are waiting than needed, the lowest-numbered ones; the others
      stay for the next round) and read the number of completed barriers including this one.
      Arrival is the held request itself, so the barrier re-arms by itself after a release.
      A count of 0 behaves like 1; a count above ``cores`` never releases.
    * EVT_WAIT is granted once ``pending & EVT_MASK`` is non-zero; it returns those bits and
      clears them at the grant (an event arriving in the same cycle stays pending).

    ``events`` are pulses, one vector per core; they and SW_EVENT writes set sticky pending
    bits, visible to EVT_WAIT from the next cycle. Register writes honour ``be``.

    Parameters
    ----------
    cores:
        Cores, each with a port and an event vector (at most the SW_EVENT core mask width).
    lines:
        Event lines per core: at least up to the first software event, at most the EVT_MASK
        width. Software events beyond ``lines`` are dropped.
    """

    def __init__(self, *, cores=memory_map.CORES, lines=16):
        named_lines = max(memory_map.EVENT_LINES.values()) + 1
        if not isinstance(cores, int) or not 1 <= cores <= _SW_EVENT_CORES.width:
            raise ValueError(f"cores must be 1..{_SW_EVENT_CORES.width}, not {cores!r}")
        if not isinstance(lines, int) or not named_lines <= lines <= _MASK.width:
            raise ValueError(f"lines must be {named_lines}..{_MASK.width}, not {lines!r}")
        self._cores, self._lines = cores, lines
        members = {f"core{c}": In(TcdmSignature(data_width=WORD_BITS)) for c in range(cores)}
        members["events"] = In(data.ArrayLayout(unsigned(lines), cores))
        super().__init__(members)

    def port(self, core):
        return getattr(self, f"core{core}")

    def elaborate(self, platform):
        m = Module()
        cores, lines = self._cores, self._lines
        ports = [self.port(c) for c in range(cores)]
        decoders = [RegisterDecoder(port, _WINDOW_BITS) for port in ports]

        barrier_count = Signal(_COUNT.width, init=cores)
        generation = Signal(_GENERATION.width)
        masks = [Signal(lines, name=f"core{c}_mask") for c in range(cores)]
        pending = [Signal(lines, name=f"core{c}_pending") for c in range(cores)]

        # Barrier: the cores holding a BARRIER load have arrived; release the first `needed`.
        arrived = Cat(decoder.reads(_BARRIER) for decoder in decoders)
        needed = Mux(barrier_count == 0, 1, barrier_count)
        released = Signal(cores)
        ahead = Const(0, range(cores + 1))     # arrived cores with a lower index
        for c in range(cores):
            m.d.comb += released[c].eq(arrived[c] & (ahead < needed))
            ahead = ahead + arrived[c]
        complete = ahead >= needed
        with m.If(complete):
            m.d.sync += generation.eq(generation + 1)

        # Software events raised this cycle, per target core.
        raised = [Const(0, lines)] * cores
        for port, decoder in zip(ports, decoders, strict=True):
            line = (Const(1 << _SW0, lines) << field_bits(port.wdata, _SW_EVENT_INDEX))[:lines]
            targets = field_bits(port.wdata, _SW_EVENT_CORES)
            raising = decoder.writes(_SW_EVENT)
            raised = [r | Mux(raising & targets[c], line, 0) for c, r in enumerate(raised)]

        for c, (port, decoder) in enumerate(zip(ports, decoders, strict=True)):
            enabled = pending[c] & masks[c]
            waking = decoder.reads(_EVT_WAIT) & enabled.any()
            blocked = decoder.reads(_BARRIER) | decoder.reads(_EVT_WAIT)
            granted = Signal(name=f"core{c}_granted")
            m.d.comb += [
                granted.eq((port.req & ~blocked) | (released[c] & complete) | waking),
                port.gnt.eq(granted),
            ]
            cleared = Mux(waking, enabled, 0)
            m.d.sync += pending[c].eq((pending[c] & ~cleared) | self.events[c] | raised[c])
            with m.If(decoder.writes(_EVT_MASK)):
                m.d.sync += masks[c].eq(decoder.merged(masks[c], _MASK))

            read_value = read_mux(m, decoder.word, {
                _CORE_ID: {_ID: c},
                _BARRIER: {_GENERATION: generation + 1},
                _BARRIER_COUNT: {_COUNT: barrier_count},
                _EVT_MASK: {_MASK: masks[c]},
                _EVT_WAIT: {_WAITED: enabled},
                _EVT_PENDING: {_PENDING: pending[c]},
            }, name=f"core{c}_read_value")
            m.d.sync += [port.r_valid.eq(granted),
                         port.r_data.eq(Mux(granted & ~port.we, read_value, 0))]

        # BARRIER_COUNT is shared: the highest-numbered writer in a cycle wins.
        for decoder in decoders:
            with m.If(decoder.writes(_BARRIER_COUNT)):
                m.d.sync += barrier_count.eq(decoder.merged(barrier_count, _COUNT))
        return m
