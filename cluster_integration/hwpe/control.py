"""The HWPE control slave: the cores' register window onto the engine.

It follows the legacy ``hwpe_ctrl_slave`` of PULP's ``hwpe-ctrl`` on the register map of
:mod:`cluster_integration.hwpe.regmap`, so that ITA-style software (acquire, program, trigger,
wait for the event) runs unchanged. Job registers exist once per job context, so that cores
program the next job while the engine runs the current one.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from cluster_integration.hwpe import regmap
from cluster_integration.protocols import PeriphSignature
from cluster_integration.registers import (
    WORD_BITS,
    RegisterDecoder,
    field_bits,
    field_value,
    read_mux,
    window_bits,
)
from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.rtl.layouts import engine_config_layout

__all__ = ["ControlSlave", "ACQUIRE_FULL", "ACQUIRE_LOCKED", "TRIGGER_AND_RUN",
           "CLEAR_REGISTERS"]

_TRIGGER = regmap.register("TRIGGER")
_ACQUIRE = regmap.register("ACQUIRE")
_FINISHED = regmap.register("FINISHED")
_STATUS = regmap.register("STATUS")
_RUNNING_JOB = regmap.register("RUNNING_JOB")
_SOFT_CLEAR = regmap.register("SOFT_CLEAR")
_ERROR = regmap.register("ERROR")
_SW_EVT = regmap.register("SW_EVT")

#: ACQUIRE read values when no job can be programmed now (see ``regmap`` ACQUIRE).
ACQUIRE_FULL = _ACQUIRE.value("FULL")
ACQUIRE_LOCKED = _ACQUIRE.value("LOCKED")
#: TRIGGER write value that also starts the job; any other value only commits it.
TRIGGER_AND_RUN = _TRIGGER.value("RUN")
#: SOFT_CLEAR write value that also zeroes the job registers; any other value keeps them.
CLEAR_REGISTERS = _SOFT_CLEAR.value("ALL")

#: Word-index bits decoded: enough for the highest register (the legacy 64-word window).
_WINDOW_BITS = window_bits(regmap.REGISTERS)

_JOB_ID_BITS = _RUNNING_JOB.field("job_id").width
_FINISHED_COUNT = _FINISHED.field("count")
_STATUS_CONTEXTS = _STATUS.field("contexts")
_STATUS_RUNNING = _STATUS.field("running")
_ERROR_CODE = _ERROR.field("code")
_ERROR_JOB_ID = _ERROR.field("job_id")
_SW_EVT_LINE = _SW_EVT.field("event")


def _member(view, path):
    """The member of a configuration view named by a dotted ``Field.config`` path."""
    for part in path.split("."):
        view = view[int(part)] if part.isdigit() else getattr(view, part)
    return view


def _one_hot(index, count):
    return Cat(index == i for i in range(count))


class ControlSlave(wiring.Component):
    """Register slave that queues jobs in ``config.contexts`` contexts and runs them in order.

    The peripheral ``id`` is the binary index of the requesting core (the PULP crossbar's
    one-hot id must be encoded before this port); it tells lock holders apart and picks the
    ``events`` line of a job. Every request is granted at once and answered one cycle later
    (``r_data`` is 0 for writes); side effects happen at the grant. Only the word-index bits
    of ``addr`` are decoded, so the register window repeats above them. Job registers read
    back the context being programmed; bits outside their fields read 0.

    ``start``, ``events``, ``clear`` and ``sw_events`` are registered pulses: ``start`` comes
    with ``busy`` already set, and a job's event comes once STATUS and FINISHED show its end.
    A ``finish`` while no job runs (e.g. after SOFT_CLEAR aborted it) is ignored.

    Parameters
    ----------
    config:
        Engine configuration: ``contexts`` and the shape of ``job_config``.
    cores:
        Cores that may commit jobs: one ``events`` line each.
    id_width:
        Width of the peripheral ``id``.
    """

    ADDR_WIDTH = 12

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG, cores=8, id_width=4):
        if not isinstance(config, ITAConfig):
            raise TypeError(f"config must be an ITAConfig, not {config!r}")
        if config.contexts > _STATUS_CONTEXTS.width:
            raise ValueError(f"STATUS shows at most {_STATUS_CONTEXTS.width} contexts, "
                             f"not {config.contexts}")
        if not isinstance(cores, int) or not 1 <= cores <= 1 << id_width:
            raise ValueError(f"cores must be 1..{1 << id_width} for id_width={id_width}, "
                             f"not {cores!r}")
        self._config, self._cores = config, cores
        super().__init__({
            "periph": In(PeriphSignature(addr_width=self.ADDR_WIDTH, id_width=id_width)),
            "job_config": Out(engine_config_layout(config)),
            "job_pointers": Out(data.ArrayLayout(unsigned(WORD_BITS),
                                                 len(regmap.POINTER_REGISTERS))),
            "start": Out(1),
            "finish": In(1),
            "finish_error": In(_ERROR_CODE.width),
            "clear": Out(1),
            "events": Out(cores),
            "sw_events": Out(1 << _SW_EVT_LINE.width),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.periph
        contexts = self._config.contexts

        def advance(pointer):
            return Mux(pointer == contexts - 1, 0, pointer + 1)[:len(pointer)]

        # Decode. Every request is granted in its own cycle.
        m.d.comb += bus.gnt.eq(bus.req)
        decoder = RegisterDecoder(bus, _WINDOW_BITS)
        reading = bus.req & ~bus.we
        writing = bus.req & bus.we
        selected = decoder.selects

        # State.
        job_registers = [{r: Signal(WORD_BITS, name=f"context{c}_{r.name.lower()}")
                          for r in regmap.JOB} for c in range(contexts)]
        job_ids = Array(Signal(_JOB_ID_BITS, name=f"context{c}_job_id") for c in range(contexts))
        committers = Array(Signal(len(bus.id), name=f"context{c}_committer")
                           for c in range(contexts))
        committed = Signal(contexts)   # holds a job not yet finished
        triggered = Signal(contexts)   # ... that may run
        pointer = Signal(range(contexts))  # the context being programmed
        running = Signal(range(contexts))  # the context run next, or now when busy
        lock_held = Signal()
        lock_owner = Signal.like(bus.id)
        next_job_id = Signal(_JOB_ID_BITS)
        running_job_id = Signal(_JOB_ID_BITS)
        finished_count = Signal(_FINISHED_COUNT.width)
        error_code = Signal(_ERROR_CODE.width)
        error_job_id = Signal(_JOB_ID_BITS)

        def context_register(context, register):
            return Array(regs[register] for regs in job_registers)[context]

        # The running context drives the engine; reading the fields generically keeps the
        # register map the single description of what programs what.
        for register in regmap.JOB:
            value = context_register(running, register)
            for field in register.fields:
                if field.config is not None:
                    m.d.comb += _member(self.job_config, field.config).eq(
                        field_value(value, field))
        for index, register in enumerate(regmap.POINTER_REGISTERS):
            m.d.comb += self.job_pointers[index].eq(context_register(running, register))

        # Programming lock.
        holds_lock = lock_held & (lock_owner == bus.id)
        locked_out = lock_held & (lock_owner != bus.id)
        full = committed.all()
        acquire_value = Signal(WORD_BITS)
        with m.If(locked_out):
            m.d.comb += acquire_value.eq(ACQUIRE_LOCKED & ((1 << WORD_BITS) - 1))
        with m.Elif(holds_lock):
            m.d.comb += acquire_value.eq(job_ids[pointer])
        with m.Elif(full):
            m.d.comb += acquire_value.eq(ACQUIRE_FULL & ((1 << WORD_BITS) - 1))
        with m.Else():
            m.d.comb += acquire_value.eq(next_job_id)
        with m.If(reading & selected(_ACQUIRE) & ~lock_held & ~full):
            m.d.sync += [lock_held.eq(1), lock_owner.eq(bus.id),
                         job_ids[pointer].eq(next_job_id), next_job_id.eq(next_job_id + 1)]

        # Job registers of the pointer context, written by the lock holder only.
        for register in regmap.JOB:
            for context in range(contexts):
                stored = job_registers[context][register]
                with m.If(writing & holds_lock & selected(register) & (pointer == context)):
                    m.d.sync += stored.eq(decoder.merged(stored) & register.mask)

        # Commit and trigger; finish; in this order so that a finish wins over a trigger.
        committing = writing & holds_lock & selected(_TRIGGER)
        run_all = committing & (bus.wdata == TRIGGER_AND_RUN)
        commit_bit = Mux(committing, _one_hot(pointer, contexts), 0)
        finishing = Signal()
        finish_bit = Mux(finishing, _one_hot(running, contexts), 0)
        m.d.sync += [
            committed.eq((committed | commit_bit) & ~finish_bit),
            triggered.eq((triggered | Mux(run_all, committed | commit_bit, 0)) & ~finish_bit),
        ]
        with m.If(committing):
            m.d.sync += [committers[pointer].eq(bus.id), pointer.eq(advance(pointer)),
                         lock_held.eq(0)]

        # Run the jobs in commit order.
        clearing = writing & selected(_SOFT_CLEAR)
        starting = ~self.busy & triggered.bit_select(running, 1) & ~clearing
        m.d.comb += finishing.eq(self.finish & self.busy & ~clearing)
        m.d.sync += self.start.eq(starting)
        with m.If(starting):
            m.d.sync += [self.busy.eq(1), running_job_id.eq(job_ids[running])]
        finished_base = Mux(reading & selected(_FINISHED), 0, finished_count)
        saturated = finished_base == (1 << _FINISHED_COUNT.width) - 1
        m.d.sync += [
            finished_count.eq(Mux(finishing & ~saturated, finished_base + 1, finished_base)),
            self.events.eq(Mux(finishing, _one_hot(committers[running], self._cores), 0)),
        ]
        with m.If(finishing):
            m.d.sync += [self.busy.eq(0), running.eq(advance(running)),
                         error_code.eq(self.finish_error), error_job_id.eq(job_ids[running])]

        # Software events and soft clear (last: it overrides everything above).
        sw_event = Const(1, len(self.sw_events)) << field_bits(bus.wdata, _SW_EVT_LINE)
        m.d.sync += [
            self.sw_events.eq(Mux(writing & selected(_SW_EVT), sw_event, 0)),
            self.clear.eq(clearing),
        ]
        with m.If(clearing):
            m.d.sync += [committed.eq(0), triggered.eq(0), pointer.eq(0), running.eq(0),
                         lock_held.eq(0), self.busy.eq(0)]
            with m.If(bus.wdata == CLEAR_REGISTERS):
                m.d.sync += [stored.eq(0) for regs in job_registers
                             for stored in regs.values()]

        # Read data, answered one cycle after the grant.
        read_value = read_mux(m, decoder.word, {
            _ACQUIRE: acquire_value,
            _FINISHED: {_FINISHED_COUNT: finished_count},
            _STATUS: {_STATUS_CONTEXTS: committed, _STATUS_RUNNING: self.busy},
            _RUNNING_JOB: {_RUNNING_JOB.field("job_id"): running_job_id},
            _ERROR: {_ERROR_CODE: error_code, _ERROR_JOB_ID: error_job_id},
            **{register: context_register(pointer, register) for register in regmap.JOB},
        })
        m.d.sync += [bus.r_valid.eq(bus.req), bus.r_id.eq(bus.id),
                     bus.r_data.eq(Mux(reading, read_value, 0))]
        return m
