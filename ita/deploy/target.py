"""The compiler's view of the cluster it compiles for.

:class:`ClusterSpec` holds only what planning and emission need (memory sizes and bases, the
core count, the engine, the DMA rate of the cost model). It is built by the caller from the
cluster's own description, so the compiler never imports the cluster or the testbenches.
"""

from __future__ import annotations

from dataclasses import dataclass

from ita.cluster_config import DEFAULT, ClusterConfig
from ita.config import ITAConfig

__all__ = ["ClusterSpec", "DMA_BEAT_EFFICIENCY", "L3_LINK_EFFICIENCY", "WEIGHT_HOMES"]

#: Share of one DMA beat per cycle that an L2 -> L1 transfer of a layer's typical size
#: sustains, programming and dma_wait() included: 11.72 B/cycle of 16 on an 8 KiB copy of
#: the default cluster (``make sim TEST=dma``, ``l2_l1_1d``; 15.3 on 64 KiB).
DMA_BEAT_EFFICIENCY = 0.73
#: Share of the off-chip link's bytes per cycle that an L3 -> L1 transfer sustains: 1.90 of
#: 2 B/cycle (``make sim TEST=dma``, ``l3_l1_1d``; the link's latency is paid once per row).
L3_LINK_EFFICIENCY = 0.95
#: Where a program's constant tensors (weights, biases, LayerNorm constants) live.
WEIGHT_HOMES = ("l2", "l3")


def _wide_port_share(cluster: ClusterConfig) -> float:
    """Share of L1 conflict cycles the engine's wide port wins (its speed beside a transfer)."""
    won, window = cluster.l1_starvation_window
    return won / window if cluster.l1_hwpe_priority else (window - won) / window


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster facts the compiler plans with; :meth:`for_cluster` reads them off a
    cluster configuration (the defaults are the default cluster's)."""

    l1_base: int = DEFAULT.l1_base
    l1_size: int = DEFAULT.l1_size
    l1_reserved: int = DEFAULT.l1_reserved  #: core stacks and the runtime's L1 data
    l2_base: int = DEFAULT.l2_base
    l2_size: int = DEFAULT.l2_size
    l2_data_offset: int = DEFAULT.l2_program_size  #: the program below, the model's data above
    cores: int = DEFAULT.cores
    config: ITAConfig = DEFAULT.ita
    #: L2 -> L1 rate of the cost model: the beat width at the measured efficiency.
    dma_bytes_per_cycle: float = DEFAULT.dma_width / 8 * DMA_BEAT_EFFICIENCY
    l3_base: int = DEFAULT.l3_base
    l3_size: int = DEFAULT.l3_size
    #: L3 -> L1 rate of the cost model: the off-chip link at the measured efficiency.
    l3_bytes_per_cycle: float = DEFAULT.l3_bytes_per_cycle * L3_LINK_EFFICIENCY
    #: Engine speed beside a transfer: the share of L1 bank conflicts the wide port wins.
    engine_speed_beside_dma: float = _wide_port_share(DEFAULT)
    #: ``"l2"``: constants in the L2 image; ``"l3"``: in the L3 image, read by the DMA from
    #: off-chip memory (a model too large for L2).
    weights: str = "l2"

    def __post_init__(self):
        if self.weights not in WEIGHT_HOMES:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_HOMES)}, "
                             f"not {self.weights!r}")

    @classmethod
    def for_cluster(cls, cluster: ClusterConfig, **overrides) -> ClusterSpec:
        """The view of ``cluster``; ``overrides`` replace single facts (e.g. ``config=``)."""
        facts = dict(l1_base=cluster.l1_base, l1_size=cluster.l1_size,
                     l1_reserved=cluster.l1_reserved, l2_base=cluster.l2_base,
                     l2_size=cluster.l2_size, l2_data_offset=cluster.l2_program_size,
                     cores=cluster.cores, config=cluster.ita,
                     dma_bytes_per_cycle=cluster.dma_width / 8 * DMA_BEAT_EFFICIENCY,
                     l3_base=cluster.l3_base, l3_size=cluster.l3_size,
                     l3_bytes_per_cycle=cluster.l3_bytes_per_cycle * L3_LINK_EFFICIENCY,
                     engine_speed_beside_dma=_wide_port_share(cluster))
        return cls(**{**facts, **overrides})

    def rate(self, memory):
        """Bytes per cycle of a transfer between L1 and ``memory`` (``"l2"`` or ``"l3"``)."""
        return self.l3_bytes_per_cycle if memory == "l3" else self.dma_bytes_per_cycle

    @property
    def arena_bytes(self):
        """L1 bytes the schedule may use (one static array)."""
        return self.l1_size - self.l1_reserved

    @property
    def align(self):
        """Alignment of every buffer: engine pointers are M-aligned."""
        return max(self.config.M, 4)

    @property
    def l2_data_base(self):
        """Address of the program's data image in L2."""
        return self.l2_base + self.l2_data_offset
