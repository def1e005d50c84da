"""``make verilog TOP=ita|ita_hwpe [N=16 M=64] [LINT=1]``: synthesisable Verilog of a top.

Writes ``build/verilog/<top>.v`` and, with ``LINT=1`` (the default), runs
``verilator --lint-only -Wall`` on it with the waivers in ``hw/lint_waivers.vlt``.
"""

import subprocess
import sys
from pathlib import Path

from hw import toolchain
from ita.config import ITAConfig

WAIVERS = Path(__file__).with_name("lint_waivers.vlt")
TOPS = ("ita", "ita_hwpe")
USAGE = "usage: make verilog TOP=ita|ita_hwpe [N=<units>] [M=<dot length>] [LINT=0|1]"


def elaborate(top, config):
    if top == "ita":
        from ita.rtl.engine import Engine
        return Engine(config=config)
    if top == "ita_hwpe":
        from cluster_integration.hwpe.ita_hwpe import ItaHwpe
        return ItaHwpe(config=config)
    raise ValueError(f"unknown TOP {top!r}; known: {', '.join(TOPS)}")


def lint(path, top):
    """Run Verilator's linter with every warning on; return (ok, output)."""
    env = toolchain.verilator_env()
    cmd = ["verilator", "--lint-only", "-Wall", str(WAIVERS), str(path), "--top-module", top]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    options = {"TOP": "ita", "N": "16", "M": "64", "LINT": "1"}
    for word in argv:
        key, _, value = word.partition("=")
        if key not in options or not value:
            print(f"verilog: error: unknown or empty argument {word!r}; {USAGE}",
                  file=sys.stderr)
            return 2
        options[key] = value
    try:
        config = ITAConfig(N=int(options["N"]), M=int(options["M"]))
        if options["TOP"] not in TOPS:
            raise ValueError(f"unknown TOP {options['TOP']!r}; known: {', '.join(TOPS)}")
        elaborate(options["TOP"], config)  # fail early on parameters the RTL refuses
    except ValueError as error:
        print(f"verilog: error: {error}", file=sys.stderr)
        return 2
    key = toolchain.source_digest("ita", "cluster_integration",
                                  extra=f"{options['TOP']} {config!r}")
    path = toolchain.emit_verilog_cached(
        lambda: elaborate(options["TOP"], config), options["TOP"],
        toolchain.BUILD_ROOT / "verilog" / f"{options['TOP']}.v", key=key)
    print(f"verilog: wrote {path}")
    if options["LINT"] == "1":
        ok, output = lint(path, options["TOP"])
        if output:
            print(output)
        print(f"verilog: lint {'clean' if ok else 'FAILED'} (verilator --lint-only -Wall, "
              f"waivers {WAIVERS.name})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
