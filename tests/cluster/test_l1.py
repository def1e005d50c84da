# amaranth: UnusedElaboratable=no
"""The shared L1 (banks + logarithmic interconnect) under amaranth.sim, against a Python model.

One testbench drives every master cycle by cycle: it raises requests, reads the same-cycle
grants, applies the granted accesses to a reference memory and checks each read response
one cycle later. The master models hold a refused request unchanged until it is granted.
"""

import random
from dataclasses import dataclass, field

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration.l1 import L1Memory
from ita.cluster_config import DEFAULT as CLUSTER

BASE = CLUSTER.l1_base
WORD_MASK = (1 << 32) - 1
SMALL = {"narrow_ports": 4, "banks": 8, "size": 1024, "wide_width": 128, "base": BASE,
         "dma_width": 64}
#: The L1 of the default cluster: the cores on narrow ports, the DMA's and the HWPE's.
DEFAULT = {"narrow_ports": CLUSTER.cores, "banks": CLUSTER.l1_banks,
           "size": CLUSTER.l1_size, "wide_width": CLUSTER.hwpe_width, "base": BASE,
           "dma_width": CLUSTER.dma_width, "starvation_window": CLUSTER.l1_starvation_window}


@dataclass
class Access:
    words: list            # L1 word indices, lane order
    write: bool
    be: int                # 4 bits per lane
    wdata: int             # 32 bits per lane

    def address(self):
        return BASE + 4 * self.words[0]


@dataclass
class Master:
    """A TCDM master: ``next_access(rng)`` makes its requests; ``activity`` is the chance to
    start one in a cycle where it is idle. Refusals are counted per request."""
    port: object
    lanes: int
    next_access: object
    activity: float
    pending: Access | None = None
    refusals: int = 0
    max_refusals: int = 0
    grants: int = 0
    expected: int | None = None   # read data due in the next cycle
    expected_mask: int = 0        # its lanes
    history: list = field(default_factory=list)

    def drive(self, ctx, rng):
        if self.pending is None and rng.random() < self.activity:
            self.pending = self.next_access(rng)
        port, access = self.port, self.pending
        if access is None:
            # Idle: the payload is noise, which the memory must ignore.
            ctx.set(port.req, 0)
            ctx.set(port.addr, rng.getrandbits(32))
            ctx.set(port.we, rng.getrandbits(1))
            return
        for signal, value in ((port.req, 1), (port.addr, access.address()),
                              (port.we, int(access.write)), (port.be, access.be),
                              (port.wdata, access.wdata)):
            ctx.set(signal, value)

    def payload(self, ctx):
        port = self.port
        return tuple(ctx.get(s) for s in (port.addr, port.we, port.be, port.wdata))


class Bench:
    """Cycle-by-cycle driver and checker for one L1Memory and its masters."""

    def __init__(self, dut, seed):
        self.dut, self.rng = dut, random.Random(seed)
        self.words = dut.size // 4
        self.reference = [0] * self.words
        self.narrow = []
        self.dma = Master(dut.dma, dut.dma_words, lambda rng: None, 0.0)
        self.wide = None
        self.cycles = 0
        self.conflict_cycles = 0

    # -- request generators --------------------------------------------------------------
    def narrow_access(self, words=None, bank=None):
        def make(rng):
            if bank is None:
                word = rng.randrange(words or self.words)
            else:
                word = rng.randrange(self.dut.depth) * self.dut.banks + bank
            return Access([word], bool(rng.getrandbits(1)), rng.getrandbits(4),
                          rng.getrandbits(32))
        return make

    def wide_access(self, words=None, bank=None, write_share=0.5):
        lanes, banks = self.dut.wide_words, self.dut.banks

        def make(rng):
            limit = (words or self.words) - lanes
            if bank is None:
                first = rng.randrange(limit + 1)
            else:
                start = (bank - rng.randrange(lanes)) % banks
                first = rng.randrange((limit - start) // banks + 1) * banks + start
            return Access(list(range(first, first + lanes)), rng.random() < write_share,
                          rng.getrandbits(4 * lanes), rng.getrandbits(32 * lanes))
        return make

    def dma_access(self, words=None, bank=None):
        """Beats of 1 .. dma_words words (a short last beat of a row touches fewer banks);
        writes with random bytes of every word, reads with whole words."""
        lanes, banks = self.dut.dma_words, self.dut.banks

        def make(rng):
            count = rng.randint(1, lanes)
            limit = (words or self.words) - count
            if bank is None:
                first = rng.randrange(limit + 1)
            else:
                start = (bank - rng.randrange(count)) % banks
                first = rng.randrange((limit - start) // banks + 1) * banks + start
            write = bool(rng.getrandbits(1))
            be = sum((rng.randint(1, 15) if write else 0xF) << (4 * k) for k in range(count))
            return Access(list(range(first, first + count)), write, be,
                          rng.getrandbits(32 * lanes))
        return make

    def set_dma(self, make, activity):
        self.dma = Master(self.dut.dma, self.dut.dma_words, make, activity)

    def add_narrow(self, make, activity):
        index = len(self.narrow)
        self.narrow.append(Master(self.dut.narrow(index), 1, make, activity))

    def set_wide(self, make, activity):
        self.wide = Master(self.dut.wide, self.dut.wide_words, make, activity)

    def idle_wide(self):
        self.set_wide(lambda rng: None, 0.0)

    # -- the reference memory --------------------------------------------------------------
    def read(self, access):
        return sum(self.reference[w % self.words] << (32 * k) for k, w in enumerate(access.words))

    def write(self, access):
        for k, w in enumerate(access.words):
            mask = sum(0xFF << (8 * b) for b in range(4) if access.be >> (4 * k + b) & 1)
            old, new = self.reference[w % self.words], access.wdata >> (32 * k) & WORD_MASK
            self.reference[w % self.words] = old & ~mask | new & mask

    # -- one clock cycle --------------------------------------------------------------------
    @property
    def masters(self):
        return [*self.narrow, self.dma, self.wide]

    async def step(self, ctx):
        masters = self.masters
        for master in masters:
            master.drive(ctx, self.rng)
        banks_used = {}
        granted = []
        for master in masters:
            gnt = ctx.get(master.port.gnt)
            if master.pending is None:
                assert not gnt, "grant without a request"
                continue
            banks = {self.dut.locate(4 * w)[0] for w in master.pending.words}
            if not gnt:
                master.refusals += 1
                master.max_refusals = max(master.max_refusals, master.refusals)
                master.history.append(master.payload(ctx))
                continue
            for bank in banks:
                assert bank not in banks_used, f"bank {bank} granted twice in one cycle"
                banks_used[bank] = master
            granted.append(master)
        self.conflict_cycles += self._wide_conflicts()
        for master in granted:      # reads see the memory before this cycle's writes
            access = master.pending
            master.expected = None if access.write else self.read(access)
            master.expected_mask = (1 << 32 * len(access.words)) - 1
        for master in granted:
            if master.pending.write:
                self.write(master.pending)
            master.pending, master.refusals = None, 0
            master.grants += 1
            master.history.clear()
        held = {id(m): m.history[-1] for m in masters if m.history}
        await ctx.tick()
        self.cycles += 1
        for master in masters:
            port = master.port
            if master.expected is None:
                assert not ctx.get(port.r_valid), "response without a granted read"
            else:
                assert ctx.get(port.r_valid), "no response one cycle after a granted read"
                got = ctx.get(port.r_data) & master.expected_mask   # the lanes read
                assert got == master.expected, (
                    f"read {got:#x}, expected {master.expected:#x}")
            master.expected = None
            if id(master) in held:
                assert master.pending is not None
                master.drive(ctx, self.rng)
                assert master.payload(ctx) == held[id(master)], "refused request changed"

    def _wide_conflicts(self):
        wide = self.wide.pending
        if wide is None:
            return 0
        wide_banks = {self.dut.locate(4 * w)[0] for w in wide.words}
        return any(self.dut.locate(4 * w)[0] in wide_banks
                   for m in [*self.narrow, self.dma] if m.pending is not None
                   for w in m.pending.words)

    async def run(self, ctx, cycles):
        for _ in range(cycles):
            await self.step(ctx)
        # Drain: let every pending request finish (and its response be checked).
        for master in self.masters:
            master.activity = 0.0
        for _ in range(1000):
            if all(m.pending is None for m in self.masters):
                break
            await self.step(ctx)
        assert all(m.pending is None for m in self.masters), "a request starved"

    def check_backdoor(self, ctx):
        for word, value in enumerate(self.reference):
            assert self.dut.peek(ctx, BASE + 4 * word) == value, f"word {word}"


def simulate(dut, bench_body, *, priority=0):
    async def testbench(ctx):
        ctx.set(dut.hwpe_priority, priority)
        await bench_body(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def refusal_bounds(dut, priority):
    """(wide, dma, narrow) worst-case consecutive refusals promised by the L1Memory
    docstring. Without a DMA request the narrow bound is the rotation's alone."""
    return dut.refusal_bounds(bool(priority))


def narrow_bound_without_dma(dut, priority):
    numerator, denominator = dut.starvation_window
    narrow_side = denominator - numerator if not priority else numerator
    return dut.narrow_ports * (narrow_side + 1) - 1


def check_bounds(bench, dut, priority):
    wide_bound, dma_bound, narrow_bound = refusal_bounds(dut, priority)
    assert bench.wide.max_refusals <= wide_bound
    assert bench.dma.max_refusals <= dma_bound
    assert all(m.max_refusals <= narrow_bound for m in bench.narrow)


@pytest.mark.parametrize("priority", [0, 1])
def test_random_traffic(priority):
    """Random addresses, random idle cycles, all masters; every read value is checked."""
    dut = L1Memory(**SMALL)
    bench = Bench(dut, seed=priority)

    async def body(ctx):
        for word in range(bench.words):     # random initial content, loaded by the backdoor
            bench.reference[word] = bench.rng.getrandbits(32)
            dut.poke(ctx, BASE + 4 * word, bench.reference[word])
        for i in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(), activity=0.3 + 0.2 * i)
        bench.set_dma(bench.dma_access(), activity=0.6)
        bench.set_wide(bench.wide_access(), activity=0.7)
        await bench.run(ctx, 1500)
        bench.check_backdoor(ctx)

    simulate(dut, body, priority=priority)
    check_bounds(bench, dut, priority)
    assert bench.wide.grants > 300 and all(m.grants > 300 for m in bench.narrow)
    assert bench.dma.grants > 300
    assert bench.conflict_cycles > 100


@pytest.mark.parametrize("priority", [0, 1])
def test_hot_bank(priority):
    """Every master hammers one bank without pause: the grants split exactly as the
    anti-starvation window says, and nobody waits longer than promised."""
    dut = L1Memory(**SMALL)
    bench = Bench(dut, seed=10 + priority)
    hot, cycles = 5, 400

    async def body(ctx):
        for _ in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(bank=hot), activity=1.0)
        bench.set_wide(bench.wide_access(bank=hot), activity=1.0)
        for _ in range(cycles):
            await bench.step(ctx)

    simulate(dut, body, priority=priority)
    assert bench.conflict_cycles == cycles      # every cycle is a conflict
    numerator, denominator = dut.starvation_window
    wide_share = (denominator - numerator) if not priority else numerator
    assert bench.wide.grants == cycles * wide_share // denominator
    narrow_grants = [m.grants for m in bench.narrow]
    assert sum(narrow_grants) == cycles - bench.wide.grants
    assert max(narrow_grants) - min(narrow_grants) <= 1      # round robin
    wide_bound, _, _ = refusal_bounds(dut, priority)
    narrow_bound = narrow_bound_without_dma(dut, priority)
    assert bench.wide.max_refusals == wide_bound             # the bound is tight
    assert max(m.max_refusals for m in bench.narrow) <= narrow_bound


@pytest.mark.parametrize("priority", [0, 1])
def test_hot_bank_with_dma(priority):
    """The cores hammer one bank, the DMA's beats all cover it, the wide port spans it: every
    port is served within its bound, the DMA included (a won bank is kept for it)."""
    dut = L1Memory(**SMALL)
    bench = Bench(dut, seed=20 + priority)
    hot, cycles = 3, 600

    async def body(ctx):
        for _ in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(bank=hot), activity=1.0)
        bench.set_dma(bench.dma_access(bank=hot), activity=1.0)
        bench.set_wide(bench.wide_access(bank=hot), activity=1.0)
        await bench.run(ctx, cycles)

    simulate(dut, body, priority=priority)
    check_bounds(bench, dut, priority)
    # The narrow side's share of the hot bank goes round robin, the DMA being one requester.
    narrow_side = bench.dma.grants + sum(m.grants for m in bench.narrow)
    assert bench.dma.grants >= narrow_side // (dut.narrow_ports + 1) - 1
    assert all(m.grants > 0 for m in bench.masters)


def test_dma_beside_cores_on_its_banks():
    """Without the wide port, cores on the DMA's banks take them in turn: the DMA still gets
    all of them at once within its bound, and every core within its own."""
    dut = L1Memory(**SMALL)
    bench = Bench(dut, seed=31)

    async def body(ctx):
        for i in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(bank=i % dut.dma_words), activity=0.9)
        bench.set_dma(bench.dma_access(bank=0), activity=1.0)
        bench.idle_wide()
        await bench.run(ctx, 600)

    simulate(dut, body)
    check_bounds(bench, dut, 0)
    assert bench.dma.grants > 40


def test_round_robin_without_wide():
    """Narrow masters alone on one bank: strict rotation, one grant per cycle."""
    dut = L1Memory(**SMALL)
    bench = Bench(dut, seed=3)
    grants = []

    async def body(ctx):
        for _ in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(bank=2), activity=1.0)
        bench.idle_wide()
        for _ in range(40):
            before = [m.grants for m in bench.narrow]
            await bench.step(ctx)
            grants.extend(i for i, m in enumerate(bench.narrow) if m.grants > before[i])

    simulate(dut, body)
    assert len(grants) == 40
    assert all(grants[k] != grants[k - 1] for k in range(1, len(grants)))
    assert all(len(set(grants[k:k + 4])) == 4 for k in range(0, 40, 4))
    assert all(m.max_refusals == dut.narrow_ports - 1 for m in bench.narrow)


def test_wide_wrap_and_byte_enables():
    """A wide access starting in the last banks continues in the next row of the first ones;
    lane 0 is the word at the address; byte enables select the bytes written."""
    dut = L1Memory(**SMALL)
    banks, lanes = dut.banks, dut.wide_words
    first = 3 * banks + banks - 1            # bank 7 of row 3: lanes in banks 7, 0, 1, 2
    pattern = {w: 0x1111_1111 * (w % 15 + 1) ^ (w << 20) for w in range(dut.size // 4)}

    async def access(ctx, port, address, *, write=False, be=0, wdata=0):
        for signal, value in ((port.req, 1), (port.addr, address), (port.we, int(write)),
                              (port.be, be), (port.wdata, wdata)):
            ctx.set(signal, value)
        assert ctx.get(port.gnt)
        await ctx.tick()
        ctx.set(port.req, 0)
        assert ctx.get(port.r_valid) == (not write)
        return ctx.get(port.r_data)

    async def body(ctx):
        for word, value in pattern.items():
            dut.poke(ctx, BASE + 4 * word, value)
        assert [dut.locate(BASE + 4 * (first + k)) for k in range(lanes)] == [
            (7, 3), (0, 4), (1, 4), (2, 4)]
        data = await access(ctx, dut.wide, BASE + 4 * first)
        assert data == sum(pattern[first + k] << (32 * k) for k in range(lanes))
        # Write lanes 0 and 2 fully, lane 1 bytes 1 and 3, lane 3 not at all.
        be = 0xF | 0b1010 << 4 | 0xF << 8
        wdata = sum((0xA0A0_A0A0 + k) << (32 * k) for k in range(lanes))
        await access(ctx, dut.wide, BASE + 4 * first, write=True, be=be, wdata=wdata)
        assert dut.peek(ctx, BASE + 4 * first) == 0xA0A0_A0A0
        assert dut.peek(ctx, BASE + 4 * (first + 1)) == (
            pattern[first + 1] & 0x00FF_00FF | 0xA0A0_A0A1 & 0xFF00_FF00)
        assert dut.peek(ctx, BASE + 4 * (first + 2)) == 0xA0A0_A0A2
        assert dut.peek(ctx, BASE + 4 * (first + 3)) == pattern[first + 3]
        # Narrow byte writes, read back through the port and the backdoor.
        await access(ctx, dut.narrow(1), BASE + 8, write=True, be=0b0100, wdata=0x00CD_0000)
        expected = pattern[2] & 0xFF00_FFFF | 0x00CD_0000
        assert await access(ctx, dut.narrow(3), BASE + 8) == expected
        assert dut.peek(ctx, BASE + 8) == expected

    simulate(dut, body)


def test_defaults_short_run():
    """The default cluster's L1: its wide port spans every bank."""
    dut = L1Memory(**DEFAULT)
    assert (dut.banks, dut.size, dut.wide_words) == (CLUSTER.l1_banks, CLUSTER.l1_size,
                                                     CLUSTER.l1_banks)
    assert dut.depth == CLUSTER.l1_size // (4 * CLUSTER.l1_banks)
    bench = Bench(dut, seed=7)
    window = 64 * dut.banks          # 64 rows, so that reads find written data

    async def body(ctx):
        for _ in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(words=window), activity=0.5)
        bench.set_dma(bench.dma_access(words=window), activity=0.8)
        bench.set_wide(bench.wide_access(words=window, write_share=0.6), activity=0.8)
        await bench.run(ctx, 120)

    simulate(dut, body, priority=int(CLUSTER.l1_hwpe_priority))
    check_bounds(bench, dut, CLUSTER.l1_hwpe_priority)
    assert bench.wide.grants > 20 and bench.conflict_cycles > 20


def test_parameters_are_checked():
    for kwargs in ({"starvation_window": (0, 4)}, {"starvation_window": (4, 4)},
                   {"banks": 6}, {"wide_width": 288}, {"dma_width": 48},
                   {"dma_width": 288}, {"base": BASE + 0x100}):
        with pytest.raises(ValueError):
            L1Memory(**{**SMALL, **kwargs})


@pytest.mark.parametrize("config", [SMALL, DEFAULT], ids=["small", "default"])
def test_verilog(config):
    dut = L1Memory(**config)
    text = verilog.convert(dut, name="l1", emit_src=False)
    for b in (0, dut.banks - 1):
        assert f"reg [31:0] bank{b} [{dut.depth - 1}:0];" in text
    assert "narrow0__gnt" in text and "wide__r_data" in text and "hwpe_priority" in text
    assert "dma__r_data" in text


def test_engine_beside_dma_and_cores_is_at_most_15_percent_slower():
    """The default cluster's L1 and arbitration: the HWPE's port asks every cycle, the DMA
    streams beats and every core accesses a random bank with probability 0.3 per cycle; the
    HWPE is granted in at least 1 / 1.15 of the cycles (alone: every cycle)."""
    dut = L1Memory(**DEFAULT)
    bench = Bench(dut, seed=41)
    cycles = 240

    async def body(ctx):
        for _ in range(dut.narrow_ports):
            bench.add_narrow(bench.narrow_access(), activity=0.3)
        bench.set_dma(bench.dma_access(), activity=1.0)
        bench.set_wide(bench.wide_access(), activity=1.0)
        for _ in range(cycles):
            await bench.step(ctx)

    simulate(dut, body, priority=int(CLUSTER.l1_hwpe_priority))
    assert bench.wide.grants * 1.15 >= cycles
    assert bench.dma.grants > 0 and all(m.grants > 0 for m in bench.narrow)
    check_bounds(bench, dut, CLUSTER.l1_hwpe_priority)
