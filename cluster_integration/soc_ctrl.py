"""SoC control: the simulation's stdout, end of computation, cycle counter and trap report.

Software talks to the testbench only through these registers
(:data:`cluster_integration.memory_map.SOC_CTRL`): the testbench prints characters, stops on
EXIT with its code, and fails on a trap naming its cause and PC.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cluster_integration import memory_map
from cluster_integration.protocols import TcdmSignature
from cluster_integration.registers import (
    WORD_BITS,
    RegisterDecoder,
    field_bits,
    read_mux,
    region_window_bits,
)

__all__ = ["SocCtrl", "CYCLE_BITS"]

#: The cycle counter: a low and a high word.
CYCLE_BITS = 2 * WORD_BITS
#: Word-index bits decoded: the SOC_CTRL region, so the register window repeats above it.
_WINDOW_BITS = region_window_bits(memory_map.region("SOC_CTRL").size)

_REGISTERS = {r.name: r for r in memory_map.SOC_CTRL}
_PUTCHAR = _REGISTERS["PUTCHAR"]
_EXIT = _REGISTERS["EXIT"]
_CYCLES = _REGISTERS["CYCLES"]
_CYCLES_HI = _REGISTERS["CYCLES_HI"]
_TRAP = _REGISTERS["TRAP"]
_TRAP_PC = _REGISTERS["TRAP_PC"]


class SocCtrl(wiring.Component):
    """Register slave on one TCDM port; every access is granted at once and answered one
    cycle later (``r_data`` is 0 for writes and write-only registers). Only the word-index bits
    of the SOC_CTRL region are decoded; writes honour ``be`` (a byte store to PUTCHAR works).

    * PUTCHAR: ``char_valid`` pulses for one cycle with ``char``.
    * EXIT: ``exit_valid`` rises and stays; ``exit_code`` keeps the first code written.
    * CYCLES: the low word of a 64-bit count of cycles since reset, taken at the grant; the
      same read latches the high word, which CYCLES_HI returns, so that a low-then-high read
      pair is consistent. The count is also the ``cycles`` output, for the testbench.
    * TRAP then TRAP_PC: ``trap_cause`` takes the TRAP write; the TRAP_PC write sets
      ``trap_pc`` and raises ``trap_valid``, which stays. The first trap reported is kept.
    """

    def __init__(self):
        super().__init__({
            "bus": In(TcdmSignature(data_width=WORD_BITS)),
            "char_valid": Out(1),
            "char": Out(_PUTCHAR.field().width),
            "exit_valid": Out(1),
            "exit_code": Out(_EXIT.field().width),
            "trap_valid": Out(1),
            "trap_cause": Out(_TRAP.field().width),
            "trap_pc": Out(_TRAP_PC.field().width),
            "cycles": Out(CYCLE_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        decoder = RegisterDecoder(bus, _WINDOW_BITS)
        writing, reading, written = decoder.writes, decoder.reads, decoder.written
        m.d.comb += bus.gnt.eq(bus.req)

        m.d.sync += [self.char_valid.eq(writing(_PUTCHAR)),
                     self.char.eq(field_bits(written, _PUTCHAR.field()))]

        with m.If(writing(_EXIT) & ~self.exit_valid):
            m.d.sync += [self.exit_valid.eq(1),
                         self.exit_code.eq(field_bits(written, _EXIT.field()))]

        with m.If(~self.trap_valid):
            with m.If(writing(_TRAP)):
                m.d.sync += self.trap_cause.eq(field_bits(written, _TRAP.field()))
            with m.If(writing(_TRAP_PC)):
                m.d.sync += [self.trap_valid.eq(1),
                             self.trap_pc.eq(field_bits(written, _TRAP_PC.field()))]

        cycles = self.cycles
        cycles_high = Signal(WORD_BITS)   # latched by a CYCLES read
        m.d.sync += cycles.eq(cycles + 1)
        with m.If(reading(_CYCLES)):
            m.d.sync += cycles_high.eq(cycles[WORD_BITS:])

        read_value = read_mux(m, decoder.word, {
            _CYCLES: {_CYCLES.field(): cycles[:WORD_BITS]},
            _CYCLES_HI: {_CYCLES_HI.field(): cycles_high},
        })
        m.d.sync += [bus.r_valid.eq(bus.req),
                     bus.r_data.eq(Mux(bus.req & ~bus.we, read_value, 0))]
        return m
