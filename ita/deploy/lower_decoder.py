"""Lowering of a Llama decoder layer: engine GEMMs, the cores' integer steps between.

The layer (:class:`~ita.deploy.frontend.IntegerDecoderLayer`, the integer model of
:mod:`ita.quant.llama`) runs ``S`` new positions after ``past`` cached ones: a prefill from
an empty cache, or a decoding step (one row) against the KV cache in L2. In program order:

1. ``k_rmsnorm`` of the int32 residual rows into int8 ``n1`` (with the decomposition
   ``k_rmsnorm_wide``, which also keeps the 24-bit values);
2. per KV head K and V, per query head Q: a linear job each (or, for a decoding step, a
   ``k_gemv`` on the cores where :class:`DecoderTiling` says so). In a prefill V is
   computed *transposed* (``V^T = Wv^T n1^T``: the weights are the job's input rows and
   ``n1`` its weight rows, so the engine writes the ``vp_t`` layout A.V reads); a decoding
   step computes its one V row and writes it into column ``past`` of the cached V^T. Each
   job requantizes with one scalar; the per-output-column weight scales stay in the values;
3. with the decomposition, ``k_decomposed_gemm_ex`` after every GEMM
   (:func:`ita.golden.decoder.decomposed_gemm`): the clipped excess of the wide inputs times
   the fine weights, the saturated outputs recomputed from the wide row; int32 results, V's
   saturated to int8 in place;
4. ``k_rope`` / ``k_rope32`` on every K and Q head: the per-column scales undone, the pairs
   rotated with the compiler's Q14 cos/sin tables of the new positions, the result
   requantized to the int8 scale of QK^T; the rotated K rows land after the cached ones;
5. per query head one QKAV job (QK^T, the causal ITAmax, A.V on the rotated Q/K in memory)
   over all ``past + S`` keys; query heads of one KV group read the same K and V^T buffers
   (GQA: computed once). The new queries sit at rows ``past ..``: one row tile of the engine
   holds up to M positions, so a decoding step costs the tile of a padded row;
6. per query head the O projection and ``k_dequant_add`` (``k_dequant_add32``) of its output
   into the residual (O's per-column scales, with V's folded in by the quantiser);
7. ``k_rmsnorm`` into ``n2``, gate and up, ``k_silu_mul`` (``k_silu_mul_wide``; the sigmoid
   table in L1), down, and the last residual add into the layer's output rows.

The residual stream is int32 in L1 throughout; every engine tensor is int8 with rows padded
to the tile edge. Without the decomposition (``LlamaQuantOptions(decompose=False)``) the
kernels saturate what feeds the engine to int8 and no correction runs: the integer model
that clips. A decoding step needs the decomposition (its V row is written into the cache by
the correction kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ita.golden import decoder as dec
from ita.quant.llama import Gemm

from .cost import KERNEL_COSTS, gemm_cycles
from .frontend import IntegerDecoderLayer
from .ir import Buffer, CompileError, Dma, Io, ItaJob, Kernel, L2Tensor, Lowered, Ref, pad

__all__ = ["DecoderTiling", "FFN_CHUNK_BYTES", "chunk_width", "DECODER_KERNEL_COSTS", "GEMVS",
           "DECODE_GEMV_ON_CORES", "decoder_tilings", "lower_decoder_layer"]

#: Cycles per element on one core of the decoder kernels (``make sim TEST=kernels``: the
#: cluster's cycles per element times its 8 cores; ``gemv`` per MAC, ``decomposed_gemm``
#: per output with few corrections, as in the layer).
DECODER_KERNEL_COSTS = {"rmsnorm": 81.0, "rope": 62.0, "silu_mul": 118.0,
                        "dequant_add": 38.0, "rmsnorm_wide": 85.0, "rope32": 62.0,
                        "silu_mul_wide": 125.0, "dequant_add32": 40.0, "gemv": 0.6,
                        "gemv_u8": 0.6, "itamax": 40.0, "decomposed_gemm": 60.0}
KERNEL_COSTS.update(DECODER_KERNEL_COSTS)

#: The GEMMs of a layer that a decoding step may run on the cores instead of the engine
#: (``attention``: QK^T, ITAmax and A.V of every head).
GEMVS = ("q", "k", "v", "attention", "o", "gate", "up", "down")
#: The decoding step's default: the GEMVs the cores run (measured, docs/decoder.md).
DECODE_GEMV_ON_CORES = ()

_NO_RQ = (0, 0, 0)
#: Rows of the job's requantization table (REQUANT_* order) that QKAV uses.
_QK, _AV = 3, 4
_RQ_ROWS = 8


def _i8(a):
    return np.ascontiguousarray(np.asarray(a).astype(np.int8)).view(np.uint8).ravel()


def _words(*arrays, dtype=np.int32):
    """Arrays as consecutive little-endian rows of ``dtype`` (the kernels' constant rows)."""
    flat = np.concatenate([np.asarray(a, np.int64).ravel() for a in arrays])
    info = np.iinfo(dtype)
    if flat.size and (flat.min() < info.min or flat.max() > info.max):
        raise CompileError(f"a kernel constant leaves {np.dtype(dtype).name}")
    return np.ascontiguousarray(flat.astype(dtype)).view(np.uint8)


@dataclass(frozen=True)
class DecoderTiling:
    """``gemv``: the GEMMs (:data:`GEMVS`) a decoding step runs on the cores; ``chunk``: the
    most weight bytes of one job of gate, up and down (0: each GEMM whole), so that a layer
    whose FFN weights exceed L1 streams them in column chunks; the search still picks
    overlap per stage."""

    gemv: tuple = ()
    chunk: int = 0
    #: several steps load the weights again every step (they do not stay in L1)
    stream: bool = False
    STAGES = ("attention", "ffn")


#: Weight bytes per FFN job the search tries when the FFN's weights do not fit L1 whole.
FFN_CHUNK_BYTES = (96 * 1024, 64 * 1024, 48 * 1024, 32 * 1024)


def _chunk_candidates(block, spec):
    """0 (whole) when the largest FFN GEMM's int8 weights take at most a quarter of the
    arena, else the budgets of :data:`FFN_CHUNK_BYTES` (a reduction is never split: every
    job requantizes its int8 output)."""
    s, m = block.shape, spec.config.M
    if pad(s.F, m) * pad(s.E, m) <= spec.arena_bytes // 4:
        return (0,)
    return FFN_CHUNK_BYTES


def chunk_width(cols, inner, budget, m):
    """Output columns of one job: the widest of M's multiples, M/2 and M/4 whose int8
    weights (``inner`` padded to M) stay within ``budget`` bytes (0: all ``cols``)."""
    if not budget:
        return cols
    inner_p = pad(inner, m)
    for width in (*range(pad(cols, m), 0, -m), m // 2, m // 4):
        if width * inner_p <= budget:
            return min(width, cols)
    raise CompileError(f"no chunk of a {inner}-input GEMM fits {budget} B")


def decoder_tilings(block: IntegerDecoderLayer, spec, **forced):
    gemv = forced.pop("gemv", None)
    chunk = forced.pop("chunk", None)
    stream = forced.pop("stream", None)
    if forced:
        raise CompileError(f"the decoder layer takes no tiling choices but gemv, chunk and "
                           f"stream, got {sorted(forced)}")
    s = block.shape
    m = spec.config.M
    if s.E % 4 or s.F % 4:
        raise CompileError(f"E={s.E} and F={s.F} must be multiples of 4 (word rows)")
    if s.H % s.KV:
        raise CompileError(f"{s.H} query heads do not group over {s.KV} KV heads")
    if block.capacity > spec.config.max_keys or max(s.E, s.F) > \
            spec.config.max_inner_without_bias:
        raise CompileError(f"a cache of {block.capacity}, E={s.E}, F={s.F} exceed one engine "
                           f"job")
    if s.P % 2 or s.P > m:
        raise CompileError(f"head dimension {s.P} must be even and at most M={m}")
    if block.past and not block.model.options.decompose:
        raise CompileError("a decoding step is lowered with the decomposition only")
    if block.steps > 1 and (s.S != 1 or not block.past):
        raise CompileError("several steps are decoding steps of one row after a cache")
    if pad(block.past + s.S, m) != pad(block.T, m):
        raise CompileError(f"positions {block.past} .. {block.T - 1} cross a tile edge of the "
                           f"cache ({m}): one program per tile")
    if gemv is None:
        gemv = DECODE_GEMV_ON_CORES if s.S == 1 else ()
    gemv = tuple(gemv)
    unknown = sorted(set(gemv) - set(GEMVS))
    if unknown:
        raise CompileError(f"unknown GEMV {unknown[0]!r}; known: {', '.join(GEMVS)}")
    if gemv and s.S != 1:
        raise CompileError(f"GEMVs on the cores need one new row, the layer has {s.S}")
    chunks = _chunk_candidates(block, spec) if chunk is None else (chunk,)
    if any(chunks) and not block.model.options.decompose:
        raise CompileError("FFN column chunks are lowered with the decomposition only (its "
                           "correction writes each chunk into the whole row)")
    if stream is None:
        stream = block.steps > 1 and _weight_bytes(block) > spec.arena_bytes // 2
    for budget in chunks:
        yield DecoderTiling(tuple(g for g in GEMVS if g in gemv), budget, bool(stream))


def _weight_bytes(block):
    """Bytes of one layer's int8 weights (without padding or fine rows)."""
    L = block.layer
    return sum(np.asarray(job.w).size for job in (*L.q, *L.k, *L.v, *L.o, L.gate, L.up,
                                                   L.down))


class _DecoderLowering:
    def __init__(self, block: IntegerDecoderLayer, spec, tiling, probes):
        self.block, self.spec, self.cfg = block, spec, spec.config
        self.L, self.s = block.layer, block.shape
        self.decompose = block.model.options.decompose
        self.cores = set(tiling.gemv)
        self.chunk = tiling.chunk
        self.stream = tiling.stream
        self.probes = tuple(probes)
        self.step, self.past, self.sfx = 0, block.past, ""
        self.fine_at = {}   # weight constant -> (byte offset of its fine rows, inputs)
        self.out = Lowered()

    # --- declarations (as the encoder's lowering) ---

    def buf(self, name, size, reach=0):
        align = self.spec.align
        self.out.buffers[name] = Buffer(name, pad(size, align), pad(max(reach, size), align))
        return name

    def const(self, name, data, reach=0, streamed=True):
        """A constant in L2 loaded whole into an L1 buffer of the same name, once: the steps
        of a decoding run share it, unless the layer's weights do not stay in L1
        (:attr:`stream`): then each step loads its own (``streamed=False``: shared even
        then, as the tables of all steps' positions)."""
        buffer = self.n(name) if streamed and self.stream else name
        if buffer in self.out.buffers:
            return buffer
        if name not in self.out.l2:
            data = np.asarray(data() if callable(data) else data, np.uint8)
            self.out.l2[name] = L2Tensor(name, "const", data.size, lambda data=data: data)
        size = self.out.l2[name].size
        self.buf(buffer, size, reach)
        self.out.loads.setdefault(buffer, []).append(Dma(True, name, buffer, size))
        return buffer

    def op(self, op):
        self.out.ops.append(replace(op, step=self.step))   # the step's cycles are measured

    def kernel(self, name, kind, args, reads, writes, elements, stage):
        self.op(Kernel(name, kind, tuple(args), tuple(reads), tuple(writes), elements, stage))

    # --- the steps ---

    def weights(self, name, w_t, bias_cols, fine=None):
        """Weight rows ``w_t`` (cols, inner) int8 padded to the tile edge, then the zero bias
        of ``bias_cols`` that a job reads and, with the decomposition, the GEMM's fine rows
        (:meth:`correct`): one constant, one transfer. Returns (buffer, padded inner)."""
        m = self.cfg.M
        cols, inner = w_t.shape
        inner_p = pad(inner, m)
        wname = f"w_{name}"
        with_fine = fine is not None and self.decompose
        rows_bytes = cols * inner_p + 4 * pad(bias_cols, m)

        def data():
            rows_t = np.zeros((cols, inner_p), np.int8)
            rows_t[:, :inner] = w_t
            parts = [_i8(rows_t), np.zeros(4 * pad(bias_cols, m), np.uint8)]
            if with_fine:   # the input -> fine row map, the rows
                rows_f, w_fine = fine
                index = np.full(inner, -1, np.int64)
                index[np.asarray(rows_f)] = np.arange(len(rows_f))
                parts.append(_words(index, np.asarray(w_fine).ravel(), dtype=np.int16))
            return np.concatenate(parts)

        buffer = self.const(wname, data, reach=pad(cols, m) * inner_p, streamed=True)
        if with_fine:
            self.fine_at[buffer] = (rows_bytes, inner)
        return buffer, inner_p

    def linear(self, name, group, src, w, rq, rows, out, stage, src_offset=0, fine=None):
        """``out = requant(src @ w)`` (``w`` (inner, cols) int8) on the engine, or on the
        cores for a GEMV of ``group`` in :attr:`cores`; returns the weight buffer and its
        row pitch."""
        m = self.cfg.M
        inner, cols = w.shape
        wname, inner_p = self.weights(name, np.asarray(w).T, cols, fine)
        cols_p = pad(cols, m)
        self.buf(out, pad(rows, m) * cols_p)
        if group in self.cores:
            self.kernel(f"gemv_{name}", "gemv",
                        (Ref(src, src_offset), Ref(wname), inner_p, Ref(out), inner, cols, *rq,
                         0), (src, wname), (out,), inner * cols, stage)
        else:
            self.op(ItaJob(name, "linear", dict(S=rows, E=inner, P=cols, F=0),
                           [(*rq, 0)] + [_NO_RQ] * (_RQ_ROWS - 1),
                           {"Q_IN": Ref(src, src_offset), "WQ": Ref(wname),
                            "BQ": Ref(wname, cols * inner_p), "QP": Ref(out)},
                           reads=(src, wname), writes=(out,), macs=rows * inner * cols,
                           cycles=gemm_cycles(rows, cols, inner, self.cfg), stage=stage))
        return wname, inner_p

    def correct(self, name, job, x, wname, w_layout, y8, y8_layout, y, y_layout, rows, stage,
                x_offset=0, y_offset=0):
        """``k_decomposed_gemm_ex`` after the GEMM of ``job``: ``x`` = (buffer, wide,
        pitch), the layouts (row stride, column stride) of the weights, ``y8`` and ``y``
        (``y`` an int32 buffer, or int8 when its layout says ``wide=False``)."""
        inner, cols = job.w.shape
        x_buf, x_wide, x_pitch = x
        fine = (0, 0)
        reads = [x_buf, wname, y8]
        if wname in self.fine_at:   # in the weights' constant (:meth:`weights`)
            at, count = self.fine_at[wname]
            fine = (Ref(wname, at, "int16_t"), Ref(wname, at + 2 * count, "int16_t"))
        y_buf, y_wide, y_row, y_col = y_layout
        self.kernel(f"decomposition_{name}", "decomposed_gemm",
                    (Ref(x_buf, x_offset, "int32_t" if x_wide else "int8_t"), int(x_wide),
                     x_pitch, inner, Ref(wname), *w_layout, *fine, cols, 1, Ref(y8),
                     *y8_layout,
                     Ref(y_buf, y_offset, "int32_t" if y_wide else "int8_t"), int(y_wide),
                     y_row, y_col, rows, cols, *job.rq),
                    reads, (y_buf,), rows * cols, stage)

    def projection(self, name, group, src, job, rows, stage, src_offset=0, chunk=0):
        """A GEMM whose output the cores read next: (buffer, pitch, wide). With the
        decomposition an int32 ``<out>w`` buffer, else the engine's int8 output. ``chunk``:
        output columns per job (0: one job); each chunk's correction writes its columns of
        the int32 rows."""
        out = self.n(f"y_{name}")
        m = self.cfg.M
        x_buf, x_wide = src
        cols = job.w.shape[1]
        chunk = chunk_width(cols, job.w.shape[0], chunk, m)
        if chunk < cols:
            wide = self.buf(f"{out}w", 4 * rows * cols)
            for j, c0 in enumerate(range(0, cols, chunk)):
                c1 = min(cols, c0 + chunk)
                fine = None if job.fine is None else (job.fine[0],
                                                      np.asarray(job.fine[1])[:, c0:c1])
                part = Gemm(np.asarray(job.w)[:, c0:c1], job.rq, fine)
                part_out = self.n(f"y_{name}_c{j}")
                wname, inner_p = self.linear(f"{name}_c{j}", group, x_buf, part.w, part.rq,
                                             rows, part_out, stage, src_offset, part.fine)
                x = (f"{x_buf}w", True, job.w.shape[0]) if x_wide else (x_buf, False, inner_p)
                self.correct(f"{name}_c{j}", part, x, wname, (1, inner_p), part_out,
                             (pad(c1 - c0, m), 1), wide, (wide, True, cols, 1), rows, stage,
                             x_offset=src_offset, y_offset=4 * c0)
            return wide, cols, True
        wname, inner_p = self.linear(name, group, x_buf, job.w, job.rq, rows, out, stage,
                                     src_offset, job.fine)
        cols_p = pad(cols, m)
        if not self.decompose:
            return out, cols_p, False
        wide = self.buf(f"{out}w", 4 * rows * cols)
        x = (f"{x_buf}w", True, job.w.shape[0]) if x_wide else (x_buf, False, inner_p)
        self.correct(name, job, x, wname, (1, inner_p), out, (cols_p, 1), wide,
                     (wide, True, cols, 1), rows, stage, x_offset=src_offset)
        return wide, cols, True

    def value(self, g, rows):
        """V of KV head g into the ``vt<g>`` buffer (V^T) at columns ``past ..``."""
        m, s, b, job = self.cfg.M, self.s, self.block, self.L.v[g]
        Ep, Tp, Pp = pad(s.E, m), pad(b.T, m), pad(s.P, m)
        vt = self.buf(f"vt{g}", Pp * Tp)
        n1 = self.n("n1")
        n1w = f"{n1}w"   # its wide values (:meth:`rmsnorm`)
        if b.past == 0:   # the engine writes V^T: Wv^T as input rows, n1 as weights
            wname, _ = self.weights(f"V{g}", np.asarray(job.w).T, s.S, job.fine)
            self.op(ItaJob(f"V{g}", "linear", dict(S=s.P, E=s.E, P=s.S, F=0),
                           [(*job.rq, 0)] + [_NO_RQ] * (_RQ_ROWS - 1),
                           {"Q_IN": Ref(wname), "WQ": Ref(n1), "BQ": Ref(wname, s.P * Ep),
                            "QP": Ref(vt)},
                           reads=(n1, wname), writes=(vt,), macs=s.S * s.E * s.P,
                           cycles=gemm_cycles(s.P, s.S, s.E, self.cfg), stage="attention"))
            if self.decompose:   # in place, in the V^T layout: output (r, c) at c * Tp + r
                self.correct(f"V{g}", job, (n1w, True, s.E), wname, (1, Ep), vt, (1, Tp),
                             vt, (vt, False, 1, Tp), rows, "attention")
            return vt
        out = self.n(f"y_V{g}")
        wname, inner_p = self.linear(f"V{g}", "v", n1, job.w, job.rq, rows, out,
                                     "attention", fine=job.fine)
        self.correct(f"V{g}", job, (n1w, True, s.E), wname, (1, inner_p), out, (Pp, 1), vt,
                     (vt, False, 1, Tp), rows, "attention", y_offset=self.past)
        return vt

    def rmsnorm(self, name, src, norm, dst, stage, src_offset=0):
        s, m = self.s, self.cfg.M
        consts = self.const(f"{name}_consts", _words(norm.mult, norm.shift))
        # the cores write S rows; the engine reads whole row tiles, whose padding rows
        # never reach a valid output (they may spill over what follows)
        self.buf(dst, s.S * pad(s.E, m), reach=pad(s.S, m) * pad(s.E, m))
        if self.decompose:
            wide = self.buf(f"{dst}w", 4 * s.S * s.E)
            self.kernel(name, "rmsnorm_wide", (Ref(src, src_offset, "int32_t"), Ref(dst),
                                               pad(s.E, m),
                                          Ref(wide, 0, "int32_t"), s.S, s.E,
                                          Ref(consts, 0, "int32_t"), int(norm.eps)),
                        (src, consts), (dst, wide), s.S * s.E, stage)
            return
        self.kernel(name, "rmsnorm", (Ref(src, src_offset, "int32_t"), Ref(dst), s.S, s.E,
                                      pad(s.E, m), Ref(consts, 0, "int32_t"), int(norm.eps)),
                    (src, consts), (dst,), s.S * s.E, stage)

    def rope(self, name, src, consts, dst):
        s, m = self.s, self.cfg.M
        buf, pitch, wide = src
        Pp = pad(s.P, m)
        table = self.const(f"{name}_consts", _words(*consts))
        at = self.step * s.S * s.P   # this step's rows of the tables (P/2 int16 each)
        self.kernel("rope", "rope32" if wide else "rope",
                    (Ref(buf, 0, "int32_t" if wide else "int8_t"), pitch, Ref(dst, self.past * Pp),
                     Pp, s.S, s.P, Ref(table, 0, "int32_t"), Ref("cos", at, "int16_t"),
                     Ref("sin", at, "int16_t")),
                    (buf, table, "cos", "sin"), (dst,), s.S * s.P, "attention")

    def dequant_add(self, name, residual, y, consts, dst, stage, residual_offset=0,
                    dst_offset=0):
        s = self.s
        buf, pitch, wide = y
        table = self.const(f"{name}_consts", _words(*consts))
        if dst not in self.out.buffers:
            self.buf(dst, 4 * s.S * s.E)
        self.kernel(name.rstrip("0123456789"), "dequant_add32" if wide else "dequant_add",
                    (Ref(residual, residual_offset, "int32_t"),
                     Ref(buf, 0, "int32_t" if wide else "int8_t"), pitch,
                     Ref(dst, dst_offset, "int32_t"),
                     s.S, s.E, Ref(table, 0, "int32_t")),
                    (residual, buf, table), (dst,), s.S * s.E, stage)

    def attend(self, h, g):
        """A decoding step's attention of query head h on the cores: the row of logits
        against the T keys (``k_gemv``), its ITAmax (``k_itamax``), the probabilities times
        V (``k_gemv_u8``), into row ``past`` of ``o<h>``, where the QKAV job puts it."""
        s, m, b, L = self.s, self.cfg.M, self.block, self.L
        Tp, Pp, T = pad(b.T, m), pad(s.P, m), self.past + s.S
        logits, probs = self.buf(self.n(f"logits{h}"), Tp), self.buf(self.n(f"probs{h}"), Tp)
        o, qr = self.buf(self.n(f"o{h}"), Tp * Pp), self.n(f"qr{h}")
        self.kernel(f"qk_{h}", "gemv", (Ref(qr, self.past * Pp), Ref(f"kr{g}"), Pp,
                                        Ref(logits), s.P, T, *L.rq_qk[h], 0),
                    (qr, f"kr{g}"), (logits,), s.P * T, "attention")
        self.kernel(f"softmax_{h}", "itamax", (Ref(logits), Ref(probs, 0, "uint8_t"), 1, T, T,
                                               0, int(L.logit_frac[h])),
                    (logits,), (probs,), T, "attention")
        self.kernel(f"av_{h}", "gemv_u8", (Ref(probs, 0, "uint8_t"), Ref(f"vt{g}"), Tp,
                                           Ref(o, self.past * Pp), T, s.P, *L.rq_av[h], 0),
                    (probs, f"vt{g}"), (o,), s.P * T, "attention")

    def cache(self):
        """The decoding step's KV cache: L2 tensors of the block's capacity, the past rows
        loaded into ``kr<g>`` / ``vt<g>``, the new rows stored back in place."""
        s, m, b, out = self.s, self.cfg.M, self.block, self.out
        Pp, Tp, Cp = pad(s.P, m), pad(b.T, m), pad(b.capacity, m)
        for g in range(s.KV):
            k, v = f"k_cache{g}", f"v_cache{g}"
            out.l2[k] = L2Tensor(k, "input", b.capacity * Pp)
            out.l2[v] = L2Tensor(v, "input", s.P * Cp)
            out.inputs[k] = Io(k, b.past, s.P, Pp)
            out.inputs[v] = Io(v, s.P, b.past, Cp)
            out.loads[f"kr{g}"] = [Dma(True, k, f"kr{g}", b.past * Pp)]
            out.loads[f"vt{g}"] = [Dma(True, v, f"vt{g}", Tp, s.P, Cp, Tp)]
            out.stores[f"kr{g}"] = [Dma(False, k, f"kr{g}", (b.T - b.past) * Pp,
                                        l2_offset=b.past * Pp, l1_offset=b.past * Pp)]
            out.stores[f"vt{g}"] = [Dma(False, v, f"vt{g}", Tp, s.P, Cp, Tp)]

    def n(self, name):
        """The name of a buffer of the current step (the steps of a run each have theirs)."""
        return name + self.sfx

    def lower(self):
        s, b, out = self.s, self.block, self.out
        S, E, P = s.S, s.E, s.P
        rows = S * b.steps
        self.buf("x", 4 * rows * E)
        out.l2["x"] = L2Tensor("x", "input", 4 * rows * E)
        out.loads["x"] = [Dma(True, "x", "x", 4 * rows * E)]
        out.inputs["x"] = Io("x", rows, 4 * E, 4 * E)
        cos, sin = dec.rope_table(b.model.rope_theta, P, b.past + np.arange(rows))
        self.const("cos", _words(cos, dtype=np.int16), streamed=False)
        self.const("sin", _words(sin, dtype=np.int16), streamed=False)
        if b.past:
            self.cache()
        self.buf("out", 4 * rows * E)
        for step in range(b.steps):
            self.step, self.past = step, b.past + step * S
            self.sfx = f"_s{step}" if b.steps > 1 else ""
            self.layer(4 * step * S * E)
        for name in self.probes:
            self.probe(name)
        return out

    def layer(self, x_offset):
        """One step: the layer on its S rows of ``x`` (from byte ``x_offset``)."""
        s, L, m, b = self.s, self.L, self.cfg.M, self.block
        S, P, H, KV, F = s.S, s.P, s.H, s.KV, s.F
        T = self.past + S
        Tp, Pp, Fp = pad(b.T, m), pad(P, m), pad(F, m)
        n = self.n
        n1 = (n("n1"), self.decompose)

        self.rmsnorm("rmsnorm1", "x", L.norm1, n("n1"), "attention", x_offset)
        G = H // KV
        keys = []
        for g in range(KV):
            self.buf(f"kr{g}", Tp * Pp)
            keys.append(self.projection(f"K{g}", "k", n1, L.k[g], S, "attention"))
            self.value(g, S)
        queries = [self.projection(f"Q{h}", "q", n1, L.q[h], S, "attention") for h in range(H)]
        for g in range(KV):
            self.rope(f"rope_k{g}", keys[g], (L.k_rope[0][g], L.k_rope[1][g]), f"kr{g}")
        for h in range(H):
            self.buf(n(f"qr{h}"), Tp * Pp)
            self.rope(f"rope_q{h}", queries[h], (L.q_rope[0][h], L.q_rope[1][h]), n(f"qr{h}"))
        for h in range(H):
            g = h // G
            if "attention" in self.cores:
                self.attend(h, g)
                continue
            a, o = self.buf(n(f"a{h}"), Tp * Tp), self.buf(n(f"o{h}"), Tp * Pp)
            rq = [_NO_RQ] * _RQ_ROWS
            rq[_QK], rq[_AV] = (*L.rq_qk[h], 0), (*L.rq_av[h], 0)
            self.op(ItaJob(f"attention head {h}", "qkav", dict(S=T, E=0, P=P, F=0), rq,
                           {"QP": Ref(n(f"qr{h}")), "KP": Ref(f"kr{g}"), "VP": Ref(f"vt{g}"),
                            "A": Ref(a), "O": Ref(o)},
                           reads=(n(f"qr{h}"), f"kr{g}", f"vt{g}"), writes=(a, o),
                           causal=True, logit_frac=L.logit_frac[h], macs=2 * S * T * P,
                           cycles=gemm_cycles(T, T, P, self.cfg) + gemm_cycles(T, P, T,
                                                                                self.cfg)))
        residual, at = "x", x_offset
        for h in range(H):
            y = self.projection(f"O{h}", "o", (n(f"o{h}"), False), L.o[h], S, "attention",
                                src_offset=self.past * Pp)
            nxt = n("mid") if h == H - 1 else n(f"res{h}")
            self.dequant_add(f"residual_o{h}", residual, y, (L.o_add[0][h], L.o_add[1][h]),
                             nxt, "attention", at)
            residual, at = nxt, 0
        self.rmsnorm("rmsnorm2", n("mid"), L.norm2, n("n2"), "ffn")
        n2 = (n("n2"), self.decompose)
        g_buf, g_pitch, wide = self.projection("gate", "gate", n2, L.gate, S, "ffn",
                                               chunk=self.chunk)
        u_buf, _, _ = self.projection("up", "up", n2, L.up, S, "ffn", chunk=self.chunk)
        table = self.const("sigmoid", _words(dec.sigmoid_table()), streamed=False)
        gated = self.const("silu_consts", _words(*L.gated))
        h_buf = self.buf(n("h"), S * Fp, reach=pad(S, m) * Fp)   # as n1 (rmsnorm)
        consts = (Ref(gated, 0, "int32_t"), Ref(table, 0, "int32_t"))
        if wide:
            hw = self.buf(f"{h_buf}w", 4 * S * F)
            self.kernel("silu_mul", "silu_mul_wide",
                        (Ref(g_buf, 0, "int32_t"), Ref(u_buf, 0, "int32_t"), g_pitch,
                         Ref(h_buf), Fp, Ref(hw, 0, "int32_t"), S, F, *consts),
                        (g_buf, u_buf, gated, table), (h_buf, hw), S * F, "ffn")
        else:
            self.kernel("silu_mul", "silu_mul", (Ref(g_buf), Ref(u_buf), g_pitch, Ref(h_buf),
                                                 Fp, S, F, *consts),
                        (g_buf, u_buf, gated, table), (h_buf,), S * F, "ffn")
        d = self.projection("down", "down", (h_buf, self.decompose), L.down, S, "ffn",
                            chunk=self.chunk)
        # every step's output row into one ``out`` (what the next layer reads)
        self.dequant_add("residual_down", n("mid"), d, L.down_add, "out", "ffn",
                         dst_offset=4 * self.step * S * s.E)

    def probe(self, name):
        s, m, b, out = self.s, self.cfg.M, self.block, self.out
        spec = b.tensor(name)
        rows, cols = spec.shape
        if b.past and name.startswith(("k_cache", "v_cache")):   # the cache in L2 itself
            out.outputs[name] = Io(name, rows, cols, out.inputs[name].pitch)
            return
        if spec.dtype == "int32":   # out / mid of every step, one after the other
            size = 4 * rows * cols
            out.l2[f"result_{name}"] = L2Tensor(f"result_{name}", "output", size)
            steps = 1 if name == "out" else b.steps   # ``out`` holds every step's rows
            per = size // steps
            for step in range(steps):
                buffer = name + (f"_s{step}" if steps > 1 else "")
                out.stores.setdefault(buffer, []).append(
                    Dma(False, f"result_{name}", buffer, per, l2_offset=step * per))
            out.outputs[name] = Io(f"result_{name}", rows, 4 * cols, 4 * cols)
            return
        if name.startswith("k_cache"):
            buffer, io = f"kr{name[len('k_cache'):]}", (rows, cols, pad(s.P, m))
        else:
            buffer, io = f"vt{name[len('v_cache'):]}", (rows, cols, pad(b.T, m))
        size = io[0] * io[2]
        out.l2[f"result_{name}"] = L2Tensor(f"result_{name}", "output", size)
        out.stores.setdefault(buffer, []).append(Dma(False, f"result_{name}", buffer, size))
        out.outputs[name] = Io(f"result_{name}", *io)


def lower_decoder_layer(block: IntegerDecoderLayer, spec, tiling: DecoderTiling,
                        probes=("out",)) -> Lowered:
    """The decoder layer's prefill or decoding step; ``probes``: tensors stored to L2 as
    outputs (``out``, ``mid``, ``k_cache<g>``, ``v_cache<g>``; a decoding step's cache is
    its L2 input, updated in place)."""
    for name in probes:
        try:
            block.tensor(name)
        except KeyError:
            raise CompileError(f"unknown tensor {name!r} of {block.kind}") from None
    return _DecoderLowering(block, spec, tiling, probes).lower()
