"""Drive a free-running, fixed-latency pipeline with new inputs every cycle.

Inputs are numpy arrays with one row per cycle: ``(cycles, lanes)`` for array ports, ``(cycles,)``
for scalar ports. They are packed into integers before the simulation starts, so that the
testbench does little more per cycle than one ``ctx.set`` per port and one ``ctx.get``.
"""

import numpy as np
from amaranth import Value
from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["run_pipeline", "assert_lanes_equal"]


def _pack(rows, width):
    """One integer per row; lane 0 in the least-significant bits, two's complement."""
    mask = (1 << width) - 1
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim == 1:
        return [int(v) & mask for v in rows]
    return [sum((int(v) & mask) << (lane * width) for lane, v in enumerate(row)) for row in rows]


def _unpack(words, width, lanes):
    mask, half = (1 << width) - 1, 1 << (width - 1)
    return np.array([[(((word >> (lane * width)) & mask) ^ half) - half for lane in range(lanes)]
                     for word in words], dtype=np.int64)


def _lane_width(port):
    shape = port.shape()
    return shape.elem_shape.width if isinstance(shape, data.ArrayLayout) else shape.width


def run_pipeline(dut, inputs, *, output="result"):
    """Simulate ``dut`` and return its ``output`` for each cycle's inputs, ``(cycles, lanes)``.

    ``inputs`` maps port names to arrays with one row per cycle; the output of cycle ``k`` is
    read ``dut.latency`` cycles after those inputs were presented.
    """
    ports = {name: Value.cast(getattr(dut, name)) for name in inputs}
    words = {name: _pack(rows, _lane_width(getattr(dut, name))) for name, rows in inputs.items()}
    cycles = len(next(iter(inputs.values())))
    result = getattr(dut, output)
    lanes = result.shape().length
    latency = dut.latency
    seen = []

    async def testbench(ctx):
        for cycle in range(cycles + latency):
            if cycle >= latency:
                seen.append(ctx.get(Value.cast(result)))
            if cycle < cycles:
                for name, port in ports.items():
                    ctx.set(port, words[name][cycle])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return _unpack(seen, _lane_width(result), lanes)


def assert_lanes_equal(actual, expected, inputs, *, limit=8):
    """Fail naming cycle, lane, inputs, expected and actual value of the first mismatches."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    bad = np.argwhere(actual != expected)
    if not len(bad):
        return
    lines = []
    for cycle, lane in bad[:limit]:
        given = ", ".join(
            f"{name}={int(rows[cycle] if np.ndim(rows) == 1 else rows[cycle][lane])}"
            for name, rows in inputs.items())
        lines.append(f"cycle {cycle} lane {lane}: {given}: expected {int(expected[cycle, lane])}, "
                     f"got {int(actual[cycle, lane])}")
    raise AssertionError(f"{len(bad)} of {actual.size} results differ:\n" + "\n".join(lines))
