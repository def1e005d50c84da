"""pyuvm self-tests of the reusable agents against :mod:`verif.uvm.selftest_design`.

* ``StreamAgentSelftest`` -- source and sink agents around the stream loopback, every source
  profile crossed with every sink profile; the monitors' beats are compared in order and every
  non-``none`` profile must really have stalled.
* ``TcdmAgentSelftest`` -- random reads and writes through the design's TCDM master; the slave
  agent grants with each stall profile in turn; read data is predicted by a reference memory;
  the monitor must report no protocol error and the design's own timing flag must stay low.
* ``RegAgentSelftest`` -- register writes with byte enables and reads back, back to back and
  one at a time, against the design's register slave with random grant delays; the read-only
  ID register must ignore writes.
* ``TcdmMonitorBites`` / ``RegDriverBites`` -- the design breaks the protocol on purpose (drops
  ``req`` before the grant; answers one cycle late); the checkers must report it. These tests
  pass only if the violation was caught.
"""

from __future__ import annotations

import pyuvm
from cocotb.triggers import ClockCycles, RisingEdge
from pyuvm import ConfigDB, uvm_env, uvm_subscriber

from .base import ProjectTest
from .clocking import CycleLoop
from .reg_agent import RegAgentConfig, RegBus, RegItem, RegMasterAgent
from .selftest_design import ID_VALUE, XOR_MASK, CommandLayout
from .stall import PROFILES, make_profile
from .stream_agent import StreamAgent, StreamAgentConfig, StreamBus
from .tcdm_agent import SparseMemory, TcdmAgentConfig, TcdmBus, TcdmSlaveAgent

TIMEOUT_US = 20_000


class BeatLog(uvm_subscriber):
    """Keeps every item written to it."""

    def build_phase(self):
        self.items = []

    def write(self, item):
        self.items.append(item)


def pack_command(addr, we, be, data):
    word = 0
    for name, value in (("addr", addr), ("we", we), ("be", be), ("data", data)):
        field = CommandLayout[name]
        word |= (value & ((1 << field.width) - 1)) << field.offset
    return word


# Short runs need the long-stall profile compressed to show up at all.
SHORT_RUN_PARAMS = {"long": dict(gap=50, min_len=20, max_len=80)}


def short_profile(name, rng, **params):
    return make_profile(name, rng, **{**SHORT_RUN_PARAMS.get(name, {}), **params})


class SelftestEnv(uvm_env):
    """Agents for whichever parts of the design the test uses."""

    def build_phase(self):
        test = self.get_parent()
        dut, clk = test.dut, test.dut.clk
        self.agents = {}
        for name, role in test.streams.items():
            cfg = StreamAgentConfig(StreamBus.from_prefix(dut, name), clk, role)
            ConfigDB().set(self, f"{name}_agent", "cfg", cfg)
            self.agents[name] = StreamAgent(f"{name}_agent", self)
        self.logs = {name: BeatLog(f"{name}_log", self) for name in test.streams}
        if test.use_tcdm:
            ConfigDB().set(self, "tcdm_agent", "cfg",
                           TcdmAgentConfig(TcdmBus.from_prefix(dut, "tcdm"), clk))
            self.tcdm = TcdmSlaveAgent("tcdm_agent", self)
            self.tcdm_log = BeatLog("tcdm_log", self)
        if test.use_periph:
            ConfigDB().set(self, "reg_agent", "cfg",
                           RegAgentConfig(RegBus.from_prefix(dut, "periph"), clk, master_id=5))
            self.reg = RegMasterAgent("reg_agent", self)

    def connect_phase(self):
        for name, agent in self.agents.items():
            agent.monitor.ap.connect(self.logs[name].analysis_export)
        if self.get_parent().use_tcdm:
            self.tcdm.monitor.ap.connect(self.tcdm_log.analysis_export)


# The self-tests share one simulation and one RESULT name: each test's RESULT line carries
# the totals of the tests run so far, so the last line describes the whole simulation.
_TOTALS = {"cycles": 0, "tests": 0}


class SelftestBase(ProjectTest):
    streams: dict = {}
    use_tcdm = False
    use_periph = False

    def extract_phase(self):
        _TOTALS["cycles"] += self.cycles
        _TOTALS["tests"] += 1
        self.cycles = _TOTALS["cycles"]
        super().extract_phase()

    def result_fields(self):
        return {"tests": _TOTALS["tests"]}

    def build_phase(self):
        super().build_phase()
        self.dut.tcdm_misbehave.value = 0
        self.dut.periph_late.value = 0
        for name in ("sin", "cmd"):
            getattr(self.dut, f"{name}__valid").value = 0
        for name in ("sout", "rsp"):
            getattr(self.dut, f"{name}__ready").value = 0
        for name in ("req",):
            getattr(self.dut, f"periph__{name}").value = 0
        self.dut.tcdm__gnt.value = 0
        self.dut.tcdm__r_valid.value = 0
        self.env = SelftestEnv("env", self)

    def expect(self, condition, message):
        if not condition:
            self.errors.append(message)


@pyuvm.test(timeout_time=TIMEOUT_US, timeout_unit="us")
class StreamAgentSelftest(SelftestBase):
    """Every source profile x every sink profile over the stream loopback."""

    result_name = "uvm_agents"
    streams = {"sin": "source", "sout": "sink"}

    async def scenario(self):
        source, sink = self.env.agents["sin"], self.env.agents["sout"]
        loop = CycleLoop.of(self.dut.clk)
        sent = []
        for src_name in PROFILES:
            cycles = beats_sent = 0
            for sink_name in PROFILES:
                source.set_profile(short_profile(src_name, self.rng))
                sink.set_profile(short_profile(sink_name, self.rng))
                beats = [self.rng.getrandbits(16) for _ in range(150)]
                start = loop.cycle
                item = await source.send(beats)
                sent += beats
                cycles += item.last_cycle - start
                beats_sent += len(beats)
            # With sink "none" in the mix, a source that never idles needs fewer cycles.
            if src_name != "none":
                self.expect(cycles > beats_sent + 50,
                            f"source profile {src_name} hardly stalled ({cycles} cycles for "
                            f"{beats_sent} beats)")
        sink.set_profile(make_profile("none"))
        for _ in range(50):
            if len(self.env.logs["sout"].items) == len(sent):
                break
            await ClockCycles(self.dut.clk, 4)
        got = [beat.payload for beat in self.env.logs["sout"].items]
        want = [value ^ XOR_MASK for value in sent]
        self.expect(len(got) == len(want), f"{len(got)} beats out for {len(want)} in")
        bad = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), None)
        self.expect(bad is None, f"beat {bad}: got 0x{got[bad]:x}, want 0x{want[bad]:x}"
                    if bad is not None else "")
        self.expect([b.index for b in self.env.logs["sin"].items] == list(range(len(sent))),
                    "input monitor missed or repeated beats")


@pyuvm.test(timeout_time=TIMEOUT_US, timeout_unit="us")
class TcdmAgentSelftest(SelftestBase):
    """Random accesses through the design's TCDM master; grants with every stall profile."""

    result_name = "uvm_agents"
    streams = {"cmd": "source", "rsp": "sink"}
    use_tcdm = True
    accesses = 120

    async def scenario(self):
        cmd, rsp = self.env.agents["cmd"], self.env.agents["rsp"]
        tcdm = self.env.tcdm
        reference = SparseMemory()
        expected_reads = []
        for profile in PROFILES:
            tcdm.cfg.profile = short_profile(profile, self.rng)
            rsp.set_profile(make_profile("random", self.rng))
            cmd.set_profile(make_profile("random", self.rng, p=0.2))
            words = []
            for _ in range(self.accesses):
                addr = 4 * self.rng.randrange(16)
                write = self.rng.random() < 0.5
                be = self.rng.randrange(1, 16)
                data = self.rng.getrandbits(32)
                words.append(pack_command(addr, int(write), be, data))
                if write:
                    reference.write(addr, data, be)
                else:
                    expected_reads.append(reference.read(addr))
            await cmd.send(words)
        rsp.set_profile(make_profile("none"))
        total = len(PROFILES) * self.accesses
        for _ in range(200):
            if (len(self.env.logs["rsp"].items) == len(expected_reads)
                    and len(self.env.tcdm_log.items) == total):
                break
            await ClockCycles(self.dut.clk, 4)
        got = [beat.payload for beat in self.env.logs["rsp"].items]
        first_bad = next((i for i, (g, w) in enumerate(zip(got, expected_reads, strict=False))
                          if g != w), None)
        self.expect(got == expected_reads,
                    f"read data differs from the reference memory: {len(got)} responses for "
                    f"{len(expected_reads)} reads; first difference at {first_bad}")
        txns = self.env.tcdm_log.items
        self.expect(len(txns) == total, f"monitor saw {len(txns)} transactions for {total}")
        self.expect(tcdm.monitor.max_wait >= 20, f"long grant delays never happened "
                    f"(max wait {tcdm.monitor.max_wait})")
        await RisingEdge(self.dut.clk)
        self.expect(int(self.dut.tcdm_error.value) == 0,
                    "the design saw r_valid not exactly one cycle after a read grant")

    def result_fields(self):
        return {"transactions": self.env.tcdm.monitor.transactions}


@pyuvm.test(timeout_time=TIMEOUT_US, timeout_unit="us")
class RegAgentSelftest(SelftestBase):
    """Writes with byte enables, read-back, back to back and one at a time; read-only ID."""

    result_name = "uvm_agents"
    use_periph = True

    async def scenario(self):
        reg = self.env.reg
        model = [0] * 7
        for round_ in range(6):
            items = []
            for _ in range(40):
                index = self.rng.randrange(8)
                if self.rng.random() < 0.5:
                    data, be = self.rng.getrandbits(32), self.rng.randrange(16)
                    items.append(RegItem(write=True, addr=4 * index, data=data, be=be))
                    if index < 7:
                        for byte in range(4):
                            if be >> byte & 1:
                                mask = 0xFF << (8 * byte)
                                model[index] = (model[index] & ~mask) | (data & mask)
                else:
                    item = RegItem(write=False, addr=4 * index)
                    item.want = model[index] if index < 7 else ID_VALUE
                    items.append(item)
            await reg.run(items, wait_each=bool(round_ % 2))
            for item in items:
                if not item.write:
                    self.expect(item.rdata == item.want,
                                f"read 0x{item.addr:x}: got {item.rdata}, want {item.want}")
        await reg.write(28, 0)
        self.expect(await reg.read(28) == ID_VALUE, "the read-only ID register changed")
        waits = [item.wait for item in self.env.reg.driver.history]
        self.expect(max(waits) > 0, "the slave never withheld a grant")
        history = self.env.reg.driver.history
        gaps = [b.grant_cycle - a.grant_cycle
                for a, b in zip(history, history[1:], strict=False)]
        self.expect(1 in gaps, "no two accesses were granted in consecutive cycles")


@pyuvm.test(timeout_time=TIMEOUT_US, timeout_unit="us")
class TcdmMonitorBites(SelftestBase):
    """The master drops req before a grant: the TCDM monitor must report it."""

    result_name = "uvm_agents"
    streams = {"cmd": "source", "rsp": "sink"}
    use_tcdm = True

    async def scenario(self):
        self.dut.tcdm_misbehave.value = 1
        self.env.tcdm.cfg.profile = make_profile("bursty", self.rng, duty=0.6, burst=4)
        await self.env.agents["cmd"].send(
            [pack_command(4 * i, i & 1, 0xF, i) for i in range(40)])
        await ClockCycles(self.dut.clk, 10)
        caught = [e for e in self.env.tcdm.monitor.errors if "req dropped" in e]
        self.expect(caught, "the monitor did not report req dropped before the grant")
        self.env.tcdm.monitor.errors.clear()  # expected violations
        self.env.logs["rsp"].items.clear()


@pyuvm.test(timeout_time=TIMEOUT_US, timeout_unit="us")
class RegDriverBites(SelftestBase):
    """The slave answers one cycle late: the register driver must report it."""

    result_name = "uvm_agents"
    use_periph = True

    async def scenario(self):
        self.dut.periph_late.value = 1
        await self.env.reg.run([RegItem(write=True, addr=0, data=1),
                                RegItem(write=False, addr=0)], wait_each=False)
        await ClockCycles(self.dut.clk, 4)
        errors = self.env.reg.driver.errors
        caught = [e for e in errors if "no response one cycle after" in e]
        self.expect(caught, "the driver did not report the late response")
        errors.clear()
