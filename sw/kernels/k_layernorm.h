/*
 * Helpers of the LayerNorm kernels (k_layernorm, k_add_layernorm, k_layer_norm_rows; not part of
 * their interface): the normalised square root, the row statistics, the per-column
 * coefficients and the output of one value.
 */

#ifndef K_LAYERNORM_H
#define K_LAYERNORM_H

#include <stdint.h>

#include "k_common.h"

/* floor(sqrt(v)) for v >= 2^30 (a normalised variance): the top 8 bits bit by bit from
 * v >> 16 (unrolled, without branches), one Newton step from below (which lands at most two
 * above the root) and a downward correction; checked against the bit-by-bit root for every
 * v in [2^30, 2^32). */
static inline uint32_t isqrt_norm(uint32_t v)
{
    uint32_t w = v >> 16, root = 0;
#pragma clang loop unroll(full)
    for (int i = 7; i >= 0; i--) {
        const uint32_t bit = 1u << (2 * i), trial = root + bit;
        const uint32_t take = w >= trial;
        w -= trial & (0u - take);
        root = (root >> 1) + (bit & (0u - take));
    }
    uint32_t y = root << 8; /* <= sqrt(v), at least 2^15 */
    y = (y + v / y) >> 1;
    y = y > 0xFFFFu ? 0xFFFFu : y; /* y * y below 2^32 */
    while (y * y > v)
        y--;
    return y;
}

#define LN_FRACTION_BITS 15

/* The row statistics -> mean, inv and the shift r of t = ((x - mean) * inv + 2^(r-1)) >> r. */
typedef struct {
    int32_t mean, inv, r;
} ln_row_t;

static inline ln_row_t ln_row(int32_t sum, int32_t sumsq, int n)
{
    ln_row_t s;
    /* mean = floor((sum + n / 2) / n), through an unsigned division of a positive number */
    s.mean = (int32_t)(((uint32_t)(sum + 128 * n) + (uint32_t)(n >> 1)) / (uint32_t)n) - 128;
    const uint32_t var = (uint32_t)sumsq - 2u * (uint32_t)s.mean * (uint32_t)sum +
                         (uint32_t)n * (uint32_t)(s.mean * s.mean);
    s.inv = 0;
    s.r = 31 - LN_FRACTION_BITS;
    if (var) {
        const int a = __builtin_clz(var) >> 1;
        s.inv = (int32_t)((1u << 31) / isqrt_norm(var << (2 * a)));
        s.r -= a;
    }
    return s;
}

/* -mean * inv (mod 2^32): t = (x * inv + m + 2^(r-1)) >> r, the true sum fitting 26 bits. */
static inline int32_t ln_m(ln_row_t s)
{
    return (int32_t)(0u - (uint32_t)s.mean * (uint32_t)s.inv);
}

/* One output from x and its column's coefficients a = gamma mult, b = beta mult + add
 * 2^shift (ln_coef): t by one multiply and one rounding add-shift (cv.addrnr), then
 * requant(t gamma + beta) = clamp((t a + b + 2^(shift-1)) >> shift) the same way. */
static inline int32_t ln_out(int32_t x, int32_t inv, int32_t m, int32_t r, int32_t a,
                             int32_t b, int32_t shift)
{
    const int32_t t = k_addrn(x * inv, m, r);
    return k_clip8(k_addrn(t * a, b, shift));
}

/* The requantization of t * gamma + beta: |t| <= 2^15 + 1 and |gamma| <= 128; beta adds its
 * largest magnitude. */
static inline k_rq_t ln_rq(int cols, const int32_t *beta, int mult, int shift, int add)
{
    uint32_t top = 0;
#pragma clang loop unroll_count(4)
    for (int j = 0; j < cols; j++) {
        uint32_t v = beta[j] < 0 ? 0u - (uint32_t)beta[j] : (uint32_t)beta[j];
        top = v > top ? v : top;
    }
    return k_rq_make(mult, shift, add, ((1u << LN_FRACTION_BITS) + 1) * 128u + top);
}

/* coef[2 j] = gamma[j] mult, coef[2 j + 1] = beta[j] mult + add 2^shift (k_rq_t.fold:
 * the sum with the rounding term fits 31 bits), this core's share of the columns; then
 * mult (t gamma + beta) + k = t coef[2 j] + coef[2 j + 1] + 2^(shift-1) (ln_out). */
static inline void ln_coef(int32_t *coef, int cols, const int8_t *gamma, const int32_t *beta,
                    const k_rq_t *rq)
{
    int lo, hi;
    k_span(cols, 1, &lo, &hi);
    for (int j = lo; j < hi; j++) {
        coef[2 * j] = gamma[j] * rq->mult;
        coef[2 * j + 1] = (int32_t)((uint32_t)beta[j] * (uint32_t)rq->mult +
                                    ((uint32_t)rq->add << rq->shift));
    }
}

#endif /* K_LAYERNORM_H */
