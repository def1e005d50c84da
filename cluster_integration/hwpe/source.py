"""Source streamer: reads one of the engine's operand streams from memory."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.rtl.controller import Controller
from ita.rtl.layouts import DIM_BITS, Step, engine_config_layout

from ..protocols import TcdmSignature
from .streams import POINTER_NAMES, PREVIOUS, fence_requirements, step_pointer_indices

__all__ = ["SourceStreamer", "BIAS_WORD_BYTES"]

#: Biases are stored as int32 words; the engine uses the low 24 bits.
BIAS_WORD_BYTES = 4


class SourceStreamer(wiring.Component):
    """Walks the engine's order for one input stream and fetches each beat from memory.

    ``role`` is ``input``, ``weight`` or ``bias``. A copy of the engine's controller, in the
    matching walk pattern, yields the tile indices of every beat; the address follows from
    the step's tensor pointer and the tensor's pitch (its padded column count). Reads are
    issued ahead of the engine as long as the FIFO has room for their data, so the whole
    next input tile can be fetched while the engine reuses the current one.

    Members
    -------
    start : In(1) -- begin the job (``job_config`` and ``pointers`` hold it until the end)
    job_config : In(engine_config_layout(config))
    pointers : In(ArrayLayout(unsigned(32), 16))
    tcdm : Out(TcdmSignature(data_width))
    stream : Out(stream.Signature(...)) -- the engine's ``input``, ``weight`` or ``bias``
    written_steps : In(16) -- steps whose output is entirely in memory (read-after-write
        fence, see :func:`cluster_integration.hwpe.streams.fence_requirements`)
    """

    def __init__(self, *, role, config: ITAConfig = DEFAULT_CONFIG, data_width=1024, depth=None):
        if role not in ("input", "weight", "bias"):
            raise ValueError(f"role must be input, weight or bias, not {role!r}")
        if data_width < config.M * 8 or data_width < config.N * 32:
            raise ValueError(f"a {data_width}-bit port cannot carry an engine beat")
        self._role, self._config, self._width = role, config, data_width
        if role == "bias":
            beat = data.ArrayLayout(signed(config.bias_width), config.N)
        else:
            beat = data.ArrayLayout(signed(8), config.M)
        # The input FIFO holds a whole tile so the next one is fetched during reuse.
        self._depth = depth or {"input": config.M + 2, "weight": config.N + 2,
                                "bias": 2 * (config.M // config.N)}[role]
        super().__init__({
            "start": In(1),
            "job_config": In(engine_config_layout(config)),
            "pointers": In(data.ArrayLayout(unsigned(32), len(POINTER_NAMES))),
            "tcdm": Out(TcdmSignature(data_width=data_width)),
            "stream": Out(stream.Signature(beat)),
            "written_steps": In(DIM_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        M, N = cfg.M, cfg.N
        m_bits = M.bit_length() - 1
        m.submodules.walker = walker = Controller(config=cfg, pattern=self._role)
        m.d.comb += [walker.start.eq(self.start), walker.config.eq(self.job_config)]
        beat = walker.beat.payload

        base = Signal(32)
        with m.Switch(beat.step):
            for step, index in step_pointer_indices(self._role).items():
                with m.Case(step):
                    m.d.comb += base.eq(self.pointers[index])

        pitch = Signal(DIM_BITS + 1)  # padded inner dimension, in bytes (int8 elements)
        m.d.comb += pitch.eq(((beat.inner_valid + M - 1) >> m_bits) << m_bits)
        address = Signal(32)
        if self._role == "input":
            row = Cat(beat.row, beat.tile_i)                              # i*M + r
            m.d.comb += address.eq(base + row * pitch + beat.inner_base)
        elif self._role == "weight":
            row = (beat.tile_j << m_bits) + beat.group * N + beat.row     # j*M + g*N + n
            m.d.comb += address.eq(base + row * pitch + beat.inner_base)
        else:
            tile = Mux(beat.step == Step.V, beat.tile_i, beat.tile_j)
            element = (tile << m_bits) + beat.row * N
            m.d.comb += address.eq(base + element * BIAS_WORD_BYTES)

        beat_bits = len(self.stream.payload.as_value())
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=beat_bits, depth=self._depth)
        in_flight = Signal()  # a granted read whose data arrives in the next cycle
        room = (buffer.level + in_flight) < self._depth
        fenced = Signal()
        for (mode, step), producer in fence_requirements(self._role).items():
            needed = walker.steps_done if producer == PREVIOUS else producer + 1
            with m.If((self.job_config.mode == mode) & (beat.step == step)):
                m.d.comb += fenced.eq(self.written_steps < needed)
        room = room & ~fenced
        m.d.comb += [
            self.tcdm.req.eq(walker.beat.valid & room),
            self.tcdm.addr.eq(address),
            self.tcdm.we.eq(0),
            self.tcdm.be.eq((1 << (N * BIAS_WORD_BYTES if self._role == "bias" else M)) - 1),
            walker.beat.ready.eq(self.tcdm.req & self.tcdm.gnt),
        ]
        m.d.sync += in_flight.eq(self.tcdm.req & self.tcdm.gnt)

        if self._role == "bias":
            words = [self.tcdm.r_data.word_select(n, 32) for n in range(N)]
            response = Cat(word[:cfg.bias_width] for word in words)
        else:
            response = self.tcdm.r_data[:M * 8]
        m.d.comb += [
            buffer.w_en.eq(self.tcdm.r_valid),
            buffer.w_data.eq(response),
            self.stream.valid.eq(buffer.r_rdy),
            self.stream.payload.eq(buffer.r_data),
            buffer.r_en.eq(self.stream.ready),
        ]
        return m
