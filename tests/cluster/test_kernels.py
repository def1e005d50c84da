"""The encoder kernels (sw/kernels) on the cluster: ``make sim TEST=kernels SIZE=small``.

The program compares every output byte with ita.golden in C; a run with one expected byte
flipped must fail and name the kernel, size, row and column. Runs use the fast C++ harness
(one cached model build shared with tests/harness).
"""

import numpy as np
import pytest

from ita.golden import linear
from verif.cluster import kernel_tests as kt
from verif.sim import main as sim_main


def test_parse_lines_reads_cases_and_mismatch():
    text = ("kernels: gemm_rq 4x8x4 cycles=120 elements=16 cycles_per_element=7.50\n"
            "stats: gemm_rq_4x8x4=120\n"
            "kernels: MISMATCH kernel=gelu size=2x3 row=1 col=2 expected=-3 got=4\n")
    rows, mismatch = kt.parse_lines(text)
    assert rows == [{"kernel": "gemm_rq", "size": "4x8x4", "cycles": 120, "elements": 16,
                     "cycles_per_element": 7.5}]
    assert mismatch == "kernel=gelu size=2x3 row=1 col=2 expected=-3 got=4"


@pytest.mark.parametrize("kernel, size, match", [
    ("gemm_rq", "4x4", "needs 3 positive dimensions"),
    ("layernorm", "0x4", "needs 2 positive dimensions"),
    ("head_sum", "4x4", "head count is for head_sum only"),
    ("gelu", "2h4x4", "head count is for head_sum only"),
    ("itamax", "4x4_fast", "unknown suffix _fast"),
    ("softmax", "4x4", "unknown kernel 'softmax'"),
])
def test_bad_case_names(kernel, size, match):
    with pytest.raises(ValueError, match=match):
        kt.draw_case(kernel, size, 1)


def test_select_and_header_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown size set 'huge'"):
        kt.select("huge")
    with pytest.raises(ValueError, match="unknown kernel 'fft'"):
        kt.select("small", "fft")
    with pytest.raises(ValueError, match="needs .* bytes of L1"):
        kt.write_header([kt.draw_case("gemm_rq", "256x256x256", 1)], tmp_path)
    with pytest.raises(ValueError, match="corrupt byte 64 is outside"):
        kt.write_header([kt.draw_case("gelu", "8x8", 1)], tmp_path, corrupt=(0, 64))


def test_cases_are_golden_and_deterministic():
    case = kt.draw_case("gemm_rq", "9x16x5", 3)
    a, bt, bias = case.inputs
    np.testing.assert_array_equal(case.expected, linear(a, bt.T, bias, rq=case.params))
    again = kt.draw_case("gemm_rq", "9x16x5", 3)
    np.testing.assert_array_equal(case.expected, again.expected)
    for kernel, size in kt.SIZES["small"]:
        out = kt.draw_case(kernel, size, 1).expected
        assert len(np.unique(out)) > 4, (kernel, size)   # constants spread the outputs


def test_make_sim_rejects_bad_keys(capsys):
    assert sim_main(["TEST=kernels", "KERNEL=fft"]) == 2
    assert "bad value 'fft' for key KERNEL" in capsys.readouterr().err
    assert sim_main(["TEST=kernels", "SIZE=huge"]) == 2


@pytest.mark.verilator
def test_small_set_passes_bit_exact():
    cases = kt.select("small")
    run = kt.run_cases(cases, tag="test_small")
    assert run.status == "PASS", run.output[-2000:]
    assert run.mismatch is None
    assert [(r["kernel"], r["size"]) for r in run.rows] == [(c.kernel, c.size) for c in cases]
    assert {r["kernel"] for r in run.rows} == set(kt.KERNELS)
    for row in run.rows:
        assert row["cycles"] > 0 and row["cycles_per_element"] > 0
        assert run.fields[f"{row['kernel']}_{row['size']}"] == row["cycles"]


@pytest.mark.verilator
def test_a_corrupted_expected_byte_fails_with_its_position():
    cases = [kt.draw_case("gelu", "2x150", 1), kt.draw_case("layernorm", "5x37_odd_wide", 1)]
    row, col = 3, 20
    want = int(cases[1].expected[row, col])
    run = kt.run_cases(cases, tag="test_corrupt", corrupt=(1, row * 37 + col))
    assert run.status == "FAIL"
    assert run.fields["outcome"] == "exit:1"
    assert [r["kernel"] for r in run.rows] == ["gelu"]
    assert run.mismatch == (f"kernel=layernorm size=5x37_odd_wide row={row} col={col} "
                            f"expected={~want} got={want}")  # all 8 bits flipped


def test_decoder_cases_are_golden():
    from ita.golden import decoder as dec

    case = kt.draw_case("dequant_add", "3x13_l2", 2)
    residual, y, consts = case.inputs
    np.testing.assert_array_equal(case.expected, dec.dequantise_add(
        residual, y, consts[:13], consts[13:]))
    assert case.expected.dtype == np.int32 and case.out_cols == 13
    rope = kt.draw_case("rope", "5x8_l2", 2)
    assert rope.inputs[2].dtype == np.int16 and rope.expected.shape == (5, 8)


@pytest.mark.verilator
def test_a_corrupted_residual_element_fails_with_its_position():
    """The int32 residual is compared element by element: row and column count elements."""
    cases = [kt.draw_case("dequant_add", "4x40", 1)]
    row, col = 2, 17
    want = int(cases[0].expected[row, col])
    run = kt.run_cases(cases, tag="test_corrupt_wide", corrupt=(0, 4 * (row * 40 + col)))
    assert run.status == "FAIL"
    assert run.mismatch == (f"kernel=dequant_add size=4x40 row={row} col={col} "
                            f"expected={want ^ 0xFF} got={want}")  # the low byte flipped
