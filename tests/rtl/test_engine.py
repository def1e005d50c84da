"""Whole-engine jobs under amaranth.sim on a small array (N=4, M=8), bit-exact."""

import pytest

from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.engine import Engine
from ita.rtl.layouts import ErrorCode, Mode
from verif.engine.job import EngineJob, job_from_vectors

from .engine_harness import expect_complete, run_job

SMALL = ITAConfig(N=4, M=8)

CASES = [
    ("linear", LayerShape(S=8, E=8, P=8, activation="relu"), 0.0),
    ("linear", LayerShape(S=11, E=13, P=6, activation="gelu"), 0.3),
    ("ffn", LayerShape(S=9, E=16, F=12, activation="gelu"), 0.2),
    ("qkav", LayerShape(S=13, E=8, P=10, causal=True), 0.2),
    ("attention", LayerShape(S=8, E=8, P=8), 0.0),
    ("attention", LayerShape(S=19, E=12, P=9, causal=True, valid_keys=15), 0.3),
]


@pytest.mark.parametrize("mode, shape, stall", CASES,
                         ids=[f"{c[0]}-S{c[1].S}E{c[1].E}P{c[1].P}F{c[1].F}-stall{c[2]}"
                              for c in CASES])
def test_job_bit_exact(mode, shape, stall):
    v = generate(shape, seed=shape.S, config=SMALL)
    job, memory = job_from_vectors(mode, v, config=SMALL)
    state = run_job(Engine(config=SMALL), job, memory, seed=1, stall=stall)
    assert state["error"] == 0
    expect_complete(memory, state)


@pytest.mark.parametrize("job, code", [
    (EngineJob(Mode.LINEAR, S=0, E=8, P=8), ErrorCode.ZERO_DIMENSION),
    (EngineJob(Mode.FFN, S=8, E=8, F=0), ErrorCode.ZERO_DIMENSION),
    (EngineJob(Mode.LINEAR, S=8, E=2000, P=8), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.QKAV, S=3000, P=8), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.QKAV, S=8, P=1600), ErrorCode.DIMENSION_TOO_LARGE),
    (EngineJob(Mode.ATTENTION, S=8, E=8, P=8, valid_keys=9), ErrorCode.BAD_VALID_KEYS),
])
def test_illegal_configuration_reports_error_without_hanging(job, code):
    from verif.engine.job import TensorMemory
    state = run_job(Engine(config=SMALL), job, TensorMemory(tensors={}), max_cycles=50,
                    expect_error=True)
    assert state["error"] == 1 and state["code"] == code
    assert state["cycles"] < 10


class _BadActivationJob(EngineJob):
    def config_fields(self):
        return {**super().config_fields(), "activation": 3}


def test_activation_code_3_is_refused():
    from verif.engine.job import TensorMemory
    job = _BadActivationJob(Mode.LINEAR, S=8, E=8, P=8)
    state = run_job(Engine(config=SMALL), job, TensorMemory(tensors={}), max_cycles=50,
                    expect_error=True)
    assert state["error"] == 1 and state["code"] == ErrorCode.BAD_ACTIVATION
