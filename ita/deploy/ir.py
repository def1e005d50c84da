"""The compiler's IR: tensors with their L2 and L1 homes, and the operations of a schedule.

A lowering (:mod:`ita.deploy.lower`) turns one block of the integer model into

* :class:`L2Tensor` s: constants (weights laid out the way the engine and kernels read them,
  with their bytes), the block's input and outputs, and spill areas (no bytes: the program
  or the harness writes them);
* :class:`Buffer` s: L1 tensors, placed later by :mod:`ita.deploy.allocate`;
* operations in program order: :class:`Dma` transfers (attached to buffers), :class:`ItaJob`
  s and :class:`Kernel` calls.

Scheduling (:mod:`ita.deploy.schedule`) packs the operations into :class:`Phase` s; the
result of planning is a :class:`Schedule`, which emission (:mod:`ita.deploy.emit`) turns
into C and an L2 image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .target import ClusterSpec

__all__ = ["CompileError", "TensorSpec", "L2Tensor", "Buffer", "Dma", "Ref", "ItaJob",
           "L2Ref", "Kernel", "Phase", "Lowered", "Schedule", "pad", "tiles"]


class CompileError(ValueError):
    """The model cannot be compiled for the cluster; the message is one line."""


def pad(n, m):
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def tiles(n, m):
    """Tiles of edge ``m`` that cover ``n``."""
    return -(-n // m)


@dataclass(frozen=True)
class TensorSpec:
    """A typed tensor of the integer model (no data): name, shape, element type."""

    name: str
    shape: tuple
    dtype: str = "int8"


#: Roles of L2 tensors: ``const`` has bytes in the image; ``input`` is written by whoever
#: runs the program before it starts; ``output`` and ``spill`` are written by the program, and
#: so is ``activation``, a block's output that the next block of the program reads back.
#: Spill areas and activations live only between their store and their last load, so they
#: share L2 (:func:`ita.deploy.allocate.layout_l2`).
L2_ROLES = ("const", "input", "output", "spill", "activation")


@dataclass
class L2Tensor:
    """An L2 tensor: ``size`` bytes at ``offset`` from the data base (set by the layout).

    ``make`` builds a constant's bytes; it is only called for the chosen plan.
    """

    name: str
    role: str
    size: int
    make: object = None
    offset: int | None = None
    data: np.ndarray | None = None
    #: ``"l2"``, or ``"l3"`` for a constant kept off chip (``ClusterSpec.weights``); the
    #: offset is then from the L3 base.
    memory: str = "l2"

    def __post_init__(self):
        if self.role not in L2_ROLES:
            raise ValueError(f"unknown L2 role {self.role!r}")


@dataclass
class Buffer:
    """An L1 tensor: ``size`` bytes owned, ``reach`` bytes the engine may read from it.

    A buffer with a ``parent`` is one *lane* of an interleaved parent (see
    :func:`ita.deploy.lower.interleave_lanes`): it starts ``lane_offset`` bytes into the
    parent and owns only its lane's bytes of every row; the parent is placed in L1, its lanes
    follow it, and buffers of the same lane must not be live at the same time.
    """

    name: str
    size: int
    reach: int = 0
    offset: int | None = None
    first: int | None = None
    last: int | None = None
    parent: str | None = None
    lane_offset: int = 0
    block: int = 0             #: the program's block that declared it

    def __post_init__(self):
        self.reach = max(self.reach, self.size)


@dataclass(frozen=True)
class Dma:
    """One DMA transfer between an L2 tensor and an L1 buffer (2-D when rows > 1)."""

    load: bool          #: L2 -> L1 (else L1 -> L2)
    l2: str             #: L2 tensor name (its ``memory`` may be L3)
    buffer: str
    row_bytes: int
    rows: int = 1
    l2_stride: int = 0
    l1_stride: int = 0
    l2_offset: int = 0
    l1_offset: int = 0
    memory: str = "l2"  #: where the tensor lives: the rate of the cost model

    @property
    def bytes(self):
        return self.row_bytes * self.rows


@dataclass(frozen=True)
class Ref:
    """A pointer argument: ``buffer`` + ``offset``, as a C ``ctype *``."""

    buffer: str
    offset: int = 0
    ctype: str = "int8_t"


@dataclass(frozen=True)
class L2Ref:
    """A pointer argument to L2 tensor ``name`` (+ ``offset``), as a ``void *``."""

    name: str
    offset: int = 0


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
    logit_frac: int = 0        #: ITAmax logit step ln 2 / 2**logit_frac
    macs: int = 0              #: useful MACs (unpadded shapes)
    cycles: int = 0            #: engine cycles of the padded tiles
    stage: str = "attention"   #: attention, ffn1 or ffn2 (each may overlap or not)
    phase: int | None = None
    block: int = 0             #: the program's block it belongs to
    step: int = 0              #: the block's decoding step (0 unless it runs several)


@dataclass
class Kernel:
    """A call of an SPMD core kernel (every core calls it; it ends with a barrier).

    ``kind`` names the computation (the cost model's key; emission maps it to a C function),
    ``name`` the breakdown label.
    """

    name: str
    kind: str                  #: head_acc, head_final, relayout or add_layernorm
    args: tuple                #: int or Ref, in the kernel's argument order
    reads: tuple
    writes: tuple
    elements: int              #: for the cost model
    stage: str = "attention"
    phase: int | None = None
    block: int = 0             #: the program's block it belongs to
    step: int = 0              #: the block's decoding step (0 unless it runs several)


@dataclass
class Phase:
    index: int
    label: str
    job: ItaJob | None = None
    kernels: list = field(default_factory=list)
    after_ita: bool = False    #: kernels wait for this phase's job (sequential stage)
    defer_dma: bool = False    #: transfers issued when the job has ended (cost.phase_cost)
    loads: list = field(default_factory=list)   #: issued in this phase, for later phases
    stores: list = field(default_factory=list)  #: issued in this phase
    block: int = 0             #: the block whose work the phase ends (the last, if several)
    step: int = 0              #: the decoding step of that block whose work the phase ends


@dataclass(frozen=True)
class Io:
    """An input or output of the program in L2: ``rows`` x ``cols`` int8, row ``pitch``."""

    l2: str
    rows: int
    cols: int
    pitch: int


@dataclass
class Lowered:
    """What a lowering produces for one tiling: buffers, L2 tensors, operations, I/O."""

    buffers: dict = field(default_factory=dict)   #: name -> Buffer
    l2: dict = field(default_factory=dict)        #: name -> L2Tensor
    loads: dict = field(default_factory=dict)     #: buffer -> its loads
    stores: dict = field(default_factory=dict)    #: buffer -> its stores
    ops: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)    #: model tensor -> Io
    outputs: dict = field(default_factory=dict)   #: model tensor -> Io
    slot_width: int = 1        #: time slots per phase of Buffer.first / Buffer.last
    #: buffer -> the buffer whose store it loads back (a block's input read from the L2
    #: activation the block before stored): it is ready one phase after that store.
    after: dict = field(default_factory=dict)
    #: block -> first phase in which its loads may be issued (no prefetch across the block
    #: boundary; set by the scheduler when asked for, else empty).
    fences: dict = field(default_factory=dict)


@dataclass
class Schedule:
    """The planned program: phases, buffers with offsets, the L2 layout, I/O, choices.

    ``model`` is the one block of a one-block program, else the whole integer model.
    """

    model: object
    spec: ClusterSpec
    phases: list
    buffers: dict
    l2: dict                   #: name -> L2Tensor with its offset (and a constant's bytes)
    inputs: dict               #: model tensor -> Io
    outputs: dict              #: model tensor -> Io
    choices: dict
    estimate: dict
    slot_width: int = 1        #: time slots per phase of Buffer.first / Buffer.last
    #: Per block of the program: index, kind, shape, MACs, choices, phases, estimate.
    blocks: tuple = ()

    @property
    def arena_used(self):
        return max((b.offset + b.reach for b in self.buffers.values()), default=0)

    @property
    def l2_bytes(self):
        """Bytes of the L2 data image: up to the end of the last tensor in L2."""
        return self.data_bytes("l2")

    def data_bytes(self, memory):
        """Bytes of the data image of ``memory`` (``"l2"`` or ``"l3"``)."""
        return max((t.offset + t.size for t in self.l2.values() if t.memory == memory),
                   default=0)
