/*
 * k_layernorm: the integer LayerNorm of ita.golden.layer_norm (docs/encoder-arithmetic.md).
 *
 * Rows are split over the cores (row r on core r mod cores). Per row, one pass of
 * cv.sdotsp.b gives the sum (dot product with 0x01010101) and the sum of squares (the word
 * with itself), four values per instruction; the sum of squared deviations then follows
 * exactly as sum(x^2) - 2 mean sum(x) + n mean^2 (mod 2^32, and the true value is below
 * 2^32). One integer square root and one division per row give `inv`; the second pass
 * computes t = (d * inv + 2^(r-1)) >> r, t * gamma + beta and the requantization. Both
 * passes start at a column that puts the cores in different L1 banks (k_rotation).
 */

#include "k_common.h"
#include "kernels.h"

/* floor(sqrt(v)), bit by bit. */
static uint32_t isqrt32(uint32_t v)
{
    uint32_t root = 0, bit = 1u << 30;
    while (bit > v)
        bit >>= 2;
    while (bit) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

#define LN_FRACTION_BITS 15

static void layernorm_row(const int8_t *x, int8_t *out, int n, const int8_t *gamma,
                          const int32_t *beta, const k_rq_t *rq)
{
    int32_t sum = 0, sumsq = 0;
    const int nw = k_aligned(x) ? n >> 2 : 0; /* misaligned rows: byte by byte */
    const int rot = k_rotation(x, 0, 4 * nw);  /* cores start in different banks */
    for (int pass = 0; pass < 2; pass++) {
        const int8_t *p = x + (pass ? 0 : rot), *end = x + (pass ? rot : 4 * nw);
        while (p != end) {
            uint32_t v = k_lw_inc(&p);
            sum = k_sdot4(sum, v, 0x01010101u);
            sumsq = k_sdot4(sumsq, v, v);
        }
    }
    for (int i = 4 * nw; i < n; i++) {
        sum += x[i];
        sumsq += x[i] * x[i];
    }
    /* mean = floor((sum + n / 2) / n), through an unsigned division of a positive number */
    const int32_t mean =
        (int32_t)(((uint32_t)(sum + 128 * n) + (uint32_t)(n >> 1)) / (uint32_t)n) - 128;
    const uint32_t var = (uint32_t)sumsq - 2u * (uint32_t)mean * (uint32_t)sum +
                         (uint32_t)n * (uint32_t)(mean * mean);
    int32_t inv = 0, r = 31 - LN_FRACTION_BITS;
    if (var) {
        const int a = __builtin_clz(var) >> 1;
        inv = (int32_t)((1u << 31) / isqrt32(var << (2 * a)));
        r -= a;
    }
    const int32_t round = 1 << (r - 1);
    const int start = k_rotation(x, 0, n);
    for (int pass = 0; pass < 2; pass++) {
        const int from = pass ? 0 : start, to = pass ? start : n;
        for (int i = from; i < to; i++) {
            int32_t t = ((x[i] - mean) * inv + round) >> r;
            out[i] = k_requant(t * gamma[i] + beta[i], rq);
        }
    }
}

void k_layernorm(const int8_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                 const int32_t *beta, int mult, int shift, int add)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    /* |t| <= 2^15 + 1 and |gamma| <= 128; beta adds its largest magnitude. */
    uint32_t top = 0;
    for (int j = 0; j < cols; j++) {
        uint32_t v = beta[j] < 0 ? 0u - (uint32_t)beta[j] : (uint32_t)beta[j];
        top = v > top ? v : top;
    }
    const k_rq_t rq = k_rq_make(mult, shift, add, ((1u << LN_FRACTION_BITS) + 1) * 128u + top);
    for (int r = core; r < rows; r += cores)
        layernorm_row(x + r * cols, out + r * cols, cols, gamma, beta, &rq);
    barrier();
}
