"""Lowering: one block of the integer model -> buffers, L2 tensors and ordered operations.

Each block type has its lowering (:data:`LOWERINGS`), which knows how the block's
computation maps onto ITA jobs and core kernels and how its weights are laid out, and
offers the tilings the search may choose among (:data:`TILINGS`): the encoder layer here,
the Llama decoder layer in :mod:`ita.deploy.lower_decoder`.

Why the encoder's jobs are cut as they are: a GEMM's reduction dimension cannot be split
over jobs (every job requantizes its int8 output, and partial int8 sums cannot be added
exactly), so attention heads stay whole (the head is the engine's unit: Q, K, V, QK, AV, OW)
and the feed-forward GEMMs are cut along their output columns. The engine has no output
stride, so a chunk's output (S x chunk) lands in its own buffer and the cores copy it into
the row-major tensor that the next GEMM reads. Weight tensors are read as whole M x M tiles:
rows beyond the valid ones are padding whose values never reach a valid output (the engine
writes zeros outside the valid shape), so a buffer may "spill" its padding rows over the
memory that follows it (``reach`` > ``size``); padding columns on the inner dimension are
masked by the engine and are left uninitialised, so the heads' ``Wo^T`` share padded rows,
each head in its own columns (:func:`interleave_lanes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .cost import attention_cycles, gemm_cycles
from .frontend import IntegerDecoderLayer, IntegerEncoderLayer
from .ir import Buffer, CompileError, Dma, Io, ItaJob, Kernel, L2Tensor, Lowered, Ref, pad, tiles
from .lower_decoder import decoder_tilings, lower_decoder_layer

__all__ = ["EncoderTiling", "LOWERINGS", "TILINGS", "lower", "tilings", "interleave_lanes",
           "chunk_candidates", "place_constants"]


def _i8(a):
    return np.ascontiguousarray(np.asarray(a).astype(np.int8)).view(np.uint8).ravel()


def _i32(a, length=None):
    a = np.asarray(a).astype(np.int32).ravel()
    if length is not None and length > a.size:
        a = np.concatenate([a, np.zeros(length - a.size, np.int32)])
    return np.ascontiguousarray(a).view(np.uint8)


def _rq(row):
    return tuple(int(v) for v in np.asarray(row).ravel()[:3])


def interleave_lanes(P, m):
    """Heads whose ``Wo^T`` share one M-row-pitch buffer, each in its own columns.

    The OW step reads ``Wo^T`` (E x P) as rows of Pp = pad(P, M) bytes, and the engine zeroes
    the input (O) lanes at and beyond P before multiplying (``inner_keep`` in
    ``ita.rtl.engine``), so bytes P .. Pp - 1 of every weight row never reach an output.
    Head h's rows may therefore start ``(h % lanes) * pad(P, 4)`` bytes into the shared rows:
    its pointer is word-aligned, which is all the wide L1 port needs (it reads 32
    consecutive words from any word address), and the other heads' columns sit in its
    masked lanes. With P = 32 two heads share 24 KiB where two slots held 48 KiB.
    """
    return max(1, pad(P, m) // pad(P, 4))


def chunk_candidates(cols, m):
    """Chunk widths for a GEMM's output columns: whole, then multiples of M, then M/2, M/4."""
    widths = {cols}
    widths.update(range(m, cols, m))
    widths.update(w for w in (m // 2, m // 4) if 4 <= w < cols)
    return sorted(widths, reverse=True)


def _check_shape(shape, cfg):
    for name in ("S", "E", "P", "H", "F"):
        value = getattr(shape, name)
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise CompileError(f"{name} must be a positive integer, got {value!r}")
    if shape.E % cfg.M:
        raise CompileError(f"E={shape.E} must be a multiple of the tile edge M={cfg.M}: the "
                           f"core kernels take dense rows of E bytes")
    if shape.S > 65535 or shape.F > 65535:
        raise CompileError("S and F must be below 65536 (job register fields)")
    if shape.H > 255:
        raise CompileError(f"H={shape.H}: the int16 head sum holds at most 255 heads")


# --- the encoder layer --------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderTiling:
    """The encoder lowering's choices: FFN chunk widths and whether ``ln1`` waits in L2."""

    ffn1_chunk: int
    ffn2_chunk: int
    spill_ln1: bool = False

    #: Stages whose kernels may overlap the next job (the scheduler's per-stage choice).
    STAGES = ("attention", "ffn1", "ffn2")


def encoder_tilings(block: IntegerEncoderLayer, spec, *, fc=None, ec=None):
    """Every tiling the search ranks; ``fc`` / ``ec`` force the FFN chunk widths."""
    _check_shape(block.shape, spec.config)
    m = spec.config.M
    for f_chunk in [fc] if fc else chunk_candidates(block.shape.F, m):
        for e_chunk in [ec] if ec else chunk_candidates(block.shape.E, m):
            for spill in (False, True):
                yield EncoderTiling(f_chunk, e_chunk, spill)


class _EncoderLowering:
    """Builds buffers, L2 tensors and the program-ordered operations for one tiling."""

    def __init__(self, block: IntegerEncoderLayer, spec, tiling: EncoderTiling, probes):
        self.shape, self.p, self.spec, self.cfg = block.shape, block.params, spec, spec.config
        self.fc, self.ec, self.spill = tiling.ffn1_chunk, tiling.ffn2_chunk, tiling.spill_ln1
        self.causal, self.valid_keys = block.causal, block.valid_keys or 0
        self.probes = tuple(probes)
        self.out = Lowered()

    def buf(self, name, size, reach=0):
        align = self.spec.align
        self.out.buffers[name] = Buffer(name, pad(size, align), pad(max(reach, size), align))
        return name

    def const(self, name, size, make):
        """Declare constant L2 tensor ``name``; ``make()`` builds its bytes (chosen plan only)."""
        self.out.l2[name] = L2Tensor(name, "const", size, make)
        return name

    def slot(self, name, role, size):
        """Declare an L2 tensor without bytes: the program's input, an output, a spill area."""
        self.out.l2[name] = L2Tensor(name, role, size)
        return name

    def load(self, buffer, dma):
        self.out.loads.setdefault(buffer, []).append(dma)

    def store(self, buffer, dma):
        self.out.stores.setdefault(buffer, []).append(dma)

    def op(self, op):
        self.out.ops.append(op)

    def lower(self):
        s, p, cfg = self.shape, self.p, self.cfg
        S, E, P, H, F = s.S, s.E, s.P, s.H, s.F
        m = cfg.M
        Sp, Ep, Pp = pad(S, m), pad(E, m), pad(P, m)

        # Resident inputs: x and the LayerNorm constants.
        self.buf("x", Sp * Ep)
        self.load("x", Dma(True, self.slot("x", "input", S * E), "x", S * E))
        self.out.inputs["x"] = Io("x", S, E, E)
        for ln in ("ln1", "ln2"):
            gamma, beta = getattr(p, f"{ln}_gamma"), getattr(p, f"{ln}_beta")
            self.buf(f"{ln}_gamma", pad(E, 4))
            self.buf(f"{ln}_beta", 4 * E)
            self.load(f"{ln}_gamma", Dma(True, self.const(
                f"{ln}_gamma", pad(E, 4), lambda gamma=gamma: _i8(gamma)), f"{ln}_gamma",
                pad(E, 4)))
            self.load(f"{ln}_beta", Dma(True, self.const(
                f"{ln}_beta", 4 * E, lambda beta=beta: _i32(beta)), f"{ln}_beta", 4 * E))

        self._attention(S, E, P, H, Sp, Ep, Pp)

        self.buf("add1", S * E)
        self.buf("ln1", S * E)
        self.op(self._add_layernorm("ln1", "x", "attn", "add1", "ln1", p.add1))

        # Feed-forward: F1 (GELU) over column chunks of w1, then F2 over column chunks of w2.
        Fp = pad(F, m)
        self.buf("f1", Sp * Fp)
        self._ffn_gemm("f1", "ln1", p.w1, p.b1, E, F, self.fc, _rq(np.asarray(p.rq_ffn)[0]),
                       activation=s.activation)
        # one whole chunk is written in place, with the engine's padded rows
        self.buf("f2", S * E if Ep == E and self.ec < E else Sp * Ep)
        self._ffn_gemm("f2", "f1", p.w2, p.b2, F, E, self.ec, _rq(np.asarray(p.rq_ffn)[1]))

        residual = "ln1"
        if self.spill:
            # ln1 waits in L2 during F2 (stored after the add & norm, loaded during the last
            # F2 job): its 24 KiB in L1 make room for wider F2 chunks.
            self.slot("ln1_spill", "spill", S * E)
            self.store("ln1", Dma(False, "ln1_spill", "ln1", S * E))
            residual = self.buf("ln1_back", S * E)
            self.load(residual, Dma(True, "ln1_spill", residual, S * E))
        self.buf("add2", S * E)
        self.buf("out", S * E)
        self.op(self._add_layernorm("ln2", residual, "f2", "add2", "out", p.add2,
                                    stage="ffn2"))

        for name in self.probes:
            cols, pitch = (F, Fp) if name == "f1" else (E, E)
            size = S * pitch
            self.slot(f"result_{name}", "output", size)
            self.store(name, Dma(False, f"result_{name}", name, size))
            self.out.outputs[name] = Io(f"result_{name}", S, cols, pitch)
        return self.out

    def _attention(self, S, E, P, H, Sp, Ep, Pp, sum_heads=True, heads=None):
        """One job per head; the cores sum the heads in int16 into ``attn`` (unless
        ``sum_heads`` is false: then the heads' outputs ``head_out<h>`` stay for the next
        kernel, which takes them as operands; ``"partial"``: the heads ``heads`` of one chip
        are summed into ``head_acc`` only, which the chips then sum among themselves)."""
        heads = list(range(H)) if heads is None else list(heads)
        partial = sum_heads == "partial"
        p, m = self.p, self.cfg.M
        pw = pad(P, 4)  # L2 row pitch of wo_t (DMA rows are whole words)
        bias_off = 3 * P * Ep
        slot_size = bias_off + (3 * Pp + Ep) * 4
        # The padding rows of Wv^T (a Pp-row tile read from 2 P Ep) spill past the slot.
        slot_reach = 2 * P * Ep + Pp * Ep
        lanes = interleave_lanes(P, m) if len(heads) > 1 else 1
        buffers = self.out.buffers
        if lanes > 1:
            self.buf("wo_t", Ep * Pp, reach=Ep * Pp + (lanes - 1) * pw)
        acc = (self.buf("head_acc", 2 * S * E)
               if (len(heads) > 1 and sum_heads) or partial else None)
        if sum_heads:
            self.buf("attn", S * E)
        for i, h in enumerate(heads):
            slot = self.buf(f"w_head{h}", slot_size, reach=slot_reach)
            self.load(slot, Dma(True, self.const(f"wqkv{h}", 3 * P * E, lambda h=h: np.concatenate(
                [_i8(np.asarray(w[h]).T) for w in (p.wq, p.wk, p.wv)])), slot, 3 * P * E))

            def wo_t(h=h):
                t = np.zeros((E, pw), np.int8)
                t[:, :P] = np.asarray(p.wo[h]).T
                return _i8(t)
            name = self.const(f"wo{h}", E * pw, wo_t)
            wo = f"wo_t{h}"
            if lanes > 1:
                parent = buffers["wo_t"]
                lane = (h % lanes) * pw
                buffers[wo] = Buffer(wo, parent.size - lane, parent.reach - lane,
                                     parent="wo_t", lane_offset=lane)
            else:
                self.buf(wo, Ep * Pp)
            if pw == Pp:
                self.load(wo, Dma(True, name, wo, E * pw))
            else:
                self.load(wo, Dma(True, name, wo, pw, rows=E, l2_stride=pw, l1_stride=Pp))
            bias_bytes = (3 * Pp + Ep) * 4
            biases = self.const(f"bias{h}", bias_bytes, lambda h=h: np.concatenate(
                [_i32(p.bq[h], Pp), _i32(p.bk[h], Pp), _i32(p.bv[h], Pp), _i32(p.bo[h], Ep)]))
            self.load(slot, Dma(True, biases, slot, bias_bytes, l1_offset=bias_off))
            scratch = self.buf(f"scratch{h}", 3 * Sp * Pp + Pp * Sp + Sp * Sp)
            out = self.buf(f"head_out{h}", Sp * Ep)
            off = {"qp": 0, "kp": Sp * Pp, "vp": 2 * Sp * Pp, "a": 2 * Sp * Pp + Pp * Sp}
            off["o"] = off["a"] + Sp * Sp
            rq = [_rq(r) for r in np.asarray(p.rq_attn)[h]] + [(0, 0, 0), (0, 0, 0)]
            pointers = {
                "Q_IN": Ref("x"), "KV_IN": Ref("x"), "WQ": Ref(slot, 0),
                "WK": Ref(slot, P * Ep), "WV": Ref(slot, 2 * P * Ep), "WO": Ref(wo),
                "BQ": Ref(slot, bias_off), "BK": Ref(slot, bias_off + 4 * Pp),
                "BV": Ref(slot, bias_off + 8 * Pp), "BO": Ref(slot, bias_off + 12 * Pp),
                "QP": Ref(scratch, off["qp"]), "KP": Ref(scratch, off["kp"]),
                "VP": Ref(scratch, off["vp"]), "A": Ref(scratch, off["a"]),
                "O": Ref(scratch, off["o"]), "OUT": Ref(out)}
            self.op(ItaJob(
                f"attention head {h}", "attention", dict(S=S, E=E, P=P, F=0), rq, pointers,
                reads=("x", slot, wo), writes=(scratch, out), causal=self.causal,
                valid_keys=self.valid_keys, logit_frac=p.head_logit_frac(h),
                macs=4 * S * E * P + 2 * S * S * P,
                cycles=attention_cycles(S, E, P, self.cfg)))
            if not sum_heads:
                continue
            if i < len(heads) - 1 or partial:
                self.op(Kernel("head_sum", "head_acc",
                               (Ref(acc, 0, "int16_t"), Ref(out), S * E, int(i == 0)),
                               reads=(out,) + ((acc,) if i else ()),
                               writes=(acc,), elements=S * E))
            else:
                acc_arg = Ref(acc, 0, "int16_t") if acc else 0
                self.op(Kernel("head_sum", "head_final",
                               (acc_arg, Ref(out), Ref("attn"), S * E, *_rq(p.rq_sum)),
                               reads=(out,) + ((acc,) if acc else ()),
                               writes=("attn",), elements=S * E))

    def _add_layernorm(self, ln, x, y, total, dst, add_rq, stage="attention"):
        """Residual add and LayerNorm fused row by row."""
        p, S, E = self.p, self.shape.S, self.shape.E
        coef = self.buf(f"{ln}_coef", 8 * E)  # scratch of this call only
        return Kernel("add_layernorm", "add_layernorm",
                      (Ref(x), Ref(y), Ref(total), Ref(dst), S, E,
                       *[int(v) for v in np.asarray(add_rq).ravel()[:4]],
                       Ref(f"{ln}_gamma"), Ref(f"{ln}_beta", 0, "int32_t"),
                       *_rq(getattr(p, f"{ln}_rq")), Ref(coef, 0, "int32_t")),
                      reads=(x, y, f"{ln}_gamma", f"{ln}_beta"), writes=(total, dst, coef),
                      elements=S * E, stage=stage)

    def _ffn_gemm(self, dst, src, w, b, inner, cols, chunk, rq, activation="identity",
                  gelu=None, act_rq=None, stage=None, col0=0, dst_cols=None, on_chunk=None):
        """dst (S x cols) = act(rq(src @ w + b)) as linear jobs over column chunks; the GELU
        constants and the activation's requantization are the layer's unless given. With
        ``col0`` / ``dst_cols`` the ``cols`` columns computed are columns ``col0 ..`` of a
        ``dst`` of ``dst_cols`` columns (one chip's slice of a partitioned layer);
        ``on_chunk(c0, width)`` is called once a chunk's columns are in ``dst``."""
        stage = stage or ("ffn1" if dst == "f1" else "ffn2")
        p, S, m = self.p, self.shape.S, self.cfg.M
        dst_cols = cols if dst_cols is None else dst_cols
        Sp, inner_p, cols_p = pad(S, m), pad(inner, m), pad(dst_cols, m)
        w_t = np.asarray(w).T  # (cols, inner)
        b = np.asarray(b)
        n_chunks = tiles(cols, chunk)
        if gelu is None:
            gelu = (int(p.gelu_b), int(p.gelu_c)) if activation == "gelu" else (0, 0)
        if act_rq is None:
            act_rq = _rq(p.act_rq) if activation != "identity" else (1, 0, 0)
        for j in range(n_chunks):
            c0 = j * chunk
            width = min(chunk, cols - c0)
            width_p = pad(width, m)
            blob_bytes = width * inner_p + 4 * width_p
            wname = self.buf(f"{dst}_w{j}", blob_bytes,
                             reach=max(width_p * inner_p, blob_bytes))

            def blob(c0=c0, width=width, width_p=width_p):
                rows = np.zeros((width, inner_p), np.int8)
                rows[:, :inner] = w_t[c0:c0 + width]
                return np.concatenate([_i8(rows), _i32(b[c0:c0 + width], width_p)])
            self.load(wname, Dma(True, self.const(f"{dst}_w{j}", blob_bytes, blob), wname,
                                 blob_bytes))
            direct = n_chunks == 1 and width_p == cols_p and col0 == 0
            out = dst if direct else self.buf(f"{dst}_y{j}", Sp * width_p)
            self.op(ItaJob(
                f"{dst} chunk {j}", "linear", dict(S=S, E=inner, P=width, F=0),
                [rq] + [(0, 0, 0)] * 7,
                {"Q_IN": Ref(src), "WQ": Ref(wname), "BQ": Ref(wname, width * inner_p),
                 "QP": Ref(out)},
                reads=(src, wname), writes=(out,), activation=activation, gelu=gelu,
                act_rq=act_rq, macs=S * inner * width,
                cycles=gemm_cycles(S, width, inner, self.cfg), stage=stage))
            if not direct:
                self.op(Kernel(f"relayout_{dst}", "relayout",
                               (Ref(out), width_p, Ref(dst, col0 + c0), cols_p, S, width),
                               reads=(out,), writes=(dst,), elements=S * width, stage=stage))
            if on_chunk:
                on_chunk(c0, width)


def lower_encoder_layer(block: IntegerEncoderLayer, spec, tiling: EncoderTiling,
                        probes=("out",)) -> Lowered:
    """The encoder layer for one tiling; ``probes``: the tensors stored to L2 as outputs
    (``out`` and any of ``IntegerEncoderLayer.INTERMEDIATES``)."""
    unknown = [n for n in probes if n != "out" and n not in block.INTERMEDIATES]
    if unknown:
        raise CompileError(f"unknown tensor {unknown[0]!r} of {block.kind}")
    return _EncoderLowering(block, spec, tiling, probes).lower()


#: Block type -> its lowering and the tilings its search ranks.
LOWERINGS = {IntegerEncoderLayer: lower_encoder_layer,
             IntegerDecoderLayer: lower_decoder_layer}
TILINGS = {IntegerEncoderLayer: encoder_tilings, IntegerDecoderLayer: decoder_tilings}


def _of(table, block):
    try:
        return table[type(block)]
    except KeyError:
        raise CompileError(f"no lowering for block {type(block).__name__}") from None


def lower(block, spec, tiling, probes=("out",)) -> Lowered:
    return place_constants(_of(LOWERINGS, block)(block, spec, tiling, probes), spec)


def place_constants(low: Lowered, spec) -> Lowered:
    """Move the constants to L3 when ``spec.weights`` says so, and mark their loads.

    The DMA reads L3 straight into L1: the off-chip link, not L2, is the bottleneck, so a
    copy through L2 would add a transfer without adding bandwidth to a program that reads
    every weight once.
    """
    if spec.weights != "l3":
        return low
    for t in low.l2.values():
        if t.role == "const":
            t.memory = "l3"
    for table in (low.loads, low.stores):
        for buffer, dmas in table.items():
            table[buffer] = [replace(d, memory=low.l2[d.l2].memory) for d in dmas]
    return low


def tilings(block, spec, **forced):
    return _of(TILINGS, block)(block, spec, **forced)
