/*
 * k_silu_mul: SiLU(gate) x up with per-column scales (ita.golden.decoder.gated), saturated
 * to the down projection's int8 input.
 *
 * The sigmoid is the compiler's 513-entry Q15 table (ita.golden.decoder.sigmoid_table) at
 * steps of 1/16 over [-16, 16), linearly interpolated with 8 fraction bits; the products
 * need 64 bits (a Q12 gate up to 2^24 times Q15, then times a 22-bit up value).
 * k_silu_mul_wide takes the int32 gate and up of the decomposition and also keeps the 24-bit
 * result, the wide input of the down projection's decomposition.
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
/* ita.golden.decoder.UP_BOUND and WIDE */
#define UP_BOUND ((1 << 21) - 1)
#define WIDE ((1 << 23) - 1)

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

/* gate8/up8 (int8) or gate32/up32 (int32) rows of in_pitch; wide (rows x cols) or NULL */
static inline __attribute__((always_inline)) int
silu_mul(const int8_t *gate8, const int8_t *up8, const int32_t *gate32, const int32_t *up32,
         int in_pitch, int8_t *out, int out_pitch, int32_t *wide, int rows, int cols,
         const int32_t *consts, const int32_t *table)
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
            int64_t v;
            if (gate32) { /* up saturated to UP_BOUND: the product below 2^46 */
                int32_t u = (int32_t)k_clamp64(up32[r * in_pitch + c], -UP_BOUND - 1, UP_BOUND);
                int64_t p = (int64_t)silu(k_scale_round32(gate32[r * in_pitch + c], cgm, cgs),
                                          table) * u;
                v = p == (int32_t)p ? k_scale_round32((int32_t)p, com, cos_)
                                    : k_scale_round(p, com, cos_);
            } else { /* int8 up: inside UP_BOUND, and the product below 2^32 in magnitude */
                int64_t p = (int64_t)silu(k_scale_round8(gate8[r * in_pitch + c], cgm, cgs),
                                          table) * up8[r * in_pitch + c];
                v = p == (int32_t)p ? k_scale_round32((int32_t)p, com, cos_)
                                    : k_scale_round(p, com, cos_);
            }
            out[r * out_pitch + c] = (int8_t)k_clamp64(v, -128, 127);
            if (wide)
                wide[r * cols + c] = (int32_t)k_clamp64(v, -WIDE - 1, WIDE);
        }
    }
    barrier();
    return K_OK;
}

int k_silu_mul(const int8_t *gate, const int8_t *up, int in_pitch, int8_t *out,
               int out_pitch, int rows, int cols, const int32_t *consts,
               const int32_t *table)
{
    return silu_mul(gate, up, 0, 0, in_pitch, out, out_pitch, 0, rows, cols, consts, table);
}

int k_silu_mul_wide(const int32_t *gate, const int32_t *up, int in_pitch, int8_t *out,
                    int out_pitch, int32_t *wide, int rows, int cols, const int32_t *consts,
                    const int32_t *table)
{
    return silu_mul(0, 0, gate, up, in_pitch, out, out_pitch, wide, rows, cols, consts,
                    table);
}
