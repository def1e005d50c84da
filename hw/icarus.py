"""Icarus Verilog, the second simulator (issue 19): the same cocotb testbenches and golden
vectors as on Verilator, on a simulator with an independent front end and an event-driven
4-state kernel, so a construct that Verilator reads differently shows up as a mismatch.

Only the build is Icarus-specific; runs go through :func:`hw.toolchain.run` (the handle names
its runner), which gives the same scrubbed environment, locks and pass/fail verdict. Icarus
comes from Debian (``iverilog`` in ``tools/bootstrap.sh``), not from PyPI.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hw import toolchain, verilog

SIMULATOR = "icarus"
#: Yosys writes Verilog-2005 and relies on its semantics: a declaration initialiser is an
#: event at time 0, which runs every ``always @*`` block once. Under the ``-g2012`` that the
#: runner passes first, initialisers cause no event and combinational blocks whose inputs
#: never change stay X (the HWPE's job-register multiplexers), so the later ``-g2005`` overrides it.
BUILD_ARGS = ("-g2005", "-Wall")
#: Outputs of ``make verilog`` for the second simulator live here, one directory per
#: configuration, so they never overwrite the ``build/verilog/`` of the default command.
VERILOG_ROOT = toolchain.BUILD_ROOT / "second_sim" / "verilog"


def available() -> bool:
    """Whether ``iverilog`` and ``vvp`` are on PATH."""
    return all(shutil.which(tool) for tool in ("iverilog", "vvp"))


def icarus_version() -> str:
    """First line of ``iverilog -V`` (part of the build hash)."""
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["unknown"])[0]


def make_verilog(top: str, config: str):
    """``make verilog TOP=<top> CONFIG=<config>`` into :data:`VERILOG_ROOT`/<config>, without
    the Verilator lint (``make verilog`` runs it); returns :class:`hw.verilog.Output`."""
    return verilog.generate(top, {"CONFIG": config}, out_root=VERILOG_ROOT / config)


def build(sources: Sequence[str | Path], toplevel: str, *, waves: bool = False,
          extra_args: Sequence[str] = ()) -> toolchain.BuildHandle:
    """Compile (or reuse) a cocotb + Icarus model of ``toplevel``; cached like
    :func:`hw.toolchain.build`, under ``build/sim/<toplevel>-icarus-<hash>``."""
    from cocotb_tools.runner import get_runner

    t0 = time.monotonic()
    srcs = [Path(s).resolve() for s in sources]
    args = [*BUILD_ARGS, *extra_args]
    digest = toolchain._digest(srcs, toplevel, [*args, icarus_version()], waves)
    build_dir = toolchain.BUILD_ROOT / "sim" / f"{toplevel}-{SIMULATOR}-{digest}"
    stamp = build_dir / ".built"
    rebuilt = False
    with toolchain.file_lock(build_dir / ".lock"):
        if not (stamp.is_file() and (build_dir / "sim.vvp").is_file()):
            stamp.unlink(missing_ok=True)
            log = build_dir / "build.log"
            try:
                with toolchain._environ(toolchain._runner_env(waves=waves)):
                    get_runner(SIMULATOR).build(
                        sources=srcs, hdl_toplevel=toplevel, build_dir=build_dir,
                        build_args=args, waves=waves, timescale=toolchain.TIMESCALE,
                        log_file=log, always=True)
            except (RuntimeError, SystemExit) as exc:
                tail = log.read_text(errors="replace").splitlines()[-30:] if log.is_file() else []
                msg = "\n".join([f"iverilog build of {toplevel} failed ({exc}); {log}:", *tail])
                raise toolchain.BuildFailed(msg) from None
            stamp.write_text(f"{toplevel} {digest}\n")
            rebuilt = True
    return toolchain.BuildHandle(build_dir, toplevel, waves, digest, rebuilt,
                                 time.monotonic() - t0, simulator=SIMULATOR)


def warnings(handle: toolchain.BuildHandle) -> list[str]:
    """The warning lines iverilog wrote while compiling ``handle`` (none expected)."""
    log = handle.build_dir / "build.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return [line for line in lines if "warning" in line.lower()]
