"""Bus signatures of the cluster: TCDM (memory) ports and the peripheral (register) port.

Conventions (``docs/cluster-protocols.md`` section 1): a transaction is accepted in the cycle
where ``req & gnt``; ``gnt`` may depend combinationally on ``req``, never the reverse; a
request and its payload stay stable until granted; the response (``r_valid``, ``r_data``)
comes exactly one cycle after the grant of a read. Inside this project ``we = 1`` means
write (HWPE's ``wen`` has the opposite polarity; convert at any external boundary).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TcdmSignature", "PeriphSignature"]


class TcdmSignature(wiring.Signature):
    """A TCDM master port ``data_width`` bits wide; ``addr`` is a byte address.

    A wide access covers ``data_width / 8`` consecutive bytes from ``addr`` (word aligned);
    ``be`` selects the bytes written, and lane 0 of ``wdata``/``r_data`` is the byte at
    ``addr``.
    """

    def __init__(self, *, data_width=32, addr_width=32):
        if data_width % 32:
            raise ValueError(f"data_width must be a multiple of 32, not {data_width}")
        self.data_width, self.addr_width = data_width, addr_width
        super().__init__({
            "req": Out(1),
            "gnt": In(1),
            "addr": Out(addr_width),
            "we": Out(1),
            "be": Out(data_width // 8),
            "wdata": Out(data_width),
            "r_valid": In(1),
            "r_data": In(data_width),
        })


class PeriphSignature(wiring.Signature):
    """A peripheral master port (cores to a register slave), with the requester's id
    echoed on the response so that the slave can tell cores apart."""

    def __init__(self, *, addr_width=32, id_width=4):
        self.addr_width, self.id_width = addr_width, id_width
        super().__init__({
            "req": Out(1),
            "gnt": In(1),
            "addr": Out(addr_width),
            "we": Out(1),
            "be": Out(4),
            "wdata": Out(32),
            "id": Out(id_width),
            "r_valid": In(1),
            "r_data": In(32),
            "r_id": In(id_width),
        })
