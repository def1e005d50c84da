"""``make verilog TOP=ita|ita_hwpe|cluster [CONFIG=...] [ARRAY_N= ARRAY_M=] [LINT=0|1]``: Verilog.

Writes a self-contained directory ``build/verilog/<top>/``:

* ``<top>.v``: the Amaranth design, with a banner naming the command and the configuration;
* ``<top>.f``: the file list, in compilation order, with paths relative to the list itself
  (``verilator -F <top>.f``; other tools: prefix the directory);
* for the cluster, the third-party and hand-written SystemVerilog it instantiates, copied
  byte for byte: the CV32E40P core from the installed ``pythondata-cpu-cv32e40p`` package
  (``vendor/cv32e40p/``, with its licence) and ``sv/`` (L2 storage, core clock gate).

Nothing depends on the time or the machine, so the same command gives the same bytes. With
``LINT=1`` (the default) the output is linted with ``verilator --lint-only -Wall`` and the
waivers of ``hw/lint_waivers.vlt`` (plus ``hw/cluster_waivers.vlt`` for the cluster).
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import amaranth

from cluster_integration import core
from cluster_integration.cluster import Cluster
from cluster_integration.hwpe.ita_hwpe import ItaHwpe
from cluster_integration.l2 import L2_RAM_SOURCE
from hw import configs, toolchain
from ita import cli
from ita.cli import UsageError
from ita.rtl.engine import Engine

WAIVERS = Path(__file__).with_name("lint_waivers.vlt")
CLUSTER_WAIVERS = Path(__file__).with_name("cluster_waivers.vlt")
TOPS = ("ita", "ita_hwpe", "cluster")
OUT_ROOT = toolchain.BUILD_ROOT / "verilog"
#: The engine size keys and the ITAConfig field each one sets.
ARRAY_FIELDS = {"ARRAY_N": "N", "ARRAY_M": "M"}


def config_key(default):
    """CONFIG=: a named configuration of :mod:`hw.configs`."""
    return cli.choice_key("CONFIG", default, configs.CONFIGS,
                          help="named cluster configuration (hw/configs.py)")


#: The engine size, when given, overrides the configuration's.
ARRAY_KEYS = cli.array_keys(None, what="the configuration's")
KEYS = (cli.choice_key("TOP", "ita", TOPS, help="the design to emit"), config_key("default"),
        *ARRAY_KEYS, cli.flag_key("LINT", True, help="lint with verilator --lint-only -Wall"))
SYNOPSIS = "make verilog [KEY=VALUE ...]"
USAGE = cli.usage(SYNOPSIS, KEYS)


def resolve_config(options):
    """The :class:`~hw.configs.HwConfig` of CONFIG with ARRAY_N= and ARRAY_M= applied.

    A size the engine refuses (``ARRAY_M`` not a multiple of ``ARRAY_N``, ...) is a
    UsageError naming the keys.
    """
    hw = configs.get(options.get("CONFIG", "default"))
    sizes = {field: int(options[key]) for key, field in ARRAY_FIELDS.items()
             if options.get(key) is not None}
    try:
        return hw.with_engine(**sizes)
    except ValueError as exc:
        given = " ".join(f"{k}={options[k]}" for k in ARRAY_FIELDS if options.get(k) is not None)
        raise UsageError(f"{given}: {exc}") from None


def array_words(options):
    """The ``ARRAY_N=`` / ``ARRAY_M=`` words of ``options`` that were given."""
    return [f"{k}={options[k]}" for k in ARRAY_FIELDS if options.get(k) is not None]


def refused(options, error):
    """A UsageError for parameters the RTL refuses, naming the engine size keys given."""
    given = " ".join(array_words(options))
    return UsageError(f"{given}: {error}" if given else str(error))


def array_tag(options):
    """``-N<n>-M<m>`` for the given engine sizes: part of output directory names."""
    return "".join(f"-{field}{options[key]}" for key, field in ARRAY_FIELDS.items()
                   if options.get(key) is not None)


def command(top, options):
    """The canonical ``make verilog`` command line that regenerates this output."""
    words = [f"TOP={top}", f"CONFIG={options.get('CONFIG', 'default')}", *array_words(options)]
    return "make verilog " + " ".join(words)


def elaborate(top, hw):
    """The Amaranth component of ``top`` for configuration ``hw`` (a HwConfig)."""
    if top == "ita":
        return Engine(config=hw.ita)
    if top == "ita_hwpe":
        return ItaHwpe(config=hw.ita, data_width=hw.hwpe_width, cores=hw.cores)
    if top == "cluster":
        return Cluster(hw)
    raise UsageError(f"unknown TOP {top!r}; known: {', '.join(TOPS)}")


def third_party_sources(top):
    """(source path, path relative to the output directory) of every non-Amaranth file, in
    compilation order, that ``top`` instantiates."""
    if top != "cluster":
        return []

    package = core._package_root()
    pairs = []
    for src in core.core_sources():
        if src.is_relative_to(package):
            pairs.append((src, Path("vendor", "cv32e40p", src.relative_to(package))))
        else:
            pairs.append((src, Path("sv", src.name)))
    pairs.append((L2_RAM_SOURCE, Path("sv", L2_RAM_SOURCE.name)))
    return pairs


def _vendor_extras(top):
    """Files copied beside the sources but not compiled (licences)."""
    if top != "cluster":
        return []

    licence = core._package_root() / "LICENSE"
    return [(licence, Path("vendor", "cv32e40p", "LICENSE"))] if licence.is_file() else []


def banner(top, hw, cmd):

    return "".join(f"// {line}\n" for line in (
        f"Generated by {toolchain.PROJECT}; do not edit. Top module: {top}.",
        f"Command: {cmd}",
        *(f"Configuration {line}" for line in hw.summary()),
        f"Amaranth {amaranth.__version__}; no timestamps: the same command gives the same bytes.",
    ))


@dataclass(frozen=True)
class Output:
    top: str
    directory: Path
    verilog: Path
    filelist: Path
    sources: tuple  # every compiled file, in order (absolute paths)


def _write_if_changed(path, data: bytes):
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def generate(top, options, *, out_root=OUT_ROOT):
    """Write ``<out_root>/<top>/`` for the parsed ``options``; return an :class:`Output`.

    The Verilog is re-elaborated only when the Python sources, the configuration or the
    command changed (the cache stamp lives in ``<out_root>/.keys``, outside the output).
    """
    hw = resolve_config(options)
    component = elaborate(top, hw)  # fails early on parameters the RTL refuses
    cmd = command(top, options)
    text = banner(top, hw, cmd)
    directory = Path(out_root) / top
    verilog = directory / f"{top}.v"
    key = toolchain.source_digest("ita", "cluster_integration", extra=f"{top}\0{text}")
    stamp = Path(out_root) / ".keys" / f"{top}.key"
    if (verilog.is_file() and stamp.is_file() and stamp.read_text() == key
            and verilog.read_text().startswith(text)):
        component._MustUse__silence = True  # up to date: no need to convert it
    else:
        toolchain.emit_verilog(component, top, verilog, banner=text)
        _write_if_changed(stamp, key.encode())
    pairs = third_party_sources(top)
    for src, rel in [*pairs, *_vendor_extras(top)]:
        _write_if_changed(directory / rel, src.read_bytes())
    rels = [rel for _src, rel in pairs] + [Path(verilog.name)]
    incdirs = sorted({rel.parent for rel in rels if rel.parent.name == "include"})
    lines = text.splitlines()
    lines += ["// Sources in compilation order; paths are relative to this file",
              f"// (verilator -F {top}.f; for other tools prefix them with its directory).",
              *(f"+incdir+{d.as_posix()}" for d in incdirs),
              *(rel.as_posix() for rel in rels)]
    filelist = directory / f"{top}.f"
    _write_if_changed(filelist, ("\n".join(lines) + "\n").encode())
    sources = tuple(directory / rel for rel in rels)
    return Output(top, directory, verilog, filelist, sources)


def lint(output):
    """Run Verilator's linter with every warning on; return (ok, output text)."""
    env = toolchain.verilator_env()
    cmd = ["verilator", "--lint-only", "-Wall", str(WAIVERS)]
    if output.top == "cluster":
        cmd.append(str(CLUSTER_WAIVERS))
    cmd += ["-F", str(output.filelist), "--top-module", output.top]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main(argv=None):
    return cli.main("verilog", _command, argv, usage_text=USAGE)


def _command(words):
    options = cli.parse(words, KEYS)
    try:
        output = generate(options["TOP"], options)
    except UsageError:
        raise
    except ValueError as error:  # parameters the RTL refuses
        raise refused(options, error) from None
    print(f"verilog: wrote {output.verilog} and {output.filelist.name} "
          f"({len(output.sources)} source files)")
    if options["LINT"]:
        ok, text = lint(output)
        if text:
            print(text)
        waivers = WAIVERS.name + (f", {CLUSTER_WAIVERS.name}" if output.top == "cluster" else "")
        print(f"verilog: lint {'clean' if ok else 'FAILED'} (verilator --lint-only -Wall, "
              f"waivers {waivers})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
