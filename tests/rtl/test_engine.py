"""Whole-engine jobs under amaranth.sim on a small array (N=4, M=8), bit-exact."""

from dataclasses import replace

import pytest

from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.engine import Engine
from ita.rtl.job import EngineJob, job_from_vectors
from ita.rtl.layouts import ErrorCode, Mode

from .engine_harness import Run, expect_complete, run_job, run_jobs

SMALL = ITAConfig(N=4, M=8)

CASES = [
    ("linear", LayerShape(S=8, E=8, P=8, activation="relu"), 0.0),
    ("linear", LayerShape(S=11, E=13, P=6, activation="gelu"), 0.3),
    ("ffn", LayerShape(S=9, E=16, F=12, activation="gelu"), 0.2),
    ("qkav", LayerShape(S=13, E=8, P=10, causal=True), 0.2),
    ("attention", LayerShape(S=8, E=8, P=8), 0.0),
    ("attention", LayerShape(S=19, E=12, P=9, causal=True, valid_keys=15), 0.3),
    ("qkav", LayerShape(S=21, E=8, P=10, valid_keys=17, logit_frac=3), 0.2),
    ("attention", LayerShape(S=16, E=8, P=8, causal=True, logit_frac=2), 0.0),
]


def test_logit_step_reaches_the_probabilities():
    """The finer-step cases above are not the k = 0 results under another name."""
    for _mode, shape, _stall in CASES:
        if shape.logit_frac:
            coarse = replace(shape, logit_frac=0)
            assert (generate(shape, seed=shape.S, config=SMALL)["a_soft"]
                    != generate(coarse, seed=shape.S, config=SMALL)["a_soft"]).any()


@pytest.mark.parametrize("mode, shape, stall", CASES,
                         ids=[f"{c[0]}-S{c[1].S}E{c[1].E}P{c[1].P}F{c[1].F}-stall{c[2]}"
                              for c in CASES])
def test_job_bit_exact(mode, shape, stall):
    v = generate(shape, seed=shape.S, config=SMALL)
    job, memory = job_from_vectors(mode, v, config=SMALL)
    run = run_job(Engine(config=SMALL), job, memory, seed=1, stall=stall)
    expect_complete(memory, run)


@pytest.mark.parametrize("job, code", [
    (EngineJob(Mode.LINEAR, S=0, E=8, P=8), ErrorCode.ZERO_DIMENSION),
    (EngineJob(Mode.FFN, S=8, E=8, F=0), ErrorCode.ZERO_DIMENSION),
    (EngineJob(Mode.LINEAR, S=8, E=2000, P=8), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.QKAV, S=3000, P=8), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.QKAV, S=8, P=1600), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.ATTENTION, S=8, E=8, P=8, valid_keys=9), ErrorCode.BAD_VALID_KEYS),
])
def test_illegal_configuration_reports_error_without_hanging(job, code):
    from ita.rtl.job import TensorMemory
    run = run_job(Engine(config=SMALL), job, TensorMemory(tensors={}), max_cycles=50,
                  expect_error=True)
    assert run.error == 1 and run.code == code
    assert run.cycles < 10


class _BadActivationJob(EngineJob):
    def config_fields(self):
        return {**super().config_fields(), "activation": 3}


def test_activation_code_3_is_refused():
    from ita.rtl.job import TensorMemory
    job = _BadActivationJob(Mode.LINEAR, S=8, E=8, P=8)
    run = run_job(Engine(config=SMALL), job, TensorMemory(tensors={}), max_cycles=50,
                  expect_error=True)
    assert run.error == 1 and run.code == ErrorCode.BAD_ACTIVATION


@pytest.mark.parametrize("clear_at", [1, 2, 7, 40, 150, 333])
def test_clear_mid_job_then_correct_job(clear_at):
    """A synchronous clear in any cycle aborts the job; the next job is bit-exact."""
    shape = LayerShape(S=12, E=10, P=9, causal=True)
    v = generate(shape, seed=4, config=SMALL)
    aborted, aborted_memory = job_from_vectors("attention", v, config=SMALL)
    job, memory = job_from_vectors("attention", v, config=SMALL)
    runs = run_jobs(Engine(config=SMALL), [Run(aborted, aborted_memory, clear_at=clear_at),
                                           Run(job, memory)], seed=clear_at, stall=0.2)
    expect_complete(memory, runs[1])


def test_back_to_back_jobs_and_error_recovery():
    """Jobs follow each other with no idle cycle; a refused job leaves no trace."""
    from ita.rtl.job import TensorMemory
    engine = Engine(config=SMALL)
    runs = []
    for seed, (mode, shape) in enumerate([("ffn", LayerShape(S=9, E=8, F=16)),
                                          ("linear", LayerShape(S=8, E=12, P=8)),
                                          ("qkav", LayerShape(S=10, P=8))]):
        runs.append(Run(*job_from_vectors(mode, generate(shape, seed, SMALL), config=SMALL)))
        if seed == 1:
            runs.append(Run(EngineJob(Mode.LINEAR, S=0, E=8, P=8), TensorMemory(tensors={}),
                            expect_error=True))
    run_jobs(engine, runs, stall=0.1)
    for run in runs:
        if run.expect_error:
            assert run.error == 1 and run.code == ErrorCode.ZERO_DIMENSION
        else:
            expect_complete(run.memory, run)


def test_single_unit_engine():
    """N = M = 1: every tile has one accumulator slot, reused in consecutive cycles."""
    tiny = ITAConfig(N=1, M=1)
    v = generate(LayerShape(S=2, E=3, P=2, activation="relu"), seed=2, config=tiny)
    job, memory = job_from_vectors("linear", v, config=tiny)
    expect_complete(memory, run_job(Engine(config=tiny), job, memory))
