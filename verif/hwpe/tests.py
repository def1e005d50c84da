"""pyuvm tests of the ITA HWPE on Verilator (the environment is ``verif/hwpe/env.py``).

==========================  ========================================================================
test                        what it does
==========================  ========================================================================
HwpeJobs                    the ``make sim TEST=ita_hwpe`` run: one job per head (or one FFN /
                            linear job) from the golden vectors of the command line, queued in
                            the job contexts; cycles from the first TRIGGER to the last event
HwpeRandom                  constrained-random jobs of every mode and shape class (padded,
                            masked, saturating ...) at random word-aligned addresses, committed
                            by two cores that contend for the programming lock
HwpeClear                   soft clear in the middle of a job (with another job queued), and
                            while idle; each followed by a job checked bit-exactly
HwpeIllegal                 every illegal configuration kind in every mode: the error code and
                            job id in ERROR, a completion event, no memory access, then a
                            correct job
HwpeNegativeLsb             one expected value off by one LSB: must FAIL (the check bites)
==========================  ========================================================================

Options (:class:`verif.hwpe.sim.HwpeOptions`, :class:`~verif.hwpe.sim.HwpeJobOptions` for
``HwpeJobs``) come through :mod:`verif.channel`, the seed through cocotb.
"""

from __future__ import annotations

import random
from dataclasses import replace

import cocotb
import pyuvm
from cocotb.triggers import ClockCycles, Combine, RisingEdge, gather
from pyuvm import ConfigDB

from cluster_integration.hwpe import regmap
from ita.config import ITAConfig
from verif.channel import receive
from verif.engine_uvm.stimulus import (
    ILLEGAL_KINDS,
    MODES,
    build_job,
    config_fields,
    illegal_job,
    illegal_spec,
    random_spec,
)
from verif.hwpe.env import ByteMemory, HwpeEnv, HwpeEnvConfig, HwpeJob
from verif.hwpe.program import job_register_writes, layout_tensors
from verif.hwpe.sim import HwpeJobOptions, HwpeOptions
from verif.uvm.base import ProjectTest
from verif.uvm.clocking import CycleLoop
from verif.uvm.reg_agent import RegItem
from verif.uvm.stall import PROFILES, NoStall, RandomStall, make_profile

OFFSET = {r.name: r.offset for r in regmap.SHARED}
#: The TCDM grant stall probability of ``STALLS=1`` (the cluster's L1 under load).
STALL_PROBABILITY = 0.2
TIMEOUT_S = 3600
ACQUIRE_TRIES = 100_000


def _signed(word: int) -> int:
    return word - (1 << 32) if word >> 31 else word


class HwpeTestBase(ProjectTest):
    """Environment, memory layout, programming through the registers, ERROR checks."""

    result_name = "uvm_hwpe"
    #: Jobs when COUNT is 0.
    default_count = 4
    #: With STALL_PROFILE=auto, take the TCDM profile from the seed (regression seeds walk
    #: through all of them) instead of STALLS.
    profile_by_seed = False
    #: Place tensors at random word-aligned addresses instead of 128-byte aligned ones.
    word_aligned = False
    #: The options this test reads.
    options_schema = HwpeOptions

    def build_phase(self):
        super().build_phase()
        self.options = receive(self.options_schema)
        self.config = ITAConfig(N=self.options.N, M=self.options.M)
        self.count = self.options.count or self.default_count
        dut = self.dut
        for name in ("periph__req", "tcdm__gnt", "tcdm__r_valid"):
            getattr(dut, name).value = 0
        self.width = len(dut.tcdm__wdata.value) // 8
        self.cores = len(dut.events.value)
        self.jobs: list[HwpeJob] = []
        self.prepare()  # golden work before the clock starts
        end = max((p.address + p.size for j in self.jobs for p in j.places.values()),
                  default=0)
        self.memory = ByteMemory(-(-end // 4096) * 4096 + 4096, self.width)
        for job in self.jobs:
            if job.memory is not None:
                self.memory.load(job.memory, job.places)
        ConfigDB().set(self, "env", "env_cfg",
                       HwpeEnvConfig(self.config, self.memory, self.stall_profile()))
        self.env = HwpeEnv("env", self)
        self.measured_cycles = None
        self.error_checks = []
        self.refusals = {}  # ACQUIRE answer (-1 full, -2 locked) -> count

    def connect_phase(self):
        self.env.watchdog.fired_hook = self.abort_event.set

    def stall_profile(self):
        name = self.options.stall_profile
        rng = random.Random(self.rng.getrandbits(64))
        if name == "auto" and self.profile_by_seed:
            name = list(PROFILES)[self.seed % len(PROFILES)]
        if name != "auto":
            return make_profile(name, rng)
        return RandomStall(rng, p=STALL_PROBABILITY) if self.options.stalls else NoStall()

    def prepare(self):
        """Create ``self.jobs`` (with :meth:`add_job`) before the simulation starts."""
        raise NotImplementedError

    # --- jobs --------------------------------------------------------------------------------

    def add_job(self, label, job, memory, *, fields=None, core=0, expect_error=None):
        """Append a job; its tensors go to the next free 4 KiB-aligned region of the TCDM."""
        ends = [p.address + p.size for j in self.jobs for p in j.places.values()]
        base = -(-max(ends, default=0x1000) // 4096) * 4096
        jitter = random.Random(self.rng.getrandbits(64)) if self.word_aligned else None
        places = layout_tensors(memory, base=base, rng=jitter) if memory is not None else {}
        item = HwpeJob(len(self.jobs), label, job, memory, places,
                       job.config_fields() if fields is None else fields, core=core,
                       ideal_cycles=job.ideal_cycles(self.config) if memory is not None else 0,
                       expect_error=expect_error)
        self.jobs.append(item)
        return item

    def spec_job(self, spec, core=0):
        """A job from an engine-environment :class:`JobSpec` (legal or illegal)."""
        if spec.expect_error is not None:
            engine_job = illegal_job(spec)
            return self.add_job(spec.label or spec.describe(), engine_job, None,
                                fields=config_fields(spec, engine_job), core=core,
                                expect_error=spec.expect_error)
        job, memory = build_job(spec, self.rng.getrandbits(31), self.config)
        return self.add_job(spec.describe(), job, memory, core=core)

    async def access(self, core, offset, value=0, write=False) -> RegItem:
        (item,) = await self.env.reg.run([RegItem(write=write, addr=offset, data=value,
                                                  id=core)])
        return item

    async def program(self, job: HwpeJob) -> RegItem:
        """ACQUIRE (retrying while the contexts are full or another core holds the lock), the
        job registers, then TRIGGER; returns the TRIGGER access."""
        for _ in range(ACQUIRE_TRIES):
            job_id = _signed((await self.access(job.core, OFFSET["ACQUIRE"])).rdata)
            if job_id >= 0:
                break
            self.refusals[job_id] = self.refusals.get(job_id, 0) + 1
            await ClockCycles(self.dut.clk, self.rng.randint(1, 16))
        else:
            raise AssertionError(f"{job}: ACQUIRE refused {ACQUIRE_TRIES} times")
        job.job_id = job_id
        writes = [RegItem(write=True, addr=offset, data=value, id=job.core)
                  for offset, value in job_register_writes(job.job, job.places, job.fields)]
        await self.env.reg.run(writes)
        self.env.scoreboard.expect(job)
        trigger = await self.access(job.core, OFFSET["TRIGGER"], 0, write=True)
        self.error_checks.append(cocotb.start_soon(self.check_error_register(job)))  # a Task
        return trigger

    async def check_error_register(self, job: HwpeJob) -> None:
        """ERROR right after the job's event: 0 for a legal job, else its code and job id."""
        await job.completed.wait()
        if job.aborted:
            return
        word = (await self.access(job.core, OFFSET["ERROR"])).rdata
        job.error_register = word
        code, job_id = word & 0xF, word >> 8 & 0xFF
        want = job.expect_error or 0
        if code != want:
            self.errors.append(f"{job}: ERROR code {code}, expected {want}")
        elif want and job_id != job.job_id:
            self.errors.append(f"{job}: ERROR names job id {job_id}")

    async def run_jobs(self, jobs, *, programmers=1):
        """Commit ``jobs`` in order from ``programmers`` concurrent cores (each takes the next
        job when it is free) and wait for all of them; returns the cycles from the first
        TRIGGER grant to the last completion event."""
        queue = list(jobs)
        first = []

        async def programmer(index):
            # Concurrent programmers are different cores (a core programs one job at a time):
            # with several, programmer p commits as a core c with c % programmers == p.
            cores = [c for c in range(self.cores) if c % programmers == index]
            while queue:
                job = queue.pop(0)
                if programmers > 1 and job.core not in cores:
                    job.core = self.rng.choice(cores)
                trigger = await self.program(job)
                first.append(trigger.grant_cycle)

        await gather(*(programmer(p) for p in range(programmers)))
        await Combine(*(job.completed.wait() for job in jobs))
        await gather(*self.error_checks)
        return max(j.end_cycle for j in jobs) - min(first)

    async def expect_idle(self, why: str) -> None:
        status = (await self.access(0, OFFSET["STATUS"])).rdata
        if status:
            self.errors.append(f"STATUS 0x{status:x} after {why} (expected 0: no context "
                               "holds a job, engine idle)")

    async def finish(self) -> None:
        """Common end of every scenario: everything finished, nothing left running."""
        await self.expect_idle("the last job")
        finished = (await self.access(0, OFFSET["FINISHED"])).rdata & 0xFF
        ran = sum(1 for j in self.jobs if j.end_cycle is not None and not j.aborted)
        if finished != min(ran, 255):
            self.errors.append(f"FINISHED reads {finished}, but {ran} jobs finished")

    def extract_phase(self):
        self.env.scoreboard.final_check()
        if self.measured_cycles is not None:
            self.cycles = self.measured_cycles
        super().extract_phase()

    def result_fields(self) -> dict:
        return {"jobs": len(self.jobs), "tcdm_profile": self.env.env_cfg.profile.name,
                "acquire_full": self.refusals.get(-1, 0),
                "acquire_locked": self.refusals.get(-2, 0),
                "tcdm_accesses": self.env.tcdm.monitor.transactions,
                "max_grant_wait": self.env.tcdm.monitor.max_wait,
                "N": self.config.N, "M": self.config.M}


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class HwpeJobs(HwpeTestBase):
    """The command-line job of ``make sim TEST=ita_hwpe``: golden vectors of one layer shape,
    one job per head in attention modes, committed back to back through the contexts by
    alternating cores."""

    options_schema = HwpeJobOptions

    def prepare(self):
        options = self.options
        self.result_name, self.mode = options.test_name, options.mode
        self.shape = options.shape()
        for head, (job, memory) in enumerate(options.jobs(self.seed, self.config)):
            self.add_job(f"{self.mode} head {head}", job, memory, core=head % self.cores)

    async def scenario(self):
        self.measured_cycles = await self.run_jobs(self.jobs)
        await self.finish()

    def result_fields(self):
        shape = self.shape
        return {"ideal_cycles": round(sum(j.ideal_cycles for j in self.jobs)), "mode": self.mode,
                "S": shape.S, "E": shape.E, "P": shape.P, "F": shape.F, "H": shape.H,
                "stalls": int(self.options.stalls), **super().result_fields()}


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class HwpeRandom(HwpeTestBase):
    """Constrained-random jobs of every mode from two contending cores."""

    result_name = "uvm_hwpe_random"
    default_count = 6
    profile_by_seed = True
    word_aligned = True

    def prepare(self):
        modes = list(MODES)
        self.rng.shuffle(modes)
        for index in range(self.count):
            mode = modes[index % len(modes)]
            # Stream stalls do not exist at this level: the TCDM profile is the back-pressure.
            spec = random_spec(self.rng, mode, self.config, stall="none")
            self.spec_job(spec, core=self.rng.randrange(self.cores))

    async def scenario(self):
        self.measured_cycles = await self.run_jobs(self.jobs, programmers=2)
        await self.finish()


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class HwpeClear(HwpeTestBase):
    """Soft clear mid-job (another job queued behind it) and while idle; after each clear
    STATUS is 0, the dropped jobs never signal, and the next job is bit-exact."""

    result_name = "uvm_hwpe_clear"
    default_count = 2
    profile_by_seed = True

    def prepare(self):
        self.rounds = []
        for _ in range(self.count):
            mode = self.rng.choice(("attention", "ffn", "linear"))
            victim = self.spec_job(random_spec(self.rng, mode, self.config, shape="one_tile",
                                               stall="none"), core=self.rng.randrange(self.cores))
            queued = self.spec_job(random_spec(self.rng, mode, self.config, shape="one_tile",
                                               stall="none"), core=self.rng.randrange(self.cores))
            after = self.spec_job(random_spec(self.rng, self.rng.choice(MODES), self.config,
                                              stall="none"), core=self.rng.randrange(self.cores))
            self.rounds.append((victim, queued, after))

    async def scenario(self):
        clk = self.dut.clk
        loop = CycleLoop.of(clk)
        for victim, queued, after in self.rounds:
            await self.program(victim)
            await self.program(queued)
            delay = self.rng.randint(20, max(21, int(victim.ideal_cycles * 0.8)))
            await ClockCycles(clk, delay)
            if victim.completed.is_set():
                raise AssertionError(f"{victim} finished within {delay} cycles: nothing to "
                                     "clear")
            value = self.rng.choice((0, 1))  # 0 also clears the job registers
            self.logger.info(f"soft clear {value} at cycle {loop.cycle}, {delay} cycles into "
                             f"{victim}")
            clear = RegItem(write=True, addr=OFFSET["SOFT_CLEAR"], data=value, id=victim.core)
            # The clear may withdraw a TCDM request that was waiting for its grant: harmless on
            # the logarithmic interconnect (no state without a grant), so not a protocol error.
            self.env.tcdm.monitor.excuse_until = loop.cycle + 8
            await self.env.reg.run([clear])
            dropped = self.env.scoreboard.soft_clear()
            if victim not in dropped or queued not in dropped:
                raise AssertionError(f"{victim} or {queued} finished before the clear")
            await ClockCycles(clk, 4)
            await self.expect_idle("a soft clear mid-job")
            # A clear while idle changes nothing for the next job.
            await self.access(0, OFFSET["SOFT_CLEAR"], 1, write=True)
            self.measured_cycles = await self.run_jobs([after])
            await self.expect_idle("the job after a clear")


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class HwpeIllegal(HwpeTestBase):
    """Every illegal configuration kind in every mode: refused through ERROR with its job id,
    a completion event within a few cycles, no TCDM access; a checked job closes each mode."""

    result_name = "uvm_hwpe_illegal"

    def prepare(self):
        self.sequence = []
        modes = list(MODES)
        self.rng.shuffle(modes)
        for mode in modes:
            kinds = list(ILLEGAL_KINDS)
            self.rng.shuffle(kinds)
            for kind in kinds:
                self.sequence.append(self.spec_job(
                    illegal_spec(self.rng, kind, self.config, mode=mode),
                    core=self.rng.randrange(self.cores)))
            self.sequence.append(self.spec_job(
                random_spec(self.rng, mode, self.config, shape="one_tile", stall="none"),
                core=self.rng.randrange(self.cores)))

    async def scenario(self):
        monitor = self.env.tcdm.monitor
        for job in self.sequence:
            before = monitor.transactions
            trigger = await self.program(job)
            await job.completed.wait()
            await gather(*self.error_checks)
            if job.expect_error is None:
                continue
            took = job.end_cycle - trigger.grant_cycle
            if took > 8:
                self.errors.append(f"{job}: refused only {took} cycles after TRIGGER")
            if monitor.transactions != before:
                self.errors.append(f"{job}: {monitor.transactions - before} TCDM accesses for "
                                   "a refused configuration")
        await RisingEdge(self.dut.clk)
        await self.finish()


@pyuvm.test(timeout_time=TIMEOUT_S, timeout_unit="sec")
class HwpeNegativeLsb(HwpeTestBase):
    """One expected value of the first job is off by one LSB: the scoreboard must fail."""

    result_name = "uvm_hwpe_inject_lsb"
    default_count = 1

    def prepare(self):
        spec = random_spec(self.rng, "linear", self.config, shape="one_tile", stall="none")
        job = self.spec_job(spec)
        name = next(iter(job.memory.expected))
        want = job.memory.expected[name].copy()
        row, col = self.rng.randrange(want.shape[0]), self.rng.randrange(want.shape[1])
        want[row, col] = want[row, col] + 1 if want[row, col] < 127 else 126
        job.memory = replace(job.memory, expected={**job.memory.expected, name: want})

    async def scenario(self):
        await self.run_jobs(self.jobs)
