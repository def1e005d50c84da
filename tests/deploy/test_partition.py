"""The multi-chip partitioner (ita.deploy.partition): the split, where every weight goes, the
programs' collectives and the errors; numpy and the compiler only (the cluster run is in
tests/cluster/test_multichip.py)."""

import numpy as np
import pytest

from ita.deploy import CompileError, RandomEncoder
from ita.deploy.partition import (
    COLLECTIVE_KINDS,
    ROW_PIECES,
    IntegerEncoderShard,
    compile_partition,
    partition,
)
from ita.golden.encoder import MINILM, EncoderShape
from verif.cluster.encoder import cluster_spec

SPEC = cluster_spec()
#: A small layer that still has several heads and FFN chunks per chip.
SMALL = EncoderShape(16, 128, 32, 4, 256)


def _layer(shape, seed=1):
    model, x = RandomEncoder(shape, seed).draw()
    return model.blocks[0], x


@pytest.mark.parametrize("chips", [1, 2, 4])
def test_split_covers_every_weight_once(chips):
    layer, _ = _layer(EncoderShape(16, *(getattr(MINILM, k) for k in "EPHF")))
    part = partition(layer, chips, SPEC)
    s = layer.shape
    assert [sh.chip for sh in part.shares] == list(range(chips))
    for field, total in (("heads", s.H), ("f_cols", s.F), ("e_cols", s.E)):
        ranges = [getattr(sh, field) for sh in part.shares]
        assert ranges[0][0] == 0 and ranges[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # disjoint
        assert len({r[1] - r[0] for r in ranges}) == 1                              # even
    # The weight matrices and biases sum to the layer's, once; only LayerNorm's per-column
    # constants are on every chip (each chip normalises whole rows).
    matrices = [sum(b for t, _d, b in sh.weights(s) if not t.startswith("ln"))
                for sh in part.shares]
    whole = (4 * s.H * s.E * s.P + 4 * s.H * (3 * s.P + s.E) + 2 * s.E * s.F
             + 4 * (s.F + s.E))
    assert sum(matrices) == whole
    assert part.blocks()[0] is layer if chips == 1 else isinstance(part.blocks()[0],
                                                                   IntegerEncoderShard)


def test_programs_hold_only_their_slices():
    layer, _ = _layer(SMALL)
    part = partition(layer, 2, SPEC)
    programs = compile_partition(part, SPEC)
    p = layer.params
    for share, program in zip(part.shares, programs, strict=True):
        l2 = program.schedule.l2
        heads = sorted(int(n[4:]) for n in l2 if n.startswith("wqkv"))
        assert heads == list(range(*share.heads))
        for h in heads:   # head h's Wq|Wk|Wv transposed, as the one-chip layout has them
            want = np.concatenate([np.asarray(w[h]).T.astype(np.int8).ravel()
                                   for w in (p.wq, p.wk, p.wv)])
            assert np.array_equal(l2[f"wqkv{h}"].data.view(np.int8), want)
        choices = program.manifest["choices"]
        for dst, w, (c0, c1), inner in (("f1", p.w1, share.f_cols, SMALL.E),
                                        ("f2", p.w2, share.e_cols, SMALL.F)):
            chunk = choices["ffn1_chunk" if dst == "f1" else "ffn2_chunk"]
            rows = []
            for j, start in enumerate(range(0, c1 - c0, chunk)):
                width = min(chunk, c1 - c0 - start)   # a chunk: its transposed rows, biases
                data = l2[f"{dst}_w{j}"].data.view(np.int8)
                rows.append(data[:width * inner].reshape(width, inner))
            assert f"{dst}_w{len(rows)}" not in l2
            assert np.array_equal(np.concatenate(rows), np.asarray(w)[:, c0:c1].T)
        kinds = [k.kind for ph in program.schedule.phases for k in ph.kernels
                 if k.kind in COLLECTIVE_KINDS]
        assert kinds.count("gather_rest") == 4 and kinds[0] == "reduce_scatter_i16"
        assert "dl_reduce_scatter_i16" in program.c_source
        assert f", {share.chip}, 2, (void *)" in program.c_source   # chip and chip count
    # The buffers the links write sit at the same L1 offsets on both chips.
    offsets = [{n: b.offset for n, b in pr.schedule.buffers.items()
                if n in ("head_acc", "head_recv", "f1", "f2")} for pr in programs]
    assert offsets[0] == offsets[1] and len(offsets[0]) == 4


def test_weights_that_do_not_fit_name_chip_tensor_and_sizes():
    layer, _ = _layer(EncoderShape(16, *(getattr(MINILM, k) for k in "EPHF")))
    small = cluster_spec().__class__(**{**SPEC.__dict__, "l2_size": SPEC.l2_data_offset
                                        + 600_000})
    with pytest.raises(CompileError) as err:
        partition(layer, 2, small)
    text = str(err.value)
    assert text.startswith("chip 0 of 2: its weights do not fit its L2: tensor w1[:, 0:768] "
                           "(384 x 768 int8, 294912 B) ends at ")
    assert text.endswith("of the 600000 B L2 data area") and "\n" not in text
    partition(layer, 4, small)   # a quarter each fits


@pytest.mark.parametrize("chips, message", [
    (5, "H=12 cannot be split evenly over 5 chips"),
    (0, "CHIPS must be a positive integer, got 0"),
    (True, "CHIPS must be a positive integer, got True"),
])
def test_bad_splits(chips, message):
    layer, _ = _layer(EncoderShape(16, *(getattr(MINILM, k) for k in "EPHF")))
    with pytest.raises(CompileError, match=message):
        partition(layer, chips, SPEC)


def test_columns_must_split_into_words():
    layer, _ = _layer(EncoderShape(16, 128, 32, 2, 68))
    with pytest.raises(CompileError, match="F=68 cannot be split evenly over 2 chips in "
                                           "multiples of 4"):
        partition(layer, 2, SPEC)


def test_compile_errors_name_the_chip():
    layer, _ = _layer(SMALL)
    part = partition(layer, 2, SPEC)
    tiny_l1 = SPEC.__class__(**{**SPEC.__dict__, "l1_size": SPEC.l1_reserved + 16384})
    with pytest.raises(CompileError, match=r"^chip 0 of 2: no tiling fits the 16384 B L1 arena"):
        compile_partition(part, tiny_l1)


def test_gathers_go_in_pieces_of_a_row_per_core():
    """S=64 on two chips: 32 rows each, normalised and sent in ROW_PIECES pieces of at least
    a row per core; each FFN chunk is sent once it is in place, before the final receive."""
    layer, _ = _layer(EncoderShape(64, 128, 32, 4, 256))
    part = partition(layer, 2, SPEC)
    program = compile_partition(part, SPEC)[1]
    kernels = [k for ph in program.schedule.phases for k in ph.kernels]
    names = [k.name for k in kernels]
    sends = [k for k in kernels if k.name == "send_ln1"]
    pieces = min(ROW_PIECES, 32 // SPEC.cores)
    step = 32 // pieces
    assert pieces > 1 and len(sends) == pieces and all(k.args[3] == step * 128 for k in sends)
    assert [k.args[0].offset for k in sends] == [(32 + step * j) * 128 for j in range(pieces)]
    chunks = 256 // 2 // program.manifest["choices"]["ffn1_chunk"]
    assert names.count("send_f1") == chunks
    assert names.index("gather_f1") > max(i for i, n in enumerate(names) if n == "send_f1")
    rest = kernels[names.index("gather_ln1")]
    assert rest.args[1:7] == (step * 128, 1, step * 128, pieces, step * 128, 32 * 128)
