"""Double buffer that lets a stream refill one bank while the consumer uses the other."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PingPongBuffer"]


class PingPongBuffer(wiring.Component):
    """Two banks of ``beats`` stream beats; the producer fills one while the other is read.

    The consumer sees ``ready`` when its current bank (``current``) is full, reads any bank
    through ``banks`` and hands the bank back with ``release``. A released bank becomes
    writable in the next cycle, so its contents stay readable for one more cycle: the
    engine captures ``current`` when it issues a beat and reads the bank one cycle later.

    Members
    -------
    fill : In(stream.Signature(beat_shape))
    ready : Out(1)
    current : Out(1)
    banks : Out(ArrayLayout(ArrayLayout(beat_shape, beats), 2))
    release : In(1)
    """

    def __init__(self, *, beat_shape, beats):
        if beats < 1:
            raise ValueError(f"a bank needs at least one beat, got {beats}")
        self._beats = beats
        super().__init__({
            "fill": In(stream.Signature(beat_shape)),
            "ready": Out(1),
            "current": Out(1),
            "banks": Out(data.ArrayLayout(data.ArrayLayout(beat_shape, beats), 2)),
            "release": In(1),
        })

    @property
    def beats(self):
        return self._beats

    def elaborate(self, platform):
        m = Module()
        full = Signal(2)
        fill_bank = Signal()
        fill_count = Signal(range(self.beats))

        m.d.comb += [
            self.fill.ready.eq(~full.bit_select(fill_bank, 1)),
            self.ready.eq(full.bit_select(self.current, 1)),
        ]
        with m.If(self.fill.valid & self.fill.ready):
            for bank in range(2):
                for beat in range(self.beats):
                    with m.If((fill_bank == bank) & (fill_count == beat)):
                        m.d.sync += self.banks[bank][beat].eq(self.fill.payload)
            with m.If(fill_count == self.beats - 1):
                m.d.sync += [
                    fill_count.eq(0),
                    fill_bank.eq(~fill_bank),
                    full.bit_select(fill_bank, 1).eq(1),
                ]
            with m.Else():
                m.d.sync += fill_count.eq(fill_count + 1)
        with m.If(self.release & self.ready):
            m.d.sync += [
                self.current.eq(~self.current),
                full.bit_select(self.current, 1).eq(0),
            ]
        return m
