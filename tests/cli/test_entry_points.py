"""Every ``python -m`` entry point speaks ita.cli, and ``make help`` names only real keys."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ita import cli

ROOT = Path(__file__).resolve().parents[2]

#: Every ``python -m`` command-line tool, with words that get it as far as its keys.
ENTRY_POINTS = {
    "verif.sim": ["TEST=smoke"],
    "verif.regress": [],
    "verif.coverage_cli": [],
    "hw.verilog": [],
    "hw.fpga_cli": [],
    "verif.harness.engine": [],
    "verif.harness.run": ["APP=hello"],
    "bench": [],
    "bench.cluster_image": [],
    "bench.dma_rate": ["MODE=copy"],
    "ita.golden": [],
    "sw.build": ["APP=hello"],
    "ita.quant.evaluate": ["MODEL=minilm", "IN=sentences.txt"],
}
#: Tools that keep flag-style (argparse) arguments: not make targets.
FLAG_STYLE_TOOLS = {"ita.models.llama", "ita.quant.minilm", "ita.quant.llama"}


def _run(module, *words):
    return subprocess.run([sys.executable, "-m", module, *words], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_unknown_key_is_one_error_line_and_exit_2(module):
    proc = _run(module, *ENTRY_POINTS[module], "NO_SUCH_KEY=1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and ": error: unknown key NO_SUCH_KEY" in lines[0], proc.stderr
    assert "known: " in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("module", ["verif.regress", "hw.verilog", "bench", "sw.build"])
def test_help_lists_the_keys(module):
    proc = _run(module, "HELP=1")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: "), proc.stderr
    for key in declared_keys(module):
        assert f"  {key}=" in proc.stdout


def declared_keys(module):
    """The key names a make target's tool accepts."""
    if module == "verif.sim":
        from verif import sim

        return {"TEST"} | {k.name for t in sim.load_tests().values() for k in t.keys}
    if module == "verif.coverage_cli":
        from verif import coverage_cli

        return {k.name for k in coverage_cli.keys()}
    for name in (f"{module}.__main__", module):
        try:
            entry = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(entry, "KEYS"):
            return {k.name for k in entry.KEYS}
    raise AssertionError(f"{module} declares no KEYS")


def make_help_keys():
    """{tool module: KEY names in its ``make help`` lines} from the Makefile."""
    text = (ROOT / "Makefile").read_text()
    modules = dict(re.findall(r"^([a-z]+):.*\n\t@\$\(PY\) -m ([\w.]+) \$\(ARGS\)", text, re.M))
    help_lines = re.findall(r'^\t@echo "(.*)"$', text, re.M)
    keys: dict[str, set[str]] = {}
    target = None
    for line in help_lines:
        first = re.match(r"make (\w+)", line)
        if first:
            target = first.group(1)
        elif line.strip() and not line.startswith(" "):
            target = None  # a line of its own, not the continuation of a target's
        if target in modules:
            found = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", line)) - {"KEY"}  # KEY=VALUE
            keys.setdefault(modules[target], set()).update(found)
    return keys


def test_make_help_names_only_declared_keys():
    found = make_help_keys()
    assert {"verif.sim", "hw.verilog", "hw.fpga_cli", "ita.golden", "bench"} <= set(found)
    for module, names in found.items():
        unknown = names - declared_keys(module)
        assert not unknown, f"make help names {sorted(unknown)} for {module}"


def test_engine_size_keys_are_array_n_and_array_m_everywhere():
    """N= stays a matrix size (gemm); the engine's size is ARRAY_N= / ARRAY_M= in every tool."""
    from verif import sim

    tests = sim.load_tests()
    for name, test in tests.items():
        names = {k.name for k in test.keys}
        if name.startswith(("ita_", "uvm_engine_", "uvm_hwpe_")):
            assert {"ARRAY_N", "ARRAY_M"} <= names and not {"N", "M"} & names, name
    assert {"M", "K", "N"} <= {k.name for k in tests["gemm"].keys}
    for module in ("hw.verilog", "hw.fpga_cli", "verif.harness.engine", "ita.golden"):
        names = declared_keys(module)
        assert {"ARRAY_N", "ARRAY_M"} <= names and not {"N", "M"} & names, module


def test_every_entry_point_is_listed():
    """A new ``python -m`` tool joins ENTRY_POINTS (and so the checks above) or is named as
    flag-style."""
    found = set()
    for package in ("verif", "hw", "bench", "ita", "sw"):
        for path in (ROOT / package).rglob("*.py"):
            if 'if __name__ == "__main__":' in path.read_text():
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.add(module.removesuffix(".__main__"))
    assert found == set(ENTRY_POINTS) | FLAG_STYLE_TOOLS


def test_sim_testcase_selects_a_pyuvm_class():
    from verif import sim, uvm

    sim.load_tests()
    test, options = sim.parse_args(["TEST=uvm_agents", "TESTCASE=tcdm"])
    assert options["TESTCASE"] == "tcdm" and "tcdm" in uvm.SELFTESTS
    with pytest.raises(cli.UsageError, match="bad value 'nope' for key TESTCASE"):
        sim.parse_args(["TEST=uvm_agents", "TESTCASE=nope"])
