/*
 * k_itamax: ITAmax on the cores, bit-exact with the engine (ita.golden.itamax).
 *
 * Rows are split over the cores (row r on core r mod cores). Per row, columns are taken in
 * groups of ITA_N in ascending order, as the engine streams them: the group raises the
 * running maximum, adds 256 >> (max - x) for each kept logit and rescales the old sum by
 * the growth of the maximum. Then inv = 65280 / sum (one division per row) and
 * p = inv >> (max - x). Masked logits (column >= valid_cols, or column > row when causal)
 * take no part and get 0. Shifts of 9 or more give 0 for the 9-bit terms and are cut short
 * so that no C shift reaches the operand width.
 */

#include "ita_hwpe_regs.h"
#include "k_common.h"
#include "kernels.h"

#define SOFTMAX_SCALAR 65280u

static void itamax_row(const int8_t *a, uint8_t *out, int cols, int kept)
{
    int32_t max = -128;
    uint32_t sum = 0;
    for (int g = 0; g < kept; g += ITA_N) {
        const int end = g + ITA_N < kept ? g + ITA_N : kept;
        int32_t new_max = max;
        for (int j = g; j < end; j++)
            new_max = a[j] > new_max ? a[j] : new_max;
        uint32_t part = 0;
        for (int j = g; j < end; j++) {
            int32_t d = new_max - a[j];
            part += d > 8 ? 0 : 256u >> d;
        }
        int32_t grow = new_max - max;
        sum = part + (grow > 31 ? 0 : sum >> grow);
        max = new_max;
    }
    const uint32_t inv = sum ? SOFTMAX_SCALAR / sum : 0;
    for (int j = 0; j < kept; j++) {
        int32_t d = max - a[j];
        out[j] = (uint8_t)(d > 8 ? 0 : inv >> d);
    }
    for (int j = kept; j < cols; j++)
        out[j] = 0;
}

int k_itamax(const int8_t *a, uint8_t *out, int rows, int cols, int valid_cols, int causal)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    const int valid = valid_cols < cols ? valid_cols : cols;
    /* the most logits a row keeps: the 19-bit running sum holds 256 per logit */
    if ((causal && rows < valid ? rows : valid) > K_SOFTMAX_MAX_COLS)
        return K_ERR_SOFTMAX_COLS;
    for (int r = core; r < rows; r += cores) {
        int kept = causal && r + 1 < valid ? r + 1 : valid;
        itamax_row(a + r * cols, out + r * cols, cols, kept < 0 ? 0 : kept);
    }
    barrier();
    return K_OK;
}
