"""A glitch-free clock gate: the HWPE's datapath gets no clock edges while it has no work."""

from amaranth.hdl import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ClockGate"]


class ClockGate(wiring.Component):
    """``clk = sync clock AND enable``, the enable sampled on the falling edge.

    Why: a cycle-based simulator evaluates every clocked block on every edge of its clock,
    busy or not, and the idle engine was about 30 % of each simulated cluster cycle. Behind
    this gate its registers and the logic they feed are not evaluated while it is idle.

    The enable is taken on the falling edge, while the clock is low, so it is stable for the
    whole high phase: the gated clock has no glitch and its rising edges coincide with the
    sync clock's (what an integrated clock-gating cell does in silicon). ``enable`` must be
    high in a cycle for the gated logic to see the next rising edge. During reset the gate
    is open, so the gated registers are reset too.

    Members
    -------
    enable : In(1) -- open the gate for the next rising edge
    clk : Out(1) -- the gated clock
    """

    def __init__(self):
        super().__init__({"enable": In(1), "clk": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.falling = ClockDomain("falling", clk_edge="neg", local=True)
        m.d.comb += [ClockSignal("falling").eq(ClockSignal("sync")),
                     ResetSignal("falling").eq(ResetSignal("sync"))]
        open_ = Signal(init=1)
        m.d.falling += open_.eq(self.enable | ResetSignal("sync"))
        m.d.comb += self.clk.eq(ClockSignal("sync") & open_)
        return m
