"""Runs jobs on the ITA HWPE under amaranth.sim: a core programs registers, a TCDM memory
model with random grant stalls serves the wide port."""

import random

import numpy as np
from amaranth.sim import Simulator

from cluster_integration.hwpe import regmap
from verif.hwpe.program import job_register_writes, layout_tensors, memory_image, read_tensor

ACQUIRE = regmap.register("ACQUIRE").offset
TRIGGER = regmap.register("TRIGGER").offset
ERROR = regmap.register("ERROR").offset
FINISHED = regmap.register("FINISHED").offset
SOFT_CLEAR = regmap.register("SOFT_CLEAR").offset


class Bus:
    """Register accesses through the peripheral port (grant, then response a cycle later)."""

    def __init__(self, ctx, port, core=0):
        self.ctx, self.port, self.core = ctx, port, core

    async def access(self, offset, value=0, write=False):
        ctx, port = self.ctx, self.port
        ctx.set(port.req, 1)
        ctx.set(port.addr, offset)
        ctx.set(port.we, int(write))
        ctx.set(port.be, 0xF)
        ctx.set(port.wdata, value & 0xFFFF_FFFF)
        ctx.set(port.id, self.core)
        while not ctx.get(port.gnt):
            await ctx.tick()
        await ctx.tick()
        ctx.set(port.req, 0)
        while not ctx.get(port.r_valid):
            await ctx.tick()
        data = ctx.get(port.r_data)
        return data - (1 << 32) if data >> 31 else data

    async def read(self, offset):
        return await self.access(offset)

    async def write(self, offset, value):
        await self.access(offset, value, write=True)


def run_hwpe(dut, jobs, *, seed=0, stall=0.0, memory_size=1 << 18, max_cycles=400_000,
             clear_during=None):
    """Run ``jobs`` ([(EngineJob, TensorMemory)]) one after another; return per-job results.

    Each job's tensors get their own region of one memory. With ``clear_during=(index,
    cycles)`` job ``index`` is aborted by SOFT_CLEAR after that many cycles.
    """
    rng = random.Random(seed)
    width = len(dut.tcdm.wdata)
    layouts, base = [], 0
    for _job, memory in jobs:
        layouts.append(layout_tensors(memory, base=base))
        base = max([base] + [p.address + p.size for p in layouts[-1].values()])
        base = -(-base // 4096) * 4096
    image = np.zeros(memory_size, dtype=np.uint8)
    for (_job, memory), places in zip(jobs, layouts, strict=True):
        part = memory_image(memory, places, memory_size)
        for place in places.values():
            image[place.address:place.address + place.size] = \
                part[place.address:place.address + place.size]
    results = []
    state = {"done": False, "cycles": 0}

    async def serve_memory(ctx):
        port = dut.tcdm
        pending = None
        while not state["done"]:
            ctx.set(port.r_valid, pending is not None)
            ctx.set(port.r_data, pending or 0)
            granted = rng.random() >= stall
            ctx.set(port.gnt, granted)
            pending = None
            if granted and ctx.get(port.req):
                address = ctx.get(port.addr)
                if ctx.get(port.we):
                    data = ctx.get(port.wdata).to_bytes(width // 8, "little")
                    enables = ctx.get(port.be)
                    for lane in range(width // 8):
                        if enables >> lane & 1:
                            image[address + lane] = data[lane]
                else:
                    pending = int.from_bytes(image[address:address + width // 8].tobytes(),
                                             "little")
            await ctx.tick()
            state["cycles"] += 1
            if state["cycles"] > max_cycles:
                raise AssertionError(f"watchdog: {max_cycles} cycles without the end of the jobs")

    async def core(ctx):
        bus = Bus(ctx, dut.periph)
        for index, ((job, _memory), places) in enumerate(zip(jobs, layouts, strict=True)):
            job_id = -1
            while job_id < 0:
                job_id = await bus.read(ACQUIRE)
            for offset, value in job_register_writes(job, places):
                await bus.write(offset, value)
            start = state["cycles"]
            await bus.write(TRIGGER, 0)
            if clear_during and clear_during[0] == index:
                for _ in range(clear_during[1]):
                    await ctx.tick()
                await bus.write(SOFT_CLEAR, 1)
                results.append({"aborted": True})
                continue
            while not (ctx.get(dut.events) & 1):
                await ctx.tick()
            cycles = state["cycles"] - start
            error = await bus.read(ERROR)
            results.append({"job_id": job_id, "cycles": cycles, "error": error & 0xF,
                            "error_job": (error >> 8) & 0xFF, "places": places})
        state["done"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(serve_memory, background=True)
    sim.add_testbench(core)
    sim.run()
    for result in results:
        result["image"] = image
    return results


def check_outputs(memory, result):
    """Compare every output tensor in the memory image with the golden model."""
    for name, want in memory.expected.items():
        got = read_tensor(result["image"], result["places"][name])
        bad = np.argwhere(got != want)
        if bad.size:
            r, c = map(int, bad[0])
            raise AssertionError(f"tensor {name} row {r} column {c}: expected {want[r, c]}, "
                                 f"got {got[r, c]} ({len(bad)} elements differ)")
