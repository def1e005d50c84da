"""A compiled Llama decoder layer (prefill) on the cluster: its plan, bit-exactness in the C++
harness against the integer Llama, and a check that fails naming the tensor."""

import re

import numpy as np
import pytest

from ita.deploy import CompileError, compile_model, plan
from ita.deploy.frontend import RandomLlama
from ita.quant import llama as ql
from verif.cluster.encoder import cluster_spec
from verif.deploy import expected_decoder_tensors, self_checking_decoder
from verif.models.sim import run_decoder_layer
from verif.sim import main as sim_main


@pytest.fixture(scope="module")
def tiny():
    return RandomLlama(seed=2).draw()


def test_plan_runs_gqa_heads_on_one_k_and_v(tiny):
    model, _ = tiny
    (layer,) = model.blocks
    jobs = [p.job for p in plan(model, cluster_spec()).phases if p.job]
    names = [j.name for j in jobs]
    s = layer.shape
    assert sum(n.startswith("K") for n in names) == sum(n.startswith("V") for n in names) == s.KV
    assert sum(n.startswith("Q") for n in names) == s.H
    heads = [j for j in jobs if j.mode == "qkav"]
    assert len(heads) == s.H and all(j.causal for j in heads)
    assert len({j.pointers["KP"].buffer for j in heads}) == s.KV   # K and V^T reused
    assert sum(j.macs for j in jobs) == layer.macs


def test_expected_tensors_are_the_integer_model(tiny):
    model, x = tiny
    (layer,) = model.blocks
    program = compile_model(model, cluster_spec(), probes=("out", "k_cache0", "v_cache0"))
    expected = expected_decoder_tensors(model, x, program.manifest["outputs"])
    out, keys, values = ql.prefill_layer(layer.model, 0, x)
    np.testing.assert_array_equal(expected["out"], out)
    np.testing.assert_array_equal(expected["v_cache0"], values[0].T)
    assert expected["out"].dtype == np.int32 and expected["k_cache0"].dtype == np.int8
    checked = self_checking_decoder(program, x, expected, cluster_spec())
    assert re.search(r'dl_check32\(core, "out", .*, 16, 64, 64\)', checked.check_source)
    assert 'dl_check(core, "k_cache0"' in checked.check_source


def test_refusals(tiny):
    model, _ = tiny
    with pytest.raises(CompileError, match="unknown tensor 'attn' of decoder_layer"):
        compile_model(model, cluster_spec(), probes=("attn",))
    with pytest.raises(CompileError, match="takes no tiling choices"):
        plan(model, cluster_spec(), fc=64)


def test_unknown_model_is_a_usage_error(capsys):
    assert sim_main(["TEST=decoder_layer", "MODEL=smollm2"]) == 2
    assert "MODEL" in capsys.readouterr().err


@pytest.mark.verilator
def test_tiny_layer_is_bit_exact(tmp_path):
    status, result, output, breakdown = run_decoder_layer(tmp_path, seed=2)
    checks = re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output)
    assert [c[0] for c in checks] == ["out", "k_cache0", "v_cache0"]
    assert status == "PASS" and result["mismatches"] == 0, output[-2000:]
    assert result["layer_cycles"] > 0 and float(result["ops_per_cycle"]) > 0
    assert 0 < float(result["ita_busy_pct"]) <= 100
    for kernel in ("rmsnorm1", "rope", "silu_mul", "residual_down"):
        assert f"kernel {kernel}" in breakdown


@pytest.mark.verilator
def test_corrupted_expected_value_fails_naming_the_tensor(tmp_path):
    status, result, output, _ = run_decoder_layer(tmp_path, seed=2, corrupt=("out", 3, 41))
    assert status == "FAIL" and result["mismatches"] == 1
    assert re.search(r"mismatch: tensor=out row=3 col=41 ", output), output[-2000:]
    assert "check: tensor=out elements=1024 mismatches=1" in output
