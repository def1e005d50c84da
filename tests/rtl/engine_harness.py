"""Runs engine jobs under amaranth.sim with random stalls on every stream.

Small configurations only (amaranth.sim manages about a thousand cycles per second on the
full-size array); the Verilator testbench in ``verif/engine`` covers the large ones.
"""

import random
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ita.rtl.job import pack_bias, pack_int8, stream_plans, unpack_int8

SOURCES = ("input", "weight", "bias")


def field(view, path):
    for part in path.split("."):
        view = view[int(part)] if part.isdigit() else getattr(view, part)
    return view


@dataclass
class Run:
    """One job in a sequence: ``clear_at`` aborts it after that many cycles."""

    job: object
    memory: object
    clear_at: int | None = None
    expect_error: bool = False
    cycles: int = 0
    outputs: int = 0
    error: int | None = None
    code: int | None = None
    leftover: dict | None = None


def run_jobs(dut, runs, *, seed=0, stall=0.0, max_cycles=200_000):
    """Drive ``runs`` back to back in one simulation (the next ``start`` is raised in the
    cycle after ``done``)."""
    config = dut.params
    rng = random.Random(seed)

    async def one(ctx, run):
        plans = ({k: [] for k in (*SOURCES, "output")} if run.expect_error
                 else stream_plans(run.job, config))
        for path, value in run.job.config_fields().items():
            ctx.set(field(dut.config, path), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        index = dict.fromkeys(SOURCES, 0)
        offered = dict.fromkeys(SOURCES, False)
        out_index, cycles = 0, 1
        while cycles < max_cycles:
            if run.clear_at is not None and cycles == run.clear_at:
                ctx.set(dut.clear, 1)
                for name in SOURCES:
                    ctx.set(getattr(dut, name).valid, 0)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                run.cycles = cycles
                return
            for name in SOURCES:
                port = getattr(dut, name)
                if not offered[name] and index[name] < len(plans[name]) \
                        and rng.random() >= stall:
                    word = _payload(name, plans[name][index[name]], run.memory, config)
                    if word is not None:
                        ctx.set(port.payload.as_value(), word)
                        offered[name] = True
                ctx.set(port.valid, offered[name])
            out_ready = rng.random() >= stall
            ctx.set(dut.output.ready, out_ready)
            for name in SOURCES:
                if offered[name] and ctx.get(getattr(dut, name).ready):
                    index[name] += 1
                    offered[name] = False
            if out_ready and ctx.get(dut.output.valid):
                plan, tensor, row, col = plans["output"][out_index]
                values = unpack_int8(ctx.get(dut.output.payload.as_value()), config.N)
                run.memory.check_beat(plan, tensor, row, col, values, config, out_index)
                run.memory.write(tensor, row, col, values)
                out_index += 1
            if ctx.get(dut.done):
                break
            await ctx.tick()
            cycles += 1
        for name in SOURCES:
            ctx.set(getattr(dut, name).valid, 0)
        run.cycles, run.outputs = cycles, out_index
        run.code, run.error = int(ctx.get(dut.error_code)), int(ctx.get(dut.error))
        run.leftover = {k: len(plans[k]) - index[k] for k in SOURCES}
        await ctx.tick()

    async def bench(ctx):
        for run in runs:
            await one(ctx, run)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return runs


def _payload(name, beat, memory, config):
    if name == "bias":
        _, tensor, start = beat
        return pack_bias(memory.read_vector(tensor, start, config.N), config.bias_width)
    _, tensor, row, col = beat
    if not memory.ready(tensor, row, col, config.M):
        return None
    return pack_int8(memory.read(tensor, row, col, config.M))


def run_job(dut, job, memory, **kwargs):
    """One job alone; returns its :class:`Run`."""
    run_kwargs = {k: kwargs.pop(k) for k in ("clear_at", "expect_error") if k in kwargs}
    return run_jobs(dut, [Run(job, memory, **run_kwargs)], **kwargs)[0]


def expect_complete(memory, run):
    assert run.error == 0, f"engine error code {run.code}"
    assert memory.unwritten() == {}, f"outputs never written: {memory.unwritten()}"
    assert all(v == 0 for v in run.leftover.values()), run.leftover
    for name, want in memory.expected.items():
        np.testing.assert_array_equal(memory.tensors[name], want, err_msg=name)
