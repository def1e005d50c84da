"""Tiling, phases and L1 planning of one encoder layer.

The layer is lowered to a list of operations in program order: DMA loads of weights, ITA
jobs (one attention head per job, feed-forward GEMMs as linear jobs over column chunks of
the weights) and core kernels (head sum, residual adds, LayerNorms, re-layout of chunk
outputs). The operations are then packed into *phases*. In every phase core 0

1. queues the DMA stores of finished results and the DMA loads of the *next* phase,
2. starts the phase's ITA job, while all cores run the phase's kernels (or, where memory
   does not allow a second output buffer, after the job: "sequential" stages),
3. waits for the ITA and the DMA; then all cores meet in a barrier.

So the weights of phase p + 1 stream in while phase p computes (double buffering), and the
cores post-process job p - 1 while the ITA runs job p. A transfer beside a running job costs
the engine two thirds of its speed (L1 bank conflicts), so a sequential phase may issue its
transfers after its job instead (``defer_dma``), and loads may go out several phases early
where a phase's cores work long without moving data (:func:`_hoist_loads`).

Every L1 tensor becomes a buffer with a lifetime (the phases from its load or first write
to its last read or store); buffers whose lifetimes overlap get disjoint L1 ranges
(:func:`allocate`), so double buffers appear wherever two consecutive phases need different
weights.

Why the jobs are cut as they are: a GEMM's reduction dimension cannot be split over jobs
(every job requantizes its int8 output, and partial int8 sums cannot be added exactly), so
attention heads stay whole (the head is the engine's unit: Q, K, V, QK, AV, OW) and the
feed-forward GEMMs are cut along their output columns. The engine has no output stride, so
a chunk's output (S x chunk) lands in its own buffer and the cores copy it into the row-major
tensor that the next GEMM reads. Weight tensors are read as whole M x M tiles: rows beyond
the valid ones are padding whose values never reach a valid output (the engine writes zeros
outside the valid shape), so a buffer may "spill" its padding rows over the memory that
follows it (``reach`` > ``size``); padding columns on the inner dimension are masked by the
engine and are left uninitialised, so the heads' ``Wo^T`` share padded rows, each head in its
own columns (:func:`_interleave_lanes`).

The tile sizes (feed-forward chunk widths) and the stage modes are chosen by a cost model
(:func:`estimate`) among the plans whose buffers fit the L1 arena; when none fits,
:class:`CompileError` names the tensor and the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["ClusterSpec", "CompileError", "Buffer", "Dma", "ItaJob", "Kernel", "Phase",
           "Schedule", "plan_layer", "allocate", "estimate", "phase_cost", "layer_macs",
           "KERNEL_COSTS"]


class CompileError(ValueError):
    """The layer cannot be compiled for the cluster; the message is one line."""


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster facts the compiler plans with."""

    l1_base: int = 0x1000_0000
    l1_size: int = 256 * 1024
    l1_reserved: int = 12 * 1024  #: core stacks at the top of L1 plus the runtime's L1 data
    l2_base: int = 0x1C00_0000
    l2_size: int = 4 * 1024 * 1024
    l2_data_offset: int = 0x4_0000  #: the program image lies below, the layer's data above
    cores: int = 8
    config: ITAConfig = DEFAULT_CONFIG
    dma_bytes_per_cycle: float = 3.67  #: measured L2 -> L1 rate, for the cost model only

    @property
    def arena_bytes(self):
        """L1 bytes the schedule may use (one static array)."""
        return self.l1_size - self.l1_reserved

    @property
    def align(self):
        """Alignment of every buffer: engine pointers are M-aligned."""
        return max(self.config.M, 4)


def _pad(n, m):
    return -(-n // m) * m


@dataclass
class Buffer:
    """An L1 tensor: ``size`` bytes owned, ``reach`` bytes the engine may read from it.

    A buffer with a ``parent`` is one *lane* of an interleaved parent (see
    :func:`_interleave_lanes`): it starts ``lane_offset`` bytes into the parent and owns only
    its lane's bytes of every row; the parent is placed in L1, its lanes follow it, and
    buffers of the same lane must not be live at the same time.
    """

    name: str
    size: int
    reach: int = 0
    offset: int | None = None
    first: int | None = None
    last: int | None = None
    parent: str | None = None
    lane_offset: int = 0

    def __post_init__(self):
        self.reach = max(self.reach, self.size)


@dataclass(frozen=True)
class Dma:
    """One DMA transfer between an L2 tensor and an L1 buffer (2-D when rows > 1)."""

    load: bool          #: L2 -> L1 (else L1 -> L2)
    l2: str             #: L2 tensor name
    buffer: str
    row_bytes: int
    rows: int = 1
    l2_stride: int = 0
    l1_stride: int = 0
    l2_offset: int = 0
    l1_offset: int = 0

    @property
    def bytes(self):
        return self.row_bytes * self.rows


@dataclass(frozen=True)
class Ref:
    """A pointer argument: ``buffer`` + ``offset``, as a C ``ctype *``."""

    buffer: str
    offset: int = 0
    ctype: str = "int8_t"


@dataclass
class ItaJob:
    """One ITA job (mode ``attention`` or ``linear``) with its tensors' buffers."""

    name: str
    mode: str
    dims: dict                 #: S, E, P, F
    requant: list              #: 8 (mult, shift, add) rows, REQUANT_* order
    pointers: dict             #: ITA_PTR_* name -> Ref
    reads: tuple
    writes: tuple
    activation: str = "identity"
    gelu: tuple = (0, 0)
    act_rq: tuple = (1, 0, 0)
    causal: bool = False
    valid_keys: int = 0
    macs: int = 0              #: useful MACs (unpadded shapes)
    cycles: int = 0            #: engine cycles of the padded tiles
    stage: str = "attention"   #: attention, ffn1 or ffn2 (each may overlap or not)
    phase: int | None = None


@dataclass
class Kernel:
    """A call of an SPMD core kernel (every core calls it; it ends with a barrier)."""

    name: str                  #: breakdown label
    function: str              #: C function
    args: tuple                #: int or Ref
    reads: tuple
    writes: tuple
    elements: int              #: for the cost model
    stage: str = "attention"
    phase: int | None = None


@dataclass
class Phase:
    index: int
    label: str
    job: ItaJob | None = None
    kernels: list = field(default_factory=list)
    after_ita: bool = False    #: kernels wait for this phase's job (sequential stage)
    defer_dma: bool = False    #: transfers issued when the job has ended (see phase_cost)
    loads: list = field(default_factory=list)   #: issued in this phase, for later phases
    stores: list = field(default_factory=list)  #: issued in this phase


@dataclass
class Schedule:
    """The compiled layer: phases, buffers with offsets, the L2 image layout, the choices."""

    shape: object
    spec: ClusterSpec
    phases: list
    buffers: dict
    l2: dict                   #: name -> (offset from the data base, uint8 array)
    results: dict              #: checked tensor -> (L2 result name, L2 expected name, rows, cols)
    choices: dict
    estimate: dict
    slot_width: int = 1        #: time slots per phase of Buffer.first / Buffer.last

    @property
    def arena_used(self):
        return max((b.offset + b.reach for b in self.buffers.values()), default=0)


#: Cost model: cycles per element on one core (measured in the layer, docs/deploy.md).
KERNEL_COSTS = {"dl_head_acc": 5.0, "dl_head_final": 5.5, "dl_scatter": 2.5,
                "k_add_layernorm": 18.0}
#: Cycles core 0 spends programming one job, and per phase on barriers and bookkeeping.
JOB_OVERHEAD = 400
PHASE_OVERHEAD = 300


def layer_macs(shape):
    """Multiply-accumulates of one layer: H (4 S E P + 2 S^2 P) + 2 S E F."""
    S, E, P, H, F = shape.S, shape.E, shape.P, shape.H, shape.F
    return H * (4 * S * E * P + 2 * S * S * P) + 2 * S * E * F


def _tiles(n, m):
    return -(-n // m)


def _gemm_cycles(rows, cols, inner, cfg):
    m = cfg.M
    return _tiles(rows, m) * _tiles(cols, m) * _tiles(inner, m) * m * m // cfg.N


def _attention_cycles(S, E, P, cfg):
    return (3 * _gemm_cycles(S, P, E, cfg) + _gemm_cycles(S, S, P, cfg)
            + _gemm_cycles(S, P, S, cfg) + _gemm_cycles(S, E, P, cfg))


def _i8(a):
    return np.ascontiguousarray(np.asarray(a).astype(np.int8)).view(np.uint8).ravel()


def _i32(a, length=None):
    a = np.asarray(a).astype(np.int32).ravel()
    if length is not None and length > a.size:
        a = np.concatenate([a, np.zeros(length - a.size, np.int32)])
    return np.ascontiguousarray(a).view(np.uint8)


def _rq(row):
    return tuple(int(v) for v in np.asarray(row).ravel()[:3])


def _interleave_lanes(P, m):
    """Heads whose ``Wo^T`` share one M-row-pitch buffer, each in its own columns.

    The OW step reads ``Wo^T`` (E x P) as rows of Pp = pad(P, M) bytes, and the engine zeroes
    the input (O) lanes at and beyond P before multiplying (``inner_keep`` in
    ``ita.rtl.engine``), so bytes P .. Pp - 1 of every weight row never reach an output.
    Head h's rows may therefore start ``(h % lanes) * pad(P, 4)`` bytes into the shared rows:
    its pointer is word-aligned, which is all the wide L1 port needs (it reads 32
    consecutive words from any word address), and the other heads' columns sit in its
    masked lanes. With P = 32 two heads share 24 KiB where two slots held 48 KiB.
    """
    return max(1, _pad(P, m) // _pad(P, 4))


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


# --- lowering -----------------------------------------------------------------------------


class _Lowering:
    """Builds buffers, L2 tensors and the program-ordered operations for one tiling."""

    def __init__(self, shape, params, x, spec, *, fc, ec, causal, valid_keys, debug,
                 spill=False):
        self.shape, self.p, self.spec, self.cfg = shape, params, spec, spec.config
        self.fc, self.ec, self.causal, self.valid_keys = fc, ec, causal, valid_keys or 0
        self.spill = spill
        self.debug = debug
        self.buffers: dict[str, Buffer] = {}
        self.l2: dict[str, np.ndarray] = {}
        self.loads: dict[str, list[Dma]] = {}     # buffer -> its loads
        self.stores: dict[str, list[Dma]] = {}    # buffer -> its stores
        self.ops: list = []
        self.results: dict = {}
        self.x = np.asarray(x)

    def buf(self, name, size, reach=0):
        b = Buffer(name, _pad(size, self.spec.align), _pad(max(reach, size), self.spec.align))
        self.buffers[name] = b
        return name

    def l2_tensor(self, name, make, size=None):
        """Declare L2 tensor ``name``; ``make()`` builds its bytes, only for the chosen plan."""
        self.l2[name] = make
        return name

    def load(self, buffer, dma):
        self.loads.setdefault(buffer, []).append(dma)

    def store(self, buffer, dma):
        self.stores.setdefault(buffer, []).append(dma)

    def lower(self):
        s, p, cfg = self.shape, self.p, self.cfg
        S, E, P, H, F = s.S, s.E, s.P, s.H, s.F
        m = cfg.M
        Sp, Ep, Pp = _pad(S, m), _pad(E, m), _pad(P, m)
        self.Sp, self.Ep, self.Pp = Sp, Ep, Pp

        # Resident inputs: x and the LayerNorm constants.
        self.buf("x", Sp * Ep)
        self.load("x", Dma(True, self.l2_tensor("x", lambda: _i8(self.x)), "x", S * E))
        for ln in ("ln1", "ln2"):
            gamma, beta = getattr(p, f"{ln}_gamma"), getattr(p, f"{ln}_beta")
            self.buf(f"{ln}_gamma", _pad(E, 4))
            self.buf(f"{ln}_beta", 4 * E)
            self.load(f"{ln}_gamma", Dma(True, self.l2_tensor(
                f"{ln}_gamma", lambda gamma=gamma: _i8(gamma)), f"{ln}_gamma", _pad(E, 4)))
            self.load(f"{ln}_beta", Dma(True, self.l2_tensor(
                f"{ln}_beta", lambda beta=beta: _i32(beta)), f"{ln}_beta", 4 * E))

        # Attention: one job per head; the cores sum the heads in int16.
        pw = _pad(P, 4)  # L2 row pitch of wo_t (DMA rows are whole words)
        bias_off = 3 * P * Ep
        slot_size = bias_off + (3 * Pp + Ep) * 4
        # The padding rows of Wv^T (a Pp-row tile read from 2 P Ep) spill past the slot.
        slot_reach = 2 * P * Ep + Pp * Ep
        lanes = _interleave_lanes(P, m) if H > 1 else 1
        if lanes > 1:
            self.buf("wo_t", Ep * Pp, reach=Ep * Pp + (lanes - 1) * pw)
        self.acc = self.buf("head_acc", 2 * S * E) if H > 1 else None
        self.buf("attn", S * E)
        for h in range(H):
            slot = self.buf(f"w_head{h}", slot_size, reach=slot_reach)
            self.load(slot, Dma(True, self.l2_tensor(f"wqkv{h}", lambda h=h: np.concatenate(
                [_i8(np.asarray(w[h]).T) for w in (p.wq, p.wk, p.wv)])), slot, 3 * P * E))

            def wo_t(h=h):
                t = np.zeros((E, pw), np.int8)
                t[:, :P] = np.asarray(p.wo[h]).T
                return _i8(t)
            name = self.l2_tensor(f"wo{h}", wo_t)
            wo = f"wo_t{h}"
            if lanes > 1:
                parent = self.buffers["wo_t"]
                lane = (h % lanes) * pw
                self.buffers[wo] = Buffer(wo, parent.size - lane, parent.reach - lane,
                                          parent="wo_t", lane_offset=lane)
            else:
                self.buf(wo, Ep * Pp)
            if pw == Pp:
                self.load(wo, Dma(True, name, wo, E * pw))
            else:
                self.load(wo, Dma(True, name, wo, pw, rows=E, l2_stride=pw, l1_stride=Pp))
            biases = self.l2_tensor(f"bias{h}", lambda h=h: np.concatenate(
                [_i32(p.bq[h], Pp), _i32(p.bk[h], Pp), _i32(p.bv[h], Pp), _i32(p.bo[h], Ep)]))
            self.load(slot, Dma(True, biases, slot, (3 * Pp + Ep) * 4, l1_offset=bias_off))
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
            self.ops.append(ItaJob(
                f"attention head {h}", "attention", dict(S=S, E=E, P=P, F=0), rq, pointers,
                reads=("x", slot, wo), writes=(scratch, out), causal=self.causal,
                valid_keys=self.valid_keys, macs=4 * S * E * P + 2 * S * S * P,
                cycles=_attention_cycles(S, E, P, self.cfg)))
            if h < H - 1:
                self.ops.append(Kernel("head_sum", "dl_head_acc",
                                       (Ref(self.acc, 0, "int16_t"), Ref(out), S * E, int(h == 0)),
                                       reads=(out,) + ((self.acc,) if h else ()),
                                       writes=(self.acc,), elements=S * E))
            else:
                acc_arg = Ref(self.acc, 0, "int16_t") if self.acc else 0
                self.ops.append(Kernel("head_sum", "dl_head_final",
                                       (acc_arg, Ref(out), Ref("attn"), S * E, *_rq(p.rq_sum)),
                                       reads=(out,) + ((self.acc,) if self.acc else ()),
                                       writes=("attn",), elements=S * E))

        self.buf("add1", S * E)
        self.buf("ln1", S * E)
        self.ops.append(self._add_layernorm("ln1", "x", "attn", "add1", "ln1", p.add1))

        # Feed-forward: F1 (GELU) over column chunks of w1, then F2 over column chunks of w2.
        Fp = _pad(F, m)
        self.buf("f1", Sp * Fp)
        self._ffn_gemm("f1", "ln1", p.w1, p.b1, E, F, self.fc, _rq(np.asarray(p.rq_ffn)[0]),
                       activation=getattr(s, "activation", "gelu"))
        self.buf("f2", S * E if Ep == E else Sp * Ep)
        self._ffn_gemm("f2", "f1", p.w2, p.b2, F, E, self.ec, _rq(np.asarray(p.rq_ffn)[1]))

        residual = "ln1"
        if self.spill:
            # ln1 waits in L2 during F2 (stored after the add & norm, loaded during the last
            # F2 job): its 24 KiB in L1 make room for wider F2 chunks.
            self.l2_tensor("ln1_spill", lambda: np.zeros(S * E, np.uint8))
            self.store("ln1", Dma(False, "ln1_spill", "ln1", S * E))
            residual = self.buf("ln1_back", S * E)
            self.load(residual, Dma(True, "ln1_spill", residual, S * E))
        self.buf("add2", S * E)
        self.buf("out", S * E)
        self.ops.append(self._add_layernorm("ln2", residual, "f2", "add2", "out", p.add2,
                                            stage="ffn2"))

        checked = ("attn", "add1", "ln1", "f1", "f2", "add2", "out") if self.debug else ("out",)
        for name in checked:
            cols, pitch = (F, Fp) if name == "f1" else (E, E)
            size = S * pitch
            self.l2_tensor(f"result_{name}", lambda size=size: np.zeros(size, np.uint8))
            # the expected bytes are filled in by the emitter from the golden model
            self.l2_tensor(f"expected_{name}", lambda size=size: np.zeros(size, np.uint8))
            self.store(name, Dma(False, f"result_{name}", name, size))
            self.results[name] = (f"result_{name}", f"expected_{name}", S, cols, pitch)

    def _add_layernorm(self, ln, x, y, total, dst, add_rq, stage="attention"):
        """Residual add and LayerNorm fused row by row (``k_add_layernorm``)."""
        p, S, E = self.p, self.shape.S, self.shape.E
        coef = self.buf(f"{ln}_coef", 8 * E)  # scratch of this call only
        return Kernel("add_layernorm", "k_add_layernorm",
                      (Ref(x), Ref(y), Ref(total), Ref(dst), S, E,
                       *[int(v) for v in np.asarray(add_rq).ravel()[:4]],
                       Ref(f"{ln}_gamma"), Ref(f"{ln}_beta", 0, "int32_t"),
                       *_rq(getattr(p, f"{ln}_rq")), Ref(coef, 0, "int32_t")),
                      reads=(x, y, f"{ln}_gamma", f"{ln}_beta"), writes=(total, dst, coef),
                      elements=S * E, stage=stage)

    def _ffn_gemm(self, dst, src, w, b, inner, cols, chunk, rq, activation="identity"):
        """dst (S x cols) = act(rq(src @ w + b)) as linear jobs over column chunks."""
        stage = "ffn1" if dst == "f1" else "ffn2"
        p, S, m = self.p, self.shape.S, self.cfg.M
        Sp, inner_p, cols_p = _pad(S, m), _pad(inner, m), _pad(cols, m)
        w_t = np.asarray(w).T  # (cols, inner)
        b = np.asarray(b)
        n_chunks = _tiles(cols, chunk)
        gelu = (int(p.gelu_b), int(p.gelu_c)) if activation == "gelu" else (0, 0)
        act_rq = _rq(p.act_rq) if activation != "identity" else (1, 0, 0)
        for j in range(n_chunks):
            c0 = j * chunk
            width = min(chunk, cols - c0)
            width_p = _pad(width, m)
            wname = self.buf(f"{dst}_w{j}", width * inner_p + 4 * width_p,
                             reach=max(width_p * inner_p, width * inner_p + 4 * width_p))

            def blob(c0=c0, width=width, width_p=width_p):
                rows = np.zeros((width, inner_p), np.int8)
                rows[:, :inner] = w_t[c0:c0 + width]
                return np.concatenate([_i8(rows), _i32(b[c0:c0 + width], width_p)])
            self.load(wname, Dma(True, self.l2_tensor(f"{dst}_w{j}", blob), wname,
                                 width * inner_p + 4 * width_p))
            direct = n_chunks == 1 and width_p == cols_p
            out = dst if direct else self.buf(f"{dst}_y{j}", Sp * width_p)
            self.ops.append(ItaJob(
                f"{dst} chunk {j}", "linear", dict(S=S, E=inner, P=width, F=0),
                [rq] + [(0, 0, 0)] * 7,
                {"Q_IN": Ref(src), "WQ": Ref(wname), "BQ": Ref(wname, width * inner_p),
                 "QP": Ref(out)},
                reads=(src, wname), writes=(out,), activation=activation, gelu=gelu,
                act_rq=act_rq, macs=S * inner * width,
                cycles=_gemm_cycles(S, width, inner, self.cfg), stage=stage))
            if not direct:
                self.ops.append(Kernel(f"relayout_{dst}", "dl_scatter",
                                       (Ref(out), width_p, Ref(dst, c0), cols_p, S, width),
                                       reads=(out,), writes=(dst,), elements=S * width,
                                       stage=stage))


# --- phases ---------------------------------------------------------------------------------


def _load_slot(ph, width):
    """First time slot of a buffer loaded in phase ``ph``: after the job when deferred."""
    return ph.index * width + (1 if ph.defer_dma else 0)


def _phases(low: _Lowering, overlap: dict, spec):
    """Pack the operations into phases (see the module docstring) and set buffer lifetimes."""
    writer_phase: dict[str, int] = {}     # buffer -> last phase that writes it
    writer_is_ita: dict[str, bool] = {}
    readers: dict[str, list[int]] = {}
    ita_reads: dict[int, set] = {}
    phases: dict[int, Phase] = {}
    last_ita, last_kernel = 0, 1

    def phase(i):
        return phases.setdefault(i, Phase(i, ""))

    for op in low.ops:
        if isinstance(op, ItaJob):
            earliest = last_ita + 1
            for r in op.reads:
                if r in writer_phase:
                    earliest = max(earliest, writer_phase[r] + 1)
            p = earliest
            op.phase = p
            ph = phase(p)
            ph.job, ph.label = op, op.name
            last_ita = p
            ita_reads.setdefault(p, set()).update(op.reads)
            for w in op.writes:
                writer_phase[w], writer_is_ita[w] = p, True
        else:
            sequential = not overlap[op.stage]
            earliest = last_kernel
            for r in op.reads:
                if r in writer_phase:
                    gap = 0 if not writer_is_ita[r] or sequential else 1
                    earliest = max(earliest, writer_phase[r] + gap)
            p = earliest
            while any(w in ita_reads.get(p, ()) for w in op.writes):
                p += 1  # never overwrite what the phase's job reads
            op.phase = p
            ph = phase(p)
            if any(writer_is_ita.get(r) and writer_phase.get(r) == p for r in op.reads):
                ph.after_ita = True
            ph.kernels.append(op)
            last_kernel = p
            for w in op.writes:
                writer_phase[w], writer_is_ita[w] = p, False
        for r in op.reads:
            readers.setdefault(r, []).append(op.phase)

    last = max(phases) + 1  # epilogue: the final stores
    for i in range(0, last + 1):
        phase(i)
    # Lifetimes in time slots: a phase spans `width` slots; its job, loads and stores hold
    # their buffers for the whole phase, kernel i of the phase uses slot 1 + i only.
    width = max(len(ph.kernels) for ph in phases.values()) + 2

    def whole(q):
        return [q * width, q * width + width - 1]

    def lifetimes(deferred):
        times: dict[str, list[int]] = {}
        for ph in phases.values():
            if ph.job:  # a deferred phase's kernels and transfers start after its job
                span = [ph.index * width] * 2 if ph.index in deferred else whole(ph.index)
                for name in ph.job.reads + ph.job.writes:
                    times.setdefault(name, []).extend(span)
            for i, k in enumerate(ph.kernels):
                for name in k.reads + k.writes:
                    times.setdefault(name, []).append(ph.index * width + 1 + i)
        return times

    times = lifetimes(())
    load_phase, store_phase = {}, {}
    parents = {b.parent for b in low.buffers.values()}
    for b in low.buffers.values():
        if b.name in parents:
            continue  # spans its lanes (see _place_lanes)
        uses = times.get(b.name, [])
        if not uses:
            raise CompileError(f"buffer {b.name} is never used")
        if b.name in low.loads:
            load_phase[b.name] = min(uses) // width - 1
            phases[load_phase[b.name]].loads.extend(low.loads[b.name])
        if b.name in low.stores:
            store_phase[b.name] = max(op.phase for op in low.ops if b.name in op.writes) + 1
            phases[store_phase[b.name]].stores.extend(low.stores[b.name])
    for ph in phases.values():
        ph.defer_dma = bool(ph.job and ph.after_ita and phase_cost(ph, spec, choose=True)[1])
    deferred = {ph.index for ph in phases.values() if ph.defer_dma}
    times = lifetimes(deferred)
    for b in low.buffers.values():
        if b.name in parents:
            continue
        uses = times[b.name]
        b.first, b.last = min(uses), max(uses)
        if b.name in load_phase:
            b.first = _load_slot(phases[load_phase[b.name]], width)
        if b.name in store_phase:
            b.last = max(b.last, whole(store_phase[b.name])[1])
    _span_lanes(low.buffers.values())
    low.slot_width = width
    ordered = [phases[i] for i in sorted(phases)]
    ordered[0].label = "prologue"
    ordered[-1].label = "epilogue"
    for ph in ordered:
        if not ph.label:
            ph.label = " + ".join(dict.fromkeys(k.name for k in ph.kernels)) or "wait"
    return ordered


# --- L1 allocation --------------------------------------------------------------------------


#: Placement orders tried in turn: largest first, then by start time (first fit along the
#: schedule), then longest-lived first; first fit fragments differently under each.
_ORDERS = (lambda b: (-b.size, b.first, b.name), lambda b: (b.first, -b.size, b.name),
           lambda b: (b.first - b.last, -b.size, b.name))


def _span_lanes(buffers):
    """Give every interleaved parent the lifetime of its lanes; CompileError when two
    buffers of one lane are live at the same time (a load moved too early)."""
    buffers = list(buffers)
    lanes = {}
    for b in buffers:
        if b.parent:
            lanes.setdefault(b.parent, []).append(b)
    for b in buffers:
        if b.name not in lanes:
            continue
        children = lanes[b.name]
        b.first, b.last = min(c.first for c in children), max(c.last for c in children)
        for i, c in enumerate(children):
            for d in children[i + 1:]:
                if c.lane_offset == d.lane_offset and c.first <= d.last and d.first <= c.last:
                    raise CompileError(f"{c.name} and {d.name} share a lane of {b.name} "
                                       f"while both are live")


def allocate(buffers, arena, align, phases=None, width=1):
    """Give every buffer an offset such that buffers live at the same time do not overlap and
    every buffer's reach stays inside the arena. CompileError names the first that fails
    (in the largest-first order) when no order fits. Lanes of an interleaved buffer get
    their parent's offset plus their lane offset."""
    buffers = list(buffers)
    _span_lanes(buffers)
    lanes = [b for b in buffers if b.parent]
    placed = [b for b in buffers if not b.parent]
    by_name = {b.name: b for b in placed}
    first_error = None
    for key in _ORDERS:
        try:
            _allocate(sorted(placed, key=key), arena, align, phases, width)
        except CompileError as exc:
            first_error = first_error or exc
            continue
        for b in lanes:
            b.offset = by_name[b.parent].offset + b.lane_offset
        return
    raise first_error


def _allocate(order, arena, align, phases, width):
    placed: list[Buffer] = []
    for b in order:
        live = sorted((o for o in placed if o.first <= b.last and b.first <= o.last),
                      key=lambda o: o.offset)
        offset = 0
        for o in live:
            if offset + b.size <= o.offset:
                break
            offset = max(offset, _pad(o.offset + o.size, align))
        if offset + b.reach > arena:
            peak, when = max((sum(o.size for o in live if o.first <= t <= o.last), t)
                             for t in range(b.first, b.last + 1))
            taken = [o for o in live if o.first <= when <= o.last]
            where = ""
            if phases is not None:
                where = f" in phase {phases[when // width].index} ({phases[when // width].label})"
            others = ", ".join(f"{o.name} {o.size} B" for o in
                               sorted(taken, key=lambda o: -o.size)[:4])
            raise CompileError(
                f"cannot place tensor {b.name} ({b.size} B, reads {b.reach} B) in L1: "
                f"{peak} B of the {arena} B L1 arena are taken{where}"
                + (f" by {others}" if others else ""))
        b.offset = offset
        placed.append(b)


# --- cost model and search --------------------------------------------------------------


#: Engine progress while the DMA moves data in L1: the DMA and the cores (narrow side) win
#: 3 of every 4 conflicting cycles, and the engine's 1024-bit access needs all 32 banks, so a
#: job runs at about a third of its speed while a transfer streams (measured in MiniLM:
#: 31 % to 44 % per job).
DMA_CONTENDED_SPEED = 1 / 3


def _contended(job, dma):
    """Cycles of a job of ``job`` engine cycles started together with ``dma`` DMA cycles."""
    if job <= dma * DMA_CONTENDED_SPEED:
        return job / DMA_CONTENDED_SPEED
    return dma + job - dma * DMA_CONTENDED_SPEED


def phase_cost(ph, spec, choose=False):
    """(cycles, defer) of one phase; ``defer``: issue the transfers when the job has ended
    (chosen when ``choose``, else the phase's ``defer_dma``, fixed with the L1 lifetimes).

    A sequential phase (kernels after the job) whose transfers would stretch the job is
    cheaper with its transfers moved after the job, where they overlap the kernels instead
    (cores and DMA share the banks fairly) -- e.g. an attention head with the next head's
    51 KiB of weights: 16.2k engine cycles with the load beside it, 6.9k without.
    """
    job = ph.job.cycles + JOB_OVERHEAD if ph.job else 0
    kern = sum(KERNEL_COSTS.get(k.function, 4.0) * k.elements / spec.cores for k in ph.kernels)
    moved = sum(d.bytes for d in ph.loads + ph.stores) / spec.dma_bytes_per_cycle
    if not ph.job:
        return max(kern, moved), False
    if not ph.after_ita:
        return max(_contended(job, moved), kern, moved), False
    now = max(_contended(job, moved) + kern, moved)
    deferred = job + max(kern, moved)
    defer = deferred < now if choose else ph.defer_dma
    return (deferred, True) if defer else (now, False)


def estimate(phases, spec):
    """Cycles per phase (:func:`phase_cost`) plus the per-phase overhead."""
    total, ita, kernels, dma = 0, 0, 0, 0
    for ph in phases:
        cost, _ = phase_cost(ph, spec)
        total += cost + PHASE_OVERHEAD
        ita += ph.job.cycles + JOB_OVERHEAD if ph.job else 0
        kernels += sum(KERNEL_COSTS.get(k.function, 4.0) * k.elements / spec.cores
                       for k in ph.kernels)
        dma += sum(d.bytes for d in ph.loads + ph.stores) / spec.dma_bytes_per_cycle
    return {"cycles": int(total), "ita": int(ita), "kernels": int(kernels), "dma": int(dma)}


def _chunk_candidates(cols, m):
    """Chunk widths for a GEMM's output columns: whole, then multiples of M, then M/2, M/4."""
    widths = {cols}
    widths.update(range(m, cols, m))
    widths.update(w for w in (m // 2, m // 4) if 4 <= w < cols)
    return sorted(widths, reverse=True)


def plan_layer(shape, params, x, spec: ClusterSpec | None = None, *, causal=False,
               valid_keys=None, debug=False, fc=None, ec=None):
    """Lower, phase, allocate: the cheapest plan (by :func:`estimate`) that fits L1.

    ``fc`` / ``ec`` force the chunk widths of the two feed-forward GEMMs; ``debug`` also
    stores and checks the intermediate tensors (attn, add1, ln1, f1, f2, add2).
    """
    spec = spec or ClusterSpec()
    cfg = spec.config
    _check_shape(shape, cfg)
    x = np.asarray(x)
    if x.shape != (shape.S, shape.E):
        raise CompileError(f"x must have shape ({shape.S}, {shape.E}), got {x.shape}")
    fcs = [fc] if fc else _chunk_candidates(shape.F, cfg.M)
    ecs = [ec] if ec else _chunk_candidates(shape.E, cfg.M)
    modes = [{"attention": a, "ffn1": f, "ffn2": g}
             for a in (True, False) for f in (True, False) for g in (True, False)]
    candidates = []
    for f_chunk in fcs:
        for e_chunk in ecs:
            for mode in modes:
                for spill in (False, True):
                    low = _Lowering(shape, params, x, spec, fc=f_chunk, ec=e_chunk,
                                    causal=causal, valid_keys=valid_keys, debug=debug,
                                    spill=spill)
                    low.lower()
                    phases = _phases(low, mode, spec)
                    candidates.append((estimate(phases, spec)["cycles"], spill, f_chunk,
                                       e_chunk, mode, low, phases))
    candidates.sort(key=lambda c: c[:2])
    failures = []
    for _cost, spill, f_chunk, e_chunk, mode, low, phases in candidates:
        try:
            allocate(list(low.buffers.values()), spec.arena_bytes, spec.align, phases,
                     low.slot_width)
        except CompileError as exc:
            peak = _peak_live(low.buffers.values())
            failures.append((peak, str(exc)))
            continue
        hoisted = _hoist_loads(low, phases, spec)
        choices = {"ffn1_chunk": f_chunk, "ffn2_chunk": e_chunk, "spill_ln1": spill,
                   "hoisted_loads": hoisted,
                   "overlap": {k: bool(v) for k, v in mode.items()}}
        return Schedule(shape, spec, phases, low.buffers, _layout_l2(low.l2, spec),
                        low.results, choices, estimate(phases, spec), low.slot_width)
    failures.sort()
    raise CompileError(f"no tiling fits the {spec.arena_bytes} B L1 arena "
                       f"(L1 {spec.l1_size} B); smallest plan: {failures[0][1]}")


def _hoist_loads(low, phases, spec, reach=8):
    """Issue loads up to ``reach`` phases earlier where the estimate drops and L1 still fits.

    A load normally goes out one phase ahead. Phases whose cores work long without moving
    data (the last head's sum with the first add & norm) can instead prefetch several
    weight chunks, which takes them off the DMA-bound phases that follow. Loads from L2
    tensors that the layer itself stores (a spilled activation) stay where they are. Returns
    the number of loads moved; the buffers are allocated for the result.
    """
    width = low.slot_width
    buffers = list(low.buffers.values())
    stored = {d.l2 for dmas in low.stores.values() for d in dmas}
    moved = 0
    for name in sorted(low.loads, key=lambda n: (low.buffers[n].first, n)):
        dmas, b = low.loads[name], low.buffers[name]
        if any(d.l2 in stored for d in dmas):
            continue
        p = b.first // width
        best, best_cost = None, estimate(phases, spec)["cycles"]
        for q in range(p - 1, max(p - 1 - reach, -1), -1):
            for d in dmas:
                phases[p].loads.remove(d)
            phases[q].loads.extend(dmas)
            cost = estimate(phases, spec)["cycles"]
            if cost < best_cost:
                first, b.first = b.first, _load_slot(phases[q], width)
                try:
                    allocate(buffers, spec.arena_bytes, spec.align)
                    best, best_cost = q, cost
                except CompileError:
                    pass
                b.first = first
            for d in dmas:
                phases[q].loads.remove(d)
            phases[p].loads.extend(dmas)
        if best is not None:
            for d in dmas:
                phases[p].loads.remove(d)
            phases[best].loads.extend(dmas)
            b.first = _load_slot(phases[best], width)
            moved += 1
    allocate(buffers, spec.arena_bytes, spec.align, phases, width)
    return moved


def _peak_live(buffers):
    buffers = [b for b in buffers if not b.parent]
    phases = {p for b in buffers for p in range(b.first, b.last + 1)}
    return max(sum(b.size for b in buffers if b.first <= p <= b.last) for p in phases)


def _layout_l2(tensors, spec):
    """Offsets of the L2 tensors from the data base, 64-byte aligned."""
    layout, cursor = {}, 0
    for name, make in tensors.items():
        data = np.ascontiguousarray(make(), dtype=np.uint8).ravel()
        layout[name] = (cursor, data)
        cursor += _pad(max(len(data), 4), 64)
    if spec.l2_data_offset + cursor > spec.l2_size:
        raise CompileError(f"the layer needs {cursor} B of L2 data above offset "
                           f"{spec.l2_data_offset:#x}, but L2 holds {spec.l2_size} B")
    return layout
