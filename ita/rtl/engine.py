"""The ITA engine: a whole attention head, feed-forward block or linear layer per job."""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

from .accumulator import Accumulator
from .activation import Activation
from .controller import Controller
from .dot_product import DotProductArray
from .layouts import (
    DIM_BITS,
    REQUANT_SET,
    ActivationKind,
    ErrorCode,
    Mode,
    RequantLayout,
    Step,
    engine_config_layout,
)
from .ping_pong import PingPongBuffer
from .requantizer import Requantizer
from .softmax import SoftmaxUnit

__all__ = ["Engine"]


class Engine(wiring.Component):
    """ITA-compatible int8 attention engine with streaming operands.

    A job starts with ``start`` and runs every step of ``config.mode`` on the configured
    shapes; operands arrive on ``input``, ``weight`` and ``bias`` and results leave on
    ``output`` in the order described in :mod:`ita.rtl.schedule`. Every beat the array
    computes N dot products of length M.

    Data path per issued beat (stage numbers are cycles after issue)::

        0  issue: operand from the input stream (first column group of a tile), from the
           tile buffer (other groups) or, in step AV, normalised by the softmax unit
        1  dot products against the weight slab
        2  accumulator (first/middle/last inner tile, bias on the last)
        4  requantizer -> 6 softmax statistics (QK) and activation -> output FIFO

    Beats are only issued when everything they need is there (operands, weight slab,
    bias, a free output FIFO entry, the softmax reciprocal of the row in step AV), so the
    pipeline never stalls once a beat is in it. ``clear`` aborts a job in any cycle.
    An illegal configuration is refused at ``start``: ``error`` rises with ``error_code``
    and the engine stays idle.

    Members
    -------
    start, clear : In(1)
    config : In(engine_config_layout(config))
    busy, done, error : Out(1)
    error_code : Out(ErrorCode)
    step : Out(Step) -- the step whose beats are being issued
    input, weight : In(stream.Signature(ArrayLayout(signed(8), M)))
    bias : In(stream.Signature(ArrayLayout(signed(bias_width), N)))
    output : Out(stream.Signature(ArrayLayout(signed(8), N)))
    """

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG):
        for name in ("N", "M"):
            value = getattr(config, name)
            if value & (value - 1):
                raise ValueError(f"the engine needs {name} to be a power of two, not {value}")
        self._config = config
        self._pipeline_depth = (1 + DotProductArray.latency + Accumulator.latency
                                + Requantizer.LATENCY + Activation.LATENCY)
        if config.output_fifo_depth < self._pipeline_depth + 3:
            raise ValueError(f"output_fifo_depth={config.output_fifo_depth} cannot cover the "
                             f"{self._pipeline_depth} beats in flight; use at least "
                             f"{self._pipeline_depth + 3}")
        row = data.ArrayLayout(signed(8), config.M)
        super().__init__({
            "start": In(1),
            "clear": In(1),
            "config": In(engine_config_layout(config)),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(ErrorCode),
            "step": Out(Step),
            "input": In(stream.Signature(row)),
            "weight": In(stream.Signature(row)),
            "bias": In(stream.Signature(data.ArrayLayout(signed(config.bias_width), config.N))),
            "output": Out(stream.Signature(data.ArrayLayout(signed(8), config.N))),
        })

    @property
    def params(self):
        """The :class:`ITAConfig` this engine was generated for."""
        return self._config

    def check_configuration(self, m, cfg_in):
        """Error code for a configuration, combinationally (0 when it is legal)."""
        cfg = self._config
        code = Signal(ErrorCode)
        s, e, p, f = cfg_in.seq_len, cfg_in.embed, cfg_in.proj, cfg_in.ffn
        uses = {Mode.ATTENTION: (s, e, p), Mode.FFN: (s, e, f), Mode.LINEAR: (s, e, p),
                Mode.QKAV: (s, p)}
        inner_limit = cfg.max_inner_with_bias
        with m.Switch(cfg_in.mode):
            for mode, dims in uses.items():
                with m.Case(mode):
                    zero = Const(0)
                    for d in dims:
                        zero = zero | (d == 0)
                    too_large = Const(0)
                    for d in dims:
                        too_large = too_large | (d > inner_limit)
                    if mode in (Mode.ATTENTION, Mode.QKAV):
                        too_large = too_large | (s > cfg.max_keys)
                    with m.If(zero):
                        m.d.comb += code.eq(ErrorCode.ZERO_DIMENSION)
                    with m.Elif(too_large):
                        m.d.comb += code.eq(ErrorCode.DIMENSION_TOO_LARGE)
                    with m.Elif(cfg_in.valid_keys > s):
                        m.d.comb += code.eq(ErrorCode.BAD_VALID_KEYS)
                    with m.Elif(cfg_in.activation == 3):
                        m.d.comb += code.eq(ErrorCode.BAD_ACTIVATION)
        return code

    def elaborate(self, platform):
        top = Module()
        m = Module()
        cfg = self._config
        M, N = cfg.M, cfg.N
        groups = M // N

        # --- job control ---------------------------------------------------------------
        job = Signal(engine_config_layout(cfg))
        m.submodules.controller = ctrl = Controller(config=cfg)
        m.submodules.softmax = softmax = SoftmaxUnit(config=cfg)
        code = self.check_configuration(m, self.config)
        accept = self.start & ~self.busy
        # The controller starts one cycle after ``start``, once ``job`` holds the new values.
        m.d.comb += ctrl.config.eq(job)
        m.d.sync += [ctrl.start.eq(accept & (code == 0)), self.done.eq(0)]
        with m.If(accept):
            m.d.sync += [job.eq(self.config), self.error_code.eq(code),
                         self.error.eq(code != 0)]
            with m.If(code == 0):
                m.d.sync += self.busy.eq(1)
            with m.Else():
                m.d.sync += self.done.eq(1)
        with m.If(softmax.overflow & self.busy):
            m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.SOFTMAX_OVERFLOW)]

        valid_keys = Signal(DIM_BITS)
        m.d.comb += valid_keys.eq(Mux(job.valid_keys == 0, job.seq_len, job.valid_keys))

        # --- operand buffers -------------------------------------------------------------
        m.submodules.weights = weights = PingPongBuffer(
            beat_shape=data.ArrayLayout(signed(8), M), beats=N)
        m.submodules.biases = biases = PingPongBuffer(
            beat_shape=data.ArrayLayout(signed(cfg.bias_width), N), beats=groups)
        wiring.connect(m, wiring.flipped(self.weight), weights.fill)
        wiring.connect(m, wiring.flipped(self.bias), biases.fill)
        m.submodules.tile_buffer = tile_buffer = Memory(
            shape=data.ArrayLayout(unsigned(8), M), depth=M, init=[])
        tile_read = tile_buffer.read_port()
        tile_write = tile_buffer.write_port()

        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=8 * N, depth=cfg.output_fifo_depth)
        in_flight = Signal(range(cfg.output_fifo_depth + 1))

        # --- issue (stage 0) -------------------------------------------------------------
        beat = ctrl.beat.payload
        from_stream = beat.group == 0
        normalise = from_stream & (beat.step == Step.AV)
        credit_ok = (in_flight + out_fifo.level) < cfg.output_fifo_depth
        can_issue = Signal()
        m.d.comb += can_issue.eq(
            ctrl.beat.valid
            & (~from_stream | self.input.valid)
            & weights.ready
            & (~beat.bias_needed | biases.ready)
            & (~beat.last_inner | credit_ok)
            & (~normalise | (softmax.rows_ready > beat.row)))
        fire = can_issue
        m.d.comb += [
            ctrl.beat.ready.eq(fire),
            self.input.ready.eq(fire & from_stream),
            weights.release.eq(fire & (beat.row == M - 1)),
            biases.release.eq(fire & beat.bias_needed & beat.tile_end),
            softmax.restart.eq(fire & beat.block_start),
            self.step.eq(Mux(ctrl.running, beat.step, Step.IDLE)),
        ]
        with m.If(fire & beat.last_inner):
            m.d.sync += in_flight.eq(in_flight + 1 - out_fifo.w_en)
        with m.Elif(out_fifo.w_en):
            m.d.sync += in_flight.eq(in_flight - 1)

        # Masks, computed once per beat at issue.
        def key_visible(key):
            return (key < valid_keys) & (~job.causal | (key <= beat.row_global))

        inner_keep = Cat(beat.inner_base + lane < beat.inner_valid for lane in range(M))
        av_keep = Cat(key_visible(beat.inner_base + lane) for lane in range(M))
        qk_keep = Cat(key_visible(beat.col_global + lane) for lane in range(N))
        out_keep = Cat((beat.row_global < beat.rows_valid)
                       & (beat.col_global + lane < beat.cols_valid) for lane in range(N))
        masked_input = Cat(Mux(inner_keep[lane], self.input.payload[lane], 0)
                           for lane in range(M))
        m.d.comb += [
            softmax.norm_row.eq(beat.row),
            softmax.norm_logits.eq(self.input.payload),
            softmax.norm_keep.eq(av_keep),
            tile_read.addr.eq(beat.row),
        ]

        requant = Signal(RequantLayout)
        with m.Switch(beat.step):
            for step, index in REQUANT_SET.items():
                with m.Case(step):
                    m.d.comb += requant.eq(job.requant[index])
        act_kind = Mux((beat.step == Step.F1) | (beat.step == Step.MATMUL), job.activation,
                       ActivationKind.IDENTITY)
        bias_bank = biases.banks[biases.current]
        bias_lanes = Signal(data.ArrayLayout(signed(cfg.bias_width), N))
        with m.If(beat.bias_needed):
            with m.If(beat.bias_per_row):
                row_bias = bias_bank.as_value().word_select(beat.row, cfg.bias_width)
                m.d.comb += bias_lanes.eq(Cat(row_bias for _ in range(N)))
            with m.Else():
                m.d.comb += bias_lanes.eq(bias_bank[beat.group])

        tag = data.StructLayout({
            "valid": 1, "last_inner": 1, "first_inner": 1, "row": range(M),
            "slot": range(M * groups), "qk": 1, "softmax_first": 1, "softmax_last": 1,
            "qk_keep": N, "out_keep": N, "requant": RequantLayout, "act_kind": 2,
        })
        issued = Signal(tag)
        m.d.comb += [
            issued.valid.eq(fire),
            issued.last_inner.eq(beat.last_inner),
            issued.first_inner.eq(beat.first_inner),
            issued.row.eq(beat.row),
            issued.slot.eq(Cat(beat.row, beat.group)),
            issued.qk.eq(beat.step == Step.QK),
            issued.softmax_first.eq(beat.softmax_first),
            issued.softmax_last.eq(beat.softmax_last),
            issued.qk_keep.eq(qk_keep),
            issued.out_keep.eq(out_keep),
            issued.requant.eq(requant),
            issued.act_kind.eq(act_kind),
        ]

        m.submodules.dot = dot = DotProductArray(config=cfg)
        m.submodules.accumulator = acc = Accumulator(config=cfg)
        m.submodules.requantizer = rq = Requantizer(lanes=N, input_width=cfg.acc_width,
                                                    config=cfg)
        m.submodules.activation = act = Activation(lanes=N, config=cfg)

        # Tag delay line: tags[d] belongs to the beat issued d cycles ago.
        depth = 1 + dot.latency + acc.latency + rq.latency + act.latency
        assert depth == self._pipeline_depth
        tags = [issued] + [Signal(tag, name=f"tag_{d}") for d in range(1, depth + 1)]
        for d in range(1, depth + 1):
            m.d.sync += tags[d].eq(tags[d - 1])

        # --- stage 1: operand and dot products -------------------------------------------
        operand_source = Signal(2)       # 0: stream, 1: softmax, 2: tile buffer
        stream_row = Signal(data.ArrayLayout(unsigned(8), M))
        bias_1 = Signal.like(bias_lanes)
        weight_bank = Signal()
        av_1 = Signal()
        m.d.sync += [
            operand_source.eq(Mux(normalise, 1, Mux(from_stream, 0, 2))),
            stream_row.eq(masked_input),
            bias_1.eq(bias_lanes),
            weight_bank.eq(weights.current),
            av_1.eq(beat.step == Step.AV),
        ]
        operand = Signal(data.ArrayLayout(unsigned(8), M))
        with m.Switch(operand_source):
            with m.Case(0):
                m.d.comb += operand.eq(stream_row)
            with m.Case(1):
                m.d.comb += operand.eq(softmax.norm_probs)
            with m.Default():
                m.d.comb += operand.eq(tile_read.data)
        m.d.comb += [
            tile_write.addr.eq(tags[1].row),
            tile_write.data.eq(operand),
            tile_write.en.eq(tags[1].valid & (operand_source != 2)),
            dot.operand.eq(operand),
            dot.operand_unsigned.eq(av_1),
            dot.weights.eq(Mux(weight_bank, weights.banks[1].as_value(),
                               weights.banks[0].as_value())),
        ]

        # --- stage 2: accumulate -----------------------------------------------------------
        at_acc = tags[1 + dot.latency]
        bias_2 = Signal.like(bias_lanes)
        m.d.sync += bias_2.eq(bias_1)
        m.d.comb += [
            acc.valid.eq(at_acc.valid),
            acc.slot.eq(at_acc.slot),
            acc.dot.eq(dot.result),
            acc.first.eq(at_acc.first_inner),
            acc.last.eq(at_acc.last_inner),
            acc.bias.eq(bias_2),
        ]

        # --- stage 4: requantize -----------------------------------------------------------
        at_rq = tags[1 + dot.latency + acc.latency]
        for lane in range(N):
            m.d.comb += [
                rq.value[lane].eq(acc.result[lane]),
                rq.mult[lane].eq(at_rq.requant.mult),
                rq.shift[lane].eq(at_rq.requant.shift),
                rq.add[lane].eq(at_rq.requant.add),
            ]

        # --- stage 6: softmax statistics and activation ------------------------------------
        at_act = tags[1 + dot.latency + acc.latency + rq.latency]
        m.d.comb += [
            softmax.acc_valid.eq(at_act.valid & at_act.last_inner & at_act.qk),
            softmax.acc_row.eq(at_act.row),
            softmax.acc_logits.eq(rq.result),
            softmax.acc_keep.eq(at_act.qk_keep),
            softmax.acc_first.eq(at_act.softmax_first),
            softmax.acc_last.eq(at_act.softmax_last),
            softmax.logit_frac.eq(job.logit_frac),
            act.value.eq(rq.result),
            act.kind.eq(at_act.act_kind),
            act.gelu_b.eq(job.gelu_b),
            act.gelu_c.eq(job.gelu_c),
            act.act_mult.eq(job.act_requant.mult),
            act.act_shift.eq(job.act_requant.shift),
            act.act_add.eq(job.act_requant.add),
        ]

        # --- output: zero outside the valid shape, FIFO ------------------------------------
        at_out = tags[depth]
        m.d.comb += [
            out_fifo.w_en.eq(at_out.valid & at_out.last_inner),
            out_fifo.w_data.eq(Cat(Mux(at_out.out_keep[lane], act.result[lane], 0)
                                   for lane in range(N))),
            self.output.valid.eq(out_fifo.r_rdy),
            self.output.payload.eq(Mux(out_fifo.r_rdy, out_fifo.r_data, 0)),
            out_fifo.r_en.eq(self.output.ready),
        ]

        # --- end of job ----------------------------------------------------------------------
        with m.If(self.busy & ~ctrl.running & ~ctrl.start & (in_flight == 0)
                  & (out_fifo.level == 0)):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]

        top.submodules.core = ResetInserter(self.clear)(m)
        return top
