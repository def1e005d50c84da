/*
 * k_gemv: c = requant(a @ bt^T) for one row a, the decoding step's GEMV on the cores
 * (ita.golden.linear without bias, the engine's linear job on one row).
 *
 * k_gemm_rq deals rows to the cores, so one row would keep one core busy; here every core
 * takes a share of the output columns (in fours: whole words of c) and runs the 4-way int8
 * dot product over the row, four columns at a time. a and bt word-aligned with k a multiple
 * of 4 take the word loads, otherwise every word is gathered from bytes.
 */

#include "k_common.h"
#include "kernels.h"

int k_gemv(const int8_t *a, const int8_t *bt, int8_t *c, int k, int n, int mult, int shift,
           int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    const uint64_t bound = (uint64_t)(uint32_t)k * 128u * 128u; /* largest |sum| */
    if (bound > INT32_MAX)
        return K_ERR_GEMM_SUM;
    const k_rq_t rq = k_rq_make(mult, shift, add, (uint32_t)bound);
    const int aligned = k_aligned(a) && k_aligned(bt) && (k & 3) == 0;
    const int kw = k >> 2;
    int lo, hi;
    k_span(n, 4, &lo, &hi);
    int j = lo;
    for (; j + 4 <= hi; j += 4) {
        const int8_t *b0 = bt + j * k;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int w = 0; w < kw; w++) {
            uint32_t av = aligned ? k_lw_off(a, 4 * w) : k_bytes(a + 4 * w);
            s0 = k_sdot4(s0, av, aligned ? k_lw_off(b0, 4 * w) : k_bytes(b0 + 4 * w));
            s1 = k_sdot4(s1, av, aligned ? k_lw_off(b0, k + 4 * w) : k_bytes(b0 + k + 4 * w));
            s2 = k_sdot4(s2, av, aligned ? k_lw_off(b0, 2 * k + 4 * w)
                                         : k_bytes(b0 + 2 * k + 4 * w));
            s3 = k_sdot4(s3, av, aligned ? k_lw_off(b0, 3 * k + 4 * w)
                                         : k_bytes(b0 + 3 * k + 4 * w));
        }
        for (int t = 4 * kw; t < k; t++) {
            s0 += a[t] * b0[t];
            s1 += a[t] * b0[k + t];
            s2 += a[t] * b0[2 * k + t];
            s3 += a[t] * b0[3 * k + t];
        }
        c[j] = k_requant(s0, &rq);
        c[j + 1] = k_requant(s1, &rq);
        c[j + 2] = k_requant(s2, &rq);
        c[j + 3] = k_requant(s3, &rq);
    }
    for (; j < hi; j++) {
        const int8_t *b0 = bt + j * k;
        int32_t s = 0;
        for (int t = 0; t < k; t++)
            s += a[t] * b0[t];
        c[j] = k_requant(s, &rq);
    }
    barrier();
    return K_OK;
}
