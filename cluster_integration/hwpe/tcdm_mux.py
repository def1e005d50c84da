"""Round-robin multiplexer of several TCDM masters onto one port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..protocols import TcdmSignature

__all__ = ["TcdmMux"]


class TcdmMux(wiring.Component):
    """Shares one TCDM port among ``channels`` masters of the same width.

    The choice rotates among requesting channels, but a request that was offered and not
    granted stays selected until it is (the port's payload must stay stable, and the
    channel keeps requesting by protocol). The read response, one cycle after the grant,
    goes back to the channel that was granted.

    Members
    -------
    channels : In(TcdmSignature) x channels -- ``ch0``, ``ch1``, ...
    port : Out(TcdmSignature)
    selected : Out(range(channels)) -- the channel currently driving ``port`` (its id)
    """

    def __init__(self, *, channels, data_width, addr_width=32):
        if channels < 1:
            raise ValueError("at least one channel is needed")
        self._count = channels
        signature = TcdmSignature(data_width=data_width, addr_width=addr_width)
        members = {f"ch{c}": In(signature) for c in range(channels)}
        members["port"] = Out(signature)
        members["selected"] = Out(range(max(channels, 2)))  # never a 0-width port
        super().__init__(members)

    def channel(self, index):
        return getattr(self, f"ch{index}")

    def elaborate(self, platform):
        m = Module()
        count = self._count
        chans = [self.channel(c) for c in range(count)]
        last = Signal(range(count))          # last granted channel (round-robin pointer)
        held = Signal()                      # an ungranted request is being held
        held_channel = Signal(range(count))
        chosen = Signal(range(count))

        # Rotating priority: the first requester after ``last`` (later statements win, so
        # the candidates are assigned from lowest to highest priority).
        with m.Switch(last):
            for start in range(count):
                with m.Case(start):
                    for offset in reversed(range(1, count + 1)):
                        with m.If(chans[(start + offset) % count].req):
                            m.d.comb += chosen.eq((start + offset) % count)
        with m.If(held):
            m.d.comb += chosen.eq(held_channel)
        m.d.comb += self.selected.eq(chosen)

        port = self.port
        with m.Switch(chosen):
            for c in range(count):
                with m.Case(c):
                    m.d.comb += [
                        port.req.eq(chans[c].req),
                        port.addr.eq(chans[c].addr),
                        port.we.eq(chans[c].we),
                        port.be.eq(chans[c].be),
                        port.wdata.eq(chans[c].wdata),
                        chans[c].gnt.eq(port.gnt),
                    ]
        granted = port.req & port.gnt
        m.d.sync += [held.eq(port.req & ~port.gnt), held_channel.eq(chosen)]
        with m.If(granted):
            m.d.sync += last.eq(chosen)

        # Responses: one cycle after a granted read, to the channel that made it.
        response_to = Signal(range(count))
        response_due = Signal()
        m.d.sync += [response_due.eq(granted & ~port.we), response_to.eq(chosen)]
        for c in range(count):
            m.d.comb += [
                chans[c].r_data.eq(port.r_data),
                chans[c].r_valid.eq(port.r_valid & response_due & (response_to == c)),
            ]
        return m
