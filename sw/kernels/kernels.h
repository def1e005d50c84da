/*
 * Integer kernels of a Transformer encoder layer for the cluster's cores, bit-exact with
 * ita/golden (ita.golden.linear, ita.golden.encoder, ita.golden.itamax, ita.golden.i_gelu);
 * the arithmetic is written down in docs/encoder-arithmetic.md.
 *
 * Calling convention (SPMD): every core of the program (num_cores()) calls the kernel with
 * the same arguments; each core computes its share, split by core_id(), and all of them meet
 * in barrier() before returning, so the whole output is valid when the call returns on any
 * core. int8 tensors are row-major and dense; buffers may be in L1 or L2. Any alignment
 * works, but the SIMD paths need word-aligned rows (k_gemm_rq: a and bt aligned and k a
 * multiple of 4; k_layernorm: each row aligned); otherwise bytes are loaded one by one.
 * Outputs must not overlap the inputs, except that out == x is allowed for the element-wise
 * kernels.
 *
 * Requantization (mult, shift, add) is the engine's: clamp(floor((mult * v + 2^(shift-1)) /
 * 2^shift) + add, -128, 127), mult in 0..255, shift in 0..255, add in -128..127.
 *
 * Status: every kernel returns K_OK (0), or the K_ERR_* code of a documented limit that its
 * arguments or inputs break, where ita.golden raises instead of computing: the same code on
 * every core, and then the output is not valid. Limits of the arguments are checked once per
 * call before any work; those of per-column constants by every core on its share of the
 * columns (then one more barrier agrees the code); the wide inputs of k_decomposed_gemm in
 * the scan of each row that the kernel makes anyway. k_status_text names a code.
 */

#ifndef KERNELS_H
#define KERNELS_H

#include <stdint.h>

enum {
    K_OK = 0,
    K_ERR_REQUANT = 1,      /* a requantization constant outside the ranges above */
    K_ERR_GEMM_SUM = 2,     /* k_gemm_rq: k * 2^14 + max |bias| can leave int32 */
    K_ERR_HEADS = 3,        /* k_head_sum: heads_count outside 1..K_HEADS_MAX */
    K_ERR_LN_COLS = 4,      /* LayerNorm: cols outside 1..K_LN_MAX_COLS (32-bit sum of squares) */
    K_ERR_SOFTMAX_COLS = 5, /* k_itamax: a row keeps more than K_SOFTMAX_MAX_COLS logits */
    K_ERR_GELU_CONST = 6,   /* k_gelu: b or c outside int16 */
    K_ERR_WIDE_INPUT = 7,   /* k_decomposed_gemm: an input outside 24 bits */
    K_ERR_SHIFT = 8,        /* a decoder fixed-point shift outside 0..K_SHIFT_MAX */
    K_ERR_RESIDUAL = 9,     /* k_residual_add_rows: a constant beyond its limits, no operand */
    K_ERR_ROW_RANGE = 10,   /* k_layer_norm_rows: a value outside +-2^K_ROW_BITS */
    K_ERR_ROWS = 11,        /* k_col_sums: rows outside 0..K_COLSUM_MAX_ROWS */
    K_ERR_LOGIT_FRAC = 12,  /* k_itamax: logit_frac outside 0..ITA_LOGIT_FRAC_MAX */
};

/* The limits (ita.golden: encoder._LN_MAX_COLS, the softmax_sum_width of ita.config with
 * 256 per kept logit, decoder.WIDE + 1 and scale_round's shifts). */
#define K_LN_MAX_COLS 66051        /* (2^32 - 1) / 255^2 */
#define K_SOFTMAX_MAX_COLS 2047    /* 2^19 / 256 - 1 */
#define K_HEADS_MAX (1 << 24)      /* 128 * heads fits int32 */
#define K_WIDE_MAX (1 << 23)       /* wide inputs: |x| <= K_WIDE_MAX */
#define K_SHIFT_MAX 62
#define K_ROW_BITS 13              /* ita.quant.integer.ROW_BITS: the int16 rows' magnitude */
#define K_COLSUM_MAX_ROWS (1 << 24) /* -128 * rows fits int32 */

/* The limit a K_ERR_* code stands for, as a short phrase for reports. */
static inline const char *k_status_text(int status)
{
    switch (status) {
    case K_OK: return "ok";
    case K_ERR_REQUANT: return "requant constant out of range";
    case K_ERR_GEMM_SUM: return "int32 sum overflow";
    case K_ERR_HEADS: return "head count out of range";
    case K_ERR_LN_COLS: return "LayerNorm columns beyond the 32-bit sum of squares";
    case K_ERR_SOFTMAX_COLS: return "softmax columns beyond the 19-bit running sum";
    case K_ERR_GELU_CONST: return "GELU constant outside int16";
    case K_ERR_WIDE_INPUT: return "wide input outside 24 bits";
    case K_ERR_SHIFT: return "shift outside 0..62";
    case K_ERR_RESIDUAL: return "residual constants beyond the 31-bit sum";
    case K_ERR_ROW_RANGE: return "row value outside 13 bits";
    case K_ERR_ROWS: return "column sum rows beyond int32";
    case K_ERR_LOGIT_FRAC: return "ITAmax logit step outside 0..ITA_LOGIT_FRAC_MAX";
    default: return "unknown status";
    }
}

/* c(m, n) = requant(a(m, k) @ bt(n, k)^T + bias(n)); bias may be NULL. == ita.golden.linear
 * for every sum that fits int32 (the engine's 26-bit accumulator always does): K_ERR_GEMM_SUM
 * when k * 2^14 + max |bias| does not. */
int k_gemm_rq(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int m, int k,
              int n, int mult, int shift, int add);

/* out[i] = requant(x[i] * mult_x + y[i] * mult_y, 1, shift, add): ita.golden.residual_add. */
int k_residual_add(const int8_t *x, const int8_t *y, int8_t *out, int count, int mult_x,
                   int mult_y, int shift, int add);

/* out[i] = requant(sum over h < heads_count of heads[h * head_stride + i]): ita.golden.head_sum;
 * heads_count in 1..K_HEADS_MAX (K_ERR_HEADS). */
int k_head_sum(const int8_t *heads, int heads_count, int head_stride, int count, int8_t *out,
               int mult, int shift, int add);

/* Integer LayerNorm of rows x cols int8 values with int8 gamma and 24-bit beta (cols entries
 * each): ita.golden.layer_norm. cols in 1..K_LN_MAX_COLS (K_ERR_LN_COLS). */
int k_layernorm(const int8_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                const int32_t *beta, int mult, int shift, int add);

/* The add & norm step of an encoder layer fused row by row: sum = residual_add(x, y) (as
 * k_residual_add with mult_x, mult_y, shift_a, add_a) and out = layer_norm(sum) (as
 * k_layernorm); one pass over x and y per row instead of three over the tensors. `sum` must
 * not overlap the other tensors; rows go round-robin over the cores. `scratch` (2 cols
 * int32, or NULL) receives the per-column constants of the requantization, which saves two
 * instructions per value. */
int k_add_layernorm(const int8_t *x, const int8_t *y, int8_t *sum, int8_t *out, int rows,
                    int cols, int mult_x, int mult_y, int shift_a, int add_a,
                    const int8_t *gamma, const int32_t *beta, int mult, int shift, int add,
                    int32_t *scratch);

/* ITAmax of each row (groups of ITA_N columns): ita.golden.itamax with the mask "column <
 * valid_cols, and column <= row if causal" (row counted from 0 in this call), one logit step
 * meaning ln 2 / 2^logit_frac (K_ERR_LOGIT_FRAC outside 0..ITA_LOGIT_FRAC_MAX). At most
 * K_SOFTMAX_MAX_COLS kept columns per row (K_ERR_SOFTMAX_COLS). */
int k_itamax(const int8_t *a, uint8_t *out, int rows, int cols, int valid_cols, int causal,
             int logit_frac);

/* out[i] = requant(i_gelu_poly(x[i], b, c), mult, shift, add): ita.golden.i_gelu (26-bit
 * intermediates, b and c int16: K_ERR_GELU_CONST). */
int k_gelu(const int8_t *x, int8_t *out, int count, int b, int c, int mult, int shift,
           int add);

/*
 * Decoder kernels (ita.golden.decoder), bit-exact with the integer Llama model
 * (ita.quant.llama): the outputs that feed the engine saturate to int8; the *_wide / *32
 * forms also keep (or read) the wide values of the decomposition (24-bit RMSNorm and SiLU x
 * up outputs, int32 GEMM outputs of k_decomposed_gemm_ex). Per-column constants come as one
 * int32 array of consecutive rows of `cols` (or `dim`) entries each, in the order named;
 * multipliers may reach 2^31 and shifts 62 (the 64-bit scale_round; a larger shift:
 * K_ERR_SHIFT).
 */

/* out(r, :) = clip8(rms_norm(x(r, :))): int32 rows, consts = mult | shift, eps in units of
 * x's LSB squared times cols. */
int k_rmsnorm(const int32_t *x, int8_t *out, int rows, int cols, int out_pitch,
              const int32_t *consts, int64_t eps);

/* out = rope(x) of ita.golden.decoder for one head: rows of dim values (pairs (i, i + dim /
 * 2)), consts = mult | shift (dim each), cos / sin the Q14 tables (rows x dim / 2) of the
 * rows' positions. */
int k_rope(const int8_t *x, int x_pitch, int8_t *out, int out_pitch, int rows, int dim,
           const int32_t *consts, const int16_t *cos, const int16_t *sin);

/* out = clip8(gated(gate, up)): consts = gate_mult | gate_shift | out_mult | out_shift,
 * table the 513-entry Q15 sigmoid (ita.golden.decoder.sigmoid_table). */
int k_silu_mul(const int8_t *gate, const int8_t *up, int in_pitch, int8_t *out,
               int out_pitch, int rows, int cols, const int32_t *consts,
               const int32_t *table);

/* out = dequantise_add(residual, y): int32 rows x cols (out == residual allowed), consts =
 * mult | shift. */
int k_dequant_add(const int32_t *residual, const int8_t *y, int y_pitch, int32_t *out,
                  int rows, int cols, const int32_t *consts);

/* c(n) = requant(a(k) @ bt(n, k)^T) for one row, bt's rows bt_pitch bytes apart, the output
 * columns shared by the cores: k_gemm_rq with m = 1 and no bias; k_gemv_u8 with uint8 a
 * (A.V's probabilities). K_ERR_GEMM_SUM when k * 255 * 128 leaves int32. */
int k_gemv(const int8_t *a, const int8_t *bt, int bt_pitch, int8_t *c, int k, int n, int mult,
           int shift, int add);
int k_gemv_u8(const uint8_t *a, const int8_t *bt, int bt_pitch, int8_t *c, int k, int n,
              int mult, int shift, int add);

/* k_rmsnorm, and wide(r, c) = rms_norm(x)(r, c) saturated to 24 bits (rows x cols int32). */
int k_rmsnorm_wide(const int32_t *x, int8_t *out, int out_pitch, int32_t *wide, int rows,
                   int cols, const int32_t *consts, int64_t eps);

/* k_rope of int32 GEMM outputs (rows of x_pitch int32). */
int k_rope32(const int32_t *x, int x_pitch, int8_t *out, int out_pitch, int rows, int dim,
             const int32_t *consts, const int16_t *cos, const int16_t *sin);

/* k_silu_mul of int32 gate and up (rows of in_pitch int32; up saturates to 2^21 - 1), and
 * wide(r, c) = gated(gate, up) saturated to 24 bits (rows x cols int32). */
int k_silu_mul_wide(const int32_t *gate, const int32_t *up, int in_pitch, int8_t *out,
                    int out_pitch, int32_t *wide, int rows, int cols, const int32_t *consts,
                    const int32_t *table);

/* k_dequant_add of an int32 GEMM output (rows of y_pitch int32). */
int k_dequant_add32(const int32_t *residual, const int32_t *y, int y_pitch, int32_t *out,
                    int rows, int cols, const int32_t *consts);

/* y = decomposed_gemm(x, w, (mult, shift), fine) of ita.golden.decoder from the engine's
 * y8 = requant(clip8(x) @ w): x rows x k wide inputs (24 bits), w k x n int8, wf k x n the
 * int16 weights at 8 more fraction bits (w << 8 except the fine rows), y rows x n int32;
 * |x| <= K_WIDE_MAX (K_ERR_WIDE_INPUT), (mult, shift) a requantization with shift + 8 <= 62. */
int k_decomposed_gemm(const int32_t *x, int k, const int8_t *w, const int16_t *wf,
                      const int8_t *y8, int y_pitch, int32_t *y, int rows, int n, int mult,
                      int shift);

/* k_decomposed_gemm with element (i, c) of w at i * w_row + c * w_col; the fine weight of
 * (i, c) at wf[map[i] * wf_row + c * wf_col] where map[i] >= 0 (the fine rows only), w << 8
 * elsewhere; map NULL: at wf[i * wf_row + c * wf_col] (whole), both NULL: w << 8 everywhere.
 * x rows of x_pitch int32 (x_wide) or int8 (nothing clipped), y8(r, c) at r * y8_row + c *
 * y8_col and y(r, c) at r * y_row + c * y_col, int32 (y_wide) or int8 saturated; y may be
 * y8 (in place). */
int k_decomposed_gemm_ex(const void *x, int x_wide, int x_pitch, int k, const int8_t *w,
                         int w_row, int w_col, const int16_t *map, const int16_t *wf,
                         int wf_row, int wf_col, const int8_t *y8, int y8_row, int y8_col,
                         void *y, int y_wide, int y_row, int y_col, int rows, int n, int mult,
                         int shift);
/*
 * The kernels of a quantised BERT layer (ita.quant.integer), bit-exact with it: the residual
 * adds into int16 rows of K_ROW_BITS magnitude bits, their LayerNorm, the pooling's column
 * sums.
 */

/* out (rows x cols int16) = residual_add_rows(ops[0], ops[1 .. n-1], consts): n int8 operands
 * of rows x cols (dense), consts (2n rows of cols int32: a multiplier per operand, then a left
 * shift per operand); v = sum_i (ops[i] * mult_i) << lshift_i is exact, each row is shifted
 * right by max(0, bit_length(max |v|) - K_ROW_BITS), rounding half up. K_ERR_RESIDUAL for
 * n < 1, a multiplier outside 0..255, a negative shift or a column whose largest sum
 * (128 * 255 << lshift over the operands) reaches 2^31. coef: n x cols int32 of scratch. */
int k_residual_add_rows(const int8_t *const *ops, int n, int16_t *out, int rows, int cols,
                        const int32_t *consts, int32_t *coef);

/* out = layer_norm_rows(x) of ita.quant.integer: the LayerNorm of k_layernorm (int8 gamma,
 * 24-bit beta, the output requantization) on int16 rows with a 64-bit sum of squares;
 * |x| <= 2^K_ROW_BITS (K_ERR_ROW_RANGE), cols >= 1 (K_ERR_LN_COLS). scratch: 2 cols int32 for
 * the per-column coefficients, or NULL. */
int k_layer_norm_rows(const int16_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                      const int32_t *beta, int mult, int shift, int add, int32_t *scratch);

/* out[c] = sum over rows r of x[r * pitch + c] (int32), the mean pooling's column sums;
 * rows in 0..K_COLSUM_MAX_ROWS (K_ERR_ROWS). */
int k_col_sums(const int8_t *x, int rows, int cols, int pitch, int32_t *out);

#endif /* KERNELS_H */
