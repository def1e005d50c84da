"""Which pointer register each step's streams read or write, derived from the schedule.

The engine's schedule (:mod:`ita.rtl.schedule`) names the tensor every step reads as input,
weight and bias and writes as output; the register map says which pointer register holds
each tensor. Combining the two gives, per stream and step, the pointer index the
streamers use, so neither table is restated here.
"""

from functools import cache

from ita.rtl.layouts import Mode
from ita.rtl.schedule import plan

from . import regmap

__all__ = ["ROLES", "step_pointer_indices", "POINTER_NAMES", "fenced_steps"]

#: Stream role -> StepPlan attribute naming its tensor.
ROLES = {"input": "input", "weight": "weight_t", "bias": "bias", "output": "output"}
POINTER_NAMES = tuple(regmap.TENSOR_POINTERS)


@cache
def step_pointer_indices(role):
    """{Step: index into the pointer registers} for the tensors of stream ``role``."""
    table = {}
    for mode in Mode:
        for p in plan(mode, S=1, E=1, P=1, F=1, bias=True):
            tensor = getattr(p, ROLES[role])
            if tensor is None:
                continue
            index = POINTER_NAMES.index(regmap.pointer_register(tensor).name)
            if table.setdefault(p.step, index) != index:
                raise ValueError(f"step {p.step.name} {role} maps to two pointer registers")
    return table


@cache
def fenced_steps(role):
    """Steps whose ``role`` tensor is written earlier in the same job (by any mode).

    Before fetching such a step's first beat, a streamer waits until every earlier step's
    output has reached memory: prefetching would otherwise read data not yet written
    (AV reads the logits QK has just produced, OW reads AV's output, F2 reads F1's).
    """
    fenced = set()
    for mode in Mode:
        steps = plan(mode, S=1, E=1, P=1, F=1, bias=True)
        produced = {p.output for p in steps}
        fenced |= {p.step for p in steps if getattr(p, ROLES[role]) in produced}
    return frozenset(fenced)
