# amaranth: UnusedElaboratable=no
"""ReciprocalDivider against Python's floor division, one division per cycle."""

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.rtl.divider import ReciprocalDivider


def _expected(config, divisor):
    return config.softmax_scalar // divisor if divisor else 0


def _stream(dut, divisors, *, idle=()):
    """Feed ``divisors`` back to back (idle cycles before the indices in ``idle``).

    Returns ``(issue_cycle, divisor, tag)`` per division and ``(cycle, quotient, tag)`` per
    ``valid_out`` cycle.
    """
    issued, results = [], []
    tag_count = 1 << len(dut.tag_in)

    async def testbench(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.valid_out):
                results.append((cycle, ctx.get(dut.quotient), ctx.get(dut.tag_out)))

        for index, divisor in enumerate(divisors):
            if index in idle:
                ctx.set(dut.valid_in, 0)
                ctx.set(dut.divisor, divisor ^ 1)  # garbage that must not come out
                await tick()
            tag = (index * 7 + 3) % tag_count
            ctx.set(dut.divisor, divisor)
            ctx.set(dut.tag_in, tag)
            ctx.set(dut.valid_in, 1)
            issued.append((cycle, divisor, tag))
            await tick()
        ctx.set(dut.valid_in, 0)
        for _ in range(dut.latency + 2):
            await tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return issued, results


def _check(dut, config, divisors, *, idle=()):
    issued, results = _stream(dut, divisors, idle=idle)
    assert len(results) == len(issued), "one valid_out per valid_in"
    errors = []
    for (start, divisor, tag), (end, quotient, tag_out) in zip(issued, results, strict=True):
        expected = (start + dut.latency, _expected(config, divisor), tag)
        if (end, quotient, tag_out) != expected:
            errors.append(f"divisor {divisor}: expected (cycle, quotient, tag) {expected}, "
                          f"got {(end, quotient, tag_out)}")
    assert not errors, f"{len(errors)} wrong divisions, first: " + "; ".join(errors[:5])


@pytest.mark.parametrize("bits_per_stage", [1, 3])
def test_all_small_and_random_divisors_back_to_back(bits_per_stage):
    rng = random.Random(bits_per_stage)
    top = (1 << DEFAULT_CONFIG.softmax_sum_width) - 1
    edges = [top, top - 1, 65280, 65281, 65279, 32640, 32639, 32641, 256, 255, 257]
    divisors = list(range(2001)) + edges + [rng.randint(0, top) for _ in range(1500)]
    dut = ReciprocalDivider(bits_per_stage=bits_per_stage)
    _check(dut, DEFAULT_CONFIG, divisors)


def test_idle_cycles_between_divisions():
    rng = random.Random(5)
    divisors = [rng.randint(0, 3000) for _ in range(200)]
    idle = {index for index in range(len(divisors)) if rng.random() < 0.3}
    _check(ReciprocalDivider(), DEFAULT_CONFIG, divisors, idle=idle)


def test_other_scalar_and_sum_width():
    config = ITAConfig(N=4, M=16, softmax_sum_width=11, softmax_scalar=1000)
    dut = ReciprocalDivider(config=config, tag_width=2, bits_per_stage=4)
    assert dut.quotient_width == 10 and dut.latency == 3
    assert len(dut.divisor) == 11 and len(dut.tag_in) == len(dut.tag_out) == 2
    _check(dut, config, list(range(1 << 11)))


def test_signature_and_latency():
    dut = ReciprocalDivider()
    assert dut.quotient_width == 16 and dut.latency == 16
    assert len(dut.divisor) == DEFAULT_CONFIG.softmax_sum_width
    assert len(dut.tag_in) == (DEFAULT_CONFIG.M - 1).bit_length()
    assert ReciprocalDivider(bits_per_stage=5).latency == 4
    assert ReciprocalDivider(bits_per_stage=99).latency == 1
    assert len(ReciprocalDivider(config=ITAConfig(N=1, M=1)).tag_in) == 1


@pytest.mark.parametrize("arguments", [
    {"config": "not a config"},
    {"tag_width": 0},
    {"bits_per_stage": 0},
    {"bits_per_stage": 1.5},
])
def test_rejects_bad_parameters(arguments):
    with pytest.raises((TypeError, ValueError)):
        ReciprocalDivider(**arguments)


@pytest.mark.parametrize("bits_per_stage", [1, 4])
def test_converts_to_verilog(bits_per_stage):
    text = verilog.convert(ReciprocalDivider(bits_per_stage=bits_per_stage),
                           name="reciprocal_divider", emit_src=False)
    assert "module reciprocal_divider" in text
