"""Unit tests of the encoder kernels (``sw/kernels``) on the cluster, in the fast C++ harness.

:func:`draw_case` draws one case of one kernel at one size and computes the expected output
with ``ita.golden``; :func:`write_header` turns a list of cases into ``kernel_cases.h`` for
the self-checking program ``sw/apps/kernels`` (inputs and expected outputs become const arrays
in L2; the program copies inputs to L1, runs the kernel on all cores, compares every byte and
prints cycles per case); :func:`run_cases` builds and runs it with ``verif.harness.run`` and parses
the per-case lines. ``make sim TEST=kernels [KERNEL=..] [SIZE=small|large] [SEED=..]`` runs a
set from :data:`SIZES` and prints the cycles-per-element table.

A case is named ``<kernel> <size>``; sizes read ``MxKxN`` (GEMM), ``KxN`` (GEMV),
``ROWSxCOLS`` (row-wise and element-wise kernels, whose outputs are reported by row and
column), ``HhROWSxCOLS`` (head sum); suffixes say ``_l2`` (operands and output stay in L2),
``_odd`` (L1 copies start one byte past a word), ``_nobias``, ``_causal``, ``_vN`` (valid
columns), ``_lfK`` (ITAmax at the logit step ln 2 / 2^K), ``_wide`` (constants that need
the 64-bit requantization), ``_u8`` (a GEMV of unsigned probabilities).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw import toolchain
from ita.golden import REFERENCE_GELU, gelu_constants, gemm_step, i_gelu, linear
from ita.golden import decoder as dec
from ita.golden.encoder import core_softmax, head_sum, layer_norm, layer_norm_stats, residual_add
from ita.golden.softmax import causal_mask, key_mask
from ita.quant.integer import ROW_BITS, layer_norm_rows, residual_add_rows
from sw.build import KERNEL_SOURCES, build_app
from verif.cluster.kernels import gemm_expected
from verif.harness.run import DEFAULT_MAX_CYCLES, run_image

__all__ = ["KERNELS", "SIZES", "KernelCase", "draw_case", "select", "write_header",
           "run_cases", "parse_lines", "format_table", "ARENA_BYTES"]

KERNELS = ("gemm_rq", "residual_add", "head_sum", "layernorm", "itamax", "gelu",
           "add_layernorm", "rmsnorm", "rope", "silu_mul", "dequant_add", "decomposed_gemm",
           "gemv", "rmsnorm_wide", "rope32", "silu_mul_wide", "dequant_add32",
           "residual_add_rows", "layer_norm_rows", "col_sums")
_KERNEL_IDS = {name: i for i, name in enumerate(KERNELS)}  # enum order in main.c

#: Kernels of the quantised BERT layer (:mod:`ita.quant.integer`) whose int16 / int32 operands
#: cannot start one byte past a word (``_odd``).
_WORD_KERNELS = ("residual_add_rows", "layer_norm_rows", "col_sums")

#: Bytes of the program's L1 arena for the inputs and output of one case (L1 minus stacks,
#: the runtime's and the kernels' own L1 data, with room to spare).
ARENA_BYTES = 112 * 1024

#: Case sets: small ones for ``make test`` (every code path: SIMD blocks and remainders,
#: misaligned rows, L2 operands, no bias, masks, the 64-bit requantization), large ones for
#: ``make sim TEST=kernels`` (encoder-sized tensors).
SIZES = {
    "small": (
        ("gemm_rq", "16x32x16"), ("gemm_rq", "7x37x9_odd"), ("gemm_rq", "9x12x6_l2_nobias"),
        ("gemm_rq", "5x3x5_wide"),
        ("residual_add", "8x40"), ("residual_add", "3x13_odd"), ("residual_add", "4x9_l2"),
        ("head_sum", "4h8x40"), ("head_sum", "3h5x11_odd"),
        ("layernorm", "8x64"), ("layernorm", "5x37_odd_wide"), ("layernorm", "3x16_l2"),
        ("itamax", "16x40"), ("itamax", "16x40_causal"), ("itamax", "9x23_causal_v11_odd"),
        ("itamax", "16x40_lf1"), ("itamax", "9x37_causal_v30_odd_lf3"),
        ("gelu", "2x150"), ("gelu", "3x77_odd_wide"),
        ("add_layernorm", "8x64"), ("add_layernorm", "20x64"), ("add_layernorm", "5x37_odd_wide"),
        ("rmsnorm", "9x64"), ("rmsnorm", "5x24_l2_wide"), ("rope", "16x32"), ("rope", "5x8_l2"),
        ("silu_mul", "4x40"), ("silu_mul", "3x13_l2"), ("dequant_add", "4x40"),
        ("dequant_add", "3x13_l2"), ("decomposed_gemm", "6x40x24"),
        ("decomposed_gemm", "3x12x5_l2"), ("decomposed_gemm", "9x40x12"), ("gemv", "64x36"),
        ("gemv", "17x21_u8"), ("gemv", "13x9_odd"), ("rmsnorm_wide", "9x64"),
        ("rmsnorm_wide", "3x24"), ("rope32", "5x32"), ("silu_mul_wide", "4x40"),
        ("silu_mul_wide", "3x13_l2"), ("dequant_add32", "3x40"),
        ("decomposed_gemm", "3x12x5_l2"),
        ("residual_add_rows", "8x40_n2"), ("residual_add_rows", "5x37_n3_worst"),
        ("residual_add_rows", "4x13_n1_l2"), ("residual_add_rows", "6x24_n2_worst"),
        ("residual_add_rows", "36x40_n2"), ("residual_add_rows", "40x20_n3_worst"),
        ("residual_add_rows", "20x6_n4"), ("residual_add_rows", "6x160_n2_worst"),
        ("layer_norm_rows", "8x64"), ("layer_norm_rows", "7x37_wide_worst"),
        ("layer_norm_rows", "3x16_l2"), ("layer_norm_rows", "6x640_worst"),
        ("layer_norm_rows", "20x132_worst"), ("layer_norm_rows", "40x36"),
        ("col_sums", "9x40"), ("col_sums", "300x13_worst"), ("col_sums", "5x7_l2"),
    ),
    "large": (
        ("gemm_rq", "64x64x64"), ("gemm_rq", "128x128x128"), ("gemm_rq", "64x384x128"),
        ("gemm_rq", "64x32x64"), ("gemm_rq", "63x65x61_odd"),
        ("residual_add", "128x128"), ("residual_add", "64x384"),
        ("head_sum", "4h128x128"), ("head_sum", "12h16x384"),
        ("layernorm", "128x128"), ("layernorm", "64x384"),
        ("itamax", "128x128"), ("itamax", "64x64_causal"), ("itamax", "64x128_v100"),
        ("itamax", "64x128_lf2"),
        ("gelu", "64x256"), ("gelu", "64x512"),
        ("add_layernorm", "128x128"), ("add_layernorm", "64x384"),
        ("rmsnorm", "64x64"), ("rmsnorm", "32x576"), ("rope", "64x64"), ("rope", "64x32"),
        ("silu_mul", "16x128"), ("silu_mul", "64x256"), ("dequant_add", "16x64"),
        ("dequant_add", "16x576"), ("decomposed_gemm", "16x64x128"), ("gemv", "576x128"),
        ("gemv", "64x128_u8"),
        ("dequant_add", "16x576"), ("decomposed_gemm", "16x64x128"),
        ("residual_add_rows", "64x384_n2"), ("residual_add_rows", "32x384_n3"),
        ("residual_add_rows", "9x384_n2"), ("residual_add_rows", "9x384_n3"),
        ("residual_add_rows", "8x384_n13"),
        ("layer_norm_rows", "64x384"), ("layer_norm_rows", "9x384"),
        ("col_sums", "64x384"), ("col_sums", "9x384"),
    ),
}


@dataclass(frozen=True)
class KernelCase:
    """One kernel call with its inputs and the golden output."""

    kernel: str
    size: str
    dims: tuple[int, ...]
    params: tuple[int, ...]
    inputs: tuple[np.ndarray | None, ...]
    expected: np.ndarray     #: int8, uint8 or int32 (the residual stream), shape (rows, cols)
    elements: int
    l2: bool = False
    odd: bool = False
    macs: int = 0

    @property
    def out_cols(self) -> int:
        return int(self.expected.shape[-1])


_SIZE = re.compile(r"^(?:(?P<heads>\d+)h)?(?P<dims>\d+(?:x\d+)*)(?P<flags>(?:_[a-z]+\d*)*)$")


def _parse_size(kernel: str, size: str):
    match = _SIZE.match(size)
    if not match:
        raise ValueError(f"bad size {size!r} for {kernel}")
    dims = [int(v) for v in match["dims"].split("x")]
    flags = [f for f in match["flags"].split("_") if f]
    want = 3 if kernel in ("gemm_rq", "decomposed_gemm") else 2
    if len(dims) != want or min(dims) < 1:
        raise ValueError(f"{kernel} size {size!r} needs {want} positive dimensions")
    if (match["heads"] is not None) != (kernel == "head_sum"):
        raise ValueError(f"size {size!r}: the 'Nh' head count is for head_sum only")
    known = {"l2", "odd", "nobias", "causal", "wide", "u8", "worst"}
    for flag in flags:
        if flag not in known and not re.fullmatch(r"[vn]\d+|lf\d", flag):
            raise ValueError(f"size {size!r}: unknown suffix _{flag}")
    if kernel in _WORD_KERNELS and "odd" in flags:
        raise ValueError(f"size {size!r}: {kernel} takes word-aligned operands (no _odd)")
    if any(re.fullmatch(r"n\d+", f) for f in flags) != (kernel == "residual_add_rows"):
        raise ValueError(f"size {size!r}: the '_nN' operand count is for residual_add_rows "
                         f"only, which needs it")
    return dims, flags, int(match["heads"] or 0)


def _int8(rng, shape, std=40.0):
    return np.clip(np.rint(rng.normal(0, std, shape)), -128, 127).astype(np.int8)


def _shift_for(values, mult, target=40.0):
    """The shift that brings ``values * mult`` to about ``target`` LSB of spread."""
    spread = float(np.std(np.asarray(values, dtype=np.float64))) or 1.0
    return max(0, round(math.log2(mult * spread / target)))


def draw_case(kernel: str, size: str, seed: int) -> KernelCase:
    """A random case of ``kernel`` at ``size`` (see the module docstring), golden output."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    dims, flags, heads = _parse_size(kernel, size)
    rng = np.random.default_rng([seed, _KERNEL_IDS[kernel], *dims, len(flags)])
    wide = "wide" in flags
    common = {"l2": "l2" in flags, "odd": "odd" in flags}
    if kernel == "gemm_rq":

        m, k, n = dims
        a, b = _int8(rng, (m, k), 60), _int8(rng, (k, n), 60)
        bias = None if "nobias" in flags else \
            rng.integers(-(1 << 16), 1 << 16, n).astype(np.int32)
        acc = a.astype(np.int64) @ b.astype(np.int64) + (0 if bias is None else bias)
        mult = int(rng.integers(64, 256))
        if wide:  # sums beyond the engine's range: the 64-bit path of the requantization
            mult, bias = 255, rng.integers(-(1 << 24), 1 << 24, n).astype(np.int32)
            acc = a.astype(np.int64) @ b.astype(np.int64) + bias
        shift = _shift_for(acc, mult)
        add = int(rng.integers(-8, 9))
        out = gemm_expected(a, b, np.zeros(n, np.int32) if bias is None else bias,
                            (mult, shift, add))
        return KernelCase(kernel, size, (m, k, n), (mult, shift, add),
                          (a, np.ascontiguousarray(b.T), bias), out, m * n, macs=m * k * n,
                          **common)
    if kernel == "decomposed_gemm":
        return _decomposed_case(rng, *dims, common, size)
    if kernel == "gemv":
        return _gemv_case(rng, *dims, "u8" in flags, common, size)
    rows, cols = dims
    if kernel in _DECODER_CASES:
        return _DECODER_CASES[kernel](rng, rows, cols, wide, common, size)
    if kernel in _BERT_CASES:
        return _BERT_CASES[kernel](rng, rows, cols, flags, common, size)
    if kernel == "residual_add":
        x, y = _int8(rng, (rows, cols)), _int8(rng, (rows, cols))
        mx, my = (int(v) for v in rng.integers(0, 256, 2))
        shift = int(rng.integers(6, 9))
        add = int(rng.integers(-8, 9))
        out = residual_add(x, y, mult_x=mx, mult_y=my, shift=shift, add=add)
        return KernelCase(kernel, size, (rows * cols,), (mx, my, shift, add), (x, y), out,
                          rows * cols, **common)
    if kernel == "head_sum":
        outs = _int8(rng, (heads, rows, cols), 50)
        mult = int(rng.integers(64, 256))
        rq = (mult, _shift_for(outs.astype(np.int64).sum(axis=0), mult), int(rng.integers(-8, 9)))
        out = head_sum(outs, rq)
        return KernelCase(kernel, size, (heads, rows * cols, rows * cols), rq, (outs,), out,
                          rows * cols, **common)
    if kernel == "add_layernorm":
        # the output is the residual sum's rows, then the LayerNorm's rows
        x, y = _int8(rng, (rows, cols)), _int8(rng, (rows, cols))
        mx, my = (int(v) for v in rng.integers(0, 256, 2))
        add_rq = (mx, my, int(rng.integers(7, 10)), int(rng.integers(-8, 9)))
        x[0], y[0] = 3, -7                                       # a constant sum row
        total = residual_add(x, y, mult_x=mx, mult_y=my, shift=add_rq[2], add=add_rq[3])
        gamma = _int8(rng, cols, 60)
        beta_range = (1 << 23) - 1 if wide else 1 << 18
        beta = rng.integers(-beta_range, beta_range + 1, cols).astype(np.int32)
        mult = 255 if wide else int(rng.integers(64, 256))
        shift = _shift_for(np.asarray(total, np.int64) * (1 << 8) * gamma + beta, mult)
        add = int(rng.integers(-8, 9))
        out = layer_norm(total, gamma, beta, mult=mult, shift=shift, add=add)
        return KernelCase(kernel, size, (rows, cols), (*add_rq, mult, shift, add),
                          (x, y, gamma, beta), np.concatenate([total, out]), rows * cols,
                          **common)
    if kernel == "layernorm":
        x = _int8(rng, (rows, cols), 35)
        x += rng.integers(-20, 21, (rows, 1)).astype(np.int8)   # a different mean per row
        x[0] = 7                                                 # a constant row
        if rows > 2:
            x[1] = 0
            x[1, cols // 2] = 100                                # one outlier
        gamma = _int8(rng, cols, 60)
        beta_range = (1 << 23) - 1 if wide else 1 << 18
        beta = rng.integers(-beta_range, beta_range + 1, cols).astype(np.int32)
        mult = 255 if wide else int(rng.integers(64, 256))
        st = layer_norm_stats(x)
        t = ((x - st["mean"][:, None]) * st["inv"][:, None] + (1 << (st["r"][:, None] - 1))) \
            >> st["r"][:, None]
        shift = _shift_for(t * gamma + beta, mult)
        add = int(rng.integers(-8, 9))
        out = layer_norm(x, gamma, beta, mult=mult, shift=shift, add=add)
        return KernelCase(kernel, size, (rows, cols), (mult, shift, add), (x, gamma, beta), out,
                          rows * cols, **common)
    if kernel == "itamax":
        a = np.clip(np.rint(rng.normal(0, 6, (rows, cols))) + rng.integers(-60, 60, (rows, 1)),
                    -128, 127).astype(np.int8)
        a[0, :] = a[0, 0]                                        # all equal
        if rows > 1:
            a[1, :] = -128
            a[1, cols - 1] = 127                                 # one-hot at the end
        causal = "causal" in flags
        valid = next((int(f[1:]) for f in flags if f.startswith("v")), cols)
        logit_frac = next((int(f[2:]) for f in flags if f.startswith("lf")), 0)
        mask = key_mask(rows, cols, valid) & (causal_mask(rows, cols) if causal else True)
        out = core_softmax(a, mask=mask, logit_frac=logit_frac)
        return KernelCase(kernel, size, (rows, cols, valid, int(causal)), (logit_frac,), (a,),
                          out, rows * cols, **common)
    # gelu
    x = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    constants = gelu_constants(0.05) if wide else REFERENCE_GELU
    params = (constants.b, constants.c, *constants.act_rq)
    out = i_gelu(x, constants.b, constants.c, constants.act_rq)
    return KernelCase(kernel, size, (rows * cols,), params, (x,), out, rows * cols, **common)


# --- the decoder kernels (ita.golden.decoder) -------------------------------------------------


def _rows_of(consts):
    """Per-column constant arrays as the kernels read them: consecutive int32 rows."""
    return np.concatenate([np.asarray(c, np.int64).ravel() for c in consts]).astype(np.int32)


def _rmsnorm_case(rng, rows, cols, wide, common, size):
    # rows of very different magnitudes: int32 extremes, small values, a zero row
    magnitude = 2.0 ** rng.uniform(20 if wide else 4, 29, (rows, 1))
    x = np.rint(rng.normal(0, 1, (rows, cols)) * magnitude)
    x = np.clip(x, -(1 << 31), (1 << 31) - 1).astype(np.int64)
    x[0] = 0
    if rows > 2:
        x[1, 0] = -(1 << 31)
    if rows > 3:
        x[3] = rng.integers(-3, 4, cols)             # where epsilon matters
    ratio = rng.uniform(0.002, 0.02, cols)
    ratio[-1] = 40000.0                              # a gain beyond 15 bits: the 64-bit path
    mult, shift = dec.fixed_multiplier(ratio, 15)
    eps = int(rng.integers(1 << 40, 1 << 41)) if wide else int(rng.integers(0, 1 << 20))
    out = np.clip(dec.rms_norm(x, mult, shift, eps), -128, 127).astype(np.int8)
    return KernelCase("rmsnorm", size, (rows, cols), (_lo32(eps), eps >> 32),
                      (x.astype(np.int32), _rows_of((mult, shift))), out, rows * cols,
                      **common)


def _lo32(v):
    """The low word of ``v`` as a signed int32 (the C side rebuilds the 64-bit value)."""
    low = v & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def _rope_case(rng, rows, dim, wide, common, size):
    x = _int8(rng, (rows, dim), 50)
    ratio = rng.uniform(100, 600, dim)
    ratio[0] = 4000                                  # saturates the rotation operand
    mult, shift = dec.fixed_multiplier(ratio, 16)
    start = int(rng.integers(0, 100))
    cos, sin = dec.rope_table(10000.0, dim, np.arange(start, start + rows))
    out = dec.rope(x[None].astype(np.int64), mult[None], shift[None], cos, sin)[0]
    return KernelCase("rope", size, (rows, dim), (),
                      (x, _rows_of((mult, shift)), cos.astype(np.int16), sin.astype(np.int16)),
                      out, rows * dim, **common)


def _silu_case(rng, rows, cols, wide, common, size):
    gate, up = _int8(rng, (rows, cols), 60), _int8(rng, (rows, cols), 60)
    gate_mult, gate_shift = dec.fixed_multiplier(rng.uniform(200, 2000, cols), 16)
    out_mult, out_shift = dec.fixed_multiplier(rng.uniform(5e-6, 4e-5, cols), 16)
    consts = (gate_mult, gate_shift, out_mult, out_shift)
    out = np.clip(dec.gated(gate, up, *consts), -128, 127).astype(np.int8)
    return KernelCase("silu_mul", size, (rows, cols), (),
                      (gate, up, _rows_of(consts), dec.sigmoid_table().astype(np.int32)), out,
                      rows * cols, **common)


def _dequant_case(rng, rows, cols, wide, common, size):
    residual = rng.integers(-(1 << 26), 1 << 26, (rows, cols))
    residual[0, 0], residual[-1, -1] = (1 << 31) - 5, -(1 << 31) + 5   # saturate
    y = _int8(rng, (rows, cols), 50)
    y[0, 0], y[-1, -1] = 100, -100
    ratio = rng.uniform(2.0**8, 2.0**14, cols)
    ratio[-1] = 3e6                                   # shift 0, a multiplier above 2**16
    mult, shift = dec.fixed_multiplier(ratio, 16)
    out = dec.dequantise_add(residual, y, mult, shift).astype(np.int32)
    return KernelCase("dequant_add", size, (rows, cols), (),
                      (residual.astype(np.int32), y, _rows_of((mult, shift))), out,
                      rows * cols, **common)


def _decomposed_case(rng, rows, k, n, common, size):
    # int8 inputs with a few wide outliers (one row without any), fine rows for two channels
    x = np.rint(rng.normal(0, 50, (rows, k))).astype(np.int64)
    x[rng.integers(1, rows, 3), rng.integers(0, k, 3)] = rng.integers(-(1 << 20), 1 << 20, 3)
    x[-1, 0] = dec.WIDE
    w = _int8(rng, (k, n), 50)
    fine_rows = np.array([0, k - 1])
    fine_w = np.clip((w[fine_rows].astype(np.int64) << dec.FINE_BITS)
                     + rng.integers(-128, 128, (2, n)), -32767, 32767).astype(np.int16)
    wf = w.astype(np.int64) << dec.FINE_BITS
    wf[fine_rows] = fine_w
    mult = int(rng.integers(64, 256))
    shift = _shift_for(np.clip(x, -128, 127) @ w.astype(np.int64), mult, 60)
    y8 = linear(np.clip(x, -128, 127).astype(np.int8), w, None, rq=(mult, shift, 0))
    y, _ = dec.decomposed_gemm(x, w, (mult, shift), fine=(fine_rows, fine_w))
    return KernelCase("decomposed_gemm", size, (rows, k, n), (mult, shift),
                      (x.astype(np.int32), w, wf.astype(np.int16), y8), y.astype(np.int32),
                      rows * n, macs=rows * k * n, **common)


def _gemv_case(rng, k, n, unsigned, common, size):
    # one row against n weight rows; u8: the softmax probabilities of a decoding step's A.V
    a = rng.integers(0, 256, (1, k)).astype(np.uint8) if unsigned else _int8(rng, (1, k), 60)
    w = _int8(rng, (k, n), 60)
    mult = int(rng.integers(64, 256))
    shift = _shift_for(a.astype(np.int64) @ w.astype(np.int64), mult)
    add = int(rng.integers(-8, 9))
    out = gemm_step("AV" if unsigned else "QK", a, w, None, (mult, shift, add))
    return KernelCase("gemv", size, (k, n, int(unsigned)), (mult, shift, add),
                      (a.ravel(), np.ascontiguousarray(w.T)), out.astype(np.int8), n,
                      macs=k * n, **common)


def _rmsnorm_wide_case(rng, rows, cols, wide, common, size):
    # the wide output (24 bits) is the one checked; the int8 copy goes to a scratch area
    case = _rmsnorm_case(rng, rows, cols, True, common, size)
    x, consts = case.inputs
    eps = (case.params[1] << 32) | (case.params[0] & 0xFFFFFFFF)
    out = dec.rms_norm(x, consts[:cols], consts[cols:], eps).astype(np.int32)
    return KernelCase("rmsnorm_wide", size, (rows, cols), case.params, case.inputs, out,
                      rows * cols, **common)


def _wide(rng, shape, bits):
    """int32 GEMM outputs of ``bits`` bits of spread, a few at the int32 extremes."""
    v = np.rint(rng.normal(0, 2.0**bits, shape)).astype(np.int64)
    v.flat[0], v.flat[-1] = (1 << 31) - 1, -(1 << 31)
    return v.astype(np.int32)


def _rope32_case(rng, rows, dim, wide, common, size):
    x = _wide(rng, (rows, dim), 14)
    mult, shift = dec.fixed_multiplier(rng.uniform(0.5, 4.0, dim), 16)
    start = int(rng.integers(0, 100))
    cos, sin = dec.rope_table(10000.0, dim, np.arange(start, start + rows))
    out = dec.rope(x[None].astype(np.int64), mult[None], shift[None], cos, sin)[0]
    return KernelCase("rope32", size, (rows, dim), (),
                      (x, _rows_of((mult, shift)), cos.astype(np.int16), sin.astype(np.int16)),
                      out, rows * dim, **common)


def _silu_wide_case(rng, rows, cols, wide, common, size):
    gate, up = _wide(rng, (rows, cols), 12), _wide(rng, (rows, cols), 14)
    gate_mult, gate_shift = dec.fixed_multiplier(rng.uniform(0.5, 8, cols), 16)
    out_mult, out_shift = dec.fixed_multiplier(rng.uniform(1e-6, 1e-4, cols), 16)
    consts = (gate_mult, gate_shift, out_mult, out_shift)
    out = dec.gated(gate, up, *consts).astype(np.int32)
    return KernelCase("silu_mul_wide", size, (rows, cols), (),
                      (gate, up, _rows_of(consts), dec.sigmoid_table().astype(np.int32)), out,
                      rows * cols, **common)


def _dequant32_case(rng, rows, cols, wide, common, size):
    residual = rng.integers(-(1 << 26), 1 << 26, (rows, cols))
    residual[0, 0] = (1 << 31) - 5                    # saturates
    y = _wide(rng, (rows, cols), 12)
    mult, shift = dec.fixed_multiplier(rng.uniform(2.0**-4, 2.0**8, cols), 16)
    out = dec.dequantise_add(residual, y, mult, shift).astype(np.int32)
    return KernelCase("dequant_add32", size, (rows, cols), (),
                      (residual.astype(np.int32), y, _rows_of((mult, shift))), out,
                      rows * cols, **common)
# --- the quantised BERT layer's kernels (ita.quant.integer) -------------------------------------

#: Largest |int8 x multiplier| and the bound of the residual sum (ita.quant.integer's limits).
_PRODUCT_MAX = 128 * 255
_SUM_LIMIT = 1 << 31


def _residual_consts(rng, n, cols, worst):
    """(2n, cols) constants of residual_add_rows: random multipliers and shifts whose largest
    sum stays below 2**31; ``worst``: multipliers 255 and, per column, the shifts taken
    greedily as large as the bound allows (the operand first served rotates with the
    column), so that sums come within 2**31 - 2**15 of the limit."""
    if worst:
        mults = np.full((n, cols), 255, np.int64)
        lshifts = np.zeros((n, cols), np.int64)
        for c in range(cols):
            used = 0
            for k in range(n):
                i = (c + k) % n
                rest = (n - k - 1) * _PRODUCT_MAX
                shift = 0
                while used + (_PRODUCT_MAX << (shift + 1)) + rest < _SUM_LIMIT:
                    shift += 1
                lshifts[i, c] = shift
                used += _PRODUCT_MAX << shift
        return np.concatenate([mults, lshifts])
    mults = rng.integers(128, 256, (n, cols))
    mults[-1, 0] = 0                                    # an operand left out of a column
    lshifts = rng.integers(0, 7, (n, 1)) + rng.integers(0, 3, (n, cols))
    while True:
        bound = (np.int64(_PRODUCT_MAX) << lshifts).sum(axis=0)
        if bound.max() < _SUM_LIMIT:
            return np.concatenate([mults, lshifts]).astype(np.int64)
        lshifts = np.maximum(lshifts - (bound >= _SUM_LIMIT), 0)


def _residual_rows_case(rng, rows, cols, flags, common, size):
    n = next(int(f[1:]) for f in flags if f[0] == "n")
    if n < 1:
        raise ValueError(f"size {size!r}: residual_add_rows needs at least one operand")
    worst = "worst" in flags
    ops = np.stack([_int8(rng, (rows, cols), 30) for _ in range(n)])
    if worst:   # extreme rows: sums near -2**31 and 2**31, zero, one outlier column, small
        for r, value in zip(range(rows), (-128, 127, 0), strict=False):
            ops[:, r] = value
        if rows > 3:
            ops[:, 3] = 0
            ops[0, 3, cols // 2] = 127
        if rows > 4:
            ops[:, 4] = rng.integers(-1, 2, (n, cols))
    consts = _residual_consts(rng, n, cols, worst)
    if not worst and rows > 1:   # one outlier column, as MiniLM's [CLS] row
        ops[0, 1, cols - 1] = 127
    out = residual_add_rows(ops[0], list(ops[1:]), consts)
    return KernelCase("residual_add_rows", size, (n, rows, cols), (),
                      (ops, consts.astype(np.int32)), out, rows * cols, **common)


def _layer_norm_rows_input(rng, rows, cols, worst):
    """int16 rows of the residual add's form: each row's largest |value| in [2^12, 2^13];
    ``worst``: constant rows at -2^13 and 2^13, alternating +-2^13 (the largest sum of
    squares), one outlier column, and a row of int8 magnitudes."""
    limit = 1 << ROW_BITS
    x = rng.normal(0, 1, (rows, cols)) + rng.normal(0, 0.3, (rows, 1))
    x = x / np.abs(x).max(axis=1, keepdims=True) * rng.integers(limit // 2, limit + 1, (rows, 1))
    x = np.rint(x).astype(np.int64)
    specials = [np.full(cols, 7)]
    if worst:
        outlier = np.zeros(cols, np.int64)
        outlier[cols // 3] = limit
        specials = [np.full(cols, -limit), np.full(cols, limit),
                    np.where(np.arange(cols) % 2, limit, -limit), outlier,
                    rng.integers(-128, 128, cols)]
    for r, row in zip(range(rows), specials, strict=False):
        x[r] = row
    return x.astype(np.int16)


def _layer_norm_rows_case(rng, rows, cols, flags, common, size):
    wide, worst = "wide" in flags, "worst" in flags
    x = _layer_norm_rows_input(rng, rows, cols, worst)
    gamma = _int8(rng, cols, 60)
    if worst:
        gamma[0], gamma[-1] = -128, 127
    beta_range = (1 << 23) - 1 if wide else 1 << 18
    beta = rng.integers(-beta_range, beta_range + 1, cols).astype(np.int32)
    mult = 255 if wide or worst else int(rng.integers(64, 256))
    add = int(rng.integers(-8, 9))
    # the shift that spreads the outputs best (about 40 LSB)
    spreads = {sh: float(np.std(layer_norm_rows(x, gamma, beta, mult=mult, shift=sh,
                                                 add=add).astype(np.float64)))
               for sh in range(8, 30)}
    shift = min(spreads, key=lambda sh: abs(spreads[sh] - 40.0))
    out = layer_norm_rows(x, gamma, beta, mult=mult, shift=shift, add=add)
    return KernelCase("layer_norm_rows", size, (rows, cols), (mult, shift, add),
                      (x, gamma, beta), out, rows * cols, **common)


def _col_sums_case(rng, rows, cols, flags, common, size):
    x = _int8(rng, (rows, cols), 50)
    if "worst" in flags:   # columns at both int8 extremes over more than 256 rows
        x[:, 0], x[:, -1] = -128, 127
    out = x.astype(np.int64).sum(axis=0)[None].astype(np.int32)
    return KernelCase("col_sums", size, (rows, cols), (), (x,), out, rows * cols, **common)


_BERT_CASES = {"residual_add_rows": _residual_rows_case,
               "layer_norm_rows": _layer_norm_rows_case, "col_sums": _col_sums_case}


_DECODER_CASES = {"rmsnorm": _rmsnorm_case, "rope": _rope_case, "silu_mul": _silu_case,
                  "dequant_add": _dequant_case, "rmsnorm_wide": _rmsnorm_wide_case,
                  "rope32": _rope32_case, "silu_mul_wide": _silu_wide_case,
                  "dequant_add32": _dequant32_case}


def select(size_set: str, kernel: str = "all", seed: int = 1) -> list[KernelCase]:
    """The cases of ``SIZES[size_set]`` (``all``: both sets) for one kernel or ``all``."""
    if size_set not in (*SIZES, "all"):
        raise ValueError(f"unknown size set {size_set!r}; expected one of "
                         f"{', '.join((*SIZES, 'all'))}")
    if kernel != "all" and kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected all or one of "
                         f"{', '.join(KERNELS)}")
    names = [n for s in (SIZES if size_set == "all" else {size_set: 0}) for n in SIZES[s]]
    return [draw_case(k, s, seed) for k, s in names if kernel in ("all", k)]


# --- the header ------------------------------------------------------------------------------


def _c_array(name: str, array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    if array.dtype == np.int32:
        ctype, values = "int32_t", array.ravel().tolist()
    else:
        ctype, values = "uint8_t", array.view(np.uint8).ravel().tolist()
    rows = [", ".join(str(v) for v in values[i:i + 24]) for i in range(0, len(values), 24)]
    body = ",\n    ".join(rows)
    return (f"static const {ctype} {name}[{len(values)}] __attribute__((aligned(4))) = {{\n"
            f"    {body}\n}};\n")


def _layout(case: KernelCase) -> tuple[list[int], int, int]:
    """Arena offsets of the inputs and of the output, and the arena bytes used."""
    offsets, cursor = [], 0
    for array in case.inputs:
        offsets.append(cursor + (1 if case.odd else 0) if array is not None else 0)
        if array is not None:
            cursor = -(-(offsets[-1] + array.nbytes) // 4) * 4
    out = cursor + (1 if case.odd else 0)
    return offsets, out, out + case.expected.nbytes


def write_header(cases, out_dir, *, corrupt: tuple[int, int] | None = None) -> Path:
    """Write ``kernel_cases.h`` for ``cases`` into ``out_dir``; return the path.

    ``corrupt = (case index, byte index)`` flips the bits of one expected byte, so that a
    correct kernel must be reported as a mismatch (the check is shown to bite).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cases:
        raise ValueError("no kernel cases to run")
    parts = ["/* Generated by verif/cluster/kernel_tests.py for one run; do not edit. */\n",
             "#ifndef KERNEL_CASES_H\n#define KERNEL_CASES_H\n\n"]
    table, arena, out_l2 = [], 0, 0
    for index, case in enumerate(cases):
        offsets, out_offset, used = _layout(case)
        if not case.l2 and used > ARENA_BYTES:
            raise ValueError(f"{case.kernel} {case.size} needs {used} bytes of L1; the arena "
                             f"has {ARENA_BYTES}")
        if case.l2:
            out_offset = 1 if case.odd else 0
            out_l2 = max(out_l2, out_offset + case.expected.nbytes)
        else:
            arena = max(arena, used)
        expected = case.expected.copy()
        if corrupt is not None and corrupt[0] == index:
            if not 0 <= corrupt[1] < expected.nbytes:
                raise ValueError(f"corrupt byte {corrupt[1]} is outside the output of "
                                 f"{case.kernel} {case.size} ({expected.nbytes} bytes)")
            expected.view(np.uint8).reshape(-1)[corrupt[1]] ^= 0xFF
        ins, sizes = [], []
        for i, array in enumerate(case.inputs):
            if array is None:
                ins.append("0")
                sizes.append(0)
                continue
            name = f"kc{index}_in{i}"
            parts.append(_c_array(name, array.astype("<i4") if array.dtype == np.int32
                                  else array))
            ins.append(name)
            sizes.append(array.nbytes)
        parts.append(_c_array(f"kc{index}_expected", expected.view(np.uint8)))
        pad = 4 - len(ins)
        table.append(
            f"    {{\"{case.kernel}\", \"{case.size}\", {_KERNEL_IDS[case.kernel]}, "
            f"{int(case.l2)}, {{{', '.join(map(str, case.dims))}}}, "
            f"{{{', '.join(map(str, case.params)) or '0'}}}, "
            f"{{{', '.join(ins + ['0'] * pad)}}}, {{{', '.join(map(str, sizes + [0] * pad))}}}, "
            f"{{{', '.join(map(str, offsets + [0] * pad))}}}, kc{index}_expected, "
            f"{case.expected.nbytes}, {out_offset}, {case.out_cols}, {case.elements}}},")
    parts.append(f"\n#define KC_COUNT {len(cases)}\n")
    parts.append(f"#define KC_ARENA_BYTES {max(4, -(-arena // 4) * 4)}\n")
    parts.append(f"#define KC_OUT_L2_BYTES {max(4, -(-out_l2 // 4) * 4)}\n")
    # k_residual_add_rows: the coefficient scratch and the operand pointers of the largest case
    ra = [case.dims for case in cases if case.kernel == "residual_add_rows"]
    parts.append(f"#define KC_RA_COEF_WORDS {max([n * cols for n, _, cols in ra], default=1)}\n")
    parts.append(f"#define KC_RA_MAX_OPS {max([n for n, _, _ in ra], default=1)}\n\n")
    parts.append("static const kcase_t KC_CASES[KC_COUNT] = {\n" + "\n".join(table) + "\n};\n")
    parts.append("\n#endif\n")
    path = out_dir / "kernel_cases.h"
    path.write_text("".join(parts))
    return path


# --- running ---------------------------------------------------------------------------------

_CASE_LINE = re.compile(r"^kernels: (?P<kernel>\w+) (?P<size>\S+) cycles=(?P<cycles>\d+) "
                        r"elements=(?P<elements>\d+) cycles_per_element=(?P<cpe>[\d.]+)$")
_MISMATCH = re.compile(r"^kernels: MISMATCH (?P<rest>.*)$")


def parse_lines(output: str) -> tuple[list[dict], str | None]:
    """(one dict per measured case, the mismatch report or None) from the program output."""
    rows, mismatch = [], None
    for line in output.splitlines():
        line = line.strip()
        if match := _CASE_LINE.match(line):
            rows.append({"kernel": match["kernel"], "size": match["size"],
                         "cycles": int(match["cycles"]), "elements": int(match["elements"]),
                         "cycles_per_element": float(match["cpe"])})
        elif match := _MISMATCH.match(line):
            mismatch = match["rest"]
    return rows, mismatch


def format_table(rows, cases=()) -> str:
    """The cycles-per-element table, with MACs per cycle for the GEMM cases."""
    macs = {(c.kernel, c.size): c.macs for c in cases}
    lines = [f"{'kernel':<13} {'size':<22} {'cycles':>9} {'elements':>9} {'cyc/elem':>9} "
             f"{'MACs/cyc':>9}"]
    for r in rows:
        m = macs.get((r["kernel"], r["size"]), 0)
        per = f"{m / r['cycles']:.2f}" if m else "-"
        lines.append(f"{r['kernel']:<13} {r['size']:<22} {r['cycles']:>9} {r['elements']:>9} "
                     f"{r['cycles_per_element']:>9.2f} {per:>9}")
    return "\n".join(lines)


@dataclass(frozen=True)
class KernelRun:
    status: str
    fields: dict
    rows: list
    mismatch: str | None
    output: str


def run_cases(cases, *, tag: str, corrupt=None, max_cycles=None, stream=False) -> KernelRun:
    """Write the header, build ``sw/apps/kernels`` with the kernels, run it in the harness.

    PASS needs the program's exit code 0 and one measured line per case.
    """

    work = toolchain.BUILD_ROOT / "sw" / "kernels" / tag
    write_header(cases, work, corrupt=corrupt)
    app = build_app("kernels", out_dir=work, include_dirs=(work,),
                    extra_sources=KERNEL_SOURCES)
    run = run_image("kernels", app.hex, max_cycles=max_cycles or DEFAULT_MAX_CYCLES,
                    stream=stream)
    rows, mismatch = parse_lines(run.output)
    status = "PASS" if run.status == "PASS" and len(rows) == len(cases) else "FAIL"
    fields = dict(run.fields)
    fields["total_cycles"] = fields.pop("cycles", None)
    fields["cycles"] = sum(r["cycles"] for r in rows)
    fields["cases"] = len(rows)
    return KernelRun(status, fields, rows, mismatch, run.output)

