"""Sequences of the engine environment.

:class:`EngineJobSeq` is the virtual sequence of one job: it hands the job item to the control
sequencer (which returns once the engine has taken ``start``) and starts one
:class:`~verif.uvm.stream_agent.StreamTransfer` per source, whose payloads are read from the
job's memory image when the beat is due -- or later, when the beat needs data the engine has
not written yet. The job's stall profile drives the three sources and the output's
back-pressure, each with its own RNG drawn from the test's.

:func:`make_item` turns a :class:`~verif.engine_uvm.stimulus.JobSpec` into the job item
(golden vectors, stream plans, packed configuration word).
"""

from __future__ import annotations

import random

import cocotb
from pyuvm import uvm_sequence

from ita.rtl.job import pack_bias, pack_fields, pack_int8, stream_plans
from ita.rtl.layouts import engine_config_layout
from verif.uvm.stall import make_profile
from verif.uvm.stream_agent import StreamTransferSeq

from .env import SOURCES, EngineJobItem
from .stimulus import build_job, config_fields, illegal_job

__all__ = ["EngineJobSeq", "make_item", "payload_function"]


def payload_function(name, plan, memory, config):
    """``payload(index)`` for source ``name``: the packed beat, or None if not written yet."""
    m, n = config.M, config.N
    if name == "bias":
        width = config.bias_width

        def bias_payload(index):
            _step, tensor, start = plan[index]
            return pack_bias(memory.read_vector(tensor, start, n), width)
        return bias_payload

    def payload(index):
        _step, tensor, row, col = plan[index]
        if not memory.ready(tensor, row, col, m):
            return None
        return pack_int8(memory.read(tensor, row, col, m))
    return payload


def make_item(spec, job_id: int, data_seed: int, config, *, corrupt_expected=False
              ) -> EngineJobItem:
    """The job item of ``spec`` with data drawn from ``data_seed``.

    ``corrupt_expected`` adds one LSB to the expected value of the job's first output beat
    (negative test: the scoreboard must report it).
    """
    if spec.expect_error is None:
        job, memory = build_job(spec, data_seed, config)
        plans = stream_plans(job, config)
        ideal = job.ideal_cycles(config)
    else:
        job, memory, ideal = illegal_job(spec), None, 0.0
        plans = {name: [] for name in (*SOURCES, "output")}
    word = pack_fields(engine_config_layout(config), config_fields(spec, job))
    if corrupt_expected and plans["output"]:
        _step, tensor, row, col = plans["output"][0]
        memory.expected[tensor][row, col] += 1
    return EngineJobItem(f"job{job_id}", spec=spec, job=job, memory=memory, plans=plans,
                         config_word=word, job_id=job_id, ideal_cycles=ideal)


class EngineJobSeq(uvm_sequence):
    """One job: control item plus three source bursts (``prefetch``: bursts start before the
    job is accepted, so a job's weights may stream in while the previous job finishes)."""

    def __init__(self, name, env, item: EngineJobItem, rng: random.Random, prefetch=False,
                 starve=()):
        super().__init__(name)
        self.env, self.item, self.rng, self.prefetch = env, item, rng, prefetch
        self.starve = set(starve)  # sources that never send (watchdog test)

    async def body(self):
        if self.prefetch:
            self._start_streams()
        await self.start_item(self.item)
        await self.finish_item(self.item)  # returns when the engine has taken start
        if not self.prefetch:
            self._start_streams()

    def _start_streams(self):
        item, env = self.item, self.env
        if item.expect_error is not None:
            return
        profiles = {name: make_profile(item.spec.stall, random.Random(self.rng.getrandbits(64)))
                    for name in (*SOURCES, "output")}
        env.agents["output"].set_profile(profiles["output"])
        for name in SOURCES:
            plan = item.plans[name]
            seq = StreamTransferSeq(f"{name}{item.job_id}", count=len(plan),
                                    payload=payload_function(name, plan, item.memory,
                                                             env.config),
                                    profile=profiles[name], tag=item.job_id)
            item.transfers[name] = seq.item
            if name not in self.starve:
                cocotb.start_soon(seq.start(env.agents[name].sequencer))
