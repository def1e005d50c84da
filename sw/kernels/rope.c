/*
 * k_rope: per-channel dequantisation, rotation and requantization of Q or K rows
 * (ita.golden.decoder.rope) for the engine's QK step: k_rope from the engine's int8 outputs,
 * k_rope32 from the int32 outputs of the decomposition (k_decomposed_gemm_ex).
 *
 * The compiler stores the Q14 cos/sin tables of the rows' positions (ita.golden.decoder.
 * rope_table): the cores only multiply. Each pair is independent: the pairs of every row
 * are dealt round-robin over the cores (no division per element).
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

/* The operand bound of ita.golden.decoder.rope and its scale: Q14 tables, 8 extra bits. */
#define ROPE_OPERAND 65535
#define ROPE_SHIFT (14 + 8)

/* x8 (int8) or x32 (int32) rows of x_pitch elements */
static inline __attribute__((always_inline)) int
rope(const int8_t *x8, const int32_t *x32, int x_pitch, int8_t *out, int out_pitch, int rows,
     int dim, const int32_t *consts, const int16_t *cos, const int16_t *sin)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    const int32_t *mult = consts, *shift = consts + dim;
    const int status = k_shifts_agree(slots, shift, 1, 0, dim);
    if (status) {
        barrier();
        return status;
    }
    const int half = dim / 2;
    const int64_t round = (int64_t)1 << (ROPE_SHIFT - 1);
    for (int p = (int)core_id(); p < half; p += (int)num_cores()) {
        const int32_t ma = mult[p], sa = shift[p], mb = mult[p + half], sb = shift[p + half];
        for (int r = 0; r < rows; r++) { /* a pair's constants once for all rows */
            int8_t *dst = out + r * out_pitch;
            int64_t ua, ub;
            if (x32) {
                ua = k_scale_round32(x32[r * x_pitch + p], ma, sa);
                ub = k_scale_round32(x32[r * x_pitch + p + half], mb, sb);
            } else {
                ua = k_scale_round8(x8[r * x_pitch + p], ma, sa);
                ub = k_scale_round8(x8[r * x_pitch + p + half], mb, sb);
            }
            int32_t a = (int32_t)k_clamp64(ua, -ROPE_OPERAND - 1, ROPE_OPERAND);
            int32_t b = (int32_t)k_clamp64(ub, -ROPE_OPERAND - 1, ROPE_OPERAND);
            int32_t c = cos[r * half + p], s = sin[r * half + p];
            int64_t lo = (int64_t)(a * c) - (int64_t)(b * s);
            int64_t hi = (int64_t)(a * s) + (int64_t)(b * c);
            dst[p] = (int8_t)k_clamp64((lo + round) >> ROPE_SHIFT, -128, 127);
            dst[p + half] = (int8_t)k_clamp64((hi + round) >> ROPE_SHIFT, -128, 127);
        }
    }
    barrier();
    return K_OK;
}

int k_rope(const int8_t *x, int x_pitch, int8_t *out, int out_pitch, int rows, int dim,
           const int32_t *consts, const int16_t *cos, const int16_t *sin)
{
    return rope(x, 0, x_pitch, out, out_pitch, rows, dim, consts, cos, sin);
}

int k_rope32(const int32_t *x, int x_pitch, int8_t *out, int out_pitch, int rows, int dim,
             const int32_t *consts, const int16_t *cos, const int16_t *sin)
{
    return rope(0, x, x_pitch, out, out_pitch, rows, dim, consts, cos, sin);
}
