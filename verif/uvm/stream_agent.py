"""A valid/ready stream agent (Amaranth ``lib.stream`` and AXI-Stream-like handshakes).

Rules it drives and checks: a beat transfers in a cycle where ``valid`` and ``ready`` are both
high; once a source raises ``valid`` it holds ``valid`` and ``payload`` until the transfer.

Roles, chosen by :class:`StreamAgentConfig`:

* ``source`` -- a :class:`StreamSourceDriver` fed by a sequencer with :class:`StreamTransfer`
  items. A transfer is a burst of beats: a list of integers, or a function
  ``payload(index) -> int | None`` that returns None while the beat's data is not available
  yet (memory-backed streams whose data the DUT itself produces). Idle cycles between beats
  come from the transfer's or the agent's :mod:`stall profile <verif.uvm.stall>`.
* ``sink`` -- a :class:`StreamSinkDriver` that drives ``ready`` from a back-pressure profile.
* ``passive`` -- monitor only.

Every role has a :class:`StreamMonitor` that publishes each transferred beat as a
:class:`StreamBeat` on its analysis port and checks the source-side stability rule. Drivers and
monitors are callbacks of the clock's :class:`~verif.uvm.clocking.CycleLoop`, so an agent adds
no triggers of its own per cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from cocotb.triggers import Event
from pyuvm import (
    uvm_agent,
    uvm_analysis_port,
    uvm_component,
    uvm_driver,
    uvm_sequence,
    uvm_sequence_item,
    uvm_sequencer,
)

from .clocking import CycleLoop
from .stall import NoStall, StallProfile

__all__ = ["StreamBus", "StreamAgentConfig", "StreamBeat", "StreamTransfer", "StreamSourceDriver",
           "StreamSinkDriver", "StreamMonitor", "StreamAgent", "StreamTransferSeq"]


@dataclass(frozen=True)
class StreamBus:
    """Handles of one stream: ``valid``, ``ready`` and ``payload``."""

    valid: object
    ready: object
    payload: object
    name: str = "stream"

    @classmethod
    def from_prefix(cls, dut, prefix: str, sep: str = "__") -> StreamBus:
        """Amaranth flattens ``stream.Signature`` members to ``<prefix>__valid`` etc."""
        return cls(getattr(dut, f"{prefix}{sep}valid"), getattr(dut, f"{prefix}{sep}ready"),
                   getattr(dut, f"{prefix}{sep}payload"), prefix)


@dataclass
class StreamAgentConfig:
    """What a :class:`StreamAgent` needs; set it in the ConfigDB under ``cfg``."""

    bus: StreamBus
    clk: object
    role: str = "source"  #: source, sink or passive
    profile: StallProfile = field(default_factory=NoStall)  #: idle cycles or back-pressure
    check_stability: bool = True  #: monitor flags a source that drops or changes a beat
    #: monitor reads the payload of transferred beats (False: counts them, payload None)
    capture_payload: bool = True

    def __post_init__(self):
        if self.role not in ("source", "sink", "passive"):
            raise ValueError(f"stream agent role must be source, sink or passive, not "
                             f"{self.role!r}")


class StreamBeat(NamedTuple):
    """One transferred beat as the monitor saw it."""

    index: int    #: beats transferred on this stream before this one
    cycle: int    #: CycleLoop cycle of the transfer
    payload: int


class StreamTransfer(uvm_sequence_item):
    """A burst of beats for a source driver.

    ``beats`` is a sequence of payload integers, or ``payload`` a function of the beat index
    returning the payload or None (not available yet; the driver retries next cycle).
    ``profile`` overrides the agent's stall profile for this burst. ``tag`` names the burst
    for :meth:`StreamSourceDriver.abort`. After completion, ``first_cycle`` and
    ``last_cycle`` hold the cycles of the first and last transfer; ``aborted`` is True if the
    burst was cut short.
    """

    def __init__(self, name="transfer", beats: Sequence[int] | None = None, *,
                 payload: Callable[[int], int | None] | None = None, count: int | None = None,
                 profile: StallProfile | None = None, tag=None):
        super().__init__(name)
        if (beats is None) == (payload is None):
            raise ValueError("give either beats or payload (with count)")
        if beats is not None:
            self.count = len(beats)
            self.payload_at = beats.__getitem__
        else:
            if count is None:
                raise ValueError("a payload function needs a count")
            self.count = count
            self.payload_at = payload
        self.profile = profile
        self.tag = tag
        self.sent = 0
        self.first_cycle = None
        self.last_cycle = None
        self.aborted = False

    def __str__(self):
        return f"{self.get_name()}: {self.sent}/{self.count} beats tag={self.tag}"


class StreamTransferSeq(uvm_sequence):
    """Sends one :class:`StreamTransfer` (built from the constructor's arguments)."""

    def __init__(self, name="stream_seq", beats=None, **kwargs):
        super().__init__(name)
        self.item = StreamTransfer(f"{name}_item", beats, **kwargs)

    async def body(self):
        await self.start_item(self.item)
        await self.finish_item(self.item)


class StreamSourceDriver(uvm_driver):
    """Drives ``valid``/``payload`` from :class:`StreamTransfer` items, one beat at a time."""

    def build_phase(self):
        self.cfg: StreamAgentConfig = self.get_parent().cfg
        self.bus = self.cfg.bus
        self.profile = self.cfg.profile
        self._item: StreamTransfer | None = None
        self._index = 0
        self._offered = False
        self._valid_driven = None
        self._finished = Event()
        self._aborted_tags: set = set()
        self.beats_sent = 0
        self.loop = CycleLoop.of(self.cfg.clk)

    def start_of_simulation_phase(self):
        self.bus.valid.value = 0
        self._valid_driven = False
        self.loop.add(self._drive, self._sample)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            if item.tag is not None and item.tag in self._aborted_tags:
                item.aborted = True
            elif item.count:
                self._index = 0
                self._finished.clear()
                self._item = item
                await self._finished.wait()
            self.seq_item_port.item_done()

    def abort(self, tag=None) -> None:
        """Cut the current burst short (all bursts with ``tag``, if given), drop ``valid``."""
        if tag is not None:
            self._aborted_tags.add(tag)
        item = self._item
        if item is not None and (tag is None or item.tag == tag):
            item.aborted = True
            self._item = None
            self._offered = False
            self._finished.set()

    @property
    def busy(self) -> bool:
        return self._item is not None

    def _drive(self) -> None:
        if self._offered:
            return  # valid and payload hold until the transfer
        item = self._item
        if item is not None:
            profile = item.profile or self.profile
            if not profile.stall():
                word = item.payload_at(self._index)
                if word is not None:
                    self.bus.payload.value = word
                    self._offered = True
                    if not self._valid_driven:
                        self.bus.valid.value = 1
                        self._valid_driven = True
                    return
        if self._valid_driven:
            self.bus.valid.value = 0
            self._valid_driven = False

    def _sample(self) -> None:
        if self._offered and self.bus.ready.value:
            self._offered = False
            item = self._item
            if item.first_cycle is None:
                item.first_cycle = self.loop.cycle
            self._index += 1
            item.sent = self._index
            self.beats_sent += 1
            if self._index == item.count:
                item.last_cycle = self.loop.cycle
                self._item = None
                self._finished.set()


class StreamSinkDriver(uvm_component):
    """Drives ``ready`` from a back-pressure profile (``profile`` may be swapped any time)."""

    def build_phase(self):
        self.cfg: StreamAgentConfig = self.get_parent().cfg
        self.bus = self.cfg.bus
        self.profile = self.cfg.profile
        self._ready = None

    def start_of_simulation_phase(self):
        CycleLoop.of(self.cfg.clk).add(self._drive)

    def _drive(self) -> None:
        ready = not self.profile.stall()
        if ready is not self._ready:
            self.bus.ready.value = int(ready)
            self._ready = ready


class StreamMonitor(uvm_component):
    """Publishes every transferred beat; counts beats; checks that offered beats are held.

    ``errors`` collects protocol violations (a source that dropped ``valid`` or changed
    ``payload`` before the transfer); the agent's ``check_phase`` fails on any. A reset or
    clear of the DUT legally ends an offer: call :meth:`excuse` from the cycle of the reset.
    """

    def build_phase(self):
        self.cfg: StreamAgentConfig = self.get_parent().cfg
        self.ap = uvm_analysis_port("ap", self)
        self.beats = 0
        self.errors: list[str] = []
        self._pending = None  # payload of a beat offered but not yet taken
        self._quiet_until = -1
        self.loop = CycleLoop.of(self.cfg.clk)

    def start_of_simulation_phase(self):
        self.loop.add(sample=self._sample)

    def excuse(self, cycles: int = 1) -> None:
        """Skip the stability checks up to ``cycles`` cycles from now (a reset ends offers)."""
        self._quiet_until = self.loop.cycle + cycles
        self._pending = None

    def _sample(self) -> None:
        bus = self.cfg.bus
        check = self.cfg.check_stability and self.loop.cycle > self._quiet_until
        if not bus.valid.value:
            if self._pending is not None and check:
                self._error(f"valid dropped before the transfer of beat {self.beats}")
            self._pending = None
            return
        ready = bus.ready.value
        if not check:
            if ready:
                self._pending = None
                self.ap.write(StreamBeat(self.beats, self.loop.cycle,
                                         int(bus.payload.value) if self.cfg.capture_payload
                                         else None))
                self.beats += 1
            return
        word = int(bus.payload.value)
        if check and self._pending is not None and word != self._pending:
            self._error(f"payload of beat {self.beats} changed while waiting for ready")
        if ready:
            self._pending = None
            self.ap.write(StreamBeat(self.beats, self.loop.cycle, word))
            self.beats += 1
        else:
            self._pending = word

    def _error(self, message: str) -> None:
        text = f"{self.cfg.bus.name}: cycle {self.loop.cycle}: {message}"
        if len(self.errors) < 20:
            self.logger.error(text)
        self.errors.append(text)


class StreamAgent(uvm_agent):
    """Monitor plus, for a source, sequencer and driver, or, for a sink, a ready driver."""

    def build_phase(self):
        self.cfg: StreamAgentConfig = self.cdb_get("cfg")
        self.monitor = StreamMonitor("monitor", self)
        self.sequencer = self.driver = None
        if self.cfg.role == "source":
            self.sequencer = uvm_sequencer("sequencer", self)
            self.driver = StreamSourceDriver("driver", self)
        elif self.cfg.role == "sink":
            self.driver = StreamSinkDriver("driver", self)

    def connect_phase(self):
        if self.cfg.role == "source":
            self.driver.seq_item_port.connect(self.sequencer.seq_item_export)

    def check_phase(self):
        assert not self.monitor.errors, (f"{len(self.monitor.errors)} stream protocol errors; "
                                         f"first: {self.monitor.errors[0]}")

    async def send(self, beats=None, **kwargs) -> StreamTransfer:
        """Start a :class:`StreamTransferSeq` on this agent's sequencer and wait for it."""
        seq = StreamTransferSeq(f"{self.get_name()}_send", beats, **kwargs)
        await seq.start(self.sequencer)
        return seq.item

    def set_profile(self, profile: StallProfile) -> None:
        """Swap the idle/back-pressure profile (takes effect in the next cycle)."""
        self.cfg.profile = profile
        if self.driver is not None:
            self.driver.profile = profile
