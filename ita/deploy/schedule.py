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
"""

from __future__ import annotations

from .allocate import span_lanes
from .cost import phase_cost
from .ir import CompileError, ItaJob, Lowered, Phase

__all__ = ["build_phases", "load_slot"]


def load_slot(ph, width):
    """First time slot of a buffer loaded in phase ``ph``: after the job when deferred."""
    return ph.index * width + (1 if ph.defer_dma else 0)


def build_phases(low: Lowered, overlap: dict, spec):
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
            b.first = load_slot(phases[load_phase[b.name]], width)
        if b.name in store_phase:
            b.last = max(b.last, whole(store_phase[b.name])[1])
    span_lanes(low.buffers.values())
    low.slot_width = width
    ordered = [phases[i] for i in sorted(phases)]
    ordered[0].label = "prologue"
    ordered[-1].label = "epilogue"
    for ph in ordered:
        if not ph.label:
            ph.label = " + ".join(dict.fromkeys(k.name for k in ph.kernels)) or "wait"
    return ordered
