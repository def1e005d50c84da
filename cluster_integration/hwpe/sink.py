"""Output streamer: collects the engine's output tiles and writes them to memory by rows."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.rtl.controller import Controller
from ita.rtl.layouts import DIM_BITS, engine_config_layout

from ..protocols import TcdmSignature
from .streams import POINTER_NAMES, step_pointer_indices

__all__ = ["OutputStreamer"]


class OutputStreamer(wiring.Component):
    """Turns the engine's output beats into whole-row memory writes.

    The engine emits a tile column group by column group (N values of row r at a time);
    written as they come, every beat would be a separate narrow write and the port could
    not keep up. Instead a double-buffered tile buffer collects M x M outputs, and a writer
    stores the tile as M writes of one M-byte row each, every row as soon as its last
    group has arrived, while the next tile fills the other bank. Padded rows and columns
    are written too (the engine makes them 0), so padded regions of every tensor stay zero.

    Members
    -------
    start : In(1)
    job_config : In(engine_config_layout(config))
    pointers : In(ArrayLayout(unsigned(32), 16))
    stream : In(stream.Signature(ArrayLayout(signed(8), N))) -- the engine's ``output``
    tcdm : Out(TcdmSignature(data_width))
    idle : Out(1) -- every beat received so far has been written to memory
    written_steps : Out(16) -- steps of the job whose output is entirely in memory
    """

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG, data_width=1024):
        if data_width < config.M * 8:
            raise ValueError(f"a {data_width}-bit port cannot carry an output row")
        self._config, self._width = config, data_width
        super().__init__({
            "start": In(1),
            "job_config": In(engine_config_layout(config)),
            "pointers": In(data.ArrayLayout(unsigned(32), len(POINTER_NAMES))),
            "stream": In(stream.Signature(data.ArrayLayout(signed(8), config.N))),
            "tcdm": Out(TcdmSignature(data_width=data_width)),
            "idle": Out(1),
            "written_steps": Out(DIM_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        M, N = cfg.M, cfg.N
        groups = M // N
        m_bits = M.bit_length() - 1

        # Tile buffer: two banks of M rows; a beat writes N bytes (granule g) of row r.
        m.submodules.tile = tile = Memory(shape=unsigned(8 * M), depth=2 * M, init=[])
        fill = tile.write_port(granularity=8 * N)
        drain = tile.read_port()
        full = Signal(2)

        # Collector: beats arrive g-major (all rows of group 0, then group 1, ...).
        fill_bank, fill_g, fill_r = Signal(), Signal(range(groups)), Signal(range(M))
        accept = self.stream.valid & self.stream.ready
        m.d.comb += [
            self.stream.ready.eq(~full.bit_select(fill_bank, 1)),
            fill.addr.eq((fill_bank << m_bits) | fill_r),
            fill.data.eq(self.stream.payload.as_value().replicate(groups)),
            fill.en.eq(accept << fill_g),
        ]
        with m.If(accept):
            m.d.sync += fill_r.eq(fill_r + 1)
            with m.If(fill_r == M - 1):
                m.d.sync += [fill_r.eq(0), fill_g.eq(fill_g + 1)]
                with m.If(fill_g == groups - 1):
                    m.d.sync += [fill_g.eq(0), fill_bank.eq(~fill_bank),
                                 full.bit_select(fill_bank, 1).eq(1)]

        # Writer: one output row per write, in the order of the ``output_rows`` walk.
        m.submodules.walker = walker = Controller(config=cfg, pattern="output_rows")
        m.d.comb += [walker.start.eq(self.start), walker.config.eq(self.job_config)]
        beat = walker.beat.payload
        base = Signal(32)
        with m.Switch(beat.step):
            for step, index in step_pointer_indices("output").items():
                with m.Case(step):
                    m.d.comb += base.eq(self.pointers[index])
        pitch = Signal(DIM_BITS + 1)
        m.d.comb += pitch.eq(((beat.cols_valid + M - 1) >> m_bits) << m_bits)
        row = (beat.tile_i << m_bits) | beat.row
        address = base + row * pitch + (beat.tile_j << m_bits)

        # A row can be written once its last column group is in: the writer trails the
        # engine's final pass over a tile instead of waiting for the whole tile, so the
        # output of a step reaches memory a few cycles after the engine produced it.
        drain_bank = Signal()
        granted = self.tcdm.req & self.tcdm.gnt
        last_row = beat.row == M - 1
        read_row = beat.row + granted     # the row the read port fetches for the next cycle

        def row_complete(row):
            filling_last_pass = (fill_bank == drain_bank) & (fill_g == groups - 1)
            return full.bit_select(drain_bank, 1) | (filling_last_pass & (fill_r > row))

        shown = Signal()  # the read port shows a complete copy of ``beat.row``
        m.d.sync += shown.eq(walker.beat.valid & row_complete(read_row) & ~(granted & last_row))
        m.d.comb += [
            self.tcdm.req.eq(walker.beat.valid & shown),
            self.tcdm.addr.eq(address),
            self.tcdm.we.eq(1),
            self.tcdm.be.eq((1 << M) - 1),
            self.tcdm.wdata.eq(drain.data),
            walker.beat.ready.eq(granted),
            drain.addr.eq((drain_bank << m_bits) | read_row),
        ]
        with m.If(granted & last_row):
            m.d.sync += [drain_bank.eq(~drain_bank), full.bit_select(drain_bank, 1).eq(0)]

        m.d.comb += self.written_steps.eq(walker.steps_done)
        m.d.comb += self.idle.eq((full == 0) & (fill_r == 0) & (fill_g == 0)
                                 & ~walker.running)
        return m
