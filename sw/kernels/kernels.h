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
 */

#ifndef KERNELS_H
#define KERNELS_H

#include <stdint.h>

/* c(m, n) = requant(a(m, k) @ bt(n, k)^T + bias(n)); bias may be NULL. == ita.golden.linear
 * for every sum that fits int32 (the engine's 26-bit accumulator always does). */
void k_gemm_rq(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int m, int k,
               int n, int mult, int shift, int add);

/* out[i] = requant(x[i] * mult_x + y[i] * mult_y, 1, shift, add): ita.golden.residual_add. */
void k_residual_add(const int8_t *x, const int8_t *y, int8_t *out, int count, int mult_x,
                    int mult_y, int shift, int add);

/* out[i] = requant(sum over h < heads_count of heads[h * head_stride + i]): ita.golden.head_sum. */
void k_head_sum(const int8_t *heads, int heads_count, int head_stride, int count, int8_t *out,
                int mult, int shift, int add);

/* Integer LayerNorm of rows x cols int8 values with int8 gamma and 24-bit beta (cols entries
 * each): ita.golden.layer_norm. cols <= 66051. */
void k_layernorm(const int8_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                 const int32_t *beta, int mult, int shift, int add);

/* The add & norm step of an encoder layer fused row by row: sum = residual_add(x, y) (as
 * k_residual_add with mult_x, mult_y, shift_a, add_a) and out = layer_norm(sum) (as
 * k_layernorm); one pass over x and y per row instead of three over the tensors. `sum` must
 * not overlap the other tensors; rows go round-robin over the cores. `scratch` (2 cols
 * int32, or NULL) receives the per-column constants of the requantization, which saves two
 * instructions per value. */
void k_add_layernorm(const int8_t *x, const int8_t *y, int8_t *sum, int8_t *out, int rows,
                     int cols, int mult_x, int mult_y, int shift_a, int add_a,
                     const int8_t *gamma, const int32_t *beta, int mult, int shift, int add,
                     int32_t *scratch);

/* ITAmax of each row (groups of ITA_N columns): ita.golden.itamax with the mask "column <
 * valid_cols, and column <= row if causal" (row counted from 0 in this call). cols <= 2047. */
void k_itamax(const int8_t *a, uint8_t *out, int rows, int cols, int valid_cols, int causal);

/* out[i] = requant(i_gelu_poly(x[i], b, c), mult, shift, add): ita.golden.i_gelu (26-bit
 * intermediates, b and c int16). */
void k_gelu(const int8_t *x, int8_t *out, int count, int b, int c, int mult, int shift,
            int add);

/*
 * Decoder kernels (ita.golden.decoder), bit-exact with the integer Llama model
 * (ita.quant.llama) where its GEMM inputs stay inside int8 (no decomposition): the outputs
 * that feed the engine saturate to int8. Per-column constants come as one int32 array of
 * consecutive rows of `cols` (or `dim`) entries each, in the order named; multipliers may
 * reach 2^31 and shifts 62 (the 64-bit scale_round).
 */

/* out(r, :) = clip8(rms_norm(x(r, :))): int32 rows, consts = mult | shift, eps in units of
 * x's LSB squared times cols. */
void k_rmsnorm(const int32_t *x, int8_t *out, int rows, int cols, int out_pitch,
               const int32_t *consts, int64_t eps);

/* out = rope(x) of ita.golden.decoder for one head: rows of dim values (pairs (i, i + dim /
 * 2)), consts = mult | shift (dim each), cos / sin the Q14 tables (rows x dim / 2) of the
 * rows' positions. */
void k_rope(const int8_t *x, int x_pitch, int8_t *out, int out_pitch, int rows, int dim,
            const int32_t *consts, const int16_t *cos, const int16_t *sin);

/* out = clip8(gated(gate, up)): consts = gate_mult | gate_shift | out_mult | out_shift,
 * table the 513-entry Q15 sigmoid (ita.golden.decoder.sigmoid_table). */
void k_silu_mul(const int8_t *gate, const int8_t *up, int in_pitch, int8_t *out,
                int out_pitch, int rows, int cols, const int32_t *consts,
                const int32_t *table);

/* out = dequantise_add(residual, y): int32 rows x cols (out == residual allowed), consts =
 * mult | shift. */
void k_dequant_add(const int32_t *residual, const int8_t *y, int y_pitch, int32_t *out,
                   int rows, int cols, const int32_t *consts);

/* y = decomposed_gemm(x, w, (mult, shift), fine) of ita.golden.decoder from the engine's
 * y8 = requant(clip8(x) @ w): x rows x k wide inputs (24 bits), w k x n int8, wf k x n the
 * int16 weights at 8 more fraction bits (w << 8 except the fine rows), y rows x n int32. */
void k_decomposed_gemm(const int32_t *x, int k, const int8_t *w, const int16_t *wf,
                       const int8_t *y8, int y_pitch, int32_t *y, int rows, int n, int mult,
                       int shift);

#endif /* KERNELS_H */
