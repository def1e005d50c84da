"""A TCDM (HWPE-Mem) memory slave agent with random grant delays, and a protocol monitor.

Protocol (``docs/cluster-protocols.md`` section 1):

* master -> slave: ``req``, ``add`` (byte address), ``we``, ``be``, ``data``; slave -> master:
  ``gnt``, ``r_valid``, ``r_data``;
* a transaction is accepted in the cycle where ``req && gnt``;
* once raised, ``req`` stays high and the payload stays stable until the grant;
* ``r_valid``/``r_data`` arrive exactly one cycle after a read is granted (PULP slaves also pulse
  ``r_valid`` after writes; masters must not rely on it either way).

Our internal convention is ``we = 1`` for a write. HWPE/HCI buses use ``wen`` with the opposite
polarity (1 = read): pass ``write_level=0`` (and the signal name) to :class:`TcdmBus`.

The :class:`TcdmSlaveDriver` serves requests from a sparse word memory and withholds ``gnt``
according to a :mod:`stall profile <verif.uvm.stall>` (``gnt`` does not depend on ``req``
combinationally, which the protocol allows). The :class:`TcdmMonitor` publishes every
transaction and checks the rules above on any TCDM link, whoever the slave is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from pyuvm import uvm_agent, uvm_analysis_port, uvm_component

from .clocking import CycleLoop
from .stall import NoStall, StallProfile

__all__ = ["TcdmBus", "TcdmAgentConfig", "TcdmTransaction", "SparseMemory", "TcdmSlaveDriver",
           "TcdmMonitor", "TcdmSlaveAgent"]


@dataclass(frozen=True)
class TcdmBus:
    """Handles of one TCDM port (names from :meth:`from_prefix`)."""

    req: object
    add: object
    we: object
    be: object
    data: object
    gnt: object
    r_valid: object
    r_data: object
    write_level: int = 1  #: value of ``we`` that means write (0 for HWPE ``wen``)
    name: str = "tcdm"

    @classmethod
    def from_prefix(cls, dut, prefix: str, sep: str = "__", *, we: str = "we",
                    write_level: int = 1) -> TcdmBus:
        def sig(name):
            return getattr(dut, f"{prefix}{sep}{name}")
        return cls(sig("req"), sig("add"), sig(we), sig("be"), sig("data"), sig("gnt"),
                   sig("r_valid"), sig("r_data"), write_level, prefix)


@dataclass
class TcdmAgentConfig:
    bus: TcdmBus
    clk: object
    profile: StallProfile = field(default_factory=NoStall)  #: cycles without grant
    data_bytes: int = 4
    write_response: bool = False  #: also pulse r_valid after writes (PULP-style)
    passive: bool = False  #: monitor only (the link is served by RTL)
    #: The memory behind the driver: anything with ``read(addr)`` and ``write(addr, data, be)``
    #: (None: a :class:`SparseMemory` of ``data_bytes`` words).
    memory: object | None = None


class TcdmTransaction(NamedTuple):
    addr: int
    write: bool
    be: int
    wdata: int
    rdata: int | None  #: read data (None for writes)
    wait: int          #: cycles ``req`` waited for ``gnt``
    cycle: int         #: cycle of the grant


class SparseMemory:
    """Word memory with byte enables; unwritten words read as ``default``."""

    def __init__(self, data_bytes: int = 4, default: int = 0):
        self.data_bytes = data_bytes
        self.words: dict[int, int] = {}
        self.default = default

    def read(self, addr: int) -> int:
        return self.words.get(addr // self.data_bytes, self.default)

    def write(self, addr: int, data: int, be: int) -> None:
        index = addr // self.data_bytes
        word = self.words.get(index, self.default)
        for byte in range(self.data_bytes):
            if be >> byte & 1:
                mask = 0xFF << (8 * byte)
                word = (word & ~mask) | (data & mask)
        self.words[index] = word


class TcdmSlaveDriver(uvm_component):
    """Grants requests after random delays and answers reads one cycle after the grant."""

    def build_phase(self):
        self.cfg: TcdmAgentConfig = self.get_parent().cfg
        self.bus = self.cfg.bus
        self.memory = self.cfg.memory if self.cfg.memory is not None else \
            SparseMemory(self.cfg.data_bytes)
        self._gnt = None
        self._response = None  # (r_valid, r_data) to drive in the next cycle
        self._r_valid = None
        self.granted = 0

    def start_of_simulation_phase(self):
        self.bus.gnt.value = 0
        self.bus.r_valid.value = 0
        self._gnt, self._r_valid = False, False
        CycleLoop.of(self.cfg.clk).add(self._drive, self._sample)

    def _drive(self) -> None:
        bus = self.bus
        gnt = not self.cfg.profile.stall()
        if gnt is not self._gnt:
            bus.gnt.value = int(gnt)
            self._gnt = gnt
        response, self._response = self._response, None
        if response is not None:
            bus.r_data.value = response
        r_valid = response is not None
        if r_valid is not self._r_valid:
            bus.r_valid.value = int(r_valid)
            self._r_valid = r_valid

    def _sample(self) -> None:
        bus = self.bus
        if not (self._gnt and bus.req.value):
            return
        addr = int(bus.add.value)
        self.granted += 1
        if int(bus.we.value) == bus.write_level:
            self.memory.write(addr, int(bus.data.value), int(bus.be.value))
            if self.cfg.write_response:
                self._response = 0
        else:
            self._response = self.memory.read(addr)


class TcdmMonitor(uvm_component):
    """Publishes :class:`TcdmTransaction` items and checks the handshake rules.

    ``errors`` lists violations: ``req`` dropped or payload changed before the grant, a read
    response missing one cycle after its grant, an ``r_valid`` without a granted request.
    """

    def build_phase(self):
        self.cfg: TcdmAgentConfig = self.get_parent().cfg
        self.ap = uvm_analysis_port("ap", self)
        self.errors: list[str] = []
        self.transactions = 0
        self.max_wait = 0
        self._waiting = None   # payload of a request not granted yet
        self._wait = 0
        self._expect = None    # transaction granted in the previous cycle
        self.loop = CycleLoop.of(self.cfg.clk)
        #: Until this cycle a request may be withdrawn before its grant (a clear that aborts
        #: the master); set by the test around such an event.
        self.excuse_until = -1

    def start_of_simulation_phase(self):
        self.loop.add(sample=self._sample)

    def _sample(self) -> None:
        bus = self.cfg.bus
        expect, self._expect = self._expect, None
        r_valid = bool(bus.r_valid.value)
        if expect is not None:
            if not expect.write:
                if not r_valid:
                    self._error(f"no r_valid one cycle after the read grant at "
                                f"0x{expect.addr:x}")
                    self.ap.write(expect)
                else:
                    self.ap.write(expect._replace(rdata=int(bus.r_data.value)))
            elif not (r_valid and self.cfg.write_response):
                self.ap.write(expect)
                if r_valid:
                    self._error("r_valid after a write (write responses are off)")
            else:
                self.ap.write(expect)
        elif r_valid:
            self._error("r_valid without a request granted in the previous cycle")

        req = bool(bus.req.value)
        if not req:
            if self._waiting is not None and self.loop.cycle > self.excuse_until:
                self._error(f"req dropped before the grant (addr 0x{self._waiting[0]:x}, "
                            f"after {self._wait} cycles)")
            self._waiting, self._wait = None, 0
            return
        write = int(bus.we.value) == bus.write_level
        payload = (int(bus.add.value), write, int(bus.be.value),
                   int(bus.data.value) if write else 0)
        if self._waiting is not None and payload != self._waiting and \
                self.loop.cycle > self.excuse_until:
            self._error(f"request changed before the grant: {self._fmt(self._waiting)} -> "
                        f"{self._fmt(payload)}")
        if bus.gnt.value:
            self._expect = TcdmTransaction(*payload, None, self._wait, self.loop.cycle)
            self.transactions += 1
            self.max_wait = max(self.max_wait, self._wait)
            self._waiting, self._wait = None, 0
        else:
            self._waiting = payload
            self._wait += 1

    @staticmethod
    def _fmt(payload):
        addr, write, be, data = payload
        return f"{'W' if write else 'R'} 0x{addr:x} be={be:x} data=0x{data:x}"

    def _error(self, message: str) -> None:
        text = f"{self.cfg.bus.name}: cycle {self.loop.cycle}: {message}"
        if len(self.errors) < 20:
            self.logger.error(text)
        self.errors.append(text)


class TcdmSlaveAgent(uvm_agent):
    """Slave driver (memory model + random grants) and protocol monitor for one TCDM port.

    With ``cfg.passive`` only the monitor is built.
    """

    def build_phase(self):
        self.cfg: TcdmAgentConfig = self.cdb_get("cfg")
        self.monitor = TcdmMonitor("monitor", self)
        self.driver = None if self.cfg.passive else TcdmSlaveDriver("driver", self)

    @property
    def memory(self) -> SparseMemory:
        return self.driver.memory

    def check_phase(self):
        assert not self.monitor.errors, (f"{len(self.monitor.errors)} TCDM protocol errors; "
                                         f"first: {self.monitor.errors[0]}")
