# amaranth: UnusedElaboratable=no
"""SoftmaxUnit against the golden ``itamax``, fed in the engine's QK order and read in AV order.

QK order of one row block: for key tile t, for column group g, for row r, one beat with row r
and columns tM + gN .. tM + gN + N - 1. Then every row is normalised one key tile per cycle.
"""

import numpy as np
import pytest
from amaranth import Value
from amaranth.back import verilog
from amaranth.sim import Simulator

from ita.config import ITAConfig
from ita.golden import AccumulatorOverflowError, causal_mask, itamax
from ita.rtl.softmax import SoftmaxUnit


def _bits(flags):
    return sum(int(bool(flag)) << index for index, flag in enumerate(flags))


def _padded(array, columns, fill):
    return np.pad(array, ((0, 0), (0, columns - array.shape[1])), constant_values=fill)


def _simulate(config, blocks, *, rng=None, bubble_rate=0.0, early_normalize=False,
              logit_frac=0):
    """Run ``blocks`` of (logits, keep), each M x C, one after the other, with the logit
    step ``logit_frac`` (one k for all blocks, or one per block).

    Padded key columns of the last tile get logit 127 and keep 0: a unit that ignored the
    keep bits would let them win the maximum. With ``bubble_rate``, idle cycles are inserted
    at random between beats. With ``early_normalize``, row r is normalised as soon as
    ``rows_ready > r`` instead of after the whole block.

    Returns one dict per block: ``probs`` (M x C), ``padding`` (the outputs of the padded
    columns), ``last_beat`` (cycle of each row's last beat), ``ready`` (rows_ready per cycle
    from the block's restart on) and ``overflow``.
    """
    N, M = config.N, config.M
    dut = SoftmaxUnit(config=config)
    results = []

    async def testbench(ctx):
        cycle = 0
        ready = {}

        async def tick():
            nonlocal cycle
            await ctx.tick()
            cycle += 1
            ready[cycle] = ctx.get(dut.rows_ready)

        fracs = np.broadcast_to(logit_frac, (len(blocks),))
        for (logits, keep), frac in zip(blocks, fracs, strict=True):
            ctx.set(dut.logit_frac, int(frac))
            columns = logits.shape[1]
            tiles = -(-columns // M)
            logits = _padded(logits, tiles * M, 127)
            keep = _padded(keep, tiles * M, False)
            ctx.set(dut.restart, 1)
            await tick()
            ctx.set(dut.restart, 0)
            ready.clear()
            ready[cycle] = ctx.get(dut.rows_ready)
            assert ready[cycle] == 0, "restart clears rows_ready"

            last_beat = [None] * M
            for tile in range(tiles):
                for group in range(M // N):
                    lo = tile * M + group * N
                    for row in range(M):
                        while rng is not None and rng.random() < bubble_rate:
                            ctx.set(dut.acc_valid, 0)
                            ctx.set(dut.acc_row, (row + 1) % M)  # must be ignored
                            await tick()
                        last = tile == tiles - 1 and group == M // N - 1
                        ctx.set(dut.acc_valid, 1)
                        ctx.set(dut.acc_row, row)
                        ctx.set(dut.acc_logits, logits[row, lo:lo + N].tolist())
                        ctx.set(dut.acc_keep, _bits(keep[row, lo:lo + N]))
                        ctx.set(dut.acc_first, tile == 0 and group == 0)
                        ctx.set(dut.acc_last, last)
                        if last:
                            last_beat[row] = cycle
                        await tick()
            ctx.set(dut.acc_valid, 0)

            probs = np.zeros((M, tiles * M), dtype=np.int64)
            for row in range(M):
                while ready[cycle] < (row + 1 if early_normalize else M):
                    assert cycle < last_beat[-1] + 4 * dut.ready_latency, "rows_ready stalls"
                    await tick()
                for tile in range(tiles):
                    columns_of_tile = slice(tile * M, tile * M + M)
                    ctx.set(dut.norm_row, row)
                    ctx.set(dut.norm_logits, logits[row, columns_of_tile].tolist())
                    ctx.set(dut.norm_keep, _bits(keep[row, columns_of_tile]))
                    for _ in range(dut.norm_latency):
                        await tick()
                    probs[row, columns_of_tile] = list(ctx.get(dut.norm_probs))
            for _ in range(4):
                await tick()
            results.append({
                "probs": probs[:, :columns], "padding": probs[:, columns:],
                "last_beat": last_beat, "ready": dict(ready),
                "overflow": ctx.get(dut.overflow),
            })

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return dut, results


def _check_ready(dut, result):
    """rows_ready counts up by one per cycle at most, row r at its last beat + ready_latency."""
    ready, last_beat = result["ready"], result["last_beat"]
    cycles = sorted(ready)
    for before, after in zip(cycles, cycles[1:], strict=False):
        step = ready[after] - ready[before]
        assert step in (0, 1), f"rows_ready went {ready[before]} -> {ready[after]} at {after}"
    for row, beat in enumerate(last_beat):
        became_ready = min(cycle for cycle in cycles if ready[cycle] > row)
        assert became_ready == beat + dut.ready_latency, (
            f"row {row}: last beat in cycle {beat}, ready in cycle {became_ready}, "
            f"expected {beat + dut.ready_latency}")
    assert ready[cycles[-1]] == len(last_beat)


def _assert_probs(actual, expected, *, block=0):
    mismatches = [f"row {row}, column {column}: expected {expected[row, column]}, "
                  f"got {actual[row, column]}"
                  for row, column in np.argwhere(actual != expected)]
    assert not mismatches, (f"block {block}: {len(mismatches)} wrong probabilities; "
                            + "; ".join(mismatches[:8]))


def _check(config, blocks, **options):
    dut, results = _simulate(config, blocks, **options)
    fracs = np.broadcast_to(options.get("logit_frac", 0), (len(blocks),))
    for index, ((logits, keep), result, frac) in enumerate(zip(blocks, results, fracs,
                                                               strict=True)):
        expected = itamax(logits, n=config.N, mask=keep, logit_frac=int(frac), config=config)
        _assert_probs(result["probs"], expected, block=index)
        assert not result["padding"].any(), "padded key columns must get probability 0"
        assert not result["overflow"]
        _check_ready(dut, result)
    return dut


def _mixed_rows(rng, rows, columns):
    """Random rows interleaved with the corner cases of the streaming update."""
    logits = rng.integers(-128, 128, (rows, columns))
    keep = rng.random((rows, columns)) < 0.85
    ramp = np.linspace(-128, 127, columns).round().astype(np.int64)
    kinds = [
        ("random", None),
        ("narrow", lambda: rng.integers(90, 100, columns)),   # many terms above zero
        ("equal", lambda: np.full(columns, rng.integers(-128, 128))),
        ("one_hot", lambda: np.where(np.arange(columns) == rng.integers(columns), 127, -128)),
        ("late_max", lambda: ramp),                            # maximum grows every group
        ("late_jump", lambda: np.where(np.arange(columns) == columns - 1, 127, 0)),
        ("all_min", lambda: np.full(columns, -128)),
        ("all_max", lambda: np.full(columns, 127)),
        ("descending", lambda: ramp[::-1]),
    ]
    for row in range(rows):
        name, make = kinds[row % len(kinds)]
        if make is not None:
            logits[row] = make()
        if name in ("equal", "one_hot", "late_max", "late_jump") and row % 2:
            keep[row] = True
    keep[rows // 3] = False                      # a row with every key masked
    keep[rows // 2, : columns // 2] = False      # a row whose first half is masked
    return logits.astype(np.int8), keep


SIZES = [(4, 16), (8, 16), (16, 16), (4, 32), (8, 32), (16, 32)]


@pytest.mark.parametrize(("N", "M"), SIZES)
def test_matches_golden_over_two_key_tiles(N, M):
    rng = np.random.default_rng(N * 100 + M)
    _check(ITAConfig(N=N, M=M), [_mixed_rows(rng, M, 2 * M)])


def test_full_size_with_padded_keys():
    rng = np.random.default_rng(64)
    _check(ITAConfig(N=16, M=64), [_mixed_rows(rng, 64, 2 * 64 + 23)])


@pytest.mark.parametrize(("N", "M", "columns"), [(8, 16, 37), (4, 16, 5), (4, 32, 33), (4, 4, 3)])
def test_padded_key_columns_are_masked(N, M, columns):
    rng = np.random.default_rng(columns)
    logits = rng.integers(-128, 128, (M, columns)).astype(np.int8)
    _check(ITAConfig(N=N, M=M), [(logits, np.ones_like(logits, dtype=bool))])


@pytest.mark.parametrize("offset", [0, 16])
def test_causal_mask(offset):
    rng = np.random.default_rng(offset)
    logits = rng.integers(-128, 128, (16, 32)).astype(np.int8)
    _check(ITAConfig(N=4, M=16), [(logits, causal_mask(16, 32, offset=offset))])


def test_special_rows_only():
    config = ITAConfig(N=8, M=16)
    columns = 3 * 16
    logits = np.zeros((16, columns), dtype=np.int64)
    keep = np.ones((16, columns), dtype=bool)
    logits[0] = -128
    logits[1] = 127
    logits[2] = 5                                  # all equal
    logits[3, 40] = 127                            # one-hot in the last tile
    logits[3, np.arange(columns) != 40] = -128
    logits[4] = np.arange(columns) * 5 - 118       # maximum grows in every group
    logits[5] = -128
    logits[5, -1] = 127                            # maximum jumps at the very last key
    keep[6] = False                                # every key masked
    logits[7] = 100
    keep[7, :-1] = False                           # only the last key kept
    keep[8, ::2] = False
    logits[8, ::2] = 127                           # masked keys above every kept one
    logits[9] = np.repeat(np.arange(columns // 8) * 3, 8)  # 8 equal keys per group
    logits[10] = 120
    logits[10, 0] = 127                            # maximum at the first key
    logits[11:] = np.random.default_rng(11).integers(-3, 4, (5, columns))
    _check(config, [(logits.astype(np.int8), keep)])


@pytest.mark.parametrize(("N", "M"), [(8, 16), (16, 32)])
def test_softmax_shift_5(N, M):
    rng = np.random.default_rng(5)
    config = ITAConfig(N=N, M=M, softmax_shift=5)
    logits, keep = _mixed_rows(rng, M, 2 * M)
    _check(config, [(logits, keep)])


@pytest.mark.parametrize("logit_frac", [1, 2, 3])
@pytest.mark.parametrize(("N", "M"), [(4, 16), (16, 32)])
def test_finer_logit_steps(N, M, logit_frac):
    rng = np.random.default_rng(N * 10 + logit_frac)
    _check(ITAConfig(N=N, M=M), [_mixed_rows(rng, M, 2 * M + 5)], logit_frac=logit_frac)


def test_logit_step_changes_between_jobs_and_meets_the_shift_variant():
    rng = np.random.default_rng(3)
    blocks = [_mixed_rows(rng, 16, 32) for _ in range(4)]
    _check(ITAConfig(N=4, M=16), blocks, logit_frac=[3, 0, 2, 1])
    _check(ITAConfig(N=8, M=16, softmax_shift=2), blocks[:2], logit_frac=[3, 1])


def test_seven_fraction_bits():
    rng = np.random.default_rng(77)
    config = ITAConfig(N=4, M=8, logit_frac_max=7)
    _check(config, [_mixed_rows(rng, 8, 24)] * 3, logit_frac=[7, 5, 0])


def test_bubbles_and_normalizing_while_rows_finish():
    rng = np.random.default_rng(7)
    config = ITAConfig(N=4, M=16)
    _check(config, [_mixed_rows(rng, 16, 32)], rng=rng, bubble_rate=0.3, early_normalize=True)


@pytest.mark.parametrize(("N", "M"), [(4, 4), (2, 4), (3, 6)])
def test_row_repeats_every_few_cycles(N, M):
    # With M = 4 a row's groups arrive exactly four cycles apart: the tightest allowed spacing.
    rng = np.random.default_rng(N)
    _check(ITAConfig(N=N, M=M), [_mixed_rows(rng, M, 5 * M - 1)], early_normalize=True)


def test_consecutive_blocks_restart_the_statistics():
    rng = np.random.default_rng(9)
    config = ITAConfig(N=8, M=16)
    first = _mixed_rows(rng, 16, 48)
    second = (rng.integers(-128, 128, (16, 16)).astype(np.int8), np.ones((16, 16), dtype=bool))
    _check(config, [first, second, first])


def test_rows_ready_latency_is_divider_latency_plus_a_few():
    dut = SoftmaxUnit(config=ITAConfig(N=4, M=16))
    assert dut.ready_latency == dut.acc_latency + dut.divider_latency
    assert dut.divider_latency <= dut.ready_latency <= dut.divider_latency + 4
    assert dut.norm_latency == 1


def test_overflow_is_sticky_until_restart():
    config = ITAConfig(N=4, M=4, softmax_sum_width=10)  # sums from 1024 on overflow
    logits = np.zeros((4, 8), dtype=np.int8)
    keep = np.ones((4, 8), dtype=bool)
    keep[1:, 3:] = False                     # rows 1..3: three keys, sum 768 fits
    with pytest.raises(AccumulatorOverflowError):
        itamax(logits, mask=keep, config=config)
    quiet = (logits[:, :4], keep[:, :4] & (np.arange(4) < 3))
    _, results = _simulate(config, [(logits, keep), quiet])
    assert results[0]["overflow"] == 1
    assert results[1]["overflow"] == 0, "restart clears the overflow flag"
    expected = itamax(logits[1:], mask=keep[1:], config=config)
    _assert_probs(results[0]["probs"][1:], expected)
    _assert_probs(results[1]["probs"], itamax(quiet[0], mask=quiet[1], config=config), block=1)


def test_signature():
    config = ITAConfig(N=8, M=32, softmax_sum_width=19)
    dut = SoftmaxUnit(config=config)
    widths = {
        "acc_valid": 1, "acc_row": 5, "acc_logits": 8 * 8, "acc_keep": 8, "acc_first": 1,
        "acc_last": 1, "restart": 1, "logit_frac": 2, "rows_ready": 6, "overflow": 1, "norm_row": 5,
        "norm_logits": 8 * 32, "norm_keep": 32, "norm_probs": 8 * 32,
    }
    assert {name: len(Value.cast(getattr(dut, name))) for name in widths} == widths
    with pytest.raises(TypeError):
        SoftmaxUnit(config=None)


@pytest.mark.parametrize("config", [
    ITAConfig(),
    ITAConfig(N=4, M=16, softmax_shift=5),
    ITAConfig(N=1, M=1),
    ITAConfig(N=3, M=6),
    ITAConfig(N=2, M=4, logit_frac_max=1),
], ids=["default", "shift5", "1x1", "3x6", "frac1"])
def test_converts_to_verilog(config):
    text = verilog.convert(SoftmaxUnit(config=config), name="softmax_unit", emit_src=False)
    assert "module softmax_unit" in text and "[-1:0]" not in text


def test_logits_above_the_row_maximum_are_clamped_like_the_golden_model():
    # The engine never sends them (it reads back the same logits); the golden model clamps
    # max - x at 0, so they get the full reciprocal.
    config = ITAConfig(N=4, M=16)
    dut = SoftmaxUnit(config=config)
    logits = [1, 5, 0, -1, -2, 127, -128] + [0] * 9
    expected = [15, 15, 15, 7, 3, 15, 0] + [15] * 9  # inverse 65280 // (16 * 256) = 15

    async def testbench(ctx):
        ctx.set(dut.acc_keep, 0xF)
        for group in range(4):
            for row in range(16):
                ctx.set(dut.acc_valid, 1)
                ctx.set(dut.acc_row, row)
                ctx.set(dut.acc_first, group == 0)
                ctx.set(dut.acc_last, group == 3)
                await ctx.tick()
        ctx.set(dut.acc_valid, 0)
        for _ in range(dut.ready_latency):
            await ctx.tick()
        assert ctx.get(dut.rows_ready) == 16
        ctx.set(dut.norm_row, 3)
        ctx.set(dut.norm_logits, logits)
        ctx.set(dut.norm_keep, 0xFFFF)
        await ctx.tick()
        assert list(ctx.get(dut.norm_probs)) == expected

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
