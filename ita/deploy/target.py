"""The compiler's view of the cluster it compiles for.

:class:`ClusterSpec` holds only what planning and emission need (memory sizes and bases, the
core count, the engine, the DMA rate of the cost model). It is built by the caller from the
cluster's own description, so the compiler never imports the cluster or the testbenches.
"""

from __future__ import annotations

from dataclasses import dataclass

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["ClusterSpec"]


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

    @property
    def l2_data_base(self):
        """Address of the program's data image in L2."""
        return self.l2_base + self.l2_data_offset
