/*
 * k_silu_mul: SiLU(gate) x up with per-column scales (ita.golden.decoder.gated), saturated
 * to the down projection's int8 input.
 *
 * The sigmoid is the compiler's 513-entry Q15 table (ita.golden.decoder.sigmoid_table) at
 * steps of 1/16 over [-16, 16), linearly interpolated with 8 fraction bits; the products
 * need 64 bits (a Q12 gate up to 2^24 times Q15, then times a 22-bit up value).
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

/* ita.golden.decoder: Q12 gate, Q15 sigmoid, table over [-16, 16) in steps of 1/16. */
#define SILU_BITS 12
#define SIGMOID_BITS 15
#define SIGMOID_RANGE 16
#define STEP_FRACTION (SILU_BITS - 4)
#define SILU_INPUT (1 << 24)

/* silu of a Q12 value; |result| <= 2^24 + 1 */
static inline int32_t silu(int64_t wide, const int32_t *table)
{
    int32_t g = (int32_t)k_clamp64(wide, -SILU_INPUT - 1, SILU_INPUT);
    int32_t j = g + (SIGMOID_RANGE << SILU_BITS);
    int32_t s;
    if (j < 0) {
        s = 0;
    } else if (j >= (2 * SIGMOID_RANGE) << SILU_BITS) {
        s = 1 << SIGMOID_BITS;
    } else {
        int32_t i = j >> STEP_FRACTION, f = j & ((1 << STEP_FRACTION) - 1);
        int32_t lo = table[i], hi = table[i + 1];
        s = lo + (((hi - lo) * f + (1 << (STEP_FRACTION - 1))) >> STEP_FRACTION);
    }
    return (int32_t)k_scale_round32(g, s, SIGMOID_BITS);
}

int k_silu_mul(const int8_t *gate, const int8_t *up, int in_pitch, int8_t *out,
               int out_pitch, int rows, int cols, const int32_t *consts,
               const int32_t *table)
{
    const int32_t *gm = consts, *gs = consts + cols, *om = consts + 2 * cols,
                  *os = consts + 3 * cols;
    static volatile int32_t slots[RT_CORES] L1_BSS;
    const int status = k_shifts_agree(slots, gs, 2, 2 * cols, cols); /* gs and os */
    if (status) {
        barrier();
        return status;
    }
    int lo, hi;
    k_cols(cols, &lo, &hi);
    for (int c = lo; c < hi; c++) { /* a column's constants once for all rows */
        const int32_t cgm = gm[c], cgs = gs[c], com = om[c], cos_ = os[c];
        for (int r = 0; r < rows; r++) {
            /* int8 up: inside UP_BOUND, and the product below 2^32 in magnitude */
            int64_t p = (int64_t)silu(k_scale_round8(gate[r * in_pitch + c], cgm, cgs), table)
                        * up[r * in_pitch + c];
            int64_t v = p == (int32_t)p ? k_scale_round32((int32_t)p, com, cos_)
                                        : k_scale_round(p, com, cos_);
            out[r * out_pitch + c] = (int8_t)k_clamp64(v, -128, 127);
        }
    }
    barrier();
    return K_OK;
}
