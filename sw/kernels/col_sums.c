/*
 * k_col_sums: out[c] = sum over the rows of x[r, c], int32: the mean pooling's column sums of
 * ita.quant.integer.run (pooled_sum) over the valid rows; the host divides by the token count.
 *
 * Columns are split over the cores in groups of four (k_span). On word-aligned rows a word
 * of four columns is widened into two int16 pairs (k_unpack_h) and added lane-wise
 * (k_add_h): five instructions per four values. 256 rows fit an int16 lane (-128 * 256 =
 * -2^15, 127 * 256 < 2^15); after each 256 rows the lanes go into the int32 sums. Exact for
 * up to K_COLSUM_MAX_ROWS rows (-128 * 2^24 = -2^31); more rows: K_ERR_ROWS.
 */

#include "k_common.h"
#include "kernels.h"

int k_col_sums(const int8_t *x, int rows, int cols, int pitch, int32_t *out)
{
    if (rows < 0 || rows > K_COLSUM_MAX_ROWS)
        return K_ERR_ROWS;
    int lo, hi;
    k_span(cols, 4, &lo, &hi);
    int j = lo;
    if (k_aligned(x) && (pitch & 3) == 0) {
        for (; j + 4 <= hi; j += 4) {
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int r0 = 0; r0 < rows; r0 += 256) {
                const int r1 = rows - r0 < 256 ? rows : r0 + 256;
                uint32_t even = 0, odd = 0; /* (c0, c2), (c1, c3) */
                const int8_t *p = x + r0 * pitch + j;
                for (int r = r0; r < r1; r++, p += pitch) {
                    uint32_t e, o;
                    k_unpack_h(k_lw_off(p, 0), &e, &o);
                    even = k_add_h(even, e);
                    odd = k_add_h(odd, o);
                }
                s0 += K_HALF(even, 0);
                s1 += K_HALF(odd, 0);
                s2 += K_HALF(even, 1);
                s3 += K_HALF(odd, 1);
            }
            out[j] = s0;
            out[j + 1] = s1;
            out[j + 2] = s2;
            out[j + 3] = s3;
        }
    }
    for (; j < hi; j++) {
        int32_t s = 0;
        for (int r = 0; r < rows; r++)
            s += x[r * pitch + j];
        out[j] = s;
    }
    barrier();
    return K_OK;
}
