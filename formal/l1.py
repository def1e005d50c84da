"""Properties of the L1 interconnect, over its ports: which banks each grant takes.

Bank use is recomputed from the documented interleaving (``docs/cluster-protocols.md``
section 2): a narrow access takes bank ``(addr >> 2) % banks``; a wide or DMA access takes
consecutive banks from there (the DMA only those of words with a byte enable set).
"""

from amaranth import Cat, Elaboratable, Module, Mux, Signal
from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cover, Fragment
from amaranth.utils import exact_log2

from cluster_integration.l1 import WORD_BYTES, L1Memory
from formal.harness import CORES, Tampered, drive_freely, no_reset

__all__ = ["SIZE", "BankHarness", "StarvationHarness", "l1", "grants_wide_always",
           "never_yields"]

#: The harness's cores and a wide port half as wide as the four banks, two rows each; a short
#: starvation window keeps the refusal bounds, and so the depth that checks them, small.
SIZE = dict(narrow_ports=CORES, banks=4, size=4 * 2 * WORD_BYTES, wide_width=2 * 32, base=0,
            dma_width=32, starvation_window=(1, 2))


def l1():
    return L1Memory(**SIZE)


def grants_wide_always():
    """Broken: the wide port is granted whenever it asks, whoever holds its banks."""
    def tamper(m, outer, inner):
        m.d.comb += outer.wide.gnt.eq(outer.wide.req)
    return Tampered(l1(), tamper, {("wide", "gnt")})


class _Unyielding(L1Memory):
    """An L1 whose anti-starvation window never opens: the priority side wins every
    conflict."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        _, denominator = self.starvation_window
        self.starvation_window = (denominator, denominator)


def never_yields():
    """Broken: the anti-starvation window never lets the low-priority side win."""
    return _Unyielding(**SIZE)


#: Geometry and bounds come from an honest instance (a broken variant's own could hide its
#: fault); elaborated once only so that Amaranth does not report it unused.
_GEOMETRY = l1()
Fragment.get(_GEOMETRY, None)


def _ports(dut):
    narrow = [getattr(dut, f"narrow{i}") for i in range(_GEOMETRY.narrow_ports)]
    return narrow, dut.wide, dut.dma


def _banks_taken(port, words, enables):
    """One bit per bank: the banks ``port`` would take (``enables`` per word)."""
    banks = _GEOMETRY.banks
    low = exact_log2(WORD_BYTES)
    first = port.addr[low:low + exact_log2(banks)]
    taken = [0] * banks
    for k in range(words):
        for b in range(banks):
            taken[b] = taken[b] | (enables[k] & (((first + k) % banks) == b))
    return Cat(taken)


def _bank_use(dut):
    """Per port, the banks its access touches."""
    narrow, wide, dma = _ports(dut)
    words = _GEOMETRY.dma_words
    return ([_banks_taken(p, 1, [1]) for p in narrow],
            _banks_taken(wide, _GEOMETRY.wide_words, [1] * _GEOMETRY.wide_words),
            _banks_taken(dma, words, [dma.be[4 * k:4 * k + 4].any() for k in range(words)]))


class BankHarness(Elaboratable):
    """Each bank is granted to at most one access per cycle; the wide port gets all its
    banks or none; a refused wide request leaves the banks to the cores."""

    def __init__(self, block=l1):
        self.block = block

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.block()
        drive_freely(m, dut)
        no_reset(m)
        narrow, wide, dma = _ports(dut)
        narrow_banks, wide_banks, dma_banks = _bank_use(dut)
        for port in (*narrow, wide, dma):
            m.d.comb += Assert(~port.gnt | port.req)
        for b in range(_GEOMETRY.banks):
            takers = [p.gnt & banks[b] for p, banks in zip(narrow, narrow_banks, strict=True)]
            takers += [wide.gnt & wide_banks[b], dma.gnt & dma_banks[b]]
            cores_asking = Cat(p.req & banks[b]
                               for p, banks in zip(narrow, narrow_banks, strict=True)).any()
            core_granted = Cat(takers[:len(narrow)]).any()
            free_for_cores = ~(dma.req & dma_banks[b]) & ~(wide.gnt & wide_banks[b])
            m.d.comb += [Assert(sum(takers) <= 1),
                         Assert(~(cores_asking & free_for_cores) | core_granted)]
        # Witness: the wide port loses a conflict and a core keeps one of its banks.
        keeps = Cat(p.gnt & (banks & wide_banks).any()
                    for p, banks in zip(narrow, narrow_banks, strict=True)).any()
        m.d.comb += Cover(wide.req & ~wide.gnt & keeps)
        return m


class StarvationHarness(Elaboratable):
    """No port is refused more times in a row than ``L1Memory.refusal_bounds`` promises,
    with every master holding its request until granted and ``hwpe_priority`` fixed."""

    def __init__(self, block=l1):
        self.block = block

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.block()
        drive_freely(m, dut, skip={("hwpe_priority",)})
        no_reset(m)
        priority = AnyConst(1)
        m.d.comb += dut.hwpe_priority.eq(priority)
        bounds = [Mux(priority, high, low) for high, low in
                  zip(_GEOMETRY.refusal_bounds(True), _GEOMETRY.refusal_bounds(False),
                      strict=True)]
        narrow, wide, dma = _ports(dut)
        starved = []
        for name, port, bound in ((f"narrow{i}", p, bounds[2]) for i, p in enumerate(narrow)):
            starved.append(self._refusals(m, name, port, bound))
        starved.append(self._refusals(m, "wide", wide, bounds[0]))
        starved.append(self._refusals(m, "dma", dma, bounds[1]))
        # Witness: the wide port waits out its whole bound once.
        m.d.comb += Cover(starved[-2] == bounds[0])
        return m

    @staticmethod
    def _refusals(m, name, port, bound):
        """Consecutive refused cycles of ``port``, asserted within ``bound``; TCDM rule 3
        (a request waits unchanged) assumed."""
        refused = Signal(8, name=f"{name}_refused")
        payload = Cat(port.addr, port.we, port.be, port.wdata)
        held = Signal.like(payload, name=f"{name}_held")
        waiting = port.req & ~port.gnt
        m.d.sync += [refused.eq(Mux(waiting, refused + 1, 0)), held.eq(payload)]
        m.d.comb += [Assume((refused == 0) | (port.req & (payload == held))),
                     Assert(refused <= bound)]
        return refused
