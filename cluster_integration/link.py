"""The chip-to-chip links of one chip: the DMA sends beats to a neighbour, the neighbour's
beats are written into this chip's L1 or L2.

A chip of a multi-chip system reaches its neighbours only through these links (a ring:
:data:`ita.cluster_config.LINKS`). The DMA is the only sender: a transfer whose destination
lies in a link's remote window (:class:`ita.cluster_config.RemoteWindows`) hands its beats to
this block, which translates the window offset into the neighbour's own L1 or L2 address and
sends each beat, with its byte enables and a last-beat flag, on the link's ``tx`` stream. A
beat arriving on a link's ``rx`` stream is written where it says, counted, and the last beat
of a transfer raises the link's event line for every core, so that a core can sleep until
its data is there instead of polling memory.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ita.cluster_config import DEFAULT, LINKS, ClusterConfig

from . import memory_map
from .protocols import TcdmSignature
from .registers import WORD_BITS, RegisterDecoder, read_mux, region_window_bits

__all__ = ["ChipLink", "beat_layout", "TX_DEPTH"]

#: Beats a link's sender holds for the system around the chip.
TX_DEPTH = 2

_REGISTERS = {r.name: r for r in memory_map.LINK}


def beat_layout(width):
    """One beat on a link: byte enables, the last-beat flag, the receiver's byte address
    and ``width`` bits of data, in this order from bit 0 (the multi-chip harness counts the
    bytes of a beat from ``be``)."""
    return data.StructLayout({"be": width // 8, "last": 1, "addr": 32, "data": width})


class ChipLink(wiring.Component):
    """The links of one chip (:data:`~ita.cluster_config.LINKS`) for a ``cluster``.

    * ``dma`` (writes only; granted when the link's sender has room and its byte budget
      holds the beat's bytes): a beat at a remote-window address of link ``j`` is sent on
      ``tx<j>``, its address translated to the neighbour's L1 or L2, ``last`` taken from
      ``dma_last``. The budget grows by ``link_bytes_per_cycle`` every cycle up to one beat,
      so a link never moves more on average. A read, or an address outside every link's
      window (the DMA refuses both before they get here), is granted and dropped.
    * ``rx<j>``: each beat is written through ``l1`` or ``l2`` (by its address), one beat a
      cycle over all links, round robin, the one offered kept until its write is granted;
      ``ready`` is that grant. ``events[j]`` pulses one cycle after the write of a beat
      flagged last.
    * ``regs``: CHIP_ID and CHIPS (the ``chip_id``/``chips`` inputs, set by the system) and
      per link the RX/TX byte and transfer counters of :data:`memory_map.LINK`; granted at
      once, answered one cycle later, only the LINK window's word-index bits decoded.

    Members
    -------
    regs : In(TcdmSignature(32))
    dma : In(TcdmSignature(dma_width)), dma_last : In(1)
    l1, l2 : Out(TcdmSignature(dma_width))
    tx<j> : Out(stream.Signature(beat_layout)), rx<j> : In(stream.Signature(beat_layout))
    events : Out(links)
    chip_id, chips : In(8)
    """

    def __init__(self, cluster: ClusterConfig = DEFAULT):
        self._cluster = cluster
        self._remote = cluster.remote
        width = cluster.dma_width
        self.layout = beat_layout(width)
        members = {
            "regs": In(TcdmSignature(data_width=WORD_BITS)),
            "dma": In(TcdmSignature(data_width=width)),
            "dma_last": In(1),
            "l1": Out(TcdmSignature(data_width=width)),
            "l2": Out(TcdmSignature(data_width=width)),
            "events": Out(len(LINKS)),
            "chip_id": In(_REGISTERS["CHIP_ID"].field().width),
            "chips": In(_REGISTERS["CHIPS"].field().width),
        }
        for j in range(len(LINKS)):
            members[f"tx{j}"] = Out(stream.Signature(self.layout))
            members[f"rx{j}"] = In(stream.Signature(self.layout))
        super().__init__(members)

    @property
    def links(self):
        return len(LINKS)

    def tx(self, j):
        return getattr(self, f"tx{j}")

    def rx(self, j):
        return getattr(self, f"rx{j}")

    @staticmethod
    def _bytes(be):
        return sum(be[i] for i in range(len(be)))

    def elaborate(self, platform):
        m = Module()
        c, w = self._cluster, self._remote
        links, beat_bytes, rate = self.links, c.dma_width // 8, c.link_bytes_per_cycle
        counters = {name: [Signal(WORD_BITS, name=f"{name.lower()}{j}") for j in range(links)]
                    for name, _ in memory_map.LINK_COUNTERS}

        # Sending: decode the link and the neighbour's address of a DMA beat.
        dma = self.dma
        shift = (w.window - 1).bit_length()
        relative = Signal(range(w.region.size))
        m.d.comb += relative.eq(dma.addr - w.region.base)
        link, offset = relative[shift:], relative[:shift]
        target = Signal(32)
        m.d.comb += target.eq(Mux(offset >= w.l2_offset, w.l2_base + offset - w.l2_offset,
                                  w.l1_base + offset))
        cost = Signal(range(beat_bytes + 1))
        m.d.comb += cost.eq(self._bytes(dma.be))
        accepted = Signal(links)
        for j in range(links):
            m.submodules[f"tx{j}_fifo"] = fifo = SyncFIFO(width=self.layout.size, depth=TX_DEPTH)
            budget = Signal(range(beat_bytes + 1), init=beat_bytes, name=f"budget{j}")
            here = dma.req & dma.we & (link == j)
            take = Signal(name=f"take{j}")
            m.d.comb += [take.eq(here & fifo.w_rdy & (budget >= cost)), accepted[j].eq(take)]
            beat = data.View(self.layout, fifo.w_data)
            m.d.comb += [fifo.w_en.eq(take), beat.be.eq(dma.be), beat.last.eq(self.dma_last),
                         beat.addr.eq(target), beat.data.eq(dma.wdata)]
            left = Signal(range(beat_bytes + rate + 1), name=f"budget{j}_left")
            m.d.comb += left.eq(budget - Mux(take, cost, 0) + rate)
            m.d.sync += budget.eq(Mux(left > beat_bytes, beat_bytes, left))
            tx = self.tx(j)
            m.d.comb += [tx.valid.eq(fifo.r_rdy), tx.payload.eq(fifo.r_data),
                         fifo.r_en.eq(tx.ready)]
            with m.If(take):
                m.d.sync += [counters["TX_BYTES"][j].eq(counters["TX_BYTES"][j] + cost),
                             counters["TX_TRANSFERS"][j].eq(
                                 counters["TX_TRANSFERS"][j] + self.dma_last)]
        known = (link < links) & dma.we
        m.d.comb += dma.gnt.eq(dma.req & (accepted.any() | ~known))
        m.d.sync += dma.r_valid.eq(dma.req & dma.gnt & ~dma.we)

        # Receiving: one beat a cycle, the offered one held until its write is granted.
        turn = Signal(range(max(links, 2)))     # the link served first
        held = Signal()
        held_link = Signal.like(turn)
        chosen = Signal.like(turn)
        for k in reversed(range(links)):        # later wins: the first valid from `turn`
            candidate = (turn + k) % links
            with m.If(Cat(self.rx(j).valid for j in range(links)).bit_select(candidate, 1)):
                m.d.comb += chosen.eq(candidate)
        with m.If(held):
            m.d.comb += chosen.eq(held_link)
        incoming = data.View(self.layout, Signal(self.layout.size))
        valid = Signal()
        with m.Switch(chosen):
            for j in range(links):
                with m.Case(j):
                    m.d.comb += [incoming.eq(self.rx(j).payload), valid.eq(self.rx(j).valid)]
        l1 = c.region("L1")
        in_l1 = (incoming.addr >= l1.base) & (incoming.addr < l1.end)
        granted = Signal()
        for port, selected in ((self.l1, in_l1), (self.l2, ~in_l1)):
            m.d.comb += [port.req.eq(valid & selected), port.we.eq(1),
                         port.addr.eq(incoming.addr), port.be.eq(incoming.be),
                         port.wdata.eq(incoming.data)]
            with m.If(port.req & port.gnt):
                m.d.comb += granted.eq(1)
        m.d.sync += [held.eq(valid & ~granted), held_link.eq(chosen), self.events.eq(0)]
        with m.If(granted):
            m.d.sync += turn.eq(Mux(chosen + 1 == links, 0, chosen + 1))
        for j in range(links):
            here = granted & (chosen == j)
            m.d.comb += self.rx(j).ready.eq(here)
            with m.If(here):
                m.d.sync += [counters["RX_BYTES"][j].eq(counters["RX_BYTES"][j]
                                                        + self._bytes(incoming.be)),
                             counters["RX_TRANSFERS"][j].eq(counters["RX_TRANSFERS"][j]
                                                            + incoming.last),
                             self.events[j].eq(incoming.last)]

        # Registers.
        bus = self.regs
        decoder = RegisterDecoder(bus, region_window_bits(c.region("LINK").size))
        m.d.comb += bus.gnt.eq(bus.req)
        contents = {_REGISTERS["CHIP_ID"]: {_REGISTERS["CHIP_ID"].field(): self.chip_id},
                    _REGISTERS["CHIPS"]: {_REGISTERS["CHIPS"].field(): self.chips}}
        for name, signals in counters.items():
            for j, counter in enumerate(signals):
                contents[_REGISTERS[f"{name}{j}"]] = counter
        read_value = read_mux(m, decoder.word, contents)
        m.d.sync += [bus.r_valid.eq(bus.req),
                     bus.r_data.eq(Mux(bus.req & ~bus.we, read_value, 0))]
        return m
