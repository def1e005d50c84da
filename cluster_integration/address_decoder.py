"""Routes one core's data accesses to the slave that owns the address."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .protocols import TcdmSignature

__all__ = ["AddressDecoder"]


class AddressDecoder(wiring.Component):
    """One master, one output port per address range (``targets``: name -> (base, size)).

    The request goes to the port whose range holds the address; that port's grant is the
    master's, and the response follows one cycle after every grant. An address outside
    every range is granted at once, answered with 0, and reported on ``bad_access`` /
    ``bad_address`` so that the simulation can stop with the culprit's address.

    Members
    -------
    master : In(TcdmSignature(32))
    <target> : Out(TcdmSignature(32)) for every target
    bad_access : Out(1)
    bad_address : Out(32)
    """

    def __init__(self, targets):
        self._targets = dict(targets)
        members = {"master": In(TcdmSignature(data_width=32)),
                   "bad_access": Out(1), "bad_address": Out(32)}
        for name in self._targets:
            members[name] = Out(TcdmSignature(data_width=32))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        master = self.master
        hits = []
        for name, (base, size) in self._targets.items():
            port = getattr(self, name)
            hit = Signal(name=f"hit_{name}")
            m.d.comb += [
                hit.eq((master.addr >= base) & (master.addr < base + size)),
                port.req.eq(master.req & hit),
                port.addr.eq(master.addr),
                port.we.eq(master.we),
                port.be.eq(master.be),
                port.wdata.eq(master.wdata),
            ]
            with m.If(hit):
                m.d.comb += master.gnt.eq(port.gnt)
            hits.append((hit, port))
        miss = Signal()
        m.d.comb += miss.eq(~Cat(hit for hit, _ in hits).any())
        with m.If(miss):
            m.d.comb += master.gnt.eq(master.req)
        m.d.comb += [self.bad_access.eq(master.req & miss), self.bad_address.eq(master.addr)]

        # The response comes one cycle after every grant, writes included (the cores' OBI
        # port expects one per transaction even where a slave answers reads only); the data
        # is taken from the port that was granted.
        answered = Signal(len(hits))
        m.d.sync += [answered.eq(Cat(hit for hit, _ in hits) & master.gnt.replicate(len(hits))
                                 & master.req.replicate(len(hits))),
                     master.r_valid.eq(master.req & master.gnt)]
        for index, (_hit, port) in enumerate(hits):
            with m.If(answered[index]):
                m.d.comb += master.r_data.eq(port.r_data)
        return m
