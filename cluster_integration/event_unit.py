"""The cluster event unit: core ids, the hardware barrier and per-core event sleeping.

Cores synchronise without polling (``memory_map`` module docstring): a load from BARRIER or
EVT_WAIT is simply not granted until the barrier completes or an enabled event is pending, so
the core sits in its load-store unit with the request held and makes no bus traffic. This is
the effect of PULP's ``p.elw`` on the event unit (``cluster-protocols.md`` section 6) with the
register map of :data:`cluster_integration.memory_map.EVENT_UNIT`.
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from cluster_integration import memory_map
from cluster_integration.hwpe.regmap import WORD_BYTES
from cluster_integration.protocols import TcdmSignature

__all__ = ["EventUnit"]

_WORD_BITS = 32
_BYTE_BITS = 8
_BYTE_OFFSET_BITS = (WORD_BYTES - 1).bit_length()
#: Word-index bits decoded: the EU region, so the register window repeats above it.
_WINDOW_BITS = (memory_map.region("EVENT_UNIT").size // WORD_BYTES - 1).bit_length()

_REGISTERS = {r.name: r for r in memory_map.EVENT_UNIT}
_CORE_ID = _REGISTERS["CORE_ID"]
_BARRIER = _REGISTERS["BARRIER"]
_BARRIER_COUNT = _REGISTERS["BARRIER_COUNT"]
_EVT_MASK = _REGISTERS["EVT_MASK"]
_EVT_WAIT = _REGISTERS["EVT_WAIT"]
_EVT_PENDING = _REGISTERS["EVT_PENDING"]
_SW_EVENT = _REGISTERS["SW_EVENT"]


def _field(register, name):
    return next(f for f in register.fields if f.name == name)


_ID = _field(_CORE_ID, "id")
_GENERATION = _field(_BARRIER, "generation")
_COUNT = _field(_BARRIER_COUNT, "count")
_MASK = _field(_EVT_MASK, "mask")
_WAITED = _field(_EVT_WAIT, "events")
_PENDING = _field(_EVT_PENDING, "events")
_SW_EVENT_INDEX = _field(_SW_EVENT, "event")
_SW_EVENT_CORES = _field(_SW_EVENT, "cores")
_SW0 = memory_map.EVENT_LINES["SW0"]


def _slice(value, field):
    return value[field.lsb:field.lsb + field.width]


def _word_index(register):
    return register.offset // WORD_BYTES


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
        members = {f"core{c}": In(TcdmSignature(data_width=_WORD_BITS)) for c in range(cores)}
        members["events"] = In(data.ArrayLayout(unsigned(lines), cores))
        super().__init__(members)

    def port(self, core):
        return getattr(self, f"core{core}")

    def elaborate(self, platform):
        m = Module()
        cores, lines = self._cores, self._lines
        ports = [self.port(c) for c in range(cores)]

        barrier_count = Signal(_COUNT.width, init=cores)
        generation = Signal(_GENERATION.width)
        masks = [Signal(lines, name=f"core{c}_mask") for c in range(cores)]
        pending = [Signal(lines, name=f"core{c}_pending") for c in range(cores)]

        def selected(port, register):
            word = port.addr[_BYTE_OFFSET_BITS:_BYTE_OFFSET_BITS + _WINDOW_BITS]
            return word == _word_index(register)

        def reading(port, register):
            return port.req & ~port.we & selected(port, register)

        def writing(port, register):
            return port.req & port.we & selected(port, register)

        def byte_mask(port):
            return Cat(bit.replicate(_BYTE_BITS) for bit in port.be)

        def merged(port, stored, field):
            """``stored`` with the bytes of ``field`` that ``port`` writes replaced."""
            mask = _slice(byte_mask(port), field)
            return (stored & ~mask) | (_slice(port.wdata, field) & mask)

        # Barrier: the cores holding a BARRIER load have arrived; release the first `needed`.
        arrived = Cat(reading(port, _BARRIER) for port in ports)
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
        for port in ports:
            line = (Const(1 << _SW0, lines) << _slice(port.wdata, _SW_EVENT_INDEX))[:lines]
            targets = _slice(port.wdata, _SW_EVENT_CORES)
            raising = writing(port, _SW_EVENT)
            raised = [r | Mux(raising & targets[c], line, 0) for c, r in enumerate(raised)]

        for c, port in enumerate(ports):
            enabled = pending[c] & masks[c]
            waking = reading(port, _EVT_WAIT) & enabled.any()
            blocked = reading(port, _BARRIER) | reading(port, _EVT_WAIT)
            granted = Signal(name=f"core{c}_granted")
            m.d.comb += [
                granted.eq((port.req & ~blocked) | (released[c] & complete) | waking),
                port.gnt.eq(granted),
            ]
            cleared = Mux(waking, enabled, 0)
            m.d.sync += pending[c].eq((pending[c] & ~cleared) | self.events[c] | raised[c])
            with m.If(writing(port, _EVT_MASK)):
                m.d.sync += masks[c].eq(merged(port, masks[c], _MASK))

            read_value = Signal(_WORD_BITS, name=f"core{c}_read_value")
            with m.If(selected(port, _CORE_ID)):
                m.d.comb += _slice(read_value, _ID).eq(c)
            with m.If(selected(port, _BARRIER)):
                m.d.comb += _slice(read_value, _GENERATION).eq(generation + 1)
            with m.If(selected(port, _BARRIER_COUNT)):
                m.d.comb += _slice(read_value, _COUNT).eq(barrier_count)
            with m.If(selected(port, _EVT_MASK)):
                m.d.comb += _slice(read_value, _MASK).eq(masks[c])
            with m.If(selected(port, _EVT_WAIT)):
                m.d.comb += _slice(read_value, _WAITED).eq(enabled)
            with m.If(selected(port, _EVT_PENDING)):
                m.d.comb += _slice(read_value, _PENDING).eq(pending[c])
            m.d.sync += [port.r_valid.eq(granted),
                         port.r_data.eq(Mux(granted & ~port.we, read_value, 0))]

        # BARRIER_COUNT is shared: the highest-numbered writer in a cycle wins.
        for port in ports:
            with m.If(writing(port, _BARRIER_COUNT)):
                m.d.sync += barrier_count.eq(merged(port, barrier_count, _COUNT))
        return m
