"""Step and tile sequencer: turns a job configuration into a stream of beat descriptors."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

from .layouts import DIM_BITS, Mode, Step, engine_config_layout

__all__ = ["BeatLayout", "beat_layout", "Controller", "STEP_DIMENSIONS", "PATTERNS"]

#: What a controller walks. ``beats``: the engine's issue order (column group g, then row r,
#: inside every inner tile). The others give streamers the same order restricted to what
#: their stream carries: ``input`` (row r, every inner tile), ``weight`` (group g, then weight
#: row n of the slab), ``bias`` (bias beat b of the last inner tile, biased steps only),
#: ``output`` (group g, then row r of the last inner tile) and ``output_rows`` (row r of the
#: last inner tile: whole output rows, for a writer that collects a tile first).
PATTERNS = ("beats", "input", "weight", "bias", "output", "output_rows")

#: (rows, columns, inner) of every step, named by configuration field (see schedule.py).
STEP_DIMENSIONS = {
    Step.Q: ("seq_len", "proj", "embed"),
    Step.K: ("seq_len", "proj", "embed"),
    Step.V: ("proj", "seq_len", "embed"),
    Step.QK: ("seq_len", "seq_len", "proj"),
    Step.AV: ("seq_len", "proj", "seq_len"),
    Step.OW: ("seq_len", "embed", "proj"),
    Step.F1: ("seq_len", "ffn", "embed"),
    Step.F2: ("seq_len", "embed", "ffn"),
    Step.MATMUL: ("seq_len", "proj", "embed"),
}
_BIASED_STEPS = (Step.Q, Step.K, Step.V, Step.OW, Step.F1, Step.F2, Step.MATMUL)


def beat_layout(config: ITAConfig = DEFAULT_CONFIG):
    """Everything the datapath needs to know about one issued beat."""
    return data.StructLayout({
        "step": Step,
        "row": range(config.M),             # r: row inside the tile
        "group": range(config.M // config.N),  # g: column group inside the tile
        "first_inner": 1,
        "last_inner": 1,
        "tile_end": 1,                       # last beat of the tile
        "row_global": DIM_BITS,              # i * M + r
        "col_global": DIM_BITS,              # j * M + g * N: first output column of the beat
        "inner_base": DIM_BITS,              # k * M: first inner index of the tile
        "rows_valid": DIM_BITS,
        "cols_valid": DIM_BITS,
        "inner_valid": DIM_BITS,
        "bias_needed": 1,
        "bias_per_row": 1,
        "softmax_first": 1,                  # QK: first column group of the row
        "softmax_last": 1,                   # QK: last column group of the row
        "block_start": 1,                    # first beat of a QK row block
        "tile_i": DIM_BITS,                  # row tile
        "tile_j": DIM_BITS,                  # column tile
    })


BeatLayout = beat_layout()


class Controller(wiring.Component):
    """Walks the steps of a job and, inside each step, the tile loops of section 6.2.

    ``start`` loads the counters for ``config`` (which must stay constant during the job);
    the controller then offers one beat descriptor at a time on ``beat`` and advances when
    it is taken. Loop order per step: row tiles i, column tiles j, inner tiles k, column
    groups g, rows r (innermost). QK and AV alternate per row tile. ``running`` is high
    until the last beat of the job has been taken. ``pattern`` (see :data:`PATTERNS`)
    narrows the walk for one stream; in the descriptor, ``group`` and ``row`` are then that
    pattern's two inner loop counters.

    Members
    -------
    start : In(1)
    config : In(engine_config_layout(config))
    beat : Out(stream.Signature(beat_layout(config)))
    running : Out(1)
    steps_done : Out(16) -- steps completed since ``start`` (QK and AV count once per block)
    """

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG, pattern="beats"):
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
        self._pattern = pattern
        for name in ("N", "M"):
            value = getattr(config, name)
            if value & (value - 1):
                raise ValueError(f"the engine needs {name} to be a power of two, not {value}")
        self._config = config
        super().__init__({
            "start": In(1),
            "config": In(engine_config_layout(config)),
            "beat": Out(stream.Signature(beat_layout(config))),
            "running": Out(1),
            "steps_done": Out(DIM_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m_bits, n_bits = cfg.M.bit_length() - 1, cfg.N.bit_length() - 1
        groups = cfg.M // cfg.N
        tile_bits = DIM_BITS - m_bits

        step = Signal(Step)
        i, j, k = (Signal(tile_bits, name=n) for n in "ijk")
        g = Signal(range(groups))
        r = Signal(range(cfg.M))

        rows_valid, cols_valid, inner_valid = (Signal(DIM_BITS, name=n)
                                               for n in ("rows_valid", "cols_valid",
                                                         "inner_valid"))
        with m.Switch(step):
            for s, (rows, cols, inner) in STEP_DIMENSIONS.items():
                with m.Case(s):
                    m.d.comb += [rows_valid.eq(getattr(self.config, rows)),
                                 cols_valid.eq(getattr(self.config, cols)),
                                 inner_valid.eq(getattr(self.config, inner))]

        def tile_count(size):
            return (size + cfg.M - 1) >> m_bits

        row_tiles, col_tiles, inner_tiles = (Signal(tile_bits + 1, name=n)
                                             for n in ("row_tiles", "col_tiles", "inner_tiles"))
        m.d.comb += [row_tiles.eq(tile_count(rows_valid)), col_tiles.eq(tile_count(cols_valid)),
                     inner_tiles.eq(tile_count(inner_valid))]

        # Inner loop bounds (outer counter g, inner counter r) of the pattern.
        outer_count, inner_count = {"beats": (groups, cfg.M), "input": (1, cfg.M),
                                    "weight": (groups, cfg.N), "bias": (1, groups),
                                    "output": (groups, cfg.M),
                                    "output_rows": (1, cfg.M)}[self._pattern]
        only_last_inner = self._pattern in ("bias", "output", "output_rows")
        is_block_step = (step == Step.QK) | (step == Step.AV)
        last_r, last_g = r == inner_count - 1, g == outer_count - 1
        last_k = Const(1) if only_last_inner else (k == inner_tiles - 1)
        last_j = j == col_tiles - 1
        last_i = is_block_step | (i == row_tiles - 1)
        biased = Const(0)
        for s in _BIASED_STEPS:
            biased = biased | (step == s)

        # A bias walker passes over steps that read no bias without offering anything.
        skip_step = Const(0)
        if self._pattern == "bias":
            skip_step = self.running & ~(biased & self.config.bias_enable)

        beat = self.beat.payload
        m.d.comb += [
            self.beat.valid.eq(self.running & ~skip_step),
            beat.tile_i.eq(i),
            beat.tile_j.eq(j),
            beat.step.eq(step),
            beat.row.eq(r),
            beat.group.eq(g),
            beat.first_inner.eq(k == 0),
            beat.last_inner.eq(last_k),
            beat.tile_end.eq(last_r & last_g),
            beat.row_global.eq(Cat(r, i)),
            beat.col_global.eq(Cat(Const(0, n_bits), g, j)),
            beat.inner_base.eq(Cat(Const(0, m_bits), k)),
            beat.rows_valid.eq(rows_valid),
            beat.cols_valid.eq(cols_valid),
            beat.inner_valid.eq(inner_valid),
            beat.bias_needed.eq(last_k & self.config.bias_enable & biased),
            beat.bias_per_row.eq(step == Step.V),
            beat.softmax_first.eq((step == Step.QK) & (j == 0) & (g == 0)),
            beat.softmax_last.eq((step == Step.QK) & last_j & last_g),
            beat.block_start.eq((step == Step.QK) & (j == 0) & (k == 0) & (g == 0) & (r == 0)),
        ]

        def enter(next_step, next_i=0):
            m.d.sync += [step.eq(next_step), i.eq(next_i)]

        with m.If(self.start):
            m.d.sync += [self.running.eq(1), i.eq(0), j.eq(0), k.eq(0), g.eq(0), r.eq(0),
                         self.steps_done.eq(0)]
            with m.Switch(self.config.mode):
                with m.Case(Mode.ATTENTION):
                    m.d.sync += step.eq(Step.Q)
                with m.Case(Mode.FFN):
                    m.d.sync += step.eq(Step.F1)
                with m.Case(Mode.LINEAR):
                    m.d.sync += step.eq(Step.MATMUL)
                with m.Case(Mode.QKAV):
                    m.d.sync += step.eq(Step.QK)
        with m.Elif(skip_step):
            m.d.sync += [j.eq(0), k.eq(0), g.eq(0), r.eq(0)]
            self._next_step(m, step, i, enter)
        with m.Elif(self.beat.valid & self.beat.ready):
            m.d.sync += r.eq(r + 1)
            with m.If(last_r):
                m.d.sync += [r.eq(0), g.eq(g + 1)]
                with m.If(last_g):
                    m.d.sync += [g.eq(0), k.eq(k + 1)]
                    with m.If(last_k):
                        m.d.sync += [k.eq(0), j.eq(j + 1)]
                        with m.If(last_j):
                            m.d.sync += [j.eq(0), i.eq(i + 1)]
                            with m.If(last_i):
                                self._next_step(m, step, i, enter)
        return m

    def _next_step(self, m, step, i, enter):
        """Transition after the last beat of a step."""
        m.d.sync += self.steps_done.eq(self.steps_done + 1)
        row_blocks = (self.config.seq_len + self._config.M - 1) >> (self._config.M.bit_length()
                                                                    - 1)
        with m.Switch(step):
            with m.Case(Step.Q):
                enter(Step.K)
            with m.Case(Step.K):
                enter(Step.V)
            with m.Case(Step.V):
                enter(Step.QK)
            with m.Case(Step.QK):
                enter(Step.AV, i)
            with m.Case(Step.AV):
                with m.If(i + 1 < row_blocks):
                    enter(Step.QK, i + 1)
                with m.Elif(self.config.mode == Mode.ATTENTION):
                    enter(Step.OW)
                with m.Else():
                    m.d.sync += [step.eq(Step.IDLE), self.running.eq(0)]
            with m.Case(Step.F1):
                enter(Step.F2)
            with m.Default():
                m.d.sync += [step.eq(Step.IDLE), self.running.eq(0)]
