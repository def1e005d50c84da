/*
 * int8 GEMM on the eight cores: C = requant(A @ B + bias), bit-exact with ita.golden.requant.
 *
 * The testbench (verif/cluster/kernels.py) places in L2, and describes in gemm_data.h:
 *   A     M x K int8, row-major, rows GEMM_KP = K rounded up to 4 bytes apart;
 *   B^T   N x K int8 (B transposed, so that a column of B is contiguous), same row pitch;
 *   bias  N int32;
 * and the constants mult, shift, add of the requantization. The pad bytes of each row (K..KP)
 * are junk on purpose: the program zeroes them in A's L1 copy (0 * junk = 0), so K need not be
 * a multiple of 4.
 *
 * Core 0 copies A, B^T and bias to L1 with the DMA (the others wait in the barrier), re-
 * pitching the rows to an odd number of words (PITCH) so that rows 1 .. 31 apart start in
 * different banks. Rows of C are split by core id: of every 32 rows, core c computes the 4
 * rows from 4c (compute()), in register blocks of 4 rows x 4 columns: per word of K, 4 + 4
 * word loads and 16 cv.sdotsp.b (4 int8 products summed into an int32 accumulator each),
 * written in inline assembly (block4x4: 25 instructions per 64 MACs, no load-use stall).
 * Each core starts at a different block of columns, so that cores running in step load from
 * different banks. The last M mod 32 rows (split row by row over the cores), the last
 * N mod 4 columns, and everything when K > 680 (load offsets beyond 12 bits) use the same
 * scheme in C (block()). Accumulators start at the bias; the requantization
 * is mul, cv.addrn (add, round, shift) and cv.clip when 32 bits cannot overflow, else int64
 * C. The result C (M x N int8, dense) goes back to L2 with the DMA, where the testbench
 * compares it with the golden model.
 *
 * Printed (parsed by verif/cluster/kernels.py): the kernel's cycles on core 0 from the
 * barrier after the input copy to the barrier after the last block (including both
 * barriers and the pad zeroing), and the copy times.
 */

#include <stdint.h>

#include "gemm_data.h"
#include "runtime.h"

#define KW (GEMM_KP / 4) /* words of K per row of A and B^T */
/* Words between rows in L1: odd, so that any 32 consecutive rows start in 32 different banks
 * (rows in L2 are GEMM_KP bytes apart; the DMA re-pitches them). */
#define PITCH (KW | 1u)
#define CORES RT_CORES
#define C_BYTES ((GEMM_M * GEMM_N + 3) / 4 * 4)

#if 4 * (GEMM_M + GEMM_N) * PITCH + 4 * GEMM_N + C_BYTES > L1_SIZE - CLUSTER_L1_RESERVED
#error "A, B^T, bias and C do not fit in L1 next to the stacks"
#endif

/* Word arrays: the kernel reads 4 int8 values per load (no strict-aliasing games). */
static uint32_t a_l1[GEMM_M * PITCH] L1_NOINIT;
static uint32_t bt_l1[GEMM_N * PITCH] L1_NOINIT;
static int32_t bias_l1[GEMM_N] L1_NOINIT;
static int8_t c_l1[C_BYTES] __attribute__((aligned(4))) L1_BSS; /* pad bytes stay 0 */

/* acc + the dot product of the four int8 lanes of a and b. */
static inline int32_t sdot4(int32_t acc, uint32_t a, uint32_t b)
{
    __asm__("cv.sdotsp.b %0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

/* ita.golden.requant: (mult * x) >> shift rounded half up, + add, saturated to int8. */
#define RQ_SHIFT (GEMM_RQ_SHIFT > 62 ? 62 : GEMM_RQ_SHIFT) /* as the golden model caps it */

static inline int8_t requant(int32_t x)
{
#if GEMM_RQ_32BIT && GEMM_RQ_SHIFT >= 1 && GEMM_RQ_SHIFT <= 31
    /*
     * kernels.py checked |mult * x| + |add| * 2^shift + 2^(shift-1) < 2^31 for every
     * reachable x. cv.addrn computes (p + add * 2^shift + 2^(shift-1)) >>> shift, which is
     * (p >> shift) + bit shift-1 of p + add; cv.clip 8 saturates to -128 .. 127.
     */
    int32_t y = x * GEMM_RQ_MULT;
    __asm__("cv.addrn %0, %1, %2, %3"
            : "=r"(y)
            : "r"(y), "r"(GEMM_RQ_ADD * (1 << GEMM_RQ_SHIFT)), "i"(GEMM_RQ_SHIFT));
    __asm__("cv.clip %0, %1, 8" : "=r"(y) : "r"(y));
    return (int8_t)y;
#else
    int64_t y = (int64_t)x * GEMM_RQ_MULT;
#if RQ_SHIFT > 0
    y = (y >> RQ_SHIFT) + ((y >> (RQ_SHIFT - 1)) & 1);
#endif
    y += GEMM_RQ_ADD;
    return (int8_t)(y > 127 ? 127 : y < -128 ? -128 : y);
#endif
}

/*
 * Any register block, in C: rows i, i + S, .. (R of them, R <= 4; S = 1 or CORES) and
 * columns j .. j+NC-1 (NC <= 4); R, S and NC are constants after inlining. Used for the
 * remainders, and for everything when K is too large for block4x4's load offsets.
 */
static inline __attribute__((always_inline)) void block(unsigned i, unsigned S, unsigned j,
                                                        unsigned R, unsigned NC)
{
    const uint32_t *pa = &a_l1[i * PITCH];
    const uint32_t *pb = &bt_l1[j * PITCH];
    int32_t acc[4][4];
    for (unsigned c = 0; c < NC; c++) {
        int32_t bias = bias_l1[j + c];
        for (unsigned r = 0; r < R; r++)
            acc[r][c] = bias;
    }
    for (unsigned k = 0; k < KW; k++) {
        uint32_t a[4], b[4];
        for (unsigned r = 0; r < R; r++)
            a[r] = pa[r * S * PITCH + k];
        for (unsigned c = 0; c < NC; c++)
            b[c] = pb[c * PITCH + k];
        for (unsigned r = 0; r < R; r++)
            for (unsigned c = 0; c < NC; c++)
                acc[r][c] = sdot4(acc[r][c], a[r], b[c]);
    }
    for (unsigned r = 0; r < R; r++)
        for (unsigned c = 0; c < NC; c++)
            c_l1[(i + r * S) * GEMM_N + j + c] = requant(acc[r][c]);
}

/* Byte offsets (from the word after the current one) of rows 1..3 of A or B^T in a block;
 * they must fit a load's 12-bit immediate. */
#define ROW_OFF(r) (4 * (r) * PITCH - 4)
#define BLOCK4X4 (ROW_OFF(3) <= 2047)

#if BLOCK4X4
/*
 * Four int8 products of bcur (one word of B^T) with each of the four A words into one column
 * of accumulators, and the load of the next B word `next` from off(pb): issued first, it is
 * used in the next statement, four instructions later, so no load waits.
 */
#define COLUMN(c0, c1, c2, c3, bcur, next, off)                                                \
    __asm__("lw %[n], %[o](%[pb])\n\t"                                                         \
            "cv.sdotsp.b %[x0], %[a0], %[b]\n\t"                                               \
            "cv.sdotsp.b %[x1], %[a1], %[b]\n\t"                                               \
            "cv.sdotsp.b %[x2], %[a2], %[b]\n\t"                                               \
            "cv.sdotsp.b %[x3], %[a3], %[b]"                                                   \
            : [n] "=&r"(next), [x0] "+r"(c0), [x1] "+r"(c1), [x2] "+r"(c2), [x3] "+r"(c3)    \
            : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3), [b] "r"(bcur),         \
              [pb] "r"(pb), [o] "i"(off))

/*
 * The 4 x 4 register block (rows i .. i+3, columns j .. j+3) in inline assembly: per word of
 * K, 4 + 4 loads (two of them post-incrementing the row pointers) and 16 cv.sdotsp.b, 24
 * instructions for 64 multiply-accumulates, without a load-use stall; plus the loop branch.
 */
static inline __attribute__((always_inline)) void block4x4(unsigned i, unsigned j)
{
    const uint32_t *pa = &a_l1[i * PITCH];
    const uint32_t *pb = &bt_l1[j * PITCH];
    const uint32_t *end = pa + KW;
    int32_t c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
    c00 = c10 = c20 = c30 = bias_l1[j];
    c01 = c11 = c21 = c31 = bias_l1[j + 1];
    c02 = c12 = c22 = c32 = bias_l1[j + 2];
    c03 = c13 = c23 = c33 = bias_l1[j + 3];
    do {
        uint32_t a0, a1, a2, a3, b0, b1, b2, b3;
        __asm__("cv.lw %[a0], (%[pa]), 4\n\t"
                "lw %[a1], %[o1](%[pa])\n\t"
                "lw %[a2], %[o2](%[pa])\n\t"
                "lw %[a3], %[o3](%[pa])\n\t"
                "cv.lw %[b0], (%[pb]), 4"
                : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                  [b0] "=&r"(b0), [pa] "+r"(pa), [pb] "+r"(pb)
                : [o1] "i"(ROW_OFF(1)), [o2] "i"(ROW_OFF(2)), [o3] "i"(ROW_OFF(3))
                : "memory"); /* reads L1: keeps it (and the rest, through pb) after the
                                barrier that follows the copy in */
        COLUMN(c00, c10, c20, c30, b0, b1, ROW_OFF(1));
        COLUMN(c01, c11, c21, c31, b1, b2, ROW_OFF(2));
        COLUMN(c02, c12, c22, c32, b2, b3, ROW_OFF(3));
        __asm__("cv.sdotsp.b %[x0], %[a0], %[b]\n\t"
                "cv.sdotsp.b %[x1], %[a1], %[b]\n\t"
                "cv.sdotsp.b %[x2], %[a2], %[b]\n\t"
                "cv.sdotsp.b %[x3], %[a3], %[b]"
                : [x0] "+r"(c03), [x1] "+r"(c13), [x2] "+r"(c23), [x3] "+r"(c33)
                : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3), [b] "r"(b3));
    } while (pa != end);
    int8_t *out = &c_l1[i * GEMM_N + j];
    out[0] = requant(c00);
    out[1] = requant(c01);
    out[2] = requant(c02);
    out[3] = requant(c03);
    out += GEMM_N;
    out[0] = requant(c10);
    out[1] = requant(c11);
    out[2] = requant(c12);
    out[3] = requant(c13);
    out += GEMM_N;
    out[0] = requant(c20);
    out[1] = requant(c21);
    out[2] = requant(c22);
    out[3] = requant(c23);
    out += GEMM_N;
    out[0] = requant(c30);
    out[1] = requant(c31);
    out[2] = requant(c32);
    out[3] = requant(c33);
}

#endif /* BLOCK4X4 */

/*
 * Rows i, i + S, .. (R of them) against every column. The blocks of 4 columns start at block
 * `core` (mod their count) on each core, so that cores running in step load different rows
 * of B^T.
 */
static inline __attribute__((always_inline)) void row_group(unsigned i, unsigned S, unsigned R,
                                                            unsigned core)
{
    const unsigned blocks = GEMM_N / 4;
    if (blocks > 0) {
        unsigned b = core % blocks;
        for (unsigned t = 0; t < blocks; t++) {
#if BLOCK4X4
            if (R == 4 && S == 1)
                block4x4(i, 4 * b);
            else
#endif
                block(i, S, 4 * b, R, 4);
            if (++b == blocks)
                b = 0;
        }
    }
    for (unsigned j = 4 * blocks; j < GEMM_N; j++)
        block(i, S, j, R, 1);
}

/* Zero the pad bytes K .. KP of row i of A (junk from L2; B^T's pads then do not matter). */
static void zero_pad(unsigned i)
{
#if GEMM_KP != GEMM_K
    for (unsigned k = GEMM_K; k < GEMM_KP; k++)
        ((uint8_t *)a_l1)[i * PITCH * 4 + k] = 0;
#else
    (void)i;
#endif
}

/*
 * This core's rows of C. Each full round of 4 * CORES rows gives core c the 4 adjacent rows
 * from 4 * c: with the odd PITCH, the rows of the 8 cores start in 32 different banks. The
 * last M mod 32 rows are split row by row: core c takes rows c, c + CORES, .. of them.
 */
static void compute(unsigned core)
{
    const unsigned rounds = GEMM_M / (4 * CORES);
    const unsigned tail = rounds * 4 * CORES;
    unsigned rows = core < GEMM_M - tail ? (GEMM_M - tail - core + CORES - 1) / CORES : 0;
    for (unsigned g = 0; g < rounds; g++)
        for (unsigned r = 0; r < 4; r++)
            zero_pad(g * 4 * CORES + 4 * core + r);
    for (unsigned r = 0; r < rows; r++)
        zero_pad(tail + core + r * CORES);

    for (unsigned g = 0; g < rounds; g++)
        row_group(g * 4 * CORES + 4 * core, 1, 4, core);
    switch (rows) { /* R is a constant in each call */
    case 4:
        row_group(tail + core, CORES, 4, core);
        break;
    case 3:
        row_group(tail + core, CORES, 3, core);
        break;
    case 2:
        row_group(tail + core, CORES, 2, core);
        break;
    case 1:
        row_group(tail + core, CORES, 1, core);
        break;
    default:
        break;
    }
}

static uint32_t hundredths(uint32_t num, uint32_t den)
{
    return (uint32_t)(((uint64_t)num * 100u + den / 2) / den);
}

int main(unsigned core)
{
    uint32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    if (core == 0) {
        t0 = cycles();
        dma_copy_2d(a_l1, (const void *)GEMM_L2_A, GEMM_KP, GEMM_M, 4 * PITCH, GEMM_KP);
        dma_copy_2d(bt_l1, (const void *)GEMM_L2_BT, GEMM_KP, GEMM_N, 4 * PITCH, GEMM_KP);
        dma_copy_1d(bias_l1, (const void *)GEMM_L2_BIAS, sizeof bias_l1);
        dma_wait();
        t1 = cycles();
    }
    barrier();
    t2 = cycles();
    compute(core);
    barrier();
    if (core != 0)
        return 0;
    t3 = cycles();
    dma_copy_1d((void *)GEMM_L2_C, c_l1, sizeof c_l1);
    dma_wait();
    t4 = cycles();

    uint32_t kernel = t3 - t2;
    uint32_t macs = GEMM_M * GEMM_N * GEMM_K;
    uint32_t mpc = hundredths(macs, kernel);
    printf("gemm: M=%u K=%u N=%u macs=%u kernel_cycles=%u macs_per_cycle=%u.%02u "
           "dma_in_cycles=%u dma_out_cycles=%u\n",
           GEMM_M, GEMM_K, GEMM_N, (unsigned)macs, (unsigned)kernel, (unsigned)(mpc / 100),
           (unsigned)(mpc % 100), (unsigned)(t1 - t0), (unsigned)(t4 - t3));
    return 0;
}
