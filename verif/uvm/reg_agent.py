"""A register (HWPE-Periph) master agent: configuration reads and writes from sequences.

Protocol (``docs/cluster-protocols.md`` sections 1.2-1.3): HWPE-Mem plus an ``id``
that the slave echoes as ``r_id``. The master raises ``req`` with ``add``, ``we``, ``be``,
``data`` and ``id`` and holds them until ``gnt``; ``r_valid``, ``r_data`` and ``r_id`` arrive
exactly one cycle after the grant, for writes as well as reads. ``we = 1`` means write
(``write_level=0`` for buses with HWPE's ``wen``).

:class:`RegItem` carries one access; the driver fills in ``rdata``, ``r_id``, ``wait`` and
``latency`` and sets ``item.response`` when the response has arrived. It releases the
sequencer as soon as the request is granted, so a new request can follow in the next cycle
(zero-delay back-to-back) while the previous response is still on its way. Errors (a missing
or late response, a wrong ``r_id``) are collected in ``driver.errors``.

:meth:`RegMasterAgent.write` and :meth:`RegMasterAgent.read` wrap the sequences for tests
that want a register API.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cocotb.triggers import Event
from pyuvm import (
    uvm_agent,
    uvm_analysis_port,
    uvm_driver,
    uvm_sequence,
    uvm_sequence_item,
    uvm_sequencer,
)

from .clocking import CycleLoop

__all__ = ["RegBus", "RegAgentConfig", "RegItem", "RegAccessSeq", "RegMasterDriver",
           "RegMasterAgent"]


@dataclass(frozen=True)
class RegBus:
    req: object
    add: object
    we: object
    be: object
    data: object
    id: object
    gnt: object
    r_valid: object
    r_data: object
    r_id: object
    write_level: int = 1
    name: str = "periph"

    @classmethod
    def from_prefix(cls, dut, prefix: str, sep: str = "__", *, we: str = "we",
                    write_level: int = 1) -> RegBus:
        def sig(name):
            return getattr(dut, f"{prefix}{sep}{name}")
        return cls(sig("req"), sig("add"), sig(we), sig("be"), sig("data"), sig("id"),
                   sig("gnt"), sig("r_valid"), sig("r_data"), sig("r_id"), write_level, prefix)


@dataclass
class RegAgentConfig:
    bus: RegBus
    clk: object
    master_id: int = 1  #: default ``id`` (one-hot per master in the PULP crossbar)
    idle_value: int = 0  #: what ``add``/``data`` show while ``req`` is low


class RegItem(uvm_sequence_item):
    """One register access; ``rdata``/``r_id``/``wait`` are filled in by the driver."""

    def __init__(self, name="reg", *, write: bool, addr: int, data: int = 0, be: int = 0xF,
                 id: int | None = None):
        super().__init__(name)
        self.write, self.addr, self.data, self.be, self.id = write, addr, data, be, id
        self.rdata = None
        self.r_id = None
        self.wait = 0            #: cycles without grant
        self.grant_cycle = None
        self.response = Event()  #: set when the response has been sampled

    def __str__(self):
        kind = f"W 0x{self.addr:x}=0x{self.data:x} be={self.be:x}" if self.write else \
            f"R 0x{self.addr:x}"
        rdata = "" if self.rdata is None else f" -> 0x{self.rdata:x}"
        return f"{kind}{rdata} wait={self.wait}"


class RegAccessSeq(uvm_sequence):
    """Issues ``items`` back to back; with ``wait_each`` every response before the next."""

    def __init__(self, name="reg_seq", items=(), wait_each=False):
        super().__init__(name)
        self.items = list(items)
        self.wait_each = wait_each

    async def body(self):
        for item in self.items:
            await self.start_item(item)
            await self.finish_item(item)
            if self.wait_each:
                await item.response.wait()
        for item in self.items:
            await item.response.wait()


class RegMasterDriver(uvm_driver):
    """Holds each request until granted; checks the response one cycle after the grant."""

    def build_phase(self):
        self.cfg: RegAgentConfig = self.get_parent().cfg
        self.bus = self.cfg.bus
        self.ap = uvm_analysis_port("ap", self)
        self.errors: list[str] = []
        self.history: list[RegItem] = []  #: every completed access, in order
        self._next: deque[RegItem] = deque()  # items fetched, not yet requested
        self._current: RegItem | None = None  # item driving req
        self._granted: RegItem | None = None  # item whose response is due this cycle
        self._req = None
        self._released = Event()
        self.loop = CycleLoop.of(self.cfg.clk)

    def start_of_simulation_phase(self):
        self.bus.req.value = 0
        self._req = False
        self.loop.add(self._drive, self._sample)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            self._released.clear()
            self._next.append(item)
            await self._released.wait()  # until the request is granted
            self.seq_item_port.item_done()

    def _drive(self) -> None:
        bus = self.bus
        if self._current is None and self._next:
            item = self._current = self._next.popleft()
            bus.add.value = item.addr
            bus.we.value = bus.write_level if item.write else 1 - bus.write_level
            bus.be.value = item.be
            bus.data.value = item.data if item.write else self.cfg.idle_value
            bus.id.value = self.cfg.master_id if item.id is None else item.id
        req = self._current is not None
        if req is not self._req:
            bus.req.value = int(req)
            self._req = req

    def _sample(self) -> None:
        bus = self.bus
        granted, self._granted = self._granted, None
        r_valid = bool(bus.r_valid.value)
        if granted is not None:
            if not r_valid:
                self._error(f"no response one cycle after the grant of {granted}")
            else:
                granted.rdata = int(bus.r_data.value)
                granted.r_id = int(bus.r_id.value)
                want_id = self.cfg.master_id if granted.id is None else granted.id
                if granted.r_id != want_id:
                    self._error(f"r_id {granted.r_id} for a request with id {want_id}")
            self.history.append(granted)
            self.ap.write(granted)
            granted.response.set()
        elif r_valid:
            self._error("r_valid without a request granted in the previous cycle")
        item = self._current
        if item is None:
            return
        if bus.gnt.value:
            item.grant_cycle = self.loop.cycle
            self._granted = item
            self._current = None
            self._released.set()
        else:
            item.wait += 1

    def _error(self, message: str) -> None:
        text = f"{self.bus.name}: cycle {self.loop.cycle}: {message}"
        if len(self.errors) < 20:
            self.logger.error(text)
        self.errors.append(text)


class RegMasterAgent(uvm_agent):
    """Sequencer and master driver for one peripheral port, with a small register API."""

    def build_phase(self):
        self.cfg: RegAgentConfig = self.cdb_get("cfg")
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = RegMasterDriver("driver", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)

    def check_phase(self):
        assert not self.driver.errors, (f"{len(self.driver.errors)} register protocol errors; "
                                        f"first: {self.driver.errors[0]}")

    async def run(self, items, wait_each=False):
        """Issue ``items`` (RegItem) through a :class:`RegAccessSeq`; return them."""
        seq = RegAccessSeq("reg_seq", items, wait_each)
        await seq.start(self.sequencer)
        return seq.items

    async def write(self, addr: int, data: int, be: int = 0xF) -> RegItem:
        (item,) = await self.run([RegItem(write=True, addr=addr, data=data, be=be)])
        return item

    async def read(self, addr: int) -> int:
        (item,) = await self.run([RegItem(write=False, addr=addr)])
        return item.rdata
