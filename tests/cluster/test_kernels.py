"""The encoder kernels (sw/kernels) on the cluster: ``make sim TEST=kernels SIZE=small``.

The program compares every output byte with ita.golden in C; a run with one expected byte
flipped must fail and name the kernel, size, row and column. A kernel driven past one of its
documented limits must report the limit's K_ERR_* code (kernels.h) and end the program with
exit code 3; just inside the limits the kernels stay bit-exact. Runs use the fast C++ harness
(one cached model build shared with tests/harness).
"""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ita.config import DEFAULT_CONFIG
from ita.golden import AccumulatorOverflowError, i_gelu, linear
from ita.golden import decoder as dec
from ita.golden import encoder as enc
from ita.golden.encoder import core_softmax, head_sum, layer_norm_stats, residual_add
from ita.quant import integer as qi
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


# --- limits: a kernel past a documented limit reports its K_ERR_* code -------------------------

_KERNELS_H = Path(__file__).resolve().parents[2] / "sw" / "kernels" / "kernels.h"
_LIMIT = re.compile(r"^kernels: LIMIT kernel=(?P<kernel>\w+) size=(?P<size>\S+) "
                    r"status=(?P<status>\d+) \((?P<text>[^)]*)\)$", re.M)


def _c_names():
    """The status codes and limits as kernels.h defines them (one source for the C side)."""
    text = _KERNELS_H.read_text()
    names = {m[1]: int(m[2]) for m in re.finditer(r"\b(K_(?:OK|ERR_\w+)) = (\d+),", text)}
    for m in re.finditer(r"^#define (K_[A-Z_]+) (\(1 << \d+\)|\d+)", text, re.M):
        names[m[1]] = eval(m[2])   # noqa: S307 -- an integer literal or (1 << n)
    return names


C = _c_names()


def test_c_limits_are_the_golden_models():
    """Each C limit is where ita.golden starts to raise: in range it computes, one past raises."""
    assert C["K_OK"] == 0 and len({v for k, v in C.items() if k.startswith("K_ERR_")}) == 12
    assert C["K_LN_MAX_COLS"] == enc._LN_MAX_COLS
    layer_norm_stats(np.zeros((1, C["K_LN_MAX_COLS"]), np.int8))
    with pytest.raises(ValueError, match="sum of squares"):
        layer_norm_stats(np.zeros((1, C["K_LN_MAX_COLS"] + 1), np.int8))
    assert C["K_SOFTMAX_MAX_COLS"] == (1 << DEFAULT_CONFIG.softmax_sum_width) // 256 - 1
    core_softmax(np.zeros((1, C["K_SOFTMAX_MAX_COLS"]), np.int8))
    with pytest.raises(AccumulatorOverflowError):
        core_softmax(np.zeros((1, C["K_SOFTMAX_MAX_COLS"] + 1), np.int8))
    assert C["K_WIDE_MAX"] == dec.WIDE + 1
    w = np.ones((1, 1), np.int8)
    dec.decomposed_gemm(np.array([[-C["K_WIDE_MAX"]]]), w, (1, 0))
    with pytest.raises(ValueError, match="24 bits"):
        dec.decomposed_gemm(np.array([[C["K_WIDE_MAX"] + 1]]), w, (1, 0))
    dec.scale_round(1, 1, C["K_SHIFT_MAX"])
    with pytest.raises(ValueError, match="shift"):
        dec.scale_round(1, 1, C["K_SHIFT_MAX"] + 1)
    with pytest.raises(ValueError, match="mult"):
        residual_add(np.zeros(4, np.int8), np.zeros(4, np.int8), mult_x=256, mult_y=1, shift=0,
                     add=0)


def _residual_at(shift1):
    """Two operands whose last column shifts by 16 and ``shift1``: (16, 8) is the largest sum
    below 2**31 (2**31 - 32768), (16, 9) passes it."""
    case = kt.draw_case("residual_add_rows", "3x13_n2", 1)
    consts = case.inputs[1].astype(np.int64)
    consts[:2, 12] = 255
    consts[2:, 12] = 16, shift1
    ops = case.inputs[0].copy()
    ops[:, 0, 12] = -128
    return case, ops, consts


def test_bert_kernel_limits_are_the_integer_models():
    """k_residual_add_rows, k_layer_norm_rows: each C limit is where ita.quant.integer starts to
    raise. k_col_sums' row limit is the int32 sums' (ita.quant.integer sums in int64)."""
    assert C["K_ROW_BITS"] == qi.ROW_BITS
    limit = 1 << C["K_ROW_BITS"]
    gamma, beta = np.ones(4, np.int8), np.zeros(4, np.int32)
    qi.layer_norm_rows(np.array([[limit, -limit, 0, 1]]), gamma, beta, mult=1, shift=0, add=0)
    for bad in (limit + 1, -limit - 1):
        with pytest.raises(ValueError, match="must lie in"):
            qi.layer_norm_rows(np.array([[bad, 0, 0, 1]]), gamma, beta, mult=1, shift=0, add=0)
    case, ops, consts = _residual_at(8)
    qi.residual_add_rows(ops[0], [ops[1]], consts)
    for bad_shift in (9, 17):
        _, ops, consts = _residual_at(bad_shift)
        with pytest.raises(ValueError, match="below 2"):
            qi.residual_add_rows(ops[0], [ops[1]], consts)
    for row, value, match in ((0, 256, "0..255"), (0, -1, "0..255"), (2, -1, "non-negative")):
        bad = case.inputs[1].astype(np.int64)
        bad[row, 5] = value
        with pytest.raises(ValueError, match=match):
            qi.residual_add_rows(ops[0], [ops[1]], bad)
    assert C["K_COLSUM_MAX_ROWS"] * -128 == -(1 << 31)


def _placeholder(case, rows=1, cols=4):
    """A case whose kernel must refuse before writing: any expected bytes do."""
    return replace(case, expected=np.zeros((rows, cols), case.expected.dtype))


def _decomposed_with(case, x):
    """The decomposed_gemm case with inputs ``x`` and its golden output."""
    _, w, wf, _ = case.inputs
    mult, shift = case.params
    fine_rows = np.array([0, w.shape[0] - 1])
    y8 = linear(np.clip(x, -128, 127).astype(np.int8), w, None, rq=(mult, shift, 0))
    y, _ = dec.decomposed_gemm(x, w, (mult, shift), fine=(fine_rows, wf[fine_rows]))
    return replace(case, inputs=(x.astype(np.int32), w, wf, y8), expected=y.astype(np.int32))


def _past_limit(name):
    """(case past one limit, the expected code name); the golden model raises for each."""
    if name == "layernorm_cols":     # arguments only: the kernel must not touch the row
        case = kt.draw_case("layernorm", "1x4", 1)
        return replace(_placeholder(case), dims=(1, C["K_LN_MAX_COLS"] + 1)), "K_ERR_LN_COLS"
    if name == "itamax_cols":        # all-equal logits: 256 per column, one column too many
        cols = C["K_SOFTMAX_MAX_COLS"] + 1
        with pytest.raises(AccumulatorOverflowError):
            core_softmax(np.zeros((2, cols), np.int8))
        case = kt.draw_case("itamax", "2x4", 1)
        return replace(_placeholder(case), size=f"2x{cols}", dims=(2, cols, cols, 0),
                       inputs=(np.zeros((2, cols), np.int8),)), "K_ERR_SOFTMAX_COLS"
    if name == "itamax_logit_frac":  # one step finer than the engine's finest
        case = kt.draw_case("itamax", "2x4_lf3", 1)
        with pytest.raises(ValueError, match="logit_frac must lie in"):
            core_softmax(case.inputs[0], logit_frac=DEFAULT_CONFIG.logit_frac_max + 1)
        return replace(_placeholder(case), params=(DEFAULT_CONFIG.logit_frac_max + 1,)), \
            "K_ERR_LOGIT_FRAC"
    if name == "gemm_sum":           # k * 2^14 reaches 2^31
        case = kt.draw_case("gemm_rq", "1x4x1_nobias", 1)
        return replace(_placeholder(case), dims=(1, 1 << 17, 1)), "K_ERR_GEMM_SUM"
    if name == "residual_mult":
        case = kt.draw_case("residual_add", "4x9", 1)
        return replace(_placeholder(case), params=(256, *case.params[1:])), "K_ERR_REQUANT"
    if name == "head_count":
        case = kt.draw_case("head_sum", "2h4x4", 1)
        with pytest.raises(ValueError, match="at least one head"):
            head_sum(case.inputs[0][:0], case.params)
        return replace(_placeholder(case), dims=(0, *case.dims[1:])), "K_ERR_HEADS"
    if name == "gelu_const":
        case = kt.draw_case("gelu", "2x8", 1)
        b = -(1 << 15) - 1
        with pytest.raises(ValueError, match="does not fit int16"):
            i_gelu(case.inputs[0], b, case.params[1], case.params[2:])
        return replace(_placeholder(case), params=(b, *case.params[1:])), "K_ERR_GELU_CONST"
    if name == "wide_input":         # found in the scan of row 2, after rows 0 and 1
        case = kt.draw_case("decomposed_gemm", "4x12x5", 1)
        x = case.inputs[0].astype(np.int64)
        x[2, 3] = C["K_WIDE_MAX"] + 1
        with pytest.raises(ValueError, match="24 bits"):
            _decomposed_with(case, x)
        return replace(_placeholder(case), inputs=(x.astype(np.int32), *case.inputs[1:])), \
            "K_ERR_WIDE_INPUT"
    if name.startswith("residual_rows"):   # last column (one core's share) or a middle one
        case, ops, consts = _residual_at(9)
        if name == "residual_rows_mult":
            consts = case.inputs[1].astype(np.int64)
            consts[1, 5] = 256
        elif name == "residual_rows_shift":
            consts = case.inputs[1].astype(np.int64)
            consts[2, 5] = -1
        with pytest.raises(ValueError):
            qi.residual_add_rows(ops[0], [ops[1]], consts)
        return replace(_placeholder(case, 3, 13), inputs=(ops, consts.astype(np.int32))), \
            "K_ERR_RESIDUAL"
    if name == "residual_rows_none":
        case = kt.draw_case("residual_add_rows", "3x13_n1", 1)
        return replace(_placeholder(case), dims=(0, 3, 13)), "K_ERR_RESIDUAL"
    if name.startswith("row_range"):     # in the scan of row 4 (core 4's), past +-2^13
        case = kt.draw_case("layer_norm_rows", "6x24", 1)
        x = case.inputs[0].copy()
        x[4, 7] = (1 << C["K_ROW_BITS"]) + 1 if name == "row_range" else \
            -(1 << C["K_ROW_BITS"]) - 1
        with pytest.raises(ValueError, match="must lie in"):
            qi.layer_norm_rows(x, *case.inputs[1:], mult=1, shift=0, add=0)
        return replace(_placeholder(case, 6, 24), inputs=(x, *case.inputs[1:])), \
            "K_ERR_ROW_RANGE"
    if name == "colsum_rows":            # arguments only
        case = kt.draw_case("col_sums", "2x8", 1)
        return replace(_placeholder(case), dims=(C["K_COLSUM_MAX_ROWS"] + 1, 8)), "K_ERR_ROWS"
    # silu_shift: only the core that owns the last column sees it, all must report it
    case = kt.draw_case("silu_mul", "3x13_l2", 1)
    consts = case.inputs[2].copy()
    consts[4 * 13 - 1] = C["K_SHIFT_MAX"] + 1    # out_shift of column 12
    return replace(_placeholder(case), inputs=(*case.inputs[:2], consts, case.inputs[3])), \
        "K_ERR_SHIFT"


LIMITS = ("layernorm_cols", "itamax_cols", "itamax_logit_frac", "gemm_sum", "residual_mult",
          "head_count", "gelu_const", "wide_input", "silu_shift", "residual_rows_sum",
          "residual_rows_mult", "residual_rows_shift", "residual_rows_none", "row_range",
          "row_range_neg", "colsum_rows")


@pytest.mark.verilator
@pytest.mark.parametrize("name", LIMITS)
def test_a_kernel_past_its_limit_reports_the_code(name):
    case, code = _past_limit(name)
    fine = kt.draw_case("rope", "5x8_l2", 1)       # runs and passes before the broken case
    run = kt.run_cases([fine, case], tag=f"test_limit_{name}")
    assert run.status == "FAIL" and run.fields["outcome"] == "exit:3", run.output[-1500:]
    assert [r["kernel"] for r in run.rows] == ["rope"] and run.mismatch is None
    found = _LIMIT.search(run.output)
    assert found, run.output[-1500:]
    assert (found["kernel"], found["size"]) == (case.kernel, case.size)
    assert int(found["status"]) == C[code], (found["status"], code)


def _wide_edge(case):
    """decomposed_gemm inputs at +-K_WIDE_MAX."""
    x = case.inputs[0].astype(np.int64)
    x[1, 2], x[2, 5] = C["K_WIDE_MAX"], -C["K_WIDE_MAX"]
    return x


@pytest.mark.verilator
def test_kernels_at_their_limits_report_none_and_stay_exact():
    """Just inside each limit the kernels compute the golden bytes and report K_OK."""
    itamax = kt.draw_case("itamax", f"2x{C['K_SOFTMAX_MAX_COLS']}", 1)   # row 0 all equal
    wide = kt.draw_case("decomposed_gemm", "4x12x5", 1)
    case, ops, consts = _residual_at(8)      # the largest residual sum below 2**31
    residual = replace(case, size="3x13_n2_sum", inputs=(ops, consts.astype(np.int32)),
                       expected=qi.residual_add_rows(ops[0], [ops[1]], consts))
    norm = kt.draw_case("layer_norm_rows", "6x24", 1)
    x = norm.inputs[0].copy()
    x[4, 7], x[5, 3] = 1 << C["K_ROW_BITS"], -(1 << C["K_ROW_BITS"])
    mult, shift, add = norm.params
    norm = replace(norm, size="6x24_edge", inputs=(x, *norm.inputs[1:]),
                   expected=qi.layer_norm_rows(x, *norm.inputs[1:], mult=mult, shift=shift,
                                               add=add))
    cases = [itamax, _decomposed_with(wide, _wide_edge(wide)), residual, norm]
    run = kt.run_cases(cases, tag="test_limits_in_range")
    assert run.status == "PASS", run.output[-1500:]
    assert not _LIMIT.search(run.output) and run.mismatch is None
    assert [(r["kernel"], r["size"]) for r in run.rows] == [(c.kernel, c.size) for c in cases]
