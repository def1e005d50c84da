# amaranth: UnusedElaboratable=no
"""The HWPE control slave under amaranth.sim, driven through its register port by cores."""

from collections import defaultdict

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from cluster_integration.hwpe import regmap
from cluster_integration.hwpe.control import (
    ACQUIRE_FULL,
    ACQUIRE_LOCKED,
    CLEAR_REGISTERS,
    TRIGGER_AND_RUN,
    ControlSlave,
)
from ita.cluster_config import DEFAULT
from ita.config import ITAConfig
from ita.rtl.layouts import ErrorCode

WORD_MASK = (1 << 32) - 1
COMMIT_ONLY = 1
KEEP_REGISTERS = 1
STATUS_RUNNING = next(f for f in regmap.register("STATUS").fields if f.name == "running").mask
START_TIMEOUT = 8


def encode(name, **values):
    """The word of register ``name`` holding the given field values."""
    register, word = regmap.register(name), 0
    for field in register.fields:
        if field.name in values:
            word |= (values.pop(field.name) << field.lsb) & field.mask
    assert not values, f"{name} has no fields {sorted(values)}"
    return word


def decode(name, word):
    """Field values of a register word, signed fields sign-extended."""
    values = {}
    for field in regmap.register(name).fields:
        value = (word & field.mask) >> field.lsb
        if field.signed and value >> (field.width - 1):
            value -= 1 << field.width
        values[field.name] = value
    return values


def config_member(view, path):
    for part in path.split("."):
        view = view[int(part)] if part.isdigit() else getattr(view, part)
    return view


class Harness:
    """Bus-master coroutines for the cores plus the wrapper's ``finish`` pulse.

    ``log`` maps each pulse output to the (cycle, value) pairs where it was non-zero.
    """

    def __init__(self, ctx, dut, log):
        self.ctx, self.dut, self.log = ctx, dut, log

    async def access(self, name, *, core, write=False, data=0, be=0xF):
        ctx, port = self.ctx, self.dut.periph
        for signal, value in ((port.req, 1), (port.addr, regmap.register(name).offset),
                              (port.we, int(write)), (port.wdata, data & WORD_MASK),
                              (port.be, be), (port.id, core)):
            ctx.set(signal, value)
        while True:
            _, _, granted = await ctx.tick().sample(port.gnt)
            if granted:
                break
        ctx.set(port.req, 0)
        assert ctx.get(port.r_valid), "no response one cycle after the grant"
        assert ctx.get(port.r_id) == core
        return ctx.get(port.r_data)

    async def read(self, name, *, core=0):
        return await self.access(name, core=core)

    async def write(self, name, data, *, core=0, be=0xF):
        assert await self.access(name, core=core, write=True, data=data, be=be) == 0

    async def acquire(self, *, core=0):
        value = await self.read("ACQUIRE", core=core)
        return value - (1 << 32) if value >> 31 else value

    async def program(self, registers, *, core=0):
        for name, word in registers.items():
            await self.write(name, word, core=core)

    async def trigger(self, value=TRIGGER_AND_RUN, *, core=0):
        await self.write("TRIGGER", value, core=core)

    async def wait_start(self):
        for _ in range(START_TIMEOUT):
            if self.ctx.get(self.dut.start):
                return
            await self.ctx.tick()
        raise AssertionError("no start pulse")

    async def finish(self, code=ErrorCode.NONE):
        self.ctx.set(self.dut.finish, 1)
        self.ctx.set(self.dut.finish_error, code)
        await self.ctx.tick()
        self.ctx.set(self.dut.finish, 0)

    async def idle(self, cycles=START_TIMEOUT):
        await self.ctx.tick().repeat(cycles)

    def get(self, path):
        return self.ctx.get(config_member(self.dut.job_config, path))

    def pointer(self, name):
        return self.ctx.get(self.dut.job_pointers[list(regmap.TENSOR_POINTERS).index(name)])

    def pulses(self, name):
        return [value for _, value in self.log[name]]


def simulate(body, **kwargs):
    """Run ``body(harness)`` against a fresh ControlSlave; pulses are logged in the background."""
    dut = ControlSlave(**kwargs)
    log = defaultdict(list)
    pulses = {"start": dut.start, "events": dut.events, "clear": dut.clear,
              "sw_events": dut.sw_events}

    async def monitor(ctx):
        cycle = 0
        async for _, _, *values in ctx.tick().sample(*pulses.values()):
            for name, value in zip(pulses, values, strict=True):
                if value:
                    log[name].append((cycle, value))
            cycle += 1

    async def bench(ctx):
        await body(Harness(ctx, dut, log))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
    return log


def attention_job(seq_len):
    """A job touching every kind of field: enums, several requant sets, signed constants."""
    return {
        "MODE": encode("MODE", mode=0, activation=1, bias_enable=1, causal=1),
        "DIMS_SE": encode("DIMS_SE", seq_len=seq_len, embed=128),
        "DIMS_PF": encode("DIMS_PF", proj=64, ffn=256),
        "VALID_KEYS": encode("VALID_KEYS", valid_keys=seq_len - 1),
        "REQUANT_QK": encode("REQUANT_QK", mult=200, shift=9, add=-5),
        "REQUANT_F2": encode("REQUANT_F2", mult=7, shift=3, add=127),
        "GELU": encode("GELU", b=-1234, c=-32768),
        "ACT_REQUANT": encode("ACT_REQUANT", mult=1, shift=2, add=-128),
        "PTR_Q_IN": DEFAULT.l1_base + seq_len,
        "PTR_OUT": 0xFFFF_FFFC,
    }


def check_config(harness, job):
    """Every configured field and pointer of ``job`` reaches the engine, field by field."""
    for name, word in job.items():
        register = regmap.register(name)
        values = decode(name, word)
        for field in register.fields:
            if field.config is not None:
                assert harness.get(field.config) == values[field.name], field.config
        if name in regmap.TENSOR_POINTERS:
            assert harness.pointer(name) == word


def test_job_cycle():
    core, job = 3, attention_job(64)

    async def body(h):
        assert await h.acquire(core=core) == 0
        await h.program(job, core=core)
        assert await h.read("DIMS_SE", core=core) == job["DIMS_SE"]
        await h.trigger(core=core)
        await h.wait_start()
        check_config(h, job)
        assert h.get("seq_len") == 64 and h.get("requant.3.shift") == 9
        assert h.get("gelu_b") == -1234 and h.get("requant.3.add") == -5
        assert h.ctx.get(h.dut.busy)
        assert await h.read("STATUS") == STATUS_RUNNING | 0b01
        assert await h.read("RUNNING_JOB") == 0
        await h.idle(3)
        assert h.pulses("start") == [1] and not h.log["events"]
        await h.finish()
        await h.idle(2)
        assert h.pulses("events") == [1 << core]
        assert await h.read("STATUS") == 0
        assert await h.read("FINISHED") == 1
        assert await h.read("FINISHED") == 0
        assert await h.read("ERROR") == encode("ERROR", code=0, job_id=0)

    simulate(body)


@pytest.mark.parametrize("contexts", [2, 3])
def test_contexts_fill_while_running(contexts):
    jobs = [attention_job(16 * (index + 1)) for index in range(contexts)]

    async def body(h):
        for index, job in enumerate(jobs):
            assert await h.acquire(core=index) == index
            await h.program(job, core=index)
            await h.trigger(core=index)
            if index == 0:
                await h.wait_start()
        assert await h.acquire(core=7) == ACQUIRE_FULL
        assert await h.read("STATUS") == STATUS_RUNNING | ((1 << contexts) - 1)
        check_config(h, jobs[0])  # programming the other contexts left the running one alone
        for index, job in enumerate(jobs):
            if index:
                await h.wait_start()
                check_config(h, job)
                assert await h.read("RUNNING_JOB") == index
            await h.finish()
            await h.idle(1)
            assert h.pulses("events")[-1] == 1 << index
        assert h.pulses("start") == [1] * contexts
        # A context keeps its values: reprogram only the sequence length of context 0.
        assert await h.acquire(core=5) == contexts
        await h.write("DIMS_SE", encode("DIMS_SE", seq_len=48, embed=128), core=5)
        await h.trigger(core=5)
        await h.wait_start()
        check_config(h, {**jobs[0], "DIMS_SE": encode("DIMS_SE", seq_len=48, embed=128)})

    simulate(body, config=ITAConfig(contexts=contexts))


def test_lock_contention():
    async def body(h):
        assert await h.acquire(core=1) == 0
        await h.write("DIMS_SE", 0x0040_0020, core=1)
        assert await h.acquire(core=2) == ACQUIRE_LOCKED
        await h.write("DIMS_SE", 0x1111_1111, core=2)  # ignored: core 2 has no lock
        await h.trigger(core=2)  # ignored
        await h.idle()
        assert await h.read("STATUS") == 0 and not h.log["start"]
        assert await h.acquire(core=1) == 0  # keeps the lock and the id
        assert await h.read("DIMS_SE", core=1) == 0x0040_0020
        await h.trigger(COMMIT_ONLY, core=1)
        assert await h.acquire(core=2) == 1
        assert await h.acquire(core=1) == ACQUIRE_LOCKED

    simulate(body)


def test_commit_only_then_trigger():
    async def body(h):
        assert await h.acquire(core=4) == 0
        await h.program(attention_job(16), core=4)
        await h.trigger(COMMIT_ONLY, core=4)
        await h.idle()
        assert not h.log["start"] and not h.ctx.get(h.dut.busy)
        assert await h.read("STATUS") == 0b01
        assert await h.acquire(core=6) == 1
        await h.program(attention_job(32), core=6)
        await h.trigger(core=6)  # also triggers the waiting job, which runs first
        await h.wait_start()
        check_config(h, attention_job(16))
        await h.finish()
        await h.wait_start()
        check_config(h, attention_job(32))
        await h.finish()
        await h.idle(1)
        assert h.pulses("events") == [1 << 4, 1 << 6]
        assert h.pulses("start") == [1, 1]

    simulate(body)


def test_finished_read_clear_saturation_and_id_wrap():
    saturated = (1 << regmap.register("FINISHED").fields[0].width) - 1
    jobs = saturated + 2

    async def body(h):
        for index in range(jobs):
            assert await h.acquire() == index % 256
            await h.trigger()
            await h.wait_start()
            await h.finish()
        assert await h.read("FINISHED") == saturated
        assert await h.read("FINISHED") == 0
        # A finish in the cycle of the read is counted after the clear, not lost.
        assert await h.acquire() == jobs % 256
        await h.trigger()
        await h.wait_start()
        await h.finish()
        assert await h.acquire() == (jobs + 1) % 256
        await h.trigger()
        await h.wait_start()
        h.ctx.set(h.dut.finish, 1)
        assert await h.read("FINISHED") == 1
        h.ctx.set(h.dut.finish, 0)
        assert await h.read("FINISHED") == 1

    simulate(body)


def test_error_register():
    async def body(h):
        for _ in range(3):
            job_id = await h.acquire(core=2)
            await h.trigger(core=2)
            await h.wait_start()
            await h.finish(ErrorCode.BAD_VALID_KEYS)
        assert await h.read("ERROR") == encode("ERROR", code=ErrorCode.BAD_VALID_KEYS,
                                               job_id=job_id)
        await h.acquire(core=2)
        await h.trigger(core=2)
        await h.wait_start()
        await h.finish()
        assert await h.read("ERROR") == encode("ERROR", code=0, job_id=job_id + 1)

    simulate(body)


@pytest.mark.parametrize("value", [CLEAR_REGISTERS, KEEP_REGISTERS])
def test_soft_clear(value):
    job = attention_job(64)

    async def body(h):
        await h.acquire(core=1)
        await h.program(job, core=1)
        await h.trigger(core=1)
        await h.wait_start()
        await h.acquire(core=2)
        await h.trigger(COMMIT_ONLY, core=2)
        assert await h.acquire(core=3) == 2  # holds the lock on the free context
        await h.write("SOFT_CLEAR", value, core=5)
        await h.idle(1)
        assert h.pulses("clear") == [1]
        assert not h.ctx.get(h.dut.busy)
        assert await h.read("STATUS") == 0
        await h.finish()  # the aborted job's late finish is dropped
        await h.idle(2)
        assert not h.log["events"]
        assert await h.read("FINISHED") == 0
        assert await h.acquire(core=4) == 3  # lock released, ids continue
        kept = value != CLEAR_REGISTERS
        for name, word in job.items():  # context pointers reset: context 0 again
            assert await h.read(name, core=4) == (word if kept else 0)
        assert h.pulses("start") == [1]

    simulate(body, config=ITAConfig(contexts=3))  # one running, one waiting, one locked


def test_soft_clear_beats_a_start():
    async def body(h):
        await h.acquire()
        await h.trigger()
        await h.write("SOFT_CLEAR", KEEP_REGISTERS)  # in the cycle the job would start
        await h.idle()
        assert not h.log["start"] and not h.ctx.get(h.dut.busy)

    simulate(body)


def test_byte_enables():
    async def body(h):
        await h.acquire()
        await h.write("PTR_A", 0x1122_3344)
        await h.write("PTR_A", 0xAABB_CCDD, be=0b0010)
        assert await h.read("PTR_A") == 0x1122_CC44
        await h.write("PTR_A", 0xAABB_CCDD, be=0b1001)
        assert await h.read("PTR_A") == 0xAA22_CCDD
        await h.write("DIMS_SE", encode("DIMS_SE", seq_len=0x1234, embed=0x5678), be=0b0100)
        assert decode("DIMS_SE", await h.read("DIMS_SE")) == {"seq_len": 0, "embed": 0x78}
        await h.write("MODE", WORD_MASK)  # bits outside the fields are not stored
        assert await h.read("MODE") == encode("MODE", mode=3, activation=3, bias_enable=1,
                                              causal=1, logit_frac=3)

    simulate(body)


def test_sw_events():
    async def body(h):
        for line in (0, 5, 7):
            await h.write("SW_EVT", line, core=1)
        await h.idle(1)
        assert h.pulses("sw_events") == [1, 1 << 5, 1 << 7]

    simulate(body)


@pytest.mark.parametrize("contexts", [1, 2, 3])
def test_verilog(contexts):
    text = verilog.convert(ControlSlave(config=ITAConfig(contexts=contexts)),
                           name="ita_hwpe_control", emit_src=False)
    assert "module ita_hwpe_control" in text


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        ControlSlave(config=ITAConfig(contexts=9))
    with pytest.raises(ValueError):
        ControlSlave(cores=17, id_width=4)
