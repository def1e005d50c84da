# amaranth: UnusedElaboratable=no
"""The chip-to-chip links under amaranth.sim: the DMA's remote-window decoding and refusals
(against the rule written out in Python), and :class:`ChipLink` alone: address translation,
its byte budget, writes of received beats with random grant stalls, counters and events."""

import random
from dataclasses import replace

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.dma import CAUSES, Dma
from cluster_integration.link import ChipLink, beat_layout
from ita.cluster_config import DEFAULT as CLUSTER
from ita.cluster_config import LINKS, REMOTE_WINDOWS

from .bus_master import WORD_MASK, access
from .test_dma import (
    ILLEGAL,
    WORD_BYTES,
    Harness,
    Memory,
    Transfer,
    error_word,
    refusal_causes,
    span,
)

L1, L2 = CLUSTER.region("L1"), CLUSTER.region("L2")
REMOTE = CLUSTER.remote
LINK_REGISTERS = {r.name: r for r in memory_map.LINK}
BEAT_BYTES = CLUSTER.dma_width // 8


def link_causes(t):
    """:func:`refusal_causes` with the remote windows: a destination span in the REMOTE
    region is legal when the whole span maps into one neighbour's L1 or L2 of an existing
    link; a source there is out of range (links carry writes only)."""
    causes = refusal_causes(replace(t), regions=(L1, L2))
    if t.length == 0 or t.rows == 0:
        return causes
    low, end = span(t.dst, t.dst_stride, t.rows, t.length)
    if REMOTE.region.contains(low):
        if end <= REMOTE.region.end:
            causes.discard("dst_range")
        first, last = REMOTE.target(low), REMOTE.target(end - 1)
        if first is None or last is None or first[0] != last[0] or \
                last[1] - first[1] != end - 1 - low:
            causes.add("link")
    return causes


REMOTE_ILLEGAL = {
    "link_that_does_not_exist": Transfer(L2.base, REMOTE.window_base(len(LINKS)), 16),
    "last_link_slot": Transfer(L2.base, REMOTE.window_base(REMOTE_WINDOWS - 1) + 0x40, 32),
    "hole_after_remote_l1": Transfer(L2.base, REMOTE.l1(0, CLUSTER.l1_size), 16),
    "past_remote_l1_end": Transfer(L2.base, REMOTE.l1(1, CLUSTER.l1_size - 16), 32),
    "past_remote_l2_end": Transfer(L1.base, REMOTE.l2(0, CLUSTER.l2_size - 8), 16),
    "rows_into_the_next_window": Transfer(L1.base, REMOTE.l2(0, CLUSTER.l2_size - 16), 16,
                                          rows=2, src_stride=16, dst_stride=REMOTE.window),
    "past_the_remote_region": Transfer(L1.base, REMOTE.region.end - 16, 32),
    "source_in_a_remote_window": Transfer(REMOTE.l2(0), L1.base, 16),
    "misaligned_remote": Transfer(L1.base, REMOTE.l2(1, 2), 16),
}

REMOTE_LEGAL = {
    "l2_to_next_l2_1d": Transfer(L2.base + 0x400, REMOTE.l2(0, 0x1000), 20 * WORD_BYTES),
    "l1_to_prev_l1_2d": Transfer(L1.base + 0x100, REMOTE.l1(1, 0x2004), 6 * WORD_BYTES, rows=3,
                                 src_stride=0x40, dst_stride=0x104),
    "to_the_end_of_remote_l1": Transfer(L2.base, REMOTE.l1(1, CLUSTER.l1_size - 48), 48),
}


def test_rule_sees_every_link_case():
    assert all("link" in link_causes(t) or "src_range" in link_causes(t)
               or "dst_range" in link_causes(t) or "align" in link_causes(t)
               for t in REMOTE_ILLEGAL.values())
    assert "link" in set().union(*(link_causes(t) for t in REMOTE_ILLEGAL.values()))
    assert set(CAUSES) == set().union(*(link_causes(t) for t in
                                        (*ILLEGAL.values(), *REMOTE_ILLEGAL.values())))
    assert not any(link_causes(t) for t in REMOTE_LEGAL.values())


class LinkPort:
    """The DMA's link port: grants at random, records (address, data, be, last) per write."""

    def __init__(self):
        self.writes, self.reads = [], []

    async def serve(self, ctx, dut, rng, stall):
        port = dut.link
        while True:
            granting = rng.random() >= stall
            ctx.set(port.gnt, granting)
            _, _, req, addr, we, wdata, be, last = await ctx.tick().sample(
                port.req, port.addr, port.we, port.wdata, port.be, dut.link_last)
            if req and granting:
                (self.writes if we else self.reads).append((addr, wdata, be, last))


def simulate_dma(body, *, stalls=0.3, seed=1):
    dut = Dma(l1_region=L1, l2_region=L2, window=CLUSTER.region("DMA").size,
              width=CLUSTER.dma_width, remote=REMOTE)
    rng = random.Random(seed)
    memories = [Memory(L1), Memory(L2)]
    link = LinkPort()
    events = []

    async def monitor(ctx):
        cycle = 0
        async for _, _, pulses in ctx.tick().sample(dut.events):
            if pulses:
                events.append((cycle, pulses))
            cycle += 1

    async def bench(ctx):
        await body(Harness(ctx, dut, tuple(memories)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    for memory, port in zip(memories, (dut.l1, dut.l2), strict=True):
        async def serve(ctx, memory=memory, port=port):
            await memory.serve(ctx, port, random.Random(rng.random()), stalls)
        sim.add_testbench(serve, background=True)

    async def serve_link(ctx):
        await link.serve(ctx, dut, random.Random(rng.random()), stalls)
    sim.add_testbench(serve_link, background=True)
    sim.add_testbench(bench)
    sim.run()
    return events, memories, link


@pytest.mark.parametrize("name", REMOTE_ILLEGAL)
def test_illegal_link_descriptor_is_refused(name):
    """No access anywhere, one event, the causes in ERROR."""
    illegal = replace(REMOTE_ILLEGAL[name], core=2)
    seen = {}

    async def body(h):
        if L2.contains(illegal.src) or L1.contains(illegal.src):
            h.fill(illegal, random.Random(name))
        await h.start(illegal)
        await h.wait_idle()
        seen["error"] = await h.read("ERROR", core=illegal.core)

    events, memories, link = simulate_dma(body, seed=len(name))
    assert seen["error"] == error_word(link_causes(illegal), 1), hex(seen["error"])
    assert link.writes == [] and link.reads == []
    assert all(m.reads == [] and m.writes == [] for m in memories)
    assert [line for _, line in events] == [1 << illegal.core]


@pytest.mark.parametrize("name", REMOTE_LEGAL)
def test_remote_transfer_goes_to_the_link(name):
    """Every word reaches the link port at its window address in order, with ``last`` on
    the final beat only; the event follows the last beat's grant."""
    transfer = REMOTE_LEGAL[name]
    seen = {}

    async def body(h):
        h.fill(transfer, random.Random(name))
        seen["source"] = contents = {a: w for m in h.memories for a, w in m.words.items()}
        await h.start(transfer)
        await h.wait_idle()
        seen["error"] = await h.read("ERROR")
        del contents

    events, memories, link = simulate_dma(body, seed=len(name))
    assert seen["error"] == 0
    words = []
    for addr, wdata, be, _last in link.writes:
        for k in range(BEAT_BYTES // WORD_BYTES):
            if be >> (WORD_BYTES * k) & 0xF:
                words.append((addr + WORD_BYTES * k, wdata >> (32 * k) & WORD_MASK))
    expected = [(dst, seen["source"][src]) for src, dst in transfer.words()]
    assert words == expected
    assert [last for *_, last in link.writes] == [0] * (len(link.writes) - 1) + [1]
    assert len(events) == 1 and all(m.writes == [] for m in memories)


# --- ChipLink alone ----------------------------------------------------------------------

LAYOUT = beat_layout(CLUSTER.dma_width)


def unpack(value):
    if isinstance(value, data.Const):
        value = value.as_value().value
    return {name: (value >> LAYOUT[name].offset) & ((1 << LAYOUT[name].width) - 1)
            for name in ("be", "last", "addr", "data")}


def test_chip_link_sends_at_its_rate_and_writes_what_it_receives():
    """Beats of the DMA leave on their link's tx with the neighbour's address, no faster
    than link_bytes_per_cycle allows; tx0 is looped to rx1 and tx1 to rx0 (a two-chip ring
    seen from one chip), the received beats land in L1/L2 under random grant stalls, the
    counters and the events agree."""
    dut = ChipLink(CLUSTER)
    rng = random.Random(5)
    sends = []   # (window address, data, be, last)
    for n in range(12):
        link = n % 2
        offset = rng.randrange(0, 0x1000, 16)
        address = REMOTE.l2(link, offset) if n % 3 else REMOTE.l1(link, offset)
        be = (1 << BEAT_BYTES) - 1 if n % 4 else 0x0FF
        sends.append((address, rng.getrandbits(CLUSTER.dma_width), be, int(n >= 10)))
    written = {"l1": [], "l2": []}
    accepted, events, tx_seen = [], [], []

    async def driver(ctx):
        port = dut.dma
        cycle = 0
        for address, wdata, be, last in sends:
            ctx.set(port.req, 1)
            ctx.set(port.we, 1)
            ctx.set(port.addr, address)
            ctx.set(port.wdata, wdata)
            ctx.set(port.be, be)
            ctx.set(dut.dma_last, last)
            while True:
                _, _, granted = await ctx.tick().sample(port.gnt)
                cycle += 1
                if granted:
                    break
            accepted.append(cycle)
        ctx.set(port.req, 0)
        for _ in range(400):
            await ctx.tick()

    async def wire(ctx):
        """tx j -> rx (1 - j), one beat in flight per direction, random delays."""
        delay = random.Random(9)
        pending = {0: None, 1: None}
        while True:
            for j in range(2):
                ctx.set(dut.tx(j).ready, pending[j] is None and delay.random() < 0.7)
                rx = dut.rx(1 - j)
                ctx.set(rx.valid, pending[j] is not None)
                if pending[j] is not None:
                    ctx.set(rx.payload, pending[j])
            samples = await ctx.tick().sample(
                *(s for j in range(2) for s in (dut.tx(j).valid, dut.tx(j).ready,
                                                dut.tx(j).payload, dut.rx(1 - j).ready)))
            for j in range(2):
                valid, ready, payload, rx_ready = samples[2 + 4 * j: 6 + 4 * j]
                if pending[j] is not None and rx_ready:
                    pending[j] = None
                if valid and ready:
                    tx_seen.append((j, payload))
                    pending[j] = payload

    async def memory(ctx, name):
        port = getattr(dut, name)
        stall = random.Random(name)
        while True:
            ctx.set(port.gnt, stall.random() < 0.6)
            _, _, req, gnt, addr, be, wdata, we = await ctx.tick().sample(
                port.req, port.gnt, port.addr, port.be, port.wdata, port.we)
            if req and gnt:
                assert we
                written[name].append((addr, wdata, be))

    async def monitor(ctx):
        async for _, _, pulses in ctx.tick().sample(dut.events):
            if pulses:
                events.append(pulses)

    counters = {}

    async def registers(ctx):
        for _ in range(700):
            await ctx.tick()
        ctx.set(dut.chip_id, 3)
        ctx.set(dut.chips, 4)
        await ctx.tick()
        for name in LINK_REGISTERS:
            counters[name] = (await access(ctx, dut.regs, LINK_REGISTERS[name].offset))[0]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for body in (wire, monitor):
        sim.add_testbench(body, background=True)
    for name in ("l1", "l2"):
        async def serve(ctx, name=name):
            await memory(ctx, name)
        sim.add_testbench(serve, background=True)
    sim.add_testbench(driver)
    sim.add_testbench(registers)
    sim.run()

    # Sent: the neighbour's address, in order per link.
    for j in range(2):
        mine = [s for s in sends if REMOTE.target(s[0])[0] == j]
        got = [unpack(p) for k, p in tx_seen if k == j]
        assert [(g["addr"], g["data"], g["be"], g["last"]) for g in got] == \
            [(REMOTE.target(a)[1], d, b, last) for a, d, b, last in mine]
    # Rate: per link, the bytes accepted up to any beat fit the budget (one beat at start).
    for j in range(2):
        times = [t for t, s in zip(accepted, sends, strict=True) if REMOTE.target(s[0])[0] == j]
        sizes = [bin(s[2]).count("1") for s in sends if REMOTE.target(s[0])[0] == j]
        for k in range(1, len(times)):
            assert sum(sizes[1:k + 1]) <= (times[k] - times[0]) * CLUSTER.link_bytes_per_cycle \
                + BEAT_BYTES, (j, k, times)
    # Received: every beat written once, to the memory its address lies in.
    arrived = sorted((p["addr"], p["data"], p["be"]) for p in map(unpack, (p for _, p in tx_seen)))
    assert sorted(written["l1"] + written["l2"]) == arrived
    assert all(L1.contains(a) for a, _, _ in written["l1"])
    assert all(L2.contains(a) for a, _, _ in written["l2"])
    # Counters and events: rx of link (1 - j) counts what tx j sent.
    for j in range(2):
        mine = [s for s in sends if REMOTE.target(s[0])[0] == j]
        size = sum(bin(s[2]).count("1") for s in mine)
        lasts = sum(s[3] for s in mine)
        assert counters[f"TX_BYTES{j}"] == size and counters[f"TX_TRANSFERS{j}"] == lasts
        assert counters[f"RX_BYTES{1 - j}"] == size
        assert counters[f"RX_TRANSFERS{1 - j}"] == lasts
        assert sum(bool(e >> (1 - j) & 1) for e in events) == lasts
    assert counters["CHIP_ID"] == 3 and counters["CHIPS"] == 4
