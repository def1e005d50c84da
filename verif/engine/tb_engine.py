"""cocotb testbench: one or more engine jobs against the golden model on Verilator.

Configured through environment variables set by :mod:`verif.engine` (``ENGINE_*``). The
testbench draws a vector set with the golden model, runs one job per head back to back,
feeds the three operand streams from a memory model (with random idle cycles when
``ENGINE_STALLS=1``, and never before the engine has written the data a beat needs), applies
random back-pressure to the output, checks every output beat as it leaves the engine and
prints the RESULT line.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.job import (
    OutputMismatch,
    job_from_vectors,
    pack_bias,
    pack_fields,
    pack_int8,
    stream_plans,
    unpack_int8,
)
from ita.rtl.layouts import ErrorCode, Step, engine_config_layout
from verif.result import format_result, record_result

STALL_PROBABILITY = 0.25
MAX_REPORTED = 10


def _env(name, default=None, cast=int):
    value = os.environ.get(f"ENGINE_{name}")
    return default if value in (None, "") else cast(value)


class EngineBench:
    """Clock, reset and the per-cycle stream loop for one engine instance."""

    def __init__(self, dut, config, rng, stalls):
        self.dut, self.config, self.rng, self.stalls = dut, config, rng, stalls
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
        return self.stalls and self.rng.random() < STALL_PROBABILITY

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
    config = ITAConfig(N=_env("N", 16), M=_env("M", 64))
    seed = _env("SEED", None) or int(os.environ.get("COCOTB_RANDOM_SEED", "1"))
    test_name = _env("TEST_NAME", "ita_attention", str)
    mode = _env("MODE", "attention", str)
    shape = LayerShape(S=_env("S", 64), E=_env("E", 64), P=_env("P", 64), F=_env("F", 64),
                       H=_env("H", 1), activation=_env("ACT", "gelu", str),
                       bias=bool(_env("BIAS", 1)), causal=bool(_env("CAUSAL", 0)),
                       valid_keys=_env("VALID_KEYS", 0) or None)
    stalls = bool(_env("STALLS", 1))
    inject = _env("INJECT", "", str)
    rng = random.Random(seed)

    vectors = generate(shape, seed, config)
    heads = shape.H if mode in ("attention", "qkav") else 1
    jobs = [job_from_vectors(mode, vectors, head=h, config=config) for h in range(heads)]
    if inject == "lsb":
        memory = jobs[0][1]
        name = sorted(memory.expected)[0]
        memory.expected[name][0, 0] += 1
    bench = EngineBench(dut, config, rng, stalls)
    await bench.reset()

    cycles, ideal = 0, 0.0
    status = "PASS"
    try:
        for job, memory in jobs:
            budget = int(8 * job.ideal_cycles(config) / (0.5 if stalls else 1)) + 20_000
            cycles += await bench.run_job(job, memory, max_cycles=budget,
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
