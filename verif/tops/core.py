"""A single-core test top: one CV32E40P with zero-wait L1 and L2 and stub peripherals.

It runs programs built by :mod:`sw.build` (with ``cores=1``) without the cluster:

* L2 (instructions and data) and L1 (data) are :file:`tb_ram.sv` arrays of the memory map's
  sizes, granted at once and answering one cycle later; the testbench loads L2 through VPI
  (``dut.l2.mem``). Instruction fetches outside L2 read 0 (an illegal instruction).
* A stub event unit answers ``CORE_ID`` with the hart id and ``BARRIER`` at once with the
  barrier generation (one core: everybody has arrived); ``EVT_WAIT`` returns 0 at once and
  everything else reads 0.
* SOC_CTRL: ``PUTCHAR`` appends to a character buffer (``dut.stdout.mem``, one character per
  word, ``stdout_count`` characters written), ``EXIT`` and ``TRAP``/``TRAP_PC`` latch their
  values and raise ``done``; ``CYCLES``/``CYCLES_HI`` read a cycle counter.
* Any other data access reads 0 and is otherwise ignored (the core has no bus-error input).
  Every write outside L1, L2 and SOC_CTRL (event unit, DMA, ITA, unmapped) is logged:
  ``periph_writes`` counts them, the first :data:`LOG_WORDS` addresses and values are in
  ``log_addr.mem`` and ``log_data.mem``, so tests check what drivers write to registers.
"""

from pathlib import Path

from amaranth import ClockSignal, Module, Mux, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cluster_integration import memory_map as mm
from cluster_integration.core import Cv32e40p
from ita.cluster_config import DEFAULT

__all__ = ["CoreTestTop", "STDOUT_WORDS", "LOG_WORDS", "RAM_SV"]

#: The SystemVerilog model behind :class:`TestRam` (dual-port, byte-enabled).
RAM_SV = Path(__file__).resolve().parent / "tb_ram.sv"

#: Characters kept by the stdout buffer; later ones are counted but dropped.
STDOUT_WORDS = 8192
#: Peripheral writes kept by the write log; later ones are counted but dropped.
LOG_WORDS = 1024


def _offset(registers, name):
    return next(r.offset for r in registers if r.name == name)


def _log2(n):
    if n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


class TestRam:
    """An instance of ``core_tb_ram`` and the signals driving it."""

    def __init__(self, words):
        self.bits = _log2(words)
        self.a_req, self.a_addr = Signal(), Signal(self.bits)
        self.b_req, self.b_we, self.b_be = Signal(), Signal(), Signal(4)
        self.b_addr, self.b_wdata = Signal(self.bits), Signal(32)
        self.a_rdata, self.b_rdata = Signal(32), Signal(32)

    def instance(self):
        return Instance("core_tb_ram", p_ADDR_BITS=self.bits,
                        i_clk_i=ClockSignal("sync"),
                        i_a_req_i=self.a_req, i_a_addr_i=self.a_addr, o_a_rdata_o=self.a_rdata,
                        i_b_req_i=self.b_req, i_b_we_i=self.b_we, i_b_be_i=self.b_be,
                        i_b_addr_i=self.b_addr, i_b_wdata_i=self.b_wdata,
                        o_b_rdata_o=self.b_rdata)


class CoreTestTop(wiring.Component):
    """One core, its memories and stub peripherals (see the module docstring).

    Members
    -------
    fetch_enable: ``In(1)``
        Let the core start.
    done: ``Out(1)``
        The program exited or reported a trap (sticky).
    exit_valid, exit_code: ``Out(1)``, ``Out(32)``
        The value written to SOC_CTRL EXIT.
    trap_valid, trap_cause, trap_pc: ``Out(1)``, ``Out(32)``, ``Out(32)``
        The mcause / mepc reported through SOC_CTRL TRAP and TRAP_PC.
    stdout_count: ``Out(32)``
        Characters written to PUTCHAR; the first :data:`STDOUT_WORDS` are in ``stdout.mem``.
    periph_writes: ``Out(32)``
        Writes outside L1, L2 and SOC_CTRL; the first :data:`LOG_WORDS` are in
        ``log_addr.mem`` / ``log_data.mem``.
    done_cycles: ``Out(32)``
        Cycles from reset to ``done``.
    sleeping: ``Out(1)``
        The core sleeps (WFI).
    """

    fetch_enable: In(1)
    done: Out(1)
    exit_valid: Out(1)
    exit_code: Out(32)
    trap_valid: Out(1)
    trap_cause: Out(32)
    trap_pc: Out(32)
    stdout_count: Out(32)
    periph_writes: Out(32)
    done_cycles: Out(32)
    sleeping: Out(1)

    def __init__(self, *, hart_id=0, cluster=DEFAULT):
        self._hart_id, self._cluster = hart_id, cluster
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        c = self._cluster
        m.submodules.core = core = Cv32e40p(hart_id=self._hart_id, boot_address=c.boot_address,
                                            trap_vector=c.trap_vector)
        l1, l2 = c.region("L1"), c.region("L2")
        eu, soc = c.region("EVENT_UNIT"), c.region("SOC_CTRL")
        rams = {"l1": TestRam(l1.size // 4), "l2": TestRam(l2.size // 4),
                "stdout": TestRam(STDOUT_WORDS), "log_addr": TestRam(LOG_WORDS),
                "log_data": TestRam(LOG_WORDS)}
        for name, ram in rams.items():
            m.submodules[name] = ram.instance()
        ram_l1, ram_l2, ram_out = rams["l1"], rams["l2"], rams["stdout"]

        cycle = Signal(64)
        m.d.sync += cycle.eq(cycle + 1)
        m.d.comb += [core.fetch_enable.eq(self.fetch_enable), self.sleeping.eq(core.sleeping)]

        def inside(region, address):
            return (address >= region.base) & (address < region.end)

        def word(region, address):
            return (address - region.base)[2:2 + _log2(region.size // 4)]

        # Instruction port: L2 only, zero wait.
        instr = core.instr
        fetch_l2 = Signal()
        m.d.comb += [instr.gnt.eq(1), ram_l2.a_req.eq(instr.req & inside(l2, instr.addr)),
                     ram_l2.a_addr.eq(word(l2, instr.addr))]
        m.d.sync += [instr.r_valid.eq(instr.req), fetch_l2.eq(ram_l2.a_req)]
        m.d.comb += instr.r_data.eq(Mux(fetch_l2, ram_l2.a_rdata, 0))

        # Data port: decode, zero wait.
        data = core.data
        m.d.comb += data.gnt.eq(1)
        for ram, region in ((ram_l1, l1), (ram_l2, l2)):
            m.d.comb += [ram.b_req.eq(data.req & inside(region, data.addr)),
                         ram.b_we.eq(data.we), ram.b_be.eq(data.be),
                         ram.b_addr.eq(word(region, data.addr)), ram.b_wdata.eq(data.wdata)]

        read_l1, read_l2 = Signal(), Signal()
        periph_rdata = Signal(32)
        m.d.sync += [data.r_valid.eq(data.req),
                     read_l1.eq(ram_l1.b_req & ~data.we), read_l2.eq(ram_l2.b_req & ~data.we),
                     periph_rdata.eq(0)]
        m.d.comb += data.r_data.eq(Mux(read_l1, ram_l1.b_rdata, 0)
                                   | Mux(read_l2, ram_l2.b_rdata, 0) | periph_rdata)

        def at(region, registers, name):
            return data.req & (data.addr == region.base + _offset(registers, name))

        reading = data.req & ~data.we
        writing = data.req & data.we

        # Stub event unit: one core, so every barrier completes at once.
        generation = Signal(32)
        with m.If(reading & at(eu, mm.EVENT_UNIT, "CORE_ID")):
            m.d.sync += periph_rdata.eq(self._hart_id & 0x1F)
        with m.If(reading & at(eu, mm.EVENT_UNIT, "BARRIER")):
            m.d.sync += [periph_rdata.eq(generation + 1), generation.eq(generation + 1)]
        with m.If(reading & at(eu, mm.EVENT_UNIT, "BARRIER_COUNT")):
            m.d.sync += periph_rdata.eq(1)

        # SOC_CTRL.
        cycles_hi = Signal(32)
        with m.If(reading & at(soc, mm.SOC_CTRL, "CYCLES")):
            m.d.sync += [periph_rdata.eq(cycle[:32]), cycles_hi.eq(cycle[32:])]
        with m.If(reading & at(soc, mm.SOC_CTRL, "CYCLES_HI")):
            m.d.sync += periph_rdata.eq(cycles_hi)

        putchar = writing & at(soc, mm.SOC_CTRL, "PUTCHAR")
        m.d.comb += [ram_out.b_req.eq(putchar & (self.stdout_count < STDOUT_WORDS)),
                     ram_out.b_we.eq(1), ram_out.b_be.eq(0b0001),
                     ram_out.b_addr.eq(self.stdout_count), ram_out.b_wdata.eq(data.wdata[:8])]
        with m.If(putchar):
            m.d.sync += self.stdout_count.eq(self.stdout_count + 1)

        # Write log of everything that is not memory or SOC_CTRL.
        logged = writing & ~inside(l1, data.addr) & ~inside(l2, data.addr) & ~inside(soc, data.addr)
        for name, value in (("log_addr", data.addr), ("log_data", data.wdata)):
            ram = rams[name]
            m.d.comb += [ram.b_req.eq(logged & (self.periph_writes < LOG_WORDS)),
                         ram.b_we.eq(1), ram.b_be.eq(0b1111),
                         ram.b_addr.eq(self.periph_writes), ram.b_wdata.eq(value)]
        with m.If(logged):
            m.d.sync += self.periph_writes.eq(self.periph_writes + 1)

        finish = Signal()
        with m.If(writing & at(soc, mm.SOC_CTRL, "EXIT") & ~self.done):
            m.d.sync += [self.exit_valid.eq(1), self.exit_code.eq(data.wdata)]
            m.d.comb += finish.eq(1)
        with m.If(writing & at(soc, mm.SOC_CTRL, "TRAP") & ~self.done):
            m.d.sync += self.trap_cause.eq(data.wdata)
        with m.If(writing & at(soc, mm.SOC_CTRL, "TRAP_PC") & ~self.done):
            m.d.sync += [self.trap_valid.eq(1), self.trap_pc.eq(data.wdata)]
            m.d.comb += finish.eq(1)
        with m.If(finish):
            m.d.sync += [self.done.eq(1), self.done_cycles.eq(cycle[:32] + 1)]
        return m
