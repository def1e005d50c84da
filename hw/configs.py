"""Named hardware configurations, defined once for every generator and make target.

A configuration fixes the engine (:class:`~ita.config.ITAConfig`) and the cluster around it.
``make verilog``, ``make fpga`` and the board self-test take ``CONFIG=<name>``; ``N=`` and
``M=`` on the command line override the engine size of the chosen configuration.

==========  ==========  =====  =========  =======  =======  ==========
name        engine      cores  L1 banks   L1       L2       HWPE port
==========  ==========  =====  =========  =======  =======  ==========
small       N=4, M=16   2      8          32 KiB   64 KiB   128 bit
default     N=16, M=64  8      32         256 KiB  4 MiB    1024 bit
large       N=32, M=128 8      64         256 KiB  4 MiB    2048 bit
==========  ==========  =====  =========  =======  =======  ==========

The default sizes are those of the memory map (``memory_map.py``): 256 KiB of L1 and 4 MiB of
L2 hold a MiniLM-sized encoder layer (``docs/deploy.md``). The software in ``sw/`` is built for
that memory map; the L1 and
L2 sizes here shrink the storage behind the same address regions (a smaller memory repeats
inside its region), so programs for a small configuration must fit its memories.
"""

from dataclasses import dataclass, replace

from ita.config import ITAConfig

__all__ = ["HwConfig", "CONFIGS", "get", "DEFAULT"]


@dataclass(frozen=True)
class HwConfig:
    """One named configuration: the engine and the cluster parameters."""

    name: str
    ita: ITAConfig
    cores: int
    l1_banks: int
    l1_size: int
    l2_size: int
    hwpe_width: int
    description: str = ""

    def with_engine(self, **sizes):
        """A copy whose engine has ``sizes`` (e.g. ``N=8, M=32``) replaced."""
        if not sizes:
            return self
        return replace(self, ita=replace(self.ita, **sizes))

    def summary(self):
        """Two lines (engine, cluster) naming every parameter, for generated file banners."""
        c = self.ita
        return (f"{self.name}: engine N={c.N} M={c.M} acc_width={c.acc_width} "
                f"output_fifo_depth={c.output_fifo_depth} contexts={c.contexts}",
                f"{self.name}: cluster cores={self.cores} l1_banks={self.l1_banks} "
                f"l1_size={self.l1_size} l2_size={self.l2_size} hwpe_width={self.hwpe_width}")

    def cluster_kwargs(self):
        """Keyword arguments of :class:`cluster_integration.cluster.Cluster`."""
        return dict(config=self.ita, cores=self.cores, l1_banks=self.l1_banks,
                    l1_size=self.l1_size, l2_size=self.l2_size, hwpe_width=self.hwpe_width)


KiB = 1024

CONFIGS = {
    "small": HwConfig("small", ITAConfig(N=4, M=16), cores=2, l1_banks=8, l1_size=32 * KiB,
                      l2_size=64 * KiB, hwpe_width=128,
                      description="FPGA prototyping: fits an ECP5-85F with the engine alone"),
    "default": HwConfig("default", ITAConfig(), cores=8, l1_banks=32, l1_size=256 * KiB,
                        l2_size=4096 * KiB, hwpe_width=1024,
                        description="the reference design simulated by make sim and make test"),
    "large": HwConfig("large", ITAConfig(N=32, M=128), cores=8, l1_banks=64, l1_size=256 * KiB,
                      l2_size=4096 * KiB, hwpe_width=2048,
                      description="4x the default array (4096 MACs per cycle)"),
}

DEFAULT = CONFIGS["default"]


def get(name):
    """The configuration called ``name``; ValueError naming the known ones otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown CONFIG {name!r}; known: {', '.join(CONFIGS)}") from None
