"""Search: the cheapest plan (by the cost model) whose buffers fit L1.

For every tiling the block's lowering offers (:func:`ita.deploy.lower.tilings`) and every
overlap/sequential choice per stage, the operations are lowered and phased and the plans
ranked by :func:`ita.deploy.cost.estimate`; the cheapest that allocates wins. Its loads then
move up to a few phases earlier where that lowers the estimate and L1 still fits
(:func:`hoist_loads`).

A model of several blocks is one program: each block's tiling is chosen as for a program of
that block alone (once per block type and shape: the cost model sees nothing else), the
blocks are lowered with their names prefixed ``b<k>_`` and linked into one stream of
operations, block k's output feeding block k + 1's input (:func:`link`), which is then
phased, allocated and hoisted as one. The link keeps the activation in L1 (block k + 1
reads block k's output buffer) when that fits, which is never dearer than the way through
L2 (a store, a load and a phase between the blocks); else the activation goes through an L2
area that the blocks' activations share (their lifetimes do not overlap).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from .allocate import allocate, layout_l2, peak_live
from .cost import estimate, phase_cost
from .frontend import IntegerModel
from .ir import CompileError, ItaJob, Lowered, Ref, Schedule
from .lower import lower, tilings
from .schedule import build_phases, load_slot
from .target import ClusterSpec

__all__ = ["plan", "hoist_loads", "link", "block_probes", "HOIST_REACH", "CHAINS"]

#: How many phases before its first use a load may be issued.
HOIST_REACH = 8
#: Where a block's output waits for the next block: ``auto`` (L1 when it fits, else L2),
#: ``l1`` or ``l2``.
CHAINS = ("auto", "l1", "l2")


def _blocks(model):
    blocks = tuple(model.blocks) if isinstance(model, IntegerModel) else (model,)
    if not blocks:
        raise CompileError("the model has no blocks")
    return blocks


def _where(k, block, n):
    return f"block {k} ({block.kind}): " if n > 1 else ""


def check_chain(blocks):
    """CompileError unless every block's input is the output of the block before."""
    for k in range(1, len(blocks)):
        given, taken = blocks[k - 1].tensor("out"), blocks[k].input
        if tuple(given.shape) != tuple(taken.shape) or given.dtype != taken.dtype:
            raise CompileError(
                f"the blocks do not chain: block {k} ({blocks[k].kind}) takes {taken.name} "
                f"of {tuple(taken.shape)} {taken.dtype}, block {k - 1} ({blocks[k - 1].kind})"
                f" gives out of {tuple(given.shape)} {given.dtype}")


def block_probes(probes, n):
    """Per block, the tensors it stores as outputs: ``out`` is the last block's output,
    ``b<k>_<name>`` names tensor ``name`` of block k (for one block, names are plain)."""
    if n == 1:
        return [tuple(probes)]
    per = [[] for _ in range(n)]
    for name in probes:
        if name == "out":
            per[-1].append("out")
            continue
        head, _, rest = name.partition("_")
        if head[:1] != "b" or not head[1:].isdigit() or not rest or int(head[1:]) >= n:
            raise CompileError(f"unknown tensor {name!r} of a {n}-block program (name block "
                               f"k's tensors b<k>_<name>, k < {n}; the last output is out)")
        per[int(head[1:])].append(rest)
    return [tuple(dict.fromkeys(p)) for p in per]


def _candidates(block, spec, probes, forced):
    """Every (estimate, tiling, overlap, lowered, phases) of ``block`` alone, cheapest first."""
    found = []
    for tiling in tilings(block, spec, **forced):
        stages = type(tiling).STAGES
        for flags in itertools.product((True, False), repeat=len(stages)):
            overlap = dict(zip(stages, flags, strict=True))
            low = lower(block, spec, tiling, probes)
            phases = build_phases(low, overlap, spec)
            found.append((estimate(phases, spec)["cycles"], tiling, overlap, low, phases))
    found.sort(key=lambda c: (c[0], getattr(c[1], "spill_ln1", False)))
    return found


def _choose(block, spec, probes, forced):
    """The cheapest (tiling, overlap, lowered, phases) of ``block`` alone that fits L1."""
    failures = []
    for _cost, tiling, overlap, low, phases in _candidates(block, spec, probes, forced):
        try:
            allocate(list(low.buffers.values()), spec.arena_bytes, spec.align, phases,
                     low.slot_width)
        except CompileError as exc:
            failures.append((peak_live(low.buffers.values()), str(exc)))
            continue
        return tiling, overlap, low, phases
    failures.sort()
    raise CompileError(f"no tiling fits the {spec.arena_bytes} B L1 arena "
                       f"(L1 {spec.l1_size} B); smallest plan: {failures[0][1]}")


def _plan_key(block, probes, forced):
    """Blocks whose choice is the same: the cost model sees type, shape and masks only (a
    block whose shape cannot be hashed is searched on its own)."""
    key = (type(block), block.shape, getattr(block, "causal", None),
           getattr(block, "valid_keys", None), probes, tuple(sorted(forced.items())))
    try:
        hash(key)
    except TypeError:
        return id(block)
    return key


def plan(model, spec: ClusterSpec | None = None, *, probes=("out",), chain="auto",
         prefetch=True, **forced) -> Schedule:
    """Lower, phase, allocate: the cheapest plan that fits L1.

    ``model``: an :class:`~ita.deploy.frontend.IntegerModel` of one or more blocks (or one
    block); ``probes``: tensors stored to L2 as outputs (:func:`block_probes`); ``chain``: where
    activations wait between blocks (:data:`CHAINS`); ``prefetch=False`` keeps each block's
    loads out of the phases of the blocks before it (to measure the prefetch); ``forced``:
    tiling choices the lowering takes as fixed (for the encoder ``fc`` / ``ec``, the FFN
    chunk widths), for every block.
    """
    spec = spec or ClusterSpec()
    if chain not in CHAINS:
        raise CompileError(f"chain must be one of {', '.join(CHAINS)}, not {chain!r}")
    blocks = _blocks(model)
    n = len(blocks)
    check_chain(blocks)
    wanted = block_probes(probes, n)
    chosen, cache = [], {}
    for k, block in enumerate(blocks):
        # a block before the last lowers its output: the next block reads it
        own = wanted[k] if k == n - 1 else tuple(dict.fromkeys((*wanted[k], "out")))
        key = _plan_key(block, own, forced)
        try:
            if key not in cache:
                cache[key] = _choose(block, spec, own, forced)
        except CompileError as exc:
            raise CompileError(f"{_where(k, block, n)}{exc}") from None
        tiling, overlap, low, phases = cache[key]
        if n > 1:
            low = lower(block, spec, tiling, own)  # with this block's own weights
        chosen.append((tiling, overlap, low, phases))
    if n == 1:
        tiling, overlap, low, phases = chosen[0]
        modes = []
    else:
        low, phases, overlap, modes, prefetch = _linked(blocks, chosen, wanted, chain, spec,
                                                        prefetch)
    hoisted = hoist_loads(low, phases, spec)
    layout_l2(low.l2, spec, phases)
    per_block = [_block_summary(k, block, chosen[k][0], chosen[k][1], phases, spec,
                                modes[k] if k < n - 1 else None)
                 for k, block in enumerate(blocks)]
    if n == 1:
        choices = {**_tiling_choices(chosen[0][0]), "hoisted_loads": hoisted,
                   "overlap": {k: bool(v) for k, v in overlap.items()}}
        subject = blocks[0]
    else:
        choices = {"blocks": [b["choices"] for b in per_block], "chain": modes,
                   "prefetch": bool(prefetch), "hoisted_loads": hoisted}
        subject = model
    return Schedule(subject, spec, phases, low.buffers, low.l2, low.inputs, low.outputs,
                    choices, estimate(phases, spec), low.slot_width, tuple(per_block))


def _linked(blocks, chosen, wanted, chain, spec, prefetch):
    """The blocks linked, phased and allocated: the first of these that fits L1, cheapest
    first: activations in L1 (``chain`` auto or l1), through L2 (auto or l2), each with the
    next block's loads prefetched (unless ``prefetch`` is off) and then without.
    Returns (lowered, phases, overlaps, links, prefetched)."""
    overlap = [c[1] for c in chosen]
    modes = {"auto": ("l1", "l2"), "l1": ("l1",), "l2": ("l2",)}[chain]
    tries = [(m, p) for p in ((True, False) if prefetch else (False,)) for m in modes]
    first = None
    for mode, early in tries:
        links = [mode] * (len(blocks) - 1)
        low = link([c[2] for c in chosen], links, wanted)
        phases = build_phases(low, overlap, spec, prefetch=early)
        try:
            allocate(list(low.buffers.values()), spec.arena_bytes, spec.align, phases,
                     low.slot_width)
            return low, phases, overlap, links, early
        except CompileError as exc:
            if first is None:
                k = phases[_failed_phase(str(exc), phases)].block
                first = CompileError(f"{_where(k, blocks[k], len(blocks))}{exc}")
    raise first


def _failed_phase(message, phases):
    """The phase an allocation error names (``in phase <i>``), else the last."""
    _, _, rest = message.partition(" in phase ")
    index = rest.split(" ", 1)[0]
    return int(index) if index.isdigit() and int(index) < len(phases) else len(phases) - 1


def _block_summary(k, block, tiling, overlap, phases, spec, chain):
    own = [ph for ph in phases if ph.block == k]
    shape = block.shape
    return {"index": k, "kind": block.kind,
            "shape": {f: getattr(shape, f) for f in shape.__dataclass_fields__},
            "macs": block.macs,
            "choices": {**_tiling_choices(tiling),
                        "overlap": {s: bool(v) for s, v in overlap.items()}},
            "phases": [own[0].index, own[-1].index] if own else [],
            "chain": chain,
            "estimate": estimate(own, spec)["cycles"]}


def _tiling_choices(tiling):
    return {name: getattr(tiling, name) for name in tiling.__dataclass_fields__}


# --- linking blocks into one program -----------------------------------------------------


def _renamed(low: Lowered, buf, l2=lambda n: n, block=None) -> Lowered:
    """``low`` with buffer names mapped by ``buf``, L2 tensor names by ``l2`` and, when
    given, every buffer and operation marked as block ``block``."""

    def ref(r):
        if isinstance(r, tuple):   # a kernel's array of pointers (the residual's operands)
            return tuple(ref(item) for item in r)
        return replace(r, buffer=buf(r.buffer)) if isinstance(r, Ref) else r

    def dma(d):
        return replace(d, l2=l2(d.l2), buffer=buf(d.buffer))

    def op(o):
        common = dict(reads=tuple(buf(r) for r in o.reads),
                      writes=tuple(buf(w) for w in o.writes))
        if block is not None:
            common["block"] = block
        if isinstance(o, ItaJob):
            return replace(o, pointers={k: ref(v) for k, v in o.pointers.items()}, **common)
        return replace(o, args=tuple(ref(a) for a in o.args), **common)

    out = Lowered(slot_width=low.slot_width)
    for b in low.buffers.values():
        extra = {} if block is None else {"block": block}
        out.buffers[buf(b.name)] = replace(b, name=buf(b.name),
                                           parent=buf(b.parent) if b.parent else None, **extra)
    for t in low.l2.values():
        out.l2[l2(t.name)] = replace(t, name=l2(t.name))
    for table, target in ((low.loads, out.loads), (low.stores, out.stores)):
        for name, dmas in table.items():
            target[buf(name)] = [dma(d) for d in dmas]
    out.ops = [op(o) for o in low.ops]
    out.inputs = {k: replace(v, l2=l2(v.l2)) for k, v in low.inputs.items()}
    out.outputs = {k: replace(v, l2=l2(v.l2)) for k, v in low.outputs.items()}
    out.after = {buf(k): buf(v) for k, v in low.after.items()}
    return out


def _only_transfer(table, l2):
    """(buffer, dma) of the one whole transfer of L2 tensor ``l2`` in ``table``, or None."""
    found = [(name, d) for name, dmas in table.items() for d in dmas if d.l2 == l2]
    if len(found) != 1:
        return None
    name, d = found[0]
    whole = d.rows == 1 and d.l2_offset == 0 and d.l1_offset == 0
    return (name, d) if whole and len(table[name]) == 1 else (name, None)


def link(lows, modes, wanted) -> Lowered:
    """One program from the lowered blocks ``lows`` (block k lowered with ``out`` among its
    outputs for k < last): block k + 1's input is block k's output, in L1 (``modes[k] ==
    "l1"``: block k + 1 reads block k's output buffer; no transfer) or through L2 (``"l2"``:
    block k stores it to an activation area that block k + 1 loads). ``wanted``: per block
    the outputs asked for (:func:`block_probes`); the others are dropped. Names of block k
    become ``b<k>_<name>``; the program's input is block 0's ``x``, its outputs ``out`` (the
    last block's) and ``b<k>_<name>``."""
    n = len(lows)
    blocks = [_renamed(low, lambda s, k=k: f"b{k}_{s}", lambda s, k=k: f"b{k}_{s}", block=k)
              for k, low in enumerate(lows)]
    for k in range(n - 1):
        prev, nxt = blocks[k], blocks[k + 1]
        given, taken = prev.outputs["out"], nxt.inputs.pop("x")
        if (given.rows, given.cols, given.pitch) != (taken.rows, taken.cols, taken.pitch):
            raise CompileError(f"the blocks do not chain: block {k + 1} reads x as "
                               f"{taken.rows} rows of {taken.cols} B (pitch {taken.pitch}), "
                               f"block {k} stores out as {given.rows} rows of {given.cols} B "
                               f"(pitch {given.pitch})")
        stored, load = _only_transfer(prev.stores, given.l2), _only_transfer(nxt.loads,
                                                                            taken.l2)
        if stored is None or load is None:
            raise CompileError(f"block {k} stores out or block {k + 1} loads x in more than "
                               f"one transfer: the blocks cannot be linked")
        src, dst = stored[0], load[0]
        keep = "out" in wanted[k]
        del nxt.l2[taken.l2]
        if modes[k] == "l1" and stored[1] is not None and load[1] is not None:
            # block k + 1 reads block k's output buffer: no transfer, one buffer for both
            del nxt.loads[dst]
            merged = prev.buffers[src]
            other = nxt.buffers.pop(dst)
            prev.buffers[src] = replace(merged, size=max(merged.size, other.size),
                                        reach=max(merged.reach, other.reach))
            blocks[k + 1] = _renamed(nxt, lambda s, a=dst, b=src: b if s == a else s)
        else:
            modes[k] = "l2"
            nxt.loads[dst] = [replace(d, l2=given.l2) for d in nxt.loads[dst]]
            nxt.after[dst] = src
            if not keep:
                prev.l2[given.l2] = replace(prev.l2[given.l2], role="activation")
        if not keep:
            del prev.outputs["out"]
            if modes[k] == "l1":
                prev.stores[src] = [d for d in prev.stores[src] if d.l2 != given.l2]
                if not prev.stores[src]:
                    del prev.stores[src]
                del prev.l2[given.l2]
    out = Lowered()
    for k, low in enumerate(blocks):
        out.buffers.update(low.buffers)
        out.l2.update(low.l2)
        out.loads.update(low.loads)
        out.stores.update(low.stores)
        out.ops += low.ops
        out.after.update(low.after)
        for name, io in low.inputs.items():   # block 0's x, other blocks' own (a cache)
            out.inputs[name if k == 0 and name == "x" else f"b{k}_{name}"] = io
        for name, io in low.outputs.items():
            out.outputs["out" if k == n - 1 and name == "out" else f"b{k}_{name}"] = io
    return out


# --- loads moved earlier ------------------------------------------------------------------


def hoist_loads(low, phases, spec, reach=HOIST_REACH):
    """Issue loads up to ``reach`` phases earlier where the estimate drops and L1 still fits.

    A load normally goes out one phase ahead. Phases whose cores work long without moving
    data (the last head's sum with the first add & norm) can instead prefetch several
    weight chunks, which takes them off the DMA-bound phases that follow. Loads from L2
    tensors that the program itself stores (a spilled activation) stay where they are, and
    so do loads behind a block fence (``Lowered.fences``). The estimate is a sum over
    phases, so a move is ranked by the two phases it changes. Returns the number of loads
    moved; the buffers are allocated for the result.
    """
    width = low.slot_width
    buffers = list(low.buffers.values())
    stored = {d.l2 for dmas in low.stores.values() for d in dmas}
    moved = 0

    def pair(p, q):
        return phase_cost(phases[p], spec)[0] + phase_cost(phases[q], spec)[0]

    for name in sorted(low.loads, key=lambda n: (low.buffers[n].first, n)):
        dmas, b = low.loads[name], low.buffers[name]
        if any(d.l2 in stored for d in dmas):
            continue
        p = b.first // width
        fence = low.fences.get(b.block, 0)
        best, best_gain = None, 0
        for q in range(p - 1, max(p - 1 - reach, fence - 1, -1), -1):
            before = pair(p, q)
            for d in dmas:
                phases[p].loads.remove(d)
            phases[q].loads.extend(dmas)
            gain = before - pair(p, q)
            if gain > best_gain:
                first, b.first = b.first, load_slot(phases[q], width)
                try:
                    allocate(buffers, spec.arena_bytes, spec.align)
                    best, best_gain = q, gain
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

