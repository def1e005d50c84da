/*
 * k_layernorm: the integer LayerNorm of ita.golden.layer_norm (docs/encoder-arithmetic.md);
 * k_add_layernorm: the residual add (ita.golden.residual_add) and the LayerNorm fused row by
 * row.
 *
 * Rows are split over the cores (row r on core r mod cores). Per row, one pass of
 * cv.sdotsp.b gives the sum (dot product with 0x01010101) and the sum of squares (the word
 * with itself), four values per instruction; the fused kernel takes them from the words of
 * the residual sum it has just computed (two cv.sdotusp.b per value: x and y times their
 * multipliers). The sum of squared deviations then follows exactly as sum(x^2) - 2 mean
 * sum(x) + n mean^2 (mod 2^32, and the true value is below 2^32). One integer square root and
 * one division per row give `inv`; the second pass computes t = (d * inv + 2^(r-1)) >> r,
 * t * gamma + beta and the requantization, four values per word, the requantization folded
 * into one multiply-accumulate where 32 bits suffice (k_rq_t.fold). Passes start at a column
 * that puts the cores in different L1 banks (k_rotation).
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

/* The row statistics -> mean, inv and the shift r of t = ((x - mean) * inv + 2^(r-1)) >> r. */
typedef struct {
    int32_t mean, inv, r;
} ln_row_t;

static ln_row_t ln_row(int32_t sum, int32_t sumsq, int n)
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
        s.inv = (int32_t)((1u << 31) / isqrt32(var << (2 * a)));
        s.r -= a;
    }
    return s;
}

/* sum and sum of squares of n values (word-aligned x: four per cv.sdotsp.b) */
static void ln_sums(const int8_t *x, int n, int32_t *sum_out, int32_t *sumsq_out)
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
    *sum_out = sum;
    *sumsq_out = sumsq;
}

/* out = requant(t * gamma + beta) of one row, t from the row's statistics s. Word-aligned
 * rows whose requantization folds (k_rq_t.fold) take four values per loaded word; the
 * product (x - mean) * inv is formed as x * inv + (round - mean * inv) modulo 2^32, which is
 * exact because the true value fits 26 bits. With `coef` (per column gamma * mult and
 * beta * mult + k, see ln_coef) the requantization is one multiply-accumulate, a shift and a
 * clip. */
static void ln_apply(const int8_t *x, int8_t *out, int n, const int8_t *gamma,
                     const int32_t *beta, const int32_t *coef, const k_rq_t *rq, ln_row_t s)
{
    const int32_t round = 1 << (s.r - 1);
    const int words = rq->fold && k_aligned(x) && k_aligned(out) && k_aligned(gamma)
                      && (n & 3) == 0;
    const int start = k_rotation(x, 0, n);
    if (words && coef) {
        const uint32_t inv = (uint32_t)s.inv;
        const uint32_t c = (uint32_t)round - (uint32_t)s.mean * inv;
        const int r = s.r, shift = rq->shift;
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 0 : start, to = pass ? start : n;
            const int8_t *px = x + from;
            const int32_t *pc = coef + 2 * from;
            int8_t *po = out + from;
            for (int i = from; i < to; i += 4, pc += 8) {
                const uint32_t xw = k_lw_inc(&px);
                const int32_t t0 = (int32_t)((uint32_t)K_BYTE(xw, 0) * inv + c) >> r;
                const int32_t t1 = (int32_t)((uint32_t)K_BYTE(xw, 1) * inv + c) >> r;
                const int32_t t2 = (int32_t)((uint32_t)K_BYTE(xw, 2) * inv + c) >> r;
                const int32_t t3 = (int32_t)((uint32_t)K_BYTE(xw, 3) * inv + c) >> r;
                const int32_t o0 = k_clip8(k_mac(pc[1], t0, pc[0]) >> shift);
                const int32_t o1 = k_clip8(k_mac(pc[3], t1, pc[2]) >> shift);
                const int32_t o2 = k_clip8(k_mac(pc[5], t2, pc[4]) >> shift);
                const int32_t o3 = k_clip8(k_mac(pc[7], t3, pc[6]) >> shift);
                k_sw_inc(&po, k_pack4(o0, o1, o2, o3));
            }
        }
        return;
    }
    if (words) {
        const uint32_t inv = (uint32_t)s.inv;
        const uint32_t c = (uint32_t)round - (uint32_t)s.mean * inv;
        const int r = s.r;
        const k_rq_t q = *rq; /* in registers across the stores */
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 0 : start, to = pass ? start : n;
            const int8_t *px = x + from, *pg = gamma + from;
            const int32_t *pb = beta + from;
            int8_t *po = out + from;
            for (int i = from; i < to; i += 4) {
                const uint32_t xw = k_lw_inc(&px), gw = k_lw_inc(&pg);
                const int32_t t0 = (int32_t)((uint32_t)K_BYTE(xw, 0) * inv + c) >> r;
                const int32_t t1 = (int32_t)((uint32_t)K_BYTE(xw, 1) * inv + c) >> r;
                const int32_t t2 = (int32_t)((uint32_t)K_BYTE(xw, 2) * inv + c) >> r;
                const int32_t t3 = (int32_t)((uint32_t)K_BYTE(xw, 3) * inv + c) >> r;
                const int32_t o0 = k_requant_fold(k_mac(pb[0], t0, K_BYTE(gw, 0)), &q);
                const int32_t o1 = k_requant_fold(k_mac(pb[1], t1, K_BYTE(gw, 1)), &q);
                const int32_t o2 = k_requant_fold(k_mac(pb[2], t2, K_BYTE(gw, 2)), &q);
                const int32_t o3 = k_requant_fold(k_mac(pb[3], t3, K_BYTE(gw, 3)), &q);
                pb += 4;
                k_sw_inc(&po, k_pack4(o0, o1, o2, o3));
            }
        }
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        const int from = pass ? 0 : start, to = pass ? start : n;
        for (int i = from; i < to; i++) {
            int32_t t = ((x[i] - s.mean) * s.inv + round) >> s.r;
            out[i] = k_requant(t * gamma[i] + beta[i], rq);
        }
    }
}

static void layernorm_row(const int8_t *x, int8_t *out, int n, const int8_t *gamma,
                          const int32_t *beta, const k_rq_t *rq)
{
    int32_t sum, sumsq;
    ln_sums(x, n, &sum, &sumsq);
    ln_apply(x, out, n, gamma, beta, 0, rq, ln_row(sum, sumsq, n));
}

/* The requantization of t * gamma + beta: |t| <= 2^15 + 1 and |gamma| <= 128; beta adds its
 * largest magnitude. */
static k_rq_t ln_rq(int cols, const int32_t *beta, int mult, int shift, int add)
{
    uint32_t top = 0;
    for (int j = 0; j < cols; j++) {
        uint32_t v = beta[j] < 0 ? 0u - (uint32_t)beta[j] : (uint32_t)beta[j];
        top = v > top ? v : top;
    }
    return k_rq_make(mult, shift, add, ((1u << LN_FRACTION_BITS) + 1) * 128u + top);
}

void k_layernorm(const int8_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                 const int32_t *beta, int mult, int shift, int add)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    const k_rq_t rq = ln_rq(cols, beta, mult, shift, add);
    for (int r = core; r < rows; r += cores)
        layernorm_row(x + r * cols, out + r * cols, cols, gamma, beta, &rq);
    barrier();
}

/*
 * One row of sum = residual_add(x, y) (written to `sum`) with its sum and sum of squares:
 * four values per word on word-aligned rows; a = clamp((x mult_x + y mult_y + k) >> s) with
 * k = 2^(s-1) + add 2^s (the sum of products has 17 bits, s <= 18).
 */
static void add_row(const int8_t *x, const int8_t *y, int8_t *sum_row, int n, int mx, int my,
                    int s, int32_t k, int32_t *sum_out, int32_t *sumsq_out)
{
    int32_t sum = 0, sumsq = 0;
    int i = 0;
    if (k_aligned(x) && k_aligned(y) && k_aligned(sum_row)) {
        const int nw = n >> 2;
        const int rot = k_rotation(x, 0, 4 * nw);
        /* x_j mult_x + y_j mult_y as two dot products with the multiplier in lane j only */
        const uint32_t ux = (uint32_t)mx & 0xFFu, uy = (uint32_t)my & 0xFFu;
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 0 : rot, to = pass ? rot : 4 * nw;
            const int8_t *px = x + from, *py = y + from;
            int8_t *po = sum_row + from;
            for (int j = from; j < to; j += 4) {
                const uint32_t xw = k_lw_inc(&px), yw = k_lw_inc(&py);
                const int32_t a0 = k_clip8(
                    k_sdotusp4(k_sdotusp4(k, ux << 0, xw), uy << 0, yw) >> s);
                const int32_t a1 = k_clip8(
                    k_sdotusp4(k_sdotusp4(k, ux << 8, xw), uy << 8, yw) >> s);
                const int32_t a2 = k_clip8(
                    k_sdotusp4(k_sdotusp4(k, ux << 16, xw), uy << 16, yw) >> s);
                const int32_t a3 = k_clip8(
                    k_sdotusp4(k_sdotusp4(k, ux << 24, xw), uy << 24, yw) >> s);
                const uint32_t v = k_pack4(a0, a1, a2, a3);
                sum = k_sdot4(sum, v, 0x01010101u);
                sumsq = k_sdot4(sumsq, v, v);
                k_sw_inc(&po, v);
            }
        }
        i = 4 * nw;
    }
    for (; i < n; i++) {
        const int32_t a = k_sat8((x[i] * mx + y[i] * my + k) >> s);
        sum_row[i] = (int8_t)a;
        sum += a;
        sumsq += a * a;
    }
    *sum_out = sum;
    *sumsq_out = sumsq;
}

/* coef[2 j] = gamma[j] mult, coef[2 j + 1] = beta[j] mult + k (k_rq_t.fold), this core's
 * share of the columns; then mult (t gamma + beta) + k = t coef[2 j] + coef[2 j + 1]. */
static void ln_coef(int32_t *coef, int cols, const int8_t *gamma, const int32_t *beta,
                    const k_rq_t *rq)
{
    int lo, hi;
    k_span(cols, 1, &lo, &hi);
    for (int j = lo; j < hi; j++) {
        coef[2 * j] = gamma[j] * rq->mult;
        coef[2 * j + 1] = (int32_t)((uint32_t)beta[j] * (uint32_t)rq->mult + (uint32_t)rq->k);
    }
}

void k_add_layernorm(const int8_t *x, const int8_t *y, int8_t *sum, int8_t *out, int rows,
                     int cols, int mult_x, int mult_y, int shift_a, int add_a,
                     const int8_t *gamma, const int32_t *beta, int mult, int shift, int add,
                     int32_t *scratch)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    const k_rq_t rq = ln_rq(cols, beta, mult, shift, add);
    const int32_t *coef = rq.fold ? scratch : 0;
    if (coef) {
        ln_coef(scratch, cols, gamma, beta, &rq);
        barrier();
    }
    const int s = shift_a > 18 ? 18 : shift_a;
    const int32_t k = (s > 0 ? 1 << (s - 1) : 0) + (int32_t)((uint32_t)add_a << s);
    for (int r = core; r < rows; r += cores) {
        int32_t total, squares;
        int8_t *row = sum + r * cols;
        add_row(x + r * cols, y + r * cols, row, cols, mult_x, mult_y, s, k, &total, &squares);
        ln_apply(row, out + r * cols, cols, gamma, beta, coef, &rq,
                 ln_row(total, squares, cols));
    }
    barrier();
}
