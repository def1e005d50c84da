/*
 * k_gemv: c = requant(a @ bt^T) for one row a, the decoding step's GEMV on the cores
 * (ita.golden.linear without bias, the engine's linear job on one row); k_gemv_u8 takes
 * unsigned a, the softmax probabilities of A.V (the engine zero-extends them too).
 *
 * k_gemm_rq deals rows to the cores, so one row would keep one core busy; here every core
 * takes a share of the output columns (in fours: whole words of c) and runs the 4-way int8
 * dot product over the row, four columns at a time. a and bt word-aligned with a pitch of
 * whole words take word loads (the k mod 4 last products in C), otherwise every word is
 * gathered from bytes.
 */

#include "k_common.h"
#include "kernels.h"

static inline int32_t dot4(int32_t acc, uint32_t a, uint32_t b, int a_unsigned)
{
    return a_unsigned ? k_sdotusp4(acc, a, b) : k_sdot4(acc, a, b);
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
    const uint8_t *au = (const uint8_t *)a;
    const int aligned = k_aligned(a) && k_aligned(bt) && (bt_pitch & 3) == 0;
    const int kw = k >> 2;
    int lo, hi;
    k_span(n, 4, &lo, &hi);
    int j = lo;
    for (; j + 4 <= hi; j += 4) {
        const int8_t *b0 = bt + j * bt_pitch;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int w = 0; w < kw; w++) {
            uint32_t av = aligned ? k_lw_off(a, 4 * w) : k_bytes(a + 4 * w);
            const int p = bt_pitch;
            s0 = dot4(s0, av, aligned ? k_lw_off(b0, 4 * w) : k_bytes(b0 + 4 * w), a_unsigned);
            s1 = dot4(s1, av, aligned ? k_lw_off(b0, p + 4 * w) : k_bytes(b0 + p + 4 * w),
                      a_unsigned);
            s2 = dot4(s2, av, aligned ? k_lw_off(b0, 2 * p + 4 * w)
                                      : k_bytes(b0 + 2 * p + 4 * w), a_unsigned);
            s3 = dot4(s3, av, aligned ? k_lw_off(b0, 3 * p + 4 * w)
                                      : k_bytes(b0 + 3 * p + 4 * w), a_unsigned);
        }
        for (int t = 4 * kw; t < k; t++) {
            int32_t at = a_unsigned ? au[t] : a[t];
            s0 += at * b0[t];
            s1 += at * b0[bt_pitch + t];
            s2 += at * b0[2 * bt_pitch + t];
            s3 += at * b0[3 * bt_pitch + t];
        }
        c[j] = k_requant(s0, &rq);
        c[j + 1] = k_requant(s1, &rq);
        c[j + 2] = k_requant(s2, &rq);
        c[j + 3] = k_requant(s3, &rq);
    }
    for (; j < hi; j++) {
        const int8_t *b0 = bt + j * bt_pitch;
        int32_t s = 0;
        for (int t = 0; t < k; t++)
            s += (a_unsigned ? au[t] : a[t]) * b0[t];
        c[j] = k_requant(s, &rq);
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
