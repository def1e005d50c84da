"""Shared L1 scratchpad (TCDM): word-interleaved 32-bit banks behind a logarithmic interconnect.

The cores reach L1 through 32-bit *narrow* ports, the DMA through a port as wide as its data
path, the HWPE through one *wide* port (the TCDM protocol of ``protocols.py``). Every bank
serves at most one access per cycle; a granted read returns its data exactly one cycle after
the grant.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import exact_log2

from .protocols import TcdmSignature

__all__ = ["L1Memory"]

WORD_BYTES = 4


class L1Memory(wiring.Component):
    """L1 memory with ``narrow_ports`` 32-bit masters (the cores), one ``dma_width``-bit DMA
    master and one ``wide_width``-bit HWPE master.

    Addressing: only the byte offset inside L1 is decoded (``addr mod size``; the upper bits
    are ignored, so the address decoder in front must send only L1 accesses here). Words are
    interleaved: ``bank = (offset >> 2) % banks`` and ``row = (offset >> 2) // banks``. A
    DMA or wide access covers ``width / 32`` consecutive words from its word-aligned address
    (lane 0 = the word at ``addr``); words past the last bank continue in the next row of
    the first banks. A DMA access touches only the words with a byte enable set, reads
    included, so a short last beat of a row leaves the other banks free.

    Arbitration, per bank, in the cycle of the request (``gnt`` depends combinationally on
    the requests). The narrow masters and the DMA form the *narrow side*:

    - The narrow side of a bank is served round robin: the first requester after the last
      granted one wins, the DMA being one more requester of every bank it touches. The
      rotation only advances on a grant. The DMA is granted all-or-nothing, when it wins
      every bank it touches; a bank it wins is kept for it (not handed to a core) until it
      has all of them. Only a core after the last granted one and before the DMA in the
      rotation can still take such a bank, and each grant moves the rotation closer to the
      DMA, so cores taking its banks in turn cannot starve it.
    - The wide port is granted all-or-nothing: only if it gets every bank it touches in the
      same cycle. Otherwise none of those banks is taken from the narrow side.
    - *Conflict*: the wide port requests and one of its banks is also requested by the
      narrow side. The priority side wins all its conflicts: the narrow side by default,
      the wide port when ``hwpe_priority`` is set (``invert_prio`` in HCI).
    - *Anti-starvation*: a counter advances (modulo ``denominator``) on every cycle with a
      conflict; while ``numerator <= counter < denominator`` the other side wins instead.
      Over any ``denominator`` consecutive conflict cycles the low-priority side therefore
      wins ``denominator - numerator`` and the priority side ``numerator``.

    Guarantees (counting the cycles in which a request is refused, with
    ``(N, D) = starvation_window``, :meth:`refusal_bounds`): the wide port is refused at most
    ``N`` times in a row by default, at most ``D - N`` with ``hwpe_priority``. The narrow
    side of one bank loses the bank to the wide port at most ``R = D - N`` times in a row by
    default (``N`` with ``hwpe_priority``). While the DMA waits, each bank it touches sees at
    most ``narrow_ports`` core grants, and every refused cycle of the DMA is a core grant in
    one of its ``W = dma_width / 32`` banks or a wide win (at most ``R`` in a row), so the DMA
    is refused at most ``narrow_ports * W * (R + 1) + R`` times in a row. A core is refused
    at most ``narrow_ports * (R + 1) + dma`` times (the other cores and the DMA ahead of it
    in the rotation, ``dma`` the DMA's bound).

    Backdoor: bank ``b`` is the ``amaranth.lib.memory.Memory`` ``bank_memories[b]``, a
    submodule named ``bank{b}`` (so it is ``bank{b}`` in the hierarchy of the generated
    Verilog too), one 32-bit word per row. In amaranth.sim use :meth:`peek` / :meth:`poke`
    (or ``ctx.get(l1.bank_memories[b].data[row])``) with :meth:`locate`.

    Members
    -------
    narrow0 .. narrow{n-1} : In(TcdmSignature(32)) -- the cores
    dma : In(TcdmSignature(dma_width)) -- the DMA
    wide : In(TcdmSignature(wide_width)) -- the HWPE
    hwpe_priority : In(1) -- the wide port wins conflicts (outside the window)
    """

    def __init__(self, *, narrow_ports, banks, size, wide_width, base, dma_width=32,
                 starvation_window=(3, 4)):
        numerator, denominator = starvation_window
        if not 0 < numerator < denominator:
            raise ValueError("starvation_window needs 0 < numerator < denominator, so that "
                             "each side wins some conflicts")
        if narrow_ports < 1:
            raise ValueError("at least one narrow port is needed")
        exact_log2(banks)
        if size % (banks * WORD_BYTES):
            raise ValueError("size must be a whole number of rows")
        exact_log2(size // (banks * WORD_BYTES))
        if base % size:
            raise ValueError("base must be aligned to size (only the offset bits are decoded)")
        for name, width in (("wide", wide_width), ("DMA", dma_width)):
            if width % 32 or not 0 < width // 32 <= banks:
                raise ValueError(f"the {name} port must cover 1 .. banks whole words")
        self.narrow_ports, self.banks, self.size, self.base = narrow_ports, banks, size, base
        self.wide_words = wide_width // 32
        self.dma_words = dma_width // 32
        self.depth = size // (banks * WORD_BYTES)
        self.starvation_window = (numerator, denominator)

        narrow = TcdmSignature(data_width=32)
        members = {f"narrow{i}": In(narrow) for i in range(narrow_ports)}
        members["dma"] = In(TcdmSignature(data_width=dma_width))
        members["wide"] = In(TcdmSignature(data_width=wide_width))
        members["hwpe_priority"] = In(1)
        super().__init__(members)

        # Created here, not in elaborate(), so that testbenches can reach them beforehand.
        self.bank_memories = tuple(Memory(shape=32, depth=self.depth, init=[])
                                   for _ in range(banks))
        self._bank_ports = tuple((memory.read_port(), memory.write_port(granularity=8))
                                 for memory in self.bank_memories)

    def narrow(self, index):
        return getattr(self, f"narrow{index}")

    def refusal_bounds(self, hwpe_priority=False):
        """(wide, dma, narrow): the most consecutive cycles each kind of port is refused."""
        numerator, denominator = self.starvation_window
        wide = denominator - numerator if hwpe_priority else numerator
        narrow_losses = numerator if hwpe_priority else denominator - numerator
        dma = self.narrow_ports * self.dma_words * (narrow_losses + 1) + narrow_losses
        return wide, dma, self.narrow_ports * (narrow_losses + 1) + dma

    def locate(self, address):
        """(bank, row) of the word holding byte ``address`` (a cluster or an L1 address)."""
        word = (address % self.size) // WORD_BYTES
        return word % self.banks, word // self.banks

    def peek(self, ctx, address):
        """Backdoor read (amaranth.sim testbench) of the word holding ``address``."""
        bank, row = self.locate(address)
        return ctx.get(self.bank_memories[bank].data[row])

    def poke(self, ctx, address, word):
        """Backdoor write (amaranth.sim testbench) of the word holding ``address``."""
        bank, row = self.locate(address)
        ctx.set(self.bank_memories[bank].data[row], word)

    def _spread(self, m, port, lanes, lane_enable, name):
        """The banks a multi-word ``port`` touches, its first bank and row, and its words and
        strobes rotated into bank order."""
        banks = self.banks
        bank_bits, row_bits = exact_log2(banks), exact_log2(self.depth)
        first_bank = port.addr[2:2 + bank_bits]
        row = port.addr[2 + bank_bits:2 + bank_bits + row_bits]
        padding = banks - lanes
        touched = Signal(banks, name=f"{name}_touched")
        wdata = Signal(32 * banks, name=f"{name}_bank_wdata")
        be = Signal(4 * banks, name=f"{name}_bank_be")
        m.d.comb += [
            touched.eq(_rotate_up(Cat(lane_enable, Const(0, padding)), first_bank, 1)),
            wdata.eq(_rotate_up(Cat(port.wdata, Const(0, 32 * padding)), first_bank, 32)),
            be.eq(_rotate_up(Cat(port.be, Const(0, 4 * padding)), first_bank, 4)),
        ]
        return touched, first_bank, row, wdata, be

    def elaborate(self, platform):
        m = Module()
        banks, count = self.banks, self.narrow_ports
        bank_bits, row_bits = exact_log2(banks), exact_log2(self.depth)
        for b, memory in enumerate(self.bank_memories):
            m.submodules[f"bank{b}"] = memory

        masters = [self.narrow(i) for i in range(count)]
        master_bank = [p.addr[2:2 + bank_bits] for p in masters]
        master_row = [p.addr[2 + bank_bits:2 + bank_bits + row_bits] for p in masters]

        wide, dma = self.wide, self.dma
        touched, wide_bank, wide_row, bank_wdata, bank_be = self._spread(
            m, wide, self.wide_words, Const((1 << self.wide_words) - 1, self.wide_words),
            "wide")
        dma_touched, dma_bank, dma_row, dma_wdata, dma_be = self._spread(
            m, dma, self.dma_words,
            Cat(dma.be[4 * k:4 * k + 4].any() for k in range(self.dma_words)), "dma")

        # Narrow-side requests per bank (the DMA last), and whether the wide port conflicts
        # with any of them.
        side = count + 1
        requests = []
        for b in range(banks):
            bank_requests = Signal(side, name=f"requests_bank{b}")
            m.d.comb += bank_requests.eq(Cat(*(p.req & (master_bank[i] == b)
                                               for i, p in enumerate(masters)),
                                             dma.req & dma_touched[b]))
            requests.append(bank_requests)
        conflict = Signal()
        m.d.comb += conflict.eq(wide.req & Cat(touched[b] & requests[b].any()
                                               for b in range(banks)).any())

        numerator, denominator = self.starvation_window
        conflicts = Signal(range(denominator))   # conflict cycles, modulo denominator
        with m.If(conflict):
            with m.If(conflicts == denominator - 1):
                m.d.sync += conflicts.eq(0)
            with m.Else():
                m.d.sync += conflicts.eq(conflicts + 1)
        wide_wins = Signal()                      # the wide port wins the conflicts this cycle
        m.d.comb += wide_wins.eq(self.hwpe_priority ^ (conflicts >= numerator))
        wide_granted = Signal()
        m.d.comb += [wide_granted.eq(wide.req & (~conflict | wide_wins)),
                     wide.gnt.eq(wide_granted)]

        # Per bank: the narrow side's round-robin winner unless the wide port takes the bank.
        winners, side_here = [], []
        for b in range(banks):
            winner, advance = _round_robin(m, requests[b], f"bank{b}")
            here = Signal(name=f"narrow_side_bank{b}")
            m.d.comb += here.eq(requests[b].any() & ~(wide_granted & touched[b]))
            winners.append((winner, advance))
            side_here.append(here)
        dma_granted = Signal()
        m.d.comb += [
            dma_granted.eq(dma.req & Cat(~dma_touched[b] | (side_here[b] & (winner == count))
                                         for b, (winner, _) in enumerate(winners)).all()),
            dma.gnt.eq(dma_granted),
        ]

        narrow_grants = []                       # per bank, one bit per narrow master
        for b, (read, write) in enumerate(self._bank_ports):
            winner, advance = winners[b]
            wide_here = wide_granted & touched[b]
            dma_here = dma_granted & dma_touched[b]
            narrow_here = Signal(name=f"narrow_granted_bank{b}")
            m.d.comb += [narrow_here.eq(side_here[b] & (winner != count)),
                         advance.eq(narrow_here | dma_here)]
            grants = Signal(count, name=f"grants_bank{b}")
            m.d.comb += grants.eq(_one_hot(winner, count, enable=narrow_here))
            narrow_grants.append(grants)

            with m.If(wide_here):
                m.d.comb += [
                    read.addr.eq(wide_row + (wide_bank > b)),
                    read.en.eq(~wide.we),
                    write.addr.eq(read.addr),
                    write.data.eq(bank_wdata.word_select(b, 32)),
                    write.en.eq(bank_be.word_select(b, 4) & wide.we.replicate(4)),
                ]
            with m.Elif(dma_here):
                m.d.comb += [
                    read.addr.eq(dma_row + (dma_bank > b)),
                    read.en.eq(~dma.we),
                    write.addr.eq(read.addr),
                    write.data.eq(dma_wdata.word_select(b, 32)),
                    write.en.eq(dma_be.word_select(b, 4) & dma.we.replicate(4)),
                ]
            with m.Elif(narrow_here):
                with m.Switch(winner):
                    for i, p in enumerate(masters):
                        with m.Case(i):
                            m.d.comb += [
                                read.addr.eq(master_row[i]),
                                read.en.eq(~p.we),
                                write.addr.eq(master_row[i]),
                                write.data.eq(p.wdata),
                                write.en.eq(p.be & p.we.replicate(4)),
                            ]
            with m.Else():
                m.d.comb += read.en.eq(0)

        # Responses, one cycle after a granted read, from the bank(s) that served it.
        bank_rdata = Cat(read.data for read, _ in self._bank_ports)
        for i, p in enumerate(masters):
            granted = Cat(grants[i] for grants in narrow_grants).any()
            response_bank = Signal(range(banks), name=f"narrow{i}_response_bank")
            m.d.comb += p.gnt.eq(granted)
            m.d.sync += [p.r_valid.eq(granted & ~p.we), response_bank.eq(master_bank[i])]
            m.d.comb += p.r_data.eq(bank_rdata.word_select(response_bank, 32))
        for port, granted, first_bank, lanes, name in (
                (wide, wide_granted, wide_bank, self.wide_words, "wide"),
                (dma, dma_granted, dma_bank, self.dma_words, "dma")):
            response_first_bank = Signal(range(banks), name=f"{name}_response_first_bank")
            m.d.sync += [port.r_valid.eq(granted & ~port.we),
                         response_first_bank.eq(first_bank)]
            m.d.comb += port.r_data.eq(_rotate_down(bank_rdata, response_first_bank, 32)
                                       [:32 * lanes])
        return m


def _one_hot(index, count, *, enable):
    """``count`` bits with bit ``index`` set when ``enable``."""
    return Cat((index == i) & enable for i in range(count))


def _rotate_up(value, amount, unit):
    """Move element k (of ``unit`` bits) of ``value`` to (k + amount) mod the element count."""
    width = len(value)
    return (Cat(value, value) << (amount * unit))[width:2 * width]


def _rotate_down(value, amount, unit):
    """Move element k + amount (mod the element count) of ``value`` to k."""
    width = len(value)
    return (Cat(value, value) >> (amount * unit))[:width]


def _round_robin(m, requests, name):
    """Round-robin choice among ``requests``: the first one after the last granted.

    Returns ``(winner, advance)``: drive ``advance`` in the cycles where the winner is
    actually granted; only then does the rotation move on.
    """
    count = len(requests)
    last = Signal(range(count), name=f"last_{name}")
    winner = Signal(range(count), name=f"winner_{name}")
    advance = Signal(name=f"advance_{name}")
    after_last = Signal(count, name=f"after_last_{name}")
    m.d.comb += after_last.eq(requests & (Const((1 << count) - 1, count) << (last + 1))[:count])
    # Later assignments win: the lowest requester after ``last``, else the lowest overall.
    for candidates in (requests, after_last):
        for i in reversed(range(count)):
            with m.If(candidates[i]):
                m.d.comb += winner.eq(i)
    with m.If(advance):
        m.d.sync += last.eq(winner)
    return winner, advance
