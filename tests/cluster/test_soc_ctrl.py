# amaranth: UnusedElaboratable=no
"""SoC control under amaranth.sim: stdout, exit, cycle counter and trap report."""

from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.soc_ctrl import CYCLE_BITS, SocCtrl

from .bus_master import WORD_MASK, access

BASE = memory_map.region("SOC_CTRL").base
REGISTERS = {r.name: r for r in memory_map.SOC_CTRL}
WORD_BITS = 32
LOW_BYTE = 0b0001


def address(name):
    return BASE + REGISTERS[name].offset


def simulate(body):
    """Run ``body(ctx, dut, bus)``; returns the characters printed, with their cycles."""
    dut = SocCtrl()
    printed = []

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, char in ctx.tick().sample(dut.char_valid, dut.char):
            if valid:
                printed.append((cycle, chr(char)))
            cycle += 1

    class Bus:
        def __init__(self, ctx):
            self.ctx = ctx

        async def write(self, name, data, be=0xF):
            value, waited = await access(self.ctx, dut.bus, address(name), write=True,
                                         data=data, be=be)
            assert value == 0 and waited == 0

        async def read(self, name):
            value, waited = await access(self.ctx, dut.bus, address(name))
            assert waited == 0
            return value

    async def bench(ctx):
        await body(ctx, dut, Bus(ctx))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
    return printed


def test_putchar_word_and_byte_stores():
    async def body(ctx, dut, bus):
        await bus.write("PUTCHAR", ord("H"))
        await bus.write("PUTCHAR", 0xFFFF_FF00 | ord("i"), be=LOW_BYTE)   # sb: lane 0 only
        await ctx.tick().repeat(3)
        await bus.write("PUTCHAR", ord("\n"))
        await ctx.tick()
        assert not ctx.get(dut.exit_valid) and not ctx.get(dut.trap_valid)

    printed = simulate(body)
    # One pulse per write, in the cycle after its grant.
    assert printed == [(1, "H"), (2, "i"), (6, "\n")]


def test_exit_is_sticky_and_keeps_the_first_code():
    codes = []

    async def body(ctx, dut, bus):
        await ctx.tick().repeat(2)
        assert not ctx.get(dut.exit_valid)
        await bus.write("EXIT", 3)
        codes.append((ctx.get(dut.exit_valid), ctx.get(dut.exit_code)))
        await ctx.tick().repeat(5)
        await bus.write("EXIT", 0)
        await ctx.tick()
        codes.append((ctx.get(dut.exit_valid), ctx.get(dut.exit_code)))
        assert await bus.read("EXIT") == 0   # write-only

    simulate(body)
    assert codes == [(1, 3), (1, 3)]


def test_cycle_counter_counts_every_cycle():
    seen = []

    async def body(ctx, dut, bus):
        first = await bus.read("CYCLES")
        await ctx.tick().repeat(10)
        second = await bus.read("CYCLES")
        seen.extend([first, second, await bus.read("CYCLES_HI")])
        assert ctx.get(dut.cycles) == second + 2

    simulate(body)
    first, second, high = seen
    # Read in cycles 0 and 11 (the first read's grant, 10 idle cycles, the second's grant).
    assert (first, second, high) == (0, 11, 0)


def test_cycle_high_word_is_latched_by_the_low_read():
    """Across a carry into the high word, a low-then-high pair reads one 64-bit value."""
    before_carry = (1 << WORD_BITS) - 2
    pairs = []

    async def body(ctx, dut, bus):
        ctx.set(dut.cycles, (5 << WORD_BITS) | before_carry)
        await ctx.tick()
        for _ in range(3):
            low = await bus.read("CYCLES")          # the carry falls between these reads
            high = await bus.read("CYCLES_HI")
            pairs.append((high << WORD_BITS) | low)
        assert (await bus.read("CYCLES_HI")) == 6  # still the value latched by the last read

    simulate(body)
    start = (5 << WORD_BITS) | before_carry
    assert pairs == [start + 1, start + 3, start + 5]
    assert all(value < 1 << CYCLE_BITS for value in pairs)


def test_trap_reports_cause_then_pc():
    cause, pc = 0x0000_0002, 0x1C00_1234
    states = []

    async def body(ctx, dut, bus):
        await bus.write("TRAP", cause)
        states.append((ctx.get(dut.trap_valid), ctx.get(dut.trap_cause)))
        await bus.write("TRAP_PC", pc)
        states.append((ctx.get(dut.trap_valid), ctx.get(dut.trap_cause), ctx.get(dut.trap_pc)))
        await bus.write("TRAP", WORD_MASK)           # a later trap does not hide the first
        await bus.write("TRAP_PC", 0)
        states.append((ctx.get(dut.trap_valid), ctx.get(dut.trap_cause), ctx.get(dut.trap_pc)))
        assert not ctx.get(dut.exit_valid)

    simulate(body)
    assert states == [(0, cause), (1, cause, pc), (1, cause, pc)]


def test_converts_to_verilog():
    text = verilog.convert(SocCtrl(), name="soc_ctrl", emit_src=False)
    assert "module soc_ctrl" in text and "trap_pc" in text
