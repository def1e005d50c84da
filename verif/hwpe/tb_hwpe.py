"""cocotb testbench: the ITA HWPE programmed through its registers, on Verilator.

A core model programs one job per head through the peripheral port, queueing the next job
in a second context while one runs; a TCDM memory model serves the wide port (with random
grant stalls when ``HWPE_STALLS=1``). After the last completion event every output tensor
is compared in memory with the golden model; the RESULT line counts cycles from the first
TRIGGER write to the last completion event.
"""

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cluster_integration.hwpe import regmap
from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from verif.engine.job import job_from_vectors
from verif.hwpe.program import job_register_writes, layout_tensors, memory_image, read_tensor
from verif.result import format_result, record_result

STALL_PROBABILITY = 0.2
OFFSET = {name: regmap.register(name).offset for name in
          ("ACQUIRE", "TRIGGER", "ERROR", "FINISHED", "STATUS")}


def _env(name, default=None, cast=int):
    value = os.environ.get(f"HWPE_{name}")
    return default if value in (None, "") else cast(value)


class Memory:
    """Byte-addressed TCDM slave: grant (randomly withheld), response one cycle later."""

    def __init__(self, dut, size, rng, stalls):
        self.dut, self.rng, self.stalls = dut, rng, stalls
        self.image = np.zeros(size, dtype=np.uint8)
        self.width = len(dut.tcdm__wdata.value) // 8
        self.accesses = 0

    async def serve(self):
        dut, pending = self.dut, None
        while True:
            await RisingEdge(dut.clk)
            dut.tcdm__r_valid.value = int(pending is not None)
            dut.tcdm__r_data.value = pending or 0
            dut.tcdm__gnt.value = int(not (self.stalls and self.rng.random() < STALL_PROBABILITY))
            await ReadOnly()
            pending = None
            if dut.tcdm__req.value and dut.tcdm__gnt.value:
                self.accesses += 1
                address = int(dut.tcdm__addr.value)
                if address + self.width > len(self.image):
                    raise AssertionError(f"TCDM access at {address:#x} outside the memory")
                if dut.tcdm__we.value:
                    data = int(dut.tcdm__wdata.value).to_bytes(self.width, "little")
                    enables = int(dut.tcdm__be.value)
                    lanes = [lane for lane in range(self.width) if enables >> lane & 1]
                    self.image[address + np.array(lanes)] = np.frombuffer(data, np.uint8)[lanes]
                else:
                    window = self.image[address:address + self.width]
                    pending = int.from_bytes(window.tobytes(), "little")


class Core:
    """Register accesses as one core: request, grant, response in the next cycle."""

    def __init__(self, dut, core_id=0):
        self.dut, self.core_id = dut, core_id

    async def access(self, offset, value=0, write=False):
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.periph__req.value = 1
        dut.periph__addr.value = offset
        dut.periph__we.value = int(write)
        dut.periph__be.value = 0xF
        dut.periph__wdata.value = value & 0xFFFF_FFFF
        dut.periph__id.value = self.core_id
        while True:
            await ReadOnly()
            if dut.periph__gnt.value:
                break
            await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.periph__req.value = 0
        await ReadOnly()
        if not dut.periph__r_valid.value:
            raise AssertionError(f"no response one cycle after the grant of {offset:#x}")
        data = int(dut.periph__r_data.value)
        return data - (1 << 32) if data >> 31 else data

    async def program(self, job, places):
        """Acquire a context (retrying while all are busy), write the job, trigger it."""
        job_id = -1
        while job_id < 0:
            job_id = await self.access(OFFSET["ACQUIRE"])
        for offset, value in job_register_writes(job, places):
            await self.access(offset, value, write=True)
        await self.access(OFFSET["TRIGGER"], 0, write=True)
        return job_id


@cocotb.test()
async def hwpe_jobs(dut):
    config = ITAConfig(N=_env("N", 16), M=_env("M", 64))
    seed = _env("SEED", 1)
    mode = _env("MODE", "attention", str)
    shape = LayerShape(S=_env("S", 64), E=_env("E", 64), P=_env("P", 64), F=_env("F", 64),
                       H=_env("H", 1), activation=_env("ACT", "gelu", str),
                       bias=bool(_env("BIAS", 1)), causal=bool(_env("CAUSAL", 0)),
                       valid_keys=_env("VALID_KEYS", 0) or None)
    stalls = bool(_env("STALLS", 1))
    rng = random.Random(seed)
    vectors = generate(shape, seed, config)
    heads = shape.H if mode in ("attention", "qkav") else 1
    jobs = [job_from_vectors(mode, vectors, head=h, config=config) for h in range(heads)]

    layouts, base = [], 0x1000
    for _job, memory in jobs:
        layouts.append(layout_tensors(memory, base=base))
        base = -(-max(p.address + p.size for p in layouts[-1].values()) // 4096) * 4096
    mem = Memory(dut, base + 4096, rng, stalls)
    for (_job, memory), places in zip(jobs, layouts, strict=True):
        image = memory_image(memory, places, len(mem.image))
        for p in places.values():
            mem.image[p.address:p.address + p.size] = image[p.address:p.address + p.size]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in ("periph__req", "tcdm__gnt", "tcdm__r_valid"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    cocotb.start_soon(mem.serve())

    core = Core(dut)
    ideal = sum(job.ideal_cycles(config) for job, _ in jobs)
    budget = int(20 * ideal) + 50_000
    status, detail, cycles = "FAIL", "", 0
    try:
        finished, start_cycle, cycle = 0, None, 0

        async def count_events():
            nonlocal finished, cycle
            while True:
                await RisingEdge(dut.clk)
                cycle += 1
                await ReadOnly()
                finished += int(dut.events.value) & 1

        cocotb.start_soon(count_events())
        queued = 0
        for job, places in zip((j for j, _ in jobs), layouts, strict=True):
            await core.program(job, places)
            if start_cycle is None:
                start_cycle = cycle
            queued += 1
            while queued - finished >= config.contexts:  # both contexts hold jobs
                await RisingEdge(dut.clk)
        while finished < len(jobs):
            await RisingEdge(dut.clk)
            if cycle - start_cycle > budget:
                raise AssertionError(f"watchdog: {finished}/{len(jobs)} jobs finished after "
                                     f"{budget} cycles")
        cycles = cycle - start_cycle
        error = await core.access(OFFSET["ERROR"])
        if error & 0xF:
            raise AssertionError(f"the HWPE reported error code {error & 0xF}")
        for index, ((_job, memory), places) in enumerate(zip(jobs, layouts, strict=True)):
            for name, want in memory.expected.items():
                got = read_tensor(mem.image, places[name])
                bad = np.argwhere(got != want)
                if bad.size:
                    r, c = map(int, bad[0])
                    raise AssertionError(
                        f"job {index} tensor {name} tile ({r // config.M}, {c // config.M}) row "
                        f"{r} column {c}: expected {want[r, c]}, got {got[r, c]} "
                        f"({len(bad)} elements differ)")
        status = "PASS"
    except AssertionError as failure:
        detail = str(failure)
        dut._log.error(detail)
        raise
    finally:
        record_result(format_result(
            _env("TEST_NAME", "ita_hwpe", str), status, cycles=cycles,
            ideal_cycles=round(ideal), seed=seed, mode=mode, S=shape.S, E=shape.E, P=shape.P,
            F=shape.F, H=shape.H, stalls=int(stalls), N=config.N, M=config.M,
            tcdm_accesses=mem.accesses))
