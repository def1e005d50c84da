"""Simulation dispatcher behind ``make sim``: ``python -m verif.sim TEST=<name> [KEY=VALUE ...]``.

Tests register themselves with :func:`register` when their module (listed in
:data:`TEST_MODULES`) is imported. Each declares its keys (:mod:`ita.cli`); anything unknown
or malformed is rejected with one ``sim: error: ...`` line on stderr and exit code 2, and
``HELP=1`` lists a test's keys with their defaults.
A run prints the RESULT line (see :mod:`verif.result`) last and exits 0 on PASS, 1 on FAIL;
above it, on stderr, a short summary naming the simulator's log (:mod:`verif.console`;
``VERBOSE=1`` shows that output on the terminal instead).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw import toolchain
from ita import cli
from ita.cli import SEED, WAVES, Key, UsageError, choice_key, flag_key, int_key
from verif import console
from verif.result import format_result, read_result

# The key library is ita.cli; these names stay importable from here for the test modules.
__all__ = ["SEED", "WAVES", "Key", "UsageError", "choice_key", "flag_key", "int_key",
           "SimTest", "REGISTRY", "TEST_MODULES", "register", "load_tests", "parse_args",
           "list_tests", "usage_text_for", "cocotb_result", "main"]

# Modules that register simulation tests when imported. Add new test packages here.
TEST_MODULES = ["verif.smoke", "verif.engine", "verif.hwpe.sim", "verif.cluster.sim",
                "verif.cluster.multichip",
                "verif.core.sim", "verif.uvm", "verif.engine_uvm", "verif.second_sim",
                "verif.models.sim"]

SYNOPSIS = "make sim TEST=<name> [KEY=VALUE ...]   (TEST=list lists the tests)"

Options = Mapping[str, object]
RunFunction = Callable[[Options], tuple[str, dict]]


@dataclass(frozen=True)
class SimTest:
    """A registered simulation test: ``run(options)`` returns (status, RESULT fields)."""

    name: str
    description: str
    keys: tuple[Key, ...]
    run: RunFunction

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


REGISTRY: dict[str, SimTest] = {}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*$")


def register(
    name: str, description: str, keys: Sequence[Key] = ()
) -> Callable[[RunFunction], RunFunction]:
    """Decorator: register ``fn(options) -> (status, fields)`` as simulation test ``name``."""
    if not _NAME.match(name) or name == "list":
        raise ValueError(f"bad test name {name!r}")
    names = [k.name for k in keys]
    bad = [n for n in names if not cli.KEY_NAME.match(n) or n in ("TEST", "HELP")
           or names.count(n) > 1]
    if bad:
        raise ValueError(f"test {name}: bad or duplicate keys {bad}")

    def decorator(fn: RunFunction) -> RunFunction:
        if name in REGISTRY and REGISTRY[name].run is not fn:
            raise ValueError(f"simulation test {name!r} registered twice")
        REGISTRY[name] = SimTest(name, description, tuple(keys), fn)
        return fn

    return decorator


def load_tests() -> dict[str, SimTest]:
    """Import every module in TEST_MODULES (they register on import); return the registry."""
    for module in TEST_MODULES:
        importlib.import_module(module)
    return REGISTRY


def parse_args(words: Sequence[str]) -> tuple[SimTest | str | None, dict[str, object]]:
    """Parse KEY=VALUE words into (test or 'list' or None, options with defaults filled in)."""
    given = cli.split_words(words)
    name = given.pop("TEST", None)
    if name is None or name == "list":
        if given:
            raise UsageError(f"unexpected keys without a test: {', '.join(given)}")
        return name, {}
    test = REGISTRY.get(name)
    if test is None:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise UsageError(f"unknown test {name} (known: {known}; TEST=list describes them)")
    return test, cli.resolve(given, test.keys, where=f" for test {name}")


def usage_text_for(words: Sequence[str] = ()) -> str:
    """The keys of the test named by ``TEST=`` in ``words``, or the general usage."""
    name = next((w.partition("=")[2] for w in words if w.startswith("TEST=")), None)
    test = REGISTRY.get(name or "")
    if test is None:
        return f"usage: {SYNOPSIS}"
    return cli.usage(f"make sim TEST={test.name} [KEY=VALUE ...]", test.keys,
                     note=test.description)


def list_tests() -> str:
    """Human-readable list of the registered tests and their keys."""
    lines = ["Simulation tests (run with: make sim TEST=<name> [KEY=VALUE ...]):"]
    width = max((len(n) for n in REGISTRY), default=0)
    for test in sorted(REGISTRY.values(), key=lambda t: t.name):
        lines.append(f"  {test.name:<{width}}  {test.description}")
        keys = cli.usage("", test.keys).splitlines()[1:]
        lines += [f"  {'':<{width}}  {line}" for line in keys]
    return "\n".join(lines)


def cocotb_result(
    handle,
    test_module: str,
    *,
    seed: int | None,
    waves: bool = False,
    extra_env: Mapping[str, str] | None = None,
    results_name: str | None = None,
    plusargs: Sequence[str] = (),
) -> tuple[str, dict]:
    """Run a cocotb module via hw.toolchain.run; return (status, fields of its RESULT line).

    A failed simulation is a FAIL, not an exception; the testbench's recorded RESULT fields
    (cycles, seed, ...) are returned either way when it got far enough to write them.
    """
    try:
        results = toolchain.run(
            handle,
            test_module,
            seed=seed,
            waves=waves,
            extra_env=extra_env,
            results_name=results_name,
            plusargs=plusargs,
        )
        status, test_dir = "PASS", results.parent
    except toolchain.SimulationFailed as exc:
        print(f"sim: {exc}", file=sys.stderr)
        status, test_dir = "FAIL", exc.test_dir
    fields = dict(read_result(test_dir) or {})
    if fields.get("status") == "FAIL":
        status = "FAIL"  # the testbench's verdict can only make things worse
    elif status == "PASS" and not fields:
        print(f"sim: {test_module} passed but recorded no RESULT in {test_dir}", file=sys.stderr)
        status = "FAIL"
    if waves:
        print(f"sim: waveform: {Path(test_dir) / 'dump.fst'}", file=sys.stderr)
    if seed is not None:
        fields.setdefault("seed", seed)
    return status, fields


def _result_line(test: str, status: str, fields: Mapping[str, object]) -> str:
    extra = {k: v for k, v in fields.items() if k not in ("test", "status", "utilization")}
    return format_result(test, status, **extra)


def _command(words: list[str]) -> int:
    words, verbose = console.take_verbose(words)
    # SIM_PROFILE=<name> (hw.toolchain.SIM_PROFILES) is a key of every test: the environment
    # variable the builds read, set here for this run.
    profiles = [w.partition("=")[2] for w in words if w.startswith("SIM_PROFILE=")]
    words = [w for w in words if not w.startswith("SIM_PROFILE=")]
    if len(profiles) > 1:
        raise UsageError("key SIM_PROFILE given twice")
    if profiles:
        os.environ["SIM_PROFILE"] = profiles[0]
    test, options = parse_args(words)
    if test is None:
        raise UsageError(f"missing TEST=<name> ({SYNOPSIS})")
    if test == "list":
        print(list_tests())
        return 0
    assert isinstance(test, SimTest)
    try:  # $SIM_PROFILE (hw.toolchain.SIM_PROFILES) is checked before any build
        toolchain.sim_profile()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # The simulator's output goes to a log per run unless VERBOSE=1 (verif/console.py).
    capture = contextlib.nullcontext([]) if verbose else toolchain.capture_runs()
    with capture as logs:
        try:
            status, fields = test.run(options)
        except UsageError:  # values each fine alone, impossible together (a run's check)
            raise
        except Exception as exc:  # infrastructure failure: still end with a RESULT line
            traceback.print_exc()
            status, fields = "FAIL", {"seed": options.get("SEED"), "error": type(exc).__name__}
    fields = dict(fields)
    console.print_summary(test.name, status, options, fields, logs)
    fields.pop(console.SUMMARY_FIELD, None)
    sys.stdout.flush()
    print(_result_line(test.name, status, fields), flush=True)
    return 0 if status == "PASS" else 1


def main(argv: Sequence[str] | None = None) -> int:
    load_tests()
    return cli.main("sim", _command, argv, usage_text=usage_text_for)


if __name__ == "__main__":
    # Run the copy imported as ``verif.sim``: test modules register into that module's
    # REGISTRY, not into this ``__main__`` copy.
    from verif.sim import main as _main

    sys.exit(_main())
