"""The test plan, the regression and coverage command lines, and the coverage merge."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from verif import engine_uvm, regress
from verif.coverage import functional_report, merge_funcov
from verif.sim import load_tests

ROOT = Path(__file__).resolve().parents[2]


def _pytest_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_testplan_names_registered_tests():
    registry = load_tests()
    plan = regress.load_testplan()
    names = {t["name"] for t in regress.regression_tests(plan)}
    assert names <= set(registry), names - set(registry)
    for feature in plan["features"]:
        where = feature["id"]
        assert set(feature) <= {"id", "description", "tests", "sim", "pytest", "coverage"}, where
        assert feature.get("tests") or feature.get("sim") or feature.get("pytest"), where
        assert set(feature.get("tests", ())) <= names, where
        assert set(feature.get("sim", ())) <= set(registry), where
        for node in feature.get("pytest", ()):
            path, _, function = node.partition("::")
            assert path.startswith("tests/") and (ROOT / path).is_file(), (where, node)
            assert function in _pytest_functions(ROOT / path), (where, node)
    for test in regress.regression_tests(plan):
        if test["name"] in engine_uvm.TESTS:
            assert (test["expect"] == "fail") == engine_uvm.TESTS[test["name"]].expect_fail


def test_rerun_commands_reach_every_regression_test():
    """Every failing line says ``make sim TEST=<name> SEED=..``: the command line must know
    every test of the regression list (not only the process that imported its module)."""
    run = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=list"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    listed = {line.split()[0] for line in run.stdout.splitlines()
              if line.startswith("  ") and not line.startswith("   ")}
    names = {t["name"] for t in regress.regression_tests()}
    assert names <= listed, names - listed


def test_coverage_key_does_not_reach_cocotb(monkeypatch):
    """``make sim ... COVERAGE=1`` exports COVERAGE=1, which cocotb would read as a request
    for Python coverage of the testbench (and fail without the coverage package)."""
    from hw import toolchain

    monkeypatch.setenv("COVERAGE", "1")
    monkeypatch.setenv("COCOTB_USER_COVERAGE", "1")
    env = toolchain._runner_env({})
    assert "COVERAGE" not in env and "COCOTB_USER_COVERAGE" not in env


def test_cases_and_rerun_lines():
    tests = [{"name": "a", "expect": "pass", "reseed": 1.0},
             {"name": "b", "expect": "fail", "reseed": 0.25}]
    cases = regress.make_cases(tests, 8, first_seed=3)
    assert [c["seed"] for c in cases if c["test"] == "a"] == list(range(3, 11))
    assert [c["seed"] for c in cases if c["test"] == "b"] == [3, 4]
    record = {"test": "a", "seed": 7, "expect": "pass", "status": "FAIL", "cycles": 10,
              "message": "boom", "rerun": regress.rerun_command(cases[4])}
    line = regress.failing_line(record)
    assert "make sim TEST=a SEED=7" in line and line.startswith("FAILED a seed=7")


@pytest.mark.parametrize("module, args", [("verif.regress", ["BOGUS=1"]),
                                          ("verif.regress", ["SEEDS=x"]),
                                          ("verif.regress", ["SEEDS=0"]),
                                          ("verif.regress", ["TESTS=nope"]),
                                          ("verif.coverage_cli", ["MAX_WAVES=3"])])
def test_bad_arguments_print_one_line(module, args):
    run = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_functional_merge(tmp_path):
    def db(hits):
        return {"engine": {"size": 3, "coverage": 0, "cover_percentage": 0},
                "engine.p": {"size": 3, "coverage": sum(1 for h in hits if h), "weight": 1,
                             "at_least": 1, "cover_percentage": 0,
                             "bins:_hits": dict(zip("abc", hits, strict=True))}}
    files = []
    for i, hits in enumerate(([1, 0, 0], [0, 2, 0])):
        path = tmp_path / f"{i}.yml"
        path.write_text(yaml.safe_dump(db(hits)))
        files.append(str(path))
    merged = merge_funcov(files, tmp_path / "merged.yml")
    pct, text = functional_report(merged)
    assert round(pct, 1) == 66.7
    assert "a=1, b=2, c=0" in text
