"""One timeline per cluster workload of ``make bench`` (``docs/trace.md``).

:func:`record` runs every attention-head configuration and encoder layer the bench measured
once more, as the same ``make sim`` command with ``TRACE=1``, copies its ``trace.json`` to
``<OUT>/traces/`` and sums it up (:func:`verif.cluster.trace.summary`); :func:`section` is the
report's table of links. The traced run is a separate run so that the monitor's cost never
reaches the measured times; the simulation is deterministic, so it must count the cycles the
measured run counted, and a row says so when it does not. Workloads longer than
:data:`MAX_TRACED_CYCLES` are listed with the command that traces them instead (on the cocotb
model a traced cycle costs about as much as two untraced ones).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from bench.runner import run_argv, strip_stdout
from hw import toolchain
from verif.cluster.trace import TraceError, summary

__all__ = ["MAX_TRACED_CYCLES", "record", "section"]

#: The longest workload the bench traces (cycles of the measured run).
MAX_TRACED_CYCLES = 300_000

#: The bench's result sections whose runs are cluster programs under cocotb.
_KINDS = ("cluster", "encoder")


def _slug(command: str) -> str:
    """``make sim TEST=attention_head S=64 H=1 SEED=1`` -> ``attention_head_S64_H1``."""
    words = [w for w in command.split()[2:] if not w.startswith("SEED=")]
    text = "_".join(w.removeprefix("TEST=").replace("=", "") for w in words)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)


def record(results: dict, out: Path, *, log: Callable[[str], None] = print,
           max_cycles: int = MAX_TRACED_CYCLES) -> list[dict]:
    """Trace every passed cluster workload of ``results``; one row per workload."""
    rows = []
    for kind in _KINDS:
        for entry in results.get(kind, []):
            command = entry.get("command", "")
            if entry.get("status") != "PASS" or not command.startswith("make sim TEST="):
                continue
            cycles = entry["result"].get("cycles")
            row = {"workload": command.split()[2].removeprefix("TEST="),
                   "command": f"{command} TRACE=1", "cycles": cycles}
            rows.append(row)
            if not isinstance(cycles, int) or cycles > max_cycles:
                row["note"] = (f"not traced here ({cycles} cycles, above the bench's "
                               f"{max_cycles:,})")
                continue
            log(f"        tracing: {row['command']}")
            argv = [sys.executable, "-m", "verif.sim", *command.split()[2:], "TRACE=1"]
            m = run_argv(argv, row["command"])
            strip_stdout(m)
            row.update(status=m.status, wall_s=round(m.wall_s, 1))
            source = m.result.get("trace")
            if m.status != "PASS" or not source:
                row["note"] = "the traced run failed" if m.status != "PASS" else "no trace"
                continue
            target = out / "traces" / f"{_slug(command)}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(toolchain.ROOT / source, target)
            row["trace"] = str(target.relative_to(out))
            try:
                row.update(summary(target))
            except TraceError as exc:
                row["note"] = f"invalid trace: {exc}"
            if m.result.get("cycles") != cycles:
                row["note"] = f"the traced run counted {m.result.get('cycles')} cycles"
    return rows


def section(rows: list[dict]) -> list[str]:
    """The report's "Timelines" section: a link per traced workload and its headline
    figures, read from the trace itself."""
    if not rows:
        return []
    lines = ["## Timelines", "",
             "One `TRACE=1` run per cluster workload: engine jobs and steps, DMA transfers, "
             "each core's functions and its sleep in the event unit, in cycles (open the file "
             "in ui.perfetto.dev or chrome://tracing; `docs/trace.md`). The figures below are "
             "read back from the trace.", "",
             "| workload | trace | cycles | ITA jobs | ITA busy | DMA transfers | DMA bytes "
             "| cores asleep | note |", "|" + "---|" * 9]
    for r in rows:
        link = f"[{Path(r['trace']).name}]({r['trace']})" if r.get("trace") else "-"
        cells = [f"`{r['command']}`", link, r.get("cycles"), r.get("ita_jobs"),
                 r.get("ita_busy"), r.get("dma_transfers"), r.get("dma_bytes"),
                 f"{r['asleep_pct']} %" if "asleep_pct" in r else None, r.get("note", "")]
        lines.append("| " + " | ".join("-" if c is None else
                                        f"{c:,}" if isinstance(c, int) else str(c)
                                        for c in cells) + " |")
    return lines + [""]
