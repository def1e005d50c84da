"""pyuvm tests of the engine (cocotb test module ``verif.engine_uvm.tests``).

Each test is one class; ``verif.engine_uvm`` registers them as ``make sim`` tests and the
regression list in ``verif/testplan.yaml`` names them. The seed comes from cocotb
(``COCOTB_RANDOM_SEED``), the other parameters (:class:`verif.engine_uvm.EngineUvmOptions`)
through :mod:`verif.channel`.

==========================  ==================================================================
test                        what it does
==========================  ==================================================================
EngineRandomAttention       constrained-random attention jobs aimed at the coverage cross
EngineRandomQkav            the same for single attention (QK, softmax, AV)
EngineRandomFfn             the same for FFN (activation instead of mask)
EngineRandomLinear          the same for linear layers
EngineBackToBack            jobs of mixed modes with no idle cycle between them, half of
                            them with their weights streamed in before the start
EngineClear                 clear mid-job (and when idle), each followed by a checked job
EngineIllegal               every kind of illegal configuration in every mode: error flag
                            and code, no hang, no beats taken, and correct jobs after
EngineCorners               requantization corners (shift 0, shifts up to 255, mult 0/255,
                            add -128/127), extreme and constant data, tiny dimensions
EngineNegativeLsb           one expected value off by one LSB: must FAIL
EngineNegativeDrop          one output beat lost before the scoreboard: must FAIL
EngineNegativeHang          the input stream never sends: the watchdog must end the test
==========================  ==================================================================
"""

from __future__ import annotations

import random
from dataclasses import replace

import pyuvm
from cocotb.triggers import ClockCycles, Combine

from ita.config import ITAConfig
from verif.channel import receive
from verif.uvm.base import ProjectTest

from . import EngineUvmOptions, funcov
from .env import EngineEnv, Forward
from .sequences import EngineJobSeq, make_item
from .stimulus import (
    ILLEGAL_KINDS,
    MODES,
    illegal_spec,
    random_spec,
    spec_for_bin,
    target_bins,
)

TIMEOUT_S = 1800


class EngineTestBase(ProjectTest):
    """Engine environment, job bookkeeping, coverage sampling and the scenario helpers."""

    result_name = "uvm_engine"
    default_count = 4
    inject = ""

    def build_phase(self):
        super().build_phase()
        self.options = receive(EngineUvmOptions)
        self.config = ITAConfig(N=self.options.N, M=self.options.M)
        self.count = self.options.count or self.default_count
        self.drop_beat = 5 if self.inject == "drop" else None
        dut = self.dut
        for name in ("start", "clear", "input__valid", "weight__valid", "bias__valid",
                     "output__ready", "config"):
            getattr(dut, name).value = 0
        self.env = EngineEnv("env", self)
        self._results = Forward("results", self)
        self.items = []
        self._previous = None  # the last finished job or "clear"

    def connect_phase(self):
        self._results.fn = self._job_finished
        self.env.scoreboard.ap.connect(self._results.analysis_export)
        self.env.watchdog.fired_hook = self.abort_event.set

    # --- jobs --------------------------------------------------------------------------------

    def new_item(self, spec):
        job_id = len(self.items)
        corrupt = self.inject == "lsb" and not any(i.expect_error is None for i in self.items) \
            and spec.expect_error is None
        item = make_item(spec, job_id, self.seed * 1009 + job_id, self.config,
                         corrupt_expected=corrupt)
        self.items.append(item)
        return item

    async def run_jobs(self, specs, *, gaps=None, prefetch=None):
        """Run ``specs`` in order. ``gaps[i]`` None: job i follows back to back (its start
        waits while job i-1 runs); an integer: wait for job i-1 to finish, then that many
        cycles. ``prefetch[i]``: job i's source bursts start before its ``start``."""
        items = [self.new_item(spec) for spec in specs]  # golden work before the first start
        clk = self.dut.clk
        for index, item in enumerate(items):
            self.logger.info(f"{item}")
            gap = gaps[index] if gaps else None
            if index and gap is not None:
                await items[index - 1].completed.wait()
                if gap:
                    await ClockCycles(clk, gap)
            seq = EngineJobSeq(f"job{item.job_id}", self.env, item,
                               random.Random(self.rng.getrandbits(64)),
                               prefetch=bool(prefetch and prefetch[index]),
                               starve=("input",) if self.inject == "hang" else ())
            await seq.start(self.env.ctrl.sequencer)
        await Combine(*(item.completed.wait() for item in items))
        return items

    def _job_finished(self, item) -> None:
        previous, self._previous = self._previous, item
        if item.aborted:
            self._previous = "clear"
            return
        if item.expect_error is not None:
            if item.passed:
                kind = item.spec.label.split(":")[1]
                funcov.sample_scenario(f"illegal_{kind}")
                funcov.sample_illegal(item.spec.mode, kind)
            return
        if not item.passed:
            return
        funcov.sample_job(item, self.config)
        if item.gap is not None:
            funcov.sample_scenario("back_to_back" if item.gap == 0 else "idle_gap")
        if previous == "clear":
            funcov.sample_scenario("job_after_clear")
        elif previous is not None and getattr(previous, "expect_error", None) is not None:
            funcov.sample_scenario("job_after_error")

    def note_clears(self):
        """Sample the clear scenarios seen so far (called after the jobs ran)."""
        for _cycle, aborted in self.env.ctrl.driver.clears:
            funcov.sample_scenario("clear_mid_job" if aborted is not None else "clear_idle")

    # --- verdict -----------------------------------------------------------------------------

    def extract_phase(self):
        for item in self.items:
            if not item.completed.is_set():
                self.errors.append(f"{item} never finished")
        funcov.export(self.options.funcov)
        super().extract_phase()

    def result_fields(self):
        sb = self.env.scoreboard
        hit, size = funcov.summary()
        ideal = sum(i.ideal_cycles for i in self.items if not i.aborted)
        return {"ideal_cycles": round(ideal), "jobs": len(self.items),
                "checked_beats": sb.beats_checked, "mismatches": sb.mismatches,
                "funcov_bins": f"{hit}/{size}", "N": self.config.N, "M": self.config.M}


class RandomModeTest(EngineTestBase):
    """Jobs of one mode aimed at successive bins of the coverage cross (see stimulus)."""

    mode = "attention"
    default_count = 5

    async def scenario(self):
        bins = target_bins(self.mode)
        first = (self.seed - 1) * self.count
        specs = [spec_for_bin(self.rng, self.mode, bins[(first + j) % len(bins)], self.config)
                 for j in range(self.count)]
        gaps = [None if self.rng.random() < 0.5 else self.rng.choice((0, 1, 3, 17))
                for _ in specs]
        await self.run_jobs(specs, gaps=gaps)


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineRandomAttention(RandomModeTest):
    result_name = "uvm_engine_attention"
    mode = "attention"


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineRandomQkav(RandomModeTest):
    result_name = "uvm_engine_qkav"
    mode = "qkav"


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineRandomFfn(RandomModeTest):
    result_name = "uvm_engine_ffn"
    mode = "ffn"
    default_count = 4


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineRandomLinear(RandomModeTest):
    result_name = "uvm_engine_linear"
    mode = "linear"
    default_count = 4


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineBackToBack(EngineTestBase):
    """Mixed modes, no idle cycle between jobs; every other job prefetches its streams."""

    result_name = "uvm_engine_b2b"
    default_count = 6

    async def scenario(self):
        specs = [random_spec(self.rng, self.rng.choice(MODES), self.config,
                             shape=self.rng.choice(("one_tile", "padded")),
                             stall=self.rng.choice(("none", "none", "random")))
                 for _ in range(self.count)]
        prefetch = [bool(i % 2) for i in range(self.count)]
        items = await self.run_jobs(specs, prefetch=prefetch)
        gaps = [item.gap for item in items[1:]]
        if any(g != 0 for g in gaps):
            self.errors.append(f"jobs were not back to back: idle cycles between jobs {gaps}")


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineClear(EngineTestBase):
    """Clear early in a job, at a random point, and after the job ended; a correct job
    follows each clear."""

    result_name = "uvm_engine_clear"
    default_count = 3

    async def scenario(self):
        specs = []
        for round_ in range(self.count):
            victim = random_spec(self.rng, self.rng.choice(MODES), self.config,
                                 shape=self.rng.choice(("one_tile", "padded")))
            estimate = int(self._estimate(victim))
            # early in the job, anywhere in it, or (the job ends first) 1-16 cycles after done
            when = (self.rng.randint(1, 40) if round_ % 3 == 0 else
                    self.rng.randint(1, estimate) if round_ % 3 == 1 else
                    estimate * 4 + self.rng.randint(0, 50))
            specs.append(replace(victim, clear_at=when))
            specs.append(random_spec(self.rng, self.rng.choice(MODES), self.config,
                                     shape="one_tile"))
        await self.run_jobs(specs)
        self.note_clears()
        wanted = sum(1 for spec in specs if spec.clear_at is not None)
        if len(self.env.ctrl.driver.clears) != wanted:
            self.errors.append(f"{len(self.env.ctrl.driver.clears)} clears for {wanted}")

    def _estimate(self, spec):
        from .stimulus import build_job
        job, _memory = build_job(spec, 0, self.config)
        slow = {"none": 1.1, "random": 2.0, "bursty": 2.5, "long": 3.0}[spec.stall]
        return job.ideal_cycles(self.config) * slow + 300


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineIllegal(EngineTestBase):
    """Every illegal configuration kind in every mode (the checks are per mode), back to back;
    a legal job of the same mode follows some of them and closes every mode."""

    result_name = "uvm_engine_illegal"
    default_count = 1

    async def scenario(self):
        specs = []
        for _ in range(self.count):
            modes = list(MODES)
            self.rng.shuffle(modes)
            for mode in modes:
                kinds = list(ILLEGAL_KINDS)
                self.rng.shuffle(kinds)
                for index, kind in enumerate(kinds):
                    specs.append(illegal_spec(self.rng, kind, self.config, mode=mode))
                    if index == len(kinds) - 1 or self.rng.random() < 0.3:
                        specs.append(random_spec(self.rng, mode, self.config,
                                                 shape="one_tile", stall="none"))
        items = await self.run_jobs(specs)
        for item in items:
            if item.expect_error is not None and item.end_cycle - item.accept_cycle > 3:
                self.errors.append(f"{item} took {item.end_cycle - item.accept_cycle} cycles "
                                   "to report its error")


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineCorners(EngineTestBase):
    """Arithmetic and shape corners on every mode."""

    result_name = "uvm_engine_corners"
    default_count = 6

    async def scenario(self):
        specs = []
        for j in range(self.count):
            mode = MODES[(self.seed + j) % len(MODES)]
            data = ("extreme", "constant", "uniform", "small", "cauchy")[j % 5]
            specs.append(random_spec(self.rng, mode, self.config, requant_kind="corner",
                                     data=data, shape=self.rng.choice(("one_tile", "padded")),
                                     stall=self.rng.choice(("none", "random"))))
        await self.run_jobs(specs)


class NegativeTest(EngineTestBase):
    default_count = 2

    async def scenario(self):
        specs = [random_spec(self.rng, "attention", self.config, shape="one_tile",
                             stall="random") for _ in range(self.count)]
        await self.run_jobs(specs)


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineNegativeLsb(NegativeTest):
    """The first expected value is off by one LSB; the test must fail on it."""

    result_name = "uvm_engine_inject_lsb"
    inject = "lsb"


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineNegativeDrop(NegativeTest):
    """Output beat 5 never reaches the scoreboard; the test must fail on it."""

    result_name = "uvm_engine_inject_drop"
    inject = "drop"


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class EngineNegativeHang(NegativeTest):
    """The input stream never sends; the watchdog must end the test with its diagnosis."""

    result_name = "uvm_engine_inject_hang"
    inject = "hang"
    default_count = 1
