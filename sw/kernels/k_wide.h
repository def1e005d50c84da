/*
 * Helpers of the decoder kernels (not part of their interface): the 64-bit fixed-point
 * multiplication of ita.golden.decoder (scale_round) and saturation, shared by the RMSNorm,
 * RoPE, SiLU x up and residual kernels whose per-channel multipliers reach 2^31.
 */

#ifndef K_WIDE_H
#define K_WIDE_H

#include <stdint.h>

#include "k_common.h"
#include "runtime.h"

/* clamp(v, lo, hi) */
static inline int64_t k_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* (v * mult + 2^(shift-1)) >> shift, rounding half up, shift in 0..62: scale_round. */
static inline int64_t k_scale_round(int64_t v, int32_t mult, int32_t shift)
{
    int64_t p = v * mult;
    if (shift > 0)
        p += (int64_t)1 << (shift - 1);
    return p >> shift;
}

/* k_scale_round of an int32 value: one 32 x 32 -> 64-bit product (mul, mulh) instead of a
 * 64 x 64 one. */
static inline int64_t k_scale_round32(int32_t v, int32_t mult, int32_t shift)
{
    int64_t p = (int64_t)v * mult;
    if (shift > 0)
        p += (int64_t)1 << (shift - 1);
    return p >> shift;
}

/* k_scale_round of an int8 value: in 32 bits when |mult| < 2^23 and shift < 31 (then
 * |v * mult| + 2^(shift-1) < 2^31), the engine's int8 outputs with the usual 16-bit
 * multipliers; the 64-bit form otherwise. */
static inline int64_t k_scale_round8(int32_t v, int32_t mult, int32_t shift)
{
    if ((uint32_t)mult + (1u << 23) < (1u << 24) && (uint32_t)shift < 31u)
        return (v * mult + (shift ? 1 << (shift - 1) : 0)) >> shift;
    return k_scale_round32(v, mult, shift);
}

/* This core's columns [*lo, *hi) of a row of `cols`: element-wise kernels over rows shorter
 * than the cluster split every row, so that few rows still keep all cores busy. */
static inline void k_cols(int cols, int *lo, int *hi)
{
    int cores = (int)num_cores(), core = (int)core_id();
    int per = (cols + cores - 1) / cores;
    *lo = core * per < cols ? core * per : cols;
    *hi = *lo + per < cols ? *lo + per : cols;
}

/* K_ERR_SHIFT if a shift of the columns [lo, hi) lies outside 0..K_SHIFT_MAX (scale_round's
 * range; C shifts of 64 or more are undefined). */
static inline int k_shift_check(const int32_t *shift, int lo, int hi)
{
    uint32_t bad = 0;
    for (int c = lo; c < hi; c++)
        bad |= (uint32_t)shift[c] > (uint32_t)K_SHIFT_MAX;
    return bad ? K_ERR_SHIFT : K_OK;
}

/* k_shift_check of this core's share of each of `sets` consecutive rows of `cols` shifts,
 * agreed by all cores (k_agree: one barrier). */
static inline int k_shifts_agree(volatile int32_t *slots, const int32_t *shift, int sets,
                                 int stride, int cols)
{
    int lo, hi, mine = K_OK;
    k_cols(cols, &lo, &hi);
    for (int s = 0; s < sets && !mine; s++)
        mine = k_shift_check(shift + s * stride, lo, hi);
    return k_agree(slots, mine);
}

#endif /* K_WIDE_H */
