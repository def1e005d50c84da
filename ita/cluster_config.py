"""The one description of a cluster instance, and the named configurations.

A :class:`ClusterConfig` owns every hardware fact of one cluster: its engine
(:class:`~ita.config.ITAConfig`), core count, L1 banks and sizes, port widths, the memory
map (region bases and sizes, boot and trap addresses) and the software reservations that the
compiler must respect (per-core stacks, the runtime's L1 data, the program's share of L2).
The RTL constructors, the generated C header and linker script (``build/<config>/``), the
compiler's view of the cluster and the ``make`` defaults all derive from it, so a second
instance (another size, or another chip of a multi-chip system) is one more value of this
class, not another copy of the numbers. A test fails when a source file restates a size or
base address owned here (``tests/test_single_source.py``).

==========  ===========  =====  ========  =======  =======  =========  ========
name        engine       cores  L1 banks  L1       L2       HWPE port  DMA
==========  ===========  =====  ========  =======  =======  =========  ========
small       N=4, M=16    2      8         32 KiB   64 KiB   128 bit    128 bit
default     N=16, M=64   8      32        256 KiB  4 MiB    1024 bit   128 bit
large       N=32, M=128  8      64        256 KiB  4 MiB    2048 bit   128 bit
==========  ===========  =====  ========  =======  =======  =========  ========

Every configuration has 64 MiB of L3 behind a 2 B/cycle link with 30 cycles of latency, and
two chip-to-chip links (a ring: the next and the previous chip) of 1 B/cycle with 40 cycles of
latency, reached by the DMA through the remote windows (docs/multichip.md).

256 KiB of L1 hold a MiniLM-sized encoder layer (MiniLM's second FFN GEMM needs its 96 KiB
input at once) and 4 MiB of L2 its program, weights and checked tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["Region", "RemoteWindows", "ClusterConfig", "CONFIGS", "DEFAULT", "get", "KiB", "MiB",
           "LINKS", "REMOTE_WINDOWS"]

KiB = 1024
MiB = 1024 * KiB

#: Register windows of the cluster peripherals: (name, offset from ``peripherals_base``,
#: size, what it is). Their register layouts live with the blocks
#: (``cluster_integration.memory_map``, ``cluster_integration.hwpe.regmap``).
PERIPHERAL_WINDOWS = (
    ("EVENT_UNIT", 0x0000, 0x400, "barrier and event unit"),
    ("DMA", 0x0400, 0x400, "L2 <-> L1 DMA"),
    ("LINK", 0x0800, 0x400, "chip-to-chip links: chip id, transfer counters"),
    ("ITA", 0x1000, 0x400, "ITA HWPE control slave"),
)
#: The chip-to-chip links of every chip, by index: a ring, so a link to the next chip and one
#: to the previous chip (chip ``(i + 1) % K`` and ``(i - 1) % K`` of ``K``). A ring all-reduce
#: is bandwidth-optimal with one link pair per chip (docs/multichip.md).
LINKS = ("next", "prev")
#: Remote windows in the memory map, one per possible link; those past :data:`LINKS` name a
#: link the chip does not have (room for a topology with four links per chip, a 2-D torus),
#: and the DMA refuses a transfer into them.
REMOTE_WINDOWS = 4
#: Size of the SoC control window (stdout, end of computation, cycle counter).
SOC_CTRL_WINDOW = 0x1000
#: Entries of the vectored trap table at the start of L2 (exceptions, then interrupts 1..31,
#: as RISC-V's vectored ``mtvec`` mode defines them); the boot address follows it.
VECTOR_ENTRIES = 32


@dataclass(frozen=True)
class Region:
    """One address range of the memory map."""

    name: str
    base: int
    size: int
    doc: str

    @property
    def end(self):
        return self.base + self.size

    def contains(self, address):
        return self.base <= address < self.end


@dataclass(frozen=True)
class RemoteWindows:
    """Where a neighbour's memory appears in a chip's address space: the REMOTE region holds
    one window of ``window`` bytes per link slot; inside the window of link ``j``, the
    neighbour's L1 lies at offset 0 (``l1_size`` bytes) and its L2 at ``l2_offset``
    (``l2_size`` bytes). A DMA transfer whose destination lies there is sent over link ``j``
    and written at the same offset of the neighbour's L1 or L2."""

    region: Region
    window: int
    links: int
    l1_base: int
    l1_size: int
    l2_offset: int
    l2_base: int
    l2_size: int

    def window_base(self, link):
        return self.region.base + link * self.window

    def l1(self, link, offset=0):
        """The address that reaches ``offset`` in the L1 of the chip on ``link``."""
        return self.window_base(link) + offset

    def l2(self, link, offset=0):
        """The address that reaches ``offset`` in the L2 of the chip on ``link``."""
        return self.window_base(link) + self.l2_offset + offset

    def target(self, address):
        """(link, neighbour's local address) of a remote-window address whose link exists
        and whose offset lies in the neighbour's L1 or L2; None otherwise."""
        if not self.region.contains(address):
            return None
        link, offset = divmod(address - self.region.base, self.window)
        if link >= self.links:
            return None
        if offset < self.l1_size:
            return link, self.l1_base + offset
        if self.l2_offset <= offset < self.l2_offset + self.l2_size:
            return link, self.l2_base + offset - self.l2_offset
        return None


@dataclass(frozen=True)
class ClusterConfig:
    """Every hardware size and address of one cluster instance.

    Parameters
    ----------
    name:
        The configuration's name (``CONFIG=`` on the command line; ``build/<name>/``).
    ita:
        The engine.
    cores:
        CV32E40P cores; each has its own event-unit port and stack.
    l1_banks:
        32-bit L1 banks, word-interleaved. The HWPE's wide access spans ``hwpe_width / 32``
        consecutive banks in one cycle.
    l1_size, l2_size:
        Bytes of L1 (TCDM) and L2. Powers of two; each region is aligned to its size.
    hwpe_width:
        Bits of the HWPE's L1 port.
    hwpe_clock_gate:
        Whether the HWPE's datapath runs on a clock gated off while it has no work
        (``cluster_integration.hwpe.clock_gate``): same results and cycles, and an idle
        engine no longer costs the cycle-based simulator. For Verilator; amaranth's own
        simulator delays a derived clock by a delta step.
    dma_width:
        Bits of the DMA's data path and of its L1 and L2 ports: one beat per cycle, spread
        over ``dma_width / 32`` consecutive L1 banks. 128 bits lets an L2 -> L1 copy move
        16 bytes per cycle.
    dma_queue_depth:
        Transfers the DMA queues behind the running one (each raises its own event).
    l1_starvation_window:
        ``(N, D)``: of any ``D`` consecutive L1 cycles in which the HWPE's wide access and
        the narrow side (cores, DMA) want a bank, the priority side wins ``N``.
    l3_base, l3_size:
        Base and bytes of L3, the off-chip memory (weights of models that do not fit in L2).
        Only the DMA reaches it (L3 <-> L2, L3 <-> L1); the model pages its storage on
        demand, so the size costs no simulator memory.
    l3_bytes_per_cycle, l3_latency:
        The off-chip link: bytes it moves per cluster cycle (a HyperBus-class part: 2) and
        cycles from a read's grant to its data.
    link_base, link_bytes_per_cycle, link_latency:
        The chip-to-chip links (:data:`LINKS`, a ring): the base of the REMOTE region (one
        window per link slot, :class:`RemoteWindows`), the bytes each link moves per cycle
        (a serial chip-to-chip link of a few lanes: 1) and the cycles from a beat leaving the
        sender to its arrival at the neighbour. The bandwidth is enforced by the sender's
        link peripheral (``cluster_integration/link.py``), the latency by the system around
        the chips (the multi-chip harness, ``verif/harness/multichip_main.cpp``).
    l1_hwpe_priority:
        The HWPE is the priority side. The engine needs its port nearly every cycle and a
        wide access needs every bank it spans at once, so with ``(7, 8)`` a job beside a
        transfer and the cores' kernels loses at most one cycle in eight, while every core
        and the DMA still get a bank within a bounded wait (``L1Memory.refusal_bounds``).
    l1_base, peripherals_base, soc_ctrl_base, l2_base:
        Bases of L1, of the cluster peripherals' windows (:data:`PERIPHERAL_WINDOWS`), of
        SoC control and of L2. The trap vector table starts L2, the boot address follows it.
    stack_size:
        Bytes of stack per core, at the top of L1 (stacks live in the single-cycle TCDM; an
        overflow runs into the neighbour's stack or the L1 heap, never into code).
    l1_runtime_data:
        L1 bytes the runtime's own ``.l1`` data may take, kept out of a compiled program's
        L1 arena together with the stacks.
    l2_program_size:
        L2 bytes reserved from the base for a program's code and data; a compiled model's
        tensors start above.
    """

    name: str
    ita: ITAConfig = DEFAULT_CONFIG
    cores: int = 8
    l1_banks: int = 32
    l1_size: int = 256 * KiB
    l2_size: int = 4 * MiB
    hwpe_width: int = 1024
    hwpe_clock_gate: bool = True
    dma_width: int = 128
    dma_queue_depth: int = 4
    l1_starvation_window: tuple = (7, 8)
    l1_hwpe_priority: bool = True
    l3_base: int = 0x4000_0000
    l3_size: int = 64 * MiB
    l3_bytes_per_cycle: int = 2
    l3_latency: int = 30
    link_base: int = 0x2000_0000
    link_bytes_per_cycle: int = 1
    link_latency: int = 40
    l1_base: int = 0x1000_0000
    peripherals_base: int = 0x1020_0000
    soc_ctrl_base: int = 0x1A10_0000
    l2_base: int = 0x1C00_0000
    stack_size: int = 1 * KiB
    l1_runtime_data: int = 4 * KiB
    l2_program_size: int = 256 * KiB
    description: str = ""

    def __post_init__(self):
        def power_of_two(value):
            return value > 0 and value & (value - 1) == 0

        if not 1 <= self.cores <= 255:
            raise ValueError(f"cores must be 1..255, not {self.cores}")
        for field_name in ("l1_size", "l2_size", "l3_size", "l1_banks"):
            if not power_of_two(getattr(self, field_name)):
                raise ValueError(f"{field_name} must be a power of two, "
                                 f"not {getattr(self, field_name)}")
        if self.hwpe_width % 32 or self.hwpe_width // 32 > self.l1_banks:
            raise ValueError(f"hwpe_width={self.hwpe_width} must be a multiple of 32 bits "
                             f"and span at most the {self.l1_banks} L1 banks")
        if self.dma_width % 32 or not 0 < self.dma_width // 32 <= self.l1_banks:
            raise ValueError(f"dma_width={self.dma_width} must be a multiple of 32 bits "
                             f"and span at most the {self.l1_banks} L1 banks")
        if not 1 <= self.dma_queue_depth <= 64:
            raise ValueError(f"dma_queue_depth must be 1..64, not {self.dma_queue_depth}")
        numerator, denominator = self.l1_starvation_window
        if not 0 < numerator < denominator:
            raise ValueError("l1_starvation_window needs 0 < N < D, so that each side wins "
                             "some conflicts")
        if not 1 <= self.l3_bytes_per_cycle <= self.dma_width // 8:
            raise ValueError(f"l3_bytes_per_cycle must be 1..{self.dma_width // 8} (one DMA "
                             f"beat), not {self.l3_bytes_per_cycle}")
        if not 1 <= self.l3_latency <= 1024:
            raise ValueError(f"l3_latency must be 1..1024 cycles, not {self.l3_latency}")
        if not 1 <= self.link_bytes_per_cycle <= self.dma_width // 8:
            raise ValueError(f"link_bytes_per_cycle must be 1..{self.dma_width // 8} (one DMA "
                             f"beat), not {self.link_bytes_per_cycle}")
        if not 1 <= self.link_latency <= 4096:
            raise ValueError(f"link_latency must be 1..4096 cycles, not {self.link_latency}")
        for region in self.regions:
            if region.base % region.size and region.name in ("L1", "L2", "L3", "REMOTE"):
                raise ValueError(f"{region.name} base {region.base:#x} must be aligned to its "
                                 f"size {region.size:#x} (only the offset bits are decoded)")
        ordered = sorted(self.regions, key=lambda r: r.base)
        for low, high in zip(ordered, ordered[1:], strict=False):
            if low.end > high.base:
                raise ValueError(f"regions {low.name} and {high.name} overlap")
        if self.stack_size % 16:
            raise ValueError("stack_size must be a multiple of 16 (the RISC-V stack alignment)")
        if self.cores * self.stack_size > self.l1_size // 2:
            raise ValueError("the core stacks would take more than half of L1")
        if self.l2_program_size >= self.l2_size:
            raise ValueError("l2_program_size must leave L2 room for data")

    # --- the memory map ----------------------------------------------------------------

    @property
    def regions(self) -> tuple[Region, ...]:
        """The memory map, in address order of the cluster's view."""
        windows = tuple(Region(name, self.peripherals_base + offset, size, doc)
                        for name, offset, size, doc in PERIPHERAL_WINDOWS)
        return (
            Region("L1", self.l1_base, self.l1_size,
                   f"TCDM, word-interleaved over {self.l1_banks} banks"),
            *windows,
            Region("SOC_CTRL", self.soc_ctrl_base, SOC_CTRL_WINDOW,
                   "stdout, end of computation, cycle counter"),
            Region("L2", self.l2_base, self.l2_size, "code, data and weights; boot memory"),
            Region("L3", self.l3_base, self.l3_size,
                   f"off-chip memory behind a {self.l3_bytes_per_cycle} B/cycle link with "
                   f"{self.l3_latency} cycles of latency; DMA only"),
            Region("REMOTE", self.link_base, REMOTE_WINDOWS * self.link_window,
                   f"the neighbours' L1 and L2, one window per link ({len(LINKS)} links of "
                   f"{self.link_bytes_per_cycle} B/cycle with {self.link_latency} cycles of "
                   "latency); DMA destinations only"),
        )

    def region(self, name) -> Region:
        """The region called ``name`` (KeyError naming it otherwise)."""
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"no region named {name!r}")

    @property
    def link_window(self):
        """Bytes of one link's remote window: room for the neighbour's L1 and, from the
        window's middle, its L2 (both sizes are powers of two)."""
        return 2 * max(self.l1_size, self.l2_size)

    @property
    def remote(self) -> RemoteWindows:
        """The remote windows (:class:`RemoteWindows`)."""
        return RemoteWindows(self.region("REMOTE"), self.link_window, len(LINKS),
                             self.l1_base, self.l1_size, self.link_window // 2, self.l2_base,
                             self.l2_size)

    @property
    def trap_vector(self):
        """``mtvec`` base (vectored mode): the first word of L2."""
        return self.l2_base

    @property
    def boot_address(self):
        """Where every core starts: right after the trap vector table."""
        return self.trap_vector + 4 * VECTOR_ENTRIES

    @property
    def l1_reserved(self):
        """L1 bytes at the top of L1 that a compiled program must leave alone: the core
        stacks and the runtime's L1 data."""
        return self.cores * self.stack_size + self.l1_runtime_data

    # --- derived configurations -------------------------------------------------------

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
                f"l1_size={self.l1_size} l2_size={self.l2_size} hwpe_width={self.hwpe_width} "
                f"dma_width={self.dma_width}")


CONFIGS = {
    "small": ClusterConfig("small", ITAConfig(N=4, M=16), cores=2, l1_banks=8,
                           l1_size=32 * KiB, l2_size=64 * KiB, hwpe_width=128,
                           l2_program_size=32 * KiB,
                           description="FPGA prototyping: fits an ECP5-85F with the engine alone"),
    "default": ClusterConfig("default",
                             description="the reference design simulated by make sim and "
                                         "make test"),
    "large": ClusterConfig("large", ITAConfig(N=32, M=128), l1_banks=64, hwpe_width=2048,
                           description="4x the default array (4096 MACs per cycle)"),
}

DEFAULT = CONFIGS["default"]


def get(name) -> ClusterConfig:
    """The configuration called ``name``; ValueError naming the known ones otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown CONFIG {name!r}; known: {', '.join(CONFIGS)}") from None
