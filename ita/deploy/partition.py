"""The multi-chip partitioner: one encoder layer split tensor-parallel over a ring of K chips.

:func:`partition` splits an :class:`~ita.deploy.frontend.IntegerEncoderLayer` without
duplicating a weight matrix: chip c gets the heads ``[c H/K, (c + 1) H/K)`` (their Wq, Wk,
Wv, Wo and biases), the columns ``[c F/K, (c + 1) F/K)`` of W1 and the columns
``[c E/K, (c + 1) E/K)`` of W2, each in the L2 of the chip that uses it. Each chip's share is
an :class:`IntegerEncoderShard` block, compiled by the same compiler as one chip
(:func:`ita.deploy.compile_model`: lowering, search, schedule, emission) into one program per
chip (:func:`compile_partition`). Between the engine's jobs the programs exchange over the
links (``dl_reduce_scatter_i16``, ``dl_link_open``, ``dl_link_send``, ``dl_gather_rest`` in
the deploy runtime; every gather is sent in pieces as they are computed, so the link carries
one piece while the engine or the cores compute the next):

1. after attention, a **reduce-scatter of the int16 head accumulator** by rows (each chip has
   summed its own heads; afterwards chip c holds the sum over all heads of rows
   ``[c S/K, (c + 1) S/K)``); chip c requantizes those rows (the head sum), adds the
   residual and normalises them (LayerNorm 1), and the rows of ``ln1`` are **gathered**;
2. after F1, an **all-gather of f1's column slices** (the GELU output is exact int8 per
   column, so every chip then holds the whole f1);
3. after F2, an **all-gather of f2's column slices**; chip c adds and normalises its rows
   (LayerNorm 2) and the rows of ``out`` are **gathered**, so every chip ends with the whole
   output, as the next layer needs it.

The two exchanges of the attention block (reduce-scatter, gather) are the all-reduce of the
head sum with the requantization and LayerNorm done once per row instead of on every chip;
the FFN's are the gathers of its two slices. The partial sums are int16: a head's output is
int8 and the single-chip reference sums the heads exactly (``|sum| <= 128 H``) before one
requantization, so adding the chips' int16 sums in any order gives its bits; an int8
exchange would requantize per chip and round differently.

Why W2 by columns and not by rows: the engine requantizes every job to int8, so a chip can
only produce a complete sum's requantized value. Splitting W2 by rows makes every chip's F2
a partial sum over F/K of the reduction, which would have to leave the engine as int32 to
stay bit-exact; the engine has no such output, and the same S x E int32 partials would cost
twice the link bytes of gathering f1 (an all-reduce sends 2 (K - 1) / K of its 4 S E bytes,
the all-gather (K - 1) / K of S F = 4 S E). See docs/multichip.md.

When a chip's share does not fit, :class:`~ita.deploy.ir.CompileError` names the chip, the
tensor and the sizes: the partitioner checks the weights against each chip's L2 before
compiling, and the compiler's own errors (L1, L2 layout) come prefixed with the chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ita.cluster_config import DEFAULT

from . import lower as _lower
from .cost import KERNEL_COSTS
from .emit import compile_model
from .frontend import IntegerEncoderLayer, IntegerModel
from .ir import CompileError, Kernel, L2Ref, Ref, pad

__all__ = ["ChipShare", "Partition", "IntegerEncoderShard", "partition", "compile_partition",
           "COLLECTIVE_KINDS", "link_cycles_per_byte"]

#: Kernel kinds that move data over the links (their cycles are the all-reduce time).
COLLECTIVE_KINDS = ("reduce_scatter_i16", "link_open", "link_send", "gather_rest")
#: At most this many pieces of a chip's rows of ln1 and out are normalised and sent one after
#: the other (the send of one overlaps the LayerNorm of the next); a piece has at least a row
#: per core, since the LayerNorm kernel shares rows among the cores.
ROW_PIECES = 2


def link_cycles_per_byte(cluster=DEFAULT):
    """Cycles one byte takes over a link of ``cluster`` (the cost model's collective rate)."""
    return 1.0 / cluster.link_bytes_per_cycle


# A collective's cost per byte it waits for, on one core (kernel_cycles divides by cores);
# the handshake and the queuing of a send cost the cores next to nothing.
for _kind in ("reduce_scatter_i16", "gather_rest"):
    KERNEL_COSTS[_kind] = DEFAULT.cores * link_cycles_per_byte()
KERNEL_COSTS["link_open"] = KERNEL_COSTS["link_send"] = 0.0
KERNEL_COSTS["head_requant"] = KERNEL_COSTS["head_final"]


@dataclass(frozen=True)
class ChipShare:
    """What chip ``chip`` of ``chips`` computes: a range of heads and two column slices."""

    chip: int
    chips: int
    heads: tuple          #: (first, end) head indices
    f_cols: tuple         #: (first, end) columns of W1 / f1
    e_cols: tuple         #: (first, end) columns of W2 / f2

    def weights(self, shape):
        """(tensor, description, bytes) of the chip's weight slices (int8, biases int32)."""
        E, P, F = shape.E, shape.P, shape.F
        h0, h1 = self.heads
        f0, f1 = self.f_cols
        e0, e1 = self.e_cols
        heads = h1 - h0
        return [
            (f"wq,wk,wv[{h0}:{h1}]", f"3 x {heads} x {E} x {P} int8", 3 * heads * E * P),
            (f"wo[{h0}:{h1}]", f"{heads} x {P} x {E} int8", heads * P * E),
            (f"bq,bk,bv,bo[{h0}:{h1}]", f"{heads} x ({3 * P} + {E}) int32",
             4 * heads * (3 * P + E)),
            (f"w1[:, {f0}:{f1}]", f"{E} x {f1 - f0} int8", E * (f1 - f0)),
            (f"b1[{f0}:{f1}]", f"{f1 - f0} int32", 4 * (f1 - f0)),
            (f"w2[:, {e0}:{e1}]", f"{F} x {e1 - e0} int8", F * (e1 - e0)),
            (f"b2[{e0}:{e1}]", f"{e1 - e0} int32", 4 * (e1 - e0)),
            ("ln1,ln2 gamma,beta", f"2 x {E} x (int8 + int32)", 2 * 5 * E),
        ]


@dataclass(frozen=True)
class Partition:
    """The plan: one share per chip and the blocks the compiler takes."""

    layer: IntegerEncoderLayer
    shares: tuple         #: ChipShare per chip

    @property
    def chips(self):
        return len(self.shares)

    def blocks(self):
        """Per chip the block to compile: the layer itself on one chip, else its shard."""
        if self.chips == 1:
            return [self.layer]
        return [IntegerEncoderShard(self.layer, s) for s in self.shares]

    def link_bytes(self):
        """Bytes each chip sends over its link per layer: the int16 reduce-scatter, the
        gathers of ln1's rows, f1's and f2's columns and out's rows."""
        k, s = self.chips, self.layer.shape
        return (k - 1) * (2 * s.S * s.E + s.S * s.E + s.S * s.F + s.S * s.E + s.S * s.E) // k


@dataclass(frozen=True)
class IntegerEncoderShard:
    """Chip ``share.chip``'s part of an encoder layer (see the module docstring): its input,
    ``out`` and the intermediates it names are the whole layer's, bit for bit."""

    kind: ClassVar[str] = "encoder_shard"
    #: The tensors every chip holds whole (attn, add1 and add2 only in its own rows).
    INTERMEDIATES: ClassVar[tuple] = ("ln1", "f1", "f2")

    layer: IntegerEncoderLayer
    share: ChipShare

    @property
    def shape(self):
        return self.layer.shape

    @property
    def input(self):
        return self.layer.input

    def tensor(self, name):
        return self.layer.tensor(name)

    @property
    def macs(self):
        s, sh = self.shape, self.share
        heads = sh.heads[1] - sh.heads[0]
        return (heads * (4 * s.S * s.E * s.P + 2 * s.S * s.S * s.P)
                + s.S * s.E * (sh.f_cols[1] - sh.f_cols[0])
                + s.S * s.F * (sh.e_cols[1] - sh.e_cols[0]))


def _split(n, k, what, quantum=1):
    if n % (k * quantum):
        unit = f" in multiples of {quantum}" if quantum > 1 else ""
        raise CompileError(f"{what}={n} cannot be split evenly over {k} chips{unit}")
    step = n // k
    return [(c * step, (c + 1) * step) for c in range(k)]


def partition(model, chips, spec) -> Partition:
    """Split one encoder layer (an IntegerEncoderLayer or a one-block IntegerModel) over
    ``chips`` chips of ``spec`` each; CompileError (one line) when it cannot."""
    blocks = model.blocks if isinstance(model, IntegerModel) else (model,)
    if len(blocks) != 1 or not isinstance(blocks[0], IntegerEncoderLayer):
        raise CompileError("the partitioner takes one encoder layer")
    layer = blocks[0]
    if isinstance(chips, bool) or not isinstance(chips, (int, np.integer)) or chips < 1:
        raise CompileError(f"CHIPS must be a positive integer, got {chips!r}")
    s = layer.shape
    heads = _split(s.H, chips, "H")
    # Slices of f1 and f2 are gathered as rows of whole words, and the head accumulator's
    # chunks are whole groups of four (the int16 pair layout of the head sum).
    f_cols = _split(s.F, chips, "F", 4)
    e_cols = _split(s.E, chips, "E", 4)
    _split(s.S, chips, "S")   # the rows each chip normalises
    shares = tuple(ChipShare(c, chips, heads[c], f_cols[c], e_cols[c]) for c in range(chips))
    room = spec.l2_size - spec.l2_data_offset
    for share in shares:
        at = 0
        for tensor, sizes, size in share.weights(s):
            at += size
            if at > room:
                raise CompileError(
                    f"chip {share.chip} of {chips}: its weights do not fit its L2: tensor "
                    f"{tensor} ({sizes}, {size} B) ends at {at} B of the {room} B L2 data area")
    return Partition(layer, shares)


def compile_partition(part: Partition, spec, *, probes=("out",), **forced):
    """One program per chip, each by :func:`ita.deploy.compile_model`; CompileError names the
    chip when one does not compile, or when the chips' buffers that the links write differ."""
    programs = []
    for c, block in enumerate(part.blocks()):
        try:
            programs.append(compile_model(IntegerModel((block,), f"encoder_chip{c}"), spec,
                                          probes=probes, **forced))
        except CompileError as exc:
            raise CompileError(f"chip {c} of {part.chips}: {exc}") from None
    shared = _remote_targets(programs[0])
    for c, program in enumerate(programs[1:], 1):
        if _remote_targets(program) != shared:
            raise CompileError(f"chip {c} of {part.chips}: the buffers the links write are not "
                               f"where chip 0 has them ({_remote_targets(program)} vs {shared})")
    return programs


def _remote_targets(program):
    """(buffer, offset, size) of every L1 buffer and L2 slot a neighbour writes into."""
    sch = program.schedule
    names = {a.buffer for ph in sch.phases for k in ph.kernels if k.kind in COLLECTIVE_KINDS
             for a in k.args if isinstance(a, Ref)}
    l1 = tuple(sorted((n, sch.buffers[n].offset, sch.buffers[n].reach) for n in names))
    l2 = tuple(sorted((n, t.offset, t.size) for n, t in sch.l2.items() if n == "link_token"))
    return l1 + l2


# --- lowering ------------------------------------------------------------------------------


class _ShardLowering(_lower._EncoderLowering):
    """The encoder lowering restricted to one chip's share, with the collectives between."""

    def __init__(self, block: IntegerEncoderShard, spec, tiling, probes):
        super().__init__(block.layer, spec, tiling, probes)
        self.share = block.share

    def lower(self):
        s, p, cfg, sh = self.shape, self.p, self.cfg, self.share
        S, E, P, H, F = s.S, s.E, s.P, s.H, s.F
        m = cfg.M
        Sp, Ep, Pp = pad(S, m), pad(E, m), pad(P, m)
        me, k = sh.chip, sh.chips
        self.slot("link_token", "output", 16)
        token = L2Ref("link_token")

        self.buf("x", Sp * Ep)
        self.load("x", _lower.Dma(True, self.slot("x", "input", S * E), "x", S * E))
        self.out.inputs["x"] = _lower.Io("x", S, E, E)
        for ln in ("ln1", "ln2"):
            gamma, beta = getattr(p, f"{ln}_gamma"), getattr(p, f"{ln}_beta")
            self.buf(f"{ln}_gamma", pad(E, 4))
            self.buf(f"{ln}_beta", 4 * E)
            self.load(f"{ln}_gamma", _lower.Dma(True, self.const(
                f"{ln}_gamma", pad(E, 4), lambda gamma=gamma: _lower._i8(gamma)),
                f"{ln}_gamma", pad(E, 4)))
            self.load(f"{ln}_beta", _lower.Dma(True, self.const(
                f"{ln}_beta", 4 * E, lambda beta=beta: _lower._i32(beta)), f"{ln}_beta", 4 * E))

        self._attention(S, E, P, H, Sp, Ep, Pp, sum_heads="partial", heads=range(*sh.heads))
        # The chips' head sums meet in a reduce-scatter by rows: chip me then requantizes,
        # adds and normalises its S / K rows, and the rows of ln1 are gathered.
        rows = S // k
        chunk = rows * E
        r0 = me * chunk
        recv = self.buf("head_recv", 2 * chunk * (k - 1))
        self.op(Kernel("reduce_scatter_attn", "reduce_scatter_i16",
                       (Ref("head_acc", 0, "int16_t"), Ref(recv, 0, "int16_t"), S * E, me, k,
                        token),
                       reads=("head_acc",), writes=("head_acc", recv),
                       elements=(k - 1) * 2 * chunk))
        self.op(Kernel("head_sum", "head_requant",
                       (Ref("head_acc", 2 * r0, "int16_t"), Ref("attn", r0), chunk,
                        *_lower._rq(p.rq_sum)),
                       reads=("head_acc",), writes=("attn",), elements=chunk))
        self.buf("add1", S * E)
        self.buf("ln1", S * E)
        self._normalise_and_gather("ln1", "x", "attn", "add1", "ln1", p.add1, rows, token,
                                   "attention")

        Fp = pad(F, m)
        f0, f1 = sh.f_cols
        e0, e1 = sh.e_cols
        self.buf("f1", Sp * Fp)
        self._gathered_ffn("f1", "ln1", p.w1, p.b1, E, F, (f0, f1), self.fc,
                           _lower._rq(np.asarray(p.rq_ffn)[0]), token, activation=s.activation)
        self.buf("f2", S * E if Ep == E else Sp * Ep)
        self._gathered_ffn("f2", "f1", p.w2, p.b2, F, E, (e0, e1), self.ec,
                           _lower._rq(np.asarray(p.rq_ffn)[1]), token)

        residual = "ln1"
        if self.spill:
            self.slot("ln1_spill", "spill", S * E)
            self.store("ln1", _lower.Dma(False, "ln1_spill", "ln1", S * E))
            residual = self.buf("ln1_back", S * E)
            self.load(residual, _lower.Dma(True, "ln1_spill", residual, S * E))
        self.buf("add2", S * E)
        self.buf("out", S * E)
        self._normalise_and_gather("ln2", residual, "f2", "add2", "out", p.add2, rows, token,
                                   "ffn2")
        for name in self.probes:
            cols, pitch = (F, Fp) if name == "f1" else (E, E)
            size = S * pitch
            self.slot(f"result_{name}", "output", size)
            self.store(name, _lower.Dma(False, f"result_{name}", name, size))
            self.out.outputs[name] = _lower.Io(f"result_{name}", S, cols, pitch)
        return self.out


    def _rows_add_layernorm(self, ln, x, y, total, dst, add_rq, r0, rows, stage="attention"):
        """The residual add and LayerNorm of ``rows`` rows from element ``r0`` on."""
        kernel = self._add_layernorm(ln, x, y, total, dst, add_rq, stage=stage)
        args = list(kernel.args)
        for i in range(4):   # x, y, the sum, the result: the chip's rows
            args[i] = Ref(args[i].buffer, r0)
        args[4] = rows
        kernel.args, kernel.elements = tuple(args), rows * self.shape.E
        return kernel

    def _normalise_and_gather(self, ln, x, y, total, dst, add_rq, rows, token, stage):
        """The residual add and LayerNorm of this chip's ``rows`` rows into ``dst``, in
        pieces, each sent on as soon as it is done; then the other chips' rows."""
        E, me, k = self.shape.E, self.share.chip, self.share.chips
        cores = self.spec.cores
        pieces = min(ROW_PIECES, rows // cores) if rows % cores == 0 else 1
        pieces = max(1, pieces)
        while rows % pieces:
            pieces -= 1
        step = rows // pieces
        self.op(self._open(dst, token, stage))
        for j in range(pieces):
            r0 = (me * rows + j * step) * E
            self.op(self._rows_add_layernorm(ln, x, y, total, dst, add_rq, r0, step,
                                             stage=stage))
            self.op(self._send(dst, r0, 1, step * E, step * E, stage))
        self.op(Kernel(f"gather_{dst}", "gather_rest",
                       (Ref(dst), step * E, 1, step * E, pieces, step * E, rows * E, me, k),
                       reads=(dst,), writes=(dst,), elements=(k - 1) * rows * E, stage=stage))

    def _gathered_ffn(self, dst, src, w, b, inner, cols, span, chunk, rq, token,
                      activation="identity"):
        """This chip's columns ``span`` of an FFN GEMM, each chunk sent on once it is in
        ``dst``, then the other chips' columns."""
        S, m = self.shape.S, self.cfg.M
        me, k = self.share.chip, self.share.chips
        c0, c1 = span
        pitch = pad(cols, m)
        # The receivers count pieces of one width; a slice of uneven chunks goes at once.
        even = (c1 - c0) % chunk == 0
        stage = "ffn1" if dst == "f1" else "ffn2"
        self.op(self._open(dst, token, stage))

        def send(col, width):
            if even:
                self.op(self._send(dst, c0 + col, S, width, pitch, stage))
        self._ffn_gemm(dst, src, np.asarray(w)[:, c0:c1], np.asarray(b)[c0:c1], inner,
                       c1 - c0, chunk, rq, activation=activation, col0=c0, dst_cols=cols,
                       on_chunk=send)
        if not even:
            self.op(self._send(dst, c0, S, c1 - c0, pitch, stage))
        piece, pieces = (chunk, (c1 - c0) // chunk) if even else (c1 - c0, 1)
        self.op(Kernel(f"gather_{dst}", "gather_rest",
                       (Ref(dst), pitch, S, piece, pieces, piece, c1 - c0, me, k),
                       reads=(dst,), writes=(dst,), elements=(k - 1) * S * (c1 - c0),
                       stage=stage))

    def _open(self, buffer, token, stage):
        """The handshake before the first send into the neighbours' ``buffer``: from here on
        this chip's ``buffer`` is live and the previous chip may write it."""
        return Kernel(f"open_{buffer}", "link_open", (self.share.chip, self.share.chips, token),
                      reads=(), writes=(buffer,), elements=0, stage=stage)

    def _send(self, buffer, offset, rows, cols, pitch, stage):
        """Queue a block of this chip's ``buffer`` to the next chip (core 0, no wait)."""
        return Kernel(f"send_{buffer}", "link_send", (Ref(buffer, offset), pitch, rows, cols),
                      reads=(buffer,), writes=(), elements=0, stage=stage)


def _shard_tilings(block: IntegerEncoderShard, spec, *, fc=None, ec=None):
    s, sh, m = block.shape, block.share, spec.config.M
    _lower._check_shape(s, spec.config)
    for f_chunk in [fc] if fc else _lower.chunk_candidates(sh.f_cols[1] - sh.f_cols[0], m):
        for e_chunk in [ec] if ec else _lower.chunk_candidates(sh.e_cols[1] - sh.e_cols[0], m):
            for spill in (False, True):
                yield _lower.EncoderTiling(f_chunk, e_chunk, spill)


def _lower_shard(block, spec, tiling, probes=("out",)):
    unknown = [n for n in probes if n != "out" and n not in block.INTERMEDIATES]
    if unknown:
        raise CompileError(f"unknown tensor {unknown[0]!r} of {block.kind}")
    return _ShardLowering(block, spec, tiling, probes).lower()


_lower.LOWERINGS[IntegerEncoderShard] = _lower_shard
_lower.TILINGS[IntegerEncoderShard] = _shard_tilings
