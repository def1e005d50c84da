/*
 * k_layer_norm_rows: the LayerNorm of ita.quant.integer (layer_norm_rows) on the residual
 * add's int16 rows of at most 13 magnitude bits: the golden LayerNorm with a 64-bit sum of
 * squares.
 *
 * Rows go round-robin over the cores. Pass 1 reads a row two values per word: cv.sdotsp.h
 * with 0x00010001 gives the sum, with the word itself the sum of squares (below 2^31 for 16
 * words, then added into 64 bits), and cv.max.h / cv.min.h the lanes' extremes for the range
 * check (|x| <= 2^13, else K_ERR_ROW_RANGE, agreed by all cores at the end). Then
 * V = sum(x^2) - 2 mean sum(x) + n mean^2 exactly in 64 bits, W = V >> 2k in 32 bits, and the
 * golden steps on W (the square root of k_layernorm) give inv and the shift 16 - a + k.
 * Pass 2 computes t = (x - mean) inv rounded (x inv + (-mean inv) in 32 bits, exact because
 * |(x - mean) inv| <= 2^30) and the requantization of t gamma + beta, folded into one
 * multiply and one cv.addrnr per value with the per-column coefficients of k_add_layernorm.
 */

#include "k_common.h"
#include "k_layernorm.h"
#include "kernels.h"

/* acc + lo(a) lo(b) + hi(a) hi(b), int16 lanes (cv.sdotsp.h). */
static inline int32_t lr_sdot2(int32_t acc, uint32_t a, uint32_t b)
{
    __asm__("cv.sdotsp.h %0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

static inline uint32_t lr_max_h(uint32_t a, uint32_t b)
{
    __asm__("cv.max.h %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

static inline uint32_t lr_min_h(uint32_t a, uint32_t b)
{
    __asm__("cv.min.h %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

/* The word at p (word-aligned), then p += 2 halfwords. */
static inline uint32_t lr_lw_inc(const int16_t **p)
{
    uint32_t w;
    __asm__("cv.lw %0, (%1), 4" : "=r"(w), "+r"(*p) : "m"(**p));
    return w;
}

typedef struct {
    int64_t sum;
    uint64_t sumsq;
    int32_t top, bottom;
} lr_sums_t;

/* Pass 1 of one row. */
static lr_sums_t lr_sums(const int16_t *x, int n)
{
    lr_sums_t s = {0, 0, 0, 0};
    int i = 0;
    if (((uintptr_t)x & 3u) == 0) {
        const int words = n >> 1;
        const int16_t *p = x;
        uint32_t top = 0, bottom = 0; /* lanes of zero */
        for (int w = 0; w < words;) {
            const int chunk = words - w < 16 ? words - w : 16; /* 32 squares < 2^31 */
            int32_t sum = 0, sumsq = 0;
            for (int c = 0; c < chunk; c++) {
                const uint32_t v = lr_lw_inc(&p);
                sum = lr_sdot2(sum, v, 0x00010001u);
                sumsq = lr_sdot2(sumsq, v, v);
                top = lr_max_h(top, v);
                bottom = lr_min_h(bottom, v);
            }
            s.sum += sum;
            s.sumsq += (uint32_t)sumsq;
            w += chunk;
        }
        const int32_t t0 = K_HALF(top, 0), t1 = K_HALF(top, 1);
        const int32_t b0 = K_HALF(bottom, 0), b1 = K_HALF(bottom, 1);
        s.top = t0 > t1 ? t0 : t1;
        s.bottom = b0 < b1 ? b0 : b1;
        i = 2 * words;
    }
    for (; i < n; i++) {
        const int32_t v = x[i];
        s.sum += v;
        s.sumsq += (uint32_t)(v * v);
        s.top = v > s.top ? v : s.top;
        s.bottom = v < s.bottom ? v : s.bottom;
    }
    return s;
}

/* mean = floor((sum + n / 2) / n) */
static int32_t lr_mean(int64_t sum, int n)
{
    if (n <= (1 << 17)) { /* |sum| <= 2^30: an unsigned 32-bit division of a positive value */
        const uint32_t offset = (uint32_t)n << K_ROW_BITS;
        return (int32_t)(((uint32_t)((int32_t)sum + (int32_t)offset) + (uint32_t)(n >> 1)) /
                         (uint32_t)n) - (1 << K_ROW_BITS);
    }
    const int64_t v = sum + (n >> 1);
    int64_t q = v / n;
    if (v % n && v < 0)
        q--;
    return (int32_t)q;
}

/* The statistics of ita.quant.integer.layer_norm_rows: V in 64 bits, W = V >> 2k. */
static ln_row_t lr_row(const lr_sums_t *sums, int n)
{
    ln_row_t s;
    s.mean = lr_mean(sums->sum, n);
    const int64_t mean = s.mean;
    const uint64_t var = sums->sumsq - (uint64_t)(2 * mean * sums->sum) +
                         (uint64_t)((int64_t)n * mean * mean);
    const int bits = var ? 64 - __builtin_clzll(var) : 0;
    const int k = bits > 32 ? (bits - 31) >> 1 : 0;
    const uint32_t w = (uint32_t)(var >> (2 * k));
    s.inv = 0;
    s.r = 31 - LN_FRACTION_BITS + k;
    if (w) {
        const int a = __builtin_clz(w) >> 1;
        s.inv = (int32_t)((1u << 31) / isqrt_norm(w << (2 * a)));
        s.r -= a;
    }
    return s;
}

/* Pass 2 of one row. */
static void lr_apply(const int16_t *x, int8_t *out, int n, const int8_t *gamma,
                     const int32_t *beta, const int32_t *coef, const k_rq_t *rq, ln_row_t s)
{
    const int32_t inv = s.inv, m = ln_m(s), r = s.r;
    if (coef && ((uintptr_t)x & 3u) == 0 && k_aligned(out) && (n & 3) == 0) {
        const int16_t *px = x;
        const int32_t *pc = coef, *end = coef + 2 * n;
        int8_t *po = out;
        const int32_t shift = rq->shift;
        for (; pc != end; pc += 8) {
            const uint32_t u = lr_lw_inc(&px), v = lr_lw_inc(&px);
            const int32_t o0 = ln_out(K_HALF(u, 0), inv, m, r, pc[0], pc[1], shift);
            const int32_t o1 = ln_out(K_HALF(u, 1), inv, m, r, pc[2], pc[3], shift);
            const int32_t o2 = ln_out(K_HALF(v, 0), inv, m, r, pc[4], pc[5], shift);
            const int32_t o3 = ln_out(K_HALF(v, 1), inv, m, r, pc[6], pc[7], shift);
            k_sw_inc(&po, k_pack4(o0, o1, o2, o3));
        }
        return;
    }
    if (coef) {
        for (int i = 0; i < n; i++)
            out[i] = (int8_t)ln_out(x[i], inv, m, r, coef[2 * i], coef[2 * i + 1], rq->shift);
        return;
    }
    for (int i = 0; i < n; i++) {
        const int32_t t = k_addrn(x[i] * inv, m, r);
        out[i] = k_requant(t * gamma[i] + beta[i], rq);
    }
}

int k_layer_norm_rows(const int16_t *x, int8_t *out, int rows, int cols, const int8_t *gamma,
                      const int32_t *beta, int mult, int shift, int add, int32_t *scratch)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    if (cols < 1)
        return K_ERR_LN_COLS;
    const k_rq_t rq = ln_rq(cols, beta, mult, shift, add);
    const int32_t *coef = rq.fold ? scratch : 0;
    if (coef) {
        ln_coef(scratch, cols, gamma, beta, &rq);
        barrier();
    }
    const int cores = (int)num_cores();
    int mine = K_OK;
    for (int r = (int)core_id(); r < rows && !mine; r += cores) {
        const lr_sums_t sums = lr_sums(x + r * cols, cols);
        if (sums.top > (1 << K_ROW_BITS) || sums.bottom < -(1 << K_ROW_BITS)) {
            mine = K_ERR_ROW_RANGE;
            break;
        }
        lr_apply(x + r * cols, out + r * cols, cols, gamma, beta, coef, &rq,
                 lr_row(&sums, cols));
    }
    const int status = k_agree(slots, mine);
    barrier();
    return status;
}
