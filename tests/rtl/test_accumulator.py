# amaranth: UnusedElaboratable=no
"""The Accumulator RTL against a Python model, fed tiles in the engine's slot order."""

import numpy as np
import pytest
from amaranth import Value, signed
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from ita.config import ITAConfig
from ita.rtl.accumulator import Accumulator

SMALL_CONFIGS = [ITAConfig(N=4, M=8), ITAConfig(N=2, M=4), ITAConfig(N=4, M=4)]
FIELDS = ("valid", "slot", "dot", "first", "last", "bias")


def _name(config):
    return f"N{config.N}M{config.M}"


def _wrap(value, width):
    half = 1 << (width - 1)
    return ((value + half) % (1 << width)) - half


def _pack(values, width):
    mask, word = (1 << width) - 1, 0
    for lane, value in enumerate(values):
        word |= (int(value) & mask) << (lane * width)
    return word


def _unpack(word, width, lanes):
    mask, half = (1 << width) - 1, 1 << (width - 1)
    return [(((word >> (lane * width)) & mask) ^ half) - half for lane in range(lanes)]


def _beat(valid, slot, dot, first, last, bias):
    return {"valid": int(valid), "slot": int(slot), "dot": [int(v) for v in dot],
            "first": int(first), "last": int(last), "bias": [int(v) for v in bias]}


def _model(config, beats):
    """Expected ``(cycle, sums)`` of every result: ``latency`` cycles after its last beat."""
    stored, results = {}, []
    for cycle, beat in enumerate(beats):
        if not beat["valid"]:
            continue
        previous = [0] * config.N if beat["first"] else stored[beat["slot"]]
        bias = beat["bias"] if beat["last"] else [0] * config.N
        total = [_wrap(d + p + b, config.acc_width)
                 for d, p, b in zip(beat["dot"], previous, bias, strict=True)]
        if beat["last"]:
            results.append((cycle + Accumulator.latency, total))
        else:
            stored[beat["slot"]] = total
    return results


def _simulate(config, beats):
    """Drive one beat per cycle; return ``(cycle, sums)`` for every cycle with result_valid."""
    dut = Accumulator(config=config)
    widths = {"dot": config.acc_width, "bias": config.bias_width}
    words = [{name: _pack(beat[name], widths[name]) if name in widths else beat[name]
              for name in FIELDS} for beat in beats]
    ports = {name: Value.cast(getattr(dut, name)) for name in FIELDS}
    result = Value.cast(dut.result)
    drain = Accumulator.latency + 2
    seen = []

    async def testbench(ctx):
        for cycle in range(len(beats) + drain):
            if ctx.get(dut.result_valid):
                seen.append((cycle, _unpack(ctx.get(result), config.acc_width, config.N)))
            idle = {name: 0 for name in FIELDS}
            for name, value in (words[cycle] if cycle < len(beats) else idle).items():
                ctx.set(ports[name], value)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


def _check(config, beats, *, limit=6):
    expected, actual = _model(config, beats), _simulate(config, beats)
    problems = []
    expected_at, actual_at = dict(expected), dict(actual)
    for cycle in sorted(set(expected_at) | set(actual_at)):
        want, got = expected_at.get(cycle), actual_at.get(cycle)
        if want == got:
            continue
        source = beats[cycle - Accumulator.latency] if cycle >= Accumulator.latency else None
        where = (f"from the beat of cycle {cycle - Accumulator.latency} (slot {source['slot']}, "
                 f"first={source['first']}, last={source['last']})" if source else "")
        if want is None:
            problems.append(f"cycle {cycle}: unexpected result_valid {where}, sums {got}")
        elif got is None:
            problems.append(f"cycle {cycle}: missing result {where}, expected {want}")
        else:
            units = [unit for unit in range(config.N) if want[unit] != got[unit]]
            problems.append(f"cycle {cycle} {where}: units {units}: expected {want}, got {got}")
    if problems:
        raise AssertionError(f"{len(problems)} results differ:\n" + "\n".join(problems[:limit]))
    return expected


def _slots(config):
    """Slots of one tile in the engine's order: ``for g (groups of N): for r (rows)``."""
    return [g * config.M + r for g in range(config.M // config.N) for r in range(config.M)]


def _idle(rng, config):
    """An idle cycle whose other inputs hold garbage, which must be ignored."""
    return _beat(0, rng.integers(0, config.beats_per_tile), _random_dot(rng, config),
                 rng.integers(0, 2), rng.integers(0, 2), _random_bias(rng, config))


def _random_dot(rng, config):
    # Mostly the range an M-long int8 dot product can reach, sometimes any 26-bit value.
    bound = config.M * 128 * 128 if rng.random() < 0.8 else 1 << (config.acc_width - 1)
    return rng.integers(-bound, bound, config.N)


def _random_bias(rng, config):
    return rng.integers(config.bias_min, config.bias_max + 1, config.N)


def _tiles(rng, config, inner_counts, *, idle=0.0, dot=None, bias=None):
    """Beats of output tiles with the given numbers of inner tiles, back to back.

    ``idle`` is the probability of an idle cycle before each beat; ``dot`` and ``bias``
    replace the random values with functions of (tile, inner tile, slot).
    """
    beats = []
    for tile, inner in enumerate(inner_counts):
        for k in range(inner):
            for slot in _slots(config):
                while rng.random() < idle:
                    beats.append(_idle(rng, config))
                d = dot(tile, k, slot) if dot else _random_dot(rng, config)
                b = bias(tile, k, slot) if bias else _random_bias(rng, config)
                beats.append(_beat(1, slot, d, k == 0, k == inner - 1, b))
    return beats


def test_latency():
    assert Accumulator.latency == Accumulator(config=ITAConfig(N=2, M=4)).latency == 2


def test_slot_order_covers_every_slot_once():
    config = ITAConfig(N=4, M=8)
    assert sorted(_slots(config)) == list(range(config.beats_per_tile))
    assert len(Accumulator(config=config).slot) == 4


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=_name)
@pytest.mark.parametrize("inner", [1, 2, 3])
def test_tiles_back_to_back(config, inner):
    rng = np.random.default_rng(100 * inner + config.M + config.N)
    expected = _check(config, _tiles(rng, config, [inner] * 3))
    assert len(expected) == 3 * config.beats_per_tile


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=_name)
def test_mixed_tiles_with_idle_cycles(config):
    rng = np.random.default_rng(7 * config.M + config.N)
    inner_counts = [1, 3, 2, 1, 2, 3, 1]
    expected = _check(config, _tiles(rng, config, inner_counts, idle=0.3))
    assert len(expected) == len(inner_counts) * config.beats_per_tile


def test_long_idle_gaps():
    # A partial sum must survive many idle cycles with garbage on every other input.
    config = ITAConfig(N=4, M=8)
    rng = np.random.default_rng(5)
    _check(config, _tiles(rng, config, [3, 2, 3], idle=0.9))


def test_results_in_engine_order():
    # The sums leave in the order their last beats arrived, one per beat.
    config = ITAConfig(N=2, M=4)
    rng = np.random.default_rng(6)
    beats = _tiles(rng, config, [2, 1], idle=0.2,
                   dot=lambda tile, k, slot: [1000 * tile + 100 * k + slot] * config.N,
                   bias=lambda tile, k, slot: [0] * config.N)
    results = _check(config, beats)
    first_tile = [sums[0] for _, sums in results[:config.beats_per_tile]]
    second_tile = [sums[0] for _, sums in results[config.beats_per_tile:]]
    assert first_tile == [2 * slot + 100 for slot in _slots(config)]
    assert second_tile == [1000 + slot for slot in _slots(config)]


def test_bias_only_on_last_inner_tile():
    config = ITAConfig(N=2, M=4)
    rng = np.random.default_rng(8)
    beats = _tiles(rng, config, [3, 1], dot=lambda *_: [0, 0],
                   bias=lambda tile, k, slot: [1 << k, -(1 << (k + 4))])
    results = _check(config, beats)
    assert {tuple(sums) for _, sums in results} == {(4, -64), (1, -16)}


def test_first_ignores_stale_partial_sums():
    # An output tile abandoned after its first inner tile must not leak into the next one.
    config = ITAConfig(N=2, M=4)
    rng = np.random.default_rng(9)
    beats = [dict(beat, last=0) for beat in _tiles(rng, config, [1])]  # partial sums only
    beats += _tiles(rng, config, [2, 1], idle=0.2)
    _check(config, beats)


@pytest.mark.parametrize("sign", [1, -1])
def test_wraps_at_accumulator_width(sign):
    config = ITAConfig(N=4, M=8)
    acc_max, bias_max = config.acc_max, config.bias_max
    near = [acc_max, acc_max - 1, 1 << 24, (1 << 24) + 12345]

    def dot(tile, k, slot):
        return [sign * near[(unit + slot) % 4] for unit in range(config.N)]

    def bias(tile, k, slot):
        return [sign * bias_max if sign > 0 else config.bias_min] * config.N

    rng = np.random.default_rng(10)
    beats = _tiles(rng, config, [1, 2, 3], idle=0.1, dot=dot, bias=bias)
    results = _check(config, beats)
    # The same sums without wrapping: most of them left the 26-bit range.
    unwrapped = _model(ITAConfig(N=4, M=8, acc_width=64), beats)
    outside = [not config.acc_min <= value <= acc_max for _, sums in unwrapped for value in sums]
    assert sum(outside) > len(outside) // 2
    assert [cycle for cycle, _ in results] == [cycle for cycle, _ in unwrapped]


def test_wraps_exactly_at_boundary():
    # acc_max + 1 wraps to acc_min, acc_min - 1 to acc_max; one below the edge does not wrap.
    config = ITAConfig(N=4, M=8)
    acc_max, acc_min = config.acc_max, config.acc_min
    cases = [  # (dot of inner tile 0, dot of inner tile 1, bias) per unit
        [(acc_max, 1, 0), (acc_max, 0, 0), (acc_min, -1, 0), (acc_min, 0, 0)],
        [(acc_max - 5, 0, 6), (acc_max - 5, 0, 5), (acc_min + 5, 0, -6), (acc_min + 5, -5, 0)],
        [(acc_max, acc_max, 0), (acc_min, acc_min, 0), (acc_max, acc_min, 0), (-1, 1, 0)],
    ]
    slots = _slots(config)
    beats = []
    for k in range(2):
        for index, slot in enumerate(slots):
            case = cases[index % len(cases)]
            beats.append(_beat(1, slot, [unit[k] for unit in case], k == 0, k == 1,
                               [unit[2] for unit in case]))
    results = _check(config, beats)
    assert results[0][1] == [acc_min, acc_max, acc_max, acc_min]
    assert results[1][1] == [acc_min, acc_max, acc_max, acc_min]
    assert results[2][1] == [-2, 0, -1, 0]


def test_idle_cycle_with_last_set_is_ignored():
    config = ITAConfig(N=2, M=4)
    beats = [_beat(0, 3, [5, 5], 1, 1, [1, 1])] * 3
    beats += [_beat(1, 3, [7, -7], 1, 0, [0, 0]), _beat(0, 3, [1, 1], 0, 1, [9, 9]),
              _beat(1, 3, [1, 2], 0, 1, [10, 20])]
    assert _check(config, beats) == [(7, [18, 15])]


def test_single_slot_consecutive_inner_tiles():
    """Back-to-back beats of one slot (N = M = 1) see the previous beat's write-back."""
    config = ITAConfig(N=1, M=1)
    assert _slots(config) == [0]
    beats = [_beat(1, 0, [d], k == 0, k == 2, [100]) for k, d in enumerate((1, 10, 1000))]
    assert _check(config, beats) == [(4, [1111])]


def test_single_slot_with_idle_cycles_between_beats():
    # The same single-slot tile works once a cycle separates the beats.
    config = ITAConfig(N=1, M=1)
    beats = []
    for k, d in enumerate((1, 10, 1000)):
        beats += [_beat(1, 0, [d], k == 0, k == 2, [100]), _beat(0, 0, [0], 0, 0, [0])]
    assert _check(config, beats) == [(6, [1111])]


def test_ports():
    config = ITAConfig(N=2, M=4)
    sums = data.ArrayLayout(signed(26), 2)
    assert Accumulator(config=config).signature == wiring.Signature({
        "valid": In(1),
        "slot": In(range(8)),
        "dot": In(sums),
        "first": In(1),
        "last": In(1),
        "bias": In(data.ArrayLayout(signed(24), 2)),
        "result": Out(sums),
        "result_valid": Out(1),
    })


def test_converts_to_verilog():
    text = verilog.convert(Accumulator(config=ITAConfig(N=2, M=4)), name="ita_accumulator",
                           emit_src=False)
    assert "module ita_accumulator" in text
    for port in ("valid", "slot", "dot", "first", "last", "bias", "result", "result_valid"):
        assert port in text
