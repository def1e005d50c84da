"""``make bench``: ``python -m bench [QUICK=0|1] [ONLY=<section,...>] [REPEATS=<n>] [OUT=<dir>]``.

Runs the benchmark plan (:mod:`bench.suite`), then writes ``<OUT>/report.md``, the PNG figures
and ``<OUT>/results.json`` (default ``build/bench``). Progress goes to stderr as ``[k/n]
mm:ss <command>``. Exit status: 0 when every run passed, 1 when any failed (the report is
still written and lists them), 2 on bad arguments.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence

from bench import plots, report, trace_links
from bench.runner import children_cpu_seconds
from bench.suite import FULL, QUICK, SECTIONS, Bench
from hw import toolchain
from ita import cli
from ita.cli import UsageError

__all__ = ["KEYS", "UsageError", "parse_args", "main"]

KEYS = (cli.flag_key("QUICK", help="the quick plan instead of the full one"),
        cli.list_key("ONLY", SECTIONS, SECTIONS, help="sections to run"),
        cli.int_key("REPEATS", None, minimum=1, help="repeats per timing (default: the plan's)"),
        cli.path_key("OUT", "build/bench", help="report directory (relative: to the repository)"))
USAGE = cli.usage("make bench [KEY=VALUE ...]", KEYS)


def parse_args(argv: Sequence[str]) -> dict:
    """Options over :data:`KEYS`; UsageError on anything else."""
    return cli.parse(argv, KEYS)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main("bench", _command, argv, usage_text=USAGE)


def _command(argv: list[str]) -> int:

    options = parse_args(argv)
    plan = QUICK if options["QUICK"] else FULL
    if options["REPEATS"]:
        plan = dataclasses.replace(plan, repeats=options["REPEATS"])
    out = options["OUT"]
    if not out.is_absolute():
        out = toolchain.ROOT / out
    load_before = _load()
    t0, cpu0 = time.monotonic(), children_cpu_seconds()
    bench = Bench(plan, sections=options["ONLY"], out=out)
    results = bench.run()
    results["traces"] = trace_links.record(results, out, log=bench.log)
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    command = "make bench" + "".join(f" {w}" for w in argv)
    meta = {"command": command, "seed": plan.seed, "repeats": plan.repeats,
            "sections": list(options["ONLY"]), "plan": dataclasses.asdict(plan),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": _load()}
    crow = report.cluster_rows(results)
    mrows = report.minilm_rows(results)
    figures = plots.write_all(results, out, seed=plan.seed, cluster_rows=crow,
                              minilm_rows=mrows, decoder_rows=report.decoder_rows(results),
                              multichip_rows=report.multichip_rows(results))
    report.write_json(out / "results.json", {
        "meta": meta, **results, "cluster_breakdown": crow, "figures": figures,
        "notes": bench.notes, "failures": bench.failures})
    path = report.write_markdown(out / "report.md", results, meta, figures, crow, bench.notes,
                                 bench.failures)
    print(f"bench: {bench.step} steps in {wall:.0f} s (CPU {cpu:.0f} s); report: {path}",
          file=sys.stderr)
    for failure in bench.failures:
        print(f"bench: FAILED: {failure['command']}", file=sys.stderr)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
