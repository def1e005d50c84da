# amaranth: UnusedElaboratable=no
"""The Requantizer RTL against the golden ``requant``, streaming a new vector every cycle."""

import itertools

import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import requant
from ita.rtl.requantizer import Requantizer
from tests.rtl.streaming import assert_lanes_equal, run_pipeline

ACC_MIN, ACC_MAX = DEFAULT_CONFIG.acc_min, DEFAULT_CONFIG.acc_max
LANES = 4


def _check(cases, *, lanes=LANES, input_width=DEFAULT_CONFIG.acc_width):
    """Run (value, mult, shift, add) cases, ``lanes`` per cycle, against the golden model."""
    cases = np.asarray(cases, dtype=np.int64)
    padding = -len(cases) % lanes
    cases = np.concatenate([cases, np.zeros((padding, 4), dtype=np.int64)])
    inputs = {name: cases[:, column].reshape(-1, lanes)
              for column, name in enumerate(("value", "mult", "shift", "add"))}
    dut = Requantizer(lanes=lanes, input_width=input_width)
    actual = run_pipeline(dut, inputs)
    assert_lanes_equal(actual, requant(*inputs.values()), inputs)


def _random_cases(rng, count, *, value_bits=DEFAULT_CONFIG.acc_width, max_shift=255):
    """Values of log-uniform magnitude (most results must not saturate), random constants."""
    magnitude_bits = rng.integers(0, value_bits, count)
    values = rng.integers(-(1 << magnitude_bits), 1 << magnitude_bits)
    shifts = np.where(rng.random(count) < 0.8, rng.integers(0, 31, count),
                      rng.integers(0, max_shift + 1, count))
    return np.stack([values, rng.integers(0, 256, count), shifts,
                     rng.integers(-128, 128, count)], axis=1)


def test_latency():
    assert Requantizer(lanes=1, input_width=26).latency == Requantizer.LATENCY == 2


def test_corner_grid():
    values = [ACC_MIN, ACC_MIN + 1, -(1 << 24), -65537, -256, -129, -128, -3, -2, -1,
              0, 1, 2, 3, 127, 128, 255, 256, 65535, 1 << 24, ACC_MAX - 1, ACC_MAX]
    mults = [0, 1, 2, 127, 128, 255]
    shifts = [0, 1, 2, 7, 8, 15, 22, 23, 24, 25, 31, 32, 33, 34, 35, 36, 40, 62, 63, 64, 128,
              255]
    adds = [-128, 0, 127]
    _check(list(itertools.product(values, mults, shifts, adds)))


def test_rounding_ties():
    # For odd mult, mult * j * 2**(s-1) with odd j lies exactly halfway: both neighbours too.
    cases = [(j * (1 << (shift - 1)) + nudge, mult, shift, add)
             for mult in (1, 3, 255) for shift in range(1, 23) for j in (-5, -3, -1, 1, 3, 5)
             for nudge in (-1, 0, 1) for add in (0, -1)]
    _check(cases)


def test_saturation_band():
    # Around both saturation points, with the offset pushing either way.
    cases = [(value, 1, 0, add) for value in range(-300, 300) for add in (-128, 0, 127)]
    cases += [(value, 3, 2, add) for value in range(-400, 400, 3) for add in (-128, 1, 127)]
    _check(cases)


def test_random():
    _check(_random_cases(np.random.default_rng(1), 4000))


def test_sixteen_lanes():
    _check(_random_cases(np.random.default_rng(2), 16 * 48), lanes=16)


def test_narrow_input_shifts_past_product():
    # An 8-bit input makes a 17-bit product, so shifts from 17 up act as "shift everything".
    rng = np.random.default_rng(3)
    cases = _random_cases(rng, 1000, value_bits=8, max_shift=40)
    cases = np.concatenate([cases, [(v, 255, s, 0) for v in (-128, -1, 0, 127)
                                    for s in range(14, 20)]])
    _check(cases, input_width=8)


def test_ports():
    def lanes(shape):
        return data.ArrayLayout(shape, 3)

    assert Requantizer(lanes=3, input_width=26).signature == wiring.Signature({
        "value": In(lanes(signed(26))),
        "mult": In(lanes(unsigned(8))),
        "shift": In(lanes(unsigned(8))),
        "add": In(lanes(signed(8))),
        "result": Out(lanes(signed(8))),
    })


def test_constant_width_from_config():
    dut = Requantizer(lanes=1, input_width=12, config=ITAConfig(requant_width=6))
    assert dut.shift.shape().elem_shape.width == 6


@pytest.mark.parametrize("kwargs", [
    {"lanes": 0, "input_width": 26},
    {"lanes": 1.0, "input_width": 26},
    {"lanes": 1, "input_width": 0},
    {"lanes": 1, "input_width": 26, "config": None},
])
def test_invalid_parameters(kwargs):
    with pytest.raises(TypeError):
        Requantizer(**kwargs)


def test_converts_to_verilog():
    text = verilog.convert(Requantizer(lanes=2, input_width=26), name="ita_requantizer",
                           emit_src=False)
    assert "module ita_requantizer" in text
    for port in ("value", "mult", "shift", "add", "result", "clk", "rst"):
        assert port in text
