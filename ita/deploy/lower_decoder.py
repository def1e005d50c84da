"""Lowering of a Llama decoder layer's prefill: engine GEMMs, the cores' integer steps between.

The layer (:class:`~ita.deploy.frontend.IntegerDecoderLayer`, the integer model of
:mod:`ita.quant.llama`) becomes, in program order:

1. ``k_rmsnorm`` of the int32 residual rows into int8 ``n1``;
2. per KV head a linear job for K and one for V *transposed* (``V^T = Wv^T n1^T``: the
   weights are the job's input rows and ``n1`` its weight rows, so the engine writes V in
   the ``vp_t`` layout its A.V step reads, and no core transposes anything); per query head
   a linear job for Q. Each job requantizes with one scalar; the per-output-column weight
   scales stay in the values;
3. ``k_rope`` on every K and Q head: the per-column scales are undone, the pairs rotated with
   the compiler's Q14 cos/sin tables of positions 0 .. S-1, and the result requantized to
   the int8 scale of QK^T;
4. per query head one QKAV job (QK^T, the causal ITAmax, A.V on the rotated Q/K in memory);
   query heads of one KV group read the same K and V^T buffers (GQA: computed once);
5. per query head the O projection as a linear job and ``k_dequant_add`` of its output into
   the residual (O's per-column scales, with V's folded in by the quantiser);
6. ``k_rmsnorm`` into ``n2``, gate and up as linear jobs, ``k_silu_mul`` (the sigmoid table in
   L1), the down job, and ``k_dequant_add`` into the layer's output rows.

The residual stream is int32 in L1 throughout; every engine tensor is int8 with rows padded
to the tile edge. The decomposition of :func:`ita.golden.decoder.decomposed_gemm` is not
lowered: the block's integer model clips GEMM inputs to int8 (``decompose=False``), which is
what the kernels' int8 outputs do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ita.golden import decoder as dec

from .cost import KERNEL_COSTS, gemm_cycles
from .frontend import IntegerDecoderLayer
from .ir import Buffer, CompileError, Dma, Io, ItaJob, Kernel, L2Tensor, Lowered, Ref, pad

__all__ = ["DecoderTiling", "DECODER_KERNEL_COSTS", "decoder_tilings", "lower_decoder_layer"]

#: Cycles per element on one core of the decoder kernels (``make sim TEST=kernels``: the
#: cluster's cycles per element times its 8 cores).
DECODER_KERNEL_COSTS = {"rmsnorm": 81.0, "rope": 62.0, "silu_mul": 118.0,
                        "dequant_add": 38.0}
KERNEL_COSTS.update(DECODER_KERNEL_COSTS)

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
    """The decoder layer has one plan; the search still picks overlap per stage."""

    STAGES = ("attention", "ffn")


def decoder_tilings(block: IntegerDecoderLayer, spec, **forced):
    if forced:
        raise CompileError(f"the decoder layer takes no tiling choices, got {sorted(forced)}")
    s = block.shape
    m = spec.config.M
    if s.E % 4 or s.F % 4:
        raise CompileError(f"E={s.E} and F={s.F} must be multiples of 4 (word rows)")
    if s.H % s.KV:
        raise CompileError(f"{s.H} query heads do not group over {s.KV} KV heads")
    if s.S > spec.config.max_keys or max(s.E, s.F) > spec.config.max_inner_without_bias:
        raise CompileError(f"S={s.S}, E={s.E}, F={s.F} exceed one engine job")
    if s.P % 2 or s.P > m:
        raise CompileError(f"head dimension {s.P} must be even and at most M={m}")
    yield DecoderTiling()


class _DecoderLowering:
    def __init__(self, block: IntegerDecoderLayer, spec, probes):
        self.block, self.spec, self.cfg = block, spec, spec.config
        self.L, self.s = block.layer, block.shape
        self.probes = tuple(probes)
        self.out = Lowered()

    # --- declarations (as the encoder's lowering) ---

    def buf(self, name, size, reach=0):
        align = self.spec.align
        self.out.buffers[name] = Buffer(name, pad(size, align), pad(max(reach, size), align))
        return name

    def const(self, name, data, reach=0):
        """A constant in L2 loaded whole into an L1 buffer of the same name."""
        data = np.asarray(data, np.uint8)
        self.out.l2[name] = L2Tensor(name, "const", data.size, lambda data=data: data)
        self.buf(name, data.size, reach)
        self.out.loads.setdefault(name, []).append(Dma(True, name, name, data.size))
        return name

    def op(self, op):
        self.out.ops.append(op)

    def kernel(self, name, kind, args, reads, writes, elements, stage):
        self.op(Kernel(name, kind, tuple(args), tuple(reads), tuple(writes), elements, stage))

    # --- the steps ---

    def linear(self, name, src, w, rq, rows, out, stage, cols_pitch=None):
        """``out = requant(src @ w)``: ``w`` (inner, cols) int8 stored as transposed rows
        padded to the tile edge, followed by the zero bias the job reads."""
        m = self.cfg.M
        inner, cols = w.shape
        inner_p, cols_p = pad(inner, m), pad(cols, m)
        rows_t = np.zeros((cols, inner_p), np.int8)
        rows_t[:, :inner] = np.asarray(w).T
        blob = np.concatenate([_i8(rows_t), np.zeros(4 * cols_p, np.uint8)])
        wname = self.const(f"w_{name}", blob, reach=cols_p * inner_p)
        self.buf(out, pad(rows, m) * (cols_pitch or cols_p))
        self.op(ItaJob(name, "linear", dict(S=rows, E=inner, P=cols, F=0),
                       [(*rq, 0)] + [_NO_RQ] * (_RQ_ROWS - 1),
                       {"Q_IN": Ref(src), "WQ": Ref(wname), "BQ": Ref(wname, cols * inner_p),
                        "QP": Ref(out)},
                       reads=(src, wname), writes=(out,), macs=rows * inner * cols,
                       cycles=gemm_cycles(rows, cols, inner, self.cfg), stage=stage))

    def value_t(self, g, src):
        """V^T of KV head g: the job's input rows are Wv^T, its weight rows ``src``."""
        m, s, job = self.cfg.M, self.s, self.L.v[g]
        Ep, Sp, Pp = pad(s.E, m), pad(s.S, m), pad(s.P, m)
        rows = np.zeros((s.P, Ep), np.int8)
        rows[:, :s.E] = np.asarray(job.w).T
        blob = np.concatenate([_i8(rows), np.zeros(4 * Sp, np.uint8)])
        wname = self.const(f"w_V{g}", blob, reach=Pp * Ep)
        out = self.buf(f"vt{g}", Pp * Sp)
        self.op(ItaJob(f"V{g}", "linear", dict(S=s.P, E=s.E, P=s.S, F=0),
                       [(*job.rq, 0)] + [_NO_RQ] * (_RQ_ROWS - 1),
                       {"Q_IN": Ref(wname), "WQ": Ref(src), "BQ": Ref(wname, s.P * Ep),
                        "QP": Ref(out)},
                       reads=(src, wname), writes=(out,), macs=s.S * s.E * s.P,
                       cycles=gemm_cycles(s.P, s.S, s.E, self.cfg), stage="attention"))
        return out

    def rmsnorm(self, name, src, norm, dst, stage):
        s, m = self.s, self.cfg.M
        consts = self.const(f"{name}_consts", _words(norm.mult, norm.shift))
        self.buf(dst, pad(s.S, m) * pad(s.E, m))
        self.kernel(name, "rmsnorm", (Ref(src, 0, "int32_t"), Ref(dst), s.S, s.E,
                                      pad(s.E, m), Ref(consts, 0, "int32_t"), int(norm.eps)),
                    (src, consts), (dst,), s.S * s.E, stage)

    def rope(self, name, src, consts, dst):
        s, m = self.s, self.cfg.M
        Pp = pad(s.P, m)
        self.buf(dst, pad(s.S, m) * Pp)
        table = self.const(f"{name}_consts", _words(*consts))
        self.kernel("rope", "rope", (Ref(src), Pp, Ref(dst), Pp, s.S, s.P,
                                     Ref(table, 0, "int32_t"), Ref("cos", 0, "int16_t"),
                                     Ref("sin", 0, "int16_t")),
                    (src, table, "cos", "sin"), (dst,), s.S * s.P, "attention")

    def dequant_add(self, name, residual, y, pitch, consts, dst, stage):
        s = self.s
        table = self.const(f"{name}_consts", _words(*consts))
        self.buf(dst, 4 * s.S * s.E)
        self.kernel(name.rstrip("0123456789"), "dequant_add",
                    (Ref(residual, 0, "int32_t"), Ref(y), pitch, Ref(dst, 0, "int32_t"), s.S,
                     s.E, Ref(table, 0, "int32_t")),
                    (residual, y, table), (dst,), s.S * s.E, stage)

    def lower(self):
        s, L, m, b = self.s, self.L, self.cfg.M, self.block
        S, E, P, H, KV, F = s.S, s.E, s.P, s.H, s.KV, s.F
        Sp, Ep, Pp, Fp = pad(S, m), pad(E, m), pad(P, m), pad(F, m)
        out = self.out

        self.buf("x", 4 * S * E)
        out.l2["x"] = L2Tensor("x", "input", 4 * S * E)
        out.loads["x"] = [Dma(True, "x", "x", 4 * S * E)]
        out.inputs["x"] = Io("x", S, 4 * E, 4 * E)
        cos, sin = dec.rope_table(b.model.rope_theta, P, np.arange(S))
        self.const("cos", _words(cos, dtype=np.int16))
        self.const("sin", _words(sin, dtype=np.int16))

        self.rmsnorm("rmsnorm1", "x", L.norm1, "n1", "attention")
        G = H // KV
        for g in range(KV):
            self.linear(f"K{g}", "n1", L.k[g].w, L.k[g].rq, S, f"k{g}", "attention")
            self.value_t(g, "n1")
        for h in range(H):
            self.linear(f"Q{h}", "n1", L.q[h].w, L.q[h].rq, S, f"q{h}", "attention")
        for g in range(KV):
            self.rope(f"rope_k{g}", f"k{g}", (L.k_rope[0][g], L.k_rope[1][g]), f"kr{g}")
        for h in range(H):
            self.rope(f"rope_q{h}", f"q{h}", (L.q_rope[0][h], L.q_rope[1][h]), f"qr{h}")
        for h in range(H):
            g = h // G
            a, o = self.buf(f"a{h}", Sp * Sp), self.buf(f"o{h}", Sp * Pp)
            rq = [_NO_RQ] * _RQ_ROWS
            rq[_QK], rq[_AV] = (*L.rq_qk[h], 0), (*L.rq_av[h], 0)
            self.op(ItaJob(f"attention head {h}", "qkav", dict(S=S, E=0, P=P, F=0), rq,
                           {"QP": Ref(f"qr{h}"), "KP": Ref(f"kr{g}"), "VP": Ref(f"vt{g}"),
                            "A": Ref(a), "O": Ref(o)},
                           reads=(f"qr{h}", f"kr{g}", f"vt{g}"), writes=(a, o), causal=True,
                           logit_frac=L.logit_frac[h], macs=2 * S * S * P,
                           cycles=gemm_cycles(S, S, P, self.cfg) + gemm_cycles(S, P, S,
                                                                                self.cfg)))
        residual = "x"
        for h in range(H):
            self.linear(f"O{h}", f"o{h}", L.o[h].w, L.o[h].rq, S, f"yo{h}", "attention")
            nxt = "mid" if h == H - 1 else f"res{h}"
            self.dequant_add(f"residual_o{h}", residual, f"yo{h}", Ep,
                             (L.o_add[0][h], L.o_add[1][h]), nxt, "attention")
            residual = nxt
        self.rmsnorm("rmsnorm2", "mid", L.norm2, "n2", "ffn")
        self.linear("gate", "n2", L.gate.w, L.gate.rq, S, "g", "ffn")
        self.linear("up", "n2", L.up.w, L.up.rq, S, "u", "ffn")
        table = self.const("sigmoid", _words(dec.sigmoid_table()))
        gated = self.const("silu_consts", _words(*L.gated))
        self.buf("h", Sp * Fp)
        self.kernel("silu_mul", "silu_mul", (Ref("g"), Ref("u"), Fp, Ref("h"), Fp, S, F,
                                             Ref(gated, 0, "int32_t"),
                                             Ref(table, 0, "int32_t")),
                    ("g", "u", gated, table), ("h",), S * F, "ffn")
        self.linear("down", "h", L.down.w, L.down.rq, S, "d", "ffn")
        self.dequant_add("residual_down", "mid", "d", Ep, L.down_add, "out", "ffn")

        for name in self.probes:
            spec = b.tensor(name)
            rows, cols = spec.shape
            if spec.dtype == "int32":
                buffer, io = name, (rows, 4 * cols, 4 * cols)
            elif name.startswith("k_cache"):
                buffer, io = f"kr{name[len('k_cache'):]}", (rows, cols, Pp)
            else:
                buffer, io = f"vt{name[len('v_cache'):]}", (rows, cols, Sp)
            size = io[0] * io[2]
            out.l2[f"result_{name}"] = L2Tensor(f"result_{name}", "output", size)
            out.stores.setdefault(buffer, []).append(
                Dma(False, f"result_{name}", buffer, size))
            out.outputs[name] = Io(f"result_{name}", *io)
        return out


def lower_decoder_layer(block: IntegerDecoderLayer, spec, tiling: DecoderTiling,
                        probes=("out",)) -> Lowered:
    """The decoder layer's prefill; ``probes``: tensors stored to L2 as outputs (``out``,
    ``mid``, ``k_cache<g>``, ``v_cache<g>``)."""
    for name in probes:
        try:
            block.tensor(name)
        except KeyError:
            raise CompileError(f"unknown tensor {name!r} of {block.kind}") from None
    return _DecoderLowering(block, spec, probes).lower()
