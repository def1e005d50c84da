/*
 * Multi-head attention on the cluster: the ITA computes every head, the cores sum the heads.
 *
 * The testbench places the inputs in L2 and describes them in attention_data.h (generated
 * for each run by verif/cluster/attention.py). Core 0 copies the shared inputs and, head by
 * head, the weights to L1 with the DMA, programs one ITA job per head and sleeps until the
 * engine's event; meanwhile the other cores sleep in the barrier. After each head all cores
 * add its output to an int32 sum (rows split over the cores); at the end they requantize
 * the sum with the head-sum constants, exactly as ita.golden.multi_head_attention does.
 * Every head's output and the requantized sum are copied back to L2, where the testbench
 * compares them with the golden model.
 */

#include <stdint.h>

#include "attention_data.h"
#include "ita.h"
#include "runtime.h"

/*
 * Working set in L1, row-major and padded to ITA_M tiles. Tensors whose lifetimes inside
 * one ITA job do not overlap share memory, so that S=128, E=128, P=64 fits in L1:
 * the logits `a` (written from step QK on) reuse q_in (last read in step Q), the head output
 * `out` (step OW) reuses kv_in (last read in step V), `o` (step AV) reuses wq_t (step Q), and
 * the cores' requantized head sum reuses region A after the last job. q_in is reloaded for
 * every head for the same reason.
 */
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGNED __attribute__((aligned(128))) L1_NOINIT

static int8_t region_a[MAX(MAX(ATT_SP * ATT_EP, ATT_SP * ATT_SP), ATT_OUT_SUM_BYTES)] ALIGNED;
static int8_t region_b[ATT_SP * ATT_EP] ALIGNED;
static int8_t region_c[MAX(ATT_PP * ATT_EP, ATT_SP * ATT_PP)] ALIGNED;
static int8_t wk_t[ATT_PP * ATT_EP] ALIGNED;
static int8_t wv_t[ATT_PP * ATT_EP] ALIGNED;
static int8_t wo_t[ATT_EP * ATT_PP] ALIGNED;
static int32_t bq[ATT_PP] ALIGNED;
static int32_t bk[ATT_PP] ALIGNED;
static int32_t bv[ATT_PP] ALIGNED;
static int32_t bo[ATT_EP] ALIGNED;
static int8_t qp[ATT_SP * ATT_PP] ALIGNED;
static int8_t kp[ATT_SP * ATT_PP] ALIGNED;
static int8_t vp_t[ATT_PP * ATT_SP] ALIGNED;

#define q_in region_a
#define logits region_a
#define out_sum region_a
#define kv_in region_b
#define out region_b
#define wq_t region_c
#define o region_c

/* Sums of the heads before the last one (int16 holds up to 256 int8 heads), in L2. */
#define HEAD_SUM ((int16_t *)ATT_L2_HEAD_SUM)

/* ita.golden.requant: round half up after the shift, then add and saturate. */
static int8_t requant(int32_t x, uint32_t mult, uint32_t shift, int32_t add)
{
    int64_t product = (int64_t)mult * x;
    int64_t y = product;
    if (shift > 62) {
        shift = 62;
    }
    if (shift > 0) {
        y = (product >> shift) + ((product >> (shift - 1)) & 1);
    }
    y += add;
    return (int8_t)(y > 127 ? 127 : y < -128 ? -128 : y);
}

static void copy_in(void *dst, uint32_t l2_address, uint32_t bytes)
{
    dma_copy_1d(dst, (const void *)l2_address, bytes);
}

static void load_head(unsigned head)
{
    copy_in(q_in, ATT_L2_Q_IN, ATT_SP * ATT_EP);
    copy_in(wq_t, att_l2_wq[head], ATT_PP * ATT_EP);
    copy_in(wk_t, att_l2_wk[head], sizeof wk_t);
    copy_in(wv_t, att_l2_wv[head], sizeof wv_t);
    copy_in(wo_t, att_l2_wo[head], sizeof wo_t);
    copy_in(bq, att_l2_bq[head], sizeof bq);
    copy_in(bk, att_l2_bk[head], sizeof bk);
    copy_in(bv, att_l2_bv[head], sizeof bv);
    copy_in(bo, att_l2_bo[head], sizeof bo);
    dma_wait();
}

static uint32_t run_head(unsigned head)
{
    ita_job_t job = {0};
    job.config.mode = ITA_MODE_ATTENTION;
    job.config.bias_enable = ATT_BIAS;
    job.config.causal = ATT_CAUSAL;
    job.config.seq_len = ATT_S;
    job.config.embed = ATT_E;
    job.config.proj = ATT_P;
    job.config.valid_keys = ATT_VALID_KEYS;
    for (unsigned step = 0; step < ITA_STEPS; step++) {
        job.config.requant[step].mult = att_requant[head][step][0];
        job.config.requant[step].shift = att_requant[head][step][1];
        job.config.requant[step].add = att_requant[head][step][2];
    }
    const void *pointers[ITA_PTRS] = {
        [ITA_PTR_Q_IN] = q_in, [ITA_PTR_KV_IN] = kv_in, [ITA_PTR_WQ] = wq_t,
        [ITA_PTR_WK] = wk_t,   [ITA_PTR_WV] = wv_t,     [ITA_PTR_WO] = wo_t,
        [ITA_PTR_BQ] = bq,     [ITA_PTR_BK] = bk,       [ITA_PTR_BV] = bv,
        [ITA_PTR_BO] = bo,     [ITA_PTR_QP] = qp,       [ITA_PTR_KP] = kp,
        [ITA_PTR_VP] = vp_t,   [ITA_PTR_A] = logits,    [ITA_PTR_O] = o,
        [ITA_PTR_OUT] = out,
    };
    for (unsigned p = 0; p < ITA_PTRS; p++) {
        job.pointer[p] = pointers[p];
    }
    return ita_run(&job);
}

/*
 * Rows split over the cores: add this head's output to the sum of the earlier heads; after
 * the last head, requantize the total into out_sum (S x E) instead of storing it.
 */
static void accumulate(unsigned core, unsigned head)
{
    int last = head == ATT_H - 1;
    for (unsigned row = core; row < ATT_S; row += num_cores()) {
        for (unsigned col = 0; col < ATT_E; col++) {
            int32_t total = out[row * ATT_EP + col];
            if (head > 0) {
                total += HEAD_SUM[row * ATT_E + col];
            }
            if (last) {
                out_sum[row * ATT_E + col] =
                    requant(total, ATT_RQ_SUM_MULT, ATT_RQ_SUM_SHIFT, ATT_RQ_SUM_ADD);
            } else {
                HEAD_SUM[row * ATT_E + col] = (int16_t)total;
            }
        }
    }
}

int main(unsigned core)
{
    uint32_t start = cycles(), ita_cycles = 0;
    int failed = 0;
    for (unsigned head = 0; head < ATT_H; head++) {
        if (core == 0) {
            copy_in(kv_in, ATT_L2_KV_IN, ATT_SP * ATT_EP);
            load_head(head);
            uint32_t t0 = cycles();
            uint32_t error = run_head(head);
            ita_cycles += cycles() - t0;
            if (error != 0) {
                printf("head %u: ITA error %x\n", head, (unsigned)error);
                failed = 1;
            }
            dma_copy_1d((void *)att_l2_out[head], out, ATT_SP * ATT_EP);
        }
        barrier();
        accumulate(core, head);
        barrier();
        if (core == 0) {
            dma_wait(); /* `out` is reused by the next head */
        }
    }
    if (core == 0) {
        dma_copy_1d((void *)ATT_L2_OUT_SUM, out_sum, ATT_OUT_SUM_BYTES);
        dma_wait();
        printf("attention: S=%u E=%u P=%u H=%u\n", ATT_S, ATT_E, ATT_P, ATT_H);
        printf("stats: total_cycles=%u ita_cycles=%u\n", (unsigned)(cycles() - start),
               (unsigned)ita_cycles);
    }
    barrier();
    return failed;
}
