"""The one watchdog of every bench: a run that stops making progress ends with a diagnosis.

A simulation that hangs must fail in bounded time and say where it stuck, not run into the
cocotb timeout. Two limits apply while work is outstanding: *quiet* (no progress, however the
bench counts it, for ``quiet_limit`` cycles) and *budget* (one job older than
:func:`job_budget` of its ideal cycles). :class:`Watchdog` is the pyuvm component; an
environment subclasses it to say what is outstanding, what counts as progress and what to
report. Benches without jobs (a program on the cores) have only a cycle budget:
:func:`within_cycles`.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Event, First, Timer
from pyuvm import uvm_component

from .base import CLOCK_PERIOD_NS
from .clocking import CycleLoop

__all__ = ["BUDGET_FACTOR", "BUDGET_MARGIN", "job_budget", "within_cycles", "Watchdog"]

#: A job may take this many times its ideal cycles (the slowest stall profile plus room) ...
BUDGET_FACTOR = 20
#: ... plus this many cycles (fill, drain and the programming of tiny jobs).
BUDGET_MARGIN = 50_000


def job_budget(ideal_cycles: float) -> int:
    """Cycles a job may take before the watchdog calls it hung."""
    return int(BUDGET_FACTOR * ideal_cycles) + BUDGET_MARGIN


async def within_cycles(trigger, max_cycles: int, period_ns: float = CLOCK_PERIOD_NS) -> bool:
    """Wait for ``trigger`` at most ``max_cycles`` clock periods (one timer, no per-cycle
    Python); False when the budget ran out first."""
    budget = Timer(max_cycles * period_ns, unit="ns")
    return await First(trigger, budget) is not budget


class Watchdog(uvm_component):
    """Checks every ``interval`` cycles; subclasses define :meth:`waiting`,
    :meth:`progress`, :meth:`timed_jobs` and :meth:`diagnosis`. When it fires it logs, adds
    the message to ``errors``, sets ``fired`` and calls ``fired_hook`` (the test's abort)."""

    interval = 1000
    #: Cycles without progress that count as a hang (subclasses tune it).
    quiet_limit = 10_000
    #: How the diagnosis names the absence of progress.
    quiet_meaning = "no progress"

    def build_phase(self):
        self.env = self.get_parent()
        self.dut = cocotb.top
        self.loop = CycleLoop.of(self.dut.clk)
        self.errors: list[str] = []
        self.fired = Event()
        self.fired_hook = None

    def waiting(self) -> bool:
        """Is work outstanding (otherwise silence is legitimate)?"""
        raise NotImplementedError

    def progress(self) -> int:
        """A count that grows whenever the design makes progress."""
        raise NotImplementedError

    def timed_jobs(self) -> list[tuple[object, int]]:
        """(job, cycle its budget started) for the jobs whose budget is checked; a job has
        ``ideal_cycles``."""
        raise NotImplementedError

    def over_budget(self, job, age: int, budget: int) -> str:
        return f"{job} not finished {age} cycles after its start (budget {budget})"

    def diagnosis(self, why: str) -> str:
        """The error message: ``why`` and where the design stands."""
        return f"watchdog: hung at cycle {self.loop.cycle}: {why}"

    async def run_phase(self):
        last, since = None, 0
        while True:
            await Timer(self.interval * CLOCK_PERIOD_NS, unit="ns")
            cycle = self.loop.cycle
            if not self.waiting():
                last, since = None, cycle
                continue
            progress = self.progress()
            if progress != last:
                last, since = progress, cycle
            if cycle - since >= self.quiet_limit:
                self._fire(f"{self.quiet_meaning} for {cycle - since} cycles")
                return
            for job, started in self.timed_jobs():
                budget = job_budget(job.ideal_cycles)
                if cycle - started > budget:
                    self._fire(self.over_budget(job, cycle - started, budget))
                    return

    def _fire(self, why: str) -> None:
        message = self.diagnosis(why)
        self.logger.error(message)
        self.errors.append(message)
        self.fired.set()
        if self.fired_hook is not None:
            self.fired_hook()
