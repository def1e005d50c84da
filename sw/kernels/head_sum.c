/*
 * k_head_sum: out[i] = requant(sum over heads of heads[h * head_stride + i]).
 *
 * The sum of H int8 values is exact in 32 bits; the requantization is 32-bit whenever
 * 128 * H * mult cannot overflow. Cores take contiguous chunks of whole words of the output,
 * each starting at a different L1 bank (k_rotation).
 */

#include "k_common.h"
#include "kernels.h"

int k_head_sum(const int8_t *heads, int heads_count, int head_stride, int count, int8_t *out,
               int mult, int shift, int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    if (heads_count < 1 || heads_count > K_HEADS_MAX)
        return K_ERR_HEADS;
    int lo, hi;
    k_span(count, 4, &lo, &hi);
    const k_rq_t rq = k_rq_make(mult, shift, add, 128u * (uint32_t)heads_count);
    const int rot = k_rotation(heads, lo, hi);
    for (int pass = 0; pass < 2; pass++) {
        const int from = pass ? lo : lo + rot, to = pass ? lo + rot : hi;
        for (int i = from; i < to; i++) {
            const int8_t *p = heads + i;
            int32_t sum = 0;
            for (int h = 0; h < heads_count; h++, p += head_stride)
                sum += *p;
            out[i] = k_requant(sum, &rq);
        }
    }
    barrier();
    return K_OK;
}
