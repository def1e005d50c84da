/*
 * Helpers of the decoder kernels (not part of their interface): the 64-bit fixed-point
 * multiplication of ita.golden.decoder (scale_round) and saturation, shared by the RMSNorm,
 * RoPE, SiLU x up and residual kernels whose per-channel multipliers reach 2^31.
 */

#ifndef K_WIDE_H
#define K_WIDE_H

#include <stdint.h>

#include "runtime.h"

/* (v * mult + 2^(shift-1)) >> shift, rounding half up, shift in 0..62: scale_round. */
static inline int64_t k_scale_round(int64_t v, int32_t mult, int32_t shift)
{
    int64_t p = v * mult;
    if (shift > 0)
        p += (int64_t)1 << (shift - 1);
    return p >> shift;
}

/* clamp(v, lo, hi) */
static inline int64_t k_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
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

#endif /* K_WIDE_H */
