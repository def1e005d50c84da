"""L2 memory: code, data and weights, with a private instruction port per core."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .protocols import TcdmSignature

__all__ = ["L2Memory"]


class L2Memory(wiring.Component):
    """Word-wide L2 with ``fetch_ports`` read-only instruction ports and one data port.

    Instruction fetch path: every core reads instructions through its own zero-wait port
    (granted at once, data one cycle later), which stands in for the per-core instruction
    caches of a PULP cluster: cores never contend for instructions. Data accesses of all
    cores and the DMA share the single ``data`` port (arbitrated outside).

    The storage is the memory ``storage`` of this module, one 32-bit word per entry, so a
    testbench can load programs through it (backdoor) before the cores start.

    Members
    -------
    fetch0 .. fetch{n-1} : In(TcdmSignature(32)) -- reads only
    data : In(TcdmSignature(32))
    """

    def __init__(self, *, size, base, fetch_ports):
        if size % 4:
            raise ValueError("L2 size must be a whole number of words")
        self._size, self._base, self._ports = size, base, fetch_ports
        members = {f"fetch{i}": In(TcdmSignature(data_width=32)) for i in range(fetch_ports)}
        members["data"] = In(TcdmSignature(data_width=32))
        super().__init__(members)

    @property
    def depth(self):
        return self._size // 4

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = Memory(shape=32, depth=self.depth, init=[])
        index_bits = (self.depth - 1).bit_length()

        def word_index(address):
            return ((address - self._base) >> 2)[:index_bits]

        for i in range(self._ports):
            port = getattr(self, f"fetch{i}")
            read = storage.read_port()
            m.d.comb += [port.gnt.eq(port.req), read.addr.eq(word_index(port.addr)),
                         port.r_data.eq(read.data)]
            m.d.sync += port.r_valid.eq(port.req)

        data = self.data
        read = storage.read_port()
        write = storage.write_port(granularity=8)
        m.d.comb += [
            data.gnt.eq(data.req),
            read.addr.eq(word_index(data.addr)),
            write.addr.eq(word_index(data.addr)),
            write.data.eq(data.wdata),
            write.en.eq(data.be & (data.req & data.we).replicate(4)),
            data.r_data.eq(read.data),
        ]
        m.d.sync += data.r_valid.eq(data.req)
        return m
