"""Requantization and activations against hand-computed values and the naive model."""

import numpy as np
import pytest

from ita.config import ITAConfig
from ita.golden import (
    REFERENCE_GELU,
    AccumulatorOverflowError,
    activate,
    check_accumulator,
    gelu_constants,
    i_gelu,
    i_gelu_poly,
    relu,
    requant,
    requant_constants,
)
from tests.model import naive

# (x, mult, shift, add, expected): every row computed by hand from the contract.
REQUANT_CASES = [
    (-3, 1, 1, 0, -1),        # -1.5 rounds half up to -1 (not away from zero)
    (3, 1, 1, 0, 2),          # +1.5 -> 2
    (-5, 1, 1, 0, -2),        # -2.5 -> -2
    (5, 1, 1, 0, 3),          # +2.5 -> 3
    (-1, 1, 1, 0, 0),         # -0.5 -> 0
    (-7, 1, 2, 0, -2),        # -1.75 -> -2
    (-6, 1, 2, 0, -1),        # -1.5 -> -1
    (10, 3, 0, 0, 30),        # shift 0: no rounding at all
    (-10, 3, 0, -5, -35),     # shift 0 with a negative add
    (100, 2, 0, 0, 127),      # saturation high
    (-100, 2, 0, 0, -128),    # saturation low
    (1000, 255, 10, 0, 127),  # 249.02 saturates
    (-1000, 255, 11, 0, -125),  # -124.51 -> -125
    (200, 64, 7, 27, 127),    # 100 + 27 = 127 exactly
    (200, 64, 7, 28, 127),    # 128 saturates
    (-256, 64, 7, -1, -128),  # -128 - 1 saturates
    (12345, 0, 5, 7, 7),      # mult 0 leaves the add
    ((1 << 22) - 1, 1, 23, 0, 0),  # the float reference rounds this one up to 1
    (-(1 << 25), 255, 40, 0, 0),   # shift beyond the product width
    ((1 << 25) - 1, 255, 255, 3, 3),
]


@pytest.mark.parametrize("x, mult, shift, add, expected", REQUANT_CASES)
def test_requant_hand_computed(x, mult, shift, add, expected):
    assert requant(x, mult, shift, add) == expected
    assert naive.requant_int(x, mult, shift, add) == expected


def test_requant_matches_naive_and_float_reference():
    rng = np.random.default_rng(1)
    x = rng.integers(-(1 << 25), 1 << 25, 20000)
    mult = rng.integers(0, 256, x.size)
    shift = rng.integers(0, 40, x.size)
    add = rng.integers(-128, 128, x.size)
    got = requant(x, mult, shift, add)
    want = [naive.requant_int(*map(int, args)) for args in zip(x, mult, shift, add, strict=True)]
    np.testing.assert_array_equal(got, want)
    small = shift < 23
    want_float = [naive.requant_float(*map(int, args))
                  for args in zip(x[small], mult[small], shift[small], add[small], strict=True)]
    np.testing.assert_array_equal(got[small], want_float)


def test_requant_broadcasts_per_column_constants():
    x = np.array([[10, 10, 10], [-10, -10, -10]])
    got = requant(x, [1, 2, 3], [1, 1, 1], [0, 0, 1])
    np.testing.assert_array_equal(got, [[5, 10, 16], [-5, -10, -14]])


@pytest.mark.parametrize("mult, shift, add", [(256, 0, 0), (-1, 0, 0), (1, 256, 0),
                                              (1, -1, 0), (1, 0, 128), (1, 0, -129)])
def test_requant_rejects_out_of_range_constants(mult, shift, add):
    with pytest.raises(ValueError):
        requant(1, mult, shift, add)


def test_gelu_all_inputs_reference_constants():
    g = REFERENCE_GELU
    assert (g.b, g.c, g.mult, g.shift, g.add) == (-80, -7091, 74, 20, 0)
    q = np.arange(-128, 128)
    got = i_gelu(q, g.b, g.c, g.act_rq)
    want = [naive.gelu_int(int(v), g.b, g.c, g.mult, g.shift, g.add) for v in q]
    np.testing.assert_array_equal(got, want)
    assert got[q == 40][0] == -36  # sign-inverted GELU, as the reference hardware computes
    assert got[q == 0][0] == 0


def test_gelu_all_inputs_random_constants():
    rng = np.random.default_rng(2)
    q = np.arange(-128, 128)
    for _ in range(40):
        b = int(rng.integers(-300, 0))
        c = int(rng.integers(-(1 << 15), 1 << 15))
        act = (int(rng.integers(0, 256)), int(rng.integers(0, 32)), int(rng.integers(-128, 128)))
        got = i_gelu(q, b, c, act)
        want = [naive.gelu_int(int(v), b, c, *act) for v in q]
        np.testing.assert_array_equal(got, want, err_msg=f"b={b} c={c} act={act}")


def test_gelu_poly_wraps_at_hardware_width():
    # (128 - 300)**2 - 32768 = -3184... no wrap; pick values that exceed 2**25.
    b, c = -32768, 32767
    q = np.array([-128, 127])
    raw = (np.minimum(np.abs(q), 32768) + b) ** 2 + c
    assert np.all(raw > (1 << 25))
    got = i_gelu_poly(q, b, c)
    assert np.all(got >= -(1 << 25)) and np.all(got < (1 << 25))


def test_gelu_tracks_real_gelu_up_to_sign():
    from ita.golden.reference import gelu_float
    g = REFERENCE_GELU
    q = np.arange(-127, 128)
    got = i_gelu(q, g.b, g.c, g.act_rq).astype(float)
    real = gelu_float(q / 32.0) / g.output_scale
    assert np.max(np.abs(got - np.clip(real, -128, 127))) <= 2.0


def test_relu_and_activate():
    q = np.array([-128, -1, 0, 1, 127])
    np.testing.assert_array_equal(relu(q, (1, 0, 0)), [0, 0, 0, 1, 127])
    np.testing.assert_array_equal(relu(q, (3, 1, -2)), [-2, -2, -2, 0, 127])
    np.testing.assert_array_equal(activate(q, "identity"), q)
    with pytest.raises(ValueError, match="unknown activation"):
        activate(q, "swish")


def test_accumulator_overflow_names_step_row_col():
    cfg = ITAConfig()
    acc = np.zeros((3, 4), dtype=np.int64)
    check_accumulator(acc, "Q", cfg)
    acc[2, 1] = cfg.acc_max + 1
    with pytest.raises(AccumulatorOverflowError, match=r"step Q: .* row=2, col=1: 33554432"):
        check_accumulator(acc, "Q", cfg)
    acc[2, 1] = cfg.acc_min
    check_accumulator(acc, "Q", cfg)


def test_config_limits():
    cfg = ITAConfig()
    assert cfg.max_inner_with_bias == 1536
    assert cfg.max_inner_without_bias == 2047
    assert cfg.max_keys == 2047
    assert cfg.macs_per_cycle == 1024 and cfg.beats_per_tile == 256
    with pytest.raises(ValueError, match="multiple of N"):
        ITAConfig(N=16, M=40)


def test_requant_constants_round_trip():
    for scale in (1e-5, 3.3e-4, 0.01, 0.37, 0.999, 1.0, 1.7, 13.0, 200.0):
        mult, shift = requant_constants(scale)
        assert 0 < mult < 256 and 0 <= shift <= 62
        assert abs(mult / 2**shift - scale) <= 0.5 / 2**shift + 1e-12
        if shift > 0:
            assert mult >= 128
    with pytest.raises(ValueError):
        requant_constants(0)
    with pytest.raises(ValueError):
        requant_constants(300)


def test_gelu_constants_follow_scale():
    g = gelu_constants(0.05)
    assert g.output_scale == -0.05
    assert g.b == round(-1.769 / (0.05 / 2**0.5))
    # The integer GELU with these constants stays within 2 LSB of the real function.
    from ita.golden.reference import gelu_float
    q = np.arange(-127, 128)
    got = i_gelu(q, g.b, g.c, g.act_rq).astype(float)
    real = gelu_float(q * 0.05) / g.output_scale
    assert np.max(np.abs(got - np.clip(real, -128, 127))) <= 2.0
