"""What every pyuvm test of the project shares: seed, clock and reset, verdict, RESULT line.

One integer seed per run (``COCOTB_RANDOM_SEED``, which ``hw.toolchain.run(seed=...)`` sets)
seeds Python's ``random`` module, the test's own ``random.Random`` (``self.rng``) and numpy's
``default_rng`` (``self.np_rng``), so the same seed replays the same stimulus, stalls and
data. The verdict is taken in ``extract_phase``: the test gathers the ``errors`` lists of every
component below it, adds its own, writes the RESULT line (``verif.result``) and
``check_phase`` then fails the cocotb test with the first error.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, First, RisingEdge
from pyuvm import uvm_test

from verif.channel import run_seed
from verif.result import format_result, record_result

from .clocking import CycleLoop

__all__ = ["run_seed", "ProjectTest", "collect_errors"]

CLOCK_PERIOD_NS = 10


def collect_errors(component) -> list[str]:
    """``errors`` lists of everything below ``component``, then its own (so a component's
    diagnosis comes before the test's summary of its consequences)."""
    found = []
    for child in component.get_children():
        found += collect_errors(child)
    return found + list(getattr(component, "errors", None) or [])


class ProjectTest(uvm_test):
    """Base test: seeds, clock, reset, an objection around :meth:`scenario`, the verdict.

    Subclasses build their environment in ``build_phase`` (call ``super().build_phase()``
    first), implement ``async def scenario(self)`` and may add ``result_fields()``. A
    component that must end the test early (a watchdog) appends to its ``errors`` and sets
    ``abort_event``; the scenario is then cancelled and the verdict phases still run.
    """

    #: Name of the test in RESULT lines and ``make sim`` (set by subclasses).
    result_name = "uvm_test"
    #: Cycles of reset before the scenario.
    reset_cycles = 3

    def build_phase(self):
        self.seed = run_seed()
        random.seed(self.seed)
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.dut = cocotb.top
        self.errors: list[str] = []
        self.abort_event = Event()
        self.status = None
        self.cycles = 0
        CycleLoop.reset_all()

    def end_of_elaboration_phase(self):
        # Low first: an edge at time 0 would let the monitors sample before a 4-state
        # simulator (Icarus) has propagated the initial values to the ports (Z).
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)

    async def run_phase(self):
        self.raise_objection()
        dut = self.dut
        dut.rst.value = 1
        await ClockCycles(dut.clk, self.reset_cycles)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        loop = CycleLoop.of(dut.clk)
        start = loop.cycle
        finished = Event()
        task = cocotb.start_soon(self._guarded_scenario(finished))
        await First(finished.wait(), self.abort_event.wait())
        if not finished.is_set():
            task.cancel()
        self.cycles = loop.cycle - start
        self.drop_objection()

    async def _guarded_scenario(self, finished):
        try:
            await self.scenario()
        except AssertionError as exc:  # a check inside the scenario: record, then fail
            self.errors.append(str(exc) or "assertion failed")
        except Exception as exc:  # a testbench bug still ends with a verdict
            self.logger.exception("scenario raised")
            self.errors.append(f"scenario raised {type(exc).__name__}: {exc}")
        finally:
            finished.set()

    async def scenario(self):
        raise NotImplementedError

    def result_fields(self) -> dict:
        return {}

    def extract_phase(self):
        errors = collect_errors(self)
        self.status = "FAIL" if errors else "PASS"
        line = format_result(self.result_name, self.status, cycles=self.cycles, seed=self.seed,
                             errors=len(errors), **self.result_fields())
        record_result(line)

    def check_phase(self):
        errors = collect_errors(self)
        assert not errors, f"{len(errors)} errors; first: {errors[0]}"
