"""Runs an engine job under amaranth.sim with random stalls on every stream.

Small configurations only (amaranth.sim manages about a thousand cycles per second on the
full-size array); the Verilator testbench in ``verif/engine`` covers the large ones.
"""

import random

import numpy as np
from amaranth.sim import Simulator

from verif.engine.job import pack_bias, pack_int8, stream_plans, unpack_int8


def field(view, path):
    for part in path.split("."):
        view = view[int(part)] if part.isdigit() else getattr(view, part)
    return view


def run_job(dut, job, memory, *, seed=0, stall=0.0, max_cycles=200_000, clear_at=None,
            expect_error=False):
    """Drive one job; returns (cycles, outputs seen, error_code, error flag)."""
    config = dut.params
    rng = random.Random(seed)
    empty = {"input": [], "weight": [], "bias": [], "output": []}
    plans = empty if expect_error else stream_plans(job, config)
    state = {"cycles": 0, "error": None, "code": None, "outputs": 0}
    lanes_m, lanes_n = config.M, config.N

    async def bench(ctx):
        for path, value in job.config_fields().items():
            ctx.set(field(dut.config, path), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        idx = {"input": 0, "weight": 0, "bias": 0}
        out_index = 0
        cycles = 1
        while cycles < max_cycles:
            if clear_at is not None and cycles == clear_at:
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                state["cycles"] = cycles
                return
            offered = {}
            for name, port in (("input", dut.input), ("weight", dut.weight),
                               ("bias", dut.bias)):
                beats = plans[name]
                valid = False
                if idx[name] < len(beats) and rng.random() >= stall:
                    if name == "bias":
                        _, tensor, start = beats[idx[name]]
                        ctx.set(port.payload.as_value(), pack_bias(memory.read_vector(tensor, start,
                                                                           lanes_n),
                                                        config.bias_width))
                        valid = True
                    else:
                        _, tensor, row, col = beats[idx[name]]
                        if memory.ready(tensor, row, col, lanes_m):
                            ctx.set(port.payload.as_value(), pack_int8(memory.read(tensor, row, col,
                                                                        lanes_m)))
                            valid = True
                ctx.set(port.valid, valid)
                offered[name] = valid
            out_ready = rng.random() >= stall
            ctx.set(dut.output.ready, out_ready)
            for name, port in (("input", dut.input), ("weight", dut.weight),
                               ("bias", dut.bias)):
                if offered[name] and ctx.get(port.ready):
                    idx[name] += 1
            if out_ready and ctx.get(dut.output.valid):
                plan, tensor, row, col = plans["output"][out_index]
                values = unpack_int8(ctx.get(dut.output.payload.as_value()), lanes_n)
                memory.check_beat(plan, tensor, row, col, values, config, out_index)
                memory.write(tensor, row, col, values)
                out_index += 1
            if ctx.get(dut.done):
                break
            await ctx.tick()
            cycles += 1
        state.update(cycles=cycles, outputs=out_index, code=int(ctx.get(dut.error_code)),
                     error=int(ctx.get(dut.error)), leftover={k: len(plans[k]) - idx[k]
                                                              for k in idx})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return state


def expect_complete(memory, state):
    assert memory.unwritten() == {}, f"outputs never written: {memory.unwritten()}"
    assert all(v == 0 for v in state["leftover"].values()), state["leftover"]
    for name, want in memory.expected.items():
        np.testing.assert_array_equal(memory.tensors[name], want, err_msg=name)
