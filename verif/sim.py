"""Simulation dispatcher behind ``make sim``: ``python -m verif.sim TEST=<name> [KEY=VALUE ...]``.

Tests register themselves with :func:`register` when their module (listed in
:data:`TEST_MODULES`) is imported. Each declares its keys with types and defaults; anything
unknown or malformed is rejected with one ``sim: error: ...`` line on stderr and exit code 2.
A run prints the RESULT line (see :mod:`verif.result`) last and exits 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from verif.result import format_result, read_result

# Modules that register simulation tests when imported. Add new test packages here.
TEST_MODULES = ["verif.smoke", "verif.engine", "verif.hwpe.sim", "verif.cluster.sim",
                "verif.core.sim", "verif.uvm", "verif.engine_uvm"]

USAGE = "usage: python -m verif.sim TEST=<name> [KEY=VALUE ...]   (TEST=list lists the tests)"

Options = Mapping[str, object]
RunFunction = Callable[[Options], tuple[str, dict]]


class UsageError(Exception):
    """Bad command line; the message is printed as ``sim: error: <message>``."""


@dataclass(frozen=True)
class Key:
    """A KEY=VALUE option: ``parse`` turns the text into a value or raises ValueError."""

    name: str
    default: object
    parse: Callable[[str], object]
    expect: str  # what a valid value looks like, for error messages
    help: str = ""

    def show_default(self) -> str:
        return str(int(self.default) if isinstance(self.default, bool) else self.default)


def int_key(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    help: str = "",
) -> Key:
    """An integer key, optionally bounded."""
    lo = "" if minimum is None else f" >= {minimum}"
    hi = "" if maximum is None else f" <= {maximum}"
    expect = f"an integer{lo}{' and' if lo and hi else ''}{hi}"

    def parse(text: str) -> int:
        value = int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(text)
        return value

    return Key(name, default, parse, expect, help)


def flag_key(name: str, default: bool = False, *, help: str = "") -> Key:
    """A 0/1 key, parsed to bool."""

    def parse(text: str) -> bool:
        if text not in ("0", "1"):
            raise ValueError(text)
        return text == "1"

    return Key(name, bool(default), parse, "0 or 1", help)


SEED = int_key("SEED", 1, minimum=0, help="random seed")
WAVES = flag_key("WAVES", help="write an FST waveform")


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
_KEY = re.compile(r"[A-Z][A-Z0-9_]*$")


def register(
    name: str, description: str, keys: Sequence[Key] = ()
) -> Callable[[RunFunction], RunFunction]:
    """Decorator: register ``fn(options) -> (status, fields)`` as simulation test ``name``."""
    if not _NAME.match(name) or name == "list":
        raise ValueError(f"bad test name {name!r}")
    names = [k.name for k in keys]
    bad = [n for n in names if not _KEY.match(n) or n == "TEST" or names.count(n) > 1]
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
    given: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"expected KEY=VALUE, got {word!r}")
        if key in given:
            raise UsageError(f"key {key} given twice")
        given[key] = value
    name = given.pop("TEST", None)
    if name is None or name == "list":
        if given:
            raise UsageError(f"unexpected keys without a test: {', '.join(given)}")
        return name, {}
    test = REGISTRY.get(name)
    if test is None:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise UsageError(f"unknown test {name} (known: {known}; TEST=list describes them)")
    options: dict[str, object] = {k.name: k.default for k in test.keys}
    for key, text in given.items():
        spec = test.key(key)
        if spec is None:
            known = ", ".join(k.name for k in test.keys) or "none"
            raise UsageError(f"unknown key {key} for test {name} (known: {known})")
        try:
            options[key] = spec.parse(text)
        except ValueError:
            raise UsageError(
                f"bad value {text!r} for key {key} of test {name} (expected {spec.expect})"
            ) from None
    return test, options


def list_tests() -> str:
    """Human-readable list of the registered tests and their keys."""
    lines = ["Simulation tests (run with: make sim TEST=<name> [KEY=VALUE ...]):"]
    width = max((len(n) for n in REGISTRY), default=0)
    for test in sorted(REGISTRY.values(), key=lambda t: t.name):
        lines.append(f"  {test.name:<{width}}  {test.description}")
        for key in test.keys:
            helptext = f"  {key.help}" if key.help else ""
            lines.append(
                f"  {'':<{width}}    {key.name}={key.show_default()}  ({key.expect}){helptext}"
            )
    return "\n".join(lines)


def cocotb_result(
    handle,
    test_module: str,
    *,
    seed: int | None,
    waves: bool = False,
    extra_env: Mapping[str, str] | None = None,
    results_name: str | None = None,
) -> tuple[str, dict]:
    """Run a cocotb module via hw.toolchain.run; return (status, fields of its RESULT line).

    A failed simulation is a FAIL, not an exception; the testbench's recorded RESULT fields
    (cycles, seed, ...) are returned either way when it got far enough to write them.
    """
    from hw import toolchain

    try:
        results = toolchain.run(
            handle,
            test_module,
            seed=seed,
            waves=waves,
            extra_env=extra_env,
            results_name=results_name,
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


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    load_tests()
    try:
        test, options = parse_args(words)
    except UsageError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return 2
    if test is None:
        print(f"sim: error: missing TEST=<name> ({USAGE.removeprefix('usage: ')})",
              file=sys.stderr)
        return 2
    if test == "list":
        print(list_tests())
        return 0
    assert isinstance(test, SimTest)
    try:
        status, fields = test.run(options)
    except UsageError as exc:  # values each fine alone, impossible together (a run's check)
        print(f"sim: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # infrastructure failure: still end with a RESULT line
        traceback.print_exc()
        status, fields = "FAIL", {"seed": options.get("SEED"), "error": type(exc).__name__}
    sys.stdout.flush()
    print(_result_line(test.name, status, fields), flush=True)
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    # Run the copy imported as ``verif.sim``: test modules register into that module's
    # REGISTRY, not into this ``__main__`` copy.
    from verif.sim import main as _main

    sys.exit(_main())
