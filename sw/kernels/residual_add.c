/*
 * k_residual_add: out = requant(x * mult_x + y * mult_y, 1, shift, add), element-wise.
 *
 * The sum of the two products fits 17 bits, so everything is 32-bit: a shift of 18 or more
 * leaves 0 for any sum (as the golden model's) and is capped there. Cores take contiguous
 * chunks of whole words, each starting at a different L1 bank (k_rotation).
 */

#include "k_common.h"
#include "kernels.h"

int k_residual_add(const int8_t *x, const int8_t *y, int8_t *out, int count, int mult_x,
                   int mult_y, int shift, int add)
{
    if (k_rq_check(mult_x, shift, add) || k_rq_check(mult_y, 0, 0))
        return K_ERR_REQUANT;
    int lo, hi;
    k_span(count, 4, &lo, &hi);
    const int s = shift > 18 ? 18 : shift;
    const int32_t round = s > 0 ? 1 << (s - 1) : 0;
    const int rot = k_rotation(x, lo, hi);
    for (int pass = 0; pass < 2; pass++) {
        const int from = pass ? lo : lo + rot, to = pass ? lo + rot : hi;
        for (int i = from; i < to; i++) {
            int32_t v = x[i] * mult_x + y[i] * mult_y + round;
            out[i] = k_sat8((v >> s) + add);
        }
    }
    barrier();
    return K_OK;
}
