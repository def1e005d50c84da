"""L2 memory: code, data and weights, with a private instruction port per core."""

from pathlib import Path

from amaranth.hdl import Cat, ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .protocols import TcdmSignature

__all__ = ["L2Memory", "L2_RAM_SOURCE"]

#: The storage array (SystemVerilog: no initialiser per word, loadable through VPI).
L2_RAM_SOURCE = Path(__file__).resolve().parent / "sv" / "cluster_l2_ram.sv"


class L2Memory(wiring.Component):
    """Word-wide L2 with ``fetch_ports`` read-only instruction ports, one data port for the
    cores and one ``dma_width``-bit port for the DMA.

    Instruction fetch path: every core reads instructions through its own zero-wait port
    (granted at once, data one cycle later), which stands in for the per-core instruction
    caches of a PULP cluster: cores never contend for instructions. Data accesses of all
    cores share the single ``data`` port (arbitrated outside). The DMA has a port of its own,
    so a transfer neither waits for the cores nor slows them: an access covers
    ``dma_width / 32`` consecutive words from any word address (lane 0 at ``addr``), granted
    at once; ``be`` selects the bytes written. Of two writes to one byte in one cycle, the
    DMA's lands.

    The storage is the ``mem`` array of the ``ram`` instance (:data:`L2_RAM_SOURCE`), one
    32-bit word per entry, so a testbench loads programs into it before the cores start.

    Members
    -------
    fetch0 .. fetch{n-1} : In(TcdmSignature(32)) -- reads only
    data : In(TcdmSignature(32))
    dma : In(TcdmSignature(dma_width))
    """

    def __init__(self, *, size, base, fetch_ports, dma_width=32):
        words = size // 4
        if size % 4 or words & (words - 1):
            raise ValueError("L2 size must be a power-of-two number of words")
        self._size, self._base, self._ports = size, base, fetch_ports
        members = {f"fetch{i}": In(TcdmSignature(data_width=32)) for i in range(fetch_ports)}
        members["data"] = In(TcdmSignature(data_width=32))
        members["dma"] = In(TcdmSignature(data_width=dma_width))
        self._dma_words = dma_width // 32
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bits = (self._size // 4 - 1).bit_length()

        def word_index(address):
            return ((address - self._base) >> 2)[:bits]

        fetch = [getattr(self, f"fetch{i}") for i in range(self._ports)]
        data, dma = self.data, self.dma
        m.submodules.ram = Instance(
            "cluster_l2_ram", p_ADDR_BITS=bits, p_FETCH_PORTS=self._ports,
            p_DMA_WORDS=self._dma_words,
            i_clk_i=ClockSignal(),
            i_fetch_req_i=Cat(port.req for port in fetch),
            i_fetch_addr_i=Cat(word_index(port.addr) for port in fetch),
            o_fetch_rdata_o=Cat(port.r_data for port in fetch),
            i_data_req_i=data.req, i_data_we_i=data.we, i_data_be_i=data.be,
            i_data_addr_i=word_index(data.addr), i_data_wdata_i=data.wdata,
            o_data_rdata_o=data.r_data,
            i_dma_req_i=dma.req, i_dma_we_i=dma.we, i_dma_be_i=dma.be,
            i_dma_addr_i=word_index(dma.addr), i_dma_wdata_i=dma.wdata,
            o_dma_rdata_o=dma.r_data)
        for port in (*fetch, data, dma):
            m.d.comb += port.gnt.eq(port.req)
            m.d.sync += port.r_valid.eq(port.req)
        return m
