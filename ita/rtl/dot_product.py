"""The array of N dot-product units of length M: the engine's 2 * N * M ops per cycle."""

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["DotProductArray"]


class DotProductArray(wiring.Component):
    """N int8 dot products of one shared operand row with N weight rows, latency 1.

    The operand row is broadcast to every unit. Its bytes are sign-extended, or zero-extended
    when ``operand_unsigned`` is set (softmax probabilities in step AV are uint8); weights
    are always int8. Sums are exact (no product is truncated) and sign-extended to the
    accumulator width.

    Members
    -------
    operand : In(ArrayLayout(unsigned(8), M))
    operand_unsigned : In(1)
    weights : In(ArrayLayout(ArrayLayout(signed(8), M), N))
    result : Out(ArrayLayout(signed(config.acc_width), N))
    """

    latency = 1

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG):
        self._config = config
        super().__init__({
            "operand": In(data.ArrayLayout(unsigned(8), config.M)),
            "operand_unsigned": In(1),
            "weights": In(data.ArrayLayout(data.ArrayLayout(signed(8), config.M), config.N)),
            "result": Out(data.ArrayLayout(signed(config.acc_width), config.N)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        extended = [Mux(self.operand_unsigned, byte.as_unsigned(), byte.as_signed())
                    for byte in (self.operand[i] for i in range(cfg.M))]
        for unit in range(cfg.N):
            products = [extended[i] * self.weights[unit][i] for i in range(cfg.M)]
            while len(products) > 1:  # balanced adder tree
                pairs = [products[i] + products[i + 1] for i in range(0, len(products) - 1, 2)]
                products = pairs + ([products[-1]] if len(products) % 2 else [])
            m.d.sync += self.result[unit].eq(products[0])
        return m
