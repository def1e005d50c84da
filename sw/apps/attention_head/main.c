/*
 * Multi-head attention on the cluster: the ITA computes every head, the cores sum the heads.
 *
 * The testbench places the inputs in L2 and describes them in attention_data.h (generated
 * for each run by verif/cluster/attention.py). The program is a pipeline that keeps the
 * engine busy from the first job to the last:
 *
 *   - q_in and kv_in are moved to L1 once and stay there for every head;
 *   - a head's weights and biases come in one DMA transfer into one of two buffers, the
 *     next head's while the engine runs the current one;
 *   - the HWPE holds two jobs, so head h + 1 is submitted while head h runs and starts the
 *     cycle head h ends;
 *   - while the engine computes head h + 1, the 8 cores add head h's output to a running
 *     sum in L1 and the DMA copies it to L2 (where the testbench checks it);
 *   - after the last head the cores add it and requantize the sum through a table, exactly
 *     as ita.golden.multi_head_attention does (int8 heads summed, one requantization).
 *
 * Core 0 drives the DMA and the ITA; every core sums. stats: reports the program's cycles
 * from main to the end (total_cycles), the engine's busy time as core 0 sees it (ita_cycles:
 * from the later of a job's submission and the previous job's end, to its end), the time
 * until the first job could start (load_cycles) and the time after the last job ended
 * (tail_cycles).
 */

#include <stdint.h>

#include "attention_data.h"
#include "ita.h"
#include "runtime.h"

#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGNED __attribute__((aligned(128))) L1_NOINIT

/*
 * Working set in L1, row-major and padded to ITA_M tiles.
 *
 * Inside one job two pairs of tensors share memory; both follow from the order of the
 * engine's input stream (ita.rtl.schedule), in which a step's output is written only after
 * the step has read its inputs:
 *   - `o` reuses `qp`: step AV of row tile i writes rows i of o after step QK of row tile i
 *     has read rows i of qp, the only reader of those rows (QK of tile i + 1 reads rows
 *     i + 1, which o reaches only later);
 *   - the logits `a` and the output `out` share a buffer: step OW writes out after the last
 *     AV step has read a.
 * Head h uses out buffer h % 2 and weight buffer h % 2; the other ones belong to head h - 1
 * (being summed and copied) or h + 1 (being loaded).
 */
#define OUT_BYTES MAX(ATT_SP * ATT_EP, ATT_SP * ATT_SP)

static int8_t q_in[ATT_SP * ATT_EP] ALIGNED;
static int8_t kv_in[ATT_SP * ATT_EP] ALIGNED;
static int8_t weights[2][ATT_W_BYTES] ALIGNED;
static int8_t qp_o[ATT_SP * ATT_PP] ALIGNED;
static int8_t kp[ATT_SP * ATT_PP] ALIGNED;
static int8_t vp_t[ATT_PP * ATT_SP] ALIGNED;
static int8_t out[2][OUT_BYTES] ALIGNED;

/*
 * The head sum, in the cores' SIMD lanes. A word of a head's output holds 4 int8 values;
 * the sum keeps two words per output word, the 16-bit sums of the even bytes (0 and 2) and
 * of the odd bytes (1 and 3), each started at 128 H. After all H heads a lane holds
 * i = sum + 128 H, 0 .. 255 H: the index of that sum in the requantization table.
 */
#define WORDS (ATT_S * ATT_EP / 4) /* output words of the valid rows */
#if ATT_H > 2
static uint32_t head_sum[2 * WORDS] ALIGNED;
#endif

/* rq_table[i] = requant(i - 128 H), i = 0 .. 255 H. */
#define TABLE (255 * ATT_H + 1)
#define LANE_BIAS ((128u * ATT_H) * 0x00010001u)
static uint8_t rq_table[TABLE] __attribute__((aligned(4))) L1_NOINIT;

/* ita.golden.requant for |mult * x| < 2^30: with that, a shift above 31 gives what 31 gives
 * (0 or -1, and the same first dropped bit), so 32 bits are exact. */
static int8_t requant(int32_t x, uint32_t mult, uint32_t shift, int32_t add)
{
    int32_t product = (int32_t)mult * x;
    int32_t y = product;
    if (shift > 31) {
        shift = 31;
    }
    if (shift > 0) {
        y = (product >> shift) + ((product >> (shift - 1)) & 1);
    }
    y += add;
    return (int8_t)(y > 127 ? 127 : y < -128 ? -128 : y);
}

_Static_assert(128 * 8 * 255 < (1 << 30), "requant: the head sum times mult must fit 32 bits");
_Static_assert(ATT_H <= 8, "16-bit lanes hold the biased sum of at most 8 heads (255 * 8)");

static void build_table(unsigned core)
{
    for (unsigned i = core; i < TABLE; i += num_cores()) {
        rq_table[i] = (uint8_t)requant((int32_t)i - 128 * (int32_t)ATT_H, ATT_RQ_SUM_MULT,
                                       ATT_RQ_SUM_SHIFT, ATT_RQ_SUM_ADD);
    }
}

/* This core's words [*lo, *hi) of the WORDS output words. */
static void span(unsigned core, unsigned *lo, unsigned *hi)
{
    unsigned per = (WORDS + num_cores() - 1) / num_cores();
    *lo = core * per < WORDS ? core * per : WORDS;
    *hi = *lo + per < WORDS ? *lo + per : WORDS;
}

/* CORE-V SIMD (xcvsimd) and register-offset loads (xcvmem), one instruction each. */
static inline uint32_t sra8_h(uint32_t x) /* both halfwords >> 8, arithmetic */
{
    uint32_t y;
    __asm__("cv.sra.sci.h %0, %1, 8" : "=r"(y) : "r"(x));
    return y;
}

static inline uint32_t add_h(uint32_t a, uint32_t b) /* halfword-wise a + b */
{
    uint32_t y;
    __asm__("cv.add.h %0, %1, %2" : "=r"(y) : "r"(a), "r"(b));
    return y;
}

static inline uint32_t half(uint32_t x, unsigned which) /* halfword `which`, zero-extended */
{
    uint32_t y;
    if (which)
        __asm__("cv.extractu.h %0, %1, 1" : "=r"(y) : "r"(x));
    else
        __asm__("cv.extractu.h %0, %1, 0" : "=r"(y) : "r"(x));
    return y;
}

static inline uint32_t lookup(const uint8_t *table, uint32_t index) /* table[index] */
{
    uint32_t y;
    __asm__("cv.lbu %0, %1(%2)" : "=r"(y) : "r"(index), "r"(table));
    return y;
}

/* The even bytes and the odd bytes of an output word, sign-extended into 16-bit lanes. */
static inline uint32_t even_lanes(uint32_t w)
{
    return sra8_h(w << 8);
}

static inline uint32_t odd_lanes(uint32_t w)
{
    return sra8_h(w);
}

#if ATT_H > 2
/* Start (first head) or extend the head sum with one head's output. */
static void accumulate(unsigned core, const int8_t *head, int first)
{
    unsigned lo, hi;
    span(core, &lo, &hi);
    const uint32_t *x = (const uint32_t *)head + lo, *end = (const uint32_t *)head + hi;
    uint32_t *sum = head_sum + 2 * lo;
    if (first) {
        const uint32_t bias = LANE_BIAS;
#pragma clang loop unroll_count(4)
        for (; x < end; x++, sum += 2) {
            uint32_t w = *x;
            sum[0] = add_h(even_lanes(w), bias);
            sum[1] = add_h(odd_lanes(w), bias);
        }
    } else {
#pragma clang loop unroll_count(4)
        for (; x < end; x++, sum += 2) {
            uint32_t w = *x;
            sum[0] = add_h(sum[0], even_lanes(w));
            sum[1] = add_h(sum[1], odd_lanes(w));
        }
    }
}
#endif

/* Four requantized sums from the table indices in the even and odd lanes, as one word. */
static inline uint32_t requant_word(uint32_t even, uint32_t odd)
{
    uint32_t y0 = lookup(rq_table, half(even, 0)), y1 = lookup(rq_table, half(odd, 0));
    uint32_t y2 = lookup(rq_table, half(even, 1)), y3 = lookup(rq_table, half(odd, 1));
    __asm__("cv.packlo.b %0, %1, %2" : "+r"(y0) : "r"(y1), "r"(y0));
    __asm__("cv.packhi.b %0, %1, %2" : "+r"(y0) : "r"(y3), "r"(y2));
    return y0;
}

/* Add the last head and requantize, into `dst` (the sum's rows padded to ATT_EP). */
static void finish(unsigned core, const int8_t *last, int8_t *dst)
{
    unsigned lo, hi;
    span(core, &lo, &hi);
    const uint32_t *x = (const uint32_t *)last + lo, *end = (const uint32_t *)last + hi;
    uint32_t *y = (uint32_t *)dst + lo;
#if ATT_H > 2
    const uint32_t *sum = head_sum + 2 * lo;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++, sum += 2) {
        uint32_t w = *x;
        *y = requant_word(add_h(sum[0], even_lanes(w)), add_h(sum[1], odd_lanes(w)));
    }
#elif ATT_H == 2
    const uint32_t bias = LANE_BIAS;
    const uint32_t *first = (const uint32_t *)out[0] + lo;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++, first++) {
        uint32_t w = *x, v = *first;
        *y = requant_word(add_h(add_h(even_lanes(v), bias), even_lanes(w)),
                          add_h(add_h(odd_lanes(v), bias), odd_lanes(w)));
    }
#else
    const uint32_t bias = LANE_BIAS;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++) {
        uint32_t w = *x;
        *y = requant_word(add_h(even_lanes(w), bias), add_h(odd_lanes(w), bias));
    }
#endif
}

/* Sleep until at most `left` DMA transfers are queued or running. Only core 0 uses the DMA
 * and it runs transfers in order, so this waits for all but the last `left` queued. */
static void dma_wait_left(uint32_t left)
{
    for (;;) {
        rt_write32(EVENT_UNIT_EVT_MASK_ADDR, EVENT_DMA_MASK);
        if ((rt_read32(DMA_STATUS_ADDR) & DMA_STATUS_BUSY_MASK) >> DMA_STATUS_BUSY_LSB <= left)
            return;
        (void)rt_read32(EVENT_UNIT_EVT_WAIT_ADDR);
    }
}

static void load_weights(unsigned head)
{
    dma_copy_1d(weights[head % 2], (const void *)att_l2_wq[head], ATT_W_BYTES);
}

static uint32_t submit(unsigned head)
{
    const int8_t *w = weights[head % 2];
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
        [ITA_PTR_Q_IN] = q_in,          [ITA_PTR_KV_IN] = kv_in,
        [ITA_PTR_WQ] = w + ATT_W_WQ,    [ITA_PTR_WK] = w + ATT_W_WK,
        [ITA_PTR_WV] = w + ATT_W_WV,    [ITA_PTR_WO] = w + ATT_W_WO,
        [ITA_PTR_BQ] = w + ATT_W_BQ,    [ITA_PTR_BK] = w + ATT_W_BK,
        [ITA_PTR_BV] = w + ATT_W_BV,    [ITA_PTR_BO] = w + ATT_W_BO,
        [ITA_PTR_QP] = qp_o,            [ITA_PTR_KP] = kp,
        [ITA_PTR_VP] = vp_t,            [ITA_PTR_A] = out[head % 2],
        [ITA_PTR_O] = qp_o,             [ITA_PTR_OUT] = out[head % 2],
    };
    for (unsigned p = 0; p < ITA_PTRS; p++) {
        job.pointer[p] = pointers[p];
    }
    return ita_submit(&job);
}

/* Copy the requantized sum (rows padded to ATT_EP in L1) to L2 as S x E bytes. */
static void store_sum(const int8_t *sum)
{
#if ATT_E == ATT_EP
    dma_copy_1d((void *)ATT_L2_OUT_SUM, sum, ATT_S * ATT_E);
#elif ATT_E % 4 == 0
    dma_copy_2d((void *)ATT_L2_OUT_SUM, sum, ATT_E, ATT_S, ATT_E, ATT_EP);
#else
    /* Rows of E bytes are not word-aligned in L2: pack them in L1 first (E < EP, so
     * moving every byte down in increasing order never overwrites one not yet moved). */
    int8_t *packed = (int8_t *)sum;
    for (unsigned row = 0; row < ATT_S; row++)
        for (unsigned col = 0; col < ATT_E; col++)
            packed[row * ATT_E + col] = sum[row * ATT_EP + col];
    dma_copy_1d((void *)ATT_L2_OUT_SUM, packed, ATT_OUT_SUM_BYTES);
#endif
}

int main(unsigned core)
{
    uint32_t start = cycles(), busy = 0, loaded = 0, last_end = 0;
    uint32_t ticket[ATT_H], submitted[ATT_H];
    int failed = 0;
    if (core == 0) {
        dma_copy_1d(q_in, (const void *)ATT_L2_Q_IN, sizeof q_in);
        dma_copy_1d(kv_in, (const void *)ATT_L2_KV_IN, sizeof kv_in);
        load_weights(0);
        if (ATT_H > 1)
            load_weights(1);
    }
    build_table(core);
    if (core == 0) {
        /* Head 0 needs the first three transfers, head 1 the fourth. */
        dma_wait_left(ATT_H > 1 ? 1 : 0);
        loaded = cycles() - start;
        submitted[0] = cycles();
        ticket[0] = submit(0);
        if (ATT_H > 1) {
            dma_wait_left(0);
            submitted[1] = cycles();
            ticket[1] = submit(1);
        }
    }
    for (unsigned head = 0; head < ATT_H; head++) {
        const int8_t *result = out[head % 2];
        if (core == 0) {
            uint32_t error = ita_wait_job(ticket[head]);
            uint32_t end = cycles(), begin = MAX(submitted[head], last_end);
            busy += end - begin;
            last_end = end;
            if (error != 0) {
                printf("head %u: ITA error %x\n", head, (unsigned)error);
                failed = 1;
            }
            /* Head h's weight buffer is free now: load head h + 2's into it. */
            if (head + 2 < ATT_H)
                load_weights(head + 2);
            dma_copy_1d((void *)att_l2_out[head], result, ATT_SP * ATT_EP);
            if (head == ATT_H - 1) {
                /* The sum goes to out buffer H % 2: its copy (head H - 2) must be done. */
                dma_wait_left(1);
            }
        }
        barrier(); /* head h's output is complete */
        if (head < ATT_H - 1) {
#if ATT_H > 2
            accumulate(core, result, head == 0);
#endif
        } else {
            finish(core, result, out[ATT_H % 2]);
        }
        barrier(); /* head h's output is summed */
        if (core == 0 && head + 2 < ATT_H) {
            /* Head h + 2 reuses head h's buffers: its weights have landed, its out buffer
             * (h % 2) is summed and copied. Head h + 1 is running: h + 2 follows it. */
            dma_wait_left(0);
            submitted[head + 2] = cycles();
            ticket[head + 2] = submit(head + 2);
        }
    }
    if (core == 0) {
        store_sum(out[ATT_H % 2]);
        dma_wait_left(0);
        uint32_t now = cycles();
        printf("stats: total_cycles=%u ita_cycles=%u load_cycles=%u tail_cycles=%u\n",
               (unsigned)(now - start), (unsigned)busy, (unsigned)loaded,
               (unsigned)(now - last_end));
    }
    barrier();
    return failed;
}
