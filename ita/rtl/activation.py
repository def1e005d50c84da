"""The activation unit after a step's requantizer (``docs/arithmetic.md`` section 5)."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

from .layouts import ActivationKind
from .requantizer import Requantizer

__all__ = ["Activation"]


class Activation(wiring.Component):
    """Identity, i-GELU or ReLU on int8 values, matching :func:`ita.golden.activate`.

    i-GELU computes ``q * (±((min(|q|, -b) + b)**2 + c) + c)`` modulo ``2**config.gelu_width``
    as the hardware does, over two pipeline stages (the square, then the product); ReLU takes
    ``max(q, 0)``. Either result then goes through the activation requantization
    ``act_mult, act_shift, act_add``, a :class:`Requantizer`.

    Identity rides through that same requantizer with the constants ``1, 0, 0``, which leave
    an int8 value unchanged. All kinds thus share one latency without a separate delay line
    and output multiplexer, and ``kind`` may change every cycle: it travels down the pipeline
    with its data, as do the constants. All inputs are sampled in the same cycle as ``value``;
    ``result`` shows them ``latency`` cycles later.

    Parameters
    ----------
    lanes:
        Values processed side by side; the constants are shared by all lanes.
    config:
        Engine configuration; uses ``input_width``, ``requant_width``, ``gelu_const_width``
        and ``gelu_width``.
    """

    # The square, then the product with q.
    _POLYNOMIAL_STAGES = 2

    def __init__(self, *, lanes, config: ITAConfig = DEFAULT_CONFIG):
        if not isinstance(lanes, int) or lanes < 1:
            raise TypeError(f"lanes must be a positive integer, not {lanes!r}")
        if not isinstance(config, ITAConfig):
            raise TypeError(f"config must be an ITAConfig, not {config!r}")
        if config.gelu_width < config.input_width:
            # Identity and ReLU pass their values through the requantizer's gelu_width input.
            raise ValueError(f"gelu_width {config.gelu_width} cannot carry values of "
                             f"input_width {config.input_width}")
        self._lanes = lanes
        self._config = config
        int8 = data.ArrayLayout(signed(config.input_width), lanes)
        super().__init__({
            "value": In(int8),
            "kind": In(ActivationKind.as_shape()),
            "gelu_b": In(signed(config.gelu_const_width)),
            "gelu_c": In(signed(config.gelu_const_width)),
            "act_mult": In(unsigned(config.requant_width)),
            "act_shift": In(unsigned(config.requant_width)),
            "act_add": In(signed(config.requant_width)),
            "result": Out(int8),
        })

    #: Cycles from the inputs to their ``result``, the same for every kind.
    LATENCY = _POLYNOMIAL_STAGES + Requantizer.LATENCY

    @property
    def latency(self):
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        config = self._config
        polynomial = signed(config.gelu_width)
        m.submodules.requantizer = requantizer = Requantizer(
            lanes=self._lanes, input_width=config.gelu_width, config=config)

        # Stage 1: the erf polynomial's square, L = (min(|q|, -b) + b)**2 + c.
        kind = Signal.like(self.kind, name="kind_1")
        gelu_c = Signal.like(self.gelu_c, name="gelu_c_1")
        act_mult = Signal.like(self.act_mult, name="act_mult_1")
        act_shift = Signal.like(self.act_shift, name="act_shift_1")
        act_add = Signal.like(self.act_add, name="act_add_1")
        m.d.sync += [
            kind.eq(self.kind),
            gelu_c.eq(self.gelu_c),
            act_mult.eq(self.act_mult),
            act_shift.eq(self.act_shift),
            act_add.eq(self.act_add),
        ]
        values, squares = [], []
        for lane in range(self._lanes):
            q = self.value[lane]
            # min(|q|, -b) + b: how far |q| lies below the clipping point -b, never positive.
            below_clip = abs(q) + self.gelu_b
            clip_distance = Mux(below_clip < 0, below_clip, 0)
            value = Signal.like(q, name=f"value_{lane}_1")
            square = Signal(polynomial, name=f"square_{lane}_1")  # assignment wraps
            m.d.sync += [
                value.eq(q),
                square.eq(clip_distance * clip_distance + self.gelu_c),
            ]
            values.append(value)
            squares.append(square)

        # Stage 2: g = q * (±L + c) for GELU, max(q, 0) for ReLU, or q; the constants of the
        # activation requantization, or the identity's 1, 0, 0.
        requantized = Signal()
        mult = Signal.like(act_mult, name="mult_2")
        shift = Signal.like(act_shift, name="shift_2")
        add = Signal.like(act_add, name="add_2")
        m.d.comb += requantized.eq((kind == ActivationKind.GELU) | (kind == ActivationKind.RELU))
        m.d.sync += [
            mult.eq(Mux(requantized, act_mult, 1)),
            shift.eq(Mux(requantized, act_shift, 0)),
            add.eq(Mux(requantized, act_add, 0)),
        ]
        for lane, (q, square) in enumerate(zip(values, squares, strict=True)):
            erf_plus_one = Signal(polynomial, name=f"erf_plus_one_{lane}")  # wraps as well
            m.d.comb += erf_plus_one.eq(Mux(q < 0, -square, square) + gelu_c)
            with m.Switch(kind):
                with m.Case(ActivationKind.GELU):
                    m.d.sync += requantizer.value[lane].eq(q * erf_plus_one)
                with m.Case(ActivationKind.RELU):
                    m.d.sync += requantizer.value[lane].eq(Mux(q < 0, 0, q))
                with m.Default():
                    m.d.sync += requantizer.value[lane].eq(q)
            m.d.comb += [
                requantizer.mult[lane].eq(mult),
                requantizer.shift[lane].eq(shift),
                requantizer.add[lane].eq(add),
            ]

        # Stages 3 and 4: the requantizer.
        m.d.comb += self.result.eq(requantizer.result)

        return m
