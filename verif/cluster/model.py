"""The cluster under cocotb: build the Verilator model of the cluster test top and run one
program on it (``verif/cluster/tb_cluster.py`` is the testbench)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cluster_integration.core import CORE_LINT_WAIVERS, core_sources
from cluster_integration.l2 import L2_RAM_SOURCE
from hw import toolchain
from verif.channel import publish
from verif.cluster.trace import FILE_NAME as TRACE_FILE
from verif.harness import COCOTB_CLUSTER_VLT
from verif.harness.run import merged_l2_image
from verif.sim import cocotb_result
from verif.tops.cluster import ClusterTestTop
from verif.tops.core import RAM_SV

__all__ = ["TOPLEVEL", "TB_MODULE", "DEFAULT_MAX_CYCLES", "build_model", "ClusterOptions",
           "ClusterRun", "run_program"]

TOPLEVEL = "cluster_test_top"
TB_MODULE = "verif.cluster.tb_cluster"
DEFAULT_MAX_CYCLES = 5_000_000


def build_model(waves: bool = False):
    """Emit the cluster test top's Verilog and build (or reuse) its Verilator model."""
    key = toolchain.source_digest("ita", "cluster_integration", "verif.tops")
    verilog = toolchain.emit_verilog_cached(
        ClusterTestTop, TOPLEVEL, toolchain.BUILD_ROOT / "gen" / f"{TOPLEVEL}.v", key=key)
    return toolchain.build([*core_sources(), L2_RAM_SOURCE, RAM_SV, verilog], TOPLEVEL,
                           waves=waves, extra_args=CORE_LINT_WAIVERS,
                           public=[COCOTB_CLUSTER_VLT])


@dataclass(frozen=True)
class ClusterOptions:
    """What tb_cluster reads through :mod:`verif.channel`."""

    test_name: str         #: name on the RESULT line
    app_hex: str           #: program image (``sw.build`` ``.hex``), loaded into L2
    expect: str            #: ``exit:<code>`` or ``trap:<mcause>``
    max_cycles: int        #: give up after this many cycles
    data: str | None       #: ``.npz`` of extra L2 contents (arrays ``addr_<hex>``, uint8)
    check: str | None      #: ``.npz`` of expected L2 contents after the run, same naming
    ideal: float | None    #: ideal cycles of the work (for the utilisation figure)
    trace_elf: str | None = None  #: TRACE=1: the program's ELF (names the cores' functions)
    l2_loaded: bool = False  #: program and data already in L2 (``+L2_HEX``), no VPI writes


@dataclass(frozen=True)
class ClusterRun:
    status: str
    fields: dict
    outcome: dict | None


def run_program(app, *, test_name, expect="exit:0", data=None, check=None, ideal=None,
                waves=False, max_cycles=DEFAULT_MAX_CYCLES, trace=False) -> ClusterRun:
    """Run a built ``sw.build.App`` on the cluster; ``data``/``check`` are npz paths of L2
    contents to load before and to compare after the run. ``trace``: record the run's
    timeline (:mod:`verif.cluster.trace`) into ``trace.json`` next to its log, named by the
    RESULT field ``trace``; without it no such file is left in the run directory."""
    handle = build_model(waves=waves)
    run_dir = handle.build_dir / "runs" / test_name
    timeline = run_dir / TRACE_FILE
    timeline.unlink(missing_ok=True)  # never let an earlier run's timeline pass for this one
    plusargs = []
    if toolchain.sim_profile().bulk_load:  # one $readmemh at time 0, not a VPI write per word
        image = merged_l2_image(app.hex, data, handle.build_dir / "runs" / f"{test_name}.l2.hex")
        plusargs.append(f"+L2_HEX={image}")
    env = publish(ClusterOptions(test_name=test_name, app_hex=str(app.hex), expect=expect,
                                 max_cycles=max_cycles, data=str(data) if data else None,
                                 check=str(check) if check else None,
                                 ideal=float(ideal) if ideal else None,
                                 trace_elf=str(app.elf) if trace else None,
                                 l2_loaded=bool(plusargs)))
    status, fields = cocotb_result(handle, TB_MODULE, seed=None, waves=waves, extra_env=env,
                                   results_name=test_name, plusargs=plusargs)
    if trace and timeline.is_file():
        fields["trace"] = toolchain.relative(timeline)
    elif trace:
        status = "FAIL"
        fields.setdefault("error", "no_trace_written")
    path = run_dir / "outcome.json"
    outcome = json.loads(path.read_text()) if path.is_file() else None
    return ClusterRun(status, fields, outcome)
