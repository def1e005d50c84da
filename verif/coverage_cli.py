"""``make coverage``: the regression run twice, for functional coverage on the regular model
and for line/toggle coverage on the coverage build, then merged into reports
(:mod:`verif.coverage` has the machinery; this module sits on top of it and of
:mod:`verif.regress`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from ita import cli
from ita.config import ITAConfig
from verif import regress
from verif.coverage import (
    OUT,
    SYNOPSIS,
    build_coverage_model,
    code_report,
    coverage_verilog,
    functional_report,
    merge_code_coverage,
    merge_funcov,
    write_dat,
)

__all__ = ["keys", "main"]


def keys():
    """The keys of ``make coverage``: those of ``make regress`` but MAX_WAVES, more seeds."""
    return (regress.seeds_key(20),
            cli.int_key("CODE_SEEDS", 2, minimum=1, help="seeds per test on the coverage build"),
            regress.JOBS, regress.TESTS, regress.FIRST_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main("coverage", _command, argv, usage_text=lambda _: cli.usage(SYNOPSIS, keys()))


def _command(words: list[str]) -> int:
    t0 = time.monotonic()
    options = cli.parse(words, keys())
    options["MAX_WAVES"] = 0
    tests = [t for t in regress.regression_tests() if t["coverage"]]
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"coverage: functional coverage from {options['SEEDS']} seeds per test on the "
          f"regular model", flush=True)
    functional_runs, _ = regress.regress(options, out=OUT / "functional_runs", tests=tests)
    print(f"coverage: code coverage from {options['CODE_SEEDS']} seeds per test on the "
          "line/toggle coverage model (built on first use)", flush=True)
    build_coverage_model(ITAConfig())
    code_runs, _ = regress.regress({**options, "SEEDS": options["CODE_SEEDS"]},
                                   coverage=True, out=OUT / "code_runs", tests=tests)
    records = functional_runs + code_runs
    (OUT / "summary.txt").write_text(regress.summary_table(records))
    failed = [r for r in records if not r["ok"]]
    for record in failed:
        print(regress.failing_line(record))
    functional = 0.0
    funcov_files = [r["funcov"] for r in functional_runs
                    if r["ok"] and r["expect"] == "pass" and r.get("funcov")]
    if funcov_files:
        merged = merge_funcov(funcov_files, OUT / "funcov.yml")
        functional, text = functional_report(merged)
        (OUT / "functional.txt").write_text(text)
        print(f"coverage: functional {functional:.1f} % of bins from {len(funcov_files)} runs "
              f"({OUT / 'functional.txt'})")
    npz = [r["codecov"] for r in code_runs if r["ok"] and r.get("codecov")]
    line = toggle = 0.0
    if npz:
        counts, _digest, raw = merge_code_coverage(npz)
        write_dat(OUT / "coverage.dat", counts, raw)
        result = code_report(counts, raw, coverage_verilog(ITAConfig()), OUT)
        line, toggle = result["line_pct"], result["toggle_pct"]
        print(f"coverage: code from {len(npz)} runs: ita/rtl Python lines {result['line'][0]}/"
              f"{result['line'][1]}, Verilog line points {result['vline'][0]}/"
              f"{result['vline'][1]} ({result['vline_pct']:.1f} %), branch points "
              f"{result['branch'][0]}/{result['branch'][1]} ({result['branch_pct']:.1f} %), "
              f"toggle points {result['toggle'][0]}/{result['toggle'][1]} "
              f"({OUT / 'code.txt'})")
    print(f"coverage: {len(records) - len(failed)} runs passed, {len(failed)} failed; reports "
          f"in {OUT} in {(time.monotonic() - t0) / 60:.1f} min")
    print(f"COVERAGE functional={functional:.1f} line={line:.1f} toggle={toggle:.1f}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
