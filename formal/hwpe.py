# amaranth: UnusedElaboratable=no
"""The HWPE's refusal of an illegal configuration, over the control slave and the engine.

Legality is the engine's own rule (:meth:`ita.rtl.engine.Engine.check_configuration`),
applied by the harness to the job the control slave starts; the harness reaches the slave
and the engine through the HWPE's submodules, reading only their ports. The HWPE is
elaborated by hand and a reference engine only lends its check, so neither is "used" in
Amaranth's sense: hence the pragma above.
"""

from amaranth import Elaboratable, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover

from cluster_integration.hwpe import regmap
from cluster_integration.hwpe.ita_hwpe import ItaHwpe
from cluster_integration.registers import RegisterDecoder, field_bits, window_bits
from formal.control import CONFIG
from formal.harness import CORES, ID_WIDTH, drive_freely, no_reset
from ita.rtl.engine import Engine
from ita.rtl.layouts import ErrorCode

__all__ = ["DATA_WIDTH", "REFUSAL_CYCLES", "IllegalConfigHarness", "hwpe", "honest",
           "accepts_anything"]

#: The narrowest TCDM port that carries an engine beat at the harness size.
DATA_WIDTH = 64
#: Cycles from ``start`` of a refused job until the slave is idle again: the engine answers
#: the start, then the HWPE finishes the job.
REFUSAL_CYCLES = 2

_SOFT_CLEAR = regmap.register("SOFT_CLEAR")
_ERROR = regmap.register("ERROR")


def hwpe():
    return ItaHwpe(config=CONFIG, data_width=DATA_WIDTH, cores=CORES, id_width=ID_WIDTH)


def honest():
    """The HWPE with its own engine."""
    return hwpe(), None


class _AcceptingEngine(Engine):
    """Broken: an engine whose configuration check passes everything."""

    def check_configuration(self, m, cfg_in):
        return Signal(ErrorCode)


def accepts_anything():
    """Broken: the HWPE built around :class:`_AcceptingEngine`."""
    return hwpe(), _AcceptingEngine


class IllegalConfigHarness(Elaboratable):
    """An HWPE with a free bus and memory; checks every job its slave starts.

    ``block`` returns the HWPE and, for a broken variant, the class its engine becomes.
    """

    def __init__(self, block=honest):
        self.block = block

    def elaborate(self, platform):
        m = Module()
        top, engine_class = self.block()
        body = top.elaborate(platform)
        m.submodules.hwpe = body
        control, engine = body.submodules.control, body.submodules.engine
        if engine_class is not None:    # the engine sits in its clock domain's renamer
            engine._elaboratable_.__class__ = engine_class
        drive_freely(m, top)
        no_reset(m)
        bus = top.periph
        m.d.comb += Assume(bus.id < CORES)
        decoder = RegisterDecoder(bus, window_bits(regmap.REGISTERS))

        code = Engine(config=CONFIG).check_configuration(m, control.job_config)
        watching = Signal()     # a refused job has started and not ended
        aborted = Signal()      # ... and a SOFT_CLEAR cut it short
        expected = Signal(ErrorCode)
        age = Signal(range(REFUSAL_CYCLES + 2))
        reported = Signal()     # ERROR holds the refused job's code
        ending = watching & ~control.busy
        reported_now = reported | (ending & ~aborted)
        clearing = decoder.writes(_SOFT_CLEAR)
        with m.If(control.start):
            m.d.sync += [watching.eq(code != 0), expected.eq(code), aborted.eq(clearing),
                         age.eq(0), reported.eq(0)]
        with m.Else():
            m.d.sync += [watching.eq(watching & control.busy), reported.eq(reported_now),
                         aborted.eq(aborted | (watching & clearing)),
                         age.eq(Mux(watching, age + 1, 0))]
        asked, answer = Signal(), Signal(ErrorCode)   # an ERROR read, what it must return
        m.d.sync += [asked.eq(reported_now & decoder.reads(_ERROR)), answer.eq(expected)]
        m.d.comb += [
            Assert(~watching | ~(engine.busy | top.tcdm.req)),
            Assert(age <= REFUSAL_CYCLES),
            Assert(~asked | (field_bits(bus.r_data, _ERROR.field("code")) == answer)),
            Cover(asked),
        ]
        return m
