"""A second front end for the cluster Verilog (issue 19): slang, from the PyPI ``pyslang``
wheel, parses and elaborates a ``make verilog`` file list the way an SV compiler would.

Verilator is the only other tool that reads the CV32E40P SystemVerilog here, so a construct
it accepts but the language does not (or reads differently) would otherwise go unnoticed.
slang's default warning set is the check; ``-Weverything`` on the Amaranth output lists only
the code generator's idioms (implicit widths, signedness, case without default).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Elaboration:
    """What slang said about one design."""

    top: str
    errors: list[str] = field(default_factory=list)     #: formatted error diagnostics
    warnings: list[str] = field(default_factory=list)   #: formatted warning diagnostics
    instances: dict[str, int] = field(default_factory=dict)  #: module name -> instance count
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.instances)


def elaborate(filelist: str | Path, top: str, extra_args: Sequence[str] = ()) -> Elaboration:
    """Elaborate the sources of ``filelist`` (a ``make verilog`` ``.f``, paths relative to it)
    under ``top``; every diagnostic the driver's settings do not ignore is returned."""
    import pyslang

    t0 = time.monotonic()
    driver = pyslang.driver.Driver()
    driver.addStandardArgs()
    args = ["slang", "-F", str(filelist), "--top", top, *extra_args]
    result = Elaboration(top)
    if not (driver.parseCommandLine(shlex.join(args), pyslang.driver.CommandLineOptions())
            and driver.processOptions() and driver.parseAllSources()):
        result.errors.append(f"slang could not read {filelist} ({shlex.join(args[1:])})")
        return result
    compilation = driver.createCompilation()
    severity = pyslang.DiagnosticSeverity
    kept = {severity.Error: [], severity.Fatal: [], severity.Warning: []}
    for diag in compilation.getAllDiagnostics():
        level = driver.diagEngine.getSeverity(diag.code, diag.location)
        if level in kept:
            kept[level].append(diag)

    def report(diags):
        text = pyslang.DiagnosticEngine.reportAll(driver.sourceManager, diags)
        return [block for block in text.split("\n") if ": error: " in block
                or ": warning: " in block]

    result.errors = report(kept[severity.Error] + kept[severity.Fatal])
    result.warnings = report(kept[severity.Warning])

    def count(symbol):
        if symbol.kind == pyslang.ast.SymbolKind.Instance:
            name = symbol.definition.name
            result.instances[name] = result.instances.get(name, 0) + 1
        return True

    compilation.getRoot().visit(count)
    result.seconds = time.monotonic() - t0
    return result


def summary(result: Elaboration) -> str:
    """One line: verdict, instance and module counts, diagnostics, time."""
    verdict = "OK" if result.ok else "FAIL"
    return (f"SLANG top={result.top} status={verdict} instances={sum(result.instances.values())} "
            f"modules={len(result.instances)} errors={len(result.errors)} "
            f"warnings={len(result.warnings)} seconds={result.seconds:.1f}")
