# amaranth: UnusedElaboratable=no
"""The PingPongBuffer RTL with a randomly stalling producer and a randomly slow consumer."""

from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth import Shape, Value, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from ita.rtl.ping_pong import PingPongBuffer

ROW = data.ArrayLayout(signed(8), 4)
COUNT = unsigned(16)  #: beats numbered 0, 1, ... in stream order


@dataclass
class Stats:
    cycles: int = 0
    banks_seen: int = 0          #: banks released by the consumer
    blocked: int = 0             #: cycles with fill.valid high but fill.ready low
    both_full: int = 0           #: cycles with both banks full
    overwrite_after_release: int = 0  #: beats written into a bank in the cycle after release
    released_bank_checks: int = 0
    seen: list = field(default_factory=list)  #: contents of every released bank, in order


def _run(*, beats, banks, beat_shape=COUNT, valid_prob=1.0, release_prob=1.0,
         seed=0, sequential=True):
    """Stream ``banks * beats`` beats through a buffer and check it every cycle.

    The producer offers a beat with probability ``valid_prob`` (random payload garbage
    otherwise); the consumer raises ``release`` with probability ``release_prob`` in any
    cycle, also when its bank is not ready (which must be ignored). Beats are numbered
    ``0, 1, ...`` when ``sequential`` and random otherwise.
    """
    rng = np.random.default_rng(seed)
    dut = PingPongBuffer(beat_shape=beat_shape, beats=beats)
    width = Shape.cast(beat_shape).width
    mask, bank_mask = (1 << width) - 1, (1 << (width * beats)) - 1
    total = banks * beats
    if sequential:
        assert total <= mask + 1
        words = list(range(total))
    else:
        words = [int(rng.integers(0, 1 << width, dtype=np.uint64)) for _ in range(total)]
    payload, banks_port = Value.cast(dut.fill.payload), Value.cast(dut.banks)
    stats = Stats()

    def chunk(index):
        return words[index * beats:(index + 1) * beats]

    def bank_beats(word, bank):
        content = (word >> (bank * width * beats)) & bank_mask
        return [(content >> (i * width)) & mask for i in range(beats)]

    async def testbench(ctx):
        sent = completed = released = 0
        pending = None  # (bank, contents) released in the previous cycle
        cycle = 0
        while released < banks:
            cycle += 1
            assert cycle < 20 * total + 100, f"no progress: sent {sent}, released {released}"
            valid = sent < total and rng.random() < valid_prob
            release = rng.random() < release_prob
            ctx.set(dut.fill.valid, valid)
            ctx.set(payload, words[sent] if valid else int(rng.integers(0, mask + 1)))
            ctx.set(dut.release, release)

            fill_ready, ready = ctx.get(dut.fill.ready), ctx.get(dut.ready)
            current, contents = ctx.get(dut.current), ctx.get(banks_port)
            full = completed - released
            where = f"cycle {cycle} (sent {sent}, filled {completed}, released {released})"
            assert fill_ready == (full < 2), f"{where}: fill.ready={fill_ready} with {full} full"
            assert ready == (full > 0), f"{where}: ready={ready} with {full} banks full"
            assert current == released % 2, f"{where}: current={current}"
            if ready:
                got = bank_beats(contents, current)
                assert got == chunk(released), \
                    f"{where}: bank {current} holds {got}, expected {chunk(released)}"
            if full == 2:
                stats.both_full += 1
                other = bank_beats(contents, 1 - current)
                assert other == chunk(released + 1), \
                    f"{where}: waiting bank {1 - current} holds {other}, " \
                    f"expected {chunk(released + 1)}"
            if pending is not None:
                bank, before = pending
                got = bank_beats(contents, bank)
                assert got == before, \
                    f"{where}: bank {bank} changed in the cycle after its release: " \
                    f"{before} -> {got}"
                stats.released_bank_checks += 1
                if valid and fill_ready and completed % 2 == bank:
                    stats.overwrite_after_release += 1
                pending = None

            stats.blocked += valid and not fill_ready
            if valid and fill_ready:
                sent += 1
                completed += sent % beats == 0
            if release and ready:
                stats.seen.append(bank_beats(contents, current))
                pending = (current, bank_beats(contents, current))
                released += 1
            await ctx.tick()

        # The bank released last must still be readable one cycle later, and nothing is left.
        bank, before = pending
        assert bank_beats(ctx.get(banks_port), bank) == before
        stats.released_bank_checks += 1
        assert not ctx.get(dut.ready) and ctx.get(dut.fill.ready)
        stats.cycles = cycle
        stats.banks_seen = released

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # Every beat reached the consumer exactly once, in stream order.
    assert [beat for bank in stats.seen for beat in bank] == words
    return stats


def test_reset_state():
    dut = PingPongBuffer(beat_shape=unsigned(8), beats=2)

    async def testbench(ctx):
        for _ in range(3):
            assert ctx.get(dut.fill.ready) == 1
            assert ctx.get(dut.ready) == 0
            assert ctx.get(dut.current) == 0
            ctx.set(dut.release, 1)  # releasing an empty bank does nothing
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("beats", [1, 2, 4])
def test_full_rate_never_blocks(beats):
    # A consumer that releases each bank as soon as it is ready never stalls the producer.
    stats = _run(beats=beats, banks=200)
    assert stats.blocked == 0
    assert stats.cycles == 200 * beats + 1


@pytest.mark.parametrize("beats, valid_prob, release_prob, seed", [
    (1, 0.5, 0.5, 1),
    (3, 0.7, 0.3, 2),
    (4, 0.9, 0.1, 3),
    (4, 0.3, 0.6, 4),
    (5, 1.0, 0.05, 5),
    (2, 0.6, 1.0, 6),
])
def test_random_producer_and_consumer(beats, valid_prob, release_prob, seed):
    stats = _run(beats=beats, banks=300, valid_prob=valid_prob, release_prob=release_prob,
                 seed=seed)
    assert stats.banks_seen == 300
    assert stats.released_bank_checks == 300


def test_producer_blocked_while_both_banks_full():
    stats = _run(beats=3, banks=200, valid_prob=0.95, release_prob=0.08, seed=7)
    assert stats.both_full > 200 and stats.blocked > 200


def test_released_bank_unchanged_while_refilled():
    # A fast producer waiting on a slow consumer writes into the bank right after its
    # release; the old contents must still be there during that cycle.
    stats = _run(beats=2, banks=200, valid_prob=1.0, release_prob=0.1, seed=8)
    assert stats.overwrite_after_release > 150


@pytest.mark.parametrize("beats", [1, 3])
def test_array_beats_with_random_payloads(beats):
    stats = _run(beats=beats, banks=150, beat_shape=ROW, valid_prob=0.6, release_prob=0.4,
                 seed=9 + beats, sequential=False)
    assert stats.banks_seen == 150


def test_beats_property_and_validation():
    assert PingPongBuffer(beat_shape=ROW, beats=3).beats == 3
    with pytest.raises(ValueError, match="at least one beat"):
        PingPongBuffer(beat_shape=ROW, beats=0)


def test_ports():
    assert PingPongBuffer(beat_shape=ROW, beats=3).signature == wiring.Signature({
        "fill": In(stream.Signature(ROW)),
        "ready": Out(1),
        "current": Out(1),
        "banks": Out(data.ArrayLayout(data.ArrayLayout(ROW, 3), 2)),
        "release": In(1),
    })


@pytest.mark.parametrize("beats", [1, 4])
def test_converts_to_verilog(beats):
    text = verilog.convert(PingPongBuffer(beat_shape=ROW, beats=beats), name="ita_ping_pong",
                           emit_src=False)
    assert "module ita_ping_pong" in text
    for port in ("fill__valid", "fill__ready", "fill__payload", "ready", "current", "banks",
                 "release"):
        assert port in text
