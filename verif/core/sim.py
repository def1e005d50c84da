"""Programs on one CV32E40P without the cluster: model build, runs, and ``make sim`` tests.

Registers ``core_hello`` (prints and exits 0) and ``core_trap`` (reports an illegal
instruction, mcause 2) with the dispatcher (:mod:`verif.sim`). Programs are built with
``sw.build`` for one core (``RT_CORES=1``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cluster_integration.core import CORE_LINT_WAIVERS, core_sources
from hw import toolchain
from ita.cli import WAVES, int_key
from sw.build import build_app
from verif.channel import publish
from verif.sim import cocotb_result, register
from verif.tops.core import RAM_SV, CoreTestTop

TOPLEVEL = "core_test_top"
TB_MODULE = "verif.core.tb_core"
DEFAULT_MAX_CYCLES = 2_000_000


def build_model(waves: bool = False):
    """Emit the test top's Verilog and build (or reuse) its Verilator model with the core."""
    key = toolchain.source_digest("ita", "cluster_integration", "verif.tops")
    verilog = toolchain.emit_verilog_cached(
        CoreTestTop, TOPLEVEL, toolchain.BUILD_ROOT / "gen" / f"{TOPLEVEL}.v", key=key)
    return toolchain.build([*core_sources(), RAM_SV, verilog], TOPLEVEL, waves=waves,
                           extra_args=CORE_LINT_WAIVERS)


@dataclass(frozen=True)
class CoreOptions:
    """What tb_core reads through :mod:`verif.channel`."""

    test_name: str   #: name on the RESULT line
    app_hex: str     #: the program image (``sw.build`` ``.hex``), loaded into L2
    expect: str      #: ``exit:<code>`` or ``trap:<mcause>``: the outcome that passes
    max_cycles: int  #: give up after this many cycles


@dataclass(frozen=True)
class AppRun:
    """The outcome of one program run (``outcome`` is the testbench's outcome.json)."""

    status: str
    fields: dict
    outcome: dict | None
    app: object  # sw.build.App


def run_app(name: str, expect: str, *, test_name: str | None = None, waves: bool = False,
            max_cycles: int = DEFAULT_MAX_CYCLES, defines=None) -> AppRun:
    """Build app ``name`` for one core, run it on the test top; ``expect`` is ``exit:<code>``
    or ``trap:<mcause>``. Returns the dispatcher status, RESULT fields and the outcome."""
    test_name = test_name or f"core_{name}"
    app = build_app(name, defines, cores=1)
    handle = build_model(waves=waves)
    env = publish(CoreOptions(test_name=test_name, app_hex=str(app.hex), expect=expect,
                              max_cycles=max_cycles))
    status, fields = cocotb_result(handle, TB_MODULE, seed=None, waves=waves, extra_env=env,
                                   results_name=test_name)
    path = handle.build_dir / "runs" / test_name / "outcome.json"
    outcome = json.loads(path.read_text()) if path.is_file() else None
    return AppRun(status, fields, outcome, app)


_CYCLES = int_key("MAX_CYCLES", DEFAULT_MAX_CYCLES, minimum=1, help="give up after this many")


@register("core_hello", "sw/apps/hello on one CV32E40P with zero-wait memories: prints, exits 0",
          keys=(_CYCLES, WAVES))
def _run_hello(options):
    run = run_app("hello", "exit:0", waves=bool(options["WAVES"]),
                  max_cycles=options["MAX_CYCLES"])
    return run.status, run.fields


@register("core_trap", "sw/apps/trap on one CV32E40P: an illegal instruction is reported "
          "(mcause 2)", keys=(_CYCLES, WAVES))
def _run_trap(options):
    run = run_app("trap", "trap:2", waves=bool(options["WAVES"]),
                  max_cycles=options["MAX_CYCLES"])
    return run.status, run.fields
