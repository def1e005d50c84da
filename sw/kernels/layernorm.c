/*
 * k_layernorm: the integer LayerNorm of ita.golden.layer_norm (docs/encoder-arithmetic.md);
 * k_add_layernorm: the residual add (ita.golden.residual_add) and the LayerNorm fused row by
 * row.
 *
 * Rows are split over the cores (row r on core r mod cores). Per row, one pass of
 * cv.sdotsp.b gives the sum (dot product with 0x01010101) and the sum of squares (the word
 * with itself), four values per instruction; the fused kernel takes them from the words of
 * the residual sum it has just computed (x and y interleaved by cv.shuffle2.b, one
 * cv.dotusp.b and one rounding add-shift cv.addrnr per value). The sum of squared deviations
 * then follows exactly as sum(x^2) - 2 mean sum(x) + n mean^2 (mod 2^32, and the true value
 * is below 2^32). One integer square root and one division per row give `inv`; the second
 * pass computes t = (d * inv + 2^(r-1)) >> r, t * gamma + beta and the requantization, four
 * values per word, the requantization folded into one multiply and one cv.addrnr where 32
 * bits suffice (k_rq_t.fold). The fused kernel normalises two rows per pass (r and
 * r + cores), so that each column's two coefficients are loaded once for both. Passes start
 * at a column that puts the cores in different L1 banks (k_rotation).
 */

#include "k_common.h"
#include "k_layernorm.h"
#include "kernels.h"

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
 * beta * mult + add * 2^shift, see ln_coef) each value is ln_out: two multiplies, two
 * cv.addrnr and a clip. */
static void ln_apply(const int8_t *x, int8_t *out, int n, const int8_t *gamma,
                     const int32_t *beta, const int32_t *coef, const k_rq_t *rq, ln_row_t s)
{
    const int32_t round = 1 << (s.r - 1);
    const int words = rq->fold && k_aligned(x) && k_aligned(out) && k_aligned(gamma)
                      && (n & 3) == 0;
    const int start = k_rotation(x, 0, n);
    if (words && coef) {
        const int32_t inv = s.inv, m = ln_m(s), r = s.r, shift = rq->shift;
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 0 : start, to = pass ? start : n;
            const int8_t *px = x + from;
            const int32_t *pc = coef + 2 * from;
            int8_t *po = out + from;
            for (int i = from; i < to; i += 4, pc += 8) {
                const uint32_t xw = k_lw_inc(&px);
                const int32_t o0 = ln_out(K_BYTE(xw, 0), inv, m, r, pc[0], pc[1], shift);
                const int32_t o1 = ln_out(K_BYTE(xw, 1), inv, m, r, pc[2], pc[3], shift);
                const int32_t o2 = ln_out(K_BYTE(xw, 2), inv, m, r, pc[4], pc[5], shift);
                const int32_t o3 = ln_out(K_BYTE(xw, 3), inv, m, r, pc[6], pc[7], shift);
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

/* ln_apply's coefficient path for two rows of the same columns at once (x2 = x1 + dx,
 * out2 = out1 + dout), so that each column's coefficients are loaded once for both. */
static void ln_apply2(const int8_t *x1, int8_t *out1, int dx, int dout, int n,
                      const int32_t *coef, int shift, ln_row_t s1, ln_row_t s2)
{
    const int32_t inv1 = s1.inv, m1 = ln_m(s1), r1 = s1.r;
    const int32_t inv2 = s2.inv, m2 = ln_m(s2), r2 = s2.r;
    const int start = k_rotation(x1, 0, n);
    for (int pass = 0; pass < 2; pass++) {
        const int from = pass ? 0 : start, to = pass ? start : n;
        const int8_t *px1 = x1 + from, *px2 = x1 + dx + from;
        const int32_t *pc = coef + 2 * from, *end = coef + 2 * to;
        int8_t *po1 = out1 + from, *po2 = out1 + dout + from;
        for (; pc != end; pc += 8) {
            const uint32_t u = k_lw_inc(&px1), v = k_lw_inc(&px2);
            int32_t o0, o1, o2, o3, p0, p1, p2, p3;
            /* column j of both rows; the empty asm (a compiler barrier) stops the loads of
             * all eight coefficients being hoisted to the top, which spilled registers */
#define LN_COLUMN(j, oj, pj)                                                               \
            do {                                                                           \
                const int32_t a = pc[2 * j], b = pc[2 * j + 1];                            \
                oj = ln_out(K_BYTE(u, j), inv1, m1, r1, a, b, shift);                      \
                pj = ln_out(K_BYTE(v, j), inv2, m2, r2, a, b, shift);                      \
                __asm__ volatile("" ::: "memory");                                         \
            } while (0)
            LN_COLUMN(0, o0, p0);
            LN_COLUMN(1, o1, p1);
            LN_COLUMN(2, o2, p2);
            LN_COLUMN(3, o3, p3);
#undef LN_COLUMN
            k_sw_inc(&po1, k_pack4(o0, o1, o2, o3));
            k_sw_inc(&po2, k_pack4(p0, p1, p2, p3));
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

int k_layernorm(const int8_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                const int32_t *beta, int mult, int shift, int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    if (cols < 1 || cols > K_LN_MAX_COLS)
        return K_ERR_LN_COLS;
    const int cores = (int)num_cores(), core = (int)core_id();
    const k_rq_t rq = ln_rq(cols, beta, mult, shift, add);
    for (int r = core; r < rows; r += cores)
        layernorm_row(x + r * cols, out + r * cols, cols, gamma, beta, &rq);
    barrier();
    return K_OK;
}

/*
 * One row of sum = residual_add(x, y) (written to `sum`) with its sum and sum of squares:
 * four values per word on word-aligned rows; a = clamp((x mult_x + y mult_y + k) >> s) with
 * k = 2^(s-1) + add 2^s (the sum of products has 17 bits, s <= 18): per word two byte
 * shuffles, then per value one dot product, one rounding add-shift (cv.addrnr) and a clip.
 * Inlined: a call per row cost the saving and restoring of every callee-saved register.
 */
static inline __attribute__((always_inline)) void
add_row(const int8_t *x, const int8_t *y, int8_t *sum_row, int n, int mx, int my, int s,
        int32_t k, int32_t *sum_out, int32_t *sumsq_out)
{
    int32_t sum = 0, sumsq = 0;
    int i = 0;
    if (k_aligned(x) && k_aligned(y) && k_aligned(sum_row)) {
        const int nw = n >> 2;
        const int rot = k_rotation(x, 0, 4 * nw);
        /* x_j mult_x + y_j mult_y as one dot product of the lanes (x_j, y_j) and
         * (mult_x, mult_y), interleaved by cv.shuffle2.b */
        const uint32_t m = ((uint32_t)mx & 0xFFu) | ((uint32_t)my & 0xFFu) << 8;
        const int32_t ka = (int32_t)((uint32_t)k & (0u - (1u << s))); /* k without 2^(s-1) */
        for (int pass = 0; pass < 2; pass++) {
            const int from = pass ? 0 : rot, to = pass ? rot : 4 * nw;
            const int8_t *px = x + from, *py = y + from;
            int8_t *po = sum_row + from;
#pragma clang loop unroll_count(2)
            for (int j = from; j < to; j += 4) {
                const uint32_t xw = k_lw_inc(&px), yw = k_lw_inc(&py);
                const uint32_t lo = k_shuffle2(yw, xw, 0x01050004u);  /* x0 y0 x1 y1 */
                const uint32_t hi = k_shuffle2(yw, xw, 0x03070206u);  /* x2 y2 x3 y3 */
                const int32_t a0 = k_clip8(k_addrn(k_dotusp4(m, lo), ka, s));
                const int32_t a1 = k_clip8(k_addrn(k_dotusp4(m << 16, lo), ka, s));
                const int32_t a2 = k_clip8(k_addrn(k_dotusp4(m, hi), ka, s));
                const int32_t a3 = k_clip8(k_addrn(k_dotusp4(m << 16, hi), ka, s));
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

int k_add_layernorm(const int8_t *x, const int8_t *y, int8_t *sum, int8_t *out, int rows,
                    int cols, int mult_x, int mult_y, int shift_a, int add_a,
                    const int8_t *gamma, const int32_t *beta, int mult, int shift, int add,
                    int32_t *scratch)
{
    if (k_rq_check(mult, shift, add) || k_rq_check(mult_x, shift_a, add_a)
        || k_rq_check(mult_y, 0, 0))
        return K_ERR_REQUANT;
    if (cols < 1 || cols > K_LN_MAX_COLS)
        return K_ERR_LN_COLS;
    const int cores = (int)num_cores(), core = (int)core_id();
    const k_rq_t rq = ln_rq(cols, beta, mult, shift, add);
    const int32_t *coef = rq.fold ? scratch : 0;
    if (coef) {
        ln_coef(scratch, cols, gamma, beta, &rq);
        barrier();
    }
    const int s = shift_a > 18 ? 18 : shift_a;
    const int32_t k = (s > 0 ? 1 << (s - 1) : 0) + (int32_t)((uint32_t)add_a << s);
    /* two rows at a time (r and r + cores) where the coefficient path applies to both */
    const int pairs = coef && (cols & 3) == 0 && k_aligned(sum) && k_aligned(out);
    for (int r = core; r < rows; r += cores) {
        int32_t total, squares;
        int8_t *row = sum + r * cols;
        add_row(x + r * cols, y + r * cols, row, cols, mult_x, mult_y, s, k, &total, &squares);
        const ln_row_t s1 = ln_row(total, squares, cols);
        if (pairs && r + cores < rows) {
            const int d = cores * cols;
            add_row(x + r * cols + d, y + r * cols + d, row + d, cols, mult_x, mult_y, s, k,
                    &total, &squares);
            ln_apply2(row, out + r * cols, d, d, cols, coef, rq.shift, s1,
                      ln_row(total, squares, cols));
            r += cores;
            continue;
        }
        ln_apply(row, out + r * cols, cols, gamma, beta, coef, &rq, s1);
    }
    barrier();
    return K_OK;
}
