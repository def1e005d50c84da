"""The deploy compiler without simulation: tiling, phases, L1 plan, L2 image, C, errors."""

import numpy as np
import pytest

from ita.config import DEFAULT_CONFIG
from ita.deploy import ClusterSpec, CompileError, RandomEncoder, compile_model, layer_macs, plan
from ita.deploy.allocate import allocate
from ita.deploy.ir import Buffer
from ita.deploy.lower import EncoderTiling, lower
from ita.deploy.schedule import build_phases
from ita.golden.encoder import MINILM, MOBILEBERT, EncoderShape
from verif.deploy import expected_tensors, self_checking

TINY = EncoderShape(64, 64, 32, 2, 128)


def _model(shape, seed):
    return RandomEncoder(shape, seed).integer_model()


@pytest.fixture(scope="module", params=["tiny", "mobilebert", "minilm"])
def planned(request):
    shape = {"tiny": TINY, "mobilebert": MOBILEBERT, "minilm": MINILM}[request.param]
    return shape, plan(_model(shape, 3), ClusterSpec())


def _live_together(a, b):
    return a.first <= b.last and b.first <= a.last


def test_live_buffers_never_overlap_and_stay_in_the_arena(planned):
    _, schedule = planned
    spec = schedule.spec
    buffers = [b for b in schedule.buffers.values() if not b.parent]
    for b in buffers:
        assert b.offset % spec.align == 0, b.name
        assert b.offset + b.reach <= spec.arena_bytes, b.name
    for lane in (b for b in schedule.buffers.values() if b.parent):
        parent = schedule.buffers[lane.parent]
        assert lane.offset == parent.offset + lane.lane_offset, lane.name
        assert lane.offset + lane.reach <= parent.offset + parent.reach, lane.name
        assert parent.first <= lane.first and lane.last <= parent.last, lane.name
        for other in schedule.buffers.values():
            if other is not lane and other.parent == lane.parent \
                    and other.lane_offset == lane.lane_offset:
                assert not _live_together(lane, other), (lane.name, other.name)
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, \
                    f"{a.name} and {b.name} overlap while both are live"


def test_every_job_reads_loaded_data_and_has_aligned_pointers(planned):
    _, schedule = planned
    width = schedule.slot_width
    for ph in schedule.phases:
        if not ph.job:
            continue
        for ref in ph.job.pointers.values():
            b = schedule.buffers[ref.buffer]
            # lanes of an interleaved Wo^T are word-aligned (the wide port's requirement)
            align = 4 if b.parent else schedule.spec.config.M
            assert (b.offset + ref.offset) % align == 0, ref
            assert b.first // width < ph.index <= b.last // width or b.first // width == ph.index
        for name in ph.job.reads:
            loads = [p.index for p in schedule.phases for d in p.loads if d.buffer == name]
            if loads:  # loaded in an earlier phase, whose end waits for the DMA
                assert max(loads) < ph.index


def test_dma_transfers_stay_inside_their_buffer_and_l2_tensor(planned):
    _, schedule = planned
    for ph in schedule.phases:
        for d in ph.loads + ph.stores:
            b = schedule.buffers[d.buffer]
            stride = d.l1_stride if d.rows > 1 else d.row_bytes
            assert d.l1_offset + stride * (d.rows - 1) + d.row_bytes <= b.size, d
            l2_bytes = schedule.l2[d.l2].size
            l2_stride = d.l2_stride if d.rows > 1 else d.row_bytes
            assert d.l2_offset + l2_stride * (d.rows - 1) + d.row_bytes <= l2_bytes, d
            assert d.row_bytes % 4 == 0


def test_jobs_cover_the_layer_macs(planned):
    shape, schedule = planned
    macs = sum(ph.job.macs for ph in schedule.phases if ph.job)
    assert macs == layer_macs(shape)
    assert layer_macs(MOBILEBERT) == 4 * (4 * 128 * 128 * 32 + 2 * 128 * 128 * 32) \
        + 2 * 128 * 128 * 512


def test_weights_are_double_buffered():
    """Consecutive heads' weights live at the same time (one loads while the other is used)."""
    schedule = plan(_model(MOBILEBERT, 1), ClusterSpec())
    w0, w1 = schedule.buffers["w_head0"], schedule.buffers["w_head1"]
    assert w0.first <= w1.last and w1.first <= w0.last
    assert w0.offset != w1.offset
    loads = {d.buffer: ph.index for ph in schedule.phases for d in ph.loads}
    jobs = {ph.job.name: ph.index for ph in schedule.phases if ph.job}
    assert loads["w_head1"] == jobs["attention head 0"]


def test_forced_chunks_give_one_job_per_chunk():
    schedule = plan(_model(TINY, 1), ClusterSpec(), fc=64, ec=32)
    names = [ph.job.name for ph in schedule.phases if ph.job]
    assert names == ["attention head 0", "attention head 1", "f1 chunk 0", "f1 chunk 1",
                     "f2 chunk 0", "f2 chunk 1"]
    assert schedule.choices["ffn1_chunk"] == 64 and schedule.choices["ffn2_chunk"] == 32


def test_small_l1_fails_naming_the_tensor_and_sizes():
    spec = ClusterSpec(l1_size=128 * 1024)
    with pytest.raises(CompileError) as info:
        plan(_model(MINILM, 1), spec)
    message = str(info.value)
    assert "\n" not in message
    assert "cannot place tensor" in message and "L1 arena" in message
    assert f"{spec.arena_bytes} B" in message


def test_shape_errors_are_one_line():
    model, x = RandomEncoder(TINY, 1).draw()
    program = compile_model(model, ClusterSpec())
    with pytest.raises(ValueError, match=r"x must have shape \(64, 64\)"):
        self_checking(program, {"x": x[:, :32]}, {"out": np.zeros((64, 64), np.int8)},
                      ClusterSpec())
    bad = EncoderShape(64, 96, 32, 2, 128)
    (layer,) = model.blocks
    with pytest.raises(CompileError, match="multiple of the tile edge"):
        plan(type(layer)(bad, layer.params), ClusterSpec())


def test_small_l2_fails():
    with pytest.raises(CompileError, match="B of L2 data"):
        plan(_model(MINILM, 1), ClusterSpec(l2_size=1024 * 1024))


def test_program_has_no_activations_and_names_its_io():
    """The image holds the weights and zeros where the input and the outputs go; the
    manifest says where those are."""
    model, x = RandomEncoder(TINY, 2).draw()
    program = compile_model(model, ClusterSpec(), probes=("ln1", "out"))
    c = program.c_source
    assert c.count("dl_ita_start(") == sum(1 for p in program.schedule.phases if p.job)
    assert "uint32_t dl_model(unsigned core)" in c and "do not edit" in c
    assert "dl_check" not in c
    manifest = program.manifest
    assert list(manifest["outputs"]) == ["ln1", "out"]
    x_slot = manifest["inputs"]["x"]
    assert (x_slot["rows"], x_slot["cols"], x_slot["pitch"]) == (TINY.S, TINY.E, TINY.E)
    assert x_slot["address"] == program.schedule.spec.l2_data_base + x_slot["offset"]
    image = np.frombuffer(program.image, np.uint8)
    assert not image[x_slot["offset"]:x_slot["offset"] + TINY.S * TINY.E].any()
    # the first head's Wq, transposed, starts its weight blob
    offset = manifest["l2"]["wqkv0"]["address"] - program.schedule.spec.l2_data_base
    wq_t = image[offset:offset + TINY.P * TINY.E].view(np.int8)
    assert np.array_equal(wq_t.reshape(TINY.P, TINY.E), model.blocks[0].params.wq[0].T)


def test_harness_fills_the_input_and_appends_the_expected_results():
    model, x = RandomEncoder(TINY, 2).draw()
    spec = ClusterSpec()
    program = compile_model(model, spec)
    expected = expected_tensors(model, x, program.manifest["outputs"], DEFAULT_CONFIG)
    checked = self_checking(program, {"x": x}, expected, spec)
    image = np.frombuffer(checked.image, np.uint8)
    slot = program.manifest["inputs"]["x"]
    got_x = image[slot["offset"]:slot["offset"] + x.size].view(np.int8).reshape(x.shape)
    assert np.array_equal(got_x, x)
    address, array = checked.expected["out"]
    start = address - spec.l2_data_base
    assert start >= len(program.image)
    assert np.array_equal(image[start:start + array.size].view(np.int8).reshape(array.shape),
                          array)
    assert f"{address:#x}u" in checked.check_source and '"out"' in checked.check_source


def test_transfers_that_share_l1_with_the_job_wait_for_its_end(planned):
    """A load may reuse the L1 of its phase's job only when the phase issues its transfers
    after the job has ended (``defer_dma``), and the generated C does so."""
    _, schedule = planned
    c = compile_model(schedule.model, ClusterSpec()).c_source
    for ph in schedule.phases:
        if not ph.job:
            continue
        job_buffers = [schedule.buffers[n] for n in ph.job.reads + ph.job.writes]
        for d in ph.loads:
            b = schedule.buffers[d.buffer]
            # other lanes of one interleaved buffer share its rows but not their bytes
            shares = [j.name for j in job_buffers
                      if b.offset < j.offset + j.size and j.offset < b.offset + b.size
                      and not (b.parent and b.parent == j.parent
                               and b.lane_offset != j.lane_offset)]
            assert not shares or (ph.defer_dma and ph.after_ita), (ph.index, d.buffer, shares)
        body = c[c.index(f"static void phase_{ph.index}(unsigned core)"):]
        body = body[:body.index("\n}\n")]
        if ph.defer_dma and (ph.loads or ph.stores):
            assert body.index("dl_ita_finish()") < body.index("dl_dma(")
        elif ph.loads or ph.stores:
            assert body.index("dl_dma(") < body.index("dl_ita_start(")


def test_minilm_spills_ln1_for_wider_f2_chunks():
    """ln1 goes to L2 after the add & norm and comes back for the last one, after the store."""
    schedule = plan(_model(MINILM, 1), ClusterSpec())
    assert schedule.choices["spill_ln1"] and schedule.choices["ffn2_chunk"] > 16
    store = [ph.index for ph in schedule.phases for d in ph.stores if d.l2 == "ln1_spill"]
    load = [ph.index for ph in schedule.phases for d in ph.loads if d.l2 == "ln1_spill"]
    assert len(store) == 1 and len(load) == 1 and store[0] < load[0]
    final = [ph.index for ph in schedule.phases
             if any(k.kind == "add_layernorm" and "ln1_back" in k.reads
                    for k in ph.kernels)]
    assert final == [load[0] + 1]


def test_heads_share_the_rows_of_wo_t():
    """P = 32 of a 64-byte row: consecutive heads' Wo^T sit in the two halves of the same
    rows (the engine masks the other half), which lets MiniLM overlap the head sum."""
    schedule = plan(_model(MINILM, 1), ClusterSpec())
    assert schedule.choices["overlap"]["attention"]
    parent = schedule.buffers["wo_t"]
    assert parent.size == MINILM.E * 64
    for h in range(MINILM.H):
        lane = schedule.buffers[f"wo_t{h}"]
        assert lane.parent == "wo_t" and lane.offset == parent.offset + 32 * (h % 2)
        (dma,) = [d for ph in schedule.phases for d in ph.loads if d.buffer == lane.name]
        assert (dma.row_bytes, dma.rows, dma.l1_stride, dma.l1_offset) == (32, MINILM.E, 64, 0)
        job = next(ph.job for ph in schedule.phases
                   if ph.job and ph.job.name == f"attention head {h}")
        assert job.pointers["WO"].buffer == lane.name


def test_a_lane_is_never_loaded_while_its_last_head_runs():
    spec = ClusterSpec()
    parent = Buffer("wo_t", 4096, 4096 + 32)
    a = Buffer("wo_t0", 4096, 4096 + 32, first=0, last=3, parent="wo_t")
    b = Buffer("wo_t1", 4064, 4064, first=2, last=5, parent="wo_t", lane_offset=32)
    c = Buffer("wo_t2", 4096, 4096 + 32, first=3, last=7, parent="wo_t")
    with pytest.raises(CompileError, match="wo_t0 and wo_t2 share a lane of wo_t"):
        allocate([parent, a, b, c], spec.arena_bytes, spec.align)
    c.first = 4
    allocate([parent, a, b, c], spec.arena_bytes, spec.align)
    assert (parent.first, parent.last) == (0, 7)
    assert (a.offset, b.offset, c.offset) == (parent.offset, parent.offset + 32, parent.offset)


def test_sequential_heads_defer_the_next_heads_load():
    """Heads that run alone (kernels after the job) load the next head after the job: beside
    the job the 51 KiB would slow the engine about threefold."""
    spec = ClusterSpec()
    (layer,) = _model(MINILM, 1).blocks
    low = lower(layer, spec, EncoderTiling(128, 32, spill_ln1=True))
    phases = build_phases(low, {"attention": False, "ffn1": False, "ffn2": True}, spec)
    heads = [ph for ph in phases if ph.job and ph.job.stage == "attention"]
    assert all(ph.after_ita and ph.defer_dma for ph in heads[:-1])
    # a deferred job holds its weights for slot 0 only: the next head's load may reuse them
    w0, w1 = low.buffers["w_head0"], low.buffers["w_head1"]
    assert w0.last < w1.first


# --- the plan interpreter (verif.deploy.execute) ----------------------------------------------


def _tiny_program(probes=("out",)):
    model, x = RandomEncoder(TINY, 5).draw()
    return compile_model(model, ClusterSpec(), probes=probes), model, x


def test_interpreted_plan_equals_the_integer_model():
    from verif.deploy.execute import check_plan

    program, model, x = _tiny_program(probes=("attn", "ln1", "f1", "out"))
    assert check_plan(program, model, x) is None


def test_interpreter_catches_a_short_transfer():
    """One row fewer of a 2-D load (head 0's Wo^T) leaves garbage in L1: a mismatch."""
    from dataclasses import replace

    from verif.deploy.execute import check_plan

    program, model, x = _tiny_program()
    phase, i = next((ph, i) for ph in program.schedule.phases
                    for i, d in enumerate(ph.loads) if d.rows > 1)
    phase.loads[i] = replace(phase.loads[i], rows=phase.loads[i].rows - 1)
    assert check_plan(program, model, x).startswith("tensor=out row=")


def test_interpreter_catches_overlapping_buffers():
    """A job's output moved onto a buffer the same phase loads: a race or a mismatch."""
    from verif.deploy.execute import ExecutionError, check_plan

    program, model, x = _tiny_program()
    schedule = program.schedule
    phase = next(ph for ph in schedule.phases if ph.job and ph.loads)
    target = schedule.buffers[phase.loads[0].buffer]
    out = schedule.buffers[phase.job.pointers["QP" if phase.job.mode == "linear" else "OUT"]
                           .buffer]
    out.offset = target.offset
    try:
        report = check_plan(program, model, x)
    except ExecutionError as exc:
        report = str(exc)
    assert report is not None and ("race" in report or report.startswith("tensor=")), report


def test_interpreter_refuses_an_access_outside_the_arena():
    from verif.deploy.execute import ExecutionError, check_plan

    program, model, x = _tiny_program()
    name = program.schedule.phases[0].loads[0].buffer
    program.schedule.buffers[name].offset = program.schedule.spec.arena_bytes - 4
    with pytest.raises(ExecutionError, match="outside the .*-byte L1 arena"):
        check_plan(program, model, x)


def test_interpreted_decoder_plan_equals_the_integer_llama_and_bites():
    """The decoder layer's plan (qkav jobs, RMSNorm, RoPE, SiLU x up, residual kernels) in
    numpy equals the integer Llama; one row short in the last residual add is a mismatch."""
    from dataclasses import replace

    from ita.deploy.frontend import RandomLlama
    from verif.deploy.execute import check_decoder_plan

    model, x = RandomLlama(seed=2).draw()
    program = compile_model(model, ClusterSpec(), probes=("out", "k_cache0", "v_cache0"))
    assert check_decoder_plan(program, model, x) is None
    kinds = {k.kind for ph in program.schedule.phases for k in ph.kernels}
    assert {"rmsnorm_wide", "rope32", "silu_mul_wide", "dequant_add32",
            "decomposed_gemm"} <= kinds
    phase, i = next((ph, i) for ph in program.schedule.phases
                    for i, k in enumerate(ph.kernels) if k.name == "residual_down")
    args = list(phase.kernels[i].args)
    args[4] -= 1                                     # rows
    phase.kernels[i] = replace(phase.kernels[i], args=tuple(args))
    rows = model.blocks[0].shape.S
    assert check_decoder_plan(program, model, x).startswith(f"tensor=out row={rows - 1} ")
