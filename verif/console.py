"""What ``make sim`` prints for people: a short summary above the RESULT line.

The simulator's own output (cocotb's log, the testbench's prints) goes to a file per run
(:func:`hw.toolchain.capture_runs`) unless ``VERBOSE=1``, so that the summary of a run is
what a user sees; the summary says where that log and the waves are. Everything here goes
to stderr: stdout carries the RESULT line that scripts parse.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from hw.toolchain import relative
from ita.cluster_config import get

#: The make sim word that keeps the simulator's full output on the terminal.
VERBOSE = "VERBOSE"

#: A run function may put lines for the summary under this RESULT field; :func:`summary`
#: prints them and the dispatcher keeps them off the RESULT line.
SUMMARY_FIELD = "summary"

#: Lines of a failed run's log shown under its summary.
FAIL_TAIL = 25

#: Options that say how a run is made rather than what it computes.
_RUN_OPTIONS = ("WAVES", "MAX_CYCLES")


def take_verbose(words: Sequence[str]) -> tuple[list[str], bool]:
    """``words`` without ``VERBOSE=0|1``, and whether it asked for the full output."""
    rest, verbose = [], False
    for word in words:
        key, _, value = word.partition("=")
        if key == VERBOSE and value in ("0", "1"):
            verbose = value == "1"
        else:
            rest.append(word)
    return rest, verbose


def _configuration(options: Mapping[str, object]) -> str:
    name = str(options.get("CONFIG") or "default")
    try:
        cfg = get(name)
    except ValueError:
        return name
    n = options.get("ARRAY_N") or cfg.ita.N
    m = options.get("ARRAY_M") or cfg.ita.M
    return f"{name} ({cfg.cores} cores, engine N={n} M={m})"


def summary(test: str, status: str, options: Mapping[str, object],
            fields: Mapping[str, object], logs: Sequence[Path]) -> list[str]:
    """The summary lines of one run: what ran, the verdict, cycles, utilisation, files."""
    shown = " ".join(f"{k}={int(v) if isinstance(v, bool) else v}"
                     for k, v in options.items() if k not in _RUN_OPTIONS and v is not None)
    lines = [f"{test} {status}" + (f": {shown}" if shown else ""),
             f"  configuration  {_configuration(options)}"]
    cycles, ideal = fields.get("cycles"), fields.get("ideal_cycles")
    if cycles:
        text = f"{cycles:,}" if isinstance(cycles, int) else str(cycles)
        if ideal:
            text += (f" (ideal {int(ideal):,}, utilisation "
                     f"{100.0 * float(ideal) / float(cycles):.1f} %)")
        lines.append(f"  cycles         {text}")
    extra = fields.get(SUMMARY_FIELD)
    lines += [f"  {line}" for line in ([extra] if isinstance(extra, str) else extra or ())]
    if status != "PASS" and fields.get("error"):
        lines.append(f"  error          {fields['error']}")
    for log in logs:
        lines.append(f"  log            {relative(log)}")
    waves = [log.parent / "dump.fst" for log in logs if (log.parent / "dump.fst").is_file()]
    if options.get("WAVES") and waves:
        lines += [f"  waves          {relative(w)}" for w in waves]
    elif "WAVES" in options:
        lines.append("  waves          none (WAVES=1 writes them)")
    if logs and not any(log.is_file() for log in logs):
        lines.append("  (the simulator wrote no log)")
    return lines


def tail(log: Path, count: int = FAIL_TAIL) -> list[str]:
    """The last ``count`` lines of a run's log (what a failure usually needs)."""
    if not log.is_file():
        return []
    return log.read_text(errors="replace").splitlines()[-count:]


def print_summary(test: str, status: str, options: Mapping[str, object],
                  fields: Mapping[str, object], logs: Sequence[Path]) -> None:
    """Print the summary on stderr; after a failure, the tail of the last log first."""
    out = sys.stderr
    if status != "PASS" and logs:
        lines = tail(logs[-1])
        if lines:
            print(f"sim: last {len(lines)} lines of {relative(logs[-1])}:", file=out)
            print("\n".join(f"  | {line}" for line in lines), file=out)
    print("\n".join(f"sim: {line}" for line in summary(test, status, options, fields, logs)),
          file=out, flush=True)
