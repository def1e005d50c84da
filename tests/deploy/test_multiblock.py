"""Programs of several blocks: chaining, the L1 and L2 links, prefetch across the boundary,
fit errors, the plan run in numpy against the chained golden model, and two tiny layers on
the cluster with their weights in L2 and in L3."""

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ita.deploy import ClusterSpec, CompileError, IntegerModel, RandomEncoder, compile_model
from ita.deploy.frontend import IntegerDecoderLayer, RandomLlama
from ita.golden.encoder import EncoderShape
from verif.cluster.encoder import cluster_spec, debug_probes, draw_layers, run_layer, shape_for
from verif.deploy import expected_tensors
from verif.deploy.execute import check_decoder_plan, check_plan, execute, first_mismatch

ROOT = Path(__file__).resolve().parents[2]
TINY = shape_for("tiny")


@pytest.fixture(scope="module")
def three():
    return draw_layers(TINY, 5, layers=3)


def _model(blocks):
    return IntegerModel(tuple(blocks))


@pytest.mark.parametrize("chain", ["auto", "l2"])
@pytest.mark.parametrize("weights", ["l2", "l3"])
def test_two_and_three_blocks_match_the_chained_golden_model(three, chain, weights):
    model, x = three
    for n in (2, 3):
        blocks = _model(model.blocks[:n])
        probes = ("b0_out", "b0_ln1", "out")
        program = compile_model(blocks, cluster_spec(weights=weights), probes=probes,
                                chain=chain)
        assert list(program.manifest["outputs"]) == list(probes)
        assert check_plan(program, blocks, x) is None, (n, chain, weights)
        assert program.manifest["layers"] == n and len(program.manifest["blocks"]) == n


def test_the_check_fails_when_a_block_reads_the_wrong_input(three):
    """Block 1 fed the program's input instead of block 0's output: the interpreter's
    outputs differ from the chained golden model (and equal block 1 alone on x)."""
    model, x = three
    blocks = _model(model.blocks[:2])
    program = compile_model(blocks, ClusterSpec(), chain="l2")
    for ph in program.schedule.phases:
        ph.loads = [replace(d, l2="b0_x") if d.buffer == "b1_x" else d for d in ph.loads]
    assert check_plan(program, blocks, x).startswith("tensor=out row=")
    alone = expected_tensors(_model(model.blocks[1:2]), x, ["out"], ClusterSpec().config)
    assert first_mismatch(execute(program, {"x": x}), alone) is None


def test_l1_link_moves_no_activation_and_l2_link_shares_one_area(three):
    model, _x = three
    in_l1 = compile_model(model, ClusterSpec())
    in_l2 = compile_model(model, ClusterSpec(), chain="l2")
    assert in_l1.schedule.choices["chain"] == ["l1", "l1"]
    assert in_l2.schedule.choices["chain"] == ["l2", "l2"]
    assert not [t for t in in_l1.schedule.l2.values() if t.role == "activation"]
    acts = [t for t in in_l2.schedule.l2.values() if t.role == "activation"]
    assert [t.name for t in acts] == ["b0_result_out", "b1_result_out"]
    # their lifetimes do not overlap: one L2 area serves both
    assert acts[0].offset == acts[1].offset
    moved = in_l2.manifest["estimate"]["dma"] - in_l1.manifest["estimate"]["dma"]
    assert moved > 0 and in_l1.manifest["estimate"]["cycles"] < in_l2.manifest["estimate"]["cycles"]
    # the L2 link: block 0's store and block 1's load in one phase, stores first
    ph = next(p for p in in_l2.schedule.phases if any(d.buffer == "b1_x" for d in p.loads))
    assert [d.buffer for d in ph.stores] == ["b0_out"]
    job = next(p for p in in_l2.schedule.phases if p.job and p.job.block == 1)
    assert job.index == ph.index + 1


def test_block_k_plus_1_weights_load_during_block_k(three):
    model, _x = three
    with_prefetch = compile_model(model, ClusterSpec()).schedule
    without = compile_model(model, ClusterSpec(), prefetch=False).schedule
    for schedule, early in ((with_prefetch, True), (without, False)):
        loads = [(ph.index, schedule.buffers[d.buffer].block) for ph in schedule.phases
                 for d in ph.loads]
        for k in (1, 2):
            last_of_previous = max(p.index for p in schedule.phases if p.job
                                   and p.job.block == k - 1)
            ahead = [i for i, b in loads if b == k and i <= last_of_previous]
            assert bool(ahead) == early, (k, early)
    assert with_prefetch.estimate["cycles"] < without.estimate["cycles"]
    assert with_prefetch.choices["prefetch"] and not without.choices["prefetch"]


def test_manifest_and_c_have_per_block_sections(three):
    model, _x = three
    program = compile_model(model, ClusterSpec())
    blocks = program.manifest["blocks"]
    assert [b["index"] for b in blocks] == [0, 1, 2]
    assert all(b["kind"] == "encoder_layer" and b["shape"]["E"] == TINY.E for b in blocks)
    spans = [b["phases"] for b in blocks]
    assert spans[0][0] == 0 and spans[-1][1] == len(program.schedule.phases) - 1
    assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert program.manifest["macs"] == sum(b["macs"] for b in blocks)
    assert abs(sum(b["estimate"] for b in blocks) - program.manifest["estimate"]["cycles"]) < 3
    c = program.c_source
    assert "uint32_t dl_model(unsigned core)" in c and "#define DL_BLOCKS 3" in c
    assert c.count("dl_block_cycles[") == 3 + 2  # one mark per block, declaration, report
    assert all(name.startswith("b") for name in program.schedule.buffers)


def test_one_block_keeps_its_plain_names():
    model, _x = RandomEncoder(TINY, 2).draw()
    program = compile_model(model, ClusterSpec(), probes=("ln1", "out"))
    assert "x" in program.schedule.buffers and "w_head0" in program.schedule.buffers
    assert list(program.manifest["outputs"]) == ["ln1", "out"]
    assert program.manifest["layers"] == 1 and "#define DL_BLOCKS 1" in program.c_source


def test_blocks_that_do_not_chain_are_refused_on_one_line():
    a = RandomEncoder(TINY, 1).integer_model().blocks[0]
    b = RandomEncoder(EncoderShape(64, 128, 32, 2, 128), 1).integer_model().blocks[0]
    with pytest.raises(CompileError) as info:
        compile_model(_model([a, b]), ClusterSpec())
    message = str(info.value)
    assert "\n" not in message and "do not chain" in message
    assert "block 1 (encoder_layer) takes x of (64, 128) int8" in message
    assert "block 0 (encoder_layer) gives out of (64, 64) int8" in message
    decoder = RandomLlama().integer_model().blocks[0]   # int32 rows in and out
    with pytest.raises(CompileError, match="do not chain.*int32"):
        compile_model(_model([decoder, a]), ClusterSpec())


def test_unknown_probe_and_empty_model_are_compile_errors(three):
    model, _x = three
    with pytest.raises(CompileError, match="unknown tensor 'ln1' of a 3-block program"):
        compile_model(model, ClusterSpec(), probes=("ln1",))
    with pytest.raises(CompileError, match="unknown tensor 'b3_out'"):
        compile_model(model, ClusterSpec(), probes=("b3_out",))
    with pytest.raises(CompileError, match="unknown tensor 'gate' of encoder_layer"):
        compile_model(model, ClusterSpec(), probes=("b1_gate",))
    with pytest.raises(CompileError, match="no blocks"):
        compile_model(IntegerModel(()), ClusterSpec())
    with pytest.raises(CompileError, match="chain must be one of auto, l1, l2"):
        compile_model(model, ClusterSpec(), chain="l4")


def test_a_model_too_large_for_l2_names_the_tensor_and_block():
    model, _x = draw_layers(TINY, 1, layers=3)
    one = compile_model(_model(model.blocks[:1]), ClusterSpec()).schedule.l2_bytes
    spec = ClusterSpec(l2_size=ClusterSpec().l2_data_offset + 2 * one)
    with pytest.raises(CompileError) as info:
        compile_model(model, spec)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"needs \d+ B of L2 data .* but L2 holds \d+ B \(tensor b2_\w+, \d+ B",
                     message), message
    # the same blocks fit with their weights in L3
    assert compile_model(model, replace(spec, weights="l3")).schedule.l2_bytes < 2 * one


def test_a_block_too_large_for_l1_names_the_block():
    blocks = [RandomEncoder(TINY, 1).integer_model().blocks[0],
              RandomEncoder(EncoderShape(64, 64, 32, 2, 1024), 1).integer_model().blocks[0]]
    spec = ClusterSpec(l1_size=ClusterSpec().l1_reserved + 48 * 1024)
    compile_model(_model(blocks[:1]), spec)  # block 0 alone fits
    with pytest.raises(CompileError) as info:
        compile_model(_model(blocks), spec)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("block 1 (encoder_layer): no tiling fits the 49152 B L1 arena")
    assert "cannot place tensor" in message


def test_auto_link_falls_back_to_l2_when_l1_is_full():
    """Two layers of P=64, one head, F=512 in a 64 KiB arena: block 0's output cannot stay in
    L1 beside block 1's attention, so the link goes through L2, and the plan is still the
    chained golden model's."""
    model, x = draw_layers(EncoderShape(64, 64, 64, 1, 512), 3, layers=2)
    spec = ClusterSpec(l1_size=ClusterSpec().l1_reserved + 64 * 1024)
    program = compile_model(model, spec)
    assert program.schedule.choices["chain"] == ["l2"]
    assert program.schedule.choices["prefetch"]
    with pytest.raises(CompileError, match=r"^block \d \(encoder_layer\): cannot place tensor"):
        compile_model(model, spec, chain="l1")
    assert check_plan(program, model, x) is None


def test_two_decoder_layers_chain_through_their_int32_rows():
    model, x = RandomLlama().draw()
    (layer,) = model.blocks
    two = _model([layer, IntegerDecoderLayer(layer.model, 0, layer.S)])
    for chain in ("auto", "l2"):
        program = compile_model(two, cluster_spec(), probes=("b0_k_cache0", "out"),
                                chain=chain)
        assert check_decoder_plan(program, two, x) is None


def test_layers_key_is_a_one_line_usage_error():
    proc = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=encoder_layer",
                           "LAYERS=0"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "LAYERS" in proc.stderr


def test_debug_probes_name_every_tensor_of_every_layer(three):
    model, _x = three
    probes = debug_probes(model)
    assert probes[-1] == "out" and "b0_out" in probes and "b2_attn" in probes
    assert "b2_out" not in probes and len(probes) == 3 * 7


@pytest.mark.verilator
@pytest.mark.parametrize("weights", ["l2", "l3"])
def test_two_tiny_layers_on_the_cluster(tmp_path, weights):
    debug = weights == "l2"  # every tensor of both layers checked, with the weights in L2
    status, result, output, breakdown, prepared = run_layer(
        tmp_path, model="tiny", seed=4, layers=2, weights=weights, debug=debug)
    checks = re.findall(r"check: tensor=(\w+) elements=(\d+) mismatches=(\d+)", output)
    names = [c[0] for c in checks]
    assert names[-1] == "out" and all(c[2] == "0" for c in checks), output[-3000:]
    if debug:
        assert "b0_out" in names and "b1_ln1" in names and len(names) == 14
    assert status == "PASS", output[-3000:]
    assert result["layers"] == 2 and result["weights"] == weights
    blocks = [int(v) for v in result["block_cycles"].split(",")]
    assert len(blocks) == 2 and all(b > 0 for b in blocks)
    assert 0 <= result["layer_cycles"] - sum(blocks) < 100  # the marks sit inside the total
    assert result["ita_jobs"] == sum(1 for p in prepared.program.schedule.phases if p.job)
    assert re.search(r"^1 +\d+-\d+ +\d+ +\d+ ", breakdown, re.M), breakdown
    if weights == "l3":
        assert np.count_nonzero(np.frombuffer(prepared.program.l3_image, np.uint8)) > 0
