/*
 * k_decomposed_gemm: the cores' share of a GEMM whose wide inputs reached the engine clipped
 * to int8 (ita.golden.decoder.decomposed_gemm, LLM.int8()-style): the clipped excess times
 * the fine weights is added to the engine's int8 result, and every saturated engine output
 * is recomputed from the whole row.
 *
 * Per row every core scans the row's inputs for clipped ones (rare: a few per layer), then
 * works on its slice of the output columns, so the corrections of one row spread over the
 * cluster. Sums are 64-bit: an excess of 2^24 times an int16 weight, over K inputs.
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

/* FINE_BITS of ita.golden.decoder: the fine weights carry 8 more fraction bits. */
#define FINE_BITS 8

static inline int32_t clip8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}

int k_decomposed_gemm(const int32_t *x, int k, const int8_t *w, const int16_t *wf,
                      const int8_t *y8, int y_pitch, int32_t *y, int rows, int n, int mult,
                      int shift)
{
    if (k_rq_check(mult, shift, 0))
        return K_ERR_REQUANT;
    if (shift + FINE_BITS > K_SHIFT_MAX)
        return K_ERR_SHIFT;
    int lo, hi, status = K_OK;
    k_cols(n, &lo, &hi);
    for (int r = 0; r < rows; r++) {
        const int32_t *xr = x + r * k;
        /* the row's range: clipped inputs, and inputs beyond 24 bits (then every core, as
         * each scans the whole row, stops at the same row) */
        int32_t low = 0, high = 0;
        for (int i = 0; i < k; i++) {
            low = xr[i] < low ? xr[i] : low;
            high = xr[i] > high ? xr[i] : high;
        }
        if (low < -K_WIDE_MAX || high > K_WIDE_MAX) {
            status = K_ERR_WIDE_INPUT;
            break;
        }
        const int clipped = low < -128 || high > 127;
        for (int c = lo; c < hi; c++) {
            int64_t corr = 0;
            if (clipped)
                for (int i = 0; i < k; i++) {
                    int32_t excess = xr[i] - clip8(xr[i]);
                    if (excess)
                        corr += (int64_t)excess * wf[i * n + c];
                }
            int32_t engine = y8[r * y_pitch + c];
            int64_t v;
            if (engine == 127 || engine == -128) { /* saturated: the wide row */
                int32_t acc = 0;
                for (int i = 0; i < k; i++)
                    acc += clip8(xr[i]) * w[i * n + c];
                v = k_scale_round(((int64_t)acc << FINE_BITS) + corr, mult, shift + FINE_BITS);
            } else {
                v = engine + (clipped ? k_scale_round(corr, mult, shift + FINE_BITS) : 0);
            }
            y[r * n + c] = (int32_t)k_clamp64(v, INT32_MIN, INT32_MAX);
        }
    }
    barrier();
    return status;
}
