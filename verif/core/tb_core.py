"""cocotb testbench: run one program on the single-core test top (verif/tops/core.py).

Options: :class:`verif.core.sim.CoreOptions` through :mod:`verif.channel`.

The testbench sleeps in one trigger until ``done`` rises (no per-cycle Python), then writes
``outcome.json`` to its working directory (the program's output, exit code or trap, cycles,
the log of peripheral register writes) and the RESULT line.
"""

import json

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cluster_integration.memory_map import region
from sw.build import read_hex
from verif.channel import receive
from verif.core.sim import CoreOptions
from verif.result import format_result, record_result
from verif.uvm.watchdog import within_cycles

PERIOD_NS = 10
RESET_CYCLES = 3


def _expectation(text):
    kind, _, value = text.partition(":")
    if kind not in ("exit", "trap") or not value:
        raise ValueError(f"expect must be exit:<code> or trap:<mcause>, not {text!r}")
    return kind, int(value, 0)


@cocotb.test()
async def run_program(dut):
    options = receive(CoreOptions)
    name, max_cycles = options.test_name, options.max_cycles
    kind, value = _expectation(options.expect)
    base, words = read_hex(options.app_hex)

    l2 = region("L2")
    if base < l2.base or base + 4 * len(words) > l2.end:
        raise ValueError(f"image {base:#x}+{4 * len(words)} does not fit L2")
    first = (base - l2.base) // 4
    for i, word in enumerate(words):
        dut.l2.mem[first + i].value = word

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.fetch_enable.value = 0
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    dut.fetch_enable.value = 1

    await within_cycles(RisingEdge(dut.done), max_cycles, PERIOD_NS)
    await ReadOnly()
    timed_out = dut.done.value != 1
    count = int(dut.stdout_count.value)
    kept = min(count, len(dut.stdout.mem))
    text = bytes(int(dut.stdout.mem[i].value) & 0xFF for i in range(kept))
    writes = int(dut.periph_writes.value)
    log = [[int(dut.log_addr.mem[i].value), int(dut.log_data.mem[i].value)]
           for i in range(min(writes, len(dut.log_addr.mem)))]
    outcome = {
        "output": text.decode("utf-8", errors="replace"),
        "chars": count,
        "timed_out": timed_out,
        "exit_code": (dut.exit_code.value.to_signed() if dut.exit_valid.value == 1 else None),
        "trap_cause": int(dut.trap_cause.value) if dut.trap_valid.value == 1 else None,
        "trap_pc": int(dut.trap_pc.value) if dut.trap_valid.value == 1 else None,
        "cycles": int(dut.done_cycles.value) if not timed_out else max_cycles,
        "periph_writes": writes,
        "periph_log": log,  # [address, value] of the first writes outside memory and SOC_CTRL
    }
    with open("outcome.json", "w") as fh:
        json.dump(outcome, fh, indent=1)
    for line in outcome["output"].splitlines():
        dut._log.info("program: %s", line)

    if timed_out:
        got = f"no exit within {max_cycles} cycles"
    elif outcome["trap_cause"] is not None:
        got = f"trap:{outcome['trap_cause']} at pc {outcome['trap_pc']:#010x}"
    else:
        got = f"exit:{outcome['exit_code']}"
    observed = outcome["exit_code"] if kind == "exit" else outcome["trap_cause"]
    ok = not timed_out and observed == value
    fields = {"cycles": outcome["cycles"], "outcome": got.replace(" ", "_")}
    record_result(format_result(name, "PASS" if ok else "FAIL", **fields))
    assert ok, f"expected {kind}:{value}, got {got}"
