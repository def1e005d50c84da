# amaranth: UnusedElaboratable=no
"""The DMA under amaranth.sim against Python memory models that stall their grants at random,
at the word width of the old DMA and at the default cluster's beat width."""

import random
from dataclasses import dataclass, replace

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.dma import READ_AHEAD, Dma
from cluster_integration.hwpe.regmap import WORD_BYTES
from ita.cluster_config import DEFAULT as CLUSTER

from .bus_master import WORD_MASK, access

L1 = CLUSTER.region("L1")
L2 = CLUSTER.region("L2")
REGISTERS = {r.name: r for r in memory_map.DMA}
CORES = CLUSTER.cores
#: Beat widths under test: one word (the old DMA) and the default cluster's.
WIDTHS = (32, CLUSTER.dma_width)
#: Cycles from the START grant to the first read, and from the last write to the event.
OVERHEAD_CYCLES = 6


@dataclass(frozen=True)
class Transfer:
    src: int
    dst: int
    length: int
    rows: int = 1
    src_stride: int = 0
    dst_stride: int = 0
    core: int = 0

    def words(self):
        """(source, destination) byte address pairs, in copy order."""
        for row in range(self.rows):
            for offset in range(0, self.length, WORD_BYTES):
                yield ((self.src + row * self.src_stride + offset) & WORD_MASK,
                       (self.dst + row * self.dst_stride + offset) & WORD_MASK)


class Memory:
    """A word memory on one master port of the DMA. Only words that exist can be read, so a
    read outside the transfer's source fails; ``reads`` and ``writes`` record the words
    accessed (those with byte enables, in lane order) and ``last_write`` the cycle of the last
    write grant."""

    def __init__(self, region):
        self.region, self.words, self.reads, self.writes = region, {}, [], []
        self.last_write = None

    async def serve(self, ctx, port, rng, stall):
        """Grant at random, answer reads one cycle after the grant (``r_valid`` also pulses
        after writes, with garbage data), and check that ungranted requests stay unchanged."""
        held, cycle = None, -1
        while True:
            cycle += 1
            granting = rng.random() >= stall
            ctx.set(port.gnt, granting)
            _, _, req, addr, we, wdata, be = await ctx.tick().sample(
                port.req, port.addr, port.we, port.wdata, port.be)
            request = (addr, we, wdata if we else None, be) if req else None
            if held is not None:
                assert request == held, f"request {held} changed to {request} before its grant"
            held = request if req and not granting else None
            lanes = len(port.be) // WORD_BYTES
            ctx.set(port.r_valid, req and granting)
            ctx.set(port.r_data, rng.getrandbits(32 * lanes))
            if not (req and granting):
                continue
            assert addr % WORD_BYTES == 0, hex(addr)
            enabled = [be >> (WORD_BYTES * k) & 0xF for k in range(lanes)]
            assert all(e in (0, 0xF) for e in enabled), f"partial word in be={be:#x}"
            count = enabled.count(0xF)
            assert count and enabled == [0xF] * count + [0] * (lanes - count), hex(be)
            words = [(addr + WORD_BYTES * k) & WORD_MASK for k in range(count)]
            assert all(self.region.contains(w) for w in words), hex(addr)
            if we:
                for k, word in enumerate(words):
                    self.words[word] = wdata >> (32 * k) & WORD_MASK
                self.writes.extend(words)
                self.last_write = cycle
            else:
                ctx.set(port.r_data, sum(self.words[w] << (32 * k) for k, w in enumerate(words)))
                self.reads.extend(words)


class Harness:
    def __init__(self, ctx, dut, memories):
        self.ctx, self.dut, self.memories = ctx, dut, memories
        self.cycle = 0   # cycles this testbench has seen, as the monitor counts them

    async def access(self, name, *, core=0, write=False, data=0, be=0xF, timeout=1000):
        value, waited = await access(self.ctx, self.dut.regs, REGISTERS[name].offset,
                                     write=write, data=data, be=be, id=core, timeout=timeout)
        self.cycle += waited + 1
        return value, waited

    async def read(self, name, *, core=0):
        return (await self.access(name, core=core))[0]

    async def start(self, transfer):
        """Program and queue ``transfer``; returns the cycles the START waited for its grant."""
        for name in ("SRC", "DST", "LENGTH", "ROWS", "SRC_STRIDE", "DST_STRIDE"):
            await self.access(name, core=transfer.core, write=True,
                              data=getattr(transfer, name.lower()))
        return (await self.access("START", core=transfer.core, write=True))[1]

    async def idle(self, cycles):
        for _ in range(cycles):
            await self.ctx.tick()
            self.cycle += 1

    async def wait_idle(self, timeout=5000):
        while self.ctx.get(self.dut.busy):
            assert timeout, "the DMA never finished"
            timeout -= 1
            await self.idle(1)
        await self.idle(1)   # let the monitor see the cycle of the last event

    def fill(self, transfer, rng):
        for src, _ in transfer.words():
            self.memory(src).words[src] = rng.getrandbits(32)

    def memory(self, address):
        return next(m for m in self.memories if m.region.contains(address))


def simulate(body, *, stalls=(0.0, 0.0), seed=1, **kwargs):
    """Run ``body(harness)`` with grant-stall probabilities ``stalls`` for (L1, L2); returns
    the log of (cycle, events) pulses and the busy trace, and the two memories."""
    dut = Dma(**{"l1_region": L1, "l2_region": L2, "window": CLUSTER.region("DMA").size,
                 **kwargs})
    rng = random.Random(seed)
    l1, l2 = Memory(L1), Memory(L2)
    log = {"events": [], "busy": []}

    async def monitor(ctx):
        cycle = 0
        async for _, _, events, busy in ctx.tick().sample(dut.events, dut.busy):
            if events:
                log["events"].append((cycle, events))
            log["busy"].append(busy)
            cycle += 1

    async def bench(ctx):
        await body(Harness(ctx, dut, (l1, l2)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    for memory, port, stall in ((l1, dut.l1, stalls[0]), (l2, dut.l2, stalls[1])):
        async def serve(ctx, memory=memory, port=port, stall=stall):
            await memory.serve(ctx, port, random.Random(rng.random()), stall)
        sim.add_testbench(serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    return log, l1, l2


def expected_after(transfers, initial):
    """Memory contents after ``transfers`` in order, from ``initial`` {address: word}."""
    words = dict(initial)
    for transfer in transfers:
        for src, dst in transfer.words():
            words[dst] = words[src]
    return words


def contents(*memories):
    return {address: word for m in memories for address, word in m.words.items()}


ROW_BYTES = 24
COPIES = {
    "l2_to_l1_1d": Transfer(L2.base + 0x100, L1.base + 0x40, 64 * WORD_BYTES),
    "l2_to_l1_2d": Transfer(L2.base + 0x2000, L1.base + 0x800, ROW_BYTES, rows=5,
                            src_stride=0x100, dst_stride=ROW_BYTES + 8),
    "l1_to_l2_1d": Transfer(L1.base + 0x1000, L2.base + 0x8000, 48 * WORD_BYTES),
    "l1_to_l2_2d": Transfer(L1.base + 0x1000, L2.base + 0x8000, ROW_BYTES, rows=6,
                            src_stride=ROW_BYTES, dst_stride=0x40),
    "l1_to_l1_2d": Transfer(L1.base + 0x100, L1.base + 0x4000, ROW_BYTES, rows=4,
                            src_stride=0x80, dst_stride=ROW_BYTES),
    "l2_to_l2_1d": Transfer(L2.base, L2.base + 0x1_0000, 40 * WORD_BYTES),
    "negative_stride": Transfer(L2.base + 0x1000, L1.base, ROW_BYTES, rows=3,
                                src_stride=-0x100 & WORD_MASK, dst_stride=ROW_BYTES),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", COPIES)
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_copy(name, stall, width):
    core = 5
    transfer = replace(COPIES[name], core=core)
    outcome = {}

    async def body(h):
        h.fill(transfer, random.Random(name))
        initial = contents(*h.memories)
        await h.start(transfer)
        assert await h.read("STATUS") == 1
        await h.wait_idle()
        await h.idle(1)
        outcome["expected"] = expected_after([transfer], initial)
        outcome["status"] = await h.read("STATUS")

    log, l1, l2 = simulate(body, stalls=(stall, stall), seed=sorted(COPIES).index(name),
                           width=width)
    assert contents(l1, l2) == outcome["expected"]
    assert l1.writes + l2.writes == [dst for _, dst in transfer.words()]
    assert outcome["status"] == 0
    # One pulse, on the starting core's line, two cycles after the last write.
    last_write = max(m.last_write for m in (l1, l2) if m.last_write is not None)
    assert log["events"] == [(last_write + 2, 1 << core)]


def test_queue_status_events_and_full_queue():
    """Three transfers fill the engine and the two-deep queue; a fourth START waits for a slot.
    Events come in order on the starting cores' lines, each when its transfer is done."""
    transfers = [
        Transfer(L2.base, L1.base, 32 * WORD_BYTES, core=2),
        Transfer(L1.base + 0x800, L2.base + 0x4000, ROW_BYTES, rows=3,
                 src_stride=0x40, dst_stride=0x40, core=6),
        Transfer(L2.base + 0x1000, L1.base + 0x1000, 8 * WORD_BYTES, core=3),
        Transfer(L1.base + 0x2000, L1.base + 0x3000, 4 * WORD_BYTES, core=1),
    ]
    seen = {}

    async def body(h):
        rng = random.Random(3)
        for transfer in transfers:
            h.fill(transfer, rng)
        initial = contents(*h.memories)
        waits = [await h.start(transfer) for transfer in transfers[:3]]
        seen["status_full"] = await h.read("STATUS")
        waits.append(await h.start(transfers[3]))
        seen["waits"], seen["fourth_granted"] = waits, h.cycle - 1
        seen["status_after"] = await h.read("STATUS")
        await h.wait_idle()
        seen["status_end"] = await h.read("STATUS")
        seen["expected"] = expected_after(transfers, initial)

    log, l1, l2 = simulate(body, stalls=(0.3, 0.3), seed=11, queue_depth=2)
    assert seen["status_full"] == 3
    assert seen["waits"][:3] == [0, 0, 0] and seen["waits"][3] > 0
    assert seen["status_after"] == 3 and seen["status_end"] == 0
    events = log["events"]
    assert [value for _, value in events] == [1 << t.core for t in transfers]
    # The fourth START is granted in the cycle after the first transfer's event pulses: the
    # engine takes the next transfer from the queue as the event is raised, freeing a slot.
    assert seen["fourth_granted"] == events[0][0] + 1
    assert contents(l1, l2) == seen["expected"]
    # busy falls with the last event.
    last_event = events[-1][0]
    assert log["busy"][last_event - 1] and not any(log["busy"][last_event:])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("src, dst, cycles_per_beat", [(L2, L1, 1), (L1, L2, 1), (L1, L1, 2)])
def test_throughput_without_stalls(src, dst, cycles_per_beat, width):
    """One beat per cycle between the two ports, also when the addresses are not aligned to
    a beat; rows of a 2-D copy follow each other without a gap."""
    words, lanes = 128, width // 32
    transfer = Transfer(src.base + 4, dst.base + 0x1_0000 % dst.size + 8, words * WORD_BYTES,
                        core=4)
    timing = {}

    async def body(h):
        h.fill(transfer, random.Random(0))
        await h.start(transfer)
        timing["start"] = h.cycle - 1
        await h.wait_idle()

    log, _, _ = simulate(body, width=width)
    (event_cycle, _), = log["events"]
    assert event_cycle - timing["start"] <= words // lanes * cycles_per_beat + OVERHEAD_CYCLES


@pytest.mark.parametrize("width", WIDTHS)
def test_2d_rows_back_to_back(width):
    rows, row_bytes, lanes = 16, 64, width // 32
    transfer = Transfer(L2.base + 12, L1.base + 0x400, row_bytes, rows=rows,
                        src_stride=200, dst_stride=row_bytes + 16, core=1)
    timing = {}

    async def body(h):
        h.fill(transfer, random.Random(1))
        await h.start(transfer)
        timing["start"] = h.cycle - 1
        await h.wait_idle()

    log, _, _ = simulate(body, width=width)
    (event_cycle, _), = log["events"]
    beats = rows * -(-row_bytes // (WORD_BYTES * lanes))
    assert event_cycle - timing["start"] <= beats + OVERHEAD_CYCLES


def test_empty_transfers_complete_at_once():
    async def body(h):
        await h.start(Transfer(L2.base, L1.base, 0, rows=4, core=7))
        await h.start(Transfer(L2.base, L1.base, 16, rows=0, core=0))
        await h.wait_idle()

    log, l1, l2 = simulate(body)
    assert [value for _, value in log["events"]] == [1 << 7, 1 << 0]
    assert not l1.writes and not l2.writes


def test_register_readback_and_byte_enables():
    values = {}

    async def body(h):
        for register in REGISTERS.values():
            if register.access == "rw":
                await h.access(register.name, write=True, data=WORD_MASK)
                values[register.name] = await h.read(register.name)
        await h.access("SRC", write=True, data=0x1234_5678)
        await h.access("SRC", write=True, data=0xAB00, be=0b0010)
        values["SRC_BYTE"] = await h.read("SRC")

    simulate(body)
    for register in REGISTERS.values():
        if register.access == "rw":
            (field,) = register.fields
            assert values[register.name] == field.mask, register.name
    assert values["SRC_BYTE"] == 0x1234_AB78


def test_read_ahead_is_bounded():
    """With L1 never granting, the DMA reads READ_AHEAD beats from L2 and then waits, its
    L1 write held unchanged (checked by the memory model)."""
    transfer = Transfer(L2.base, L1.base, 32 * WORD_BYTES)

    async def body(h):
        h.fill(transfer, random.Random(0))
        await h.start(transfer)
        await h.idle(40)
        assert h.ctx.get(h.dut.l1.req) and h.ctx.get(h.dut.l1.we)

    log, l1, l2 = simulate(body, stalls=(1.0, 0.0))
    assert l2.reads == [src for src, _ in transfer.words()][:READ_AHEAD]
    assert not l1.writes and not log["events"]


@pytest.mark.parametrize("queue_depth, cores", [(1, 1), (2, CORES), (4, 16)])
def test_converts_to_verilog(queue_depth, cores):
    dut = Dma(l1_region=L1, l2_region=L2, window=CLUSTER.region("DMA").size,
              width=CLUSTER.dma_width,
              queue_depth=queue_depth, cores=cores)
    text = verilog.convert(dut, name="dma", emit_src=False)
    assert "module dma" in text and "l2__wdata" in text
