/*
 * k_dequant_add: a GEMM output with per-column scales added to the int32 residual stream
 * (ita.golden.decoder.dequantise_add): k_dequant_add from the engine's int8 output,
 * k_dequant_add32 from the int32 output of the decomposition. Every core takes a slice of the
 * columns of every row.
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

static inline __attribute__((always_inline)) int
dequant_add(const int32_t *residual, const int8_t *y8, const int32_t *y32, int y_pitch,
            int32_t *out, int rows, int cols, const int32_t *consts)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    const int32_t *mult = consts, *shift = consts + cols;
    const int status = k_shifts_agree(slots, shift, 1, 0, cols);
    if (status) {
        barrier();
        return status;
    }
    int lo, hi;
    k_cols(cols, &lo, &hi);
    for (int c = lo; c < hi; c++) { /* a column's constants once for all rows */
        const int32_t m = mult[c], s = shift[c];
        for (int r = 0; r < rows; r++) {
            int64_t v = residual[r * cols + c]
                        + (y32 ? k_scale_round32(y32[r * y_pitch + c], m, s)
                               : k_scale_round8(y8[r * y_pitch + c], m, s));
            out[r * cols + c] = (int32_t)k_clamp64(v, INT32_MIN, INT32_MAX);
        }
    }
    barrier();
    return K_OK;
}

int k_dequant_add(const int32_t *residual, const int8_t *y, int y_pitch, int32_t *out,
                  int rows, int cols, const int32_t *consts)
{
    return dequant_add(residual, y, 0, y_pitch, out, rows, cols, consts);
}

int k_dequant_add32(const int32_t *residual, const int32_t *y, int y_pitch, int32_t *out,
                    int rows, int cols, const int32_t *consts)
{
    return dequant_add(residual, 0, y, y_pitch, out, rows, cols, consts);
}
