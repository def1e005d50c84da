# amaranth: UnusedElaboratable=no
"""The Activation RTL against the golden ``activate``, streaming a new vector every cycle."""

import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import ACTIVATIONS, REFERENCE_GELU, activate
from ita.rtl.activation import Activation
from ita.rtl.layouts import ActivationKind
from ita.rtl.requantizer import Requantizer
from tests.rtl.streaming import assert_lanes_equal, run_pipeline

LANES = 4
INT8 = np.arange(-128, 128)
KIND_CODES = (0, 1, 2, 3)


def _golden_name(kind):
    return ACTIVATIONS[kind] if kind < len(ACTIVATIONS) else "identity"


def _check(inputs, *, config=DEFAULT_CONFIG):
    """Stream ``inputs`` (port name -> one row per cycle) and compare with the golden model."""
    lanes = inputs["value"].shape[1]
    actual = run_pipeline(Activation(lanes=lanes, config=config), inputs)
    expected = np.stack([
        activate(inputs["value"][cycle], _golden_name(int(inputs["kind"][cycle])),
                 gelu_b=inputs["gelu_b"][cycle], gelu_c=inputs["gelu_c"][cycle],
                 act_rq=(inputs["act_mult"][cycle], inputs["act_shift"][cycle],
                         inputs["act_add"][cycle]),
                 config=config)
        for cycle in range(len(actual))])
    assert_lanes_equal(actual, expected, inputs)


def _constant_inputs(cycles, b, c, mult, shift, add):
    return {name: np.full(cycles, value) for name, value in (
        ("gelu_b", b), ("gelu_c", c), ("act_mult", mult), ("act_shift", shift), ("act_add", add))}


def _random_inputs(rng, cycles, lanes, config=DEFAULT_CONFIG):
    """Random kinds, values and constants, all changing every cycle."""
    const_max = 1 << (config.gelu_const_width - 1)
    # Half the b values in the useful range (a clipping point -b within the int8 range).
    gelu_b = np.where(rng.random(cycles) < 0.5, rng.integers(-200, 1, cycles),
                      rng.integers(-const_max, const_max, cycles))
    shift = np.where(rng.random(cycles) < 0.8, rng.integers(0, 31, cycles),
                     rng.integers(0, 256, cycles))
    return {
        "value": rng.integers(-128, 128, (cycles, lanes)),
        "kind": rng.integers(0, len(KIND_CODES), cycles),
        "gelu_b": gelu_b,
        "gelu_c": rng.integers(-const_max, const_max, cycles),
        "act_mult": rng.integers(0, 256, cycles),
        "act_shift": shift,
        "act_add": rng.integers(-128, 128, cycles),
    }


def test_latency():
    assert Activation(lanes=1).latency == 4
    assert Activation(lanes=1).latency == 2 + Requantizer.LATENCY


def test_kind_encoding_follows_golden_order():
    assert [kind.name.lower() for kind in ActivationKind] == list(ACTIVATIONS)
    assert [kind.value for kind in ActivationKind] == list(range(len(ACTIVATIONS)))


def test_all_int8_inputs_reference_constants_kind_every_cycle():
    # Cycle k applies kind k % 4; each kind sees all 256 inputs over its 64 cycles.
    per_kind = len(INT8) // LANES
    cycles = per_kind * len(KIND_CODES)
    kind = np.resize(KIND_CODES, cycles)
    value = np.stack([INT8.reshape(per_kind, LANES)[cycle // len(KIND_CODES)]
                      for cycle in range(cycles)])
    g = REFERENCE_GELU
    _check({"value": value, "kind": kind,
            **_constant_inputs(cycles, g.b, g.c, g.mult, g.shift, g.add)})


@pytest.mark.parametrize("kind", KIND_CODES)
def test_all_int8_inputs_random_constants(kind):
    # Every cycle has its own random constants; all 256 inputs pass through each kind.
    rng = np.random.default_rng(10 + kind)
    inputs = _random_inputs(rng, len(INT8) // LANES, LANES)
    inputs["value"] = rng.permutation(INT8).reshape(-1, LANES)
    inputs["kind"][:] = kind
    _check(inputs)


def test_random_stream():
    _check(_random_inputs(np.random.default_rng(20), 1500, LANES))


def test_corner_constants():
    # Extremes of b (no clipping, or -b = 32768 beyond any int16), c, mult, shift and add.
    corners = [(b, c, mult, shift, add)
               for b in (-32768, -129, -128, -80, -1, 0, 1, 32767)
               for c in (-32768, -7091, 0, 32767)
               for mult, shift, add in ((0, 0, 0), (1, 0, 0), (255, 0, -128), (255, 31, 127),
                                        (74, 20, 0), (1, 255, 0), (255, 23, -128))]
    cycles = len(corners) * len(KIND_CODES)
    rng = np.random.default_rng(30)
    constants = np.repeat(corners, len(KIND_CODES), axis=0)
    # Include the most negative and positive values in every cycle.
    value = rng.integers(-128, 128, (cycles, LANES))
    value[:, 0], value[:, 1] = -128, 127
    _check({"value": value, "kind": np.resize(KIND_CODES, cycles),
            **{name: constants[:, column] for column, name in enumerate(
                ("gelu_b", "gelu_c", "act_mult", "act_shift", "act_add"))}})


def test_sixteen_lanes():
    _check(_random_inputs(np.random.default_rng(40), 64, 16))


@pytest.mark.parametrize("gelu_width", [20, 12])
def test_narrower_polynomial(gelu_width):
    # Narrower polynomials wrap far more often than the default 26 bits.
    config = ITAConfig(gelu_width=gelu_width)
    _check(_random_inputs(np.random.default_rng(50), 300, LANES, config), config=config)


def test_ports():
    int8 = data.ArrayLayout(signed(8), 3)
    assert Activation(lanes=3).signature == wiring.Signature({
        "value": In(int8),
        "kind": In(unsigned(2)),
        "gelu_b": In(signed(16)),
        "gelu_c": In(signed(16)),
        "act_mult": In(unsigned(8)),
        "act_shift": In(unsigned(8)),
        "act_add": In(signed(8)),
        "result": Out(int8),
    })


@pytest.mark.parametrize("kwargs", [
    {"lanes": 0},
    {"lanes": "4"},
    {"lanes": 4, "config": None},
])
def test_invalid_parameters(kwargs):
    with pytest.raises(TypeError):
        Activation(**kwargs)


def test_polynomial_must_carry_int8():
    with pytest.raises(ValueError, match="gelu_width"):
        Activation(lanes=1, config=ITAConfig(gelu_width=7))


def test_converts_to_verilog():
    text = verilog.convert(Activation(lanes=2), name="ita_activation", emit_src=False)
    assert "module ita_activation" in text
    for port in ("value", "kind", "gelu_b", "gelu_c", "act_mult", "act_shift", "act_add",
                 "result"):
        assert port in text
