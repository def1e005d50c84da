"""The cluster's memory map and peripheral registers, described once.

Region bases and sizes belong to the cluster configuration
(:class:`ita.cluster_config.ClusterConfig`); this module describes what lives inside the
peripheral windows (their registers) and the event lines. The linker script, the C header of
``sw/`` and the testbench constants derive from both (``memory_map_gen``).

Cores synchronise without busy polling: a *load* from EU ``BARRIER`` or ``EVT_WAIT`` is
answered only when the barrier is complete or an enabled event is pending, so the core
stalls in its load-store unit (the same effect as PULP's ``p.elw``).
"""

from ita.cluster_config import DEFAULT, LINKS, Region

from .registers import Field, Register

__all__ = ["Region", "REGIONS", "region", "EVENT_UNIT", "DMA", "SOC_CTRL", "LINK", "EVENT_LINES",
           "LINK_COUNTERS", "LINK_COUNTER_STRIDE",
           "BOOT_ADDRESS", "TRAP_VECTOR", "CORES", "L1_BANKS", "PERIPHERALS"]

# The default cluster's map, for the blocks that do not take a configuration yet. The
# numbers themselves belong to ita.cluster_config.ClusterConfig.
REGIONS = DEFAULT.regions
CORES = DEFAULT.cores
L1_BANKS = DEFAULT.l1_banks
TRAP_VECTOR = DEFAULT.trap_vector
BOOT_ADDRESS = DEFAULT.boot_address
region = DEFAULT.region


#: Event lines seen by the event unit, per core (bit positions of EVT_MASK / EVT_WAIT).
#: ``LINK<j>``: a transfer arrived over link j (its last beat is written), for every core.
EVENT_LINES = {"ITA": 0, "DMA": 1, **{f"LINK{j}": 2 + j for j in range(len(LINKS))}, "SW0": 8}

EVENT_UNIT = (
    Register("CORE_ID", 0x00, "r", "Id of the reading core (0..cores-1).",
             (Field("id", 0, 8, "core id"),)),
    Register("BARRIER", 0x04, "r", "Arrive at the cluster barrier; the load completes when "
             "BARRIER_COUNT cores have arrived, and returns the barrier generation.",
             (Field("generation", 0, 32, "completed barriers"),)),
    Register("BARRIER_COUNT", 0x08, "rw", "Cores taking part in the barrier (reset: all).",
             (Field("count", 0, 8, "cores"),)),
    Register("EVT_MASK", 0x0C, "rw", "Events that wake the reading core (one mask per core).",
             (Field("mask", 0, 16, "bit per EVENT_LINES entry; 8.. software events"),)),
    Register("EVT_WAIT", 0x10, "r", "Block until an enabled event is pending for this core; "
             "return and clear the pending enabled events.",
             (Field("events", 0, 16, "events that were pending"),)),
    Register("EVT_PENDING", 0x14, "r", "Pending events of this core, without waiting or "
             "clearing.", (Field("events", 0, 16, "pending events"),)),
    Register("SW_EVENT", 0x18, "w", "Raise software event 8 + n for the cores in the mask.",
             (Field("event", 0, 3, "n"), Field("cores", 8, 8, "target cores"))),
)

DMA = (
    Register("SRC", 0x00, "rw", "Source byte address (L1, L2 or L3), word-aligned.",
             (Field("address", 0, 32, "byte address"),)),
    Register("DST", 0x04, "rw", "Destination byte address (L1, L2 or L3), word-aligned.",
             (Field("address", 0, 32, "byte address"),)),
    Register("LENGTH", 0x08, "rw", "Bytes per row (a word multiple; 0: an empty transfer).",
             (Field("bytes", 0, 20, "bytes"),)),
    Register("ROWS", 0x0C, "rw", "Rows of a 2-D transfer (1 for a 1-D one).",
             (Field("rows", 0, 16, "rows"),)),
    Register("SRC_STRIDE", 0x10, "rw", "Bytes between source rows (two's complement: rows "
             "may run downwards).", (Field("stride", 0, 32, "bytes"),)),
    Register("DST_STRIDE", 0x14, "rw", "Bytes between destination rows (two's complement).",
             (Field("stride", 0, 32, "bytes"),)),
    Register("START", 0x18, "w", "Write: queue the programmed transfer (held while the "
             "queue is full). A transfer the DMA cannot do is queued too, and refused when "
             "its turn comes (see ERROR)."),
    Register("STATUS", 0x1C, "r", "Transfers queued or running; a DMA event is raised for the "
             "starting core when its transfer ends, or is refused.",
             (Field("busy", 0, 8, "transfers not finished"),)),
    Register("ERROR", 0x20, "r", "Why transfers the reading core started were refused since "
             "its last ERROR read: a bit per cause and how many; the read clears them. A "
             "refused transfer writes nothing and ends with its DMA event.",
             (Field("src_range", 0, 1, "the source rows do not lie within one of L1, L2, L3"),
              Field("dst_range", 1, 1, "the destination rows do not lie within one of L1, "
                    "L2, L3"),
              Field("rows", 2, 1, "ROWS is 0 and LENGTH is not"),
              Field("align", 3, 1, "SRC, DST or LENGTH is not a word multiple, or ROWS > 1 and "
                    "a stride is not"),
              Field("overlap", 4, 1, "the source and destination spans share a byte"),
              Field("link", 5, 1, "the destination lies in the REMOTE region but not within "
                    "the neighbour's L1 or L2 in the window of a link the chip has"),
              Field("refused", 8, 8, "refused transfers (saturates)"))),
)

SOC_CTRL = (
    Register("PUTCHAR", 0x00, "w", "Write a character to the simulation's stdout.",
             (Field("char", 0, 8, "character"),)),
    Register("EXIT", 0x04, "w", "End the simulation with this exit code (0: success).",
             (Field("code", 0, 32, "exit code"),)),
    Register("CYCLES", 0x08, "r", "Cycles since reset, low word.",
             (Field("low", 0, 32, "cycles"),)),
    Register("CYCLES_HI", 0x0C, "r", "Cycles since reset, high word (latched on a CYCLES "
             "read).", (Field("high", 0, 32, "cycles"),)),
    Register("TRAP", 0x10, "w", "Report a trap: the handler writes mcause here, then the PC "
             "to TRAP_PC; the simulation ends with a failure.",
             (Field("mcause", 0, 32, "mcause"),)),
    Register("TRAP_PC", 0x14, "w", "PC of the trapping instruction (mepc).",
             (Field("pc", 0, 32, "mepc"),)),
)

#: Per-link counters of the LINK block: (name, access, doc), each link's set
#: ``LINK_COUNTER_STRIDE`` bytes after the previous one's, from offset 0x10.
LINK_COUNTERS = (
    ("RX_BYTES", "Bytes received over the link and written to this chip's L1 or L2 since "
     "reset (wraps)."),
    ("RX_TRANSFERS", "Transfers received over the link since reset: a transfer counts when "
     "its last beat is written, and raises the link's event for every core."),
    ("TX_BYTES", "Bytes the link accepted from the DMA for sending since reset (wraps)."),
    ("TX_TRANSFERS", "Transfers whose last beat the link accepted for sending since reset."),
)
LINK_COUNTER_STRIDE = 0x10

LINK = (
    Register("CHIP_ID", 0x00, "r", "This chip's position in the ring of chips (0..CHIPS-1), "
             "set by the system around the chip.", (Field("id", 0, 8, "chip index"),)),
    Register("CHIPS", 0x04, "r", "Chips in the ring (1: a chip alone, its links unconnected "
             "or looped back).", (Field("chips", 0, 8, "chips"),)),
    *(Register(f"{name}{j}", 0x10 + j * LINK_COUNTER_STRIDE + 4 * k, "r",
               f"Link {j} ({LINKS[j]} chip): {doc}", (Field("count", 0, 32, "count"),))
      for j in range(len(LINKS)) for k, (name, doc) in enumerate(LINK_COUNTERS)),
)

PERIPHERALS = {"EVENT_UNIT": EVENT_UNIT, "DMA": DMA, "LINK": LINK, "SOC_CTRL": SOC_CTRL}
