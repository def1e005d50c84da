"""cocotb testbench: one or more engine jobs against the golden model on Verilator.

Its options (:class:`verif.engine.EngineOptions`) come through :mod:`verif.channel`, the seed
through cocotb. The testbench draws a vector set with the golden model, runs one job per head
back to back, feeds the three operand streams from a memory model (with random idle cycles
when ``stalls`` is set, and never before the engine has written the data a beat needs),
applies random back-pressure to the output, checks every output beat as it leaves the engine
and prints the RESULT line.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ita.config import ITAConfig
from ita.rtl.job import (
    OutputMismatch,
    pack_bias,
    pack_fields,
    pack_int8,
    stream_plans,
    unpack_int8,
)
from ita.rtl.layouts import ErrorCode, Step, engine_config_layout
from verif.channel import receive, run_seed
from verif.engine import EngineOptions
from verif.result import format_result, record_result
from verif.uvm.stall import NoStall, PerCycleStall
from verif.uvm.watchdog import job_budget

STALL_PROBABILITY = 0.25
MAX_REPORTED = 10


class EngineBench:
    """Clock, reset and the per-cycle stream loop for one engine instance; ``stalls`` is the
    stall profile every stream asks in turn (they share its generator)."""

    def __init__(self, dut, config, stalls):
        self.dut, self.config, self.stalls = dut, config, stalls
        self.layout = engine_config_layout(config)
        self.mismatches = []
        self.dropped = False

    async def reset(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        for name in ("start", "clear", "input__valid", "weight__valid", "bias__valid",
                     "output__ready", "config"):
            getattr(dut, name).value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    def _stall(self):
        return self.stalls.stall()

    async def run_job(self, job, memory, *, drop_beat=None, max_cycles):
        """Start one job and serve its streams until ``done``; returns its cycle count."""
        dut, cfg = self.dut, self.config
        plans = stream_plans(job, cfg)
        dut.config.value = pack_fields(self.layout, job.config_fields())
        dut.start.value = 1
        sources = {"input": [dut.input__valid, dut.input__payload, dut.input__ready],
                   "weight": [dut.weight__valid, dut.weight__payload, dut.weight__ready],
                   "bias": [dut.bias__valid, dut.bias__payload, dut.bias__ready]}
        index = dict.fromkeys(sources, 0)
        offered = dict.fromkeys(sources, False)
        accepted = dict.fromkeys(sources, False)
        out_index, out_value, cycles, done = 0, None, 0, False
        while True:
            await RisingEdge(dut.clk)
            dut.start.value = 0
            for name in sources:
                if accepted[name]:
                    index[name] += 1
                    offered[name] = False
            if out_value is not None:
                self._retire(plans, memory, out_index, out_value, drop_beat)
                out_index += 1
            if done:
                break
            cycles += 1
            if cycles > max_cycles:
                step = Step(int(dut.step.value))
                raise AssertionError(
                    f"watchdog: no end of job after {max_cycles} cycles (step {step.name}, "
                    f"beats taken: input {index['input']}/{len(plans['input'])}, weight "
                    f"{index['weight']}/{len(plans['weight'])}, bias {index['bias']}/"
                    f"{len(plans['bias'])}, output {out_index}/{len(plans['output'])})")
            for name, (valid, payload, _ready) in sources.items():
                if not offered[name] and index[name] < len(plans[name]) and not self._stall():
                    word = self._payload(name, plans[name][index[name]], memory)
                    if word is not None:
                        payload.value = word
                        offered[name] = True
                valid.value = int(offered[name])
            dut.output__ready.value = int(not self._stall())
            await ReadOnly()
            for name, (_valid, _payload, ready) in sources.items():
                accepted[name] = offered[name] and bool(ready.value)
            out_value = None
            if dut.output__valid.value and dut.output__ready.value:
                out_value = int(dut.output__payload.value)
            done = bool(dut.done.value)
        if int(dut.error.value):
            raise AssertionError(f"engine reported error {ErrorCode(int(dut.error_code.value))}")
        left = {k: len(plans[k]) - index[k] for k in sources if index[k] != len(plans[k])}
        if left or out_index != len(plans["output"]):
            raise AssertionError(f"job ended with beats left over: {left}, outputs "
                                 f"{out_index}/{len(plans['output'])}")
        return cycles

    def _payload(self, name, beat, memory):
        m, n = self.config.M, self.config.N
        if name == "bias":
            _plan, tensor, start = beat
            return pack_bias(memory.read_vector(tensor, start, n), self.config.bias_width)
        _plan, tensor, row, col = beat
        if not memory.ready(tensor, row, col, m):
            return None  # the engine has not written this data yet
        return pack_int8(memory.read(tensor, row, col, m))

    def _retire(self, plans, memory, out_index, word, drop_beat):
        if drop_beat is not None and out_index == drop_beat and not self.dropped:
            self.dropped = True  # negative test: lose this beat, the scoreboard must notice
            return
        plan, tensor, row, col = plans["output"][out_index]
        values = unpack_int8(word, self.config.N)
        try:
            memory.check_beat(plan, tensor, row, col, values, self.config, out_index)
        except OutputMismatch as mismatch:
            if len(self.mismatches) < MAX_REPORTED:
                self.dut._log.error(str(mismatch))
            self.mismatches.append(str(mismatch))
        memory.write(tensor, row, col, values)


@cocotb.test()
async def engine_job(dut):
    options = receive(EngineOptions)
    config = ITAConfig(N=options.N, M=options.M)
    seed = run_seed()
    test_name, mode, stalls, inject = (options.test_name, options.mode, options.stalls,
                                       options.inject)
    shape = options.shape()
    rng = random.Random(seed)

    jobs = options.jobs(seed, config)
    if inject == "lsb":
        memory = jobs[0][1]
        name = sorted(memory.expected)[0]
        memory.expected[name][0, 0] += 1
    bench = EngineBench(dut, config,
                        PerCycleStall(rng, p=STALL_PROBABILITY) if stalls else NoStall())
    await bench.reset()

    cycles, ideal = 0, 0.0
    status = "PASS"
    try:
        for job, memory in jobs:
            cycles += await bench.run_job(job, memory,
                                          max_cycles=job_budget(job.ideal_cycles(config)),
                                          drop_beat=5 if inject == "drop" else None)
            ideal += job.ideal_cycles(config)
            missing = memory.unwritten()
            if missing:
                raise AssertionError(f"outputs never written: {missing}")
        if bench.mismatches:
            raise AssertionError(f"{len(bench.mismatches)} output beats differ from the "
                                 f"golden model; first: {bench.mismatches[0]}")
    except AssertionError:
        status = "FAIL"
        raise
    finally:
        line = format_result(test_name, status, cycles=cycles, ideal_cycles=round(ideal),
                             seed=seed, mode=mode, S=shape.S, E=shape.E, P=shape.P, F=shape.F,
                             H=shape.H, act=shape.activation, stalls=int(stalls), N=config.N,
                             M=config.M, mismatches=len(bench.mismatches))
        record_result(line)
