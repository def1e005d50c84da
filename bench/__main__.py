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
from pathlib import Path

from bench.suite import FULL, QUICK, SECTIONS, Bench

USAGE = ("usage: python -m bench [QUICK=0|1] [ONLY=<section,...>] [REPEATS=<n>] [OUT=<dir>]"
         f"  (sections: {', '.join(SECTIONS)})")


class UsageError(ValueError):
    pass


def parse_args(argv: Sequence[str]) -> dict:
    options = {"QUICK": False, "ONLY": SECTIONS, "REPEATS": None, "OUT": Path("build/bench")}
    seen = set()
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or key not in options:
            raise UsageError(f"unexpected argument {word!r}")
        if key in seen:
            raise UsageError(f"{key} given twice")
        seen.add(key)
        if key == "QUICK":
            if value not in ("0", "1"):
                raise UsageError(f"QUICK must be 0 or 1, not {value!r}")
            options[key] = value == "1"
        elif key == "ONLY":
            names = tuple(n for n in value.split(",") if n)
            bad = [n for n in names if n not in SECTIONS]
            if bad or not names:
                raise UsageError(f"unknown section(s) {', '.join(bad) or repr(value)} in ONLY "
                                 f"(known: {', '.join(SECTIONS)})")
            options[key] = tuple(n for n in SECTIONS if n in names)
        elif key == "REPEATS":
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"REPEATS must be a positive integer, not {value!r}")
            options[key] = int(value)
        else:
            if not value:
                raise UsageError("OUT needs a directory")
            options[key] = Path(value)
    return options


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    from bench import plots, report
    from bench.runner import children_cpu_seconds
    from hw import toolchain

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_args(argv)
    except UsageError as exc:
        print(f"bench: error: {exc} ({USAGE.removeprefix('usage: ')})", file=sys.stderr)
        return 2
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
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    command = "make bench" + "".join(f" {w}" for w in argv)
    meta = {"command": command, "seed": plan.seed, "repeats": plan.repeats,
            "sections": list(options["ONLY"]), "plan": dataclasses.asdict(plan),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": _load()}
    crow = report.cluster_rows(results)
    figures = plots.write_all(results, out, seed=plan.seed, cluster_rows=crow)
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
