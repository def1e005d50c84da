"""Every formal property: its harness, the broken variant it must reject, its depth."""

from collections.abc import Callable
from dataclasses import dataclass

from amaranth import Elaboratable

from formal import control, dma, event_unit, hwpe, l1

__all__ = ["Property", "PROPERTIES", "by_name"]


@dataclass(frozen=True)
class Property:
    """``harness(block)`` builds the check around ``block`` (``None``: the real block, with
    the invariants over its internals that k-induction needs); ``broken`` is the variant that
    must fail it, judged by the property's own assertions only. ``induction`` is the k
    tried for a full proof (``None`` when the harness is too large for it to be worth the
    time). ``fast`` ones run in ``make test``."""

    name: str
    statement: str
    harness: Callable[[object], Elaboratable]
    broken: object
    broken_doc: str
    depth: int
    induction: int | None
    fast: bool = True


def _control(prop):
    return lambda block: control.ControlHarness(prop, block or control.slave,
                                                invariants=block is None)


def _doc(factory):
    return factory.__doc__.split(":", 1)[-1].strip()


_CONTROL_DEPTH = 12
_INDUCTION_K = 6

PROPERTIES = (
    Property("control.start_once",
             "a committed and triggered job is started exactly once, within "
             f"{control.START_LATENCY} idle cycle",
             _control("start_once"), control.starts_twice, _doc(control.starts_twice),
             _CONTROL_DEPTH, _INDUCTION_K),
    Property("control.soft_clear",
             "after SOFT_CLEAR every context is idle: nothing runs, starts or ends, STATUS "
             "reads 0, ACQUIRE finds a context",
             _control("soft_clear"), control.ignores_clear_while_busy,
             _doc(control.ignores_clear_while_busy), _CONTROL_DEPTH, _INDUCTION_K),
    Property("control.lock_exclusive",
             "the ACQUIRE lock is never granted to a second core",
             _control("lock_exclusive"), control.drops_core_id, _doc(control.drops_core_id),
             _CONTROL_DEPTH, _INDUCTION_K),
    Property("hwpe.illegal_config",
             "an illegal configuration never starts the engine or the streams, ends within "
             f"{hwpe.REFUSAL_CYCLES} cycles and leaves its code in ERROR",
             lambda block: hwpe.IllegalConfigHarness(block or hwpe.honest),
             hwpe.accepts_anything, _doc(hwpe.accepts_anything), 8, None),
    Property("event_unit.barrier",
             "the barrier releases only once BARRIER_COUNT cores arrived, releases exactly "
             "them at once, and they read the completed-barrier count",
             lambda block: event_unit.BarrierHarness(block or event_unit.event_unit,
                                                     invariants=block is None),
             event_unit.lets_core0_through, _doc(event_unit.lets_core0_through),
             _CONTROL_DEPTH, _INDUCTION_K),
    Property("l1.bank_exclusive",
             "each bank serves at most one grant per cycle, only to requesters; the wide port "
             "gets all its banks or none, and a refused wide request leaves them to the cores",
             lambda block: l1.BankHarness(block or l1.l1), l1.grants_wide_always,
             _doc(l1.grants_wide_always), _CONTROL_DEPTH, _INDUCTION_K),
    Property("l1.starvation",
             "no port (cores, DMA, wide) is refused more times in a row than "
             "L1Memory.refusal_bounds, either priority",
             lambda block: l1.StarvationHarness(block or l1.l1), l1.never_yields,
             _doc(l1.never_yields), 16, 8),
    Property("dma.refusal",
             "a transfer the DMA's rule refuses makes no memory request and ends "
             f"{dma.REFUSAL_CYCLES} cycles after its START with its event and `refused`; "
             "ERROR returns the reading core's causes and count exactly",
             lambda block: dma.RefusalHarness(block or dma.dma), dma.checks_first_row_only,
             _doc(dma.checks_first_row_only), _CONTROL_DEPTH, None),
    Property("dma.transfer",
             "every write lies in the destination range of the transfer in flight; each "
             "transfer raises one event, on its starting core's line",
             lambda block: dma.TransferHarness(block or dma.dma), dma.writes_one_word_late,
             _doc(dma.writes_one_word_late), _CONTROL_DEPTH, None, fast=False),
)


def by_name(name) -> Property:
    for prop in PROPERTIES:
        if prop.name == name:
            return prop
    raise KeyError(name)
