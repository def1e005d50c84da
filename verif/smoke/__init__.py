"""Smoke test of the whole flow: Amaranth -> Verilog -> Verilator -> cocotb -> RESULT line.

Registers simulation test ``smoke`` with the dispatcher (verif.sim).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw import toolchain
from ita.cli import SEED, WAVES, int_key
from verif.channel import publish
from verif.sim import cocotb_result, register
from verif.smoke.design import Accumulate

TOPLEVEL = "smoke_accumulate"
TB_MODULE = "verif.smoke.tb_smoke"


def build_model(waves: bool = False):
    """Emit the smoke design's Verilog and build (or reuse) its Verilator model."""
    verilog = toolchain.emit_verilog(
        Accumulate(), TOPLEVEL, toolchain.BUILD_ROOT / "gen" / f"{TOPLEVEL}.v"
    )
    return toolchain.build([verilog], TOPLEVEL, waves=waves)


@dataclass(frozen=True)
class SmokeOptions:
    """What tb_smoke reads through :mod:`verif.channel`."""

    count: int          #: values sent
    inject_error: bool  #: corrupt one expected value: the run must fail


def tb_env(count: int, inject_error: bool = False) -> dict[str, str]:
    """The environment that configures tb_smoke (for ``hw.toolchain.run``)."""
    return publish(SmokeOptions(count=count, inject_error=inject_error))


@register(
    "smoke",
    "8-bit stream accumulator with random stalls and clears, checked every cycle",
    keys=(SEED, WAVES, int_key("COUNT", 200, minimum=1, help="number of values sent")),
)
def run_smoke(options) -> tuple[str, dict]:
    waves = bool(options["WAVES"])
    handle = build_model(waves=waves)
    return cocotb_result(
        handle,
        TB_MODULE,
        seed=options["SEED"],
        waves=waves,
        extra_env=tb_env(options["COUNT"]),
        results_name=f"sim-smoke-seed{options['SEED']}",
    )
