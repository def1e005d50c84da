"""The ITA engine as an HWPE: register slave, streamers and one wide TCDM port."""

import enum

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Module,
    ResetInserter,
    ResetSignal,
    Signal,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.rtl.engine import Engine

from ..protocols import PeriphSignature, TcdmSignature
from .clock_gate import ClockGate
from .control import ControlSlave
from .sink import OutputStreamer
from .source import SourceStreamer
from .tcdm_mux import TcdmMux

__all__ = ["ItaHwpe"]


class _Phase(enum.Enum):
    IDLE = 0
    CHECK = 1   # the engine has seen ``start``: accepted, or refused with an error
    RUN = 2     # streams flowing
    DRAIN = 3   # the engine is done; the last output tile is being written


class ItaHwpe(wiring.Component):
    """The engine with everything a cluster needs to use it.

    Cores program whole operations through ``periph`` (see
    :mod:`cluster_integration.hwpe.regmap`); for each job, three source streamers fetch
    inputs, weights and biases and an output streamer writes results, all through one wide
    TCDM port shared round-robin. Completion pulses the committing core's ``events`` line.
    An illegal configuration ends the job at once with its error code in the ERROR
    register; SOFT_CLEAR aborts everything in any cycle.

    With ``clock_gate`` the engine, the streamers and their port multiplexer run on a
    :class:`ClockGate`d clock that is open only while a job is being started or runs, a
    streamer or the port is active, or a SOFT_CLEAR is applied (and a few cycles after,
    for responses in flight); the register slave keeps the free-running clock. Results and
    timing are the same; an idle engine costs a cycle-based simulator nothing.

    Members
    -------
    periph : In(PeriphSignature) -- register slave
    tcdm : Out(TcdmSignature(data_width)) -- wide memory master
    events : Out(cores) -- job-finished pulse per core
    sw_events : Out(8)
    busy : Out(1)
    """

    #: Cycles the gate stays open after the last sign of activity (a read response arrives
    #: one cycle after its grant).
    GATE_TAIL = 4

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG, data_width=1024, cores=8,
                 id_width=4, clock_gate=False):
        self._config, self._width, self._clock_gate = config, data_width, clock_gate
        self._cores, self._id_width = cores, id_width
        super().__init__({
            "periph": In(PeriphSignature(addr_width=ControlSlave.ADDR_WIDTH, id_width=id_width)),
            "tcdm": Out(TcdmSignature(data_width=data_width)),
            "events": Out(cores),
            "sw_events": Out(8),
            "busy": Out(1),
        })

    @property
    def params(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg, width = self._config, self._width
        m.submodules.control = control = ControlSlave(config=cfg, cores=self._cores,
                                                      id_width=self._id_width)
        wiring.connect(m, wiring.flipped(self.periph), control.periph)
        m.d.comb += [self.events.eq(control.events), self.sw_events.eq(control.sw_events),
                     self.busy.eq(control.busy)]

        engine = Engine(config=cfg)
        clear = control.clear
        streamers = {role: SourceStreamer(role=role, config=cfg, data_width=width)
                     for role in ("input", "weight", "bias")}
        sink = OutputStreamer(config=cfg, data_width=width)
        mux = TcdmMux(channels=4, data_width=width)
        domain = "ita" if self._clock_gate else "sync"
        m.submodules.engine = DomainRenamer(domain)(engine)
        for name, part in (*streamers.items(), ("output", sink), ("mux", mux)):
            m.submodules[name] = DomainRenamer(domain)(ResetInserter(clear)(part))

        start_streams = Signal()
        for part in (*streamers.values(), sink):
            m.d.comb += [part.start.eq(start_streams), part.job_config.eq(control.job_config),
                         part.pointers.eq(control.job_pointers)]
        for part in streamers.values():
            m.d.comb += part.written_steps.eq(sink.written_steps)
        wiring.connect(m, streamers["input"].stream, engine.input)
        wiring.connect(m, streamers["weight"].stream, engine.weight)
        wiring.connect(m, streamers["bias"].stream, engine.bias)
        wiring.connect(m, engine.output, sink.stream)
        for index, part in enumerate((*streamers.values(), sink)):
            wiring.connect(m, part.tcdm, mux.channel(index))
        wiring.connect(m, mux.port, wiring.flipped(self.tcdm))

        m.d.comb += [engine.config.eq(control.job_config), engine.clear.eq(clear)]
        phase = Signal(_Phase)
        with m.If(clear):
            m.d.sync += phase.eq(_Phase.IDLE)
        with m.Else():
            with m.Switch(phase):
                with m.Case(_Phase.IDLE):
                    with m.If(control.start):
                        m.d.comb += engine.start.eq(1)
                        m.d.sync += phase.eq(_Phase.CHECK)
                with m.Case(_Phase.CHECK):
                    with m.If(engine.busy):
                        m.d.comb += start_streams.eq(1)
                        m.d.sync += phase.eq(_Phase.RUN)
                    with m.Else():  # refused: finish now, with the engine's error code
                        m.d.comb += [control.finish.eq(1),
                                     control.finish_error.eq(engine.error_code)]
                        m.d.sync += phase.eq(_Phase.IDLE)
                with m.Case(_Phase.RUN):
                    with m.If(engine.done):
                        m.d.sync += phase.eq(_Phase.DRAIN)
                with m.Case(_Phase.DRAIN):
                    with m.If(sink.idle):
                        m.d.comb += [control.finish.eq(1),
                                     control.finish_error.eq(engine.error_code)]
                        m.d.sync += phase.eq(_Phase.IDLE)
        if self._clock_gate:
            self._gate(m, control, engine, streamers, sink, phase)
        return m

    def _gate(self, m, control, engine, streamers, sink, phase):
        """The datapath's clock: open while anything of the datapath may change."""
        m.submodules.clock_gate = gate = ClockGate()
        m.domains.ita = ClockDomain("ita", local=True)
        m.d.comb += [ClockSignal("ita").eq(gate.clk), ResetSignal("ita").eq(ResetSignal())]
        active = Signal()
        m.d.comb += active.eq((phase != _Phase.IDLE) | control.start | control.clear
                              | engine.busy | ~sink.idle | self.tcdm.req
                              | Cat(*(s.tcdm.req for s in streamers.values())).any())
        tail = Signal(range(self.GATE_TAIL + 1))
        with m.If(active):
            m.d.sync += tail.eq(self.GATE_TAIL)
        with m.Elif(tail != 0):
            m.d.sync += tail.eq(tail - 1)
        m.d.comb += gate.enable.eq(active | (tail != 0))
