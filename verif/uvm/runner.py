"""Running one pyuvm test of a module through ``hw.toolchain``.

:func:`verif.sim.cocotb_result` runs every cocotb test of a module; pyuvm modules hold several
tests and a run wants exactly one, so this variant passes ``testcase`` through to
:func:`hw.toolchain.run`. Otherwise it behaves the same: a failed simulation is a FAIL, the
testbench's recorded RESULT fields are returned either way.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hw import toolchain
from verif.result import read_result

__all__ = ["run_test", "Outcome", "UvmTest"]


@dataclass(frozen=True)
class UvmTest:
    """A pyuvm test as ``make sim`` and the regression list know it."""

    name: str         #: name in make sim, RESULT lines and the regression list
    testcase: str     #: the pyuvm class
    description: str
    expect_fail: bool = False


@dataclass
class Outcome:
    status: str          #: PASS or FAIL
    fields: dict         #: the RESULT line's fields (as recorded by the testbench)
    test_dir: Path       #: the run directory (results.xml, result.txt, waves, coverage)
    message: str | None  #: why the simulation failed, if it did

    def as_sim_result(self) -> tuple[str, dict]:
        """(status, fields), what a ``verif.sim`` run function returns."""
        return self.status, self.fields


def run_test(handle, test_module: str, testcase: str | None, *, seed: int, waves: bool = False,
             extra_env: Mapping[str, str] | None = None,
             results_name: str | None = None) -> Outcome:
    """Run ``testcase`` (None: all) of ``test_module`` on a built model."""
    message = None
    try:
        results = toolchain.run(handle, test_module, testcase=testcase, seed=seed, waves=waves,
                                extra_env=extra_env, results_name=results_name)
        status, test_dir = "PASS", results.parent
    except toolchain.SimulationFailed as exc:
        message = str(exc)
        print(f"sim: {exc}", file=sys.stderr)
        status, test_dir = "FAIL", exc.test_dir
    fields = dict(read_result(test_dir) or {})
    if fields.get("status") == "FAIL":
        status = "FAIL"
    elif status == "PASS" and not fields:
        print(f"sim: {test_module} passed but recorded no RESULT in {test_dir}", file=sys.stderr)
        status = "FAIL"
    if waves:
        print(f"sim: waveform: {Path(test_dir) / 'dump.fst'}", file=sys.stderr)
    fields.setdefault("seed", seed)
    return Outcome(status, fields, Path(test_dir), message)
