"""An on-board self-test of the engine: one stored job, checked beat by beat.

:class:`SelfTest` holds the engine, a ROM per stream with the job's beats in streaming order
(input, weight, bias and the golden model's expected output beats, from
:func:`ita.rtl.job.stream_plans`), a sequencer that starts the job and feeds the
streams, a comparator on the output, a watchdog, and a UART transmitter that reports the
verdict. It has no inputs besides the clock and reset: after reset it runs the job once,
then holds ``passed`` or ``failed`` and prints ``ITA self-test PASS`` (or ``FAIL``) every
``repeat_cycles``. ``hw/board.py`` puts it on a board (LEDs and the USB UART).

The stored job is a linear layer (every operand is an input, so the ROMs are enough: no
output is read back as an operand) of 2 x 2 x 2 tiles with a bias and the i-GELU, drawn
with a fixed seed: it exercises the dot products, the accumulator across inner tiles, the
bias path, requantization and the activation.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.engine import Engine
from ita.rtl.job import job_from_vectors, pack_bias, pack_fields, pack_int8, stream_plans
from ita.rtl.layouts import engine_config_layout

__all__ = ["SelfTest", "StoredJob", "stored_job", "UartTx", "MESSAGES"]

SEED = 2024
MESSAGES = {True: b"ITA self-test PASS\r\n", False: b"ITA self-test FAIL\r\n"}


class StoredJob:
    """The ROM contents of one job: configuration word and the beats of every stream."""

    def __init__(self, job, memory, config: ITAConfig):
        plans = stream_plans(job, config)
        produced = set(memory.written)
        for name in ("input", "weight"):
            for beat in plans[name]:
                if beat[1] in produced:
                    raise ValueError(f"the {name} stream reads {beat[1]!r}, an output of the "
                                     "job itself; a stored job must only read inputs")
        self.config = config
        self.job = job
        self.config_word = pack_fields(engine_config_layout(config), job.config_fields())
        self.input = [pack_int8(memory.read(t, r, c, config.M)) for _, t, r, c in plans["input"]]
        self.weight = [pack_int8(memory.read(t, r, c, config.M))
                       for _, t, r, c in plans["weight"]]
        self.bias = [pack_bias(memory.read_vector(t, s, config.N), config.bias_width)
                     for _, t, s in plans["bias"]]
        self.output = [pack_int8(memory.expected[t][r, c:c + config.N])
                       for _, t, r, c in plans["output"]]

    def cycles(self):
        """A generous bound on the job's run time (the watchdog's limit)."""
        beats = max(len(self.input), len(self.weight), len(self.output))
        return 8 * beats + 1000


def stored_job(config: ITAConfig, *, tiles=2, seed=SEED, activation="gelu"):
    """The self-test's job: a linear layer of ``tiles`` tiles in every dimension."""

    size = tiles * config.M
    shape = LayerShape(S=size, E=size, P=size, F=size, activation=activation)
    job, memory = job_from_vectors("linear", generate(shape, seed=seed, config=config),
                                   config=config)
    return StoredJob(job, memory, config)


class UartTx(wiring.Component):
    """8N1 transmitter: ``data`` is taken when ``valid`` and ``ready``; ``divisor`` clocks
    per bit."""

    def __init__(self, divisor):
        if divisor < 2:
            raise ValueError("the UART divisor must be at least 2")
        self._divisor = divisor
        super().__init__({"data": wiring.In(8), "valid": wiring.In(1), "ready": Out(1),
                          "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10)
        bits = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += self.ready.eq(bits == 0)
        with m.If(bits == 0):
            with m.If(self.valid):
                m.d.sync += [shift.eq(_frame(self.data)), bits.eq(10),
                             timer.eq(self._divisor - 1), self.tx.eq(0)]
        with m.Elif(timer == 0):
            m.d.sync += [timer.eq(self._divisor - 1), bits.eq(bits - 1),
                         shift.eq(shift >> 1), self.tx.eq(Mux(bits == 1, 1, shift[1]))]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


def _frame(byte):
    """Start bit (0), the byte LSB first, stop bit (1): the 10 bits of an 8N1 frame."""
    return Cat(Const(0, 1), byte, Const(1, 1))


class SelfTest(wiring.Component):
    """Runs :class:`StoredJob` ``stored`` on an engine and reports the verdict.

    Parameters
    ----------
    stored:
        The job (:func:`stored_job`); ``stored.config`` sizes the engine.
    uart_divisor:
        Clock cycles per UART bit (25 MHz / 115200 baud = 217).
    repeat_cycles:
        Cycles between repetitions of the message (0: print it once).
    engine:
        The engine instance (default: a new :class:`~ita.rtl.engine.Engine`); tests pass a
        faulty one.

    Members
    -------
    running, passed, failed : Out(1)
    mismatches : Out(16) -- output beats that differed from the stored ones (saturating)
    beats : Out(16) -- output beats received
    tx : Out(1) -- UART line, idle high
    """

    def __init__(self, stored: StoredJob, *, uart_divisor=217, repeat_cycles=1 << 24,
                 engine=None):
        self._stored = stored
        self._divisor = uart_divisor
        self._repeat = repeat_cycles
        self._engine = engine
        super().__init__({"running": Out(1), "passed": Out(1), "failed": Out(1),
                          "mismatches": Out(16), "beats": Out(16), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        stored, cfg = self._stored, self._stored.config
        m.submodules.engine = engine = self._engine or Engine(config=cfg)
        start = Signal()
        m.d.comb += [engine.config.as_value().eq(stored.config_word), engine.start.eq(start)]

        for name in ("input", "weight", "bias"):
            words = getattr(stored, name)
            port = getattr(engine, name)
            self._source(m, name, words, port, self.running)

        # --- comparator ------------------------------------------------------------------
        expected = stored.output
        m.submodules.expected_rom = rom = Memory(
            shape=unsigned(len(engine.output.payload.as_value())), depth=max(len(expected), 1),
            init=expected)
        read = rom.read_port()
        count = Signal(range(len(expected) + 2))
        take = engine.output.valid & engine.output.ready
        m.d.comb += [engine.output.ready.eq(self.running),
                     read.addr.eq(count + take), self.beats.eq(count)]
        with m.If(take):
            m.d.sync += count.eq(Mux(count > len(expected), count, count + 1))
            bad = (count >= len(expected)) | (engine.output.payload.as_value() != read.data)
            with m.If(bad & (self.mismatches != 0xFFFF)):
                m.d.sync += self.mismatches.eq(self.mismatches + 1)

        # --- sequencer -------------------------------------------------------------------
        watchdog = Signal(range(stored.cycles() + 1))
        verdict = Signal()
        with m.FSM():
            with m.State("WAIT"):  # a few cycles for the ROM read ports to settle
                settle = Signal(range(8))
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == 7):
                    m.next = "START"
            with m.State("START"):
                m.d.comb += start.eq(1)
                m.d.sync += self.running.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += watchdog.eq(watchdog + 1)
                with m.If(engine.done | (watchdog == stored.cycles())):
                    m.d.sync += self.running.eq(0)
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += verdict.eq(~engine.error & (self.mismatches == 0)
                                       & (count == len(expected))
                                       & (watchdog != stored.cycles()))
                m.d.sync += [self.passed.eq(verdict), self.failed.eq(~verdict)]
                m.next = "REPORT"
            with m.State("REPORT"):
                pass

        self._reporter(m)
        return m

    @staticmethod
    def _source(m, name, words, port, enable):
        """Present ROM ``words`` on stream ``port``, one after the other, while ``enable``."""
        width = len(port.payload.as_value())
        rom = Memory(shape=unsigned(width), depth=max(len(words), 1), init=words)
        m.submodules[f"{name}_rom"] = rom
        read = rom.read_port()
        index = Signal(range(len(words) + 1), name=f"{name}_index")
        fire = port.valid & port.ready
        # The read port is addressed with the next index, so its data is always words[index].
        m.d.comb += [read.addr.eq(index + fire),
                     port.valid.eq(enable & (index < len(words))),
                     port.payload.as_value().eq(read.data)]
        m.d.sync += index.eq(index + fire)

    def _reporter(self, m):
        """Send MESSAGES[verdict] over the UART once the verdict is known (and repeat)."""
        m.submodules.uart = uart = UartTx(self._divisor)
        m.d.comb += self.tx.eq(uart.tx)
        texts = MESSAGES[True] + MESSAGES[False]
        m.submodules.text_rom = rom = Memory(shape=unsigned(8), depth=len(texts),
                                             init=list(texts))
        read = rom.read_port(domain="comb")
        length = len(MESSAGES[True])
        assert len(MESSAGES[False]) == length
        pos = Signal(range(length + 1))
        wait = Signal(range(max(self._repeat, 1) + 1))
        m.d.comb += [read.addr.eq(Mux(self.passed, 0, length) + pos), uart.data.eq(read.data)]
        decided = self.passed | self.failed
        with m.If(decided & (pos < length)):
            m.d.comb += uart.valid.eq(1)
            with m.If(uart.ready):
                m.d.sync += pos.eq(pos + 1)
        with m.Elif(decided & (self._repeat > 0)):
            m.d.sync += wait.eq(wait + 1)
            with m.If(wait == self._repeat):
                m.d.sync += [wait.eq(0), pos.eq(0)]
