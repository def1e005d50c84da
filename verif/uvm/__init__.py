"""Reusable pyuvm verification components: protocol agents, stall profiles, test base.

=====================  ====================================================================
module                 contents
=====================  ====================================================================
``stall``              stall / back-pressure profiles: none, random, bursty, long
``clocking``           :class:`CycleLoop`: one RisingEdge/ReadOnly coroutine per clock
``stream_agent``       valid/ready stream agent (source, sink, passive) with monitor
``tcdm_agent``         TCDM memory slave agent with random grant delays, protocol monitor
``reg_agent``          register (HWPE-Periph) master agent with a read/write API
``base``               :class:`ProjectTest`: seeds, clock, reset, verdict, RESULT line
``selftest_design``    a tiny Amaranth design the agents are proven against
``tb_selftest``        the agents' self-tests (pyuvm)
=====================  ====================================================================

Registers the simulation test ``uvm_agents`` (``make sim TEST=uvm_agents [TESTCASE=...]``) with the
dispatcher when imported.
"""

from __future__ import annotations

from hw import toolchain
from ita.cli import SEED, WAVES, choice_key
from verif.sim import register

from .runner import run_test
from .selftest_design import TOPLEVEL, AgentSelftest

TB_MODULE = "verif.uvm.tb_selftest"
SELFTESTS = {
    "stream": "StreamAgentSelftest",
    "tcdm": "TcdmAgentSelftest",
    "reg": "RegAgentSelftest",
    "tcdm_bites": "TcdmMonitorBites",
    "reg_bites": "RegDriverBites",
}


def build_selftest(waves: bool = False):
    """Emit the self-test design's Verilog and build (or reuse) its Verilator model."""
    verilog = toolchain.emit_verilog(AgentSelftest(), TOPLEVEL,
                                     toolchain.BUILD_ROOT / "gen" / f"{TOPLEVEL}.v")
    return toolchain.build([verilog], TOPLEVEL, waves=waves)


def run_selftest(case: str = "all", seed: int = 1, waves: bool = False):
    """Run one self-test (a key of SELFTESTS) or all; return a :class:`runner.Outcome`."""
    testcase = None if case == "all" else SELFTESTS[case]
    handle = build_selftest(waves)
    return run_test(handle, TB_MODULE, testcase, seed=seed, waves=waves,
                    results_name=f"uvm_agents-{case}-seed{seed}")


@register("uvm_agents", "self-tests of the pyuvm stream, TCDM and register agents",
          keys=(choice_key("TESTCASE", "all", ("all", *SELFTESTS),
                           help="which pyuvm self-test class (cocotb's TESTCASE)"), SEED, WAVES))
def _run(options):
    outcome = run_selftest(options["TESTCASE"], options["SEED"], bool(options["WAVES"]))
    return outcome.as_sim_result()
