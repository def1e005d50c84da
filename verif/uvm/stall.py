"""Stall and back-pressure profiles for the protocol agents.

A profile answers one question per clock cycle: *does this side hold back now?* A source
uses it to insert idle cycles (``valid`` low although data is there), a sink to withhold
``ready``, a memory slave to withhold ``gnt``. Every profile is a run-length process: it
alternates *go* and *stall* runs whose lengths it draws from its own ``random.Random``, so
the per-cycle cost is a counter decrement and one random draw per run, not per cycle.

========  ===========================================================================
name      behaviour
========  ===========================================================================
none      never stalls (the zero-delay, back-to-back case)
random    each cycle stalls independently with probability ``p`` (geometric runs)
bursty    go runs and stall runs of mean length ``burst``, stalling ``duty`` of the time
long      mostly go, with rare stalls of ``min_len`` .. ``max_len`` cycles
========  ===========================================================================

:class:`PerCycleStall` is the plain cocotb engine bench's profile: one draw per question
from a generator it may share with other streams, so the order in which the bench asks
decides the pattern. It is not in :data:`PROFILES` (the HWPE tests pick a profile by
``seed % len(PROFILES)``, and a seed keeps its stimulus).
"""

from __future__ import annotations

import math
import random

__all__ = ["StallProfile", "NoStall", "RandomStall", "BurstyStall", "LongStall",
           "PerCycleStall", "PROFILES", "make_profile"]


class StallProfile:
    """Base class: ``stall()`` is called once per cycle and returns True to hold back."""

    name = "base"

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.Random(0)
        self._stalling = True
        self._left = 0  # cycles left in the current run

    def _go_run(self) -> int:
        raise NotImplementedError

    def _stall_run(self) -> int:
        raise NotImplementedError

    def stall(self) -> bool:
        while self._left == 0:  # a run of length 0 is skipped
            self._stalling = not self._stalling
            self._left = self._stall_run() if self._stalling else self._go_run()
        self._left -= 1
        return self._stalling

    def describe(self) -> str:
        return self.name

    def _geometric(self, mean: float) -> int:
        """A run length >= 1 with the given mean (geometric distribution)."""
        if mean <= 1:
            return 1
        q = 1.0 - 1.0 / mean  # probability that the run continues
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(q))


class NoStall(StallProfile):
    name = "none"

    def stall(self) -> bool:
        return False


class RandomStall(StallProfile):
    """Independent per-cycle stalls with probability ``p`` (default 0.25)."""

    name = "random"

    def __init__(self, rng=None, p: float = 0.25):
        super().__init__(rng)
        if not 0 <= p < 1:
            raise ValueError(f"stall probability must be in [0, 1), not {p}")
        self.p = p

    def _go_run(self):
        # Runs alternate, so a go run after a stall run has at least one cycle.
        return self._geometric(1 / self.p) if self.p > 0 else 1 << 62

    def _stall_run(self):
        return self._geometric(1 / (1 - self.p)) if self.p > 0 else 0

    def describe(self):
        return f"random(p={self.p})"


class BurstyStall(StallProfile):
    """Alternating runs: stalls ``duty`` of the time in bursts of mean length ``burst``."""

    name = "bursty"

    def __init__(self, rng=None, duty: float = 0.4, burst: float = 12.0):
        super().__init__(rng)
        if not 0 < duty < 1 or burst < 1:
            raise ValueError(f"bad bursty profile duty={duty} burst={burst}")
        self.duty, self.burst = duty, burst

    def _go_run(self):
        return self._geometric(self.burst * (1 - self.duty) / self.duty)

    def _stall_run(self):
        return self._geometric(self.burst)

    def describe(self):
        return f"bursty(duty={self.duty},burst={self.burst})"


class LongStall(StallProfile):
    """Rare long stalls: mean go run ``gap`` cycles, stalls of ``min_len``..``max_len``."""

    name = "long"

    def __init__(self, rng=None, gap: float = 600.0, min_len: int = 60, max_len: int = 400):
        super().__init__(rng)
        if gap < 1 or not 1 <= min_len <= max_len:
            raise ValueError(f"bad long-stall profile gap={gap} {min_len}..{max_len}")
        self.gap, self.min_len, self.max_len = gap, min_len, max_len

    def _go_run(self):
        return self._geometric(self.gap)

    def _stall_run(self):
        return self.rng.randint(self.min_len, self.max_len)

    def describe(self):
        return f"long(gap={self.gap},len={self.min_len}..{self.max_len})"


class PerCycleStall(RandomStall):
    """Stalls with probability ``p``, one draw from ``rng`` per call (no run lengths)."""

    name = "per_cycle"

    def stall(self) -> bool:
        return self.rng.random() < self.p

    def describe(self):
        return f"per_cycle(p={self.p})"


PROFILES = {cls.name: cls for cls in (NoStall, RandomStall, BurstyStall, LongStall)}


def make_profile(name: str, rng: random.Random | None = None, **params) -> StallProfile:
    """A profile by name (``none``, ``random``, ``bursty``, ``long``) with its own RNG."""
    try:
        cls = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown stall profile {name!r}; expected one of "
                         f"{', '.join(PROFILES)}") from None
    return cls(rng, **params)
