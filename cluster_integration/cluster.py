"""The cluster: CV32E40P cores, shared L1, ITA HWPE, event unit, DMA, L2, SoC control and
the chip-to-chip links."""

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ita.cluster_config import DEFAULT, LINKS, ClusterConfig

from . import memory_map as mmap
from .address_decoder import AddressDecoder
from .core import Cv32e40p
from .dma import Dma, read_ahead_covering
from .event_unit import EventUnit
from .hwpe.ita_hwpe import ItaHwpe
from .hwpe.tcdm_mux import TcdmMux
from .l1 import L1Memory
from .l2 import L2Memory
from .l3 import L3Link
from .link import ChipLink, beat_layout
from .soc_ctrl import SocCtrl

__all__ = ["Cluster"]

#: Data-side targets of every core, by memory-map region.
_TARGETS = ("L1", "EVENT_UNIT", "DMA", "LINK", "ITA", "SOC_CTRL", "L2")


class Cluster(wiring.Component):
    """A PULP-style cluster around the ITA engine.

    Each core fetches instructions through a private port into L2 and sends data accesses
    through its address decoder to: L1 (logarithmic interconnect, shared with the DMA's
    ``dma_width``-bit port and the ITA HWPE's wide port), its private event-unit port
    (barrier and event waits stall the core in its load-store unit), the register ports of
    the DMA and the ITA (shared, round-robin, with the core's id), SoC control (stdout,
    exit, cycles, trap reports) and L2 (shared among the cores; the DMA has its own wide L2
    port). L3, off-chip, is the DMA's alone: its port goes through the modelled link
    (:class:`L3Link`) to a sparse array loaded with ``+L3_HEX``. The chip-to-chip links
    (:class:`ChipLink`) take the DMA's beats into the remote windows and send them on
    ``tx<j>``; what arrives on ``rx<j>`` they write into L1 or L2 through the DMA's ports
    (shared round robin with the DMA); ``chip_id`` and ``chips`` (the chip's place in the
    ring, set by the system) are readable in their registers. The testbench loads L2
    through the ``l2`` submodule's ``storage`` memory, raises ``fetch_enable`` and watches
    the outputs.

    Members
    -------
    fetch_enable : In(1)
    char_valid, char : Out -- a character written to stdout
    exit_valid, exit_code : Out -- end of computation
    trap_valid, trap_cause, trap_pc : Out -- a core trapped (reported by its handler)
    bad_access, bad_core, bad_address : Out -- a core accessed an unmapped address
    chip_id, chips : In(8) -- this chip's index in the ring and the number of chips
    tx<j>, rx<j> : Out/In(stream.Signature(beat_layout(dma_width))) -- link j
    """

    def __init__(self, cluster: ClusterConfig = DEFAULT):
        self._cluster = cluster
        super().__init__({
            "fetch_enable": In(1),
            "char_valid": Out(1),
            "char": Out(8),
            "exit_valid": Out(1),
            "exit_code": Out(32),
            "trap_valid": Out(1),
            "trap_cause": Out(32),
            "trap_pc": Out(32),
            "bad_access": Out(1),
            "bad_core": Out(8),
            "bad_address": Out(32),
            "chip_id": In(8),
            "chips": In(8),
            **{f"{direction}{j}": port(stream.Signature(beat_layout(cluster.dma_width)))
               for j in range(len(LINKS)) for direction, port in (("tx", Out), ("rx", In))},
        })

    @property
    def cluster(self) -> ClusterConfig:
        return self._cluster

    @property
    def cores(self):
        return self._cluster.cores

    def elaborate(self, platform):
        m = Module()
        c = self._cluster
        n = c.cores
        regions = {name: c.region(name) for name in _TARGETS}

        m.submodules.l2 = l2 = L2Memory(size=c.l2_size, base=c.l2_base, fetch_ports=n,
                                        dma_width=c.dma_width)
        m.submodules.l1 = l1 = L1Memory(narrow_ports=n, banks=c.l1_banks, size=c.l1_size,
                                        wide_width=c.hwpe_width, base=c.l1_base,
                                        dma_width=c.dma_width,
                                        starvation_window=c.l1_starvation_window)
        m.d.comb += l1.hwpe_priority.eq(c.l1_hwpe_priority)
        m.submodules.event_unit = eu = EventUnit(cores=n)
        l3_region = c.region("L3")
        m.submodules.dma = dma = Dma(
            l1_region=regions["L1"], l2_region=regions["L2"], window=regions["DMA"].size,
            width=c.dma_width, queue_depth=c.dma_queue_depth, l3_region=l3_region,
            read_ahead=read_ahead_covering(c.l3_latency, c.l3_bytes_per_cycle,
                                           c.dma_width // 8), cores=n, remote=c.remote)
        m.submodules.link = link = ChipLink(c)
        m.d.comb += [link.chip_id.eq(self.chip_id), link.chips.eq(self.chips)]
        for j in range(len(LINKS)):
            wiring.connect(m, link.tx(j), wiring.flipped(getattr(self, f"tx{j}")))
            wiring.connect(m, wiring.flipped(getattr(self, f"rx{j}")), link.rx(j))
        m.submodules.l3_link = l3_link = L3Link(width=c.dma_width,
                                                bytes_per_cycle=c.l3_bytes_per_cycle,
                                                latency=c.l3_latency)
        self._l3_storage(m, l3_link.far, l3_region)
        m.submodules.soc = soc = SocCtrl()
        m.submodules.ita = ita = ItaHwpe(config=c.ita, data_width=c.hwpe_width, cores=n,
                                            clock_gate=c.hwpe_clock_gate)

        m.submodules.l2_mux = l2_mux = TcdmMux(channels=n, data_width=32)
        m.submodules.soc_mux = soc_mux = TcdmMux(channels=n, data_width=32)
        m.submodules.ita_mux = ita_mux = TcdmMux(channels=n, data_width=32)
        m.submodules.dma_mux = dma_mux = TcdmMux(channels=n, data_width=32)
        m.submodules.link_mux = link_mux = TcdmMux(channels=n, data_width=32)

        for i in range(n):
            core = Cv32e40p(hart_id=i, boot_address=c.boot_address, trap_vector=c.trap_vector)
            m.submodules[f"core{i}"] = core
            m.d.comb += core.fetch_enable.eq(self.fetch_enable)
            wiring.connect(m, core.instr, getattr(l2, f"fetch{i}"))
            decoder = AddressDecoder({name: (r.base, r.size) for name, r in regions.items()})
            m.submodules[f"decoder{i}"] = decoder
            wiring.connect(m, core.data, decoder.master)
            wiring.connect(m, decoder.L1, getattr(l1, f"narrow{i}"))
            wiring.connect(m, decoder.EVENT_UNIT, getattr(eu, f"core{i}"))
            wiring.connect(m, decoder.L2, l2_mux.channel(i))
            wiring.connect(m, decoder.SOC_CTRL, soc_mux.channel(i))
            wiring.connect(m, decoder.ITA, ita_mux.channel(i))
            wiring.connect(m, decoder.DMA, dma_mux.channel(i))
            wiring.connect(m, decoder.LINK, link_mux.channel(i))
            with m.If(decoder.bad_access):
                m.d.sync += [self.bad_access.eq(1), self.bad_core.eq(i),
                             self.bad_address.eq(decoder.bad_address)]

        # The DMA and the links' receivers share the DMA ports of L1 and L2, round robin.
        for name, memory in (("l1", l1), ("l2", l2)):
            mux = TcdmMux(channels=2, data_width=c.dma_width)
            m.submodules[f"{name}_dma_mux"] = mux
            wiring.connect(m, getattr(dma, name), mux.channel(0))
            wiring.connect(m, getattr(link, name), mux.channel(1))
            wiring.connect(m, mux.port, memory.dma)
        wiring.connect(m, dma.l3, l3_link.near)
        wiring.connect(m, dma.link, link.dma)
        m.d.comb += link.dma_last.eq(dma.link_last)
        wiring.connect(m, link_mux.port, link.regs)
        wiring.connect(m, l2_mux.port, l2.data)
        wiring.connect(m, soc_mux.port, soc.bus)
        wiring.connect(m, ita.tcdm, l1.wide)
        self._periph(m, ita_mux, ita.periph, regions["ITA"].base)
        self._periph(m, dma_mux, dma.regs, regions["DMA"].base)

        lines = {name: mmap.EVENT_LINES[name] for name in ("ITA", "DMA")}
        for i in range(n):
            pulses = Signal(len(eu.events[i]), name=f"events_core{i}")
            m.d.comb += [pulses.bit_select(lines["ITA"], 1).eq(ita.events[i]),
                         pulses.bit_select(lines["DMA"], 1).eq(dma.events[i]),
                         eu.events[i].eq(pulses)]
            for j in range(len(LINKS)):   # a transfer arrived: every core's line
                m.d.comb += pulses.bit_select(mmap.EVENT_LINES[f"LINK{j}"], 1).eq(
                    link.events[j])

        m.d.comb += [
            self.char_valid.eq(soc.char_valid), self.char.eq(soc.char),
            self.exit_valid.eq(soc.exit_valid), self.exit_code.eq(soc.exit_code),
            self.trap_valid.eq(soc.trap_valid), self.trap_cause.eq(soc.trap_cause),
            self.trap_pc.eq(soc.trap_pc),
        ]
        return m

    @staticmethod
    def _l3_storage(m, port, region):
        """The sparse L3 array (``cluster_l3_ram`` of ``l3.L3_RAM_SOURCE``) on the link's far
        side."""
        bits = (region.size // 4 - 1).bit_length()
        m.submodules.l3 = Instance(
            "cluster_l3_ram", p_ADDR_BITS=bits, p_DMA_WORDS=len(port.be) // 4,
            i_clk_i=ClockSignal(), i_dma_req_i=port.req, i_dma_we_i=port.we,
            i_dma_be_i=port.be, i_dma_addr_i=((port.addr - region.base) >> 2)[:bits],
            i_dma_wdata_i=port.wdata, o_dma_rdata_o=port.r_data)
        m.d.comb += port.gnt.eq(port.req)
        m.d.sync += port.r_valid.eq(port.req & ~port.we)

    @staticmethod
    def _periph(m, mux, slave, base):
        """Drive a register slave from a core mux, with the granted core's id."""
        port = mux.port
        m.d.comb += [
            slave.req.eq(port.req),
            port.gnt.eq(slave.gnt),
            slave.addr.eq(port.addr - base),
            slave.we.eq(port.we),
            slave.be.eq(port.be),
            slave.wdata.eq(port.wdata),
            slave.id.eq(mux.selected),
            port.r_valid.eq(slave.r_valid),
            port.r_data.eq(slave.r_data),
        ]
