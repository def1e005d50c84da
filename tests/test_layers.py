"""Layers point one way: the import-linter contracts of ``pyproject.toml`` hold.

configuration (``ita.config``, ``ita.cluster_config``, ``ita.cli``) -> golden model ->
model side (``ita.models``, ``ita.quant``, ``ita.deploy``) and RTL (``ita.rtl``,
``cluster_integration``) -> generation and toolchain (``hw``, ``sw``) -> verification library
(``verif``) -> tools (``bench``); and no two modules of one package import each other. The
graph includes function-level imports, so a local import does not hide a cycle.
"""

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
