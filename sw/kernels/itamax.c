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
 *
 * At a finer logit step ln 2 / 2^k (k > 0) a difference d splits into q = d >> k and
 * f = d mod 2^k: every "256 >> d" becomes T[f] >> q and every "v >> d" (v * T[f]) >> (8 + q),
 * T the fraction table of the step. That costs a table load and a multiply per term, so the
 * ln 2 step keeps its shift-only loop.
 */

#include "ita_hwpe_regs.h"
#include "k_common.h"
#include "kernels.h"

#define SOFTMAX_SCALAR 65280u

static const uint16_t exp_table[1 << ITA_LOGIT_FRAC_MAX] = ITA_EXP_TABLE;

/* The running maximum raised by the logits a[g..end). */
static inline int32_t group_max(const int8_t *a, int g, int end, int32_t max)
{
    for (int j = g; j < end; j++)
        max = a[j] > max ? a[j] : max;
    return max;
}

static void itamax_row(const int8_t *a, uint8_t *out, int cols, int kept)
{
    int32_t max = -128;
    uint32_t sum = 0;
    for (int g = 0; g < kept; g += ITA_N) {
        const int end = g + ITA_N < kept ? g + ITA_N : kept;
        const int32_t new_max = group_max(a, g, end, max);
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

/* v * 2^(-d / 2^k) in the engine's fixed point: (v * T[d mod 2^k]) >> (8 + (d >> k)), with
 * v below 2^23 so the product fits 32 bits; `stride` picks step k's entries of the table. */
static inline uint32_t scaled(uint32_t v, int32_t d, int k, int stride)
{
    const int32_t q = (d >> k) + 8;
    return q > 31 ? 0 : (v * exp_table[(d & ((1 << k) - 1)) * stride]) >> q;
}

static void itamax_row_fine(const int8_t *a, uint8_t *out, int cols, int kept, int k)
{
    const int stride = 1 << (ITA_LOGIT_FRAC_MAX - k);
    int32_t max = -128;
    uint32_t sum = 0;
    for (int g = 0; g < kept; g += ITA_N) {
        const int end = g + ITA_N < kept ? g + ITA_N : kept;
        const int32_t new_max = group_max(a, g, end, max);
        uint32_t part = 0;
        for (int j = g; j < end; j++)
            part += scaled(256u, new_max - a[j], k, stride);
        sum = part + scaled(sum, new_max - max, k, stride);
        max = new_max;
    }
    const uint32_t inv = sum ? SOFTMAX_SCALAR / sum : 0;
    for (int j = 0; j < kept; j++)
        out[j] = (uint8_t)scaled(inv, max - a[j], k, stride);
    for (int j = kept; j < cols; j++)
        out[j] = 0;
}

int k_itamax(const int8_t *a, uint8_t *out, int rows, int cols, int valid_cols, int causal,
             int logit_frac)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    const int valid = valid_cols < cols ? valid_cols : cols;
    if (logit_frac < 0 || logit_frac > ITA_LOGIT_FRAC_MAX)
        return K_ERR_LOGIT_FRAC;
    /* the most logits a row keeps: the 19-bit running sum holds 256 per logit */
    if ((causal && rows < valid ? rows : valid) > K_SOFTMAX_MAX_COLS)
        return K_ERR_SOFTMAX_COLS;
    for (int r = core; r < rows; r += cores) {
        int kept = causal && r + 1 < valid ? r + 1 : valid;
        kept = kept < 0 ? 0 : kept;
        if (logit_frac)
            itamax_row_fine(a + r * cols, out + r * cols, cols, kept, logit_frac);
        else
            itamax_row(a + r * cols, out + r * cols, cols, kept);
    }
    barrier();
    return K_OK;
}
