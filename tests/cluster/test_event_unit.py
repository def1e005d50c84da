# amaranth: UnusedElaboratable=no
"""The event unit under amaranth.sim: each core is a testbench on its private port."""

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.event_unit import EventUnit

from .bus_master import Blocked, access, encode

CORES = memory_map.CORES
LINES = 16
BASE = memory_map.region("EVENT_UNIT").base
REGISTERS = {r.name: r for r in memory_map.EVENT_UNIT}
ITA = 1 << memory_map.EVENT_LINES["ITA"]
DMA = 1 << memory_map.EVENT_LINES["DMA"]
SW0 = memory_map.EVENT_LINES["SW0"]
#: How long a test accepts a core to stay blocked when it expects no wake-up.
BLOCKED_CYCLES = 30


def address(name):
    return BASE + REGISTERS[name].offset


class Core:
    """One core's view of the event unit; ``cycle`` counts the clock cycles it has seen."""

    def __init__(self, ctx, dut, index):
        self.ctx, self.port, self.index, self.cycle = ctx, dut.port(index), index, 0

    async def read(self, name, timeout=1000):
        try:
            value, waited = await access(self.ctx, self.port, address(name), timeout=timeout)
        except Blocked:
            self.cycle += timeout + 1
            raise
        self.cycle += waited + 1
        return value, waited

    async def write(self, name, value):
        data, waited = await access(self.ctx, self.port, address(name), write=True, data=value)
        assert data == 0 and waited == 0
        self.cycle += 1

    async def idle_until(self, cycle):
        assert cycle >= self.cycle, f"core {self.index} is already at {self.cycle}"
        while self.cycle < cycle:
            await self.ctx.tick()
            self.cycle += 1


def simulate(cores=None, events=(), **kwargs):
    """Run one testbench per core (``cores``: index -> ``async f(core)``) and an event driver
    pulsing ``events``: (cycle, core, lines) for one cycle each."""
    dut = EventUnit(**kwargs)
    lines = kwargs.get("lines", LINES)

    async def drive_events(ctx):
        cycle = 0
        for at in sorted({at for at, _, _ in events}):
            while cycle < at:
                await ctx.tick()
                cycle += 1
            packed = 0
            for when, core, bits in events:
                if when == at:
                    packed |= bits << (core * lines)
            ctx.set(dut.events.as_value(), packed)
            await ctx.tick()
            cycle += 1
            ctx.set(dut.events.as_value(), 0)

    def bench(index, body):
        async def run(ctx):
            await body(Core(ctx, dut, index))
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive_events)
    for index, body in (cores or {}).items():
        sim.add_testbench(bench(index, body))
    sim.run()


def test_core_id_and_reset_values():
    seen = {}

    def body(core):
        async def run(c):
            seen[core] = [(await c.read(name))[0]
                          for name in ("CORE_ID", "BARRIER_COUNT", "EVT_MASK", "EVT_PENDING")]
        return run

    simulate({core: body(core) for core in range(CORES)})
    assert seen == {core: [core, CORES, 0, 0] for core in range(CORES)}


def test_barrier_all_cores_random_arrival_two_rounds():
    rng = random.Random(7)
    rounds = 3
    arrivals = {}   # (round, core) -> arrival cycle
    grants = {}     # (round, core) -> (grant cycle, generation read)

    def body(core):
        async def run(c):
            for round_ in range(rounds):
                await c.idle_until(c.cycle + rng.randrange(20))
                arrivals[round_, core] = c.cycle
                generation, _ = await c.read("BARRIER")
                grants[round_, core] = (c.cycle - 1, generation)
        return run

    simulate({core: body(core) for core in range(CORES)})
    for round_ in range(rounds):
        last = max(arrivals[round_, core] for core in range(CORES))
        # Released together, in the cycle the last core arrived, each reading the generation.
        assert {grants[round_, core] for core in range(CORES)} == {(last, round_ + 1)}


def test_barrier_count_below_cores():
    count = 3
    grants = {}

    def body(core, arrivals):
        async def run(c):
            if core == 0:
                await c.write("BARRIER_COUNT", encode(REGISTERS["BARRIER_COUNT"], count=count))
                assert (await c.read("BARRIER_COUNT"))[0] == count
            for round_, at in arrivals:
                await c.idle_until(at)
                generation, _ = await c.read("BARRIER")
                grants[core, round_] = (c.cycle - 1, generation)
        return run

    # Round 1: three staggered cores. Round 2: four arrive together; the lowest three pass and
    # core 7 waits for round 3 with cores 0 and 1.
    plan = {1: [(1, 5)], 2: [(1, 9)], 3: [(1, 12)], 4: [(2, 20)], 5: [(2, 20)], 6: [(2, 20)],
            7: [(2, 20)], 0: [(3, 30)]}
    plan[1].append((3, 34))
    simulate({core: body(core, arrivals) for core, arrivals in plan.items()})
    assert grants == {
        (1, 1): (12, 1), (2, 1): (12, 1), (3, 1): (12, 1),
        (4, 2): (20, 2), (5, 2): (20, 2), (6, 2): (20, 2),
        (7, 2): (34, 3), (0, 3): (34, 3), (1, 3): (34, 3),
    }


def test_event_wait_blocks_until_ita_event():
    ita_at, dma_at = 40, 15
    results = {}

    def waiter(mask):
        async def run(c):
            await c.write("EVT_MASK", mask)
            assert (await c.read("EVT_MASK"))[0] == mask
            start = c.cycle
            events, waited = await c.read("EVT_WAIT")
            results[c.index] = (start, waited, events, (await c.read("EVT_PENDING"))[0])
        return run

    simulate({2: waiter(ITA), 5: waiter(DMA)},
             events=[(dma_at, 2, DMA), (dma_at, 5, DMA), (ita_at, 3, ITA), (ita_at, 2, ITA)])
    # Core 2 ignores its DMA event (not enabled) and core 3's ITA event; it is granted in the
    # cycle after its ITA pulse, without any grant before; the DMA bit stays pending.
    start, waited, events, pending = results[2]
    assert start + waited == ita_at + 1 and events == ITA and pending == DMA
    start, waited, events, pending = results[5]
    assert start + waited == dma_at + 1 and events == DMA and pending == 0


def test_pending_is_sticky_and_mask_selects():
    log = []

    async def core1(c):
        await c.idle_until(10)
        log.append((await c.read("EVT_PENDING"))[0])
        log.append((await c.read("EVT_PENDING"))[0])      # reading does not clear
        await c.write("EVT_MASK", ITA | DMA)
        events, waited = await c.read("EVT_WAIT")         # already pending: no wait
        log.append((events, waited))
        log.append((await c.read("EVT_PENDING"))[0])
        await c.write("EVT_MASK", DMA)
        with pytest.raises(Blocked):                      # the pending SW event is not enabled
            await c.read("EVT_WAIT", timeout=BLOCKED_CYCLES)

    async def core4(c):
        await c.idle_until(5)
        await c.write("SW_EVENT", encode(REGISTERS["SW_EVENT"], event=0, cores=1 << 1))

    simulate({1: core1, 4: core4}, events=[(2, 1, ITA), (3, 1, DMA), (12, 1, ITA)])
    sw0 = 1 << SW0
    assert log == [ITA | DMA | sw0, ITA | DMA | sw0, (ITA | DMA, 0), sw0]


def test_event_in_grant_cycle_stays_pending():
    log = []

    async def core3(c):
        await c.write("EVT_MASK", ITA)        # cycle 0
        log.append(await c.read("EVT_WAIT"))  # cycle 1: granted, while ITA pulses again
        log.append((await c.read("EVT_PENDING"))[0])

    simulate({3: core3}, events=[(0, 3, ITA), (1, 3, ITA)])
    assert log == [(ITA, 0), ITA]


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        EventUnit(cores=CORES + 1)
    with pytest.raises(ValueError):
        EventUnit(lines=SW0)


def test_sw_event_wakes_the_cores_in_the_mask():
    event = 3
    line = 1 << (SW0 + event)
    targets = (5, 7)
    results = {}

    def waiter(c_index):
        async def run(c):
            await c.write("EVT_MASK", line)
            timeout = 100 if c_index in targets else BLOCKED_CYCLES
            try:
                results[c_index] = await c.read("EVT_WAIT", timeout=timeout)
            except Blocked:
                results[c_index] = None
        return run

    async def sender(c):
        await c.idle_until(12)
        mask = sum(1 << t for t in targets)
        await c.write("SW_EVENT", encode(REGISTERS["SW_EVENT"], event=event, cores=mask))

    benches = {core: waiter(core) for core in (4, 5, 6, 7)}
    benches[0] = sender
    simulate(benches)
    # Cores 5 and 7 wake in the cycle after the write (waiting from cycle 1, released at 13).
    assert results == {4: None, 5: (line, 12), 6: None, 7: (line, 12)}


@pytest.mark.parametrize("cores, lines", [(1, LINES), (4, SW0 + 1), (CORES, LINES)])
def test_converts_to_verilog(cores, lines):
    dut = EventUnit(cores=cores, lines=lines)
    text = verilog.convert(dut, name="event_unit", emit_src=False)
    assert "module event_unit" in text and f"core{cores - 1}__gnt" in text
