"""The C runtime on a Verilated CV32E40P (single-core test top, verif/core): programs built by
sw.build print through SOC_CTRL, exit with main's value, and report traps with cause and PC.
The same runs are ``make sim TEST=core_hello`` and ``make sim TEST=core_trap``."""

import re

import pytest

from cluster_integration import memory_map as mm
from cluster_integration.hwpe import regmap
from verif.core.sim import build_model, run_app
from verif.hwpe import regs_generated as ita_regs

pytestmark = pytest.mark.verilator

#: A generous bound on the whole program (measured: 1,096 cycles from reset to EXIT).
HELLO_MAX_CYCLES = 5_000


@pytest.fixture(scope="module", autouse=True)
def model():
    return build_model()


def test_hello():
    run = run_app("hello", "exit:0")
    assert run.status == "PASS", run.fields
    out = run.outcome
    assert re.fullmatch(r"hello from core 0\n1 cores, \d+ cycles on core 0\n", out["output"]), \
        out["output"]
    assert out["exit_code"] == 0 and out["trap_cause"] is None and not out["timed_out"]
    assert 0 < out["cycles"] < HELLO_MAX_CYCLES
    assert run.fields["cycles"] == out["cycles"]


def test_trap_reports_cause_and_pc():
    run = run_app("trap", "trap:2")
    assert run.status == "PASS", run.fields
    out = run.outcome
    pc = run.app.symbols["trap_here"]
    assert (out["trap_cause"], out["trap_pc"], out["exit_code"]) == (2, pc, None)
    assert out["output"] == ("about to execute an illegal instruction\n\n"
                             f"*** trap on core 0: mcause=0x00000002 mepc={pc:#010x} "
                             "mtval=0x00000000\n")
    assert run.fields["outcome"] == f"trap:2_at_pc_{pc:#010x}"


def test_trap_fails_a_run_that_expects_an_exit():
    run = run_app("trap", "exit:0", test_name="core_trap_unexpected")
    assert run.status == "FAIL"
    assert run.outcome["trap_cause"] == 2


def test_runtime_selftest():
    run = run_app("selftest", "exit:0")
    assert run.status == "PASS", (run.fields, run.outcome)
    assert run.outcome["output"] == (
        "[-42|   42|42   |-0042|beef|BEEF|00001234|4000000000|z|str|ab  |  ab|%|0x10|  7]\n"
        "selftest: 0 failures\n")


def test_timeout_is_a_failure():
    run = run_app("trap", "trap:2", test_name="core_trap_timeout", max_cycles=50)
    assert run.status == "FAIL"
    assert run.outcome["timed_out"] and run.outcome["trap_cause"] is None


def register_address(peripheral, name):
    registers = mm.PERIPHERALS.get(peripheral, regmap.REGISTERS)
    return mm.region(peripheral).base + next(r.offset for r in registers if r.name == name)


def test_driver_register_writes():
    """sw/apps/hal: the DMA driver, evt_wait and the ITA HAL write what the maps say."""
    run = run_app("hal", "exit:0")
    assert run.status == "PASS", (run.fields, run.outcome)
    l1, l2 = mm.region("L1").base, mm.region("L2").base
    steps = ("Q", "K", "V", "QK", "AV", "OW", "F1", "F2")
    expected = [
        ("DMA", "SRC", l2 + 0x8000), ("DMA", "DST", l1 + 0x100), ("DMA", "LENGTH", 64),
        ("DMA", "ROWS", 3), ("DMA", "SRC_STRIDE", 256), ("DMA", "DST_STRIDE", 128),
        ("DMA", "START", 1),
        ("EVENT_UNIT", "EVT_MASK", 1 << mm.EVENT_LINES["SW0"] | 1 << mm.EVENT_LINES["DMA"]),
        ("ITA", "MODE", ita_regs.pack("MODE", mode=1, activation=1, bias_enable=1, causal=1,
                                      logit_frac=2)),
        ("ITA", "DIMS_SE", ita_regs.pack("DIMS_SE", seq_len=100, embed=72)),
        ("ITA", "DIMS_PF", ita_regs.pack("DIMS_PF", proj=40, ffn=160)),
        ("ITA", "VALID_KEYS", ita_regs.pack("VALID_KEYS", valid_keys=90)),
        *(("ITA", f"REQUANT_{step}",
           ita_regs.pack(f"REQUANT_{step}", mult=10 + i, shift=20 + i, add=-3 - i))
          for i, step in enumerate(steps)),
        ("ITA", "GELU", ita_regs.pack("GELU", b=-1234, c=567)),
        ("ITA", "ACT_REQUANT", ita_regs.pack("ACT_REQUANT", mult=7, shift=9, add=-5)),
        *(("ITA", name, l1 + 0x1000 * i) for i, name in enumerate(regmap.TENSOR_POINTERS)),
        ("ITA", "TRIGGER", 0),
        ("EVENT_UNIT", "EVT_MASK", 1 << mm.EVENT_LINES["ITA"]),
    ]
    got = [tuple(entry) for entry in run.outcome["periph_log"]]
    assert run.outcome["periph_writes"] == len(got) == len(expected)
    for (peripheral, name, value), (address, written) in zip(expected, got, strict=True):
        assert (address, written) == (register_address(peripheral, name), value), \
            f"{peripheral}.{name}"
