"""DMA and L1-arbitration figures of ``make bench`` that need no cluster build (amaranth.sim).

``copy``: the DMA of a given beat width alone, its memories granting every request (what an
L2 -> L1 copy sees when nothing else is on the ports: the DMA has its own L2 port and L1
banks serve it at once when no core or HWPE asks for them). Cycles from the START grant to
the completion event, hence bytes per cycle, for a 1-D copy of BYTES or ROWS rows of BYTES.

``arbitration``: the default cluster's L1 with the HWPE's wide port requesting every cycle
(the engine's streamers back to back, the worst case), the DMA streaming beats and every
core issuing a load or store with probability ACTIVITY per cycle at random banks. The wide
port's grants give the job's slowdown against the same port alone; the longest refusal of
every port is reported beside its bound. ``CASE=before`` is the arbitration the cluster had
(one-word DMA port, cores and DMA winning 3 of 4 conflicts), ``CASE=after`` the cluster
configuration's.

    python -m bench.dma_rate MODE=copy WIDTH=128 BYTES=65536 ROWS=1
    python -m bench.dma_rate MODE=arbitration CASE=after CYCLES=2000 ACTIVITY=0.3

Each prints one RESULT line (``verif/result.py``).
"""

from __future__ import annotations

import random
import sys

from amaranth.sim import Simulator

from cluster_integration import memory_map
from cluster_integration.dma import Dma
from cluster_integration.l1 import L1Memory
from ita import cli
from ita.cluster_config import DEFAULT
from verif.result import format_result

__all__ = ["copy_cycles", "arbitration", "main"]

_REGISTERS = {r.name: r for r in memory_map.DMA}
#: The arbitration the cluster had before the wide DMA: (window, HWPE priority, DMA width).
BEFORE = ((3, 4), False, 32)


def copy_cycles(*, width, length, rows=1, src_stride=None, dst_stride=None,
                cluster=DEFAULT):
    """Cycles from the START grant to the event of one L2 -> L1 copy of ``rows`` rows of
    ``length`` bytes (strides default to dense rows)."""
    l1, l2 = cluster.region("L1"), cluster.region("L2")
    dut = Dma(l1_region=l1, l2_region=l2, window=cluster.region("DMA").size, width=width,
              queue_depth=cluster.dma_queue_depth, cores=cluster.cores)
    program = {"SRC": l2.base, "DST": l1.base, "LENGTH": length, "ROWS": rows,
               "SRC_STRIDE": length if src_stride is None else src_stride,
               "DST_STRIDE": length if dst_stride is None else dst_stride}
    outcome = {}

    async def bench(ctx):
        for port in (dut.l1, dut.l2):
            ctx.set(port.gnt, 1)
        regs = dut.regs
        for name in (*program, "START"):
            ctx.set(regs.req, 1)
            ctx.set(regs.we, 1)
            ctx.set(regs.be, 0xF)
            ctx.set(regs.addr, _REGISTERS[name].offset)
            ctx.set(regs.wdata, program.get(name, 1))
            await ctx.tick()
        ctx.set(regs.req, 0)
        cycles = 0
        while not ctx.get(dut.events).bit_length():
            await ctx.tick()
            cycles += 1
        outcome["cycles"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outcome["cycles"]


def _l1_for(case, cluster=DEFAULT):
    window, priority, dma_width = BEFORE if case == "before" else (
        cluster.l1_starvation_window, cluster.l1_hwpe_priority, cluster.dma_width)
    dut = L1Memory(narrow_ports=cluster.cores, banks=cluster.l1_banks, size=cluster.l1_size,
                   wide_width=cluster.hwpe_width, base=cluster.l1_base, dma_width=dma_width,
                   starvation_window=window)
    return dut, priority


def arbitration(*, case="after", cycles=2000, activity=0.3, seed=1, cluster=DEFAULT):
    """{"wide_grants", "dma_grants", "core_grants", "dma_beat_bytes", "max_refusals": {...},
    "bounds": {...}}
    of ``cycles`` cycles of contended traffic (see the module docstring)."""
    dut, priority = _l1_for(case, cluster)
    rng = random.Random(seed)
    base, words = dut.base, dut.size // 4
    lanes = dut.dma_words
    stats = {"wide_grants": 0, "dma_grants": 0, "core_grants": 0}
    longest = {"wide": 0, "dma": 0, "core": 0}

    async def bench(ctx):
        ctx.set(dut.hwpe_priority, priority)
        wide, dma = dut.wide, dut.dma
        cores = [dut.narrow(i) for i in range(dut.narrow_ports)]
        wide_address, dma_word = 0, words // 2
        pending = [None] * len(cores)
        waited = {"wide": 0, "dma": 0, **{i: 0 for i in range(len(cores))}}
        ctx.set(wide.req, 1)
        ctx.set(wide.be, (1 << len(wide.be)) - 1)
        ctx.set(dma.req, 1)
        ctx.set(dma.we, 1)
        ctx.set(dma.be, (1 << len(dma.be)) - 1)
        for _ in range(cycles):
            ctx.set(wide.addr, base + 4 * (wide_address % words))
            ctx.set(dma.addr, base + 4 * (dma_word % words))
            for i, port in enumerate(cores):
                if pending[i] is None and rng.random() < activity:
                    pending[i] = (rng.randrange(words), rng.getrandbits(1))
                ctx.set(port.req, pending[i] is not None)
                if pending[i] is not None:
                    ctx.set(port.addr, base + 4 * pending[i][0])
                    ctx.set(port.we, pending[i][1])
                    ctx.set(port.be, 0xF)
            if ctx.get(wide.gnt):
                stats["wide_grants"] += 1
                wide_address += dut.wide_words
                waited["wide"] = 0
            else:
                waited["wide"] += 1
            if ctx.get(dma.gnt):
                stats["dma_grants"] += 1
                dma_word += lanes
                waited["dma"] = 0
            else:
                waited["dma"] += 1
            for i, port in enumerate(cores):
                if pending[i] is None:
                    continue
                if ctx.get(port.gnt):
                    stats["core_grants"] += 1
                    pending[i], waited[i] = None, 0
                else:
                    waited[i] += 1
                    longest["core"] = max(longest["core"], waited[i])
            longest["wide"] = max(longest["wide"], waited["wide"])
            longest["dma"] = max(longest["dma"], waited["dma"])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    wide_bound, dma_bound, core_bound = dut.refusal_bounds(bool(priority))
    return {**stats, "dma_beat_bytes": 4 * lanes, "max_refusals": longest,
            "bounds": {"wide": wide_bound, "dma": dma_bound, "core": core_bound}}


def _fraction(name, default, help):
    """A number in [0, 1] (a core's chance per cycle to issue an access)."""

    def parse(text):
        value = float(text)
        if not 0 <= value <= 1:
            raise ValueError(text)
        return value

    return cli.Key(name, default, parse, "a number from 0 to 1", help)


KEYS = (cli.choice_key("MODE", None, ("copy", "arbitration"), required=True,
                       help="copy: the DMA alone; arbitration: the L1 under load"),
        cli.int_key("WIDTH", DEFAULT.dma_width, minimum=32, help="copy: DMA beat width, bits"),
        cli.int_key("BYTES", 64 * 1024, minimum=4, help="copy: bytes per row"),
        cli.int_key("ROWS", 1, minimum=1, help="copy: rows (2-D when above 1)"),
        cli.choice_key("CASE", "after", ("before", "after"),
                       help="arbitration: the earlier L1 arbitration or the configuration's"),
        cli.int_key("CYCLES", 2000, minimum=1, help="arbitration: cycles simulated"),
        _fraction("ACTIVITY", 0.3, "arbitration: a core's chance per cycle to access L1"),
        cli.SEED)
USAGE = cli.usage("python -m bench.dma_rate MODE=copy|arbitration [KEY=VALUE ...]", KEYS)


def main(argv=None):
    return cli.main("dma_rate", _command, argv, usage_text=USAGE)


def _command(words):
    options = cli.parse(words, KEYS)
    if options["MODE"] == "copy":
        width, length, rows = options["WIDTH"], options["BYTES"], options["ROWS"]
        if length % 4:
            raise cli.UsageError(f"BYTES={length}: the DMA moves whole words and refuses "
                                 f"any other length")
        cycles = copy_cycles(width=width, length=length, rows=rows)
        moved = length * rows
        print(format_result(f"dma_copy_w{width}", "PASS", cycles=cycles,
                            ideal_cycles=-(-moved * 8 // width), width=width,
                            bytes=moved, rows=rows,
                            bytes_per_cycle=f"{moved / cycles:.2f}"))
        return 0
    case, cycles, activity = options["CASE"], options["CYCLES"], options["ACTIVITY"]
    figures = arbitration(case=case, cycles=cycles, activity=activity,
                          seed=options["SEED"])
    slowdown = cycles / max(figures["wide_grants"], 1) - 1
    within = all(figures["max_refusals"][k] <= figures["bounds"][k] for k in figures["bounds"])
    print(format_result(
        f"l1_arbitration_{case}", "PASS" if within else "FAIL", cycles=cycles,
        ideal_cycles=figures["wide_grants"], seed=options["SEED"],
        activity=activity, wide_slowdown_pct=f"{100 * slowdown:.1f}",
        dma_bytes_per_cycle=f"{figures['dma_grants'] * figures['dma_beat_bytes'] / cycles:.2f}",
        core_grants=figures["core_grants"],
        **{f"max_refusals_{k}": v for k, v in figures["max_refusals"].items()},
        **{f"bound_{k}": v for k, v in figures["bounds"].items()}))
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
