"""``make regress DASK=...`` gives what a local regression gives.

The comparison runs the same small list twice, with pytest-xdist here and on a Dask cluster
of two worker processes started by the test: the same per-case status, seeds, cycles and
messages, the same JUnit test cases and outcomes, the same failing and REGRESSION lines. The
list holds two seeds of a real simulation (the agents' self-tests, the cheapest model) and a
case that fails before it simulates, so that a failing line with its rerun command travels
both ways too.
"""

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from verif import distributed, regress

ROOT = Path(__file__).resolve().parents[2]

TESTS = [{"name": "uvm_agents", "expect": "pass", "reseed": 1.0, "ci_seeds": [],
          "coverage": False},
         {"name": "no_such_test", "expect": "pass", "reseed": 0.5, "ci_seeds": [],
          "coverage": False}]
#: What must not depend on where a case ran.
SAME = ("test", "seed", "expect", "status", "ok", "cycles", "message", "rerun")


def _regress(out: Path, capfd, *words: str):
    options = regress.parse_args(["SEEDS=2", "MAX_WAVES=0", *words])
    records, info = regress.regress(options, out=out, tests=TESTS)
    code = regress.finish(records, info, options, out=out)
    printed = capfd.readouterr().out.splitlines()
    root = ElementTree.parse(out / "junit.xml").getroot()
    junit = {(case.get("classname"), case.get("name")):
             [(bad.tag, bad.get("message")) for bad in case] for case in root.iter("testcase")}
    lines = [line for line in printed if line.startswith(("FAILED ", "REGRESSION "))]
    return records, code, junit, lines, printed


@pytest.mark.verilator
def test_dask_regression_matches_the_local_one(tmp_path, capfd):
    local = _regress(tmp_path / "local", capfd, "JOBS=2")
    dask = _regress(tmp_path / "dask", capfd, "DASK=local:2")
    records, code, junit, lines, printed = dask
    assert any("on the Dask cluster started here" in line and "2 workers" in line
               for line in printed), printed[:5]
    assert [{k: r[k] for k in SAME} for r in records] == \
           [{k: r[k] for k in SAME} for r in local[0]]
    assert junit == local[2] and len(junit) == 3
    assert lines == local[3] and code == local[1] == 1
    assert lines[-1] == "REGRESSION passed=2 failed=1 seeds=2"
    assert lines[0].startswith("FAILED no_such_test seed=1 status=FAIL") and \
           lines[0].endswith("-- rerun: make sim TEST=no_such_test SEED=1")
    simulated = [r for r in records if r["test"] == "uvm_agents"]
    assert [r["seed"] for r in simulated] == [1, 2]
    for r in simulated:  # real runs, each in its own run directory on the worker
        assert r["status"] == "PASS" and r["cycles"] > 0 and r["worker"]
        assert (Path(r["run_dir"]) / "results.xml").is_file()


@pytest.mark.parametrize("text, workers, address", [
    ("local:2", 2, ""), ("tcp://scheduler:8786", 0, "tcp://scheduler:8786"),
    ("10.1.2.3:8786", 0, "tcp://10.1.2.3:8786"), ("tls://[::1]:8786", 0, "tls://[::1]:8786")])
def test_targets(text, workers, address):
    target = distributed.parse_target(text)
    assert (target.workers, target.address, target.local) == (workers, address, workers > 0)


@pytest.mark.parametrize("text", ["local:0", "local:", "local", "scheduler", "http://x:1",
                                  "tcp://host", "tcp://host:port"])
def test_bad_targets_are_refused(text):
    with pytest.raises(ValueError):
        distributed.parse_target(text)


def test_a_bad_dask_value_is_one_error_line():
    run = subprocess.run([sys.executable, "-m", "verif.regress", "DASK=local:0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [f"regress: error: bad value 'local:0' for key DASK "
                                       f"(expected {distributed.DASK.expect})"]


def test_an_unreachable_scheduler_is_named(monkeypatch):
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2)
    with (pytest.raises(distributed.DistributedError, match=r"^Dask scheduler 127\.0\.0\.1:9: "),
          distributed.open_cluster(distributed.parse_target("127.0.0.1:9"))):
        pass


def test_a_worker_on_other_code_is_refused():
    here = distributed.fingerprint()
    assert here["commit"] and len(here["commit"]) == 40
    distributed._check_workers({"tcp://a:1": dict(here)}, here)
    other = dict(here, changes="0123456789ab", host="b", root="/elsewhere")
    with pytest.raises(distributed.DistributedError,
                       match=r"worker tcp://b:1 \(b:/elsewhere\) runs commit .* with uncommitted "
                             r"changes 0123456789ab, this checkout commit"):
        distributed._check_workers({"tcp://a:1": here, "tcp://b:1": other}, here)


def test_a_job_runs_in_a_clean_process_and_a_crash_is_named(monkeypatch):
    monkeypatch.setenv("VERIF_OPTIONS", "/the/submitter's/options.json")
    monkeypatch.setenv("MAKEFLAGS", "-j8")
    for name in ("VERIF_OPTIONS", "MAKEFLAGS"):
        reply = distributed.call_isolated("os:getenv", name)
        assert reply["result"] is None and reply["worker"]
    assert distributed.call_isolated("json:dumps", [1, 2])["result"] == "[1, 2]"
    with pytest.raises(distributed.IsolatedCallFailed, match="os:_exit ended with exit status 3"):
        distributed.call_isolated("os:_exit", 3)
    with pytest.raises(distributed.IsolatedCallFailed, match="error: no function os:nothing"):
        distributed.call_isolated("os:nothing", 3)
