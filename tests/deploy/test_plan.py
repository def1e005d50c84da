"""The layer compiler without simulation: tiling, phases, L1 plan, L2 image, C, errors."""

import numpy as np
import pytest

from ita.deploy import ClusterSpec, CompileError, compile_layer, layer_macs, plan_layer
from ita.deploy.plan import Buffer, _Lowering, _phases, allocate
from ita.golden.encoder import MINILM, MOBILEBERT, EncoderShape, random_encoder

TINY = EncoderShape(64, 64, 32, 2, 128)


@pytest.fixture(scope="module", params=["tiny", "mobilebert", "minilm"])
def planned(request):
    shape = {"tiny": TINY, "mobilebert": MOBILEBERT, "minilm": MINILM}[request.param]
    x, params = random_encoder(shape, 3)
    return shape, plan_layer(shape, params, x, ClusterSpec())


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
            l2_bytes = len(schedule.l2[d.l2][1])
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
    x, params = random_encoder(MOBILEBERT, 1)
    schedule = plan_layer(MOBILEBERT, params, x, ClusterSpec())
    w0, w1 = schedule.buffers["w_head0"], schedule.buffers["w_head1"]
    assert w0.first <= w1.last and w1.first <= w0.last
    assert w0.offset != w1.offset
    loads = {d.buffer: ph.index for ph in schedule.phases for d in ph.loads}
    jobs = {ph.job.name: ph.index for ph in schedule.phases if ph.job}
    assert loads["w_head1"] == jobs["attention head 0"]


def test_forced_chunks_give_one_job_per_chunk():
    x, params = random_encoder(TINY, 1)
    schedule = plan_layer(TINY, params, x, ClusterSpec(), fc=64, ec=32)
    names = [ph.job.name for ph in schedule.phases if ph.job]
    assert names == ["attention head 0", "attention head 1", "f1 chunk 0", "f1 chunk 1",
                     "f2 chunk 0", "f2 chunk 1"]
    assert schedule.choices["ffn1_chunk"] == 64 and schedule.choices["ffn2_chunk"] == 32


def test_small_l1_fails_naming_the_tensor_and_sizes():
    x, params = random_encoder(MINILM, 1)
    spec = ClusterSpec(l1_size=128 * 1024)
    with pytest.raises(CompileError) as info:
        plan_layer(MINILM, params, x, spec)
    message = str(info.value)
    assert "\n" not in message
    assert "cannot place tensor" in message and "L1 arena" in message
    assert f"{spec.arena_bytes} B" in message


def test_shape_errors_are_one_line():
    x, params = random_encoder(TINY, 1)
    with pytest.raises(CompileError, match="x must have shape"):
        plan_layer(TINY, params, x[:, :32], ClusterSpec())
    bad = EncoderShape(64, 96, 32, 2, 128)
    with pytest.raises(CompileError, match="multiple of the tile edge"):
        plan_layer(bad, params, np.zeros((64, 96), np.int8), ClusterSpec())


def test_small_l2_fails():
    x, params = random_encoder(MINILM, 1)
    with pytest.raises(CompileError, match="B of L2 data"):
        plan_layer(MINILM, params, x, ClusterSpec(l2_size=1024 * 1024))


def test_generated_c_and_image():
    x, params = random_encoder(TINY, 2)
    program = compile_layer(TINY, params, x, ClusterSpec())
    c = program.c_source
    assert c.count("dl_ita_start(") == sum(1 for p in program.schedule.phases if p.job)
    assert "int dl_layer(unsigned core)" in c and "do not edit" in c
    # the expected output sits in the image where the manifest says
    entry = program.manifest["l2"]["expected_out"]
    offset = entry["address"] - 0x1C00_0000 - program.schedule.spec.l2_data_offset
    got = np.frombuffer(program.data[offset:offset + entry["bytes"]], np.int8)
    assert np.array_equal(got.reshape(TINY.S, TINY.E), program.expected["out"])
    # the first head's Wq, transposed, starts its weight blob
    entry = program.manifest["l2"]["wqkv0"]
    offset = entry["address"] - 0x1C00_0000 - program.schedule.spec.l2_data_offset
    wq_t = np.frombuffer(program.data[offset:offset + TINY.P * TINY.E], np.int8)
    assert np.array_equal(wq_t.reshape(TINY.P, TINY.E), params.wq[0].T)


def test_transfers_that_share_l1_with_the_job_wait_for_its_end(planned):
    """A load may reuse the L1 of its phase's job only when the phase issues its transfers
    after the job has ended (``defer_dma``), and the generated C does so."""
    _, schedule = planned
    x, params = random_encoder(schedule.shape, 3)
    c = compile_layer(schedule.shape, params, x, ClusterSpec()).c_source
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
    x, params = random_encoder(MINILM, 1)
    schedule = plan_layer(MINILM, params, x, ClusterSpec())
    assert schedule.choices["spill_ln1"] and schedule.choices["ffn2_chunk"] > 16
    store = [ph.index for ph in schedule.phases for d in ph.stores if d.l2 == "ln1_spill"]
    load = [ph.index for ph in schedule.phases for d in ph.loads if d.l2 == "ln1_spill"]
    assert len(store) == 1 and len(load) == 1 and store[0] < load[0]
    final = [ph.index for ph in schedule.phases
             if any(k.function == "k_add_layernorm" and "ln1_back" in k.reads
                    for k in ph.kernels)]
    assert final == [load[0] + 1]


def test_heads_share_the_rows_of_wo_t():
    """P = 32 of a 64-byte row: consecutive heads' Wo^T sit in the two halves of the same
    rows (the engine masks the other half), which lets MiniLM overlap the head sum."""
    x, params = random_encoder(MINILM, 1)
    schedule = plan_layer(MINILM, params, x, ClusterSpec())
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
    x, params = random_encoder(MINILM, 1)
    spec = ClusterSpec()
    low = _Lowering(MINILM, params, x, spec, fc=128, ec=32, causal=False, valid_keys=None,
                    debug=False, spill=True)
    low.lower()
    phases = _phases(low, {"attention": False, "ffn1": False, "ffn2": True}, spec)
    heads = [ph for ph in phases if ph.job and ph.job.stage == "attention"]
    assert all(ph.after_ita and ph.defer_dma for ph in heads[:-1])
    # a deferred job holds its weights for slot 0 only: the next head's load may reuse them
    w0, w1 = low.buffers["w_head0"], low.buffers["w_head1"]
    assert w0.last < w1.first
