/*
 * k_residual_add_rows: the residual add in front of a LayerNorm of ita.quant.integer
 * (residual_add_rows): n int8 operands, per-column multipliers and left shifts, the exact
 * 32-bit sum, then each row shifted right by its own amount into 13-bit int16 values.
 *
 * The constants are checked first, each core on its share of the columns (a multiplier
 * outside 0..255, a negative shift, or a column whose largest sum reaches 2^31:
 * K_ERR_RESIDUAL, the limits at which ita.quant.integer raises), and combined into one
 * coefficient mult << lshift per operand and column in `coef` (n cols int32 in L1), so that
 * a value costs one load and one cv.mac per operand. Rows then go round-robin over the
 * cores: a first pass finds max |v| of the row (cv.max / cv.min), a second one recomputes v
 * and rounds it with one cv.addrnr. Recomputing costs the n multiply-accumulates again but
 * needs no 32-bit copy of the row. The products have no SIMD form: each operand's column has
 * its own shift, and the coefficients reach 24 bits.
 */

#include "k_common.h"
#include "kernels.h"

/* Largest |int8 * 8-bit multiplier|, and the largest left shift one product can take. */
#define RA_PRODUCT_MAX (128u * 255u)
#define RA_LSHIFT_MAX 16

/* K_ERR_RESIDUAL unless the columns [lo, hi) of every operand are usable; fills coef. */
static int ra_constants(const int32_t *consts, int n, int cols, int lo, int hi, int32_t *coef)
{
    for (int j = lo; j < hi; j++) {
        uint64_t bound = 0;
        for (int i = 0; i < n; i++) {
            const int32_t mult = consts[i * cols + j], lshift = consts[(n + i) * cols + j];
            if ((uint32_t)mult > 255u || (uint32_t)lshift > (uint32_t)RA_LSHIFT_MAX)
                return K_ERR_RESIDUAL;
            bound += (uint64_t)RA_PRODUCT_MAX << lshift;
            coef[i * cols + j] = mult << lshift;
        }
        if (bound >= (1ull << 31))
            return K_ERR_RESIDUAL;
    }
    return K_OK;
}

/* v of column j of a row: the operands' bytes at offset `at` times their coefficients. */
static inline __attribute__((always_inline)) int32_t
ra_value(const int8_t *const *ops, const int32_t *coef, int n, int cols, int at, int j)
{
    int32_t v = 0;
    for (int i = 0; i < n; i++)
        v = k_mac(v, ops[i][at], coef[i * cols + j]);
    return v;
}

static inline int32_t ra_max(int32_t a, int32_t b)
{
    __asm__("cv.max %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

static inline int32_t ra_min(int32_t a, int32_t b)
{
    __asm__("cv.min %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

/* One row (inlined with a constant n for the usual operand counts). */
static inline __attribute__((always_inline)) void
ra_row(const int8_t *const *ops, const int32_t *coef, int n, int cols, int row, int16_t *out)
{
    const int at = row * cols;
    int32_t top = 0, bottom = 0;
    for (int j = 0; j < cols; j++) {
        const int32_t v = ra_value(ops, coef, n, cols, at + j, j);
        top = ra_max(top, v);
        bottom = ra_min(bottom, v);
    }
    /* |v| < 2^31 (the constants' check), so -bottom does not overflow */
    const uint32_t peak = (uint32_t)(top > -bottom ? top : -bottom);
    const int bits = peak ? 32 - __builtin_clz(peak) : 0;
    const int s = bits > K_ROW_BITS ? bits - K_ROW_BITS : 0;
    int16_t *o = out + at;
    if (s == 0 || peak + (1u << (s - 1)) < (1u << 31)) {
        /* v + 2^(s-1) stays inside int32: one rounding add-shift */
        for (int j = 0; j < cols; j++)
            o[j] = (int16_t)k_addrn(ra_value(ops, coef, n, cols, at + j, j), 0, s);
    } else {
        /* floor((v + 2^(s-1)) / 2^s) = (floor(v / 2^(s-1)) + 1) >> 1 */
        for (int j = 0; j < cols; j++)
            o[j] = (int16_t)(((ra_value(ops, coef, n, cols, at + j, j) >> (s - 1)) + 1) >> 1);
    }
}

int k_residual_add_rows(const int8_t *const *ops, int n, int16_t *out, int rows, int cols,
                        const int32_t *consts, int32_t *coef)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    if (n < 1 || cols < 1)
        return K_ERR_RESIDUAL;
    int lo, hi;
    k_span(cols, 1, &lo, &hi);
    const int status = k_agree(slots, ra_constants(consts, n, cols, lo, hi, coef));
    if (status) {
        barrier();
        return status;
    }
    const int cores = (int)num_cores();
    for (int r = (int)core_id(); r < rows; r += cores) {
        if (n == 2)
            ra_row(ops, coef, 2, cols, r, out);
        else if (n == 3)
            ra_row(ops, coef, 3, cols, r, out);
        else
            ra_row(ops, coef, n, cols, r, out);
    }
    barrier();
    return K_OK;
}
