/*
 * k_decomposed_gemm: the cores' share of a GEMM whose wide inputs reached the engine clipped
 * to int8 (ita.golden.decoder.decomposed_gemm, LLM.int8()-style): the clipped excess times
 * the fine weights is added to the engine's int8 result, and every saturated engine output
 * is recomputed from the whole row.
 *
 * k_decomposed_gemm_ex is the form the compiler calls: int8 inputs (the A.V output before O:
 * nothing clipped, only saturated outputs to recompute) or int32 ones, weights in any layout
 * (the engine's transposed rows: no second copy), the fine weights as a map from input to
 * fine row and only those rows (or whole, or none: w << 8), the engine's y8 and the result y
 * with strides of their own, y either int32 or int8 (saturated, for V, which stays int8; y
 * may be y8 itself). So V's job, which writes V^T, is corrected in place in the layout A.V
 * reads.
 *
 * With at least as many rows as cores, rows go round-robin to the cores; fewer rows (a
 * decoding step's one) share every row's output columns. Per row a core scans the inputs for
 * clipped ones (rare: a few per row) and lists up to CLIP_LIST of them, then corrects its
 * outputs. Sums are 64-bit: an excess of 2^24 times an int16 weight, over K inputs.
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

/* FINE_BITS of ita.golden.decoder: the fine weights carry 8 more fraction bits. */
#define FINE_BITS 8
/* Clipped inputs of a row listed on every core's stack; more take the scan per column. */
#define CLIP_LIST 16

static inline int32_t clip8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}

/* The fine weight of input i, column c (wc: column c of w). */
static inline int32_t fine_weight(const int8_t *wc, int w_row, const int16_t *map,
                                  const int16_t *wf, int wf_row, int wf_col, int i, int c)
{
    if (map) {
        int at = map[i];
        return at >= 0 ? wf[at * wf_row + c * wf_col] : wc[i * w_row] * (1 << FINE_BITS);
    }
    return wf ? wf[i * wf_row + c * wf_col] : wc[i * w_row] * (1 << FINE_BITS);
}

/* A saturated output from the whole row: scale_round((clip8(x) . w << 8) + corr), as int32.
 * Out of line: rare, and it keeps the loops over the usual outputs short. */
static __attribute__((noinline)) int32_t recompute(const void *x, int x_wide, int at, int k,
                                                   const int8_t *wc, int w_row, int64_t corr,
                                                   int mult, int shift)
{
    int32_t acc = 0;
    if (x_wide) {
        const int32_t *xr = (const int32_t *)x + at;
        for (int i = 0; i < k; i++)
            acc += clip8(xr[i]) * wc[i * w_row];
    } else {
        const int8_t *xr = (const int8_t *)x + at;
        for (int i = 0; i < k; i++)
            acc += xr[i] * wc[i * w_row];
    }
    int64_t v = k_scale_round(((int64_t)acc << FINE_BITS) + corr, mult, shift + FINE_BITS);
    return (int32_t)k_clamp64(v, INT32_MIN, INT32_MAX);
}

/* Outputs [lo, hi) of a row whose `listed` clipped inputs (at most CLIP_LIST) have their
 * excess, int8 weight rows wi (w_col apart over the columns) and fine rows fi (wf_col apart,
 * or NULL: wi << 8): the engine's value plus the correction, saturated ones recomputed. */
static __attribute__((noinline)) void
listed_row(int listed, const int32_t *excess, const int8_t *const *wi,
           const int16_t *const *fi, int w_col, int wf_col, const int8_t *y8r, int y8_col,
           void *yr, int y_wide, int y_col, int lo, int hi, const void *x, int x_wide, int at,
           int k, const int8_t *w, int w_row, int mult, int shift)
{
    for (int c = lo; c < hi; c++) {
        int64_t corr = 0;
        for (int j = 0; j < listed; j++)
            corr += (int64_t)excess[j] * (fi[j] ? fi[j][c * wf_col]
                                                : wi[j][c * w_col] * (1 << FINE_BITS));
        int32_t engine = y8r[c * y8_col];
        int32_t v = engine == 127 || engine == -128
                        ? recompute(x, x_wide, at, k, w + c * w_col, w_row, corr, mult, shift)
                        : (int32_t)k_clamp64(engine + k_scale_round(corr, mult,
                                                                    shift + FINE_BITS),
                                             INT32_MIN, INT32_MAX);
        if (y_wide)
            ((int32_t *)yr)[c * y_col] = v;
        else
            ((int8_t *)yr)[c * y_col] = (int8_t)clip8(v);
    }
}

int k_decomposed_gemm_ex(const void *x, int x_wide, int x_pitch, int k, const int8_t *w,
                         int w_row, int w_col, const int16_t *map, const int16_t *wf,
                         int wf_row, int wf_col, const int8_t *y8, int y8_row, int y8_col,
                         void *y, int y_wide, int y_row, int y_col, int rows, int n, int mult,
                         int shift)
{
    if (k_rq_check(mult, shift, 0))
        return K_ERR_REQUANT;
    if (shift + FINE_BITS > K_SHIFT_MAX)
        return K_ERR_SHIFT;
    int32_t clip_excess[CLIP_LIST];
    const int8_t *clip_w[CLIP_LIST];
    const int16_t *clip_fine[CLIP_LIST];
    const int32_t *x32 = x;
    /* rows to the cores when there are enough of them (each core scans only its rows),
     * else every row's columns shared (a decoding step's one row) */
    static volatile int32_t slots[RT_CORES] L1_BSS;
    const int by_rows = rows >= (int)num_cores();
    int lo = 0, hi = n, status = K_OK;
    if (!by_rows)
        k_cols(n, &lo, &hi);
    const int first = by_rows ? (int)core_id() : 0, step = by_rows ? (int)num_cores() : 1;
    for (int r = first; r < rows; r += step) {
        /* the row's range: clipped inputs, and inputs beyond 24 bits (then every core that
         * scans the row stops there, and the cores agree on the status); int8 rows clip
         * nothing */
        int32_t low = 0, high = 0;
        if (x_wide) { /* cores sharing the row start at different inputs (L1 banks) */
            const int32_t *xr = x32 + r * x_pitch;
            const int i0 = by_rows ? 0 : (int)core_id() * k / (int)num_cores();
            for (int i = i0; i < k; i++) {
                low = xr[i] < low ? xr[i] : low;
                high = xr[i] > high ? xr[i] : high;
            }
            for (int i = 0; i < i0; i++) {
                low = xr[i] < low ? xr[i] : low;
                high = xr[i] > high ? xr[i] : high;
            }
        }
        if (low < -K_WIDE_MAX || high > K_WIDE_MAX) {
            status = K_ERR_WIDE_INPUT;
            break;
        }
        const int clipped = low < -128 || high > 127;
        /* the row's clipped inputs, listed once when there are few (the usual case) */
        int listed = 0;
        if (clipped) {
            const int32_t *xr = x32 + r * x_pitch;
            for (int i = 0; i < k && listed <= CLIP_LIST; i++)
                if (xr[i] != clip8(xr[i])) {
                    if (listed < CLIP_LIST) {
                        clip_excess[listed] = xr[i] - clip8(xr[i]);
                        clip_w[listed] = w + i * w_row;
                        clip_fine[listed] = map ? (map[i] >= 0 ? wf + map[i] * wf_row : 0)
                                                : wf ? wf + i * wf_row : 0;
                    }
                    listed++;
                }
        }
        if (clipped && listed <= CLIP_LIST) {
            void *yr = y_wide ? (void *)((int32_t *)y + r * y_row)
                              : (void *)((int8_t *)y + r * y_row);
            listed_row(listed, clip_excess, clip_w, clip_fine, w_col, wf_col, y8 + r * y8_row,
                       y8_col, yr, y_wide, y_col, lo, hi, x, x_wide, r * x_pitch, k, w, w_row,
                       mult, shift);
            continue;
        }
        if (!clipped) { /* the usual row: the engine's values, saturated ones recomputed */
            const int8_t *y8r = y8 + r * y8_row;
            for (int c = lo; c < hi; c++) {
                int32_t engine = y8r[c * y8_col];
                int32_t v = engine == 127 || engine == -128
                                ? recompute(x, x_wide, r * x_pitch, k, w + c * w_col, w_row, 0,
                                            mult, shift)
                                : engine;
                if (y_wide)
                    ((int32_t *)y)[r * y_row + c * y_col] = v;
                else
                    ((int8_t *)y)[r * y_row + c * y_col] = (int8_t)clip8(v);
            }
            continue;
        }
        for (int c = lo; c < hi; c++) {
            const int8_t *wc = w + c * w_col;
            int64_t corr = 0; /* more clipped inputs than listed: the whole row per output */
            const int32_t *xr = x32 + r * x_pitch;
            for (int i = 0; i < k; i++) {
                int32_t excess = xr[i] - clip8(xr[i]);
                if (excess)
                    corr += (int64_t)excess * fine_weight(wc, w_row, map, wf, wf_row, wf_col,
                                                          i, c);
            }
            int32_t engine = y8[r * y8_row + c * y8_col];
            int32_t v = engine == 127 || engine == -128 /* saturated: the wide row */
                            ? recompute(x, x_wide, r * x_pitch, k, wc, w_row, corr, mult,
                                        shift)
                            : (int32_t)k_clamp64(engine + k_scale_round(corr, mult,
                                                                        shift + FINE_BITS),
                                                 INT32_MIN, INT32_MAX);
            if (y_wide)
                ((int32_t *)y)[r * y_row + c * y_col] = v;
            else
                ((int8_t *)y)[r * y_row + c * y_col] = (int8_t)clip8(v);
        }
    }
    if (by_rows)
        status = k_agree(slots, status);
    barrier();
    return status;
}

int k_decomposed_gemm(const int32_t *x, int k, const int8_t *w, const int16_t *wf,
                      const int8_t *y8, int y_pitch, int32_t *y, int rows, int n, int mult,
                      int shift)
{
    return k_decomposed_gemm_ex(x, 1, k, k, w, n, 1, 0, wf, n, 1, y8, y_pitch, 1, y, 1, n, 1,
                                rows, n, mult, shift);
}
