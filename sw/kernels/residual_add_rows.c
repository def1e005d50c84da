/*
 * k_residual_add_rows: the residual add in front of a LayerNorm of ita.quant.integer
 * (residual_add_rows): n int8 operands, per-column multipliers and left shifts, the exact
 * 32-bit sum, then each row shifted right by its own amount into 13-bit int16 values.
 *
 * The constants are checked first, each core on its share of the columns (a multiplier
 * outside 0..255, a negative shift, or a column whose largest sum reaches 2^31:
 * K_ERR_RESIDUAL, the limits at which ita.quant.integer raises), and combined into one
 * coefficient mult << lshift per operand and column in `coef` (n cols int32 in L1), so that
 * a value costs one load and one cv.mac per operand. Rows then go round-robin over the
 * cores, each core starting at its own column: a first pass finds max |v| of the row (cv.max
 * / cv.min), a second one recomputes v and rounds it with one cv.addrnr. With fewer than
 * four rows per core (a short sentence) the cores split the columns of every row instead
 * and agree on each row's max |v| through a table in L1 (ra_columns). Recomputing costs the n multiply-accumulates again but
 * needs no 32-bit copy of the row. The products have no SIMD form: each operand's column has
 * its own shift, and the coefficients reach 24 bits.
 */

#include "k_common.h"
#include "kernels.h"

/* Largest |int8 * 8-bit multiplier|, and the largest left shift one product can take. */
#define RA_PRODUCT_MAX (128u * 255u)
#define RA_LSHIFT_MAX 16

/* K_ERR_RESIDUAL unless the columns [lo, hi) of every operand are usable; fills coef. */
static int ra_constants(const int32_t *consts, int n, int cols, int lo, int hi, int32_t *coef)
{
    for (int j = lo; j < hi; j++) {
        uint64_t bound = 0;
        for (int i = 0; i < n; i++) {
            const int32_t mult = consts[i * cols + j], lshift = consts[(n + i) * cols + j];
            if ((uint32_t)mult > 255u || (uint32_t)lshift > (uint32_t)RA_LSHIFT_MAX)
                return K_ERR_RESIDUAL;
            bound += (uint64_t)RA_PRODUCT_MAX << lshift;
            coef[i * cols + j] = mult << lshift;
        }
        if (bound >= (1ull << 31))
            return K_ERR_RESIDUAL;
    }
    return K_OK;
}

/* v of column j of a row: the operands' bytes (o[i], already at the row) times their
 * coefficients (c[i], one array of cols per operand). */
static inline __attribute__((always_inline)) int32_t
ra_value(const int8_t *const *o, const int32_t *const *c, int n, int j)
{
    int32_t v = 0;
    for (int i = 0; i < n; i++)
        v = k_mac(v, o[i][j], c[i][j]);
    return v;
}

static inline int32_t ra_max(int32_t a, int32_t b)
{
    __asm__("cv.max %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

static inline int32_t ra_min(int32_t a, int32_t b)
{
    __asm__("cv.min %0, %0, %1" : "+r"(a) : "r"(b));
    return a;
}

/* max |v| over the columns [from, to) of a row, with the running extremes. */
static inline __attribute__((always_inline)) void
ra_peak(const int8_t *const *o, const int32_t *const *c, int n, int from, int to,
        int32_t *top, int32_t *bottom)
{
    int32_t t = *top, b = *bottom;
    for (int j = from; j < to; j++) {
        const int32_t v = ra_value(o, c, n, j);
        t = ra_max(t, v);
        b = ra_min(b, v);
    }
    *top = t;
    *bottom = b;
}

/* The shifted values of the columns [from, to) of a row. */
static inline __attribute__((always_inline)) void
ra_store(const int8_t *const *o, const int32_t *const *c, int n, int from, int to, int s,
         int safe, int16_t *out)
{
    if (safe) { /* v + 2^(s-1) stays inside int32: one rounding add-shift */
        for (int j = from; j < to; j++)
            out[j] = (int16_t)k_addrn(ra_value(o, c, n, j), 0, s);
    } else {    /* floor((v + 2^(s-1)) / 2^s) = (floor(v / 2^(s-1)) + 1) >> 1 */
        for (int j = from; j < to; j++)
            out[j] = (int16_t)(((ra_value(o, c, n, j) >> (s - 1)) + 1) >> 1);
    }
}

/* The shift and rounding of a row whose largest |v| is `peak`. */
static inline int ra_shift(uint32_t peak, int *safe)
{
    const int bits = peak ? 32 - __builtin_clz(peak) : 0;
    const int s = bits > K_ROW_BITS ? bits - K_ROW_BITS : 0;
    *safe = s == 0 || peak + (1u << (s - 1)) < (1u << 31);
    return s;
}

/* Most operands whose row and coefficient pointers a row keeps in local arrays (registers
 * for the usual counts, which are inlined with a constant n). */
#define RA_LOCAL_OPS 4

/* One row (inlined with a constant n for the usual operand counts). Each core starts at
 * column `rot` and wraps around, so that cores running in step read the coefficients (one
 * word per column, the same for every row) and the operands from different L1 banks. */
static inline __attribute__((always_inline)) void
ra_row(const int8_t *const *ops, const int32_t *coef, int n, int cols, int row, int rot,
       int16_t *out)
{
    const int8_t *o[RA_LOCAL_OPS];
    const int32_t *c[RA_LOCAL_OPS];
    for (int i = 0; i < n; i++) {
        o[i] = ops[i] + row * cols;
        c[i] = coef + i * cols;
    }
    int32_t top = 0, bottom = 0;
    ra_peak(o, c, n, rot, cols, &top, &bottom);
    ra_peak(o, c, n, 0, rot, &top, &bottom);
    /* |v| < 2^31 (the constants' check), so -bottom does not overflow */
    int safe;
    const int s = ra_shift((uint32_t)(top > -bottom ? top : -bottom), &safe);
    ra_store(o, c, n, rot, cols, s, safe, out + row * cols);
    ra_store(o, c, n, 0, rot, s, safe, out + row * cols);
}

/* Rows per block of the column-split path, and its two tables of each core's peaks. */
#define RA_BLOCK 16
static volatile uint32_t ra_peaks[2][RA_BLOCK][RT_CORES] L1_BSS;

/* Few rows: every core takes its share [lo, hi) of the columns of every row (starting `rot`
 * into it, for the banks). Per block of RA_BLOCK rows each core notes its part of every
 * row's max |v| in a table, one barrier, then each takes the maximum over the cores. The
 * tables alternate: a core fills a table again only after the next block's barrier, which
 * every core reaches after reading it. */
static inline __attribute__((always_inline)) void
ra_columns(const int8_t *const *ops, const int32_t *coef, int n, int cols, int rows, int lo,
           int hi, int rot, int16_t *out)
{
    const int core = (int)core_id(), cores = (int)num_cores();
    const int8_t *o[RA_LOCAL_OPS];
    const int32_t *c[RA_LOCAL_OPS];
    for (int i = 0; i < n; i++)
        c[i] = coef + i * cols;
    for (int b = 0, t = 0; b < rows; b += RA_BLOCK, t ^= 1) {
        const int end = rows - b < RA_BLOCK ? rows : b + RA_BLOCK;
        for (int r = b; r < end; r++) {
            for (int i = 0; i < n; i++)
                o[i] = ops[i] + r * cols;
            int32_t top = 0, bottom = 0;
            ra_peak(o, c, n, lo + rot, hi, &top, &bottom);
            ra_peak(o, c, n, lo, lo + rot, &top, &bottom);
            ra_peaks[t][r - b][core] = (uint32_t)(top > -bottom ? top : -bottom);
        }
        barrier();
        for (int r = b; r < end; r++) {
            uint32_t peak = 0;
            for (int k = 0; k < cores; k++) {
                const uint32_t v = ra_peaks[t][r - b][k];
                peak = v > peak ? v : peak;
            }
            int safe;
            const int s = ra_shift(peak, &safe);
            for (int i = 0; i < n; i++)
                o[i] = ops[i] + r * cols;
            ra_store(o, c, n, lo + rot, hi, s, safe, out + r * cols);
            ra_store(o, c, n, lo, lo + rot, s, safe, out + r * cols);
        }
    }
}

/* A row of more operands: column by column, the operand pointers indexed. */
static void ra_row_many(const int8_t *const *ops, const int32_t *coef, int n, int cols, int row,
                        int16_t *out)
{
    int32_t top = 0, bottom = 0;
    const int at = row * cols;
    for (int j = 0; j < cols; j++) {
        int32_t v = 0;
        for (int i = 0; i < n; i++)
            v = k_mac(v, ops[i][at + j], coef[i * cols + j]);
        top = ra_max(top, v);
        bottom = ra_min(bottom, v);
    }
    const uint32_t peak = (uint32_t)(top > -bottom ? top : -bottom);
    const int bits = peak ? 32 - __builtin_clz(peak) : 0;
    const int s = bits > K_ROW_BITS ? bits - K_ROW_BITS : 0;
    for (int j = 0; j < cols; j++) {
        int32_t v = 0;
        for (int i = 0; i < n; i++)
            v = k_mac(v, ops[i][at + j], coef[i * cols + j]);
        out[at + j] = (int16_t)(s ? ((v >> (s - 1)) + 1) >> 1 : v);
    }
}

int k_residual_add_rows(const int8_t *const *ops, int n, int16_t *out, int rows, int cols,
                        const int32_t *consts, int32_t *coef)
{
    static volatile int32_t slots[RT_CORES] L1_BSS;
    if (n < 1 || cols < 1)
        return K_ERR_RESIDUAL;
    int lo, hi;
    k_span(cols, 1, &lo, &hi);
    const int status = k_agree(slots, ra_constants(consts, n, cols, lo, hi, coef));
    if (status) {
        barrier();
        return status;
    }
    const int cores = (int)num_cores(), core = (int)core_id();
    if (rows < 4 * cores && cols >= 16 * cores && n <= RA_LOCAL_OPS) { /* idle cores */
        const int share = 4 * core < hi - lo ? 4 * core : 0;
        if (n == 1)
            ra_columns(ops, coef, 1, cols, rows, lo, hi, share, out);
        else if (n == 2)
            ra_columns(ops, coef, 2, cols, rows, lo, hi, share, out);
        else if (n == 3)
            ra_columns(ops, coef, 3, cols, rows, lo, hi, share, out);
        else
            ra_columns(ops, coef, 4, cols, rows, lo, hi, share, out);
        barrier();
        return K_OK;
    }
    const int rot = 4 * core < cols ? 4 * core : 0;
    for (int r = core; r < rows; r += cores) {
        if (n == 1)
            ra_row(ops, coef, 1, cols, r, rot, out);
        else if (n == 2)
            ra_row(ops, coef, 2, cols, r, rot, out);
        else if (n == 3)
            ra_row(ops, coef, 3, cols, r, rot, out);
        else if (n == 4)
            ra_row(ops, coef, 4, cols, r, rot, out);
        else
            ra_row_many(ops, coef, n, cols, r, out);
    }
    barrier();
    return K_OK;
}
