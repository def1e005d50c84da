"""The controller's beat sequence equals the streaming order stated in schedule.py."""

import pytest
from amaranth.sim import Simulator

from ita.config import ITAConfig
from ita.rtl.controller import Controller
from ita.rtl.layouts import Mode, Step
from ita.rtl.schedule import plan, tiles


def expected_beats(mode, dims, config):
    m, n = config.M, config.N
    for p in plan(mode, **dims, bias=True, config=config):
        for i in p.row_tiles(m):
            for j in range(tiles(p.cols, m)):
                kt = tiles(p.inner, m)
                for k in range(kt):
                    for g in range(m // n):
                        for r in range(m):
                            yield (p.step, i * m + r, j * m + g * n, k * m, k == kt - 1,
                                   p.bias is not None and k == kt - 1)


def run_controller(mode, dims, config, stall_every=0):
    dut = Controller(config=config)
    got = []

    async def bench(ctx):
        ctx.set(dut.config.mode, mode)
        ctx.set(dut.config.bias_enable, 1)
        for field, name in (("seq_len", "S"), ("embed", "E"), ("proj", "P"), ("ffn", "F")):
            ctx.set(getattr(dut.config, field), dims.get(name, 0))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycle = 0
        while ctx.get(dut.running):
            ready = not (stall_every and cycle % stall_every == 0)
            ctx.set(dut.beat.ready, ready)
            if ready and ctx.get(dut.beat.valid):
                b = ctx.get(dut.beat.payload)
                got.append((Step(b.step), b.row_global, b.col_global, b.inner_base,
                            bool(b.last_inner), bool(b.bias_needed)))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("mode, dims, n, m", [
    (Mode.ATTENTION, {"S": 20, "E": 40, "P": 9}, 4, 16),
    (Mode.QKAV, {"S": 33, "P": 16}, 4, 16),
    (Mode.FFN, {"S": 16, "E": 8, "F": 40}, 8, 16),
    (Mode.LINEAR, {"S": 17, "E": 16, "P": 16}, 2, 8),
])
def test_beat_order_matches_schedule(mode, dims, n, m):
    config = ITAConfig(N=n, M=m)
    want = list(expected_beats(mode, dims, config))
    got = run_controller(mode, dims, config, stall_every=3)
    assert len(got) == len(want)
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a == b, f"beat {index}: controller {a}, schedule {b}"


def run_pattern(pattern, mode, dims, config, bias=True, stall_every=0):
    dut = Controller(config=config, pattern=pattern)
    m, n = config.M, config.N
    got = []

    async def bench(ctx):
        ctx.set(dut.config.mode, mode)
        ctx.set(dut.config.bias_enable, int(bias))
        for field, name in (("seq_len", "S"), ("embed", "E"), ("proj", "P"), ("ffn", "F")):
            ctx.set(getattr(dut.config, field), dims.get(name, 0))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycle = 0
        while ctx.get(dut.running) or cycle == 0:
            ready = not (stall_every and cycle % stall_every == 0)
            ctx.set(dut.beat.ready, ready)
            if ready and ctx.get(dut.beat.valid):
                b = ctx.get(dut.beat.payload)
                step, i, j, g, r = Step(b.step), b.tile_i, b.tile_j, b.group, b.row
                if pattern == "input":
                    got.append((step, i * m + r, b.inner_base))
                elif pattern == "weight":
                    got.append((step, j * m + g * n + r, b.inner_base))
                elif pattern == "bias":
                    got.append((step, (i if step == Step.V else j) * m + r * n))
                else:
                    got.append((step, i * m + r, j * m + g * n))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("pattern", ["input", "weight", "bias", "output"])
@pytest.mark.parametrize("mode, dims, bias", [
    (Mode.ATTENTION, {"S": 20, "E": 40, "P": 9}, True),
    (Mode.ATTENTION, {"S": 20, "E": 17, "P": 9}, False),
    (Mode.QKAV, {"S": 33, "P": 16}, True),
    (Mode.FFN, {"S": 16, "E": 8, "F": 40}, True),
    (Mode.LINEAR, {"S": 17, "E": 24, "P": 16}, True),
])
def test_stream_patterns_match_schedule(pattern, mode, dims, bias):
    from ita.rtl import schedule
    config = ITAConfig(N=4, M=8)
    steps = plan(mode, **dims, bias=bias, config=config)
    generator = getattr(schedule, f"{pattern}_beats")
    want = [(p.step, *rest[1:]) for p, *rest in generator(steps, config)]
    got = run_pattern(pattern, mode, dims, config, bias=bias, stall_every=4)
    assert len(got) == len(want), (len(got), len(want))
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a == b, f"{pattern} beat {index}: controller {a}, schedule {b}"
