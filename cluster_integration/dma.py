"""The cluster DMA: queued 1-D and 2-D copies between L1 and L2, ``width`` bits per beat.

It replaces PULP's MCHAN with the simpler register map of
:data:`cluster_integration.memory_map.DMA`: a core writes the transfer registers and START; the
DMA raises the DMA event line of that core when the copy has landed, so the core sleeps on the
event unit instead of polling STATUS.
"""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from cluster_integration import memory_map
from cluster_integration.protocols import PeriphSignature, TcdmSignature
from cluster_integration.registers import (
    BYTE_OFFSET_BITS,
    WORD_BITS,
    WORD_BYTES,
    RegisterDecoder,
    read_mux,
    region_window_bits,
)

__all__ = ["Dma", "READ_AHEAD"]

#: Beats read ahead of the writes: enough to cover the two cycles from a read grant to the
#: write of its data, plus slack for write stalls.
READ_AHEAD = 4

_ADDR_BITS = 32

_REGISTERS = {r.name: r for r in memory_map.DMA}
_SRC = _REGISTERS["SRC"]
_DST = _REGISTERS["DST"]
_LENGTH = _REGISTERS["LENGTH"]
_ROWS = _REGISTERS["ROWS"]
_SRC_STRIDE = _REGISTERS["SRC_STRIDE"]
_DST_STRIDE = _REGISTERS["DST_STRIDE"]
_START = _REGISTERS["START"]
_STATUS = _REGISTERS["STATUS"]
#: The registers that describe a transfer, in descriptor order.
_PROGRAMMED = (_SRC, _DST, _LENGTH, _ROWS, _SRC_STRIDE, _DST_STRIDE)


class _AddressWalk(wiring.Component):
    """Walks the beats of one side of a transfer: ``rows`` rows of ``row_words`` words, the
    rows ``stride`` bytes apart, cut into beats of ``lanes`` words from the start of each row
    (the last beat of a row may be shorter). ``load`` starts a walk; ``step`` moves past the
    current beat, which starts at ``address`` and has its words marked in ``lane_enable``;
    ``done`` is set once every beat was stepped over (at once when the transfer is empty)."""

    def __init__(self, *, length_bits, rows_bits, lanes):
        self._lanes = lanes
        super().__init__({
            "load": In(1),
            "base": In(_ADDR_BITS),
            "stride": In(_ADDR_BITS),
            "row_words": In(length_bits),
            "rows": In(rows_bits),
            "step": In(1),
            "address": Out(_ADDR_BITS),
            "lane_enable": Out(lanes),
            "done": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        row_base = Signal(_ADDR_BITS)
        stride = Signal(_ADDR_BITS)
        row_words = Signal.like(self.row_words)
        words_left = Signal.like(self.row_words)   # in the current row, this one included
        rows_left = Signal.like(self.rows)         # this row included

        with m.If(self.load):
            empty = (self.row_words == 0) | (self.rows == 0)
            m.d.sync += [row_base.eq(self.base), self.address.eq(self.base),
                         stride.eq(self.stride), row_words.eq(self.row_words),
                         words_left.eq(self.row_words), rows_left.eq(self.rows),
                         self.done.eq(empty)]
        with m.Elif(self.step & ~self.done):
            with m.If(words_left <= lanes):
                next_row = (row_base + stride)[:_ADDR_BITS]
                m.d.sync += [row_base.eq(next_row), self.address.eq(next_row),
                             words_left.eq(row_words), rows_left.eq(rows_left - 1),
                             self.done.eq(rows_left == 1)]
            with m.Else():
                m.d.sync += [self.address.eq(self.address + lanes * WORD_BYTES),
                             words_left.eq(words_left - lanes)]
        m.d.comb += self.lane_enable.eq(Cat(words_left > k for k in range(lanes)))
        return m


class Dma(wiring.Component):
    """A queued copy engine with a register port and one ``width``-bit master per memory.

    Register port: requests are granted at once and answered one cycle later with ``r_id``
    (``r_data`` is 0 for writes); writes honour ``be``; only the word-index bits of the
    ``window``-byte register window are decoded. The transfer registers are one set shared by
    all cores (software lets one core program at a time). START copies them into a queue of
    ``queue_depth`` transfers together with the writer's ``id`` (the binary core index); a
    START while the queue is full is not granted until a slot frees, so no transfer is ever
    dropped. STATUS counts the transfers queued or running.

    Transfers run one after the other: ROWS rows of LENGTH bytes (word multiples; the low
    bits are ignored) from SRC + row * SRC_STRIDE to DST + row * DST_STRIDE, word-aligned
    addresses. Each row moves in beats of ``width / 32`` words from its first word (the last
    beat of a row may be shorter); a beat is one access of the master, its words marked by
    ``be`` (whole words), at any word alignment: the memories spread it over their banks or
    words, so source and destination need no common alignment and nothing is re-aligned.
    Each side uses ``l1`` when its start address lies in the ``l1_region``, else ``l2`` (L2,
    or whatever the cluster's outside port reaches); rows of a 2-D transfer stay on that
    port. Reads run up to :data:`READ_AHEAD` beats ahead of the writes, so a copy between the
    two ports moves one beat per cycle when no port stalls; a copy within one port alternates
    reads and writes there (writes first; a request offered and not granted is offered again,
    unchanged, until granted). Read data is taken one cycle after each read grant; ``r_valid``
    is not needed.

    Two cycles after the last write of a transfer is granted, ``events`` pulses the line of the
    core that started it, in the first cycle where STATUS counts one transfer less.
    ``busy`` is STATUS != 0.
    """

    def __init__(self, *, l1_region, window, width=32, queue_depth=2,
                 cores=memory_map.CORES, id_width=4):
        if not isinstance(queue_depth, int) or queue_depth < 1:
            raise ValueError(f"queue_depth must be a positive integer, not {queue_depth!r}")
        if queue_depth + 1 >= 1 << _STATUS.field().width:
            raise ValueError(f"STATUS cannot count {queue_depth + 1} transfers")
        if not isinstance(cores, int) or not 1 <= cores <= 1 << id_width:
            raise ValueError(f"cores must be 1..{1 << id_width} for id_width={id_width}, "
                             f"not {cores!r}")
        if width % WORD_BITS or width <= 0:
            raise ValueError(f"width must be a positive multiple of {WORD_BITS}, not {width}")
        self._queue_depth, self._cores = queue_depth, cores
        self._l1_region, self._lanes = l1_region, width // WORD_BITS
        self._descriptor = data.StructLayout({
            **{r.name.lower(): unsigned(r.field().width) for r in _PROGRAMMED},
            "core": unsigned(id_width),
        })
        register_bits = BYTE_OFFSET_BITS + region_window_bits(window)
        super().__init__({
            "regs": In(PeriphSignature(addr_width=register_bits, id_width=id_width)),
            "l1": Out(TcdmSignature(data_width=width)),
            "l2": Out(TcdmSignature(data_width=width)),
            "events": Out(cores),
            "busy": Out(1),
        })

    @property
    def lanes(self):
        """Words per beat."""
        return self._lanes

    def _in_l1(self, address):
        region = self._l1_region
        return (address >= region.base) & (address < region.end)

    def elaborate(self, platform):
        m = Module()
        bus = self.regs
        lanes = self._lanes

        # Register port.
        decoder = RegisterDecoder(bus)
        programmed = {r: Signal(r.field().width, name=r.name.lower()) for r in _PROGRAMMED}
        m.submodules.queue = queue = SyncFIFO(width=self._descriptor.size,
                                              depth=self._queue_depth)
        queued = data.View(self._descriptor, queue.w_data)
        starting = decoder.writes(_START)
        granted = bus.req & (queue.w_rdy | ~starting)
        m.d.comb += [bus.gnt.eq(granted), queue.w_en.eq(starting & queue.w_rdy),
                     queued.core.eq(bus.id)]
        for register, stored in programmed.items():
            m.d.comb += getattr(queued, register.name.lower()).eq(stored)
            with m.If(decoder.writes(register)):
                m.d.sync += stored.eq(decoder.merged(stored, register.field()))

        active = Signal()   # a transfer is loaded in the engine
        unfinished = queue.level + active
        m.d.comb += self.busy.eq(unfinished != 0)
        read_value = read_mux(m, decoder.word, {
            **{register: {register.field(): stored} for register, stored in programmed.items()},
            _STATUS: {_STATUS.field(): unfinished},
        })
        m.d.sync += [bus.r_valid.eq(granted), bus.r_id.eq(bus.id),
                     bus.r_data.eq(Mux(granted & ~bus.we, read_value, 0))]

        # Engine: load the next transfer when idle.
        head = data.View(self._descriptor, queue.r_data)
        loading = ~active & queue.r_rdy
        length_bits = _LENGTH.field().width - BYTE_OFFSET_BITS
        walks = {}
        for side, base, stride in (("read", head.src, head.src_stride),
                                   ("write", head.dst, head.dst_stride)):
            walk = walks[side] = _AddressWalk(length_bits=length_bits,
                                              rows_bits=_ROWS.field().width, lanes=lanes)
            m.submodules[f"{side}_walk"] = walk
            m.d.comb += [walk.load.eq(loading), walk.base.eq(base), walk.stride.eq(stride),
                         walk.row_words.eq(head.length[BYTE_OFFSET_BITS:]),
                         walk.rows.eq(head.rows)]
        reads, writes = walks["read"], walks["write"]
        core = Signal.like(head.core)
        source_l1, destination_l1 = Signal(), Signal()
        m.d.comb += queue.r_en.eq(loading)
        with m.If(loading):
            m.d.sync += [active.eq(1), core.eq(head.core),
                         source_l1.eq(self._in_l1(head.src)),
                         destination_l1.eq(self._in_l1(head.dst))]

        # Read data waits in a FIFO, one beat per entry; `reserved` counts its entries plus
        # reads in flight, so that every response finds room. Read and write beats pair up
        # one to one: both walks cut the same rows the same way.
        m.submodules.read_data = read_data = SyncFIFO(width=lanes * WORD_BITS,
                                                      depth=READ_AHEAD)
        reserved = Signal(range(READ_AHEAD + 1))
        read_request = active & ~reads.done & (reserved < READ_AHEAD)
        write_request = active & ~writes.done & read_data.r_rdy

        def byte_enables(lane_enable):
            return Cat(lane_enable[k].replicate(WORD_BYTES) for k in range(lanes))

        read_granted = Signal()
        write_granted = Signal()
        for name, is_source, is_destination in (("l1", source_l1, destination_l1),
                                                ("l2", ~source_l1, ~destination_l1)):
            port = getattr(self, name)
            read_here = read_request & is_source
            write_here = write_request & is_destination
            # A read offered here and not granted is offered again (writes stay by themselves).
            read_held = Signal(name=f"{name}_read_held")
            write_chosen = write_here & ~(read_here & read_held)
            m.d.comb += [
                port.req.eq(read_here | write_here),
                port.addr.eq(Mux(write_chosen, writes.address, reads.address)),
                port.we.eq(write_chosen),
                port.be.eq(Mux(write_chosen, byte_enables(writes.lane_enable),
                               byte_enables(reads.lane_enable))),
                port.wdata.eq(read_data.r_data),
            ]
            read_granted_here = read_here & ~write_chosen & port.gnt
            m.d.sync += read_held.eq(read_here & ~write_chosen & ~port.gnt)
            with m.If(read_granted_here):
                m.d.comb += read_granted.eq(1)
            with m.If(write_chosen & port.gnt):
                m.d.comb += write_granted.eq(1)
            response_due = Signal(name=f"{name}_response_due")
            m.d.sync += response_due.eq(read_granted_here)
            with m.If(response_due):
                m.d.comb += [read_data.w_en.eq(1), read_data.w_data.eq(port.r_data)]
        m.d.comb += [reads.step.eq(read_granted), writes.step.eq(write_granted),
                     read_data.r_en.eq(write_granted)]
        m.d.sync += reserved.eq(reserved + read_granted - write_granted)

        # Completion: the last write is granted.
        finishing = active & writes.done
        m.d.sync += self.events.eq(0)
        with m.If(finishing):
            m.d.sync += [active.eq(0),
                         self.events.eq(Cat(core == c for c in range(self._cores)))]
        return m
