/*
 * k_rmsnorm: integer RMSNorm of int32 residual rows (ita.golden.decoder.rms_norm), saturated
 * to the engine's int8 input; k_rmsnorm_wide also keeps the 24-bit result, the wide input of
 * the decomposition (k_decomposed_gemm_ex) that repairs what the clipped int8 copy loses.
 *
 * Per row: the shift a that brings max |x| below 2^15, the sum of squares in 64 bits, its
 * square root on a 32-bit operand (bit by bit) and one division 2^31 / root; then per value
 * two 64-bit fixed-point multiplications (t ~ x / |x| * 2^15, then the column's gain). Rows
 * go round-robin over the cores: a row's sum is one core's work; with fewer rows than cores
 * every core sums each row and writes a share of its columns.
 */

#include "k_common.h"
#include "k_wide.h"
#include "kernels.h"

static int bit_length64(uint64_t v)
{
    uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v;
    return hi ? 64 - __builtin_clz(hi) : lo ? 32 - __builtin_clz(lo) : 0;
}

/* floor(sqrt(v)) */
static uint32_t isqrt32(uint32_t v)
{
    uint32_t root = 0, bit = 1u << 30;
    while (bit > v)
        bit >>= 2;
    while (bit) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

/* ita.golden.decoder.WIDE: the bound of the wide outputs */
#define WIDE ((1 << 23) - 1)

static inline __attribute__((always_inline)) int
rmsnorm(const int32_t *x, int8_t *out, int out_pitch, int32_t *wide, int rows, int cols,
        const int32_t *consts, int64_t eps)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    const int32_t *mult = consts, *shift = consts + cols;
    const int status = k_shifts_agree(slots, shift, 1, 0, cols);
    if (status) {
        barrier();
        return status;
    }
    /* rows round-robin over the cores; fewer rows than cores (a decoding step's one): each
     * core works out every row's root and writes its share of the columns */
    const int by_rows = rows >= (int)num_cores();
    int lo = 0, hi = cols;
    if (!by_rows)
        k_cols(cols, &lo, &hi);
    const int first = by_rows ? (int)core_id() : 0, step = by_rows ? (int)num_cores() : 1;
    for (int r = first; r < rows; r += step) {
        const int32_t *row = x + r * cols;
        uint32_t top = 0;
        for (int c = 0; c < cols; c++) {
            uint32_t m = row[c] < 0 ? 0u - (uint32_t)row[c] : (uint32_t)row[c];
            top = m > top ? m : top;
        }
        int a = bit_length64(top) - 15;
        a = a > 0 ? a : 0;
        uint64_t v = (uint64_t)(eps >> (2 * a));
        for (int c = 0; c < cols; c++) {
            int32_t s = row[c] >> a;
            v += (uint32_t)(s * s);
        }
        int c2 = (bit_length64(v) - 31) >> 1; /* floor */
        uint32_t operand = (uint32_t)(c2 >= 0 ? v >> (2 * c2) : v << (-2 * c2));
        uint32_t root = isqrt32(operand);
        int32_t inv = v ? (int32_t)(0x80000000u / (root ? root : 1u)) : 0;
        int s1 = 16 + a + c2;
        int8_t *dst = out + r * out_pitch;
        for (int c = lo; c < hi; c++) {
            int32_t t = (int32_t)k_scale_round32(row[c], inv, s1); /* |t| <= 2^15 + 1 */
            int32_t m = mult[c], s = shift[c];
            /* the quantiser's 15-bit gains: |t * m| + 2^(s-1) < 2^31 in 32 bits */
            int64_t v = (uint32_t)m + (1u << 15) < (1u << 16) && (uint32_t)s < 31u
                            ? (t * m + (s ? 1 << (s - 1) : 0)) >> s
                            : k_scale_round32(t, m, s);
            dst[c] = (int8_t)k_clamp64(v, -128, 127);
            if (wide)
                wide[r * cols + c] = (int32_t)k_clamp64(v, -WIDE - 1, WIDE);
        }
    }
    barrier();
    return K_OK;
}

int k_rmsnorm(const int32_t *x, int8_t *out, int rows, int cols, int out_pitch,
              const int32_t *consts, int64_t eps)
{
    return rmsnorm(x, out, out_pitch, 0, rows, cols, consts, eps);
}

int k_rmsnorm_wide(const int32_t *x, int8_t *out, int out_pitch, int32_t *wide, int rows,
                   int cols, const int32_t *consts, int64_t eps)
{
    return rmsnorm(x, out, out_pitch, wide, rows, cols, consts, eps);
}
