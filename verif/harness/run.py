"""Fast pure-software runs on the cluster: ``python -m verif.harness.run APP=<name>``.

``make run APP=<name>`` builds ``sw/apps/<name>`` (:func:`sw.build.build_app`), builds (or
reuses) a plain Verilator C++ model of the cluster test top with the harness
``verif/harness/cluster_main.cpp`` -- from the same Verilog and SystemVerilog as the cocotb model
of :func:`verif.cluster.model.build_model`, but without VPI, cocotb or Python in the loop -- runs
the program, streams its output, and ends with the RESULT line (:mod:`verif.result`)::

    RESULT test=<app> status=PASS|FAIL cycles=<n> outcome=<how it ended>
           sim_cycles_per_s=<n> cpu_cycles_per_s=<n> sim_profile=<name>
           [<key>=<n> from "stats:" lines]

``sim_cycles_per_s`` is cluster clock cycles per second of wall-clock time in the simulation
loop, ``cpu_cycles_per_s`` the same per second of the simulator's CPU time (what a loaded,
shared machine does not distort); ``sim_profile`` the build profile of the model
(``SIM_PROFILE=`` key or environment variable, :data:`hw.toolchain.SIM_PROFILES`, docs/bench.md).
Exit status: 0 on PASS (the program exited with code 0), 1 on FAIL, 2 on bad arguments or a
failed build.

The program is loaded by the L2 RAM's ``initial`` block from the ``+L2_HEX`` plusarg
(``cluster_integration/sv/cluster_l2_ram.sv``), not through VPI. Models are cached by content
hash under ``build/harness/<hash>/`` (first build: verilate plus C++ compile, 1.5 to 4 min on
2 cores); never with ``--threads`` (docs/toolchain.md, section 4).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cluster_integration.core import CORE_LINT_WAIVERS, core_sources
from cluster_integration.l2 import L2_RAM_SOURCE
from cluster_integration.memory_map import region
from hw import toolchain
from ita import cli
from ita.cli import UsageError
from sw.build import BuildError, app_sources, build_app, read_hex
from verif.result import format_result
from verif.tops.cluster import ClusterTestTop
from verif.tops.core import RAM_SV

__all__ = ["HarnessBuild", "HarnessRun", "UsageError", "build_harness", "model_sources",
           "l2_image", "merged_l2_image", "run_app", "run_image", "main", "VERILATOR_ARGS",
           "DEFAULT_MAX_CYCLES"]

HARNESS_DIR = Path(__file__).resolve().parent
MAIN_CPP = HARNESS_DIR / "cluster_main.cpp"
PUBLIC_PC_VLT = HARNESS_DIR / "public_pc.vlt"  # makes each core's pc_id readable (timeouts)
BUILD_DIR = toolchain.BUILD_ROOT / "harness"
TOPLEVEL = "cluster_test_top"
EXECUTABLE = f"V{TOPLEVEL}"
DEFAULT_MAX_CYCLES = 5_000_000  # as verif.cluster.sim
SYNOPSIS = "python -m verif.harness.run APP=<name> [MAX_CYCLES=<n>]"
SUMMARY = "cluster_main: summary "

#: Verilator arguments of the C++ model (the core's lint waivers are added). -O3 and
#: --x-assign/--x-initial fast: speed (Amaranth initialises every register); --noassert: the
#: core's assertions are not needed for software runs; -Wno-fatal: Amaranth's case statements.
#: The C++ is compiled with hw.toolchain's make variables (OPT_FAST=-O2; -O3 measured no faster).
#: No --trace, no --public (only pc_id, :data:`PUBLIC_PC_VLT`), no --vpi, never --threads.
VERILATOR_ARGS = ("--cc", "--exe", "--build", "-j", "2", "-O3", "--x-assign", "fast",
                  "--x-initial", "fast", "--noassert", "-Wno-fatal")


@dataclass(frozen=True)
class HarnessBuild:
    """A built C++ model with the harness main."""

    build_dir: Path
    digest: str
    rebuilt: bool  # True if this call compiled it, False if it came from the cache
    seconds: float  # wall time of this call, waiting on the lock included
    profile: str = toolchain.DEFAULT_SIM_PROFILE  # the hw.toolchain.SimProfile it was built with

    @property
    def executable(self) -> Path:
        return self.build_dir / EXECUTABLE


@dataclass(frozen=True)
class HarnessRun:
    """One run: PASS/FAIL, the RESULT fields, the program's output and the harness report."""

    status: str
    fields: dict
    output: str  # the characters the program wrote
    report: dict  # the harness's summary line, parsed (end, cycles, ..., cycles_per_s)
    returncode: int
    result_line: str


# --- the model --------------------------------------------------------------------------------


def model_sources() -> list[Path]:
    """The sources of :func:`verif.cluster.model.build_model`: core RTL, the L2 RAM, the test RAM
    and the generated Verilog of the cluster test top (emitted here if out of date)."""

    key = toolchain.source_digest("ita", "cluster_integration", "verif.tops")
    verilog = toolchain.emit_verilog_cached(
        ClusterTestTop, TOPLEVEL, toolchain.BUILD_ROOT / "gen" / f"{TOPLEVEL}.v", key=key)
    return [*core_sources(), L2_RAM_SOURCE, RAM_SV, verilog]


def _verilator_args(profile: toolchain.SimProfile) -> list[str]:

    return [*VERILATOR_ARGS, *CORE_LINT_WAIVERS, *profile.harness_args]


def _digest(sources: Sequence[Path], args: Sequence[str], make_vars: str) -> str:
    h = hashlib.sha256()
    for part in (TOPLEVEL, "\0".join(args), make_vars, toolchain.verilator_version()):
        h.update(part.encode() + b"\0\1")
    for src in (*sources, PUBLIC_PC_VLT, MAIN_CPP):
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0\1")
    return h.hexdigest()[:12]


def verilate_cached(build_dir: Path, top: str, executable: str, args: Sequence[str],
                    sources: Sequence[Path], *, what: str,
                    make_vars: str = toolchain.VERILATOR_MAKEFLAGS) -> bool:
    """Build ``build_dir/executable`` with Verilator unless a finished build is there (its
    ``.built`` stamp); concurrent callers wait on the directory's lock. Returns whether it
    built; BuildFailed with the log's tail on errors. ``make_vars``: MAKEFLAGS of the C++
    compile (a :class:`hw.toolchain.SimProfile`'s)."""
    stamp = build_dir / ".built"
    with toolchain.file_lock(build_dir / ".lock"):
        if stamp.is_file() and (build_dir / executable).is_file():
            return False
        stamp.unlink(missing_ok=True)
        log = build_dir / "build.log"
        cmd = ["verilator", *args, "--top-module", top, "-Mdir", str(build_dir),
               "-o", executable, *map(str, sources)]
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                  env=toolchain.verilator_env(make_vars=make_vars),
                                  cwd=build_dir)
        if proc.returncode != 0 or not (build_dir / executable).is_file():
            tail = log.read_text(errors="replace").splitlines()[-30:]
            raise toolchain.BuildFailed("\n".join(
                [f"{what} build failed (exit {proc.returncode}); {log}:", *tail]))
        stamp.write_text(f"{top} {build_dir.name}\n")
        return True


def run_model(cmd: Sequence[str], *, stream: bool, summary: str = SUMMARY,
              parse=None) -> tuple[int, list[str], dict]:
    """Run a harness executable; return its exit status, its output lines and its last line
    starting with ``summary`` parsed by ``parse`` (default: this harness's; {} without one).
    ``stream`` echoes the output as it comes."""
    parse = parse or _parse_summary
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", bufsize=1) as proc:
        for line in proc.stdout:
            lines.append(line)
            if stream:
                print(line, end="", flush=True)
    summaries = [line for line in lines if line.startswith(summary)]
    return proc.returncode, lines, parse(summaries[-1]) if summaries else {}


def build_harness(profile: str | None = None) -> HarnessBuild:
    """Build (or reuse) the C++ model in ``build/harness/<hash>/``; BuildFailed on errors.

    ``profile``: a :data:`hw.toolchain.SIM_PROFILES` name (default ``$SIM_PROFILE`` or
    ``fast``). The hash covers every source's contents, the harness main, the Verilator
    arguments, the make variables and Verilator's version; an flock lets one of several
    concurrent callers build while the others wait and reuse the result.
    """
    t0 = time.monotonic()
    prof = toolchain.sim_profile(profile)
    sources = model_sources()
    args = _verilator_args(prof)
    if any(a == "--threads" or a.startswith("--threads=") for a in args):
        raise ValueError("do not use Verilator --threads: it slows these models down")
    digest = _digest(sources, args, prof.make_vars)
    build_dir = BUILD_DIR / digest
    what = f"C++ harness ({prof.name})"
    if not (build_dir / ".built").is_file():
        toolchain.say(f"building the {what} in {toolchain.relative(build_dir)} (minutes) ...",
                      "run")
    with toolchain.ticking(f"building the {what}", lambda: _make_phase(build_dir), tool="run"):
        rebuilt = verilate_cached(build_dir, TOPLEVEL, EXECUTABLE, args,
                                  [PUBLIC_PC_VLT, *sources, MAIN_CPP], what=what,
                                  make_vars=prof.make_vars)
    return HarnessBuild(build_dir, digest, rebuilt, time.monotonic() - t0, prof.name)


def _make_phase(build_dir: Path) -> str:
    """How far a harness build is: verilating, then C++ objects done of all."""
    cpp = {p.stem for p in build_dir.glob(f"{EXECUTABLE}*.cpp")}
    if not cpp:
        return "verilating"
    done = sum((build_dir / f"{stem}.o").is_file() for stem in cpp)
    return f"compiling C++ ({done} of {len(cpp)} files done)" if done < len(cpp) else "linking"


# --- the program image ------------------------------------------------------------------------


def l2_image(hex_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """A ``$readmemh`` file for ``+L2_HEX`` from a ``sw.build`` ``.hex`` image.

    ``sw.build`` writes a ``//`` comment line and then one word per line from its base
    address. That is already a ``$readmemh`` file when the base is the start of L2 (word 0 of
    the RAM), which is how ``sw.build`` links every program, so that file is used as it is.
    Any other base gets a converted copy with an ``@<word offset>`` line, in ``out_dir``
    (default: beside the image). ValueError if the image does not lie in L2.
    """

    path = Path(hex_path)
    base, words = read_hex(path)
    l2 = region("L2")
    if base % 4 or base < l2.base or base + 4 * len(words) > l2.end:
        raise ValueError(f"{path}: image at {base:#x} ({4 * len(words)} B) is not inside L2")
    if base == l2.base:
        return path
    out = Path(out_dir) if out_dir else path.parent
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{path.stem}.l2.hex"
    lines = [f"// {path.name} for $readmemh into L2 (word addresses from {l2.base:#010x})",
             f"@{(base - l2.base) // 4:x}", *(f"{w:08x}" for w in words)]
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return target


def l3_image(data: bytes, path: str | os.PathLike) -> Path:
    """A ``+L3_HEX`` file of ``data`` from the start of L3: ``<word address> <word>`` lines
    (the L3 RAM is sparse, so words that are zero are left out)."""

    words = np.frombuffer(bytes(data) + b"\0" * (-len(data) % 4), "<u4")
    lines = [f"{i:x} {int(words[i]):08x}" for i in np.flatnonzero(words)]
    target = Path(path)
    target.write_text("\n".join(lines) + ("\n" if lines else ""))
    return target


def merged_l2_image(hex_path: str | os.PathLike, data_npz: str | os.PathLike | None,
                    out: str | os.PathLike) -> Path:
    """One ``$readmemh`` file for ``+L2_HEX`` holding the program of ``hex_path`` (a
    ``sw.build`` ``.hex``) and every ``addr_<hex>`` block (uint8) of ``data_npz``, so that a
    model loads all of L2 in its ``initial`` block instead of word by word through VPI.

    Only words that are set are written, in runs after ``@<word offset>`` lines (word offsets
    counted from the start of L2, as the RAM's ``$readmemh`` reads them). ValueError if
    anything lies outside L2 or a data block overlaps the program.
    """

    l2 = region("L2")
    base, words = read_hex(hex_path)
    if base % 4 or base < l2.base or base + 4 * len(words) > l2.end:
        raise ValueError(f"{hex_path}: image at {base:#x} ({4 * len(words)} B) is not inside L2")
    blocks = [((base - l2.base) // 4, np.asarray(words, dtype="<u4"), "program")]
    if data_npz is not None:
        with np.load(data_npz) as data:
            raw = {int(k[5:], 16): data[k].astype(np.uint8) for k in data.files}
        for address, blob in sorted(raw.items()):
            if address % 4 or address < l2.base or address + len(blob) > l2.end:
                raise ValueError(f"data block at {address:#x} ({len(blob)} B) is not inside L2")
            padded = np.zeros(-(-len(blob) // 4) * 4, dtype=np.uint8)
            padded[:len(blob)] = blob
            blocks.append(((address - l2.base) // 4, padded.view("<u4"), f"{address:#x}"))
    blocks.sort(key=lambda b: b[0])
    for (first, image, name), (nxt, _, other) in zip(blocks, blocks[1:], strict=False):
        if first + len(image) > nxt:
            raise ValueError(f"L2 image: block {other} overlaps block {name}")
    lines = [f"// {Path(hex_path).name}"
             + (f" with {Path(data_npz).name}" if data_npz is not None else "")
             + f" for $readmemh into L2 (word addresses from {l2.base:#010x})"]
    for first, image, _ in blocks:
        lines.append(f"@{first:x}")
        lines += [f"{int(w):08x}" for w in image]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


# --- running ----------------------------------------------------------------------------------


def _parse_summary(line: str) -> dict:
    report: dict[str, object] = {}
    for word in line[len(SUMMARY):].split():
        key, _, value = word.partition("=")
        try:
            report[key] = int(value, 0)
        except ValueError:
            try:
                report[key] = float(value)
            except ValueError:
                report[key] = value
    return report


def _outcome(report: dict) -> str:
    end = report.get("end")
    if end == "exit":
        return f"exit:{report['exit_code']}"
    if end == "trap":
        return f"trap:{report['trap_cause']}_at_pc_{report['trap_pc']:#010x}"
    if end == "bad_access":
        return f"core_{report['bad_core']}_accessed_unmapped_address_{report['bad_address']:#010x}"
    return f"no_end_within_{report.get('cycles')}_cycles"


def run_image(name: str, hex_path: str | os.PathLike, *, max_cycles: int = DEFAULT_MAX_CYCLES,
              stream: bool = True, profile: str | None = None, readmemh: bool = False,
              l3_hex: str | os.PathLike | None = None) -> HarnessRun:
    """Run a ``sw.build`` image (or, with ``readmemh``, a file of :func:`merged_l2_image`) on
    the C++ model built with ``profile`` (see :func:`build_harness`); ``stream`` echoes its
    output as it comes; ``l3_hex``: the L3 contents (:func:`l3_image`)."""

    handle = build_harness(profile)
    image = Path(hex_path) if readmemh else l2_image(hex_path)
    cmd = [str(handle.executable), f"+L2_HEX={image}", f"+MAX_CYCLES={max_cycles}"]
    if l3_hex is not None:
        cmd.append(f"+L3_HEX={l3_hex}")
    returncode, lines, report = run_model(cmd, stream=stream)
    output = "".join(line for line in lines if not line.startswith("cluster_main: "))
    fields: dict[str, object] = {}
    if report:
        fields["cycles"] = report["cycles"]
        fields["outcome"] = _outcome(report)
        fields["sim_cycles_per_s"] = round(report["cycles_per_s"])
        fields["cpu_cycles_per_s"] = round(report["cpu_cycles_per_s"])
        fields["sim_profile"] = handle.profile
    else:  # the model crashed or refused its arguments
        fields["outcome"] = f"harness_exit_{returncode}"
    # A program reports its own measurements as "stats: key=value ..." lines (as tb_cluster).
    for line in output.splitlines():
        if line.startswith("stats:"):
            for pair in line[len("stats:"):].split():
                key, _, number = pair.partition("=")
                if key and number.isdigit() and key not in fields:
                    fields[key] = int(number)
    ok = returncode == 0 and report.get("end") == "exit" and report.get("exit_code") == 0
    status = "PASS" if ok else "FAIL"
    result_line = format_result(name, status, **fields)
    return HarnessRun(status, fields, output, report, returncode, result_line)


def run_app(name: str, *, max_cycles: int = DEFAULT_MAX_CYCLES, stream: bool = True,
            profile: str | None = None) -> HarnessRun:
    """Build ``sw/apps/<name>`` and run it on the C++ model (see :func:`run_image`)."""

    app = build_app(name)
    return run_image(name, app.hex, max_cycles=max_cycles, stream=stream, profile=profile)


# --- command line -----------------------------------------------------------------------------


#: The compiler's words for an include that is not there: an app whose data a flow writes.
_MISSING_HEADER = re.compile(r"fatal error: '([\w.]+)' file not found")

KEYS = (cli.text_key("APP", None, expect="an app of sw/apps", required=True,
                     help="the program to run"),
        cli.int_key("MAX_CYCLES", DEFAULT_MAX_CYCLES, minimum=1, help="give up after this many"),
        cli.choice_key("SIM_PROFILE", None, toolchain.SIM_PROFILES,
                       help="how the model is built (default: $SIM_PROFILE or "
                            f"{toolchain.DEFAULT_SIM_PROFILE}; docs/bench.md)"))
USAGE = cli.usage(SYNOPSIS, KEYS)


def parse_args(argv: Sequence[str]) -> tuple[str, int, str | None]:
    """(app name, max cycles, profile) from ``KEY=VALUE`` words; UsageError on anything else."""
    options = cli.parse(argv, KEYS)
    return options["APP"], options["MAX_CYCLES"], options["SIM_PROFILE"]


def _command(argv: list[str]) -> int:

    name, max_cycles, profile = parse_args(argv)
    toolchain.sim_profile(profile)  # a bad $SIM_PROFILE: an error before any build
    app_sources(name)  # unknown app: a usage error before any build
    try:
        run = run_app(name, max_cycles=max_cycles, profile=profile)
    except BuildError as exc:
        missing = _MISSING_HEADER.search(str(exc))
        if missing is None:
            raise
        raise UsageError(f"APP={name} includes {missing[1]}, the data a run of `make sim "
                         f"TEST={name}` writes for it; run that instead") from None
    print(run.result_line, flush=True)
    return 0 if run.status == "PASS" else 1


def main(argv: Sequence[str] | None = None) -> int:

    return cli.main("run", _command, argv, usage_text=USAGE,
                    failures=(BuildError, toolchain.BuildFailed, ValueError))


if __name__ == "__main__":
    sys.exit(main())
