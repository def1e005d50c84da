"""cocotb testbench for the smoke design (verif.smoke.design.Accumulate).

Drives ``count`` random values with random valid stalls and occasional clears from
``random.Random(seed)``, and checks ``sum`` against a Python model every cycle; with
``inject_error`` one expected value is corrupted, to prove the check fails when it should
(options: :class:`verif.smoke.SmokeOptions` through :mod:`verif.channel`).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from verif.channel import receive, run_seed
from verif.result import format_result, record_result
from verif.smoke import SmokeOptions

VALID_PROB = 0.7
CLEAR_PROB = 0.03
MAX_LOGGED = 10


def _wrap16(x: int) -> int:
    return (x + 0x8000) % 0x10000 - 0x8000


@cocotb.test()
async def smoke_accumulate(dut):
    # The seed the user asked for (not cocotb's per-test derivative), so SEED=n reproduces it.
    seed = run_seed(default=cocotb.RANDOM_SEED)
    options = receive(SmokeOptions)
    count, inject = options.count, options.inject_error
    rng = random.Random(seed)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.clear.value = 0
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    expected = 0
    pending = None  # (clear, accepted payload or None) seen at the last ReadOnly
    valid, payload, clear = False, 0, False
    sent = cycles = mismatches = 0
    inject_at = count // 2
    while True:
        await RisingEdge(dut.clk)
        if pending is not None:
            clear, value = pending
            expected = _wrap16((0 if clear else expected) + (value or 0))
        if sent == count:  # everything sent: idle the inputs and check the final sum
            dut.i__valid.value = 0
            dut.clear.value = 0
            await ReadOnly()
        else:
            cycles += 1
            # A valid beat must hold until accepted; otherwise draw a new one.
            if not valid:
                valid = rng.random() < VALID_PROB
                payload = rng.randint(-128, 127)
            clear = rng.random() < CLEAR_PROB
            dut.i__valid.value = int(valid)
            dut.i__payload.value = payload & 0xFF
            dut.clear.value = int(clear)
            await ReadOnly()
        want = expected + (1 if inject and cycles == inject_at else 0)
        got = dut.sum.value.to_signed()
        if got != want:
            mismatches += 1
            if mismatches <= MAX_LOGGED:
                dut._log.error(
                    "cycle %d: sum=%d, expected %d (sent %d of %d, last input valid=%d "
                    "payload=%d clear=%d)",
                    cycles,
                    got,
                    want,
                    sent,
                    count,
                    valid,
                    payload,
                    clear,
                )
        if sent == count:
            break
        accepted = valid and dut.i__ready.value == 1
        pending = (clear, payload if accepted else None)
        if accepted:
            sent += 1
            valid = False

    status = "PASS" if mismatches == 0 else "FAIL"
    line = format_result(
        "smoke", status, cycles=cycles, ideal_cycles=count, seed=seed, mismatches=mismatches
    )
    record_result(line)
    assert mismatches == 0, f"{mismatches} sum mismatches over {cycles} cycles (seed {seed})"
