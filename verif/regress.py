"""The regression: every test of the list in ``verif/testplan.yaml`` with n seeds, in parallel.

    python -m verif.regress [SEEDS=n] [JOBS=n] [TESTS=a,b] [FIRST_SEED=k] [MAX_WAVES=n] [DASK=...]
    make regress SEEDS=20 JOBS=2
    make regress SEEDS=20 DASK=tcp://scheduler:8786     # on the workers of a Dask cluster

* Seeds are ``FIRST_SEED .. FIRST_SEED + n - 1`` (times the test's ``reseed`` factor, at least
  one), so a run is reproducible and a failing seed replays with
  ``make sim TEST=<test> SEED=<seed>``.
* The cases run under pytest-xdist (``verif/regress_cases.py``); pytest writes the JUnit XML
  ``build/regress/junit.xml``. A negative test (``expect: fail``) passes when it fails.
* ``DASK=tcp://host:port`` sends the same cases to the workers of a Dask cluster instead,
  ``DASK=local:<n>`` to n worker processes started here (:mod:`verif.distributed`): pytest
  still drives them one test per case, so the JUnit XML, the summary and the rerun lines are
  the same; the cases build or reuse their models on the workers.
* Afterwards: ``build/regress/summary.txt`` (test, seed, status, cycles, seconds, one line per
  run), the functional coverage merged over the passing runs (``funcov.yml`` and
  ``funcov.txt``), failing seeds re-run with waves (at most ``MAX_WAVES``), every failing line
  with its rerun command, and as the last line::

      REGRESSION passed=<runs> failed=<runs> seeds=<seeds per test>

Exit status 0 when nothing failed, 1 otherwise, 2 on a bad command line or a Dask cluster
that cannot be used (unreachable, or a worker on other code).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ita import cli
from ita.cli import Key, UsageError, int_key, text_key
from ita.config import ITAConfig
from verif import distributed, engine_uvm, sim
from verif.channel import publish
from verif.coverage import compact_run, functional_report, merge_funcov
from verif.uvm import build_selftest, run_selftest

ROOT = Path(__file__).resolve().parent.parent
TESTPLAN = Path(__file__).resolve().parent / "testplan.yaml"
OUT = ROOT / "build" / "regress"


@dataclass(frozen=True)
class RegressOptions:
    """What the regression's pytest module (``verif/regress_cases.py``) reads through
    :mod:`verif.channel`."""

    cases_file: str  #: JSON list of the cases (test, seed, expect, coverage)
    out: str         #: the regression's output directory (per-case records go below it)
    dask: str = ""   #: the Dask scheduler's address; empty: run the cases in pytest's workers


def seeds_key(default: int) -> Key:
    """SEEDS=: seeds per test (times the test's reseed factor); make coverage has its own."""
    return int_key("SEEDS", default, minimum=1, help="seeds per test (times its reseed factor)")


JOBS = int_key("JOBS", 2, minimum=1, help="runs in parallel")
TESTS = text_key("TESTS", "", expect="test names, comma-separated", empty=True,
                 help="only these tests of the list (default: all)")
FIRST_SEED = int_key("FIRST_SEED", 1, minimum=1, help="seeds are FIRST_SEED, FIRST_SEED + 1, ...")
KEYS = (seeds_key(10), JOBS, TESTS, FIRST_SEED,
        int_key("MAX_WAVES", 5, minimum=0, help="failing seeds re-run with waves"),
        distributed.DASK)
SYNOPSIS = "make regress [KEY=VALUE ...]"


def load_testplan(path: Path = TESTPLAN) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def regression_tests(plan: dict | None = None) -> list[dict]:
    """The regression list: dicts with name, expect (pass/fail), reseed, ci_seeds."""
    plan = plan or load_testplan()
    tests = []
    for entry in plan["regression"]:
        tests.append({"name": entry["name"], "expect": entry.get("expect", "pass"),
                      "reseed": float(entry.get("reseed", 1.0)),
                      "ci_seeds": list(entry.get("ci_seeds", [])),
                      "coverage": bool(entry.get("coverage", False))})
    return tests


def parse_args(words: Sequence[str], keys: Sequence[Key] = KEYS) -> dict:
    """Options over ``keys`` from ``KEY=VALUE`` words; UsageError on anything else."""
    return cli.parse(words, keys)


def make_cases(tests: list[dict], seeds: int, first_seed: int = 1, *,
               coverage: bool = False) -> list[dict]:
    cases = []
    for test in tests:
        count = max(1, round(seeds * test["reseed"]))
        for seed in range(first_seed, first_seed + count):
            cases.append({"test": test["name"], "seed": seed, "expect": test["expect"],
                          "coverage": coverage})
    return cases


def load_cases(path: str | None) -> list[dict]:
    if not path:
        return []
    return json.loads(Path(path).read_text())


def case_id(case: dict) -> str:
    """The name of a case: its pytest id, record file and Dask job."""
    return f"{case['test']}-seed{case['seed']}"


def rerun_command(case: dict, waves: bool = False) -> str:
    words = [f"make sim TEST={case['test']} SEED={case['seed']}"]
    if case.get("coverage"):
        words.append("COVERAGE=1")
    if waves:
        words.append("WAVES=1")
    return " ".join(words)


def _ensure_registered():
    sim.load_tests()
    return sim


def run_case(case: dict, *, waves: bool = False) -> dict:
    """Run one (test, seed); return its record (status, cycles, run directory, ...)."""
    sim = _ensure_registered()
    name, seed = case["test"], case["seed"]
    coverage = bool(case.get("coverage"))
    start = time.monotonic()
    run_dir, message = None, None
    try:
        if name in engine_uvm.TESTS:
            outcome = engine_uvm.run_engine_uvm(name, seed, coverage=coverage, waves=waves)
            status, fields, run_dir, message = (outcome.status, outcome.fields,
                                                outcome.test_dir, outcome.message)
        elif name == "uvm_agents":
            outcome = run_selftest("all", seed, waves=waves)
            status, fields, run_dir, message = (outcome.status, outcome.fields,
                                                outcome.test_dir, outcome.message)
        else:
            words = [f"TEST={name}", f"SEED={seed}"] + (["WAVES=1"] if waves else [])
            test, options = sim.parse_args(words)
            status, fields = test.run(options)
    except Exception as exc:  # infrastructure failure: a FAIL with the reason
        traceback.print_exc()
        status, fields, message = "FAIL", {}, f"{type(exc).__name__}: {exc}"
    record = {
        "test": name, "seed": seed, "expect": case["expect"], "status": status,
        "ok": (status == "PASS") == (case["expect"] == "pass"),
        "cycles": fields.get("cycles"), "seconds": round(time.monotonic() - start, 1),
        "message": (message or "").splitlines()[0][:400] if message else "",
        "run_dir": str(run_dir) if run_dir else None,
        "rerun": rerun_command(case),
    }
    if run_dir is not None:
        funcov = Path(run_dir) / "funcov.yml"
        record["funcov"] = str(funcov) if funcov.is_file() else None
        if coverage and not waves:
            record["codecov"] = compact_run(Path(run_dir))
    return record


def run_case_portable(case: dict) -> dict:
    """:func:`run_case` on a Dask worker: the record also carries the run's functional
    coverage (``funcov_text``), since its files stay on the worker's disk."""
    record = run_case(case)
    if record.get("funcov"):
        record["funcov_text"] = Path(record["funcov"]).read_text()
    return record


def record_from_reply(case: dict, reply, out: Path) -> dict:
    """The record of a case run on a worker: ``reply()`` gives :func:`run_case_portable`'s
    result through :func:`verif.distributed.call_isolated`; a job that died is a FAIL."""
    try:
        answer = reply()
    except Exception as exc:  # the worker or the job's process died: a FAIL with the reason
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        return {"test": case["test"], "seed": case["seed"], "expect": case["expect"],
                "status": "FAIL", "ok": False, "cycles": None, "seconds": None,
                "message": f"Dask job failed: {type(exc).__name__}: {why}"[:400],
                "run_dir": None, "rerun": rerun_command(case)}
    print(answer["output"])  # pytest keeps it with the case, as for a local run
    record = dict(answer["result"], worker=answer["worker"])
    text = record.pop("funcov_text", None)
    if text is not None:  # the worker's coverage file, copied here for the merge
        funcov = out / "funcov" / f"{case_id(case)}.yml"
        funcov.parent.mkdir(parents=True, exist_ok=True)
        funcov.write_text(text)
        record["funcov"] = str(funcov)
    return record


# --- reporting -----------------------------------------------------------------------------------


def read_records(out: Path, cases: list[dict]) -> list[dict]:
    records = []
    for case in cases:
        path = out / "records" / f"{case_id(case)}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
        else:  # the worker died before writing it
            records.append({"test": case["test"], "seed": case["seed"], "expect": case["expect"],
                            "status": "FAIL", "ok": False, "cycles": None, "seconds": None,
                            "message": "no record (the pytest or Dask worker crashed?)",
                            "run_dir": None, "rerun": rerun_command(case)})
    return records


def summary_table(records: list[dict]) -> str:
    rows = [("test", "seed", "status", "expected", "cycles", "seconds")]
    for r in records:
        rows.append((r["test"], str(r["seed"]), r["status"] if r["ok"] else f"{r['status']}!",
                     r["expect"].upper(), str(r["cycles"] if r["cycles"] is not None else "-"),
                     str(r["seconds"] if r["seconds"] is not None else "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def per_test_table(records: list[dict]) -> str:
    tests: dict[str, list[dict]] = {}
    for r in records:
        tests.setdefault(r["test"], []).append(r)
    rows = [("test", "runs", "ok", "failed", "cycles", "seconds")]
    for name, rs in tests.items():
        rows.append((name, str(len(rs)), str(sum(r["ok"] for r in rs)),
                     str(sum(not r["ok"] for r in rs)),
                     str(sum(r["cycles"] or 0 for r in rs)),
                     f"{sum(r['seconds'] or 0 for r in rs):.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def failing_line(record: dict) -> str:
    why = record["message"] or "see the run log"
    want = "" if record["expect"] == "pass" else " (expected FAIL)"
    return (f"FAILED {record['test']} seed={record['seed']} status={record['status']}{want} "
            f"cycles={record['cycles']}: {why} -- rerun: {record['rerun']}")


def merge_functional(records: list[dict], out: Path) -> tuple[float, str] | None:
    """Merge the funcov.yml files of passing positive runs into out/funcov.yml; report."""
    files = [r["funcov"] for r in records
             if r.get("funcov") and r["ok"] and r["expect"] == "pass"]
    if not files:
        return None
    merged = merge_funcov(files, out / "funcov.yml")
    pct, text = functional_report(merged)
    (out / "funcov.txt").write_text(text)
    return pct, str(out / "funcov.txt")


def run_pytest(cases: list[dict], out: Path, jobs: int, dask: str = "") -> int:
    """pytest over the cases: ``jobs`` xdist workers, or one process handing them to the Dask
    scheduler at ``dask``."""
    cases_file = out / "cases.json"
    cases_file.write_text(json.dumps(cases))
    options = RegressOptions(cases_file=str(cases_file), out=str(out), dask=dask)
    env = dict(os.environ, **publish(options),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "verif" / "regress_cases.py"),
           "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--no-header", "-rN",
           f"--junitxml={out / 'junit.xml'}", "--rootdir", str(ROOT)]
    if jobs > 1:
        cmd += ["-n", str(jobs)]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def prebuild(cases: list[dict], coverage: bool = False) -> None:
    """Build the models once, before the workers start (they would wait on the lock)."""
    names = {c["test"] for c in cases}
    if names & set(engine_uvm.TESTS) or any(n.startswith("ita_") for n in names):
        engine_uvm.build_engine_model(ITAConfig(), coverage=coverage)
    if "uvm_agents" in names:
        build_selftest()


def regress(options: dict, *, coverage: bool = False, out: Path = OUT,
            tests: list[dict] | None = None) -> tuple[list[dict], dict]:
    """Run the regression; return (records, info). Shared by ``make coverage``."""
    t0 = time.monotonic()
    tests = tests or regression_tests()
    if options["TESTS"]:
        wanted = options["TESTS"].split(",")
        known = {t["name"] for t in tests}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise UsageError(f"unknown test(s) {', '.join(unknown)} (known: "
                             f"{', '.join(sorted(known))})")
        tests = [t for t in tests if t["name"] in wanted]
    cases = make_cases(tests, options["SEEDS"], options["FIRST_SEED"], coverage=coverage)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (*(out / "records").glob("*.json"), *(out / "funcov").glob("*.yml")):
        stale.unlink()
    what = (f"regress: {len(cases)} runs ({len(tests)} tests, {options['SEEDS']} seeds from "
            f"{options['FIRST_SEED']})")
    dask = options.get("DASK", "")
    if dask:
        # No prebuild here: the workers may not share this disk; each case builds or reuses
        # its model on its worker, under the build's lock.
        with distributed.open_cluster(distributed.parse_target(dask)) as cluster:
            print(f"{what} on the {cluster.describe()}, results in {out}", flush=True)
            run_pytest(cases, out, 1, dask=cluster.address)
    else:
        print(f"{what}, {options['JOBS']} in parallel, results in {out}", flush=True)
        prebuild(cases, coverage)
        run_pytest(cases, out, options["JOBS"])
    records = read_records(out, cases)
    (out / "summary.txt").write_text(summary_table(records))
    info = {"seconds": time.monotonic() - t0, "runs": len(records)}
    return records, info


def rerun_with_waves(records: list[dict], limit: int) -> list[str]:
    notes = []
    for record in [r for r in records if not r["ok"]][:limit]:
        case = {"test": record["test"], "seed": record["seed"], "expect": record["expect"]}
        print(f"regress: re-running {record['test']} seed={record['seed']} with waves",
              flush=True)
        again = run_case(case, waves=True)
        wave = Path(again["run_dir"]) / "dump.fst" if again.get("run_dir") else None
        where = str(wave) if wave and wave.is_file() else "see the sim log"
        notes.append(f"waves of {record['test']} seed={record['seed']}: {where} (rerun: "
                     f"{rerun_command(case, waves=True)})")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main("regress", _command, argv, usage_text=cli.usage(SYNOPSIS, KEYS),
                    failures=(distributed.DistributedError,))


def _command(words: list[str]) -> int:
    options = parse_args(words)
    records, info = regress(options)
    return finish(records, info, options)


def finish(records: list[dict], info: dict, options: dict, out: Path = OUT) -> int:
    """Print the per-test table, coverage, waves of failures, the failing lines with their
    rerun commands and the REGRESSION line; return the exit status."""
    failed = [r for r in records if not r["ok"]]
    print()
    print(per_test_table(records))
    print(f"\nregress: summary table {out / 'summary.txt'}, JUnit {out / 'junit.xml'}")
    functional = merge_functional(records, out)
    if functional:
        print(f"regress: functional coverage {functional[0]:.1f}% of bins ({functional[1]})")
    if failed:
        for note in rerun_with_waves(failed, options["MAX_WAVES"]):
            print(f"regress: {note}")
        for record in failed:
            print(failing_line(record))
    minutes = info["seconds"] / 60
    print(f"regress: {info['runs']} runs in {minutes:.1f} min")
    print(f"REGRESSION passed={len(records) - len(failed)} failed={len(failed)} "
          f"seeds={options['SEEDS']}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
