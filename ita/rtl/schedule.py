"""The engine's streaming order, described once in Python.

The engine consumes its four streams and produces its output in a fixed order that follows
from the configuration alone. This module states that order so that testbenches (and the
HWPE streamers, which generate the same sequence of addresses in hardware) need no
knowledge of the engine's internals.

Every operand lives in memory as a zero-padded 2-D tensor whose dimensions are rounded up
to whole M x M tiles. A GEMM step computes ``out = input @ weight_t.T (+ bias)``: the
weight operand is stored transposed (output columns x inner), as in the reference.

Per step, tiles run ``for i (row tiles): for j (column tiles): for k (inner tiles)`` and,
inside a tile, ``for g (column groups of N): for r (rows of the tile)``. Hence:

* input: one beat of M values (row ``iM + r``, columns ``kM .. kM + M - 1``) per row, at
  ``g == 0`` only; the engine keeps the tile and reuses it for the other groups;
* weight: N beats of M values per (tile, g): rows ``jM + gN + n`` of ``weight_t``, columns
  ``kM ..``;
* bias: for the last inner tile of every output tile of a step with bias, M / N beats of
  N values: ``bias[jM ..]`` (per column) or ``bias[iM ..]`` (per row, step V);
* output: for the last inner tile, one beat of N values per (g, r): row ``iM + r``, columns
  ``jM + gN ..``; values outside the valid shape are written as 0.
"""

from dataclasses import dataclass

from ita.config import DEFAULT_CONFIG, ITAConfig

from .layouts import Mode, Step

__all__ = ["StepPlan", "plan", "input_beats", "weight_beats", "bias_beats", "output_beats",
           "tiles", "padded", "tensor_shapes", "ideal_cycles"]


def tiles(size, m):
    return -(-size // m)


def padded(size, m):
    return tiles(size, m) * m


@dataclass(frozen=True)
class StepPlan:
    """One step of a job: which tensors it reads and writes, and its valid shape."""

    step: Step
    input: str
    weight_t: str
    bias: str | None
    bias_per_row: bool
    output: str
    rows: int
    cols: int
    inner: int
    block: int | None = None  #: the row tile of a QK or AV step

    def row_tiles(self, m):
        return [self.block] if self.block is not None else list(range(tiles(self.rows, m)))


def plan(mode, *, S, E=0, P=0, F=0, bias=True, config: ITAConfig = DEFAULT_CONFIG):
    """Steps of a job in execution order (QK and AV alternate per row tile)."""
    mode = Mode(mode)

    def gemm(step, inp, w, b, out, rows, cols, inner, per_row=False, block=None):
        return StepPlan(step, inp, w, b if bias else None, per_row, out, rows, cols, inner,
                        block)

    blocks = []
    for i in range(tiles(S, config.M)):
        blocks.append(gemm(Step.QK, "qp", "kp", None, "a", S, S, P, block=i))
        blocks.append(gemm(Step.AV, "a", "vp_t", None, "o", S, P, S, block=i))
    if mode == Mode.ATTENTION:
        return [gemm(Step.Q, "q_in", "wq_t", "bq", "qp", S, P, E),
                gemm(Step.K, "kv_in", "wk_t", "bk", "kp", S, P, E),
                gemm(Step.V, "wv_t", "kv_in", "bv", "vp_t", P, S, E, per_row=True),
                *blocks,
                gemm(Step.OW, "o", "wo_t", "bo", "out", S, E, P)]
    if mode == Mode.QKAV:
        return blocks
    if mode == Mode.FFN:
        return [gemm(Step.F1, "ff_in", "w1_t", "b1", "f1", S, F, E),
                gemm(Step.F2, "f1", "w2_t", "b2", "f2", S, E, F)]
    return [gemm(Step.MATMUL, "x", "w_t", "b", "y", S, P, E)]


def _tile_loop(p: StepPlan, m):
    for i in p.row_tiles(m):
        for j in range(tiles(p.cols, m)):
            kt = tiles(p.inner, m)
            for k in range(kt):
                yield i, j, k, k == kt - 1


def input_beats(steps, config: ITAConfig = DEFAULT_CONFIG):
    """(step plan, tensor, row, first column) for every input beat."""
    m = config.M
    for p in steps:
        for i, _j, k, _last in _tile_loop(p, m):
            for r in range(m):
                yield p, p.input, i * m + r, k * m


def weight_beats(steps, config: ITAConfig = DEFAULT_CONFIG):
    """(step plan, tensor, row, first column) for every weight beat."""
    m, n = config.M, config.N
    for p in steps:
        for _i, j, k, _last in _tile_loop(p, m):
            for g in range(m // n):
                for lane in range(n):
                    yield p, p.weight_t, j * m + g * n + lane, k * m


def bias_beats(steps, config: ITAConfig = DEFAULT_CONFIG):
    """(step plan, tensor, first element) for every bias beat of N values."""
    m, n = config.M, config.N
    for p in steps:
        if p.bias is None:
            continue
        for i, j, _k, last in _tile_loop(p, m):
            if last:
                base = (i if p.bias_per_row else j) * m
                for b in range(m // n):
                    yield p, p.bias, base + b * n


def output_beats(steps, config: ITAConfig = DEFAULT_CONFIG):
    """(step plan, tensor, row, first column) for every output beat of N values."""
    m, n = config.M, config.N
    for p in steps:
        for i, j, _k, last in _tile_loop(p, m):
            if last:
                for g in range(m // n):
                    for r in range(m):
                        yield p, p.output, i * m + r, j * m + g * n


def tensor_shapes(mode, *, S, E=0, P=0, F=0, config: ITAConfig = DEFAULT_CONFIG):
    """Padded (rows, columns) of every tensor a job touches."""
    m = config.M
    Sp, Ep, Pp, Fp = (padded(d, m) if d else 0 for d in (S, E, P, F))
    shapes = {"q_in": (Sp, Ep), "kv_in": (Sp, Ep), "wq_t": (Pp, Ep), "wk_t": (Pp, Ep),
              "wv_t": (Pp, Ep), "wo_t": (Ep, Pp), "qp": (Sp, Pp), "kp": (Sp, Pp),
              "vp_t": (Pp, Sp), "a": (Sp, Sp), "o": (Sp, Pp), "out": (Sp, Ep),
              "bq": (Pp,), "bk": (Pp,), "bv": (Pp,), "bo": (Ep,),
              "ff_in": (Sp, Ep), "w1_t": (Fp, Ep), "b1": (Fp,), "f1": (Sp, Fp),
              "w2_t": (Ep, Fp), "b2": (Ep,), "f2": (Sp, Ep),
              "x": (Sp, Ep), "w_t": (Pp, Ep), "b": (Pp,), "y": (Sp, Pp)}
    used = set()
    for p in plan(mode, S=S, E=E, P=P, F=F, config=config):
        used |= {p.input, p.weight_t, p.output} | ({p.bias} if p.bias else set())
    return {name: shapes[name] for name in sorted(used)}


def ideal_cycles(mode, *, S, E=0, P=0, F=0, config: ITAConfig = DEFAULT_CONFIG):
    """MACs of the unpadded job divided by the engine's peak N * M MACs per cycle."""
    mode = Mode(mode)
    macs = {Mode.ATTENTION: 4 * S * E * P + 2 * S * S * P, Mode.QKAV: 2 * S * S * P,
            Mode.FFN: 2 * S * E * F, Mode.LINEAR: S * E * P}[mode]
    return macs / config.macs_per_cycle
