"""The project-wide RESULT line: the last line every simulation run prints.

    RESULT test=<name> status=<PASS|FAIL> cycles=<n> ideal_cycles=<n> utilization=<pct> seed=<n>

Fields that do not apply are omitted; further ``key=value`` pairs may follow. One line of plain
``key=value`` words keeps results greppable from logs and CI output alike.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "RESULT"
STATUSES = ("PASS", "FAIL")
# Testbenches also write their RESULT line to this file in their working directory, so the
# dispatcher can repeat it as the last line of its own output.
RESULT_FILE = "result.txt"

_INT_KEYS = ("cycles", "ideal_cycles", "seed")


def format_result(
    test: str,
    status: str,
    *,
    cycles: int | None = None,
    ideal_cycles: int | None = None,
    seed: int | None = None,
    **extra: object,
) -> str:
    """Build a RESULT line; utilization = ideal_cycles / cycles when both are given."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    fields: dict[str, object] = {"test": test, "status": status}
    if cycles is not None:
        fields["cycles"] = int(cycles)
    if ideal_cycles is not None:
        fields["ideal_cycles"] = int(ideal_cycles)
    if cycles and ideal_cycles is not None:
        fields["utilization"] = f"{100.0 * ideal_cycles / cycles:.1f}"
    if seed is not None:
        fields["seed"] = int(seed)
    for key, value in extra.items():
        if key in fields or key == "utilization":
            raise ValueError(f"duplicate RESULT field {key}")
        if value is not None:
            fields[key] = value
    words = [PREFIX]
    for key, value in fields.items():
        text = str(value)
        if not text or any(c.isspace() or c == "=" for c in text):
            raise ValueError(f"RESULT field {key}={text!r} must be a non-empty word without '='")
        words.append(f"{key}={text}")
    return " ".join(words)


def _convert(key: str, text: str) -> object:
    if key in _INT_KEYS:
        return int(text)
    if key == "utilization":
        return float(text)
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_result(line: str) -> dict[str, object]:
    """Parse a RESULT line into a dict (numbers converted); ValueError if it is not one."""
    words = line.split()
    if not words or words[0] != PREFIX:
        raise ValueError(f"not a RESULT line: {line!r}")
    result: dict[str, object] = {}
    for word in words[1:]:
        key, sep, text = word.partition("=")
        if not sep or not key or not text or key in result:
            raise ValueError(f"bad RESULT field {word!r} in {line!r}")
        try:
            result[key] = _convert(key, text)
        except ValueError:
            raise ValueError(f"bad value in RESULT field {word!r}") from None
    if "test" not in result or result.get("status") not in STATUSES:
        raise ValueError(f"RESULT line lacks test= or status=PASS|FAIL: {line!r}")
    return result


def find_result(text: str) -> dict[str, object]:
    """Parse the last RESULT line in ``text`` (e.g. a captured log); ValueError if none."""
    for line in reversed(text.splitlines()):
        if line.strip().startswith(PREFIX + " "):
            return parse_result(line)
    raise ValueError("no RESULT line found")


def record_result(line: str, directory: str | os.PathLike = ".") -> Path:
    """Print a RESULT line and write it to ``<directory>/result.txt`` for the dispatcher."""
    parse_result(line)  # refuse to record something the dispatcher could not read back
    print(line, flush=True)
    path = Path(directory) / RESULT_FILE
    path.write_text(line + "\n")
    return path


def read_result(directory: str | os.PathLike) -> dict[str, object] | None:
    """The RESULT recorded by :func:`record_result` in ``directory``, or None if there is none."""
    path = Path(directory) / RESULT_FILE
    if not path.is_file():
        return None
    return find_result(path.read_text())
