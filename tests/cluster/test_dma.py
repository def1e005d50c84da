# amaranth: UnusedElaboratable=no
"""The DMA under amaranth.sim against Python memory models that stall their grants at random,
at the word width of the old DMA and at the default cluster's beat width; constrained-random
descriptors at every beat width, and the refusal of the transfers it cannot do, checked
against :func:`refusal_causes` (the rule written out in Python)."""

import random
from dataclasses import dataclass, replace

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.dma import CAUSES, READ_AHEAD, Dma
from cluster_integration.hwpe.regmap import WORD_BYTES
from ita.cluster_config import DEFAULT as CLUSTER

from .bus_master import WORD_MASK, access

L1 = CLUSTER.region("L1")
L2 = CLUSTER.region("L2")
L3 = CLUSTER.region("L3")
REGISTERS = {r.name: r for r in memory_map.DMA}
ERROR = REGISTERS["ERROR"]
CORES = CLUSTER.cores
#: Beat widths under test: one word (the old DMA) and the default cluster's.
WIDTHS = (32, CLUSTER.dma_width)
#: Every beat width the cluster configurations may give the DMA (the random descriptors).
ALL_WIDTHS = (32, 64, 128, 256)
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

    async def serve(self, ctx, port, rng, stall, write_responses=True):
        """Grant at random, answer reads one cycle after the grant (``r_valid`` also pulses
        after writes, with garbage data, unless ``write_responses`` is off, as on the L3
        port, which takes every ``r_valid`` for read data), and check that ungranted requests
        stay unchanged."""
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
            ctx.set(port.r_valid, req and granting and (write_responses or not we))
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
    """Run ``body(harness)`` with grant-stall probabilities ``stalls`` for (L1, L2) and, with
    an ``l3_region``, L3 (its memory answers reads one cycle after the grant, as a link of
    latency 1); returns the log of (cycle, events, refused) pulses and the busy trace, and the
    memories (L1, L2[, L3])."""
    dut = Dma(**{"l1_region": L1, "l2_region": L2, "window": CLUSTER.region("DMA").size,
                 **kwargs})
    rng = random.Random(seed)
    memories = [Memory(L1), Memory(L2)]
    ports = [dut.l1, dut.l2]
    if kwargs.get("l3_region") is not None:
        memories.append(Memory(kwargs["l3_region"]))
        ports.append(dut.l3)
    log = {"events": [], "busy": [], "refused": []}

    async def monitor(ctx):
        cycle = 0
        async for _, _, events, refused, busy in ctx.tick().sample(dut.events, dut.refused,
                                                                   dut.busy):
            if events:
                log["events"].append((cycle, events))
            if refused:
                log["refused"].append((cycle, refused))
            log["busy"].append(busy)
            cycle += 1

    async def bench(ctx):
        await body(Harness(ctx, dut, tuple(memories)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    for k, (memory, port) in enumerate(zip(memories, ports, strict=True)):
        async def serve(ctx, memory=memory, port=port, stall=stalls[k], l3=k == 2):
            await memory.serve(ctx, port, random.Random(rng.random()), stall,
                               write_responses=not l3)
        sim.add_testbench(serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    return (log, *memories)


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
        await h.start(Transfer(L2.base, L1.base, 0, rows=0, core=0))
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


# --- refused transfers -------------------------------------------------------------------------


def signed32(value):
    value &= WORD_MASK
    return value - (1 << 32) if value >> 31 else value


def span(base, stride, rows, length):
    """[lowest, end) of the rows, unwrapped (rows >= 1)."""
    starts = (base, base + (rows - 1) * signed32(stride))
    return min(starts), max(starts) + length


def refusal_causes(t, regions=(L1, L2)):
    """The ERROR causes of transfer ``t``, the rule of ``docs/cluster-protocols.md`` written
    out: nothing for an empty transfer; ROWS 0 with a LENGTH; a non-word SRC, DST or LENGTH,
    or (more than one row) stride; a span that no region of ``regions`` holds whole; source
    and destination spans that share a byte."""
    if t.length == 0:
        return set()
    causes = set()
    if t.rows == 0:
        causes.add("rows")
    if (t.src | t.dst | t.length) % WORD_BYTES or (
            t.rows > 1 and (t.src_stride | t.dst_stride) % WORD_BYTES):
        causes.add("align")
    if t.rows:
        spans = {side: span(getattr(t, side), getattr(t, f"{side}_stride"), t.rows, t.length)
                 for side in ("src", "dst")}
        for side, (low, end) in spans.items():
            if not any(r.base <= low and end <= r.end for r in regions):
                causes.add(f"{side}_range")
        (src_low, src_end), (dst_low, dst_end) = spans["src"], spans["dst"]
        if src_low < dst_end and dst_low < src_end:
            causes.add("overlap")
    return causes


def error_word(causes, count):
    """The ERROR word for ``causes`` and ``count`` refused transfers."""
    word = min(count, ERROR.field("refused").mask >> ERROR.field("refused").lsb) \
        << ERROR.field("refused").lsb
    for name in causes:
        word |= ERROR.field(name).mask
    return word


ILLEGAL = {
    "src_past_l2_end": Transfer(L2.end - 32, L1.base, 64),
    "src_last_row_past_l2": Transfer(L2.base + 0x100, L1.base, 32, rows=3,
                                     src_stride=L2.size // 2, dst_stride=32),
    "src_outside_every_region": Transfer(CLUSTER.region("SOC_CTRL").base, L1.base, 16),
    "src_wraps_past_the_top": Transfer(WORD_MASK + 1 - 16, L1.base, 32),
    "dst_into_peripherals": Transfer(L2.base, L1.end - 16, 32),
    "dst_rows_down_below_l1": Transfer(L2.base, L1.base + 0x40, 16, rows=3, src_stride=16,
                                       dst_stride=-0x40 & WORD_MASK),
    "dst_across_l1_and_l2": Transfer(L1.base, L1.base + 0x100, 16, rows=2, src_stride=16,
                                     dst_stride=L2.base - L1.base),
    "zero_rows": Transfer(L2.base, L1.base, 16, rows=0),
    "src_not_word_aligned": Transfer(L2.base + 2, L1.base, 16),
    "dst_not_word_aligned": Transfer(L2.base, L1.base + 1, 16),
    "length_not_word_multiple": Transfer(L2.base, L1.base, 18),
    "stride_not_word_multiple": Transfer(L2.base, L1.base, 16, rows=2, src_stride=18,
                                         dst_stride=16),
    "overlap_1d_upwards": Transfer(L1.base + 0x100, L1.base + 0x108, 64),
    "overlap_1d_downwards": Transfer(L2.base + 0x108, L2.base + 0x100, 64),
    "overlap_2d_spans": Transfer(L1.base + 0x200, L1.base + 0x210, 16, rows=4,
                                 src_stride=0x40, dst_stride=0x40),
    "overlap_in_place": Transfer(L2.base + 0x40, L2.base + 0x40, 8),
    "several_causes": Transfer(L2.end - 6, L1.end - 2, 18, rows=2, src_stride=0x40,
                               dst_stride=5),
}


def test_illegal_table_covers_every_cause():
    seen = set().union(*(refusal_causes(t) for t in ILLEGAL.values()))
    assert seen == set(CAUSES) - {"link"}   # the link cause: tests/cluster/test_link.py
    assert all(refusal_causes(t) for t in ILLEGAL.values())


def _background(h, rng, transfer):
    """Random words around both ends of every row of ``transfer`` on every memory that holds
    them, so that a stray write or read would be seen."""
    for base, stride in ((transfer.src, transfer.src_stride), (transfer.dst, transfer.dst_stride)):
        for row in range(max(transfer.rows, 1)):
            start = (base + row * signed32(stride)) & ~3 & WORD_MASK
            for address in range(start - 16, start + transfer.length + 16, WORD_BYTES):
                for memory in h.memories:
                    if memory.region.contains(address):
                        memory.words[address] = rng.getrandbits(32)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ILLEGAL)
def test_illegal_descriptor_is_refused(name, width):
    """The refused transfer touches no memory, raises one event (with ``refused``) on its
    core's line, and leaves its causes in that core's ERROR, which a read clears; STATUS is
    0 again, and a legal transfer queued behind it lands whole."""
    illegal = replace(ILLEGAL[name], core=3)
    legal = Transfer(L2.base + 0x3000, L1.base + 0x2004, 12 * WORD_BYTES, rows=2,
                     src_stride=0x100, dst_stride=0x34, core=6)
    seen = {}

    async def body(h):
        rng = random.Random(name)
        _background(h, rng, illegal)
        h.fill(legal, rng)
        seen["before"] = contents(*h.memories)
        await h.start(illegal)
        await h.wait_idle()
        seen["after_illegal"] = contents(*h.memories)
        seen["accesses"] = [list(m.reads) + list(m.writes) for m in h.memories]
        seen["status"] = await h.read("STATUS")
        seen["error_other_core"] = await h.read("ERROR", core=legal.core)
        seen["error"] = await h.read("ERROR", core=illegal.core)
        seen["error_again"] = await h.read("ERROR", core=illegal.core)
        await h.start(legal)
        await h.wait_idle()
        seen["error_after_legal"] = await h.read("ERROR", core=legal.core)
        seen["expected"] = expected_after([legal], seen["before"])

    log, l1, l2 = simulate(body, stalls=(0.3, 0.3), seed=len(name), width=width)
    assert seen["after_illegal"] == seen["before"], "the refused transfer changed memory"
    assert seen["accesses"] == [[], []], "the refused transfer accessed memory"
    assert seen["status"] == 0
    assert seen["error"] == error_word(refusal_causes(illegal), 1), hex(seen["error"])
    assert seen["error_again"] == 0 and seen["error_other_core"] == 0
    assert seen["error_after_legal"] == 0
    (refused_cycle, refused_line), legal_event = log["events"]
    assert refused_line == 1 << illegal.core and legal_event[1] == 1 << legal.core
    assert log["refused"] == [(refused_cycle, 1 << illegal.core)]
    assert contents(l1, l2) == seen["expected"]
    assert l1.writes + l2.writes == [dst for _, dst in legal.words()]


def test_refusals_accumulate_per_core_and_keep_queue_order():
    """Refused and legal transfers of several cores queued together: events in queue order,
    ``refused`` for the refused ones only; each core's ERROR holds the union of its causes and
    their count."""
    transfers = [
        replace(ILLEGAL["zero_rows"], core=1),
        Transfer(L2.base + 0x800, L1.base + 0x800, 16 * WORD_BYTES, core=2),
        replace(ILLEGAL["src_past_l2_end"], core=1),
        replace(ILLEGAL["overlap_1d_upwards"], core=2),
        Transfer(L1.base + 0x800, L2.base + 0x9000, 8 * WORD_BYTES, core=1),
    ]
    seen = {}

    async def body(h):
        rng = random.Random(9)
        h.fill(transfers[1], rng)
        seen["before"] = contents(*h.memories)
        for transfer in transfers:
            await h.start(transfer)
        await h.wait_idle()
        seen["errors"] = {core: await h.read("ERROR", core=core) for core in (0, 1, 2)}

    log, l1, l2 = simulate(body, stalls=(0.2, 0.2), seed=4, queue_depth=4)
    assert [line for _, line in log["events"]] == [1 << t.core for t in transfers]
    refused = [t for t in transfers if refusal_causes(t)]
    assert [line for _, line in log["refused"]] == [1 << t.core for t in refused]
    for core in (0, 1, 2):
        mine = [t for t in refused if t.core == core]
        causes = set().union(*(refusal_causes(t) for t in mine))
        assert seen["errors"][core] == error_word(causes, len(mine)), core
    legal = [t for t in transfers if not refusal_causes(t)]
    assert contents(l1, l2) == expected_after(legal, seen["before"])


def test_refused_count_saturates():
    count = ERROR.field("refused").mask >> ERROR.field("refused").lsb
    seen = {}

    async def body(h):
        for _ in range(count + 2):
            await h.start(ILLEGAL["zero_rows"])
        await h.wait_idle()
        seen["error"] = await h.read("ERROR")

    log, _, _ = simulate(body, queue_depth=4)
    assert len(log["events"]) == len(log["refused"]) == count + 2
    assert seen["error"] == error_word({"rows"}, count)


def test_empty_transfers_are_not_refused():
    """LENGTH 0 moves nothing wherever it points: no cause, an event at once."""
    seen = {}

    async def body(h):
        await h.start(Transfer(CLUSTER.region("SOC_CTRL").base + 2, WORD_MASK - 2, 0, rows=0,
                               src_stride=3, dst_stride=5))
        await h.wait_idle()
        seen["error"] = await h.read("ERROR")

    log, l1, l2 = simulate(body)
    assert len(log["events"]) == 1 and not log["refused"] and seen["error"] == 0
    assert not (l1.reads or l1.writes or l2.reads or l2.writes)


# --- constrained-random descriptors ------------------------------------------------------------


def random_transfer(rng, regions, lanes):
    """A descriptor between two random regions: 1-D or 2-D, rows of random word counts
    (not beat multiples), word strides that are not beat multiples, some negative, some
    destination rows overlapping each other (later rows win); near region edges now and
    then, so that some ranges leave their region, and sometimes source and destination
    close together in one region, so that some spans overlap."""
    rows = rng.choice((1, 1, rng.randint(2, 5)))
    length = WORD_BYTES * rng.randint(1, 3 * lanes + 3)

    def side(region):
        stride = WORD_BYTES * rng.randint(-3 * lanes, 6 * lanes)
        if rng.random() < 0.1:
            stride = length - WORD_BYTES   # rows overlapping
        extent = (rows - 1) * abs(stride) + length
        where = rng.random()
        if where < 0.1:      # at the top edge, perhaps past it
            base = region.end - extent + WORD_BYTES * rng.randint(-2, 2)
        elif where < 0.2:    # at the bottom edge, perhaps below it
            base = region.base + WORD_BYTES * rng.randint(-2, 2)
        else:
            base = region.base + WORD_BYTES * rng.randrange(0, 0x800)
        if stride < 0 and where >= 0.1:
            base += (rows - 1) * -stride
        return base & WORD_MASK, stride & WORD_MASK

    src_region, dst_region = rng.choice(regions), rng.choice(regions)
    src, src_stride = side(src_region)
    if src_region is dst_region and rng.random() < 0.3:
        dst = (src + WORD_BYTES * rng.randint(-2 * lanes, 2 * lanes)) & WORD_MASK
        dst_stride = src_stride
    else:
        dst, dst_stride = side(dst_region)
    return Transfer(src, dst, length, rows=rows, src_stride=src_stride, dst_stride=dst_stride,
                    core=rng.randrange(CORES))


@pytest.mark.parametrize("width", ALL_WIDTHS)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_descriptors(width, seed):
    """Random descriptors between L1, L2 and L3 (legal ones and refused ones mixed), queued
    back to back, with random grant stalls on every port. Every legal transfer lands whole
    (memory compared word by word, every byte of it), in order; nothing else is written, and
    only the sources are read; one event per transfer, ``refused`` exactly for those the rule
    refuses; each core's ERROR holds its refusals."""
    rng = random.Random(seed * 1000 + width)
    regions = (L1, L2, L3)
    lanes = width // 32
    transfers = [random_transfer(rng, regions, lanes) for _ in range(14)]
    causes = [refusal_causes(t, regions) for t in transfers]
    legal = [t for t, c in zip(transfers, causes, strict=True) if not c]
    assert 4 <= len(legal) < len(transfers), "the draw should mix legal and refused transfers"
    seen = {}

    async def body(h):
        fill = random.Random(seed)
        for transfer in legal:
            h.fill(transfer, fill)
        seen["before"] = contents(*h.memories)
        for transfer in transfers:
            await h.start(transfer)
        await h.wait_idle(timeout=20_000)
        seen["errors"] = {core: await h.read("ERROR", core=core) for core in range(CORES)}

    stalls = tuple(rng.choice((0.0, 0.2, 0.5)) for _ in regions)
    log, *memories = simulate(body, stalls=stalls, seed=seed, width=width, l3_region=L3,
                              queue_depth=CLUSTER.dma_queue_depth)
    assert contents(*memories) == expected_after(legal, seen["before"])
    written = [dst for t in legal for _, dst in t.words()]
    read = [src for t in legal for src, _ in t.words()]
    assert [w for m in memories for w in m.writes] == \
        [w for m in memories for w in written if m.region.contains(w)]
    assert sorted(w for m in memories for w in m.reads) == sorted(read)
    assert [line for _, line in log["events"]] == [1 << t.core for t in transfers]
    assert [line for _, line in log["refused"]] == \
        [1 << t.core for t, c in zip(transfers, causes, strict=True) if c]
    for core in range(CORES):
        mine = [c for t, c in zip(transfers, causes, strict=True) if c and t.core == core]
        assert seen["errors"][core] == error_word(set().union(*mine), len(mine)), core
