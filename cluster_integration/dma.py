"""The cluster DMA: queued 1-D and 2-D copies between L1, L2 and L3, and from them to a
neighbouring chip over a chip-to-chip link, ``width`` bits per beat.

It replaces PULP's MCHAN with the simpler register map of
:data:`cluster_integration.memory_map.DMA`: a core writes the transfer registers and START; the
DMA raises the DMA event line of that core when the copy has landed, so the core sleeps on the
event unit instead of polling STATUS. A transfer the DMA cannot do is refused instead of run:
it writes nothing, raises the same event, and leaves its causes in ERROR.
"""

import functools
import operator
from types import SimpleNamespace

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
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

__all__ = ["Dma", "READ_AHEAD", "CAUSES", "CAUSE_LAYOUT", "read_ahead_covering"]

#: Beats read ahead of the writes: enough to cover the two cycles from a read grant to the
#: write of its data, plus slack for write stalls.
READ_AHEAD = 4

_ADDR_BITS = 32


def read_ahead_covering(latency, bytes_per_cycle, beat_bytes):
    """Beats of read-ahead that keep a link of ``latency`` cycles and ``bytes_per_cycle``
    busy: the beats it grants while one travels (grant, latency, write), plus one."""
    in_flight = -(-(latency + 2) * bytes_per_cycle // beat_bytes)
    return max(READ_AHEAD, in_flight + 1)

_REGISTERS = {r.name: r for r in memory_map.DMA}
_SRC = _REGISTERS["SRC"]
_DST = _REGISTERS["DST"]
_LENGTH = _REGISTERS["LENGTH"]
_ROWS = _REGISTERS["ROWS"]
_SRC_STRIDE = _REGISTERS["SRC_STRIDE"]
_DST_STRIDE = _REGISTERS["DST_STRIDE"]
_START = _REGISTERS["START"]
_STATUS = _REGISTERS["STATUS"]
_ERROR = _REGISTERS["ERROR"]
#: ERROR's count field; the others are the causes, one bit each from bit 0 up.
_REFUSED = _ERROR.field("refused")
CAUSES = tuple(f.name for f in sorted(_ERROR.fields, key=lambda f: f.lsb) if f is not _REFUSED)
assert all(_ERROR.field(name).lsb == k and _ERROR.field(name).width == 1
           for k, name in enumerate(CAUSES)), "ERROR's cause bits must start at bit 0"
#: A refusal's causes, laid out as ERROR's cause bits.
CAUSE_LAYOUT = data.StructLayout({name: 1 for name in CAUSES})
#: The registers that describe a transfer, in descriptor order.
_PROGRAMMED = (_SRC, _DST, _LENGTH, _ROWS, _SRC_STRIDE, _DST_STRIDE)



def _or_all(values):
    """The OR of ``values`` (one of which is non-zero at a time: a one-hot selection)."""
    return functools.reduce(operator.or_, values)

class _AddressWalk(wiring.Component):
    """Walks the beats of one side of a transfer: ``rows`` rows of ``row_words`` words, the
    rows ``stride`` bytes apart, cut into beats of ``lanes`` words from the start of each row
    (the last beat of a row may be shorter). ``load`` starts a walk; ``step`` moves past the
    current beat, which starts at ``address`` and has its words marked in ``lane_enable``;
    ``done`` is set once every beat was stepped over (at once when the transfer is empty);
    ``last`` marks the transfer's last beat."""

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
            "last": Out(1),
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
        m.d.comb += [self.lane_enable.eq(Cat(words_left > k for k in range(lanes))),
                     self.last.eq(~self.done & (rows_left == 1) & (words_left <= lanes))]
        return m


class Dma(wiring.Component):
    """A queued copy engine with a register port and one ``width``-bit master per memory.

    Register port: requests are granted at once and answered one cycle later with ``r_id``
    (``r_data`` is 0 for writes); writes honour ``be``; only the word-index bits of the
    ``window``-byte register window are decoded. The transfer registers are one set shared by
    all cores (software lets one core program at a time). START copies them into a queue of
    ``queue_depth`` transfers together with the writer's ``id`` (the binary core index) and
    the transfer's refusal causes (:meth:`refusal`); a START while the queue is full is not
    granted until a slot frees, so no transfer is ever dropped. STATUS counts the transfers
    queued or running.

    Transfers run one after the other: ROWS rows of LENGTH bytes (a word multiple) from
    SRC + row * SRC_STRIDE to DST + row * DST_STRIDE (strides in two's complement),
    word-aligned addresses. Each row moves in beats of ``width / 32`` words from its first
    word (the last beat of a row may be shorter); a beat is one access of the master, its
    words marked by ``be`` (whole words), at any word alignment: the memories spread it over
    their banks or words, so source and destination need no common alignment, strides need
    no alignment beyond a word at any width, and nothing is re-aligned. Each side uses ``l1``
    when its start address lies in the ``l1_region``, ``l3`` when it lies in the
    ``l3_region`` (if given), else ``l2`` (the ``l2_region``); rows of a 2-D transfer stay on
    that port. Reads run up to ``read_ahead`` beats ahead of the writes, so a copy between
    two ports moves one beat per cycle when no port stalls; a copy within one port alternates
    reads and writes there (writes first; a request offered and not granted is offered again,
    unchanged, until granted). On ``l1`` and ``l2`` read data is taken one cycle after each
    read grant (``r_valid`` is not needed); ``l3`` answers reads in order with ``r_valid``
    after its link's latency, so ``read_ahead`` must cover that latency at the link's rate to
    keep the link busy.

    With ``remote`` (:class:`ita.cluster_config.RemoteWindows`), a destination in the
    REMOTE region goes to ``link``, a write-only port to the chip-to-chip links
    (:class:`cluster_integration.link.ChipLink`), with ``link_last`` marking the transfer's
    last beat; the transfer completes like any other when the link has accepted that beat.
    A source there is refused (``src_range``: a link carries writes only), and so is a
    destination span that does not lie within the neighbour's L1 or L2 in the window of a
    link the chip has (``link``).

    Two cycles after the last write of a transfer is granted, ``events`` pulses the line of the
    core that started it, in the first cycle where STATUS counts one transfer less. A refused
    transfer makes no access: two cycles after it reaches the engine, ``events`` and
    ``refused`` pulse the starting core's line, and its causes are ORed into that core's
    ERROR (a read of ERROR returns the reading core's causes and count, and clears them).
    ``busy`` is STATUS != 0.
    """

    def __init__(self, *, l1_region, l2_region, window, width=32, queue_depth=2,
                 l3_region=None, read_ahead=READ_AHEAD, cores=memory_map.CORES, id_width=4,
                 remote=None):
        if not isinstance(queue_depth, int) or queue_depth < 1:
            raise ValueError(f"queue_depth must be a positive integer, not {queue_depth!r}")
        if queue_depth + 1 >= 1 << _STATUS.field().width:
            raise ValueError(f"STATUS cannot count {queue_depth + 1} transfers")
        if not isinstance(cores, int) or not 1 <= cores <= 1 << id_width:
            raise ValueError(f"cores must be 1..{1 << id_width} for id_width={id_width}, "
                             f"not {cores!r}")
        if width % WORD_BITS or width <= 0:
            raise ValueError(f"width must be a positive multiple of {WORD_BITS}, not {width}")
        if not isinstance(read_ahead, int) or read_ahead < 2:
            raise ValueError(f"read_ahead must be an integer of at least 2, not {read_ahead!r}")
        self._queue_depth, self._cores = queue_depth, cores
        self._l1_region, self._lanes = l1_region, width // WORD_BITS
        self._l3_region, self._read_ahead = l3_region, read_ahead
        self._remote = remote
        #: The memories a transfer's rows may lie in.
        self.regions = tuple(r for r in (l1_region, l2_region, l3_region) if r is not None)
        self._descriptor = data.StructLayout({
            **{r.name.lower(): unsigned(r.field().width) for r in _PROGRAMMED},
            "core": unsigned(id_width),
            "causes": CAUSE_LAYOUT,
        })
        register_bits = BYTE_OFFSET_BITS + region_window_bits(window)
        members = {
            "regs": In(PeriphSignature(addr_width=register_bits, id_width=id_width)),
            "l1": Out(TcdmSignature(data_width=width)),
            "l2": Out(TcdmSignature(data_width=width)),
            "events": Out(cores),
            "refused": Out(cores),
            "busy": Out(1),
        }
        if l3_region is not None:
            members["l3"] = Out(TcdmSignature(data_width=width))
        if remote is not None:
            members["link"] = Out(TcdmSignature(data_width=width))
            members["link_last"] = Out(1)
        super().__init__(members)

    @property
    def lanes(self):
        """Words per beat."""
        return self._lanes

    @staticmethod
    def _inside(region, address):
        return (address >= region.base) & (address < region.end)

    @staticmethod
    def _span(m, name, base, stride, rows, length):
        """(lowest, end) byte addresses of ``rows`` (>= 1) rows of ``length`` bytes from
        ``base``, ``stride`` (two's complement) apart, unwrapped: the last row lies
        (rows - 1) * stride from the first, below it for a negative stride."""
        last_row = Signal(len(rows), name=f"{name}_last_row")
        m.d.comb += last_row.eq(rows - 1)
        extent = Signal(signed(len(rows) + len(stride) + 1), name=f"{name}_extent")
        m.d.comb += extent.eq(last_row * stride.as_signed())
        width = len(extent) + 2
        low, end = Signal(signed(width), name=f"{name}_low"), Signal(signed(width),
                                                                      name=f"{name}_end")
        m.d.comb += [low.eq(base + Mux(extent < 0, extent, 0)),
                     end.eq(base + Mux(extent < 0, 0, extent) + length)]
        return low, end

    def refusal(self, m, descriptor):
        """The causes (:data:`CAUSE_LAYOUT`) for which the DMA cannot do the transfer that
        ``descriptor`` (a view with the programmed registers' names, lower case) describes;
        all clear for a transfer it can do. An empty transfer (LENGTH 0) is always done."""
        d = descriptor
        causes = Signal(CAUSE_LAYOUT)
        moves = (d.length != 0) & (d.rows != 0)
        spans = {side: self._span(m, side, getattr(d, side), getattr(d, f"{side}_stride"),
                                  d.rows, d.length) for side in ("src", "dst")}

        def within_a_region(low, end, regions=self.regions):
            return Cat((low >= r.base) & (end <= r.end) for r in regions).any()

        offset = slice(0, BYTE_OFFSET_BITS)
        (src_low, src_end), (dst_low, dst_end) = spans["src"], spans["dst"]
        m.d.comb += [
            causes.src_range.eq(moves & ~within_a_region(src_low, src_end)),
            causes.dst_range.eq(moves & ~within_a_region(
                dst_low, dst_end, self.regions + ((self._remote.region,) if self._remote else ()))),
            causes.rows.eq((d.length != 0) & (d.rows == 0)),
            causes.align.eq((d.length != 0) & (
                (d.src[offset] != 0) | (d.dst[offset] != 0) | (d.length[offset] != 0)
                | ((d.rows > 1) & ((d.src_stride[offset] != 0) | (d.dst_stride[offset] != 0))))),
            causes.overlap.eq(moves & (src_low < dst_end) & (dst_low < src_end)),
        ]
        if self._remote is not None:
            m.d.comb += causes.link.eq(moves & ~self._remote_legal(m, dst_low, dst_end))
        return causes

    def _remote_legal(self, m, low, end):
        """The span [low, end) does not start in the REMOTE region, or lies within the
        neighbour's L1 or L2 in the window of an existing link."""
        w = self._remote
        shift = (w.window - 1).bit_length()
        in_remote = (low >= w.region.base) & (low < w.region.end)
        relative = Signal(range(w.region.size), name="remote_offset")
        m.d.comb += relative.eq((low - w.region.base)[:len(relative)])
        link = relative[shift:]
        start = Signal(signed(len(low) + 1), name="remote_window_start")
        m.d.comb += start.eq(w.region.base + (link << shift))
        first, past = low - start, end - start
        inside = ((link < w.links)
                  & ((past <= w.l1_size)
                     | ((first >= w.l2_offset) & (past <= w.l2_offset + w.l2_size))))
        return ~in_remote | inside

    def _port_of(self, address):
        """{port name: the address lies in its memory}, one of them set."""
        ports = {"l1": self._inside(self._l1_region, address)}
        if self._l3_region is not None:
            ports["l3"] = self._inside(self._l3_region, address)
        if self._remote is not None:
            ports["link"] = self._inside(self._remote.region, address)
        ports["l2"] = ~Cat(*ports.values()).any()
        return ports

    def elaborate(self, platform):
        m = Module()
        bus = self.regs
        lanes = self._lanes

        # Register port.
        decoder = RegisterDecoder(bus)
        programmed = {r: Signal(r.field().width, name=f"programmed_{r.name.lower()}")
                      for r in _PROGRAMMED}
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
        m.d.comb += queued.causes.eq(self.refusal(m, SimpleNamespace(
            **{register.name.lower(): stored for register, stored in programmed.items()})))

        # ERROR, per core: the causes of its refused transfers and their count since its
        # last ERROR read; the read clears them (a refusal in the same cycle still counts).
        causes_of = Array(Signal(CAUSE_LAYOUT.size, name=f"error_causes{c}")
                          for c in range(self._cores))
        refused_of = Array(Signal(_REFUSED.width, name=f"error_refused{c}")
                           for c in range(self._cores))
        reading_error = decoder.reads(_ERROR) & granted
        readers_causes = Signal(CAUSE_LAYOUT)
        readers_refused = Signal(_REFUSED.width)
        # An OR of the selected core's values rather than an Array index, whose case
        # statement does not cover every value of its widened selector (LATCH under -Wall).
        cores = range(self._cores)
        m.d.comb += [
            readers_causes.eq(_or_all(Mux(bus.id == c, causes_of[c], 0) for c in cores)),
            readers_refused.eq(_or_all(Mux(bus.id == c, refused_of[c], 0) for c in cores)),
        ]

        active = Signal()   # a transfer is loaded in the engine
        unfinished = queue.level + active
        m.d.comb += self.busy.eq(unfinished != 0)
        read_value = read_mux(m, decoder.word, {
            **{register: {register.field(): stored} for register, stored in programmed.items()},
            _STATUS: {_STATUS.field(): unfinished},
            _ERROR: {**{_ERROR.field(name): readers_causes[name] for name in CAUSES},
                     _REFUSED: readers_refused},
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
            # A refused transfer is walked as an empty one: no beat, at once done.
            m.d.comb += [walk.load.eq(loading), walk.base.eq(base), walk.stride.eq(stride),
                         walk.row_words.eq(head.length[BYTE_OFFSET_BITS:]),
                         walk.rows.eq(Mux(head.causes.as_value().any(), 0, head.rows))]
        reads, writes = walks["read"], walks["write"]
        core = Signal.like(head.core)
        causes = Signal(CAUSE_LAYOUT)   # of the transfer in the engine
        ports = {}   # port name: (it holds the source, it holds the destination)
        m.d.comb += queue.r_en.eq(loading)
        with m.If(loading):
            m.d.sync += [active.eq(1), core.eq(head.core), causes.eq(head.causes)]
        source_ports, destination_ports = self._port_of(head.src), self._port_of(head.dst)
        for name in source_ports:
            ports[name] = (Signal(name=f"source_{name}"), Signal(name=f"destination_{name}"))
            with m.If(loading):
                m.d.sync += [ports[name][0].eq(source_ports[name]),
                             ports[name][1].eq(destination_ports[name])]

        # Read data waits in a FIFO, one beat per entry; `reserved` counts its entries plus
        # reads in flight, so that every response finds room. Read and write beats pair up
        # one to one: both walks cut the same rows the same way.
        read_ahead = self._read_ahead
        m.submodules.read_data = read_data = SyncFIFO(width=lanes * WORD_BITS,
                                                      depth=read_ahead)
        reserved = Signal(range(read_ahead + 1))
        read_request = active & ~reads.done & (reserved < read_ahead)
        write_request = active & ~writes.done & read_data.r_rdy

        def byte_enables(lane_enable):
            return Cat(lane_enable[k].replicate(WORD_BYTES) for k in range(lanes))

        read_granted = Signal()
        write_granted = Signal()
        for name, (is_source, is_destination) in ports.items():
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
            if name == "link":
                m.d.comb += self.link_last.eq(write_chosen & writes.last)
            response_due = Signal(name=f"{name}_response_due")
            if name in ("l3", "link"):   # answers after its latency (never: link), r_valid
                m.d.comb += response_due.eq(port.r_valid)
            else:
                m.d.sync += response_due.eq(read_granted_here)
            with m.If(response_due):
                m.d.comb += [read_data.w_en.eq(1), read_data.w_data.eq(port.r_data)]
        m.d.comb += [reads.step.eq(read_granted), writes.step.eq(write_granted),
                     read_data.r_en.eq(write_granted)]
        m.d.sync += reserved.eq(reserved + read_granted - write_granted)

        # Completion: the last write is granted, or the transfer is refused.
        finishing = active & writes.done
        refusing = finishing & causes.as_value().any()
        starter = Cat(core == c for c in range(self._cores))
        m.d.sync += [self.events.eq(0), self.refused.eq(0)]
        with m.If(finishing):
            m.d.sync += [active.eq(0), self.events.eq(starter)]
        with m.If(refusing):
            m.d.sync += self.refused.eq(starter)
        saturated = (1 << _REFUSED.width) - 1
        for c in range(self._cores):
            cleared = reading_error & (bus.id == c)
            kept_causes = Mux(cleared, 0, causes_of[c])
            kept_count = Mux(cleared, 0, refused_of[c])
            refused_here = refusing & starter[c]
            m.d.sync += [
                causes_of[c].eq(kept_causes | Mux(refused_here, causes.as_value(), 0)),
                refused_of[c].eq(kept_count + (refused_here & (kept_count != saturated))),
            ]
        return m
