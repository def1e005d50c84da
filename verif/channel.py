"""The one way a runner configures a testbench: a JSON file named by one variable.

A runner describes its run as an instance of a frozen dataclass (the testbench's options
schema, defined next to the runner so both sides import the same class), :func:`publish`
writes it as JSON and returns the environment that names the file; inside the simulator the
testbench calls :func:`receive` with the same class and gets a typed instance back. A file
written for another testbench, a missing or unknown option or a value of the wrong type is an
error that says which, instead of a silently used default.

Files are named by a hash of their content (``build/options/<hash>.json``): parallel runs
never overwrite each other's, and a rerun with the same options reuses the file.
:func:`receive` copies the options into the run directory (``options.json``), so a run
directory records what it ran with. The seed keeps cocotb's own ``COCOTB_RANDOM_SEED`` and
waveforms cocotb's ``WAVES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from hw.toolchain import BUILD_ROOT

__all__ = ["VARIABLE", "ChannelError", "publish", "receive", "run_seed"]

#: The environment variable that names a run's options file.
VARIABLE = "VERIF_OPTIONS"
DIRECTORY = BUILD_ROOT / "options"
#: Where :func:`receive` leaves a copy, in the testbench's working (run) directory.
RUN_COPY = "options.json"

Schema = TypeVar("Schema")


class ChannelError(RuntimeError):
    """The options a testbench received do not match its schema."""


def _schema_name(schema: type) -> str:
    module = schema.__module__
    if module == "__main__":  # a runner started with ``python -m``: name its real module
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return f"{module}.{schema.__qualname__}"


def publish(options: Any) -> dict[str, str]:
    """Write ``options`` (a dataclass instance) to its options file; return the environment
    (``{VARIABLE: path}``) to hand to ``hw.toolchain.run``."""
    if not dataclasses.is_dataclass(options) or isinstance(options, type):
        raise TypeError(f"options must be a dataclass instance, not {type(options).__name__}")
    _check(type(options), dataclasses.asdict(options))  # the runner's mistake, caught early
    text = json.dumps({"schema": _schema_name(type(options)),
                       "options": dataclasses.asdict(options)}, sort_keys=True, indent=1)
    path = DIRECTORY / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    if not path.is_file():
        DIRECTORY.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return {VARIABLE: str(path)}


def receive(schema: type[Schema], *, keep_copy: bool = True) -> Schema:
    """The options published for this run, as an instance of ``schema``; ``keep_copy``
    leaves them in the working directory (a simulator's run directory)."""
    where = os.environ.get(VARIABLE, "").strip()
    if not where:
        raise ChannelError(f"{VARIABLE} is not set: run this testbench through its runner "
                           f"(it reads {_schema_name(schema)})")
    text = Path(where).read_text()
    document = json.loads(text)
    if document.get("schema") != _schema_name(schema):
        raise ChannelError(f"{where} holds options for {document.get('schema')}, but this "
                           f"testbench reads {_schema_name(schema)}")
    values = document.get("options", {})
    _check(schema, values, where)
    if keep_copy:
        Path(RUN_COPY).write_text(text)
    hints = typing.get_type_hints(schema)
    return schema(**{name: _convert(value, hints[name]) for name, value in values.items()})


def run_seed(default: int = 1) -> int:
    """The seed the user asked for (cocotb's ``COCOTB_RANDOM_SEED``), not the per-test
    derivative cocotb hands a test; ``default`` when the run was given none."""
    text = os.environ.get("COCOTB_RANDOM_SEED", "").strip()
    return int(text) if text else default


def _convert(value, hint):
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)  # JSON has no tuples
    return value


def _check(schema: type, values: dict, where: str = "the runner's options") -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    name = _schema_name(schema)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ChannelError(f"{where}: unknown options {', '.join(unknown)} for {name} "
                           f"(known: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in values and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ChannelError(f"{where}: missing options {', '.join(missing)} for {name}")
    for key, value in values.items():
        if not _is_instance(value, hints[key]):
            raise ChannelError(f"{where}: option {key} of {name} must be {hints[key]}, not "
                               f"{value!r}")


def _is_instance(value, hint) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_is_instance(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return isinstance(value, list | tuple)
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
