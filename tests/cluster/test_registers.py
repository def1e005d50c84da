# amaranth: UnusedElaboratable=no
"""The shared register-block helpers: description types, decoding, byte-enable merges and the
read multiplexer, on a small slave built only from them."""

import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from cluster_integration.protocols import TcdmSignature
from cluster_integration.registers import (
    BYTE_OFFSET_BITS,
    WORD_BITS,
    WORD_BYTES,
    Field,
    Register,
    RegisterDecoder,
    field_bits,
    field_value,
    read_mux,
    region_window_bits,
    window_bits,
)

from .bus_master import access

LOW = Field("low", 0, 12, "an unsigned field")
HIGH = Field("high", 16, 8, "a signed field", signed=True)
PAIR = Register("PAIR", 0x00, "rw", "two fields, merged per byte", (LOW, HIGH))
WORD = Register("WORD", 0x04, "rw", "one whole word", (Field("value", 0, 32, "value"),))
COUNT = Register("COUNT", 0x0C, "r", "reads the writes to PAIR so far",
                 (Field("writes", 0, 8, "writes"),), values=(("NONE", 0),))
GO = Register("GO", 0x10, "w", "write-only")
REGISTERS = (PAIR, WORD, COUNT, GO)
#: The slave decodes this window, so addresses repeat every 2**WINDOW words.
WINDOW = window_bits(REGISTERS)


class _Slave(wiring.Component):
    """A register slave made of the shared helpers alone; ``high`` shows PAIR.high signed."""

    def __init__(self):
        super().__init__({"bus": In(TcdmSignature(data_width=WORD_BITS)),
                          "high": Out(signed(HIGH.width)), "go": Out(1)})

    def elaborate(self, platform):
        m = Module()
        decoder = RegisterDecoder(self.bus, WINDOW)
        low, high = Signal(LOW.width), Signal(HIGH.width)
        word, writes = Signal(WORD_BITS), Signal(COUNT.field().width)
        with m.If(decoder.writes(PAIR)):
            m.d.sync += [low.eq(decoder.merged(low, LOW)), high.eq(decoder.merged(high, HIGH)),
                         writes.eq(writes + 1)]
        with m.If(decoder.writes(WORD)):
            m.d.sync += word.eq(decoder.merged(word))
        m.d.sync += self.go.eq(decoder.writes(GO))
        pair = Signal(WORD_BITS)   # PAIR as a word, assembled through assignable slices
        m.d.comb += [field_bits(pair, LOW).eq(low), field_bits(pair, HIGH).eq(high),
                     self.bus.gnt.eq(self.bus.req), self.high.eq(field_value(pair, HIGH))]
        value = read_mux(m, decoder.word, {PAIR: {LOW: low, HIGH: high}, WORD: word,
                                           COUNT: {COUNT.field(): writes}})
        m.d.sync += [self.bus.r_valid.eq(self.bus.req),
                     self.bus.r_data.eq(Mux(decoder.reads(PAIR) | decoder.reads(WORD)
                                            | decoder.reads(COUNT), value, 0))]
        return m


def simulate(body):
    dut = _Slave()

    async def bench(ctx):
        async def write(register, data, be=0xF, alias=0):
            address = register.offset + alias * (WORD_BYTES << WINDOW)
            await access(ctx, dut.bus, address, write=True, data=data, be=be)

        async def read(register, alias=0):
            address = register.offset + alias * (WORD_BYTES << WINDOW)
            return (await access(ctx, dut.bus, address))[0]

        await body(ctx, dut, write, read)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_description_helpers():
    assert (PAIR.word, WORD.word, COUNT.word, GO.word) == (0, 1, 3, 4)
    assert WINDOW == 3 and BYTE_OFFSET_BITS == 2
    assert region_window_bits(0x400) == 8 and region_window_bits(WORD_BYTES) == 0
    assert PAIR.mask == LOW.mask | HIGH.mask == 0x00FF_0FFF
    assert GO.mask == 0
    assert PAIR.field("high") is HIGH and WORD.field().name == "value"
    assert COUNT.value("NONE") == 0
    with pytest.raises(KeyError, match="PAIR has no field 'middle'"):
        PAIR.field("middle")
    with pytest.raises(ValueError):
        PAIR.field()  # two fields: a name is needed
    with pytest.raises(KeyError):
        COUNT.value("ALL")


def test_field_slices():
    value = Signal(WORD_BITS)
    assert len(field_bits(value, HIGH)) == HIGH.width
    assert field_value(value, HIGH).shape().signed
    assert not field_value(value, LOW).shape().signed


def test_merged_writes_honour_byte_enables_and_fields():
    async def body(ctx, dut, write, read):
        await write(PAIR, 0xFFFF_FFFF)
        assert await read(PAIR) == PAIR.mask          # bits outside the fields read 0
        assert ctx.get(dut.high) == -1                 # the signed view of PAIR.high
        await write(PAIR, 0x0012_0345, be=0b0001)      # low byte only
        assert await read(PAIR) == 0x00FF_0F45
        await write(PAIR, 0x0012_0345, be=0b0110)      # bytes 1 and 2: low's top, all of high
        assert await read(PAIR) == 0x0012_0345
        assert ctx.get(dut.high) == 0x12
        await write(WORD, 0xDEAD_BEEF, be=0b1010)
        assert await read(WORD) == 0xDE00_BE00
        assert await read(COUNT) == 3

    simulate(body)


def test_decoding_window_repeats_and_write_only_reads_zero():
    async def body(ctx, dut, write, read):
        await write(WORD, 0x1234_5678, alias=5)       # the window repeats above its bits
        assert await read(WORD) == 0x1234_5678
        assert await read(WORD, alias=2) == 0x1234_5678
        assert await read(GO) == 0                    # not in the read multiplexer
        await write(GO, 1)
        assert ctx.get(dut.go) == 1
        await ctx.tick()
        assert ctx.get(dut.go) == 0
        assert await read(COUNT) == 0                 # WORD and GO writes left PAIR alone

    simulate(body)
