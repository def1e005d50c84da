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

__all__ = ["ROLES", "step_pointer_indices", "POINTER_NAMES", "fence_requirements", "PREVIOUS"]

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
def fence_requirements(role):
    """{(mode, step): producer} for steps whose ``role`` tensor is written in the same job.

    ``producer`` is the position (in the job's step sequence) of the step that writes the
    tensor, or ``PREVIOUS`` when that is always the step just before (AV reads the logits
    its QK has just produced, OW reads AV's output, F2 reads F1's). Before fetching such a
    step's beats a streamer waits until the producer's output is entirely in memory;
    prefetching would otherwise read data not yet written.
    """
    table = {}
    for mode in Mode:
        for seq_len in (1, 200):  # one row block and several
            steps = plan(mode, S=seq_len, E=1, P=1, F=1, bias=True)
            for index, p in enumerate(steps):
                tensor = getattr(p, ROLES[role])
                producers = [k for k in range(index) if steps[k].output == tensor]
                if not producers:
                    continue
                producer = PREVIOUS if producers[-1] == index - 1 else producers[-1]
                if table.setdefault((mode, p.step), producer) != producer:
                    raise ValueError(f"{mode.name} {p.step.name}: {role} producer varies")
    return table


PREVIOUS = "previous"
