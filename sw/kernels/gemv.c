/*
 * k_gemv: c = requant(a @ bt^T) for one row a, the decoding step's GEMV on the cores
 * (ita.golden.linear without bias, the engine's linear job on one row); k_gemv_u8 takes
 * unsigned a, the softmax probabilities of A.V (the engine zero-extends them too).
 *
 * k_gemm_rq deals rows to the cores, so one row would keep one core busy; here every core
 * takes a share of the output columns (in fours: whole words of c) and runs the 4-way int8
 * dot product over the row, four columns at a time, from a word of its own (bank
 * conflicts). a and bt word-aligned with a pitch of
 * whole words take word loads (the k mod 4 last products in C), otherwise every word is
 * gathered from bytes.
 */

#include "k_common.h"
#include "kernels.h"

static inline __attribute__((always_inline)) int32_t dot4(int32_t acc, uint32_t a, uint32_t b,
                                                          int a_unsigned)
{
    return a_unsigned ? k_sdotusp4(acc, a, b) : k_sdot4(acc, a, b);
}

/* Words [from, to) of a times four rows of bt (p bytes apart) into s[0..3]. */
static inline __attribute__((always_inline)) void
words4(const int8_t *a, const int8_t *b0, int p, int from, int to, int32_t *s, int aligned,
       int a_unsigned)
{
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (int w = from; w < to; w++) {
        uint32_t av = aligned ? k_lw_off(a, 4 * w) : k_bytes(a + 4 * w);
        s0 = dot4(s0, av, aligned ? k_lw_off(b0, 4 * w) : k_bytes(b0 + 4 * w), a_unsigned);
        s1 = dot4(s1, av, aligned ? k_lw_off(b0, p + 4 * w) : k_bytes(b0 + p + 4 * w),
                  a_unsigned);
        s2 = dot4(s2, av, aligned ? k_lw_off(b0, 2 * p + 4 * w) : k_bytes(b0 + 2 * p + 4 * w),
                  a_unsigned);
        s3 = dot4(s3, av, aligned ? k_lw_off(b0, 3 * p + 4 * w) : k_bytes(b0 + 3 * p + 4 * w),
                  a_unsigned);
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

/* This core's columns [lo, hi): four at a time from word w0 on (wrapping round), then the
 * k mod 4 last products and the columns left over one by one. */
static inline __attribute__((always_inline)) void
columns(const int8_t *a, const int8_t *bt, int bt_pitch, int8_t *c, int k, int lo, int hi,
        int w0, const k_rq_t *rq, int aligned, int a_unsigned)
{
    const uint8_t *au = (const uint8_t *)a;
    const int kw = k >> 2;
    int j = lo;
    for (; j + 4 <= hi; j += 4) {
        const int8_t *b0 = bt + j * bt_pitch;
        int32_t s[4] = {0, 0, 0, 0};
        words4(a, b0, bt_pitch, w0, kw, s, aligned, a_unsigned);
        words4(a, b0, bt_pitch, 0, w0, s, aligned, a_unsigned);
        for (int t = 4 * kw; t < k; t++) {
            int32_t at = a_unsigned ? au[t] : a[t];
            for (int q = 0; q < 4; q++)
                s[q] += at * b0[q * bt_pitch + t];
        }
        for (int q = 0; q < 4; q++)
            c[j + q] = k_requant(s[q], rq);
    }
    for (; j < hi; j++) {
        const int8_t *b0 = bt + j * bt_pitch;
        int32_t s = 0;
        for (int t = 0; t < k; t++)
            s += (a_unsigned ? au[t] : a[t]) * b0[t];
        c[j] = k_requant(s, rq);
    }
}

static inline int gemv(const int8_t *a, int a_unsigned, const int8_t *bt, int bt_pitch,
                       int8_t *c, int k, int n, int mult, int shift, int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    const uint64_t bound = (uint64_t)(uint32_t)k * 255u * 128u; /* largest |sum| */
    if (bound > INT32_MAX)
        return K_ERR_GEMM_SUM;
    const k_rq_t rq = k_rq_make(mult, shift, add, (uint32_t)bound);
    const int kw = k >> 2;
    /* each core starts its sums at another word: the cores' rows (bt_pitch apart) would
     * otherwise all sit in one L1 bank at every step */
    const int w0 = kw ? (int)core_id() * kw / (int)num_cores() : 0;
    int lo, hi;
    k_span(n, 4, &lo, &hi);
    if (k_aligned(a) && k_aligned(bt) && (bt_pitch & 3) == 0) {
        if (a_unsigned)
            columns(a, bt, bt_pitch, c, k, lo, hi, w0, &rq, 1, 1);
        else
            columns(a, bt, bt_pitch, c, k, lo, hi, w0, &rq, 1, 0);
    } else {
        columns(a, bt, bt_pitch, c, k, lo, hi, w0, &rq, 0, a_unsigned);
    }
    barrier();
    return K_OK;
}

int k_gemv(const int8_t *a, const int8_t *bt, int bt_pitch, int8_t *c, int k, int n, int mult,
           int shift, int add)
{
    return gemv(a, 0, bt, bt_pitch, c, k, n, mult, shift, add);
}

int k_gemv_u8(const uint8_t *a, const int8_t *bt, int bt_pitch, int8_t *c, int k, int n,
              int mult, int shift, int add)
{
    return gemv((const int8_t *)a, 1, bt, bt_pitch, c, k, n, mult, shift, add);
}
