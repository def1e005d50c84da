"""The engine's pyuvm environment: control agent, four stream agents, scoreboard, watchdog.

::

    EngineEnv
      ctrl      EngineCtrlAgent   sequencer + driver (start/clear/config) + monitor (done/error)
      input     StreamAgent       source, bursts of the job's input beats from its memory
      weight    StreamAgent       source
      bias      StreamAgent       source
      output    StreamAgent       sink with back-pressure; its monitor feeds the scoreboard
      scoreboard                  every output beat against the golden model, job end checks
      coverage                    functional coverage (verif.engine_uvm.funcov)
      watchdog                    fails a hung job with a description of where it stands

A job is an :class:`EngineJobItem` on the control sequencer. The driver raises ``start`` with
the job's configuration and holds it until the engine takes it (``start & ~busy``); it then
releases the sequencer at once, so the next job's ``start`` can already be waiting while the
current job runs: jobs follow each other with no idle cycle. The job's virtual sequence
(:mod:`verif.engine_uvm.sequences`) starts the three source bursts when the job is accepted.

``clear`` aborts a job: the driver pulses it ``spec.clear_at`` cycles after the start, the
sources cut their bursts short, the scoreboard forgets the job and discards output beats up to
the clear cycle, and the driver checks that the engine is idle (busy, done and error low) in
the following cycle.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import cocotb
from cocotb.triggers import Event
from pyuvm import (
    ConfigDB,
    uvm_agent,
    uvm_analysis_port,
    uvm_component,
    uvm_driver,
    uvm_env,
    uvm_sequence_item,
    uvm_sequencer,
    uvm_subscriber,
)

from ita.rtl.job import OutputMismatch, unpack_int8
from ita.rtl.layouts import ErrorCode, Step
from verif.uvm.clocking import CycleLoop
from verif.uvm.stream_agent import StreamAgent, StreamAgentConfig, StreamBus
from verif.uvm.watchdog import Watchdog

__all__ = ["EngineJobItem", "JobEnd", "EngineCtrlAgent", "EngineScoreboard", "EngineWatchdog",
           "EngineEnv", "Forward"]

SOURCES = ("input", "weight", "bias")
MAX_LOGGED = 10


class EngineJobItem(uvm_sequence_item):
    """One engine job: spec, golden memory, stream plans, and what happened to it."""

    def __init__(self, name, *, spec, job, memory, plans, config_word, job_id, ideal_cycles):
        super().__init__(name)
        self.spec, self.job, self.memory, self.plans = spec, job, memory, plans
        self.config_word = config_word
        self.job_id = job_id
        self.ideal_cycles = ideal_cycles
        self.accepted = Event()
        self.completed = Event()
        self.accept_cycle = None   #: cycle in which the engine took ``start``
        self.end_cycle = None      #: cycle in which ``done`` was seen
        self.gap = None            #: idle cycles between the previous job's done and start
        self.error = None
        self.error_code = None
        self.transfers = {}        #: source name -> StreamTransfer
        self.out_index = 0         #: output beats checked so far
        self.mismatches = 0
        self.sat_low = self.sat_high = False
        self.aborted = False
        self.passed = None
        self.failures: list[str] = []

    @property
    def expect_error(self):
        return self.spec.expect_error

    def __str__(self):
        return f"job #{self.job_id} ({self.spec.describe()})"


class JobEnd(NamedTuple):
    cycle: int
    error: int
    code: int


class Forward(uvm_subscriber):
    """An analysis subscriber that calls ``fn(item)``; set ``fn`` after construction."""

    fn = None

    def write(self, item):
        self.fn(item)


# --- control agent ------------------------------------------------------------------------------


class EngineCtrlDriver(uvm_driver):
    """Drives ``config``/``start`` per job and ``clear`` when a job asks for it.

    ``clear`` comes ``spec.clear_at`` cycles after the job's start, or, if the job ends first,
    1-16 cycles after its ``done`` (a clear of the idle engine). The next job's ``start``
    waits for the clear.
    """

    def build_phase(self):
        self.dut = cocotb.top
        self.loop = CycleLoop.of(self.dut.clk)
        self.ap = uvm_analysis_port("ap", self)  # jobs as they are accepted
        self.errors: list[str] = []
        self.abort_hook = None  # env.abort_job(item, cycle)
        self._queue: deque[EngineJobItem] = deque()
        self._start = self._clear = False
        self._config_for = None
        self._clear_cycle = None
        self._clear_item = None
        self._idle_check_at = None
        self.accepted = 0
        self.clears = []  #: (cycle, aborted job or None)

    def start_of_simulation_phase(self):
        self.dut.start.value = 0
        self.dut.clear.value = 0
        self.loop.add(self._drive, self._sample, priority=-10)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            self._queue.append(item)
            await item.accepted.wait()
            self.seq_item_port.item_done()

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def clear_pending(self) -> int | None:
        """The cycle of a scheduled clear, if any."""
        return self._clear_cycle

    def _drive(self) -> None:
        dut, cycle = self.dut, self.loop.cycle
        item = self._clear_item
        if item is not None and item.end_cycle is not None:
            # The job ended before its clear: clear the idle engine a few cycles later.
            self._clear_cycle = max(cycle, min(self._clear_cycle,
                                               item.end_cycle + 1 + item.spec.clear_at % 16))
        if self._clear_cycle == cycle:
            dut.clear.value = 1
            self._clear = True
            if self._start:
                dut.start.value = 0
                self._start = False
            return
        if self._clear:
            dut.clear.value = 0
            self._clear = False
        head = self._queue[0] if self._queue else None
        want = head is not None and self._clear_cycle is None
        if want and self._config_for is not head:
            dut.config.value = head.config_word
            self._config_for = head
        if want is not self._start:
            dut.start.value = int(want)
            self._start = want

    def _sample(self) -> None:
        dut, cycle = self.dut, self.loop.cycle
        if self._idle_check_at == cycle:
            self._idle_check_at = None
            state = {n: int(getattr(dut, n).value) for n in ("busy", "done", "error")}
            if any(state.values()):
                self._error(f"engine not idle in the cycle after clear: {state}")
        if self._clear:
            item, self._clear_item, self._clear_cycle = self._clear_item, None, None
            aborted = item if item is not None and item.end_cycle is None else None
            self.clears.append((cycle, aborted))
            if self.abort_hook is not None:
                self.abort_hook(aborted, cycle)
            self._idle_check_at = cycle + 1
            return
        if self._start and not dut.busy.value:
            item = self._queue.popleft()
            item.accept_cycle = cycle
            self.accepted += 1
            if item.spec.clear_at is not None:
                self._clear_cycle = cycle + max(1, item.spec.clear_at)
                self._clear_item = item
            self.ap.write(item)
            item.accepted.set()

    def _error(self, message: str) -> None:
        text = f"ctrl: cycle {self.loop.cycle}: {message}"
        self.logger.error(text)
        self.errors.append(text)


class EngineCtrlMonitor(uvm_component):
    """Publishes a :class:`JobEnd` for every ``done`` pulse."""

    def build_phase(self):
        self.dut = cocotb.top
        self.loop = CycleLoop.of(self.dut.clk)
        self.ap = uvm_analysis_port("ap", self)
        self.ends = 0

    def start_of_simulation_phase(self):
        self.loop.add(sample=self._sample, priority=-20)  # ends before starts in one cycle

    def _sample(self) -> None:
        dut = self.dut
        if dut.done.value:
            self.ends += 1
            self.ap.write(JobEnd(self.loop.cycle, int(dut.error.value),
                                 int(dut.error_code.value)))


class EngineCtrlAgent(uvm_agent):
    def build_phase(self):
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = EngineCtrlDriver("driver", self)
        self.monitor = EngineCtrlMonitor("monitor", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)


# --- scoreboard ---------------------------------------------------------------------------------


class EngineScoreboard(uvm_component):
    """Checks every output beat against the golden memory image and every job's end.

    Output beats belong to the oldest running job, in its plan's order (each beat's tensor,
    row and column come from :func:`ita.rtl.schedule.output_beats`); a checked beat is written
    into the job's memory, which is where later input beats of the same job read it from.
    At ``done`` the job must have produced exactly its planned beats, taken every source beat,
    left no output unwritten, and raised ``error`` only when it was meant to.
    """

    def build_phase(self):
        self.config = self.get_parent().config
        self.ap = uvm_analysis_port("ap", self)  # finished (or aborted) jobs
        self.running: deque[EngineJobItem] = deque()
        self.errors: list[str] = []
        self.beats_checked = 0
        self.mismatches = 0
        self.jobs_done = 0
        self._discard_until = -1
        self._last_end = None

    # inputs, connected by the env
    def job_started(self, item: EngineJobItem) -> None:
        item.gap = None if self._last_end is None else item.accept_cycle - self._last_end
        self.running.append(item)

    def job_ended(self, end: JobEnd) -> None:
        self._last_end = end.cycle
        if not self.running:
            self._error(f"cycle {end.cycle}: done without a running job")
            return
        item = self.running.popleft()
        item.end_cycle, item.error, item.error_code = end.cycle, end.error, end.code
        failures = item.failures
        if item.expect_error is not None:
            if not end.error or end.code != item.expect_error:
                failures.append(f"expected error {ErrorCode(item.expect_error).name}, got "
                                f"error={end.error} code={self._code_name(end.code)}")
            if item.out_index:
                failures.append(f"{item.out_index} output beats from a refused job")
        else:
            if end.error:
                failures.append(f"engine raised error {self._code_name(end.code)}")
            planned = len(item.plans["output"])
            if item.out_index != planned:
                failures.append(f"{item.out_index} of {planned} output beats before done")
            left = {name: f"{t.sent}/{t.count}" for name, t in item.transfers.items()
                    if t.sent != t.count}
            if left:
                failures.append(f"source beats not taken at done: {left}")
            missing = item.memory.unwritten()
            if missing and item.out_index == planned:
                failures.append(f"outputs never written: {missing}")
        if item.mismatches:
            failures.append(f"{item.mismatches} output beats differ from the golden model")
        self._finish(item)

    def abort(self, item: EngineJobItem | None, cycle: int) -> None:
        """``clear`` in ``cycle``: forget ``item`` and every beat up to this cycle."""
        self._discard_until = cycle
        if item is not None and item in self.running:
            self.running.remove(item)
            item.aborted = True
            item.end_cycle = cycle
            self._finish(item)

    def output_beat(self, beat) -> None:
        if beat.cycle <= self._discard_until:
            return
        if not self.running:
            self._error(f"cycle {beat.cycle}: output beat {beat.index} while no job runs")
            return
        item = self.running[0]
        plan = item.plans["output"]
        if item.out_index >= len(plan):
            self._error(f"cycle {beat.cycle}: output beat beyond the {len(plan)} planned for "
                        f"{item}")
            return
        step_plan, tensor, row, col = plan[item.out_index]
        values = unpack_int8(beat.payload, self.config.N)
        try:
            item.memory.check_beat(step_plan, tensor, row, col, values, self.config,
                                   item.out_index)
        except OutputMismatch as mismatch:
            item.mismatches += 1
            self.mismatches += 1
            if self.mismatches <= MAX_LOGGED:
                self.logger.error(f"job #{item.job_id}: {mismatch}")
            if len(item.failures) < 3:
                item.failures.append(str(mismatch))
        item.memory.write(tensor, row, col, values)
        if not item.sat_low and (values == -128).any():
            item.sat_low = True
        if not item.sat_high and (values == 127).any():
            item.sat_high = True
        item.out_index += 1
        self.beats_checked += 1

    def _finish(self, item: EngineJobItem) -> None:
        item.passed = not item.failures
        if item.failures:
            self._error(f"{item}: " + "; ".join(item.failures))
        self.jobs_done += 1
        self.ap.write(item)
        item.completed.set()

    @staticmethod
    def _code_name(code):
        try:
            return ErrorCode(code).name
        except ValueError:
            return str(code)

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_LOGGED:
            self.logger.error(message)
        self.errors.append(message)


class BeatDropper(uvm_subscriber):
    """Negative test helper: forwards output beats except the one with index ``drop``."""

    drop = None
    fn = None
    dropped = False

    def write(self, beat):
        if beat.index == self.drop and not self.dropped:
            self.dropped = True
            self.logger.warning(f"dropping output beat {beat.index} on purpose (negative test)")
            return
        self.fn(beat)


# --- watchdog -----------------------------------------------------------------------------------


class EngineWatchdog(Watchdog):
    """Ends a hung test: no handshake on any port for ``quiet_limit`` cycles while a job is
    pending, or a running job over its budget (:func:`verif.uvm.watchdog.job_budget`)."""

    quiet_limit = 10_000
    quiet_meaning = "no handshake on any port"

    def waiting(self) -> bool:
        return bool(self.env.scoreboard.running or self.env.ctrl.driver.pending)

    def progress(self) -> int:
        env = self.env
        return (sum(env.agents[name].monitor.beats for name in (*SOURCES, "output"))
                + env.ctrl.monitor.ends + env.ctrl.driver.accepted)

    def timed_jobs(self):
        return [(item, item.accept_cycle) for item in self.env.scoreboard.running]

    def over_budget(self, job, age, budget):
        return f"{job} still running after {age} cycles (budget {budget})"

    def diagnosis(self, why: str) -> str:
        env, dut = self.env, self.dut
        running = env.scoreboard.running
        job = running[0] if running else None
        try:
            step = Step(int(dut.step.value)).name
        except ValueError:
            step = str(int(dut.step.value))
        beats = []
        if job is not None:
            for name in SOURCES:
                t = job.transfers.get(name)
                beats.append(f"{name} {t.sent if t else 0}/{len(job.plans[name])}")
            beats.append(f"output {job.out_index}/{len(job.plans['output'])}")
        driver = env.ctrl.driver
        clear = "" if driver.clear_pending is None else \
            f", clear scheduled for cycle {driver.clear_pending}"
        return (f"{super().diagnosis(why)}; "
                f"{job if job is not None else 'no job running'}; step {step}, busy "
                f"{int(dut.busy.value)}, jobs waiting for start {driver.pending}{clear}; "
                f"beats {', '.join(beats) or '-'}")


# --- environment --------------------------------------------------------------------------------


class EngineEnv(uvm_env):
    """Builds and wires the agents; ``config`` is the engine's ITAConfig."""

    def build_phase(self):
        test = self.get_parent()
        self.config = test.config
        dut, clk = test.dut, test.dut.clk
        self.agents = {}
        for name in (*SOURCES, "output"):
            source = name != "output"
            # The sources are driven by our own drivers: their monitors only count beats.
            cfg = StreamAgentConfig(StreamBus.from_prefix(dut, name), clk,
                                    "source" if source else "sink",
                                    check_stability=not source, capture_payload=not source)
            ConfigDB().set(self, name, "cfg", cfg)
            self.agents[name] = StreamAgent(name, self)
        self.ctrl = EngineCtrlAgent("ctrl", self)
        self.scoreboard = EngineScoreboard("scoreboard", self)
        self.watchdog = EngineWatchdog("watchdog", self)
        self._started = Forward("started", self)
        self._ended = Forward("ended", self)
        self._beats = BeatDropper("beats", self)
        self._beats.drop = test.drop_beat

    def connect_phase(self):
        sb = self.scoreboard
        self._started.fn, self._ended.fn, self._beats.fn = (sb.job_started, sb.job_ended,
                                                            sb.output_beat)
        self.ctrl.driver.ap.connect(self._started.analysis_export)
        self.ctrl.monitor.ap.connect(self._ended.analysis_export)
        self.agents["output"].monitor.ap.connect(self._beats.analysis_export)
        self.ctrl.driver.abort_hook = self.abort_job

    def abort_job(self, item: EngineJobItem | None, cycle: int) -> None:
        """``clear`` was pulsed in ``cycle`` (``item``: the job it aborted, if any)."""
        if item is not None:
            for name in SOURCES:
                self.agents[name].driver.abort(tag=item.job_id)
        for agent in self.agents.values():
            agent.monitor.excuse(1)
        self.scoreboard.abort(item, cycle)


def saturation_seen(item: EngineJobItem) -> bool:
    return bool(item.sat_low or item.sat_high)


__all__ += ["saturation_seen", "BeatDropper"]
