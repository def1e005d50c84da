"""Running one benchmark point: a ``make sim`` test in a ``python -m verif.sim`` subprocess (the
same code path as the command printed in the report), timed in wall-clock and CPU time.

CPU time is that of the whole process tree (``RUSAGE_CHILDREN``: the dispatcher, the simulator
and its embedded Python), which a machine shared with other jobs distorts far less than
wall-clock time.
"""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree

from hw import toolchain
from verif.result import find_result

__all__ = ["SimPoint", "Measurement", "run_point", "run_argv", "sim_command", "cocotb_times",
           "children_cpu_seconds", "strip_stdout", "TIMEOUT_S"]

#: One simulation may take at most this long (the whole bench must stay under 30 minutes).
TIMEOUT_S = 900


def sim_command(test: str, keys: Mapping[str, object]) -> str:
    """The ``make sim`` command that reproduces a point."""
    words = [f"TEST={test}", *(f"{k}={shlex.quote(_text(v))}" for k, v in keys.items())]
    return "make sim " + " ".join(words)


def _text(value: object) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class SimPoint:
    """One ``make sim`` run of the bench: test name and its KEY=VALUE options."""

    test: str
    keys: dict = field(default_factory=dict)

    @property
    def command(self) -> str:
        return sim_command(self.test, self.keys)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "verif.sim", f"TEST={self.test}",
                *(f"{k}={_text(v)}" for k, v in self.keys.items())]


@dataclass
class Measurement:
    """What one run gave: the RESULT fields, timings and, on failure, the end of its log."""

    command: str
    status: str
    result: dict
    wall_s: float
    cpu_s: float
    returncode: int
    log_tail: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"command": self.command, "status": self.status, "result": self.result,
               "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
               "returncode": self.returncode}
        if self.extra:
            out.update(self.extra)
        if self.status != "PASS":
            out["log_tail"] = self.log_tail
        return out


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _decode(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run_argv(argv: list[str], command: str, *, timeout: float = TIMEOUT_S,
             env: Mapping[str, str] | None = None) -> Measurement:
    """Run a command that ends with a RESULT line; time it; parse the line. ``env``: variables
    set on top of this process's environment (``SIM_PROFILE``).

    The captured stdout stays in ``extra["stdout"]`` until :func:`strip_stdout` takes it.
    """
    cpu0, t0 = children_cpu_seconds(), time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              cwd=toolchain.ROOT, timeout=timeout,
                              env={**os.environ, **env} if env else None)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, code = _decode(exc.stdout), _decode(exc.stderr), -1
        stderr += f"\nbench: timed out after {timeout:.0f} s"
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    try:
        result = find_result(stdout)
    except ValueError:
        result = {}
    status = "PASS" if code == 0 and result.get("status") == "PASS" else "FAIL"
    tail = "\n".join((stdout + stderr).splitlines()[-25:]) if status != "PASS" else ""
    return Measurement(command, status, result, wall, cpu, code, tail, extra={"stdout": stdout})


def run_point(point: SimPoint, *, timeout: float = TIMEOUT_S,
              env: Mapping[str, str] | None = None) -> Measurement:
    """Run ``point`` as ``python -m verif.sim TEST=... KEY=VALUE ...`` (``env`` on top of this
    process's environment)."""
    return run_argv(point.argv(), point.command, timeout=timeout, env=env)


def cocotb_times(run_name: str, since: float) -> tuple[float, float] | None:
    """(real seconds, simulated ns) of the cocotb test whose run directory is ``run_name``,
    from the JUnit file cocotb wrote after ``since`` (a time.time() value); None if absent.

    The real time covers the cocotb test body only: no process start, no model build check.
    """
    newest = None
    for path in (toolchain.BUILD_ROOT / "sim").glob(f"*/runs/{run_name}/results.xml"):
        mtime = path.stat().st_mtime
        if mtime >= since and (newest is None or mtime > newest[0]):
            newest = (mtime, path)
    if newest is None:
        return None
    case = next(ElementTree.parse(newest[1]).getroot().iter("testcase"), None)
    if case is None:
        return None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    try:
        return float(case.get("time")), float(props["sim_time_duration"])
    except (TypeError, KeyError, ValueError):
        return None


def strip_stdout(measurement: Measurement) -> str:
    """The captured stdout of a run (kept out of results.json)."""
    return measurement.extra.pop("stdout", "")

