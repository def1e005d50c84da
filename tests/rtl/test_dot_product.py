# amaranth: UnusedElaboratable=no
"""The DotProductArray RTL against numpy, with a new operand row and weight slab every cycle."""

import numpy as np
import pytest
from amaranth import Value, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from ita.config import ITAConfig
from ita.rtl.dot_product import DotProductArray

SMALL_CONFIGS = [ITAConfig(N=4, M=8), ITAConfig(N=2, M=16)]


def _name(config):
    return f"N{config.N}M{config.M}"


def _pack(values, width):
    """One integer of ``values`` (lane 0 in the least-significant bits, two's complement)."""
    mask = (1 << width) - 1
    word = 0
    for lane, value in enumerate(np.asarray(values).ravel()):
        word |= (int(value) & mask) << (lane * width)
    return word


def _reference(operand, unsigned_flag, weights):
    """Expected sums, ``(cycles, N)``: operand bytes read as uint8 or int8 per cycle."""
    operand = np.asarray(operand, dtype=np.int64) & 0xFF
    signed_operand = np.where(operand >= 128, operand - 256, operand)
    extended = np.where(np.asarray(unsigned_flag, dtype=bool)[:, None], operand, signed_operand)
    return np.einsum("cm,cnm->cn", extended, np.asarray(weights, dtype=np.int64))


def _simulate(config, operand, unsigned_flag, weights):
    """Stream one (operand, flag, weights) triple per cycle; results ``latency`` cycles later.

    ``operand`` is ``(cycles, M)`` bytes (any int8 or uint8 value), ``unsigned_flag``
    ``(cycles,)`` and ``weights`` ``(cycles, N, M)`` int8. Returns ``(cycles, N)`` sums.
    """
    dut = DotProductArray(config=config)
    cycles = len(operand)
    operand_words = [_pack(row, 8) for row in operand]
    weight_words = [_pack(slab, 8) for slab in weights]
    flags = [int(flag) for flag in unsigned_flag]
    operand_port, weight_port = Value.cast(dut.operand), Value.cast(dut.weights)
    result_port = Value.cast(dut.result)
    latency = dut.latency
    seen = []

    async def testbench(ctx):
        for cycle in range(cycles + latency):
            if cycle >= latency:
                seen.append(ctx.get(result_port))
            if cycle < cycles:
                ctx.set(operand_port, operand_words[cycle])
                ctx.set(dut.operand_unsigned, flags[cycle])
                ctx.set(weight_port, weight_words[cycle])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    width, mask = config.acc_width, (1 << config.acc_width) - 1
    half = 1 << (width - 1)
    return np.array([[(((word >> (unit * width)) & mask) ^ half) - half
                      for unit in range(config.N)] for word in seen], dtype=np.int64)


def _check(config, operand, unsigned_flag, weights, *, limit=8):
    operand = np.asarray(operand, dtype=np.int64)
    unsigned_flag = np.asarray(unsigned_flag, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.int64)
    assert operand.shape == (len(operand), config.M)
    assert weights.shape == (len(operand), config.N, config.M)
    actual = _simulate(config, operand, unsigned_flag, weights)
    expected = _reference(operand, unsigned_flag, weights)
    bad = np.argwhere(actual != expected)
    if not len(bad):
        return
    lines = [f"cycle {cycle} unit {unit} (operand_unsigned={int(unsigned_flag[cycle])}, "
             f"operand={operand[cycle].tolist()}, weights={weights[cycle, unit].tolist()}): "
             f"expected {int(expected[cycle, unit])}, got {int(actual[cycle, unit])}"
             for cycle, unit in bad[:limit]]
    raise AssertionError(f"{len(bad)} of {actual.size} sums differ:\n" + "\n".join(lines))


def _random(rng, config, cycles, *, unsigned_flag):
    """Random bytes; the operand range follows the flag (uint8 when set, int8 when not)."""
    flags = np.broadcast_to(np.asarray(unsigned_flag, dtype=np.int64), (cycles,)).copy()
    operand = np.where(flags[:, None] == 1,
                       rng.integers(0, 256, (cycles, config.M)),
                       rng.integers(-128, 128, (cycles, config.M)))
    weights = rng.integers(-128, 128, (cycles, config.N, config.M))
    return operand, flags, weights


def test_latency():
    assert DotProductArray.latency == DotProductArray(config=ITAConfig(N=2, M=4)).latency == 1


def test_reference_model():
    # The numpy model itself: one hand-computed case per mode.
    operand = [[255, 1, 128, 2]]
    weights = [[[1, 1, 1, 1], [-128, 0, 0, 0]]]
    assert _reference(operand, [0], weights).tolist() == [[-1 + 1 - 128 + 2, 128]]
    assert _reference(operand, [1], weights).tolist() == [[255 + 1 + 128 + 2, 255 * -128]]


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=_name)
@pytest.mark.parametrize("flag", [0, 1])
def test_random_stream(config, flag):
    rng = np.random.default_rng(10 * config.M + flag)
    _check(config, *_random(rng, config, 300, unsigned_flag=flag))


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=_name)
def test_mixed_unsigned_flag_per_cycle(config):
    rng = np.random.default_rng(config.N)
    flags = rng.integers(0, 2, 400)
    # Operand bytes over the whole 0..255 range in both modes: the flag alone decides.
    operand = rng.integers(0, 256, (400, config.M))
    weights = rng.integers(-128, 128, (400, config.N, config.M))
    # Runs of one mode, then strict alternation, so every transition is covered.
    flags[:50], flags[50:100] = 0, 1
    flags[100:200] = np.arange(100) % 2
    _check(config, operand, flags, weights)


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=_name)
def test_extremes(config):
    n, m = config.N, config.M
    rows = []  # (operand row, flag, weight slab)

    def add(byte, flag, weight):
        rows.append((np.full(m, byte), flag, np.full((n, m), weight)))

    add(-128, 0, -128)  # largest positive sum: M * 16384
    add(-128, 0, 127)   # most negative signed sum
    add(127, 0, -128)
    add(127, 0, 127)
    add(255, 1, -128)   # most negative unsigned-mode sum: M * 255 * -128
    add(255, 1, 127)    # largest unsigned-mode sum
    add(128, 1, -128)
    add(0, 1, -128)
    add(-1, 0, -128)    # the same byte 0xff as -1 in signed mode ...
    add(-1, 1, -128)    # ... and as 255 in unsigned mode
    add(0, 0, 0)
    # Alternating signs across the row and a different extreme per unit.
    alternating = np.where(np.arange(m) % 2, -128, 127)
    unit_weights = np.array([[(-128, 127, -1, 1)[unit % 4]] * m for unit in range(n)])
    for flag in (0, 1, 0, 1):
        rows.append((alternating, flag, unit_weights))
        rows.append((-alternating - 1, flag, -unit_weights - 1))
    # A single non-zero lane at every position, to catch a dropped or reordered product.
    for lane in range(m):
        operand = np.zeros(m, dtype=np.int64)
        operand[lane] = -128
        rows.append((operand, lane % 2, np.full((n, m), -128)))
    operand, flags, weights = (np.array(column) for column in zip(*rows, strict=True))
    _check(config, operand, flags, weights)
    expected = _reference(operand, flags, weights)
    assert expected[0, 0] == m * 128 * 128
    assert expected[4, 0] == m * 255 * -128


def test_full_size_short_run():
    config = ITAConfig(N=16, M=64)
    rng = np.random.default_rng(64)
    operand, flags, weights = _random(rng, config, 4, unsigned_flag=[0, 1, 1, 0])
    operand[0], weights[0] = -128, -128    # 64 * 16384 = 2**20
    operand[1], weights[1] = 255, -128     # the most negative sum of the full array
    _check(config, operand, flags, weights)


def test_ports():
    config = ITAConfig(N=2, M=4)
    assert DotProductArray(config=config).signature == wiring.Signature({
        "operand": In(data.ArrayLayout(unsigned(8), 4)),
        "operand_unsigned": In(1),
        "weights": In(data.ArrayLayout(data.ArrayLayout(signed(8), 4), 2)),
        "result": Out(data.ArrayLayout(signed(26), 2)),
    })


def test_converts_to_verilog():
    text = verilog.convert(DotProductArray(config=ITAConfig(N=2, M=4)), name="ita_dot_product",
                           emit_src=False)
    assert "module ita_dot_product" in text
    for port in ("operand", "operand_unsigned", "weights", "result", "clk"):
        assert port in text
