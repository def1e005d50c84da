"""The HWPE under amaranth.sim on a small engine (N=4, M=8): register programming, streamers
over a stalling memory, results compared in memory with the golden model."""

import pytest

from cluster_integration.hwpe.ita_hwpe import ItaHwpe
from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.job import EngineJob, TensorMemory, job_from_vectors
from ita.rtl.layouts import ErrorCode, Mode

from .hwpe_harness import check_outputs, run_hwpe

SMALL = ITAConfig(N=4, M=8)
WIDTH = 128  # bits: the smallest port that carries an engine beat at N=4, M=8


def make(mode, shape, seed=1):
    return job_from_vectors(mode, generate(shape, seed, SMALL), config=SMALL)


@pytest.mark.parametrize("mode, shape, stall", [
    ("linear", LayerShape(S=8, E=8, P=8, activation="relu"), 0.0),
    ("linear", LayerShape(S=11, E=13, P=6, activation="gelu"), 0.3),
    ("ffn", LayerShape(S=9, E=16, F=12), 0.2),
    ("attention", LayerShape(S=13, E=12, P=9, causal=True), 0.25),
    ("qkav", LayerShape(S=10, P=8, valid_keys=7), 0.1),
], ids=lambda x: getattr(x, "S", x))
def test_job_bit_exact_in_memory(mode, shape, stall):
    job, memory = make(mode, shape)
    [result] = run_hwpe(ItaHwpe(config=SMALL, data_width=WIDTH), [(job, memory)], stall=stall)
    assert result["error"] == 0
    check_outputs(memory, result)


def test_jobs_back_to_back_and_illegal_configuration():
    jobs = [make("ffn", LayerShape(S=9, E=8, F=16), seed=2),
            (EngineJob(Mode.LINEAR, S=0, E=8, P=8), TensorMemory(tensors={})),
            make("attention", LayerShape(S=10, E=8, P=8), seed=3)]
    results = run_hwpe(ItaHwpe(config=SMALL, data_width=WIDTH), jobs, stall=0.2)
    assert results[1]["error"] == ErrorCode.ZERO_DIMENSION
    for index in (0, 2):
        assert results[index]["error"] == 0
        check_outputs(jobs[index][1], results[index])


def test_soft_clear_mid_job_then_correct_job():
    jobs = [make("attention", LayerShape(S=12, E=8, P=8), seed=4),
            make("attention", LayerShape(S=12, E=8, P=8), seed=4)]
    results = run_hwpe(ItaHwpe(config=SMALL, data_width=WIDTH), jobs, stall=0.2,
                       clear_during=(0, 150))
    assert results[0] == {"aborted": True, "image": results[1]["image"]}
    check_outputs(jobs[1][1], results[1])

