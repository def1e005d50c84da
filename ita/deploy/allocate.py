"""Allocation: L1 ranges for the buffers, L2 offsets for the tensors.

L1: disjoint ranges of one static arena for buffers that are live together, first fit in
several orders (largest first, then by start time, then longest-lived first); the first
order that fits wins. Interleaved lanes (``Buffer.parent``) follow their
parent. When nothing fits, :class:`~ita.deploy.ir.CompileError` names the tensor, its size
and what holds L1 at that moment.
"""

from __future__ import annotations

import numpy as np

from .ir import Buffer, CompileError, pad

__all__ = ["allocate", "span_lanes", "peak_live", "layout_l2", "L2_ALIGN", "TRANSIENT_ROLES"]

#: Alignment of every L2 tensor (whole DMA bursts).
L2_ALIGN = 64


#: Placement orders tried in turn: largest first, then by start time (first fit along the
#: schedule), then longest-lived first; first fit fragments differently under each.
_ORDERS = (lambda b: (-b.size, b.first, b.name), lambda b: (b.first, -b.size, b.name),
           lambda b: (b.first - b.last, -b.size, b.name))


def span_lanes(buffers):
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
    span_lanes(buffers)
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
            offset = max(offset, pad(o.offset + o.size, align))
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


def peak_live(buffers):
    """Largest sum of sizes live in one time slot (ranks the plans that do not fit)."""
    buffers = [b for b in buffers if not b.parent]
    slots = {t for b in buffers for t in range(b.first, b.last + 1)}
    return max(sum(b.size for b in buffers if b.first <= t <= b.last) for t in slots)


#: Roles of L2 tensors that live only from their first store to their last load; the others
#: (constants, the program's input and outputs) keep their bytes for the whole program.
TRANSIENT_ROLES = ("spill", "activation")


def _l2_lifetimes(phases):
    """L2 tensor -> [first, last] phase of the transfers that touch it."""
    spans = {}
    for ph in phases or ():
        for d in ph.loads + ph.stores:
            span = spans.setdefault(d.l2, [ph.index, ph.index])
            span[0], span[1] = min(span[0], ph.index), max(span[1], ph.index)
    return spans


def layout_l2(tensors, spec, phases=None):
    """Offsets of the data tensors, L2_ALIGN-aligned: from the L2 data base, or from the L3
    base for constants kept off chip (``memory == "l3"``); builds the constants' bytes.

    Constants, the input and the outputs get their own ranges in declaration order. Spill
    areas and activations between blocks (:data:`TRANSIENT_ROLES`) follow, sharing one area:
    with ``phases``, each takes the first range free of the tensors whose transfers overlap
    its own phases (first fit, largest first), so a program of many blocks needs the L2 of
    one block's activations. CompileError, naming the tensor that ends past the memory, when
    they do not fit."""
    cursors = {"l2": 0, "l3": 0}
    lifetimes = _l2_lifetimes(phases)
    transient = [t for t in tensors.values() if t.role in TRANSIENT_ROLES and t.memory == "l2"]
    for t in tensors.values():
        if t.make is not None:
            data = np.ascontiguousarray(t.make(), dtype=np.uint8).ravel()
            if len(data) > t.size:
                raise ValueError(f"L2 tensor {t.name}: {len(data)} B built, {t.size} declared")
            t.data = np.concatenate([data, np.zeros(t.size - len(data), np.uint8)])
        if t.role in TRANSIENT_ROLES and t.memory == "l2":
            continue
        t.offset = cursors[t.memory]
        cursors[t.memory] += pad(max(t.size, 4), L2_ALIGN)
        _fits(t, cursors, spec)
    base, placed = cursors["l2"], []
    for t in sorted(transient, key=lambda t: (-t.size, t.name)):
        span = lifetimes.get(t.name)  # None: live throughout
        live = sorted((o for o, o_span in placed
                       if span is None or o_span is None
                       or (o_span[0] <= span[1] and span[0] <= o_span[1])),
                      key=lambda o: o.offset)
        offset = base
        for o in live:
            if offset + t.size <= o.offset:
                break
            offset = max(offset, o.offset + pad(max(o.size, 4), L2_ALIGN))
        t.offset = offset
        placed.append((t, span))
        cursors["l2"] = max(cursors["l2"], offset + pad(max(t.size, 4), L2_ALIGN))
        _fits(t, cursors, spec)
    return tensors


def _fits(t, cursors, spec):
    if t.memory == "l3":
        if cursors["l3"] > spec.l3_size:
            raise CompileError(f"the program needs {cursors['l3']} B of L3 data, but L3 "
                               f"holds {spec.l3_size} B (tensor {t.name}, {t.size} B, ends "
                               f"at {t.offset + t.size} B)")
    elif spec.l2_data_offset + cursors["l2"] > spec.l2_size:
        raise CompileError(f"the program needs {cursors['l2']} B of L2 data above offset "
                           f"{spec.l2_data_offset:#x}, but L2 holds {spec.l2_size} B "
                           f"(tensor {t.name}, {t.size} B, ends at {t.offset + t.size} B)")
