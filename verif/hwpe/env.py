"""The ITA HWPE's pyuvm environment: the engine as the cores and the TCDM see it.

===================  ==========================================================================
component            role
===================  ==========================================================================
``reg``              register master agent on the control port (one ``id`` per core)
``tcdm``             TCDM memory slave agent on the wide port: a byte image built from the
                     golden model, grants withheld by a stall profile, protocol monitor
``events``           completion and software event lines, sampled every cycle
``scoreboard``       per job: the completion event on the committing core's line, every output
                     tensor compared in memory when it ends and again at the end of the test,
                     every TCDM write inside the outputs of a job that may write
``watchdog``         fails a hung job with what it knows (jobs pending, accesses, status)
===================  ==========================================================================

Jobs are :class:`HwpeJob` records that the test creates and programs (``verif/hwpe/tests.py``);
the scoreboard learns about them from :meth:`HwpeScoreboard.expect` at commit time and
matches completion events to them in commit order, which is the order the engine runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.triggers import Event
from pyuvm import ConfigDB, uvm_analysis_port, uvm_component, uvm_env, uvm_subscriber

from ita.config import ITAConfig
from verif.hwpe.program import Placement, memory_image, read_tensor
from verif.uvm.clocking import CycleLoop
from verif.uvm.reg_agent import RegAgentConfig, RegBus, RegMasterAgent
from verif.uvm.stall import NoStall, StallProfile
from verif.uvm.tcdm_agent import TcdmAgentConfig, TcdmBus, TcdmSlaveAgent
from verif.uvm.watchdog import Watchdog

__all__ = ["ByteMemory", "HwpeJob", "HwpeEnvConfig", "HwpeEnv", "HwpeScoreboard",
           "EventMonitor", "HwpeWatchdog", "mismatch_report"]


class ByteMemory:
    """The TCDM behind the wide port: a flat byte image, accesses of ``data_bytes`` at any
    byte address; an access outside the image is recorded in ``errors`` and reads as 0."""

    def __init__(self, size: int, data_bytes: int):
        self.image = np.zeros(size, dtype=np.uint8)
        self.data_bytes = data_bytes
        self.errors: list[str] = []

    def _inside(self, addr: int) -> bool:
        if 0 <= addr and addr + self.data_bytes <= len(self.image):
            return True
        if len(self.errors) < 20:
            self.errors.append(f"TCDM access at 0x{addr:x} outside the {len(self.image)}-byte "
                               "memory")
        return False

    def read(self, addr: int) -> int:
        if not self._inside(addr):
            return 0
        return int.from_bytes(self.image[addr:addr + self.data_bytes].tobytes(), "little")

    def write(self, addr: int, data: int, be: int) -> None:
        if not self._inside(addr):
            return
        raw = np.frombuffer(data.to_bytes(self.data_bytes, "little"), np.uint8)
        lanes = np.flatnonzero([(be >> lane) & 1 for lane in range(self.data_bytes)])
        self.image[addr + lanes] = raw[lanes]

    def load(self, memory, places: dict[str, Placement]) -> None:
        """Place the input tensors of a job; its output regions are zeroed."""
        image = memory_image(memory, places, len(self.image))
        for place in places.values():
            self.image[place.address:place.address + place.size] = \
                image[place.address:place.address + place.size]


@dataclass(eq=False)
class HwpeJob:
    """One job as the test programs it and the scoreboard checks it."""

    index: int              #: position in the test's job list
    label: str              #: what it is, for messages
    job: object             #: the EngineJob (its legal part for illegal configurations)
    memory: object | None   #: TensorMemory with golden results (None: nothing to check)
    places: dict            #: tensor name -> Placement in the TCDM image
    fields: dict            #: engine configuration fields written to the job registers
    core: int = 0           #: the core that programs it (its event line)
    ideal_cycles: float = 0.0
    expect_error: int | None = None
    job_id: int | None = None
    commit_cycle: int | None = None
    end_cycle: int | None = None
    error_register: int | None = None
    aborted: bool = False
    checked: bool = False
    completed: Event = field(default_factory=Event)

    @property
    def output_ranges(self) -> list[tuple[int, int, str]]:
        if self.memory is None:
            return []
        return [(p.address, p.address + p.size, name) for name, p in self.places.items()
                if name in self.memory.written]

    def __str__(self):
        where = f" (job id {self.job_id})" if self.job_id is not None else ""
        return f"job {self.index} {self.label}{where}"


def mismatch_report(job: HwpeJob, image, config: ITAConfig) -> str | None:
    """None when every output tensor of ``job`` in ``image`` equals the golden one, else the
    first difference by tensor, tile, row and column."""
    for name, want in job.memory.expected.items():
        got = read_tensor(image, job.places[name])
        bad = np.argwhere(got != want)
        if bad.size:
            r, c = map(int, bad[0])
            return (f"{job}: tensor {name} tile ({r // config.M}, {c // config.M}) row {r} "
                    f"column {c}: expected {want[r, c]}, got {got[r, c]} ({len(bad)} elements "
                    "differ)")
    return None


@dataclass
class HwpeEnvConfig:
    config: ITAConfig
    memory: ByteMemory
    profile: StallProfile = field(default_factory=NoStall)  #: TCDM grant stalls


class _Forward(uvm_subscriber):
    """Analysis subscriber that calls ``fn`` (set by the owner) with every item."""

    fn = None

    def write(self, item):
        self.fn(item)


class EventMonitor(uvm_component):
    """Publishes ``(cycle, line)`` for every completion event pulse; counts software events."""

    def build_phase(self):
        self.dut = cocotb.top
        self.ap = uvm_analysis_port("ap", self)
        self.loop = CycleLoop.of(self.dut.clk)
        self.completions = [0] * len(self.dut.events.value)
        self.sw_events = [0] * len(self.dut.sw_events.value)

    def start_of_simulation_phase(self):
        # Last in the cycle: the scoreboard reads memory after the TCDM agent's writes.
        self.loop.add(sample=self._sample, priority=10)

    def _sample(self) -> None:
        events = int(self.dut.events.value)
        sw = int(self.dut.sw_events.value)
        for line in range(len(self.completions)):
            if events >> line & 1:
                self.completions[line] += 1
                self.ap.write((self.loop.cycle, line))
        for line in range(len(self.sw_events)):
            self.sw_events[line] += sw >> line & 1


class HwpeScoreboard(uvm_component):
    """Matches completion events to committed jobs and checks their results in memory."""

    def build_phase(self):
        env = self.get_parent()
        self.env_cfg: HwpeEnvConfig = env.env_cfg
        self.memory = self.env_cfg.memory
        self.loop = CycleLoop.of(cocotb.top.clk)
        self.errors: list[str] = []
        self.pending: list[HwpeJob] = []   # committed, not finished, in commit order
        self.finished: list[HwpeJob] = []
        self.stray_writes = 0

    def expect(self, job: HwpeJob) -> None:
        """``job`` is being committed (its TRIGGER write is on its way)."""
        job.commit_cycle = self.loop.cycle
        self.pending.append(job)

    def completion(self, event) -> None:
        cycle, line = event
        if not self.pending:
            self._error(f"cycle {cycle}: completion event on line {line} with no job pending")
            return
        job = self.pending.pop(0)
        job.end_cycle = cycle
        if line != job.core:
            self._error(f"{job}: completion event on line {line}, but core {job.core} "
                        "committed it")
        if job.expect_error is None and job.memory is not None:
            report = mismatch_report(job, self.memory.image, self.env_cfg.config)
            if report:
                self._error(report)
            job.checked = True
        self.finished.append(job)
        job.completed.set()

    def soft_clear(self) -> list[HwpeJob]:
        """A soft clear was granted: every pending job is dropped without an event."""
        dropped, self.pending = self.pending, []
        for job in dropped:
            job.aborted = True
            job.end_cycle = self.loop.cycle
            job.completed.set()
        self.finished += dropped
        return dropped

    def tcdm_access(self, t) -> None:
        """Writes may only land in output tensors of a committed job that can run (an illegal
        configuration must not touch memory at all)."""
        if not t.write:
            return
        end = t.addr + self.memory.data_bytes
        lanes = [lane for lane in range(self.memory.data_bytes) if t.be >> lane & 1]
        if not lanes:
            return
        first, last = t.addr + lanes[0], t.addr + lanes[-1] + 1
        # The monitor reports a grant one cycle late: a job that ended (or was cleared) in the
        # cycle of the grant or after it still owned the port then.
        owners = self.pending + [j for j in self.finished[-4:] if j.end_cycle >= t.cycle]
        for job in owners:
            if job.expect_error is not None:
                continue
            if any(lo <= first and last <= hi for lo, hi, _ in job.output_ranges):
                return
        self.stray_writes += 1
        self._error(f"cycle {t.cycle}: TCDM write to 0x{first:x}..0x{min(last, end) - 1:x} "
                    f"is outside the outputs of every running job "
                    f"(pending: {', '.join(map(str, self.pending)) or 'none'})")

    def final_check(self) -> None:
        """Outputs of every finished job are still intact (no later job overwrote them)."""
        for job in self.finished:
            if job.checked and not job.aborted:
                report = mismatch_report(job, self.memory.image, self.env_cfg.config)
                if report:
                    self._error(f"at the end of the test: {report}")

    def _error(self, message: str) -> None:
        if len(self.errors) < 20:
            self.logger.error(message)
        self.errors.append(message)


class HwpeWatchdog(Watchdog):
    """Ends a hung test: the oldest pending job over its budget from its commit
    (:func:`verif.uvm.watchdog.job_budget`), or no TCDM access and no event for
    ``quiet_limit`` cycles while jobs are pending."""

    quiet_limit = 20_000
    quiet_meaning = "no TCDM access and no event"

    def waiting(self) -> bool:
        return bool(self.env.scoreboard.pending)

    def progress(self) -> int:
        return self.env.tcdm.monitor.transactions + sum(self.env.events.completions)

    def timed_jobs(self):
        # The oldest only: a small job queued behind a long one would exceed its own budget.
        oldest = self.env.scoreboard.pending[0]
        return [(oldest, oldest.commit_cycle)]

    def over_budget(self, job, age, budget):
        return f"{job} not finished {age} cycles after its commit (budget {budget})"

    def diagnosis(self, why: str) -> str:
        return (f"{super().diagnosis(why)}; pending "
                f"{', '.join(map(str, self.env.scoreboard.pending))}; busy "
                f"{int(self.dut.busy.value)}; {self.env.tcdm.monitor.transactions} TCDM "
                "accesses so far")


class HwpeEnv(uvm_env):
    """Builds and wires the agents; the test sets ``env_cfg`` in the ConfigDB first."""

    def build_phase(self):
        self.env_cfg: HwpeEnvConfig = self.cdb_get("env_cfg")
        dut = cocotb.top
        reg_bus = RegBus(dut.periph__req, dut.periph__addr, dut.periph__we, dut.periph__be,
                         dut.periph__wdata, dut.periph__id, dut.periph__gnt,
                         dut.periph__r_valid, dut.periph__r_data, dut.periph__r_id,
                         name="periph")
        ConfigDB().set(self, "reg", "cfg", RegAgentConfig(reg_bus, dut.clk, master_id=0))
        tcdm_bus = TcdmBus(dut.tcdm__req, dut.tcdm__addr, dut.tcdm__we, dut.tcdm__be,
                           dut.tcdm__wdata, dut.tcdm__gnt, dut.tcdm__r_valid, dut.tcdm__r_data,
                           name="tcdm")
        ConfigDB().set(self, "tcdm", "cfg", TcdmAgentConfig(
            tcdm_bus, dut.clk, self.env_cfg.profile, data_bytes=self.env_cfg.memory.data_bytes,
            memory=self.env_cfg.memory))
        self.reg = RegMasterAgent("reg", self)
        self.tcdm = TcdmSlaveAgent("tcdm", self)
        self.events = EventMonitor("events", self)
        self.scoreboard = HwpeScoreboard("scoreboard", self)
        self.watchdog = HwpeWatchdog("watchdog", self)
        self._events = _Forward("events_to_scoreboard", self)
        self._tcdm = _Forward("tcdm_to_scoreboard", self)

    def connect_phase(self):
        self._events.fn = self.scoreboard.completion
        self._tcdm.fn = self.scoreboard.tcdm_access
        self.events.ap.connect(self._events.analysis_export)
        self.tcdm.monitor.ap.connect(self._tcdm.analysis_export)

    @property
    def errors(self) -> list[str]:
        return list(self.env_cfg.memory.errors)
