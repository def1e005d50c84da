"""The reference design's memory-port bound (bench/model.py), checked against hand counts."""

import pytest

from bench import model
from ita.config import ITAConfig


def test_reference_accesses_per_job():
    # 1024-bit port, N=16, M=64: input 32 x 128 B four times, weight 32, bias 2, output 128
    assert model.tile_accesses() == {"input": 128, "weight": 32, "bias": 2, "output": 128}


def test_single_tile_attention_is_port_bound_at_290_cycles_per_job():
    # Q, K, V, OW: one job each with bias and output (290); QK, AV without bias (288)
    assert model.port_bound_cycles("attention", S=64, E=64, P=64) == 4 * 290 + 2 * 288
    util = model.port_bound_utilization("attention", 1536, S=64, E=64, P=64)
    assert util == pytest.approx(100 * 1536 / 1736)


def test_inner_jobs_cost_compute_time_only():
    # E=128: Q, K, V have two inner tiles (256 + 290); OW two output tiles (2 x 290)
    got = model.port_bound_cycles("attention", S=64, E=128, P=64)
    assert got == 3 * (256 + 290) + 2 * 288 + 2 * 290


def test_ffn_and_padding():
    # F1: 1 x 2 output tiles, 1 inner; F2: 1 x 1 output tile, 2 inner
    assert model.port_bound_cycles("ffn", S=64, E=64, F=128) == 2 * 290 + (256 + 290)
    # shapes are padded to whole tiles, as in the reference
    assert (model.port_bound_cycles("ffn", S=50, E=33, F=100)
            == model.port_bound_cycles("ffn", S=64, E=64, F=128))


def test_other_geometry_scales_with_n_and_m():
    config = ITAConfig(N=8, M=32)
    acc = model.tile_accesses(config)
    assert acc == {"input": 32, "weight": 8, "bias": 2, "output": 64}
    # 128 compute cycles per job exceed 32 + 8 + 2 + 64 = 106 accesses: not port bound
    assert model.port_bound_cycles("linear", S=32, E=32, P=32, config=config) == 128


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="qkav"):
        model.steps("qkav", S=64, P=64)
