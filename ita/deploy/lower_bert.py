"""Lowering of a quantised BERT layer (:class:`~ita.deploy.frontend.IntegerBertLayer`, the
contract of :mod:`ita.quant.integer`).

The engine's part is the encoder's (:mod:`ita.deploy.lower`, whose attention and FFN-chunk
lowering this reuses): one attention job per head with the padded keys masked
(``valid_keys``), F1 and F2 as linear jobs over column chunks. What differs is the cores'
part and the FFN:

1. the heads are summed by the cores' head sum (``rq_sum``), or, without one, every head's
   output stays in L1 as an operand of the residual add;
2. the residual adds are ``k_residual_add_rows`` (x and the attention; ``ln1`` and every
   FFN part's F2 output), with per-column multipliers and shifts from an L2 constant, into
   13-bit int16 rows ``add1`` / ``add2``, which ``k_layer_norm_rows`` normalises into int8;
3. the FFN is a sum of parts (the quantiser's outlier hidden units run as their own part):
   every part's F1 then every part's F2, each in column chunks of the tiling's widths (a
   narrow part's F2 whole, when its weights take no more L1 than one chunk of the widest);
4. with ``pool``, ``k_col_sums`` of the output's valid rows gives the pooling's int32 sums.

The block registers itself in :data:`ita.deploy.lower.LOWERINGS` / ``TILINGS`` and its
kernels' costs in :data:`ita.deploy.cost.KERNEL_COSTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cost import KERNEL_COSTS
from .frontend import IntegerBertLayer
from .ir import CompileError, Dma, Io, Kernel, Lowered, Ref, pad
from .lower import (
    LOWERINGS,
    TILINGS,
    _check_shape,
    _EncoderLowering,
    _i8,
    _i32,
    _rq,
    chunk_candidates,
)

__all__ = ["BertTiling", "BERT_KERNEL_COSTS", "bert_tilings", "lower_bert_layer"]

#: Cycles per element on one core (``make sim TEST=kernels``: the cluster's cycles per element
#: times its 8 cores); the residual add's elements count every operand's value.
BERT_KERNEL_COSTS = {"residual_add_rows": 13.0, "layer_norm_rows": 18.5, "col_sums": 3.2}
KERNEL_COSTS.update(BERT_KERNEL_COSTS)


@dataclass(frozen=True)
class BertTiling:
    """The choices of the encoder's tiling: FFN chunk widths (of the largest part; smaller
    parts take them whole when narrower) and whether ``ln1`` waits in L2 during F2."""

    ffn1_chunk: int
    ffn2_chunk: int
    spill_ln1: bool = False

    STAGES = ("attention", "ffn1", "ffn2")


def bert_tilings(block: IntegerBertLayer, spec, *, fc=None, ec=None):
    shape = block.shape
    _check_shape(shape, spec.config)
    if block.valid is not None and not 1 <= block.valid <= block.S:
        raise CompileError(f"valid rows {block.valid} must lie in 1..S={block.S}")
    m = spec.config.M
    widest = max(int(part.w1.shape[1]) for part in block.layer.ffn)
    for f_chunk in [fc] if fc else chunk_candidates(widest, m):
        for e_chunk in [ec] if ec else chunk_candidates(shape.E, m):
            for spill in (False, True):
                yield BertTiling(f_chunk, e_chunk, spill)


class _BertLowering(_EncoderLowering):
    def __init__(self, block: IntegerBertLayer, spec, tiling: BertTiling, probes):
        self.block, self.shape, self.p = block, block.shape, block.layer
        self.spec, self.cfg = spec, spec.config
        self.fc, self.ec, self.spill = tiling.ffn1_chunk, tiling.ffn2_chunk, tiling.spill_ln1
        self.causal = False
        self.valid_keys = block.valid if block.valid is not None and block.valid < block.S else 0
        self.probes = tuple(probes)
        self.out = Lowered()

    def _const_load(self, name, data):
        """A constant in L2 loaded whole into an L1 buffer of the same name."""
        data = np.asarray(data, np.uint8)
        self.buf(name, data.size)
        self.load(name, Dma(True, self.const(name, data.size, lambda data=data: data), name,
                            data.size))
        return name

    def _residual(self, dst, operands, consts, stage):
        """dst (S x E int16) = residual_add_rows(operands, consts)."""
        S, E = self.shape.S, self.shape.E
        n = len(operands)
        consts = np.asarray(consts, np.int64)
        if consts.shape != (2 * n, E):
            raise CompileError(f"{dst}: {n} operands need ({2 * n}, {E}) residual constants, "
                               f"got {consts.shape}")
        table = self._const_load(f"{dst}_consts", _i32(consts))
        coef = self.buf(f"{dst}_coef", 4 * n * E)   # scratch of this call only
        self.buf(dst, 2 * S * E)
        self.op(Kernel(f"residual_{dst}", "residual_add_rows",
                       (tuple(Ref(o) for o in operands), n, Ref(dst, 0, "int16_t"), S, E,
                        Ref(table, 0, "int32_t"), Ref(coef, 0, "int32_t")),
                       reads=(*operands, table), writes=(dst, coef), elements=n * S * E,
                       stage=stage))

    def _norm(self, ln, src, norm, dst, stage, *, allocate=True):
        """dst (S x E int8) = layer_norm_rows(src) with ``norm``'s constants (``allocate``:
        dst is a new buffer of S x E bytes)."""
        S, E = self.shape.S, self.shape.E
        gamma = self._const_load(f"{ln}_gamma", np.concatenate(
            [_i8(norm.gamma), np.zeros(pad(E, 4) - E, np.uint8)]))
        beta = self._const_load(f"{ln}_beta", _i32(norm.beta))
        coef = self.buf(f"{ln}_coef", 8 * E)   # scratch of this call only
        if allocate:   # the engine reads it in whole tiles (ln1: F1; out: the next layer)
            self.buf(dst, pad(S, self.cfg.M) * pad(E, self.cfg.M))
        self.op(Kernel(f"layer_norm_{ln}", "layer_norm_rows",
                       (Ref(src, 0, "int16_t"), Ref(dst), S, E, Ref(gamma),
                        Ref(beta, 0, "int32_t"), *_rq(norm.rq), Ref(coef, 0, "int32_t")),
                       reads=(src, gamma, beta), writes=(dst, coef), elements=S * E,
                       stage=stage))

    def lower(self):
        L, s, m = self.p, self.shape, self.cfg.M
        S, E, P, H = s.S, s.E, s.P, s.H
        Sp, Ep, Pp = pad(S, m), pad(E, m), pad(P, m)

        self.buf("x", Sp * Ep)
        norm = self.block.embed_norm
        if norm is None:
            self.load("x", Dma(True, self.slot("x", "input", S * E), "x", S * E))
            self.out.inputs["x"] = Io("x", S, E, E)
        else:   # the host's int16 embedding rows, normalised here into x
            self.buf("embed", 2 * S * E)
            self.load("embed", Dma(True, self.slot("x", "input", 2 * S * E), "embed",
                                   2 * S * E))
            self.out.inputs["x"] = Io("x", S, 2 * E, 2 * E)
            self._norm("ln0", "embed", norm, "x", "attention", allocate=False)

        sum_heads = L.rq_sum is not None
        self._attention(S, E, P, H, Sp, Ep, Pp, sum_heads=sum_heads)
        heads = ["attn"] if sum_heads else [f"head_out{h}" for h in range(H)]
        self._residual("add1", ["x", *heads], L.add1, "attention")
        self._norm("ln1", "add1", L.norm1, "ln1", "attention")

        f1s = []
        for k, part in enumerate(L.ffn):
            width = int(part.w1.shape[1])
            f1 = self.buf(f"f1_{k}", Sp * pad(width, m))
            self._ffn_gemm(f1, "ln1", part.w1, part.b1, E, width, self.fc, _rq(part.rq[0]),
                           activation=part.activation,
                           gelu=(int(part.gelu_b), int(part.gelu_c)),
                           act_rq=_rq(part.act_rq), stage="ffn1")
            f1s.append((f1, width))
        f2s = []
        widest = max(width for _, width in f1s)
        for k, part in enumerate(L.ffn):
            f1, width = f1s[k]
            # a narrow part's F2 weights whole when they take no more L1 than one chunk of
            # the widest part's (an outlier unit's F2 in one job instead of E / chunk)
            chunk = E if Ep * pad(width, m) <= self.ec * pad(widest, m) else self.ec
            # one whole chunk is written in place, with the engine's padded rows
            f2 = self.buf(f"f2_{k}", Sp * Ep if chunk >= E or Ep != E else S * E)
            self._ffn_gemm(f2, f1, part.w2, part.b2, width, E, chunk, _rq(part.rq[1]),
                           stage="ffn2")
            f2s.append(f2)

        residual = "ln1"
        if self.spill:
            # ln1 waits in L2 during F2 (stored after the add & norm, loaded back for the add)
            self.slot("ln1_spill", "spill", S * E)
            self.store("ln1", Dma(False, "ln1_spill", "ln1", S * E))
            residual = self.buf("ln1_back", S * E)
            self.load(residual, Dma(True, "ln1_spill", residual, S * E))
        self._residual("add2", [residual, *f2s], L.add2, "ffn2")
        self._norm("ln2", "add2", L.norm2, "out", "ffn2")

        if "pooled" in self.probes:
            self.buf("pooled", 4 * E)
            self.op(Kernel("pool", "col_sums",
                           (Ref("out"), self.block.tokens, E, E, Ref("pooled", 0, "int32_t")),
                           reads=("out",), writes=("pooled",), elements=self.block.tokens * E,
                           stage="ffn2"))

        for name in self.probes:
            spec = self.block.tensor(name)
            rows, cols = spec.shape
            width = {"int8": 1, "int16": 2, "int32": 4}[spec.dtype]
            size = rows * cols * width
            self.slot(f"result_{name}", "output", size)
            source = "x" if name == "ln0" else name   # the embedding LayerNorm writes x
            self.store(source, Dma(False, f"result_{name}", source, size))
            self.out.outputs[name] = Io(f"result_{name}", rows, cols * width, cols * width)
        return self.out


def lower_bert_layer(block: IntegerBertLayer, spec, tiling: BertTiling,
                     probes=("out",)) -> Lowered:
    """The BERT layer for one tiling; ``probes``: tensors stored to L2 as outputs (``out``,
    ``pooled`` with ``block.pool``, any of ``IntegerBertLayer.INTERMEDIATES`` it has)."""
    for name in probes:
        try:
            block.tensor(name)
        except KeyError:
            raise CompileError(f"unknown tensor {name!r} of {block.kind}") from None
    return _BertLowering(block, spec, tiling, probes).lower()


LOWERINGS[IntegerBertLayer] = lower_bert_layer
TILINGS[IntegerBertLayer] = bert_tilings
