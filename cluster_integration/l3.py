"""The off-chip link to L3: the bandwidth and latency of a HyperBus-class memory, modelled.

L3 holds what does not fit in L2 (the weights of real models). Only the DMA reaches it. The
storage itself is a sparse behavioural array (:data:`L3_RAM_SOURCE`, paged on demand, so
64 MiB cost no simulator memory) behind this link, which is what makes L3 slow.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .l2 import L2_RAM_SOURCE
from .protocols import TcdmSignature

__all__ = ["L3Link", "L3_RAM_SOURCE"]

#: The storage, module ``cluster_l3_ram``: an associative array of words, loadable with
#: ``+L3_HEX=<file>``. It shares L2's source file, so every build that has L2 has it.
L3_RAM_SOURCE = L2_RAM_SOURCE


class L3Link(wiring.Component):
    """``width``-bit link moving ``bytes_per_cycle`` bytes per cycle with ``latency`` cycles
    from a read's grant to its data.

    ``near`` follows the TCDM request rules (``req`` held until ``gnt``, ``be`` marks the
    bytes moved, reads included) with one difference: a read's ``r_valid``/``r_data`` come
    ``latency`` cycles after its grant instead of one, in grant order, and writes get no
    response. Bandwidth is a byte budget that grows by ``bytes_per_cycle`` every cycle up
    to one whole beat; a request is granted when the budget holds its bytes, which it then
    spends, so a stream of full beats is granted every ``beat bytes / bytes_per_cycle``
    cycles and never faster on average. Writes are posted: they land in the storage at the
    grant (the DMA's completion only follows its last grant anyway).

    ``far`` is the storage, a TCDM slave that grants at once and answers one cycle later.

    Members
    -------
    near : In(TcdmSignature(width)) -- the DMA
    far : Out(TcdmSignature(width)) -- the storage
    """

    def __init__(self, *, width, bytes_per_cycle, latency):
        beat_bytes = width // 8
        if not isinstance(bytes_per_cycle, int) or not 1 <= bytes_per_cycle <= beat_bytes:
            raise ValueError(f"bytes_per_cycle must be an integer 1..{beat_bytes}, "
                             f"not {bytes_per_cycle!r}")
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"latency must be a positive integer, not {latency!r}")
        self.beat_bytes, self.bytes_per_cycle, self.latency = (beat_bytes, bytes_per_cycle,
                                                               latency)
        super().__init__({
            "near": In(TcdmSignature(data_width=width)),
            "far": Out(TcdmSignature(data_width=width)),
        })

    def elaborate(self, platform):
        m = Module()
        near, far = self.near, self.far
        beat_bytes, rate = self.beat_bytes, self.bytes_per_cycle

        budget = Signal(range(beat_bytes + 1), init=beat_bytes)
        cost = Signal(range(beat_bytes + 1))
        m.d.comb += cost.eq(sum(near.be[i] for i in range(beat_bytes)))
        affordable = Signal()
        m.d.comb += affordable.eq(budget >= cost)
        granted = Signal()
        m.d.comb += [
            far.req.eq(near.req & affordable),
            far.addr.eq(near.addr), far.we.eq(near.we), far.be.eq(near.be),
            far.wdata.eq(near.wdata),
            granted.eq(far.req & far.gnt),
            near.gnt.eq(granted),
        ]
        left = Signal(range(beat_bytes + rate + 1))
        m.d.comb += left.eq(budget - granted * cost + rate)
        m.d.sync += budget.eq(Mux(left > beat_bytes, beat_bytes, left))

        # The storage answers one cycle after the grant; the rest of the latency is a delay
        # line of (valid, data) stages.
        answered = Signal()
        m.d.sync += answered.eq(granted & ~near.we)
        valid, payload = answered, far.r_data
        for stage in range(self.latency - 1):
            next_valid = Signal(name=f"delay{stage}_valid")
            next_payload = Signal.like(far.r_data, name=f"delay{stage}_data")
            m.d.sync += [next_valid.eq(valid), next_payload.eq(payload)]
            valid, payload = next_valid, next_payload
        m.d.comb += [near.r_valid.eq(valid), near.r_data.eq(payload)]
        return m

