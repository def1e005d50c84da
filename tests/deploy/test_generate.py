"""``make sim TEST=generate``: the plans of SmolLM2's layers, several decoder layers chained in
a decoding program (checked in numpy against the integer model), the FFN's column chunks
and the weights loaded again every step, and the run's usage errors."""

import numpy as np
import pytest

from ita.deploy import CompileError, compile_model, plan
from ita.deploy.frontend import IntegerDecoderLayer, IntegerModel, RandomLlama
from ita.deploy.lower_decoder import chunk_width
from ita.quant import llama as ql
from verif.cluster.encoder import cluster_spec
from verif.cluster.generate import _step_cycles
from verif.deploy import expected_decoder_tensors
from verif.deploy.decoder import decoder_inputs
from verif.deploy.execute import check_decoder_plan
from verif.sim import main as sim_main


@pytest.fixture(scope="module")
def two_layers():
    """A tiny random Llama of two layers and the embedded rows of 23 tokens."""
    tiny = RandomLlama(seed=3, layers=2)
    imodel, _ = tiny.draw()
    ids = np.random.default_rng(5).integers(0, tiny.vocab, 23)
    return imodel.blocks[0].model, ids


def _decoding(imodel, past, steps):
    return IntegerModel(tuple(IntegerDecoderLayer(imodel, j, 1, past, steps)
                              for j in range(len(imodel.layers))), "decode")


def test_chunk_width():
    assert chunk_width(1536, 576, 0, 64) == 1536
    assert chunk_width(1536, 576, 64 * 1024, 64) == 64       # 64 x 576 = 36 KiB
    assert chunk_width(576, 1536, 64 * 1024, 64) == 32       # M/2: 48 KiB of 1536 inputs
    assert chunk_width(576, 1536, 96 * 1024, 64) == 64
    with pytest.raises(CompileError, match="no chunk"):
        chunk_width(576, 1536, 1024, 64)


def test_step_cycles_sum_the_layers():
    assert _step_cycles("blocks: 30 40\nsteps: 0:0:10 0:1:20 1:0:15 1:1:25\n") == [25, 45]
    assert _step_cycles("blocks: 30\n") == []


def test_chained_decoding_is_the_integer_model(two_layers):
    """The expected rows of two layers' decoding steps give the logits of the whole integer
    model, and every layer's cache input is the prefill's."""
    imodel, ids = two_layers
    x = ql.embed(imodel, ids)
    model = _decoding(imodel, 20, 3)
    names = ("out", "b0_k_cache0", "b1_v_cache0")
    expected = expected_decoder_tensors(model, x, names)
    whole = ql.forward(imodel, ids)
    np.testing.assert_array_equal(ql.head(imodel, expected["out"]), whole.logits[20:])
    np.testing.assert_array_equal(expected["b0_k_cache0"], whole.cache.keys[0][0])
    np.testing.assert_array_equal(expected["b1_v_cache0"], whole.cache.values[1][0].T)
    inputs = decoder_inputs(model, x)
    prefill = ql.forward(imodel, ids[:20]).cache
    assert sorted(inputs) == ["b0_k_cache0", "b0_v_cache0", "b1_k_cache0", "b1_v_cache0",
                              "x"]
    np.testing.assert_array_equal(inputs["b1_k_cache0"], prefill.keys[1][0])
    np.testing.assert_array_equal(inputs["x"], x[20:])


def test_chained_chunked_streamed_decoding_runs_bit_exact(two_layers):
    """Two layers, three steps each, the FFN in column chunks, every step loading its own
    weights: the plan interpreted in numpy equals the integer model."""
    imodel, ids = two_layers
    x = ql.embed(imodel, ids)
    model = _decoding(imodel, 20, 3)
    probes = ("out", "b0_k_cache0", "b0_v_cache0", "b1_k_cache0", "b1_v_cache0")
    program = compile_model(model, cluster_spec(), probes=probes, chunk=4096, stream=True)
    jobs = [p.job.name for p in program.schedule.phases if p.job]
    assert {"gate_c0", "gate_c1", "down_c0", "down_c1"} <= set(jobs)
    loads = [d for p in program.schedule.phases for d in p.loads if d.l2 == "b0_w_gate_c0"]
    assert len(loads) == 3                                 # once per step
    assert check_decoder_plan(program, model, x) is None
    # every layer's every step is timed: the run reports each step's cycles
    assert "static uint32_t dl_step_cycles[6];" in program.c_source
    assert 'printf(" 1:2:%u", (unsigned)dl_step_cycles[5]);' in program.c_source
    prefill = IntegerModel(tuple(IntegerDecoderLayer(imodel, j, 20) for j in range(2)), "p")
    program = compile_model(prefill, cluster_spec(), probes=("out", "b0_k_cache0"), chunk=4096)
    assert check_decoder_plan(program, prefill, x[:20]) is None
    assert "dl_step_cycles" not in program.c_source


#: SmolLM2-135M's layer shapes (ita.models.llama.load_smollm2), with random weights.
SMOLLM2_SHAPE = dict(E=576, heads=9, kv_heads=3, head_dim=64, F=1536)


def test_smollm2_shaped_layers_plan_within_l1():
    """4 decoding steps and a prefill of 4 tokens of a layer of SmolLM2's shapes fit L1 from
    L3: the FFN in chunks, every step streaming its weights, the estimate near the bound."""
    tiny = RandomLlama(**SMOLLM2_SHAPE, S=4, context=64)
    spec = cluster_spec(weights="l3")
    model, _ = tiny.draw(past=4, steps=4)
    step = plan(model, spec)
    assert step.choices["chunk"] and step.choices["stream"]
    weights = sum(t.size for t in step.l2.values() if t.name.startswith("w_"))
    assert 3.6e6 < weights < 3.9e6
    assert step.estimate["cycles"] / 4 < 1.2 * weights / spec.rate("l3")
    prefill = plan(tiny.draw()[0], spec)
    assert prefill.choices["chunk"] and not prefill.choices["stream"]


@pytest.mark.parametrize("args, message", [
    (["PROMPT="], "PROMPT"),
    (["PROMPT=   "], "PROMPT is empty"),
    (["LAYERS=0"], "LAYERS"),
    (["LAYERS=31"], "LAYERS=31: SmolLM2 has layers 1..30"),
    (["TOKENS=0"], "TOKENS"),
    (["PROMPT=Once upon a time", "TOKENS=61"], "at most 60 decoding steps"),
    (["PROMPT=" + "one two three " * 22], "longer than the context of 64"),
])
def test_usage_errors(args, message, capsys):
    assert sim_main(["TEST=generate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.verilator
def test_one_layer_generates_bit_exact():
    """One real layer, a 2-token prompt, one decoding step: both programs pass the check
    (about 1.5 minutes with the quantised model cached): the flow's one real-model run in
    ``make test``."""
    from verif.cluster.generate import run_generate
    status, fields, text, _ = run_generate("Once upon", 1, 1)
    assert (status, fields["mismatches"], fields["prompt_tokens"]) == ("PASS", 0, 2)
    assert fields["decode_cycles"] > fields["bound_cycles"] > 0 and not text["bad"]


@pytest.mark.model_run
def test_a_corrupted_step_fails_naming_it():
    from verif.cluster.generate import run_generate
    status, fields, text, _ = run_generate("Once upon", 1, 1, corrupt=("out", 0, 7))
    assert status == "FAIL" and fields["mismatches"] == 1
    assert len(text["bad"]) == 1
    assert text["bad"][0].startswith("decoding step=0 tensor=out row=0 col=7 got=")
