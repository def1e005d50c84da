/*
 * k_gemm_rq: c = requant(a @ bt^T + bias) with the CORE-V 4-way int8 dot product.
 *
 * Rows of c are taken in groups of 4, group g by core g mod cores. A group is computed in
 * register blocks of 4 rows x 4 columns: per word (4 values) of k, 4 + 4 word loads and 16
 * cv.sdotsp.b, in inline assembly (gemm_4x4) because the block needs 28 registers and the
 * compiler's schedule of the same C spills. Each core starts the sum over k at a different
 * word (w0 = core * k / 4 / cores) and wraps around: cores then load from different L1 banks
 * even when all rows start in the same bank (row lengths that are multiples of 128 bytes). Rows of a and of bt are k bytes apart, so one
 * post-incremented pointer per operand plus the offsets k, 2k, 3k reach all four rows.
 * The last n mod 4 columns, a last group of fewer than 4 rows, and the k mod 4 trailing
 * products use the same loads in C (gemm_block). When a or bt is not word-aligned or k is not
 * a multiple of 4, rows are not word-aligned: gemm_block then gathers each word from four
 * byte loads. Accumulators start at the bias.
 */

#include "k_common.h"
#include "kernels.h"

/*
 * Rows i .. i+R-1, columns j .. j+NC-1 (R, NC <= 4, constants after inlining): int32 sums
 * of kw words from a and bt, plus the bias, plus the k mod 4 trailing products.
 */
static inline __attribute__((always_inline)) void
gemm_block(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int k, int n,
           int i, int j, int R, int NC, int aligned, const k_rq_t *rq)
{
    int32_t acc[4][4];
    for (int q = 0; q < NC; q++) {
        int32_t b0 = bias ? bias[j + q] : 0;
        for (int r = 0; r < R; r++)
            acc[r][q] = b0;
    }
    const int8_t *pa = a + i * k, *pb = bt + j * k;
    const int kw = k >> 2;
    for (int w = 0; w < kw; w++) {
        uint32_t av[4], bv[4];
        for (int r = 0; r < R; r++)
            av[r] = aligned ? k_lw_off(pa, r * k + 4 * w) : k_bytes(pa + r * k + 4 * w);
        for (int q = 0; q < NC; q++)
            bv[q] = aligned ? k_lw_off(pb, q * k + 4 * w) : k_bytes(pb + q * k + 4 * w);
        for (int r = 0; r < R; r++)
            for (int q = 0; q < NC; q++)
                acc[r][q] = k_sdot4(acc[r][q], av[r], bv[q]);
    }
    for (int t = 4 * kw; t < k; t++)
        for (int r = 0; r < R; r++)
            for (int q = 0; q < NC; q++)
                acc[r][q] += pa[r * k + t] * pb[q * k + t];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NC; q++)
            c[(i + r) * n + j + q] = k_requant(acc[r][q], rq);
}

/* One column of the 4 x 4 block: the four A words times B word `b` into x0..x3. */
#define GEMM_COLUMN(x0, x1, x2, x3, b)                                                         \
    __asm__("cv.sdotsp.b %0, %4, %8\n\t"                                                       \
            "cv.sdotsp.b %1, %5, %8\n\t"                                                       \
            "cv.sdotsp.b %2, %6, %8\n\t"                                                       \
            "cv.sdotsp.b %3, %7, %8"                                                           \
            : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)                                           \
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b))

/*
 * Words [from, to) of k for the 4 x 4 block: per word 4 + 2 loads, then two more B loads
 * between the columns, each used at least one instruction after it is issued.
 */
#define GEMM_WORDS(from, to)                                                                   \
    do {                                                                                       \
        const int8_t *pa = a + i * k + 4 * (from), *pb = bt + j * k + 4 * (from);             \
        const int8_t *end = a + i * k + 4 * (to);                                              \
        while (pa != end) {                                                                    \
            uint32_t a0, a1, a2, a3, b0, b1;                                                   \
            __asm__("cv.lw %0, (%6), 4\n\t"                                                    \
                    "cv.lw %1, %8(%6)\n\t"                                                     \
                    "cv.lw %2, %9(%6)\n\t"                                                     \
                    "cv.lw %3, %10(%6)\n\t"                                                    \
                    "cv.lw %4, (%7), 4\n\t"                                                    \
                    "cv.lw %5, %8(%7)"                                                          \
                    : "=&r"(a0), "=&r"(a1), "=&r"(a2), "=&r"(a3), "=&r"(b0), "=&r"(b1),        \
                      "+r"(pa), "+r"(pb)                                                       \
                    : "r"(o1), "r"(o2), "r"(o3)                                                \
                    : "memory");                                                               \
            GEMM_COLUMN(c00, c10, c20, c30, b0);                                               \
            __asm__("cv.lw %0, %1(%2)" : "=r"(b0) : "r"(o2), "r"(pb) : "memory");              \
            GEMM_COLUMN(c01, c11, c21, c31, b1);                                               \
            __asm__("cv.lw %0, %1(%2)" : "=r"(b1) : "r"(o3), "r"(pb) : "memory");              \
            GEMM_COLUMN(c02, c12, c22, c32, b0);                                               \
            GEMM_COLUMN(c03, c13, c23, c33, b1);                                               \
        }                                                                                      \
    } while (0)

/*
 * Rows i .. i+3, columns j .. j+3; k a multiple of 4, a and bt word-aligned. The sum over k
 * starts at word w0 and wraps around, so that cores working on rows and columns in the same
 * banks load from different banks at the same time (integer sums do not care about order).
 */
static void gemm_4x4(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int k,
                     int n, int i, int j, int w0, const k_rq_t *rq)
{
    int32_t c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
    c00 = c10 = c20 = c30 = bias ? bias[j] : 0;
    c01 = c11 = c21 = c31 = bias ? bias[j + 1] : 0;
    c02 = c12 = c22 = c32 = bias ? bias[j + 2] : 0;
    c03 = c13 = c23 = c33 = bias ? bias[j + 3] : 0;
    const int o1 = k - 4, o2 = 2 * k - 4, o3 = 3 * k - 4; /* rows 1..3 after the increment */
    GEMM_WORDS(w0, k >> 2);
    GEMM_WORDS(0, w0);
    int32_t acc[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23},
                         {c30, c31, c32, c33}};
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            c[(i + r) * n + j + q] = k_requant(acc[r][q], rq);
}

/* Rows i .. i+R-1 (R and `aligned` constant after inlining) against every column. */
static inline __attribute__((always_inline)) void
gemm_rows(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int k, int n,
          int i, int R, int aligned, const k_rq_t *rq)
{
    const int w0 = (int)core_id() * (k >> 2) / (int)num_cores(); /* see gemm_4x4 */
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        if (R == 4 && aligned)
            gemm_4x4(a, bt, bias, c, k, n, i, j, w0, rq);
        else
            gemm_block(a, bt, bias, c, k, n, i, j, R, 4, aligned, rq);
    }
    for (; j < n; j++)
        gemm_block(a, bt, bias, c, k, n, i, j, R, 1, aligned, rq);
}

/* This core's rows: groups of 4 round-robin, then the last m mod 4 rows on the next core. */
static inline __attribute__((always_inline)) void
gemm_share(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int m, int k,
           int n, int aligned, const k_rq_t *rq)
{
    const int cores = (int)num_cores(), core = (int)core_id();
    const int groups = m / 4;
    for (int g = core; g < groups; g += cores)
        gemm_rows(a, bt, bias, c, k, n, 4 * g, 4, aligned, rq);
    if (core != groups % cores)
        return;
    switch (m - 4 * groups) {
    case 3:
        gemm_rows(a, bt, bias, c, k, n, 4 * groups, 3, aligned, rq);
        break;
    case 2:
        gemm_rows(a, bt, bias, c, k, n, 4 * groups, 2, aligned, rq);
        break;
    case 1:
        gemm_rows(a, bt, bias, c, k, n, 4 * groups, 1, aligned, rq);
        break;
    default:
        break;
    }
}

int k_gemm_rq(const int8_t *a, const int8_t *bt, const int32_t *bias, int8_t *c, int m, int k,
              int n, int mult, int shift, int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    /* Largest |sum|: k products of at most 128 * 128, plus the largest |bias|; it must fit
     * int32 (K_ERR_GEMM_SUM). */
    uint32_t top = 0;
    if (bias)
        for (int j = 0; j < n; j++) {
            uint32_t v = bias[j] < 0 ? 0u - (uint32_t)bias[j] : (uint32_t)bias[j];
            top = v > top ? v : top;
        }
    const uint64_t bound = (uint64_t)(uint32_t)k * 128u * 128u + top;
    if (bound > INT32_MAX)
        return K_ERR_GEMM_SUM;
    k_rq_t rq = k_rq_make(mult, shift, add, (uint32_t)bound);
    if (k_aligned(a) && k_aligned(bt) && (k & 3) == 0)
        gemm_share(a, bt, bias, c, m, k, n, 1, &rq);
    else
        gemm_share(a, bt, bias, c, m, k, n, 0, &rq);
    barrier();
    return K_OK;
}
