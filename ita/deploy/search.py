"""Search: the cheapest plan (by the cost model) whose buffers fit L1.

For every tiling the block's lowering offers (:func:`ita.deploy.lower.tilings`) and every
overlap/sequential choice per stage, the operations are lowered and phased and the plans
ranked by :func:`ita.deploy.cost.estimate`; the cheapest that allocates wins. Its loads then
move up to a few phases earlier where that lowers the estimate and L1 still fits
(:func:`hoist_loads`).
"""

from __future__ import annotations

import itertools

from .allocate import allocate, layout_l2, peak_live
from .cost import estimate
from .frontend import IntegerModel
from .ir import CompileError, Schedule
from .lower import lower, tilings
from .schedule import build_phases, load_slot
from .target import ClusterSpec

__all__ = ["plan", "hoist_loads", "HOIST_REACH"]

#: How many phases before its first use a load may be issued.
HOIST_REACH = 8


def _block(model):
    blocks = model.blocks if isinstance(model, IntegerModel) else (model,)
    if len(blocks) != 1:
        raise CompileError(f"a program holds one block, the model has {len(blocks)}")
    return blocks[0]


def plan(model, spec: ClusterSpec | None = None, *, probes=("out",), **forced) -> Schedule:
    """Lower, phase, allocate: the cheapest plan that fits L1.

    ``model``: an :class:`~ita.deploy.frontend.IntegerModel` (or one block of it);
    ``probes``: tensors stored to L2 as outputs; ``forced``: tiling choices the lowering
    takes as fixed (for the encoder ``fc`` / ``ec``, the FFN chunk widths).
    """
    spec = spec or ClusterSpec()
    block = _block(model)
    candidates = []
    for tiling in tilings(block, spec, **forced):
        stages = type(tiling).STAGES
        for flags in itertools.product((True, False), repeat=len(stages)):
            overlap = dict(zip(stages, flags, strict=True))
            low = lower(block, spec, tiling, probes)
            phases = build_phases(low, overlap, spec)
            candidates.append((estimate(phases, spec)["cycles"], tiling, overlap, low, phases))
    candidates.sort(key=lambda c: (c[0], getattr(c[1], "spill_ln1", False)))
    failures = []
    for _cost, tiling, overlap, low, phases in candidates:
        try:
            allocate(list(low.buffers.values()), spec.arena_bytes, spec.align, phases,
                     low.slot_width)
        except CompileError as exc:
            failures.append((peak_live(low.buffers.values()), str(exc)))
            continue
        hoisted = hoist_loads(low, phases, spec)
        choices = {**_tiling_choices(tiling), "hoisted_loads": hoisted,
                   "overlap": {k: bool(v) for k, v in overlap.items()}}
        return Schedule(block, spec, phases, low.buffers, layout_l2(low.l2, spec), low.inputs,
                        low.outputs, choices, estimate(phases, spec), low.slot_width)
    failures.sort()
    raise CompileError(f"no tiling fits the {spec.arena_bytes} B L1 arena "
                       f"(L1 {spec.l1_size} B); smallest plan: {failures[0][1]}")


def _tiling_choices(tiling):
    return {name: getattr(tiling, name) for name in tiling.__dataclass_fields__}


def hoist_loads(low, phases, spec, reach=HOIST_REACH):
    """Issue loads up to ``reach`` phases earlier where the estimate drops and L1 still fits.

    A load normally goes out one phase ahead. Phases whose cores work long without moving
    data (the last head's sum with the first add & norm) can instead prefetch several
    weight chunks, which takes them off the DMA-bound phases that follow. Loads from L2
    tensors that the program itself stores (a spilled activation) stay where they are.
    Returns the number of loads moved; the buffers are allocated for the result.
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
                first, b.first = b.first, load_slot(phases[q], width)
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
            b.first = load_slot(phases[best], width)
            moved += 1
    allocate(buffers, spec.arena_bytes, spec.align, phases, width)
    return moved
