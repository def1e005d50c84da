"""A tiny Amaranth design that the agents' self-tests run against.

Three independent parts in one toplevel (one Verilator build serves all self-tests):

* ``sin`` -> 4-entry FIFO -> ``sout``: a stream loopback whose output payload is the input
  XOR 0xA5A5 (so the check is more than an identity);
* ``cmd`` stream -> a TCDM master port ``tcdm``: one outstanding access, ``req`` registered and
  held until ``gnt``; read data goes out on ``rsp``. ``tcdm_error`` is a sticky flag the design
  raises itself when ``r_valid`` is not exactly one cycle after a read grant. ``tcdm_misbehave``
  makes the master drop ``req`` after one ungranted cycle (a protocol violation, for the
  monitor's negative test);
* a register slave on the peripheral port ``periph``: eight 32-bit registers with byte enables,
  register 7 a read-only ID, grants withheld pseudo-randomly by an LFSR, response (with the
  echoed id) one cycle after the grant. ``periph_late`` delays the response by one more cycle
  (for the master driver's negative test).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AgentSelftest", "ID_VALUE", "XOR_MASK", "TOPLEVEL"]

TOPLEVEL = "uvm_agent_selftest"
ID_VALUE = 0x17A0_0001
XOR_MASK = 0xA5A5

CommandLayout = data.StructLayout({"addr": 16, "we": 1, "be": 4, "data": 32})


def tcdm_signature(addr_width=16):
    return wiring.Signature({
        "req": Out(1), "add": Out(addr_width), "we": Out(1), "be": Out(4), "data": Out(32),
        "gnt": In(1), "r_valid": In(1), "r_data": In(32),
    })


def periph_signature(addr_width=8, id_width=4):
    return wiring.Signature({
        "req": Out(1), "add": Out(addr_width), "we": Out(1), "be": Out(4), "data": Out(32),
        "id": Out(id_width),
        "gnt": In(1), "r_valid": In(1), "r_data": In(32), "r_id": In(id_width),
    })


class AgentSelftest(wiring.Component):
    def __init__(self):
        super().__init__({
            "sin": In(stream.Signature(16)),
            "sout": Out(stream.Signature(16)),
            "cmd": In(stream.Signature(CommandLayout)),
            "rsp": Out(stream.Signature(32)),
            "tcdm": Out(tcdm_signature()),
            "tcdm_error": Out(1),
            "tcdm_misbehave": In(1),
            "periph": In(periph_signature()),
            "periph_late": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        self._stream_loopback(m)
        self._tcdm_master(m)
        self._register_slave(m)
        return m

    def _stream_loopback(self, m):
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=16, depth=4)
        m.d.comb += [
            q.w_data.eq(self.sin.payload ^ XOR_MASK),
            q.w_en.eq(self.sin.valid),
            self.sin.ready.eq(q.w_rdy),
            self.sout.payload.eq(q.r_data),
            self.sout.valid.eq(q.r_rdy),
            q.r_en.eq(self.sout.ready),
        ]

    def _tcdm_master(self, m):
        bus, cmd, rsp = self.tcdm, self.cmd, self.rsp
        held = Signal(CommandLayout)
        rdata = Signal(32)
        wrote = Signal()  # a write was granted in the previous cycle
        m.d.comb += [bus.add.eq(held.addr), bus.we.eq(held.we), bus.be.eq(held.be),
                     bus.data.eq(held.data), rsp.payload.eq(rdata)]
        m.d.sync += wrote.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cmd.ready.eq(1)
                with m.If(bus.r_valid & ~wrote):
                    m.d.sync += self.tcdm_error.eq(1)
                with m.If(cmd.valid):
                    m.d.sync += held.eq(cmd.payload)
                    m.next = "REQ"
            with m.State("REQ"):
                m.d.comb += bus.req.eq(1)
                with m.If(bus.r_valid & ~wrote):
                    m.d.sync += self.tcdm_error.eq(1)
                with m.If(bus.gnt):
                    with m.If(held.we):
                        m.d.sync += wrote.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "WAIT"
                with m.Elif(self.tcdm_misbehave):
                    m.next = "IDLE"  # drops req without a grant: a protocol violation
            with m.State("WAIT"):
                with m.If(bus.r_valid):
                    m.d.sync += rdata.eq(bus.r_data)
                with m.Else():
                    m.d.sync += self.tcdm_error.eq(1)
                m.next = "RSP"
            with m.State("RSP"):
                m.d.comb += rsp.valid.eq(1)
                with m.If(bus.r_valid & ~wrote):
                    m.d.sync += self.tcdm_error.eq(1)
                with m.If(rsp.ready):
                    m.next = "IDLE"

    def _register_slave(self, m):
        bus = self.periph
        regs = [Signal(32, name=f"reg{i}") for i in range(7)]
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        grant = bus.req & (lfsr[0] | lfsr[7])  # about 3 grants in 4 cycles
        m.d.comb += bus.gnt.eq(grant)
        index = bus.add[2:5]
        read_value = Signal(32)
        with m.Switch(index):
            for i, reg in enumerate(regs):
                with m.Case(i):
                    m.d.comb += read_value.eq(reg)
            with m.Default():
                m.d.comb += read_value.eq(Const(ID_VALUE, 32))
        with m.If(grant & bus.we & (index != 7)):
            with m.Switch(index):
                for i, reg in enumerate(regs):
                    with m.Case(i):
                        for byte in range(4):
                            with m.If(bus.be[byte]):
                                m.d.sync += reg[8 * byte:8 * byte + 8].eq(
                                    bus.data[8 * byte:8 * byte + 8])
        # The response one cycle after the grant; with periph_late one cycle later still.
        r_valid, r_data, r_id = Signal(), Signal(32), Signal.like(bus.id)
        late_valid, late_data, late_id = Signal(), Signal(32), Signal.like(bus.id)
        m.d.sync += [r_valid.eq(grant), late_valid.eq(r_valid)]
        with m.If(grant):
            m.d.sync += [r_data.eq(Mux(bus.we, 0, read_value)), r_id.eq(bus.id)]
        m.d.sync += [late_data.eq(r_data), late_id.eq(r_id)]
        m.d.comb += [
            bus.r_valid.eq(Mux(self.periph_late, late_valid, r_valid)),
            bus.r_data.eq(Mux(self.periph_late, late_data, r_data)),
            bus.r_id.eq(Mux(self.periph_late, late_id, r_id)),
        ]
