"""Properties of the HWPE control slave, stated over its register port and engine side.

:class:`ControlHarness` drives a :class:`~cluster_integration.hwpe.control.ControlSlave`
with a free bus (any core, address, data, every cycle) and a free engine (``finish`` at any
time) and follows the port traffic with a small shadow model of the software contract in
``docs/ita_hwpe_registers.md``: who holds the programming lock (learnt from ACQUIRE answers),
how many committed jobs wait, how many of them are triggered. The properties compare the
slave's outputs with that shadow; none reads the slave's internal state.
"""

from amaranth import Const, Elaboratable, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from cluster_integration.hwpe import regmap
from cluster_integration.hwpe.control import (
    ACQUIRE_FULL,
    ACQUIRE_LOCKED,
    CLEAR_REGISTERS,
    TRIGGER_AND_RUN,
    ControlSlave,
)
from cluster_integration.registers import WORD_BITS, RegisterDecoder, field_bits, window_bits
from formal.harness import CORES, ID_WIDTH, Internals, Tampered, drive_freely, no_reset
from ita.config import ITAConfig

__all__ = ["CONFIG", "START_LATENCY", "ControlHarness", "slave", "starts_twice",
           "ignores_clear_while_busy", "drops_core_id"]

#: The smallest slave that still queues: two contexts (and the harness's two cores).
CONFIG = ITAConfig(N=2, M=4, contexts=2)
#: Idle cycles a triggered job may wait for ``start`` while the engine is free: the trigger
#: (or the previous finish) is registered, then ``start`` is.
START_LATENCY = 1

_TRIGGER = regmap.register("TRIGGER")
_ACQUIRE = regmap.register("ACQUIRE")
_STATUS = regmap.register("STATUS")
_SOFT_CLEAR = regmap.register("SOFT_CLEAR")
_WORD = (1 << WORD_BITS) - 1
_COUNT_BITS = 4  # shadow counters: wide enough that a broken slave cannot wrap them


def slave():
    """The block as the cluster builds it, at the harness size."""
    return ControlSlave(config=CONFIG, cores=CORES, id_width=ID_WIDTH)


def starts_twice():
    """Broken: every ``start`` pulse is repeated in the next cycle."""
    def tamper(m, outer, inner):
        again = Signal()
        m.d.sync += again.eq(inner.start)
        m.d.comb += outer.start.eq(inner.start | again)
    return Tampered(slave(), tamper, {("start",)})


def ignores_clear_while_busy():
    """Broken: a SOFT_CLEAR write reaches the slave as a read while the engine runs."""
    def tamper(m, outer, inner):
        clearing = RegisterDecoder(outer.periph, window_bits(regmap.REGISTERS)).writes(
            _SOFT_CLEAR)
        m.d.comb += inner.periph.we.eq(outer.periph.we & ~(clearing & inner.busy))
    return Tampered(slave(), tamper, {("periph", "we")})


def drops_core_id():
    """Broken: the bus in front loses the core id, so every core looks like core 0."""
    def tamper(m, outer, inner):
        m.d.comb += inner.periph.id.eq(0)
    return Tampered(slave(), tamper, {("periph", "id")})


class ControlHarness(Elaboratable):
    """A slave with a free bus and engine, the shadow model, and one property's checks.

    ``prop`` names the property (:data:`PROPERTIES`); ``block`` builds the slave or a
    broken variant with the same ports. ``invariants`` adds assertions that tie the shadow
    to the slave's internal registers, which k-induction needs to close (they are checked
    like the others; a broken variant is judged without them).
    """

    PROPERTIES = ("start_once", "soft_clear", "lock_exclusive")

    def __init__(self, prop, block=slave, *, invariants=False):
        if prop not in self.PROPERTIES:
            raise ValueError(f"unknown control property {prop!r}")
        self.prop, self.block, self.invariants = prop, block, invariants

    def elaborate(self, platform):
        m = Module()
        dut = self.block()
        internals = Internals(dut, platform) if self.invariants else None
        m.submodules.dut = internals.fragment if internals else dut
        bus = dut.periph
        drive_freely(m, dut)
        no_reset(m)
        m.d.comb += Assume(bus.id < CORES)
        decoder = RegisterDecoder(bus, window_bits(regmap.REGISTERS))

        # The lock as the answers show it: an ACQUIRE answered with a job id grants it.
        asked = Signal()         # the previous cycle read ACQUIRE ...
        asker = Signal.like(bus.id)   # ... for this core
        m.d.sync += [asked.eq(decoder.reads(_ACQUIRE)), asker.eq(bus.id)]
        refusals = (ACQUIRE_FULL & _WORD, ACQUIRE_LOCKED & _WORD)
        granted = Signal()
        m.d.comb += granted.eq(asked & bus.r_valid
                               & (bus.r_data != refusals[0]) & (bus.r_data != refusals[1]))
        held, holder = Signal(name="shadow_held"), Signal.like(bus.id, name="shadow_holder")
        held_now = granted | held
        holder_now = Mux(granted, asker, holder)

        # Jobs: committed by the lock holder's TRIGGER write, triggered by a RUN write.
        clearing = decoder.writes(_SOFT_CLEAR)
        committing = decoder.writes(_TRIGGER) & held_now & (bus.id == holder_now)
        running_all = committing & (bus.wdata == TRIGGER_AND_RUN)
        waiting = Signal(_COUNT_BITS)   # committed, not started
        armed = Signal(_COUNT_BITS)     # ... and triggered
        with m.If(clearing):
            m.d.sync += [held.eq(0), waiting.eq(0), armed.eq(0)]
        with m.Else():
            m.d.sync += [held.eq(held_now & ~committing), holder.eq(holder_now),
                         waiting.eq(waiting + committing - dut.start),
                         armed.eq(Mux(running_all, waiting + 1, armed) - dut.start)]

        if internals:
            self._invariants(m, internals, dut, held_now, holder_now, waiting, armed)

        if self.prop == "start_once":
            # At most once: every start consumes a triggered job. At least once: a triggered
            # job waits at most START_LATENCY idle cycles.
            stalled = Signal(range(START_LATENCY + 2))
            idle = (armed != 0) & ~dut.busy & ~dut.start
            m.d.sync += stalled.eq(Mux(idle & ~clearing, stalled + (stalled <= START_LATENCY),
                                       0))
            m.d.comb += [Assert(~dut.start | (armed != 0)),
                         Assert(stalled <= START_LATENCY),
                         Cover(dut.start & (waiting > 1))]

        if self.prop == "soft_clear":
            # After a clear and until the next commit: no job runs, starts or ends, STATUS
            # reads idle, ACQUIRE is not refused for lack of a context.
            fresh = Signal()
            m.d.sync += fresh.eq(clearing | (fresh & ~committing))
            status_asked, acquire_asked = Signal(), Signal()
            m.d.sync += [status_asked.eq(fresh & decoder.reads(_STATUS)),
                         acquire_asked.eq(fresh & decoder.reads(_ACQUIRE))]
            status = bus.r_data
            m.d.comb += [
                Assert(~fresh | ~(dut.busy | dut.start | dut.events.any())),
                Assert(~status_asked | ((field_bits(status, _STATUS.field("contexts")) == 0)
                                        & (field_bits(status, _STATUS.field("running")) == 0))),
                Assert(~acquire_asked | (bus.r_data != refusals[0])),
            ]
            if internals:
                m.d.comb += Assert(~fresh | ((waiting == 0) & (armed == 0)))
            # Witness: a clear that keeps the registers aborts a running job with another
            # one queued, and STATUS is then read.
            aborted = Signal()
            m.d.sync += aborted.eq((clearing & dut.busy & (waiting != 0)
                                    & (bus.wdata != CLEAR_REGISTERS)) | (aborted & fresh))
            m.d.comb += Cover(aborted & status_asked)

        if self.prop == "lock_exclusive":
            # An ACQUIRE never hands out the lock while another core holds it.
            m.d.comb += [Assert(~(granted & held & (holder != asker))),
                         Cover(asked & bus.r_valid & held & (holder != asker))]
        return m

    @staticmethod
    def _invariants(m, internals, dut, held_now, holder_now, waiting, armed):
        """The slave's lock is the shadow's and guards a free context; its committed and
        triggered contexts are the shadow's jobs plus the running one; the queue runs from
        ``running`` in order and ``pointer`` is the first free context after it."""
        contexts = CONFIG.contexts
        lock_held, lock_owner = internals["lock_held"], internals["lock_owner"]
        committed, triggered = internals["committed"], internals["triggered"]
        pointer, running = internals["pointer"], internals["running"]

        def popcount(bits):
            return sum((bits[i] for i in range(len(bits))), start=Const(0, _COUNT_BITS))

        def context(offset):
            ahead = running + offset
            return Mux(ahead >= contexts, ahead - contexts, ahead).as_unsigned()[:len(running)]

        # A job counts in the shadow until the cycle after its ``start`` (when busy rises).
        active = dut.busy & ~dut.start
        queued = popcount(committed)
        m.d.comb += [
            Assert(lock_held == held_now),
            Assert(~lock_held | (lock_owner == holder_now)),
            Assert(~lock_held | ~committed.bit_select(pointer, 1)),
            Assert(queued == waiting + active),
            Assert(popcount(triggered) == armed + active),
            Assert((triggered & ~committed) == 0),
            Assert(~dut.start | dut.busy),
            Assert(pointer == context(Mux(queued == contexts, 0, queued))),
        ]
        # Queued jobs occupy the contexts from ``running`` on; triggered ones come first.
        for offset in range(contexts):
            here = context(offset)
            m.d.comb += [
                Assert(committed.bit_select(here, 1) == (queued > offset)),
                Assert(triggered.bit_select(here, 1) == (armed + active > offset)),
            ]
