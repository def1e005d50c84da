# amaranth: UnusedElaboratable=no
"""L3: the off-chip link model alone, and the DMA copying through it (amaranth.sim, the
storage behind the link a Python memory)."""

import random

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from cluster_integration.dma import Dma, read_ahead_covering
from cluster_integration.l3 import L3Link
from ita.cluster_config import DEFAULT as CLUSTER

from .test_dma import Harness, Memory, Transfer, contents, expected_after

#: An L3 offset past the first few MiB: transfers far from the base.
FAR = 1 << 22

L1, L2, L3 = (CLUSTER.region(name) for name in ("L1", "L2", "L3"))
WIDTH, RATE, LATENCY = CLUSTER.dma_width, CLUSTER.l3_bytes_per_cycle, CLUSTER.l3_latency
BEAT_BYTES = WIDTH // 8


def test_link_rate_latency_and_partial_beats():
    """Full read beats back to back: one grant every BEAT_BYTES / RATE cycles, each answered
    LATENCY cycles after its grant with the storage's data, in order; a one-word beat costs
    only its 4 bytes; writes get no response."""
    link = L3Link(width=WIDTH, bytes_per_cycle=RATE, latency=LATENCY)
    grants, answers, seen = [], [], {}

    async def storage(ctx):
        # Grants at once (the link asks only when it can afford the beat); data = address.
        async for _, _, req, addr, we in ctx.tick().sample(link.far.req, link.far.addr,
                                                          link.far.we):
            ctx.set(link.far.r_data, addr if req and not we else 0)

    async def bench(ctx):
        ctx.set(link.far.gnt, 1)
        near = link.near
        full = (1 << BEAT_BYTES) - 1
        for cycle in range(400):
            beat = len(grants)
            partial = beat >= 8
            ctx.set(near.req, beat < 12)
            ctx.set(near.we, beat == 11)
            ctx.set(near.addr, L3.base + 0x100 * beat)
            ctx.set(near.be, 0xF if partial else full)
            if ctx.get(near.req) and ctx.get(near.gnt):
                grants.append(cycle)
            if ctx.get(near.r_valid):
                answers.append((cycle, ctx.get(near.r_data)))
            await ctx.tick()
        seen["done"] = True

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(storage, background=True)
    sim.add_testbench(bench)
    sim.run()
    full_gap = BEAT_BYTES // RATE
    assert [b - a for a, b in zip(grants[:8], grants[1:8], strict=False)] == [full_gap] * 7
    # the budget refills at RATE per cycle: a 4-byte beat needs 4 / RATE cycles
    assert all(b - a == 4 // RATE for a, b in zip(grants[8:11], grants[9:11], strict=False))
    reads = grants[:11]
    assert [cycle for cycle, _ in answers] == [g + LATENCY for g in reads]
    assert [data for _, data in answers] == [L3.base + 0x100 * k for k in range(11)]


class _DmaOnLink(wiring.Component):
    """The DMA with its L3 port behind the link; L1, L2 and the far side of the link are
    Python memories."""

    def __init__(self):
        self.dma = Dma(l1_region=L1, l2_region=L2, window=CLUSTER.region("DMA").size,
                       width=WIDTH, queue_depth=CLUSTER.dma_queue_depth, l3_region=L3,
                       cores=CLUSTER.cores,
                       read_ahead=read_ahead_covering(LATENCY, RATE, BEAT_BYTES))
        self.link = L3Link(width=WIDTH, bytes_per_cycle=RATE, latency=LATENCY)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma, m.submodules.link = self.dma, self.link
        wiring.connect(m, self.dma.l3, self.link.near)
        return m


def _run(body, seed=1, stall=0.0):
    top = _DmaOnLink()
    dma = top.dma
    memories = {"l1": Memory(L1), "l2": Memory(L2), "l3": Memory(L3)}
    log = {"events": []}
    rng = random.Random(seed)

    async def monitor(ctx):
        cycle = 0
        async for _, _, events in ctx.tick().sample(dma.events):
            if events:
                log["events"].append((cycle, events))
            cycle += 1

    async def bench(ctx):
        await body(Harness(ctx, dma, tuple(memories.values())))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    for name, port in (("l1", dma.l1), ("l2", dma.l2), ("l3", top.link.far)):
        async def serve(ctx, memory=memories[name], port=port, stall=stall * (name != "l3")):
            await memory.serve(ctx, port, random.Random(rng.random()), stall)
        sim.add_testbench(serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    return log, memories


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_copies_through_l3(stall):
    """L2 -> L3 (1-D), L3 -> L1 (2-D, rows not beat-aligned), L3 -> L2 and L1 -> L3: every
    word lands, nothing is written outside the destinations, one event per transfer."""
    transfers = [
        Transfer(L2.base + 0x1000, L3.base + FAR, 96 * 4, core=1),
        Transfer(L3.base + FAR + 4, L1.base + 0x200, 40, rows=5, src_stride=64,
                 dst_stride=48, core=2),
        Transfer(L3.base + FAR, L2.base + 0x8000, 64 * 4, core=3),
        Transfer(L1.base + 0x3000, L3.base + 0x100_0000, 20 * 4, rows=2, src_stride=0x100,
                 dst_stride=0x200, core=4),
    ]
    seen = {}

    async def body(h):
        rng = random.Random(5)
        for transfer in (transfers[0], transfers[3]):
            h.fill(transfer, rng)
        initial = contents(*h.memories)
        for transfer in transfers:
            await h.start(transfer)
        await h.wait_idle(timeout=20_000)
        seen["expected"] = expected_after(transfers, initial)

    log, memories = _run(body, stall=stall)
    assert contents(*memories.values()) == seen["expected"]
    written = [dst for t in transfers for _, dst in t.words()]
    assert sorted(w for m in memories.values() for w in m.writes) == sorted(written)
    assert [value for _, value in log["events"]] == [1 << t.core for t in transfers]


def test_l3_to_l1_runs_at_the_link_rate():
    """A 4 KiB L3 -> L1 copy keeps the link busy: within 5 % of RATE bytes per cycle after
    the latency of the first beat."""
    size = 4096
    transfer = Transfer(L3.base, L1.base, size, core=0)
    timing = {}

    async def body(h):
        h.fill(transfer, random.Random(2))
        await h.start(transfer)
        timing["start"] = h.cycle - 1
        await h.wait_idle(timeout=20_000)

    log, _ = _run(body)
    (event, _), = log["events"]
    cycles = event - timing["start"]
    assert cycles <= size / RATE * 1.05 + LATENCY + 10, cycles


def test_link_parameters_are_checked_and_convert():
    for kwargs in ({"bytes_per_cycle": 0}, {"bytes_per_cycle": BEAT_BYTES + 1},
                   {"latency": 0}):
        with pytest.raises(ValueError):
            L3Link(**{"width": WIDTH, "bytes_per_cycle": RATE, "latency": LATENCY, **kwargs})
    text = verilog.convert(L3Link(width=WIDTH, bytes_per_cycle=RATE, latency=LATENCY),
                           name="l3_link", emit_src=False)
    assert "near__r_valid" in text and "far__req" in text
