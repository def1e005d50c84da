"""One clock loop shared by every agent on a clock.

cocotb on Verilator spends about 9 us per Python trigger, so a testbench whose five agents
each await ``RisingEdge`` and ``ReadOnly`` every cycle pays ten triggers per cycle. Instead,
agents register two plain callbacks with the :class:`CycleLoop` of their clock:

* ``drive()`` runs right after the rising edge: write the signals this side drives;
* ``sample()`` runs in the ReadOnly phase of the same cycle: read handshakes
  (``valid & ready``, ``req & gnt``); a handshake seen here completes at the next edge.

The loop awaits two triggers per cycle however many agents there are. Callbacks must not
block; work that needs to wait (fetching the next sequence item) stays in the agent's own
coroutine, which the callbacks wake through events. Signals are never written in ReadOnly.
"""

from __future__ import annotations

from collections.abc import Callable

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["CycleLoop"]


class CycleLoop:
    """The per-clock scheduler; get it with :meth:`of` so all agents share one."""

    _loops: dict[int, CycleLoop] = {}

    def __init__(self, clk):
        self.clk = clk
        self.cycle = 0  #: rising edges seen since the loop started
        self._drivers: list[tuple[int, int, Callable[[], None]]] = []
        self._samplers: list[tuple[int, int, Callable[[], None]]] = []
        self._drive_calls: list[Callable[[], None]] = []
        self._sample_calls: list[Callable[[], None]] = []
        self._task = None

    @classmethod
    def of(cls, clk) -> CycleLoop:
        """The loop of ``clk`` (created on first use, one per clock handle)."""
        key = id(clk)
        loop = cls._loops.get(key)
        if loop is None or loop.clk is not clk:
            loop = cls._loops[key] = cls(clk)
        return loop

    @classmethod
    def reset_all(cls) -> None:
        """Forget every loop (between tests: a new test registers its agents afresh)."""
        for loop in cls._loops.values():
            loop.stop()
        cls._loops.clear()

    def add(self, drive: Callable[[], None] | None = None,
            sample: Callable[[], None] | None = None, *, priority: int = 0) -> None:
        """Register callbacks; every cycle they run by ascending ``priority``, then in
        registration order (a controller that must act before the agents uses a negative
        priority)."""
        for fn, entries, calls in ((drive, self._drivers, self._drive_calls),
                                   (sample, self._samplers, self._sample_calls)):
            if fn is not None:
                entries.append((priority, len(entries), fn))
                entries.sort(key=lambda e: e[:2])
                calls[:] = [e[2] for e in entries]
        if self._task is None:
            self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        edge, read_only = RisingEdge(self.clk), ReadOnly()
        drivers, samplers = self._drive_calls, self._sample_calls
        while True:
            await edge
            self.cycle += 1
            for drive in drivers:
                drive()
            await read_only
            for sample in samplers:
                sample()
