"""The cost model that ranks plans: engine cycles of a job, kernel and DMA rates, overlap.

Every constant is a measured figure of the cluster (``docs/deploy.md``, "Measured"): the
kernels' cycles per element on one core as run inside the layer, core 0's cost of
programming a job and of a phase boundary. The cluster's own figures come from the
:class:`~ita.deploy.target.ClusterSpec`: the L2 -> L1 and L3 -> L1 DMA rates
(:meth:`~ita.deploy.target.ClusterSpec.rate`) and the engine's speed beside a transfer
(``engine_speed_beside_dma``: the share of L1 bank conflicts its wide port wins). The model
only ranks plans; the cycles a program takes are what the simulation measures.
"""

from __future__ import annotations

from .ir import tiles

__all__ = ["KERNEL_COSTS", "JOB_OVERHEAD", "PHASE_OVERHEAD", "gemm_cycles", "attention_cycles",
           "kernel_cycles", "phase_cost", "estimate"]

#: Cycles per element on one core, by kernel kind (measured in the layer).
KERNEL_COSTS = {"head_acc": 5.0, "head_final": 5.5, "relayout": 2.5, "add_layernorm": 18.0}
#: Cycles core 0 spends programming one job, and per phase on barriers and bookkeeping.
JOB_OVERHEAD = 400
PHASE_OVERHEAD = 300


def gemm_cycles(rows, cols, inner, cfg):
    """Engine cycles of one GEMM: its padded M x M tiles at N dot products per cycle."""
    m = cfg.M
    return tiles(rows, m) * tiles(cols, m) * tiles(inner, m) * m * m // cfg.N


def attention_cycles(S, E, P, cfg):
    """Engine cycles of one attention head: Q, K, V, QK, AV and OW."""
    return (3 * gemm_cycles(S, P, E, cfg) + gemm_cycles(S, S, P, cfg)
            + gemm_cycles(S, P, S, cfg) + gemm_cycles(S, E, P, cfg))


def kernel_cycles(kernels, spec):
    """Cycles of a phase's kernels on ``spec.cores`` cores."""
    return sum(KERNEL_COSTS[k.kind] * k.elements / spec.cores for k in kernels)


def _dma_cycles(ph, spec):
    """The phase's transfers one after the other, each at the rate of its memory."""
    return sum(d.bytes / spec.rate(d.memory) for d in ph.loads + ph.stores)


def _contended(job, dma, speed):
    """Cycles of a job of ``job`` engine cycles started together with ``dma`` DMA cycles,
    the engine running at ``speed`` of its own while the transfers stream."""
    if job <= dma * speed:
        return job / speed
    return dma + job - dma * speed


def phase_cost(ph, spec, choose=False):
    """(cycles, defer) of one phase; ``defer``: issue the transfers when the job has ended
    (chosen when ``choose``, else the phase's ``defer_dma``, fixed with the L1 lifetimes).

    A sequential phase (kernels after the job) whose transfers would stretch the job is
    cheaper with its transfers moved after the job, where they overlap the kernels instead
    (cores and DMA share the banks fairly). With the wide port winning 7 of 8 conflicts this
    rarely pays; it did when the narrow side won 3 of 4 (an attention head with the next
    head's 51 KiB of weights: 16.2k engine cycles beside the load, 6.9k without).
    """
    job = ph.job.cycles + JOB_OVERHEAD if ph.job else 0
    kern = kernel_cycles(ph.kernels, spec)
    moved = _dma_cycles(ph, spec)
    if not ph.job:
        return max(kern, moved), False
    speed = spec.engine_speed_beside_dma
    if not ph.after_ita:
        return max(_contended(job, moved, speed), kern, moved), False
    now = max(_contended(job, moved, speed) + kern, moved)
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
        kernels += kernel_cycles(ph.kernels, spec)
        dma += _dma_cycles(ph, spec)
    return {"cycles": int(total), "ita": int(ita), "kernels": int(kernels), "dma": int(dma)}
