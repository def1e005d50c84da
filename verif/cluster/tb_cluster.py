"""cocotb testbench: one program on the whole cluster (verif/tops/cluster.py).

Options: :class:`verif.cluster.model.ClusterOptions` through :mod:`verif.channel`.

The testbench sleeps in one trigger until the top raises ``done`` (no per-cycle Python),
compares the expected L2 regions word by word and writes ``outcome.json``. With
``trace_elf`` set (``TRACE=1``) a monitor also samples the engine, the DMA, the event unit
and the cores' PCs once per cycle and writes the run's timeline (:mod:`verif.cluster.trace`);
without it the monitor is not started and costs nothing.
"""

import json

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cluster_integration.memory_map import region
from ita.cluster_config import DEFAULT
from sw.build import read_hex
from verif.channel import receive
from verif.cluster.model import ClusterOptions
from verif.cluster.trace import FILE_NAME as TRACE_FILE
from verif.cluster.trace import Recorder, Symbols, wait_name
from verif.result import format_result, record_result
from verif.uvm.watchdog import within_cycles

PERIOD_NS = 10


def _regions(path):
    """{address: uint8 array} from an npz with arrays named ``addr_<hex address>``."""
    if not path:
        return {}
    with np.load(path) as data:
        return {int(key[5:], 16): data[key].astype(np.uint8) for key in data.files}


def _words(address, blob):
    padded = np.zeros(-(-len(blob) // 4) * 4, dtype=np.uint8)
    padded[:len(blob)] = blob
    return address, padded.view("<u4")


def _reader(handle):
    """A function that reads ``handle`` (at most 32 bits) as an unsigned integer. cocotb's
    ``handle.value`` builds a LogicArray on every read; the monitor reads about 30 signals a
    cycle, so it uses the GPI handle's integer read behind it (cocotb is pinned in
    requirements.txt) and masks off the sign that read gives 32-bit values."""
    read, width = handle._handle.get_signal_val_long, len(handle)
    if width > 32:
        raise ValueError(f"{handle._path}: {width} bits, the monitor reads at most 32")
    if width < 32:
        return read
    return lambda: read() & 0xFFFFFFFF


class _Monitor:
    """Samples, once per cycle after the clock edge, what the timeline shows; hands every
    change to a :class:`Recorder`. Signals of a rare event (a waiting core's address and
    mask, a DMA transfer's registers) are read only in the cycle they matter."""

    def __init__(self, dut, recorder, cores):
        cluster = dut.cluster
        self.dut, self.recorder, self.cores = dut, recorder, cores
        ita, dma, eu = cluster.ita, cluster.dma, cluster.event_unit
        controller = ita.engine.core.controller
        self.done, self.cycle = _reader(dut.done), _reader(dut.cycle)
        self.busy, self.running, self.step = (_reader(ita.control.busy),
                                              _reader(controller.running),
                                              _reader(controller.step))
        self.accept, self.load, self.events = (_reader(dma.queue.w_en), _reader(dma.queue.r_en),
                                               _reader(dma.events))
        self.transfer = {name: _reader(getattr(dma, f"programmed_{name}"))
                         for name in ("src", "dst", "length", "rows")}
        self.transfer["core"] = _reader(dma.regs__id)
        self.pcs = [_reader(getattr(cluster, f"core{c}").core.core_i.pc_id)
                    for c in range(cores)]
        self.requests = [_reader(getattr(eu, f"core{c}__req")) for c in range(cores)]
        self.grants = [_reader(getattr(eu, f"core{c}_granted")) for c in range(cores)]
        self.addresses = [_reader(getattr(eu, f"core{c}__addr")) for c in range(cores)]
        self.masks = [_reader(getattr(eu, f"core{c}_mask")) for c in range(cores)]
        self.last = 0  # the last cycle sampled

    async def run(self):
        rec = self.recorder
        done, counter = self.done, self.cycle
        busy, running, step = self.busy, self.running, self.step
        accept, load, events, transfer = self.accept, self.load, self.events, self.transfer
        pcs, requests, grants = self.pcs, self.requests, self.grants
        cores = range(self.cores)
        last_pc = [-1] * self.cores
        waiting = [False] * self.cores
        job = False
        edge = RisingEdge(self.dut.clk)
        while True:
            await edge
            if done():  # the run ended in the cycle before
                return
            cycle = self.last = counter()
            if busy():
                if not job:
                    rec.job_at(cycle, True)
                    job = True
                rec.step_at(cycle, step() if running() else None)
            elif job:
                rec.job_at(cycle, False)
                job = False
            if events():
                rec.dma_complete_at(cycle)
            if accept():
                rec.dma_accept_at(cycle, **{k: read() for k, read in transfer.items()})
            if load():
                rec.dma_load_at(cycle)
            for c in cores:
                pc = pcs[c]()
                if pc != last_pc[c]:
                    last_pc[c] = pc
                    rec.pc_at(cycle, c, pc)
                held = requests[c]() and not grants[c]()
                if held != waiting[c]:
                    waiting[c] = held
                    rec.wait_at(cycle, c, wait_name(self.addresses[c](), self.masks[c]())
                                if held else None)


@cocotb.test()
async def run_program(dut):
    options = receive(ClusterOptions)
    name, max_cycles, ideal = options.test_name, options.max_cycles, options.ideal or 0
    kind, _, value = options.expect.partition(":")
    value = int(value, 0)
    l2 = region("L2")
    mem = dut.cluster.l2.ram.mem

    base, words = read_hex(options.app_hex)
    images = [(base, np.asarray(words, dtype=np.uint32))]
    images += [_words(a, b) for a, b in _regions(options.data).items()]
    for address, image in images:
        if address % 4 or address < l2.base or address + 4 * len(image) > l2.end:
            raise ValueError(f"image at {address:#x} ({4 * len(image)} B) is not inside L2")
        first = (address - l2.base) // 4
        if options.l2_loaded:  # the RAM read the same words from +L2_HEX at time 0
            continue
        for i, word in enumerate(image.tolist()):
            if word:
                mem[first + i].value = word

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.fetch_enable.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    dut.fetch_enable.value = 1
    monitor = None
    if options.trace_elf:
        monitor = _Monitor(dut, Recorder(Symbols.from_elf(options.trace_elf)), DEFAULT.cores)
        task = cocotb.start_soon(monitor.run())
    await within_cycles(RisingEdge(dut.done), max_cycles, PERIOD_NS)
    await ReadOnly()

    timed_out = dut.done.value != 1
    count = int(dut.stdout_count.value)
    text = bytes(int(dut.stdout.mem[i].value) & 0xFF
                 for i in range(min(count, len(dut.stdout.mem))))
    outcome = {
        "output": text.decode("utf-8", errors="replace"),
        "timed_out": timed_out,
        "exit_code": dut.exit_code.value.to_signed() if dut.exit_valid.value == 1 else None,
        "trap_cause": int(dut.trap_cause.value) if dut.trap_valid.value == 1 else None,
        "trap_pc": int(dut.trap_pc.value) if dut.trap_valid.value == 1 else None,
        "bad_access": (int(dut.bad_core.value), int(dut.bad_address.value))
        if dut.bad_access.value == 1 else None,
        "cycles": int(dut.done_cycles.value) if not timed_out else max_cycles,
        "mismatches": [],
    }
    for line in outcome["output"].splitlines():
        dut._log.info("program: %s", line)
    if timed_out:  # say where every core is stuck
        outcome["pcs"] = []
        for index in range(64):
            core = getattr(dut.cluster, f"core{index}", None)
            if core is None:
                break
            pc = int(core.core.core_i.pc_id.value)
            outcome["pcs"].append(pc)
            dut._log.error("timeout: core %d at pc %#010x", index, pc)

    for address, want in _regions(options.check).items():
        first = (address - l2.base) // 4
        _, want_words = _words(address, want)
        got = np.array([int(mem[first + i].value) for i in range(len(want_words))],
                       dtype=np.uint32)
        bad = np.flatnonzero(got != want_words)
        if bad.size:
            got_bytes, want_bytes = got.view(np.uint8), want_words.view(np.uint8)
            byte = int(np.flatnonzero(got_bytes != want_bytes)[0])
            outcome["mismatches"].append(
                f"L2 {address + byte:#010x} (region {address:#x} + {byte}): expected "
                f"{int(want_bytes[byte])}, got {int(got_bytes[byte])}; "
                f"{int((got_bytes != want_bytes).sum())} bytes differ")

    if timed_out:
        pcs = " ".join(f"{pc:#x}" for pc in outcome.get("pcs", []))
        got = f"no end within {max_cycles} cycles; core pcs {pcs}"
    elif outcome["bad_access"] is not None:
        core, address = outcome["bad_access"]
        got = f"core {core} accessed unmapped address {address:#010x}"
    elif outcome["trap_cause"] is not None:
        got = f"trap:{outcome['trap_cause']} at pc {outcome['trap_pc']:#010x}"
    else:
        got = f"exit:{outcome['exit_code']}"
    observed = outcome["exit_code"] if kind == "exit" else outcome["trap_cause"]
    ok = (not timed_out and outcome["bad_access"] is None and observed == value
          and not outcome["mismatches"])
    with open("outcome.json", "w") as fh:
        json.dump(outcome, fh, indent=1)
    if monitor is not None:
        if task.done():
            task.result()  # the monitor's own failure, if any, fails the run
        else:  # a time-out: the run did not end
            task.cancel()
        end = outcome["cycles"] if not timed_out else monitor.last + 1
        monitor.recorder.finish(end, TRACE_FILE, {"test": name, "timed_out": timed_out,
                                                  "clock_period_ns": PERIOD_NS})
    for mismatch in outcome["mismatches"]:
        dut._log.error(mismatch)
    fields = {"cycles": outcome["cycles"], "outcome": got.replace(" ", "_")}
    if ideal:
        fields["ideal_cycles"] = round(ideal)
    # A program reports its own measurements as "stats: key=value ..." lines.
    for line in outcome["output"].splitlines():
        if line.startswith("stats:"):
            for pair in line[len("stats:"):].split():
                key, _, number = pair.partition("=")
                if key and number.isdigit():
                    fields[key] = int(number)
    if ideal and fields.get("ita_cycles"):
        fields["ita_utilization"] = f"{100 * ideal / fields['ita_cycles']:.1f}"
    record_result(format_result(name, "PASS" if ok else "FAIL", **fields))
    assert ok, f"expected {kind}:{value}, got {got}; mismatches: {outcome['mismatches'][:3]}"
