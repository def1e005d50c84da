"""The board self-test logic under amaranth.sim: the verdict follows the data."""

import pytest
from amaranth.sim import Simulator

from hw import configs
from hw.selftest import MESSAGES, SelfTest, stored_job

DIVISOR = 4  # clock cycles per UART bit in simulation


def decode_uart(bits, divisor=DIVISOR):
    """Bytes of an 8N1 line sampled once per clock cycle."""
    out, i = [], 0
    while i < len(bits):
        if bits[i]:
            i += 1
            continue
        middle = i + divisor // 2
        if middle + 9 * divisor >= len(bits):
            break
        out.append(sum(bits[middle + divisor * (b + 1)] << b for b in range(8)))
        assert bits[middle + 9 * divisor] == 1, "missing stop bit"
        i = middle + 9 * divisor
    return bytes(out)


def run(stored, cycles):
    dut = SelfTest(stored, uart_divisor=DIVISOR, repeat_cycles=0)
    seen = {"bits": [], "running": 0}

    async def bench(ctx):
        for _ in range(cycles):
            await ctx.tick()
            seen["bits"].append(ctx.get(dut.tx))
            seen["running"] |= ctx.get(dut.running)
        for name in ("passed", "failed", "mismatches", "beats"):
            seen[name] = ctx.get(getattr(dut, name))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    seen["text"] = decode_uart(seen["bits"])
    return seen


@pytest.fixture(scope="module")
def stored():
    return stored_job(configs.get("small").ita)


def cycles_needed(stored):
    return 700 + len(MESSAGES[True]) * 10 * DIVISOR + 100


def test_stored_job_shape(stored):
    cfg = stored.config
    assert (cfg.N, cfg.M) == (4, 16)
    # a linear layer of 2 x 2 x 2 tiles: M input rows per (i, j, k) tile
    assert len(stored.input) == 8 * cfg.M
    assert len(stored.output) == 4 * cfg.M * cfg.M // cfg.N
    assert len(set(stored.output)) > len(stored.output) // 2  # not a trivial (constant) job


def test_led_lights_for_a_correct_engine(stored):
    seen = run(stored, cycles_needed(stored))
    assert seen["running"]
    assert (seen["passed"], seen["failed"], seen["mismatches"]) == (1, 0, 0)
    assert seen["beats"] == len(stored.output)
    assert seen["text"] == MESSAGES[True]


def test_led_stays_dark_when_the_expected_data_is_corrupted(stored):
    stored.output = list(stored.output)
    original = stored.output[37]
    stored.output[37] = original ^ (1 << 9)  # one bit of lane 1 of one beat
    try:
        seen = run(stored, cycles_needed(stored))
    finally:
        stored.output[37] = original
    assert (seen["passed"], seen["failed"], seen["mismatches"]) == (0, 1, 1)
    assert seen["text"] == MESSAGES[False]


def test_missing_beats_fail(stored):
    """An engine that produces more beats than stored (here: one stored beat dropped)."""
    full = stored.output
    stored.output = full[:-1]
    try:
        seen = run(stored, cycles_needed(stored))
    finally:
        stored.output = full
    assert (seen["passed"], seen["failed"]) == (0, 1)
    assert seen["text"] == MESSAGES[False]
