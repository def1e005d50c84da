"""Scheduling: the lowered operations packed into phases, and the buffers' lifetimes.

In every phase core 0

1. queues the DMA stores of finished results and the DMA loads of the *next* phase,
2. starts the phase's ITA job, while all cores run the phase's kernels (or, where memory
   does not allow a second output buffer, after the job: "sequential" stages),
3. waits for the ITA and the DMA; then all cores meet in a barrier.

So the weights of phase p + 1 stream in while phase p computes (double buffering), and the
cores post-process job p - 1 while the ITA runs job p. A transfer beside a running job costs
the engine two thirds of its speed (L1 bank conflicts), so a sequential phase may issue its
transfers after its job instead (``defer_dma``, chosen by :func:`ita.deploy.cost.phase_cost`).

Every L1 tensor becomes a buffer with a lifetime in time slots (the phases from its load or
first write to its last read or store); :mod:`ita.deploy.allocate` then gives buffers whose
lifetimes overlap disjoint L1 ranges, so double buffers appear wherever two consecutive
phases need different weights.

A program of several blocks is one stream of operations (:func:`ita.deploy.search.plan`
links them), so block k + 1's first weights load during block k's last phase like any other
load. A block input read back from the L2 activation the block before stored
(``Lowered.after``) is loaded in the phase of that store (the DMA runs its queue in order,
the store first) and read in the next. ``prefetch=False`` keeps every block's loads in its
own phases instead (``Lowered.fences``): the boundary then drains, as separate programs
would; it is there to measure what the prefetch gains.
"""

from __future__ import annotations

from .allocate import span_lanes
from .cost import phase_cost
from .ir import CompileError, ItaJob, Lowered, Phase

__all__ = ["build_phases", "load_slot"]


def load_slot(ph, width):
    """First time slot of a buffer loaded in phase ``ph``: after the job when deferred."""
    return ph.index * width + (1 if ph.defer_dma else 0)


def _overlapped(overlap, op):
    """The stage's overlap flag: ``overlap`` is one dict of stages, or one per block."""
    table = overlap if isinstance(overlap, dict) else overlap[op.block]
    return table[op.stage]


def build_phases(low: Lowered, overlap, spec, prefetch=True):
    """Pack the operations into phases (see the module docstring) and set buffer lifetimes.

    ``overlap``: stage -> whether its kernels overlap the next job, or a list of such dicts
    (one per block); ``prefetch=False``: no block's loads before its own first phase.
    """
    writer_phase: dict[str, int] = {}     # buffer -> last phase that writes it
    writer_is_ita: dict[str, bool] = {}
    ready: dict[str, int] = {}            # buffer loaded back from L2 -> first phase to read it
    readers: dict[str, list[int]] = {}
    ita_reads: dict[int, set] = {}
    phases: dict[int, Phase] = {}
    last_ita, last_kernel = 0, 1
    low.fences = {}
    floor = 0                             # no op before this phase (prefetch=False)

    def phase(i):
        return phases.setdefault(i, Phase(i, ""))

    for op in low.ops:
        if not prefetch and op.block not in low.fences and op.block > 0:
            # the block's loads go out in a phase after every phase of the blocks before
            low.fences[op.block] = max(phases) + 1
            floor = low.fences[op.block] + 1
        for r in op.reads:
            if r in low.after and r not in ready and low.after[r] in writer_phase:
                ready[r] = writer_phase[low.after[r]] + 2  # stored, loaded, then read
        if isinstance(op, ItaJob):
            earliest = max(last_ita + 1, floor)
            for r in op.reads:
                if r in writer_phase:
                    earliest = max(earliest, writer_phase[r] + 1)
                earliest = max(earliest, ready.get(r, 0))
            p = earliest
            op.phase = p
            ph = phase(p)
            ph.job, ph.label = op, op.name
            last_ita = p
            ita_reads.setdefault(p, set()).update(op.reads)
            for w in op.writes:
                writer_phase[w], writer_is_ita[w] = p, True
        else:
            sequential = not _overlapped(overlap, op)
            earliest = max(last_kernel, floor)
            for r in op.reads:
                if r in writer_phase:
                    gap = 0 if not writer_is_ita[r] or sequential else 1
                    earliest = max(earliest, writer_phase[r] + gap)
                earliest = max(earliest, ready.get(r, 0))
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
            load_phase[b.name] = max(min(uses) // width - 1, low.fences.get(b.block, 0))
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
            b.first = load_slot(phases[load_phase[b.name]], width)
        if b.name in store_phase:
            b.last = max(b.last, whole(store_phase[b.name])[1])
    span_lanes(low.buffers.values())
    low.slot_width = width
    ordered = [phases[i] for i in sorted(phases)]
    segment = (0, 0)
    for ph in ordered:  # a phase without work belongs to the block (and step) before it
        ops = ([ph.job] if ph.job else []) + ph.kernels
        segment = max([segment, *((op.block, op.step) for op in ops)])
        ph.block, ph.step = segment
    ordered[0].label = "prologue"
    ordered[-1].label = "epilogue"
    for ph in ordered:
        if not ph.label:
            ph.label = " + ".join(dict.fromkeys(k.name for k in ph.kernels)) or "wait"
    return ordered
