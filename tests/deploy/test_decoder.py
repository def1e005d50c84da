"""A compiled Llama decoder layer on the cluster, prefill and KV-cached decoding step: its
plan, bit-exactness in the C++ harness against the integer Llama, and a check that fails
naming the tensor."""

import re

import numpy as np
import pytest

from ita.deploy import CompileError, compile_model, plan
from ita.deploy.frontend import RandomLlama
from ita.quant import llama as ql
from verif.cluster.encoder import cluster_spec
from verif.deploy import expected_decoder_tensors, self_checking_decoder
from verif.deploy.decoder import decoder_inputs
from verif.deploy.execute import check_decoder_plan
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
    checked = self_checking_decoder(program, decoder_inputs(model, x), expected, cluster_spec())
    assert re.search(r'dl_check32\(core, "out", .*, 16, 64, 64\)', checked.check_source)
    assert 'dl_check(core, "k_cache0"' in checked.check_source


def _kernels(model, **forced):
    return [k for p in plan(model, cluster_spec(), **forced).phases for k in p.kernels]


def test_decomposition_follows_every_gemm(tiny):
    model, _ = tiny
    (layer,) = model.blocks
    assert layer.model.options.decompose          # the default recipe
    kinds = [k.kind for k in _kernels(model)]
    s = layer.shape
    assert kinds.count("decomposed_gemm") == 2 * s.H + 2 * s.KV + 3   # Q, K, V, O, FFN
    assert {"rmsnorm_wide", "rope32", "silu_mul_wide", "dequant_add32"} <= set(kinds)
    clipped, _ = RandomLlama(seed=2, decompose=False).draw()
    kinds = {k.kind for k in _kernels(clipped)}
    assert "decomposed_gemm" not in kinds and {"rmsnorm", "rope", "silu_mul"} <= kinds


def test_the_decomposition_matters_for_the_tiny_model(tiny):
    model, x = tiny
    (layer,) = model.blocks
    out, _, _ = ql.prefill_layer(layer.model, 0, x)
    clipped = ql.IntegerLlama(**{**layer.model.__dict__, "options": ql.LlamaQuantOptions(
        decompose=False)})
    assert not np.array_equal(ql.prefill_layer(clipped, 0, x)[0], out)


@pytest.fixture(scope="module")
def step():
    return RandomLlama(seed=2).draw(past=20)


def test_decode_step_equals_the_longer_prefill(step):
    model, x = step
    (layer,) = model.blocks
    assert (layer.S, layer.past, layer.T, x.shape[0]) == (1, 20, 21, 21)
    inputs = decoder_inputs(model, x)
    assert inputs["x"].shape == (1, 64) and inputs["k_cache0"].shape == (20, 32)
    expected = expected_decoder_tensors(model, x, ("out", "k_cache0", "v_cache0"))
    out, keys, values = ql.prefill_layer(layer.model, 0, x)
    np.testing.assert_array_equal(expected["out"], out[-1:])
    np.testing.assert_array_equal(expected["k_cache0"], keys[0])
    np.testing.assert_array_equal(expected["v_cache0"], values[0].T)


def test_decode_plan_reads_and_grows_the_cache_in_l2(step):
    model, _ = step
    (layer,) = model.blocks
    program = compile_model(model, cluster_spec(), probes=("out", "k_cache0", "v_cache0"))
    m = program.manifest
    assert m["inputs"]["k_cache0"]["address"] == m["outputs"]["k_cache0"]["address"]
    assert (m["inputs"]["k_cache0"]["rows"], m["outputs"]["k_cache0"]["rows"]) == (20, 21)
    assert (m["inputs"]["v_cache0"]["cols"], m["outputs"]["v_cache0"]["cols"]) == (20, 21)
    jobs = [p.job for p in program.schedule.phases if p.job]
    heads = [j for j in jobs if j.mode == "qkav"]
    assert len(heads) == 2 and all(j.dims["S"] == 21 and j.causal for j in heads)
    assert all(j.dims["S"] == 1 for j in jobs if j.mode == "linear")
    assert sum(j.macs for j in jobs) == layer.macs
    on_cores = _kernels(model, gemv=("q", "down"))
    assert [k.name for k in on_cores if k.kind == "gemv"] == ["gemv_Q0", "gemv_Q1",
                                                              "gemv_down"]


def test_steps_share_constants_and_the_cache(step):
    model, _ = RandomLlama(seed=2).draw(past=20, steps=3)
    (layer,) = model.blocks
    assert layer.T == 23 and layer.tensor("out").shape == (3, 64)
    program = compile_model(model, cluster_spec(), probes=("out", "k_cache0"))
    l2 = program.schedule.l2
    assert "w_gate" in l2 and not any(name.endswith("_s1") for name in l2)
    assert sum(p.job is not None and p.job.mode == "qkav" for p in program.schedule.phases) == 6
    stores = [d for p in program.schedule.phases for d in p.stores if d.l2 == "k_cache0"]
    assert [(d.l2_offset, d.bytes) for d in stores] == [(20 * 64, 3 * 64)]
    assert sum(j.macs for p in program.schedule.phases if (j := p.job)) == layer.macs


@pytest.mark.parametrize("gemv", [(), ("q", "v", "attention", "down")])
def test_interpreted_decode_plan_equals_the_integer_llama(gemv):
    model, x = RandomLlama(seed=2).draw(past=20, steps=2)
    program = compile_model(model, cluster_spec(), probes=("out", "k_cache0", "v_cache0"),
                            gemv=gemv)
    assert check_decoder_plan(program, model, x) is None
    clipped, x8 = RandomLlama(seed=2, decompose=False).draw()
    program = compile_model(clipped, cluster_spec(), probes=("out", "k_cache0", "v_cache0"))
    assert check_decoder_plan(program, clipped, x8) is None


def test_refusals(tiny, step):
    model, _ = tiny
    with pytest.raises(CompileError, match="unknown tensor 'attn' of decoder_layer"):
        compile_model(model, cluster_spec(), probes=("attn",))
    with pytest.raises(CompileError, match="takes no tiling choices"):
        plan(model, cluster_spec(), fc=64)
    with pytest.raises(CompileError, match="GEMVs on the cores need one new row"):
        plan(model, cluster_spec(), gemv=("q",))
    with pytest.raises(CompileError, match="unknown GEMV 'qk'"):
        plan(step[0], cluster_spec(), gemv=("qk",))
    clipped, _ = RandomLlama(seed=2, decompose=False).draw(past=3)
    with pytest.raises(CompileError, match="decoding step is lowered with the decomposition"):
        plan(clipped, cluster_spec())
    with pytest.raises(ValueError, match="position 64 lies outside the context of 64"):
        RandomLlama(seed=2).draw(past=64)
    with pytest.raises(ValueError, match="position 65 lies outside the context of 64"):
        RandomLlama(seed=2).draw(past=62, steps=4)
    with pytest.raises(CompileError, match="cross a tile edge"):
        crossing, _ = RandomLlama(seed=2, context=128).draw(past=62, steps=4)
        plan(crossing, cluster_spec())


def test_unknown_model_is_a_usage_error(capsys):
    assert sim_main(["TEST=decoder_layer", "MODEL=smollm2"]) == 2
    assert "MODEL" in capsys.readouterr().err
    assert sim_main(["TEST=decoder_layer", "MODE=decode", "POS=64"]) == 2
    assert "position 64 lies outside the context of 64" in capsys.readouterr().err
    assert sim_main(["TEST=decoder_layer", "MODE=decode", "GEMV=q,x"]) == 2
    assert "GEMV" in capsys.readouterr().err


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
def test_decode_step_is_bit_exact_with_gemvs_on_both(tmp_path):
    status, result, output, breakdown = run_decoder_layer(tmp_path, seed=2, pos=20,
                                                          gemv=("q", "v", "down"))
    checks = re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output)
    assert checks == [("out", "64", "0"), ("k_cache0", "672", "0"), ("v_cache0", "672", "0")]
    assert status == "PASS" and result["mismatches"] == 0, output[-2000:]
    assert result["decode_cycles"] > result["bound_cycles"] > 0
    assert result["gemv_cores"] == "q,v,down"
    assert "kernel gemv_Q0" in breakdown and "kernel decomposition_down" in breakdown


@pytest.mark.verilator
def test_decode_steps_in_one_run_grow_the_cache(tmp_path):
    status, result, output, _ = run_decoder_layer(tmp_path, seed=2, pos=40, steps=3)
    checks = re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output)
    assert checks == [("out", "192", "0"), ("k_cache0", "1376", "0"), ("v_cache0", "1376", "0")]
    assert status == "PASS" and result["steps"] == 3 and result["ita_jobs"] == 33
    assert result["decode_cycles"] == round(result["layer_cycles"] / 3)


@pytest.mark.verilator
def test_corrupted_expected_value_fails_naming_the_tensor(tmp_path):
    status, result, output, _ = run_decoder_layer(tmp_path, seed=2, corrupt=("out", 3, 41))
    assert status == "FAIL" and result["mismatches"] == 1
    assert re.search(r"mismatch: tensor=out row=3 col=41 ", output), output[-2000:]
    assert "check: tensor=out elements=1024 mismatches=1" in output
