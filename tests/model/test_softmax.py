"""ITAmax against hand-computed rows and the per-element naive model."""

import numpy as np
import pytest

from ita.config import ITAConfig
from ita.golden import AccumulatorOverflowError, causal_mask, itamax, key_mask
from ita.golden.reference import softmax_mae
from tests.model import naive


def test_single_group_hand_computed():
    # max 3; 256 >> (3 - x) = 256, 128, 32, 0 (d = 9) -> sum 416; inv = 65280 // 416 = 156.
    x = np.array([[3, 2, 0, -6]], dtype=np.int8)
    assert naive.softmax_rows(x, 4)[0].tolist() == [156, 78, 19, 0]
    assert itamax(x, 4).tolist() == [[156, 78, 19, 0]]


def test_first_group_starts_from_minus_128_without_old_sum():
    # All -128: every element contributes 256 -> sum 1024, inv 63, all equal.
    x = np.full((1, 4), -128, dtype=np.int8)
    assert itamax(x, 4).tolist() == [[63, 63, 63, 63]]


def test_max_growth_rescales_old_sum():
    # Group 0 = [0, 0] -> max 0, sum 512. Group 1 = [2, 0]: new max 2, old sum >> 2 = 128,
    # part = 256 + 64 -> 448; inv = 65280 // 448 = 145; p = 145 >> (2 - x).
    x = np.array([[0, 0, 2, 0]], dtype=np.int8)
    assert itamax(x, 2).tolist() == [[36, 36, 145, 36]]
    # The same row in one group: sum = 64 + 64 + 256 + 64 = 448 too.
    assert itamax(x, 4).tolist() == [[36, 36, 145, 36]]
    # Floors make the grouping matter: [1, 1 | 2, 2] in one group sums 128*2+256*2 = 768,
    # in groups of two it sums (512 >> 1) + 512 = 768 as well, but [1, 0 | 1, 1] differs:
    y = np.array([[-3, -3, 5, -3]], dtype=np.int8)
    one, two = itamax(y, 4), itamax(y, 2)
    assert one.tolist() == naive.softmax_rows(y, 4).tolist()
    assert two.tolist() == naive.softmax_rows(y, 2).tolist()


def test_softmax_shift_variant_rounds_half_up():
    cfg = ITAConfig(softmax_shift=5)
    x = np.array([[100, 84, 83, 36]], dtype=np.int8)  # d = 0, 16, 17, 64 -> sh 0, 1, 1, 2
    # sum = 256 + 128 + 128 + 64 = 576; inv = 113
    assert itamax(x, 4, config=cfg).tolist() == [[113, 56, 56, 28]]
    assert itamax(x, 4, config=cfg).tolist() == naive.softmax_rows(x, 4, softmax_shift=5).tolist()


def test_finer_logit_step_hand_computed():
    # k = 2: d = 0, 1, 5, 11 -> entries T[0], T[1], T[1] >> 1, T[3] >> 2 of (256, 215, 181,
    # 152): 256 + 215 + 107 + 38 = 616; inv = 65280 // 616 = 105;
    # p = (105 * T[f]) >> (8 + q) = 105, 88, 44, 15.
    x = np.array([[11, 10, 6, 0]], dtype=np.int8)
    assert itamax(x, 4, logit_frac=2).tolist() == [[105, 88, 44, 15]]
    # Two groups, max 6 then 11: the old sum 256 + (181 >> 1) = 346 rescales by d = 5 to
    # (346 * 215) >> 9 = 145; with 256 + 215 it is 616 again, inv 105.
    y = np.array([[6, 0, 11, 10]], dtype=np.int8)
    assert itamax(y, 2, logit_frac=2).tolist() == [[44, 15, 105, 88]]
    assert itamax(y, 2, logit_frac=2).tolist() == naive.softmax_rows(y, 2, logit_frac=2).tolist()


def test_logit_step_out_of_range_is_refused():
    x = np.zeros((1, 4), dtype=np.int8)
    with pytest.raises(ValueError, match="logit_frac"):
        itamax(x, 4, logit_frac=4)
    with pytest.raises(ValueError, match="logit_frac_max"):
        ITAConfig(logit_frac_max=2)


@pytest.mark.parametrize("logit_frac", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 16])
def test_finer_logit_steps_match_naive(n, logit_frac):
    rng = np.random.default_rng(n * 10 + logit_frac)
    x = rng.integers(-128, 128, (24, 100)).astype(np.int8)
    x[:12] = rng.integers(60, 80, (12, 100))          # many terms within a few octaves
    mask = rng.random((24, 100)) < 0.8
    for cfg in (ITAConfig(), ITAConfig(softmax_shift=2)):
        np.testing.assert_array_equal(
            itamax(x, n, mask, logit_frac=logit_frac, config=cfg),
            naive.softmax_rows(x, n, mask, softmax_shift=cfg.softmax_shift,
                               logit_frac=logit_frac))


def test_finer_logit_step_is_closer_to_the_real_softmax():
    rng = np.random.default_rng(2)
    real = rng.normal(0, 2.5, (64, 64))                # logits in nats
    errors = []
    for k in range(4):
        x = np.clip(np.rint(real / (np.log(2) / 2**k)), -128, 127).astype(np.int8)
        e = np.exp(real - real.max(axis=1, keepdims=True))
        errors.append(np.abs(itamax(x, 16, logit_frac=k) / 255 - e / e.sum(1, keepdims=True))
                      .sum(axis=1).mean())
    assert errors[0] > 1.5 * errors[2] and errors[1] > errors[2] > errors[3]


@pytest.mark.parametrize("n", [1, 4, 8, 16])
@pytest.mark.parametrize("cols", [16, 64, 100, 192])
def test_random_rows_match_naive(n, cols):
    rng = np.random.default_rng(n * 1000 + cols)
    x = rng.integers(-128, 128, (24, cols)).astype(np.int8)
    np.testing.assert_array_equal(itamax(x, n), naive.softmax_rows(x, n))


def test_masks_match_naive_and_zero_masked_keys():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (40, 70)).astype(np.int8)
    masks = (causal_mask(40, 70), key_mask(40, 70, 37),
             causal_mask(40, 70) & key_mask(40, 70, 20), rng.random((40, 70)) < 0.3)
    for mask in masks:
        got = itamax(x, 16, mask)
        np.testing.assert_array_equal(got, naive.softmax_rows(x, 16, mask))
        assert np.all(got[~mask] == 0)


def test_padded_keys_masked_equal_unpadded():
    """Padding keys to a whole tile and masking them gives the unpadded result."""
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (10, 50)).astype(np.int8)
    padded = np.concatenate([x, rng.integers(-128, 128, (10, 14)).astype(np.int8)], axis=1)
    got = itamax(padded, 16, key_mask(10, 64, 50))
    np.testing.assert_array_equal(got[:, :50], itamax(x, 16))
    assert np.all(got[:, 50:] == 0)


def test_fully_masked_row_gives_zeros():
    x = np.zeros((2, 8), dtype=np.int8)
    mask = np.array([[False] * 8, [True] * 8])
    got = itamax(x, 4, mask)
    assert got[0].tolist() == [0] * 8
    assert got[1].tolist() == [31] * 8  # 65280 // 2048


def test_special_rows():
    x = np.zeros((3, 64), dtype=np.int8)
    x[1, 37] = 127           # one-hot
    x[2, :] = -128
    x[2, 63] = 127           # the maximum arrives in the very last group
    got = itamax(x, 16)
    np.testing.assert_array_equal(got, naive.softmax_rows(x, 16))
    assert got[1, 37] == 255 and got[1].sum() == 255
    assert got[2, 63] == 255


def test_overflow_is_reported():
    x = np.zeros((1, 2048), dtype=np.int8)
    with pytest.raises(AccumulatorOverflowError, match="softmax: running sum of row 0"):
        itamax(x, 16)
    itamax(x[:, :2047], 16)


def test_error_against_real_softmax_is_small():
    rng = np.random.default_rng(7)
    x = rng.integers(-20, 20, (64, 128)).astype(np.int8)
    assert softmax_mae(itamax(x, 16), x) < 0.01


def test_rejects_non_int8():
    with pytest.raises(ValueError):
        itamax(np.array([[300, 0]]), 2)
