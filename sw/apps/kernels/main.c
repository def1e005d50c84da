/*
 * Self-checking unit tests of the encoder kernels (sw/kernels) on all cores.
 *
 * verif/cluster/kernel_tests.py generates kernel_cases.h for one run: per case the kernel,
 * its sizes and constants, the inputs and the expected output (from ita.golden) as const
 * arrays, which the program image places in L2, and where the operands go. For each case:
 * core 0 copies the inputs to their places in an L1 arena with the DMA (unless the case runs
 * on the L2 copies directly) and fills the output with a sentinel; every core calls the
 * kernel between two barriers; core 0 measures the cycles from the first barrier to the
 * kernel's return (the kernel ends in a barrier), compares every output byte and stops at
 * the first mismatch with
 *
 *     kernels: MISMATCH kernel=<name> size=<size> row=<r> col=<c> expected=<e> got=<g>
 *
 * and exit code 1. A kernel that reports a broken limit (a K_ERR_* status, kernels.h) ends the
 * program with
 *
 *     kernels: LIMIT kernel=<name> size=<size> status=<code> (<limit>)
 *
 * and exit code 3. Otherwise it prints one line per case,
 *
 *     kernels: <name> <size> cycles=<n> elements=<n> cycles_per_element=<x.xx>
 *     stats: <name>_<size>=<cycles>
 *
 * (stats lines become RESULT fields in verif/harness/run.py), and exits with 0.
 */

#include <stdint.h>

#include "kernels.h"
#include "runtime.h"

enum { K_GEMM_RQ, K_RESIDUAL_ADD, K_HEAD_SUM, K_LAYERNORM, K_ITAMAX, K_GELU, K_ADD_LAYERNORM,
       K_RMSNORM, K_ROPE, K_SILU_MUL, K_DEQUANT_ADD, K_DECOMPOSED_GEMM, K_GEMV, K_RMSNORM_WIDE,
       K_ROPE32, K_SILU_MUL_WIDE, K_DEQUANT_ADD32, K_RESIDUAL_ADD_ROWS, K_LAYER_NORM_ROWS,
       K_COL_SUMS };

typedef struct {
    const char *name;       /* kernel name */
    const char *size;       /* sizes as a word, e.g. 64x64x64 */
    int kernel;             /* K_* */
    int l2;                 /* operands and output stay in L2 */
    int dims[4];            /* per kernel, see run_case() */
    int params[8];          /* per kernel, see run_case() */
    const void *in[4];      /* inputs in L2 (NULL: none) */
    uint32_t in_bytes[4];
    uint32_t in_offset[4];  /* byte offset of each input's L1 copy in the arena */
    const uint8_t *expected;
    uint32_t out_bytes;
    uint32_t out_offset;    /* in the arena, or in out_l2 */
    int out_cols;           /* row length of the output, for the mismatch report */
    uint32_t elements;      /* for cycles per element */
} kcase_t;

#include "kernel_cases.h"

#define SENTINEL 0xA5u

static uint8_t arena[KC_ARENA_BYTES] __attribute__((aligned(4))) L1_NOINIT;
static uint8_t out_l2[KC_OUT_L2_BYTES] __attribute__((aligned(4)));

/* k_add_layernorm's per-column constants (rows up to LN_SCRATCH_COLS columns). */
#define LN_SCRATCH_COLS 512
static int32_t ln_scratch[2 * LN_SCRATCH_COLS] L1_BSS;

/* The int8 copy the wide decoder kernels write beside their checked 24-bit output. */
#define NARROW_BYTES 4096
static int8_t narrow[NARROW_BYTES] L1_BSS;
/* k_residual_add_rows' coefficients: the largest operands x columns of the run's cases
 * (KC_RA_COEF_WORDS and KC_RA_MAX_OPS, from kernel_cases.h). */
static int32_t ra_coef[KC_RA_COEF_WORDS] L1_BSS;

static void *operand(const kcase_t *kc, int i)
{
    if (!kc->in[i])
        return 0;
    return kc->l2 ? (void *)kc->in[i] : (void *)&arena[kc->in_offset[i]];
}

static uint8_t *output(const kcase_t *kc)
{
    return kc->l2 ? &out_l2[kc->out_offset] : &arena[kc->out_offset];
}

/* Core 0: `bytes` from L2 to L1, whole words by DMA when both ends are aligned (the DMA moves
 * words only), the rest byte by byte. */
static void copy_in(uint8_t *dst, const uint8_t *src, uint32_t bytes)
{
    uint32_t words = 0;
    if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0) {
        words = bytes & ~3u;
        if (words && dma_copy_1d(dst, src, words) != 0) {
            printf("kernels: DMA refused a copy of %u bytes\n", (unsigned)words);
            exit(2);
        }
    }
    for (uint32_t i = words; i < bytes; i++)
        dst[i] = src[i];
}

/* Core 0: inputs to L1, sentinel into the output. */
static void stage(const kcase_t *kc)
{
    if (!kc->l2)
        for (int i = 0; i < 4; i++)
            if (kc->in[i])
                copy_in(&arena[kc->in_offset[i]], kc->in[i], kc->in_bytes[i]);
    uint8_t *out = output(kc);
    for (uint32_t i = 0; i < kc->out_bytes; i++)
        out[i] = SENTINEL;
    dma_wait();
}

/* Every core: the kernel's status (the same on all of them). */
static int run_case(const kcase_t *kc)
{
    const int *d = kc->dims, *p = kc->params;
    switch (kc->kernel) {
    case K_GEMM_RQ: /* m, k, n; mult, shift, add; a, bt, bias (or none) */
        return k_gemm_rq(operand(kc, 0), operand(kc, 1), operand(kc, 2), (int8_t *)output(kc),
                         d[0], d[1], d[2], p[0], p[1], p[2]);
    case K_RESIDUAL_ADD: /* count; mult_x, mult_y, shift, add; x, y */
        return k_residual_add(operand(kc, 0), operand(kc, 1), (int8_t *)output(kc), d[0], p[0],
                              p[1], p[2], p[3]);
    case K_HEAD_SUM: /* heads, head_stride, count; mult, shift, add; heads */
        return k_head_sum(operand(kc, 0), d[0], d[1], d[2], (int8_t *)output(kc), p[0], p[1],
                          p[2]);
    case K_LAYERNORM: /* rows, cols; mult, shift, add; x, gamma, beta */
        return k_layernorm(operand(kc, 0), (int8_t *)output(kc), d[0], d[1], operand(kc, 1),
                           operand(kc, 2), p[0], p[1], p[2]);
    case K_ITAMAX: /* rows, cols, valid_cols, causal; logit_frac; a */
        return k_itamax(operand(kc, 0), output(kc), d[0], d[1], d[2], d[3], p[0]);
    case K_GELU: /* count; b, c, mult, shift, add; x */
        return k_gelu(operand(kc, 0), (int8_t *)output(kc), d[0], p[0], p[1], p[2], p[3], p[4]);
    case K_ADD_LAYERNORM: /* rows, cols; x, y rq (4), LayerNorm rq (3); x, y, gamma, beta;
                             the output holds the sum's rows, then the LayerNorm's */
        return k_add_layernorm(operand(kc, 0), operand(kc, 1), (int8_t *)output(kc),
                               (int8_t *)output(kc) + d[0] * d[1], d[0], d[1], p[0], p[1], p[2],
                               p[3], operand(kc, 2), operand(kc, 3), p[4], p[5], p[6],
                               d[1] <= LN_SCRATCH_COLS ? ln_scratch : 0);
    case K_RMSNORM: /* rows, cols; eps (low word, high word); x, consts */
        return k_rmsnorm(operand(kc, 0), (int8_t *)output(kc), d[0], d[1], d[1], operand(kc, 1),
                         (int64_t)((uint64_t)(uint32_t)p[0] | (uint64_t)(uint32_t)p[1] << 32));
    case K_ROPE: /* rows, dim; x, consts, cos, sin */
        return k_rope(operand(kc, 0), d[1], (int8_t *)output(kc), d[1], d[0], d[1],
                      operand(kc, 1), operand(kc, 2), operand(kc, 3));
    case K_SILU_MUL: /* rows, cols; gate, up, consts, table */
        return k_silu_mul(operand(kc, 0), operand(kc, 1), d[1], (int8_t *)output(kc), d[1], d[0],
                          d[1], operand(kc, 2), operand(kc, 3));
    case K_DEQUANT_ADD: /* rows, cols; residual, y, consts; int32 output */
        return k_dequant_add(operand(kc, 0), operand(kc, 1), d[1], (int32_t *)output(kc), d[0],
                             d[1], operand(kc, 2));
    case K_DECOMPOSED_GEMM: /* rows, k, n; mult, shift; x, w, wf, y8; int32 output */
        return k_decomposed_gemm(operand(kc, 0), d[1], operand(kc, 1), operand(kc, 2),
                                 operand(kc, 3), d[2], (int32_t *)output(kc), d[0], d[2], p[0],
                                 p[1]);
    case K_GEMV: /* k, n, unsigned; mult, shift, add; a, bt */
        return d[2] ? k_gemv_u8(operand(kc, 0), operand(kc, 1), d[0], (int8_t *)output(kc),
                                d[0], d[1], p[0], p[1], p[2])
                    : k_gemv(operand(kc, 0), operand(kc, 1), d[0], (int8_t *)output(kc), d[0],
                             d[1], p[0], p[1], p[2]);
    case K_RMSNORM_WIDE: /* rows, cols; eps (low word, high word); x, consts; int32 output */
        if (d[0] * d[1] > NARROW_BYTES)
            return -1;
        return k_rmsnorm_wide(operand(kc, 0), narrow, d[1], (int32_t *)output(kc), d[0], d[1],
                              operand(kc, 1),
                              (int64_t)((uint64_t)(uint32_t)p[0] | (uint64_t)(uint32_t)p[1] << 32));
    case K_ROPE32: /* rows, dim; int32 x, consts, cos, sin */
        return k_rope32(operand(kc, 0), d[1], (int8_t *)output(kc), d[1], d[0], d[1],
                        operand(kc, 1), operand(kc, 2), operand(kc, 3));
    case K_SILU_MUL_WIDE: /* rows, cols; int32 gate, up, consts, table; int32 output */
        if (d[0] * d[1] > NARROW_BYTES)
            return -1;
        return k_silu_mul_wide(operand(kc, 0), operand(kc, 1), d[1], narrow, d[1],
                               (int32_t *)output(kc), d[0], d[1], operand(kc, 2),
                               operand(kc, 3));
    case K_DEQUANT_ADD32: /* rows, cols; residual, int32 y, consts; int32 output */
        return k_dequant_add32(operand(kc, 0), operand(kc, 1), d[1], (int32_t *)output(kc),
                               d[0], d[1], operand(kc, 2));
    case K_RESIDUAL_ADD_ROWS: { /* n, rows, cols; operands (n stacked), consts; int16 out */
        const int8_t *ops[KC_RA_MAX_OPS];
        const int n = d[0] < KC_RA_MAX_OPS ? d[0] : KC_RA_MAX_OPS;
        for (int i = 0; i < n; i++)
            ops[i] = (const int8_t *)operand(kc, 0) + i * d[1] * d[2];
        return k_residual_add_rows(ops, d[0], (int16_t *)output(kc), d[1], d[2], operand(kc, 1),
                                   ra_coef);
    }
    case K_LAYER_NORM_ROWS: /* rows, cols; mult, shift, add; x (int16), gamma, beta */
        return k_layer_norm_rows(operand(kc, 0), (int8_t *)output(kc), d[0], d[1],
                                 operand(kc, 1), operand(kc, 2), p[0], p[1], p[2],
                                 d[1] <= LN_SCRATCH_COLS ? ln_scratch : 0);
    case K_COL_SUMS: /* rows, cols; x; int32 output */
        return k_col_sums(operand(kc, 0), d[0], d[1], d[1], (int32_t *)output(kc));
    default:
        return K_OK;
    }
}

/* Bytes per output element: int32 for the residual stream and the column sums, int16 for
 * the wide residual rows, else one. */
static uint32_t out_width(const kcase_t *kc)
{
    return kc->kernel == K_DEQUANT_ADD || kc->kernel == K_DECOMPOSED_GEMM
                   || kc->kernel == K_RMSNORM_WIDE || kc->kernel == K_SILU_MUL_WIDE
                   || kc->kernel == K_DEQUANT_ADD32
               ? 4u
               : 1u;
    if (kc->kernel == K_DEQUANT_ADD || kc->kernel == K_DECOMPOSED_GEMM || kc->kernel == K_COL_SUMS)
        return 4u;
    return kc->kernel == K_RESIDUAL_ADD_ROWS ? 2u : 1u;
}

/* Output element i as a signed (or, for ITAmax, unsigned) integer. */
static int32_t element(const kcase_t *kc, const uint8_t *bytes, uint32_t i)
{
    if (out_width(kc) == 4)
        return (int32_t)(bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8
                         | (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24);
    if (out_width(kc) == 2)
        return (int16_t)(bytes[2 * i] | (uint32_t)bytes[2 * i + 1] << 8);
    return kc->kernel == K_ITAMAX ? bytes[i] : (int8_t)bytes[i];
}

/* Core 0: 0 if the output equals the expected bytes, else report the first difference. */
static int check(const kcase_t *kc)
{
    const uint8_t *out = output(kc);
    for (uint32_t i = 0; i < kc->out_bytes / out_width(kc); i++) {
        int32_t want = element(kc, kc->expected, i), got = element(kc, out, i);
        if (got != want) {
            int row = (int)(i / (uint32_t)kc->out_cols), col = (int)(i % (uint32_t)kc->out_cols);
            printf("kernels: MISMATCH kernel=%s size=%s row=%d col=%d expected=%d got=%d\n",
                   kc->name, kc->size, row, col, (int)want, (int)got);
            return 1;
        }
    }
    return 0;
}

int main(unsigned core)
{
    for (int c = 0; c < KC_COUNT; c++) {
        const kcase_t *kc = &KC_CASES[c];
        if (core == 0)
            stage(kc);
        barrier();
        uint32_t t0 = cycles();
        const int status = run_case(kc);
        uint32_t spent = cycles() - t0;
        if (status) {
            if (core == 0)
                printf("kernels: LIMIT kernel=%s size=%s status=%d (%s)\n", kc->name, kc->size,
                       status, k_status_text(status));
            return 3;
        }
        if (core != 0)
            continue;
        if (check(kc))
            return 1;
        uint32_t cpe = (uint32_t)(((uint64_t)spent * 100u + kc->elements / 2) / kc->elements);
        printf("kernels: %s %s cycles=%u elements=%u cycles_per_element=%u.%02u\n", kc->name,
               kc->size, (unsigned)spent, (unsigned)kc->elements, (unsigned)(cpe / 100),
               (unsigned)(cpe % 100));
        printf("stats: %s_%s=%u\n", kc->name, kc->size, (unsigned)spent);
    }
    return 0;
}
