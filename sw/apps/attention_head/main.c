/*
 * Multi-head attention on the cluster: the ITA computes every head, the cores sum the heads.
 *
 * The testbench places the inputs in L2 and describes them in attention_data.h (generated
 * for each run by verif/cluster/attention.py). The program is a pipeline that keeps the
 * engine busy from the first job to the last:
 *
 *   - q_in and kv_in are moved to L1 once and stay there for every head (with head 0's
 *     weights, by the DMA and, for the last eighth, by the cores);
 *   - a head's weights and biases come in one DMA transfer into one of two buffers, the
 *     next-but-one head's while the engine runs the next one;
 *   - the HWPE holds two jobs, so head h + 1 is always submitted while head h runs and
 *     starts the cycle head h ends;
 *   - the DMA copies each finished head to L2 (where the testbench checks it);
 *   - the heads are summed and the sum requantized exactly as
 *     ita.golden.multi_head_attention does (int8 heads summed, one requantization): with
 *     three or more heads by one more engine job (ENGINE_SUM, below) when L1 holds it,
 *     else by the 8 cores, which add each finished head to a running sum in L1 (SIMD,
 *     16-bit lanes) while the engine computes the following ones.
 *
 * Loads and stores by the cores slow the engine much more than the DMA's beats do (its
 * wide port needs every L1 bank), so beside a job the cores do as little as they can: with
 * the sum on the cores, heads 0 and 1 are added in one pass, no pass runs beside the first
 * two jobs, and the last pass reads the sum once.
 *
 * Core 0 drives the DMA and the ITA. stats: reports the program's cycles from main to the
 * end (total_cycles), the heads' jobs as core 0 sees them (ita_cycles: from the later of a
 * job's submission and the previous job's end, to its end), the time until the first job
 * could start (load_cycles), the time after the last head's job ended (tail_cycles) and,
 * with ENGINE_SUM, the sum's jobs and stores (sum_job_cycles).
 */

#include <stdint.h>

#include "attention_data.h"
#include "ita.h"
#include "k_common.h"
#include "runtime.h"

#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
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
 * Head h uses weight buffer h % W_BUFS and out buffer h % OUTS. With the sum on the cores
 * and three or more heads there are three out buffers, because heads 0 and 1 are summed
 * together while head 2 runs.
 */
#define OUT_BYTES MAX(ATT_SP * ATT_EP, ATT_SP * ATT_SP)

/*
 * With three or more heads the sum runs on the engine when L1 holds it: one linear job
 * y = requant(X @ I^T) with the sum's constants, where row r of X is the r-th 64-byte chunk
 * of every head's output side by side (H * 64 bytes; the DMA re-lays each head out) and I
 * is H identity matrices side by side, so that row r of y is the requantized sum of those
 * chunks: y is the sum, rows padded to EP. The engine's accumulator sums exactly and its
 * requantizer is ita.golden.requant, so this is multi_head_attention's sum bit for bit, at
 * S * E * H * 64 MACs instead of the cores' passes beside the engine.
 */
#define SUM_ROWS (ATT_S * ATT_EP / ITA_M)
#define SUM_ROWS_P ((SUM_ROWS + ITA_M - 1) / ITA_M * ITA_M)
#define SUM_INNER (ATT_H * ITA_M)
#define L1_ARENA (L1_SIZE - CLUSTER_CORES * CLUSTER_STACK_SIZE - 1024) /* 1 KiB: runtime */
#define COMMON_BYTES (2 * ATT_SP * ATT_EP + 2 * ATT_W_BYTES + 3 * ATT_SP * ATT_PP)
#define ENGINE_SUM (ATT_H > 2 && COMMON_BYTES + 2 * OUT_BYTES + SUM_ROWS_P * SUM_INNER + \
                                     ITA_M * SUM_INNER <= L1_ARENA)
#define OUTS (ATT_H > 2 && !ENGINE_SUM ? 3 : 2)

/*
 * Two weight buffers when L1 holds them (head h + 2's loads while h + 1 runs, and h + 1
 * waits in the HWPE's second context); else one, and head h + 1 is loaded and submitted
 * once head h has ended (the engine then waits for each load).
 */
#define CORES_BYTES(w_bufs) (2 * ATT_SP * ATT_EP + (w_bufs) * ATT_W_BYTES + 3 * ATT_SP * ATT_PP + \
                             OUTS * OUT_BYTES + (ATT_H > 2 ? 2 * ATT_S * ATT_EP : 0))
#define W_BUFS (ENGINE_SUM || CORES_BYTES(2) <= L1_ARENA ? 2 : 1)
#define AHEAD W_BUFS /* head h + AHEAD is submitted once head h has ended */

static int8_t q_in[ATT_SP * ATT_EP] ALIGNED;
static int8_t kv_in[ATT_SP * ATT_EP] ALIGNED;
static int8_t weights[W_BUFS][ATT_W_BYTES] ALIGNED;
static int8_t qp_o[ATT_SP * ATT_PP] ALIGNED;
static int8_t kp[ATT_SP * ATT_PP] ALIGNED;
static int8_t vp_t[ATT_PP * ATT_SP] ALIGNED;
static int8_t out[OUTS][OUT_BYTES] ALIGNED;

/*
 * The head sum, in 16-bit SIMD lanes. A word of a head's output holds 4 int8 values; the
 * sum keeps two words per output word: the sums of its even bytes (0 and 2) and of its odd
 * bytes (1 and 3), sign-extended into halfwords. |sum| <= 128 H fits a halfword.
 */
#define WORDS (ATT_S * ATT_EP / 4) /* output words of the valid rows */
#if ENGINE_SUM
static int8_t sum_x[SUM_ROWS_P * SUM_INNER] ALIGNED;
static int8_t sum_w[ITA_M * SUM_INNER] ALIGNED;
#elif ATT_H > 2
static uint32_t head_sum[2 * WORDS] ALIGNED;
#endif

_Static_assert(ATT_H <= 255, "the 16-bit lanes of the head sum hold at most 255 heads");

/*
 * The requantization of the sum, ita.golden.requant: (mult * x + 2^(shift - 1)) >> shift,
 * then + add and saturation. |mult * x| < 2^8 * 2^8 * 2^8 = 2^24 (mult is 8-bit, |x| <=
 * 128 H), so a 16 x 16-bit multiply with rounding shift (cv.mulsRN) is exact; a shift above
 * 31 gives what 31 gives (0 and the same first dropped bit), so the shift is capped there.
 */
#define RQ_MULT ((uint32_t)(ATT_RQ_SUM_MULT) * 0x00010001u) /* in both halfwords */
#define RQ_SHIFT MIN(ATT_RQ_SUM_SHIFT, 31)
_Static_assert(ATT_RQ_SUM_MULT >= 0 && ATT_RQ_SUM_MULT < 256, "the multiplier is 8-bit");

/* One lane's product, rounded and shifted: `high` picks the upper halfword. */
static inline int32_t scale(uint32_t lanes, int high)
{
    int32_t y;
#if RQ_SHIFT > 0
    if (high)
        __asm__("cv.mulhhsrn %0, %1, %2, %3" : "=r"(y) : "r"(lanes), "r"(RQ_MULT), "i"(RQ_SHIFT));
    else
        __asm__("cv.mulsrn %0, %1, %2, %3" : "=r"(y) : "r"(lanes), "r"(RQ_MULT), "i"(RQ_SHIFT));
#else
    if (high)
        __asm__("cv.mulhhs %0, %1, %2" : "=r"(y) : "r"(lanes), "r"(RQ_MULT));
    else
        __asm__("cv.muls %0, %1, %2" : "=r"(y) : "r"(lanes), "r"(RQ_MULT));
#endif
    return y;
}

/* The scaled sum's range, from the extremes of the sum (mult >= 0: requant is monotonic):
 * when it stays in int8, saturation is a no-op and left out. */
#define SCALED(x) ((((int32_t)(ATT_RQ_SUM_MULT) * (x)) + (RQ_SHIFT ? 1 << (RQ_SHIFT - 1) : 0)) \
                   >> RQ_SHIFT)
#define SATURATES (SCALED(127 * (int32_t)ATT_H) + (ATT_RQ_SUM_ADD) > 127 || \
                   SCALED(-128 * (int32_t)ATT_H) + (ATT_RQ_SUM_ADD) < -128)

static inline int32_t requant_lane(uint32_t lanes, int high)
{
    int32_t y = scale(lanes, high) + (ATT_RQ_SUM_ADD);
    if (SATURATES)
        y = k_clip8(y);
    return y;
}

/* Four requantized sums from the even and odd lanes of the sum, as one word. */
static inline uint32_t requant_word(uint32_t even, uint32_t odd)
{
    return k_pack4(requant_lane(even, 0), requant_lane(odd, 0), requant_lane(even, 1),
                   requant_lane(odd, 1));
}

/* The even bytes and the odd bytes of an output word, sign-extended into halfwords. */
static inline uint32_t even_lanes(uint32_t w)
{
    uint32_t even, odd;
    k_unpack_h(w, &even, &odd);
    return even;
}

static inline uint32_t odd_lanes(uint32_t w)
{
    uint32_t even, odd;
    k_unpack_h(w, &even, &odd);
    return odd;
}

/* This core's share [*lo, *hi) of `count` words. */
static void span(unsigned core, unsigned count, unsigned *lo, unsigned *hi)
{
    unsigned per = (count + num_cores() - 1) / num_cores();
    *lo = MIN(core * per, count);
    *hi = MIN(*lo + per, count);
}


#if ATT_H > 2 && !ENGINE_SUM
/* The sum of heads 0 and 1. */
static void sum_first(unsigned lo, unsigned hi, const int8_t *head0, const int8_t *head1)
{
    const uint32_t *a = (const uint32_t *)head0 + lo, *end = (const uint32_t *)head0 + hi;
    const uint32_t *b = (const uint32_t *)head1 + lo;
    uint32_t *sum = head_sum + 2 * lo;
#pragma clang loop unroll_count(4)
    for (; a < end; a++, b++, sum += 2) {
        uint32_t u = *a, v = *b;
        sum[0] = k_add_h(even_lanes(u), even_lanes(v));
        sum[1] = k_add_h(odd_lanes(u), odd_lanes(v));
    }
}

/* Add one more head to the sum. */
static void sum_add(unsigned lo, unsigned hi, const int8_t *head)
{
    const uint32_t *x = (const uint32_t *)head + lo, *end = (const uint32_t *)head + hi;
    uint32_t *sum = head_sum + 2 * lo;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, sum += 2) {
        uint32_t w = *x;
        sum[0] = k_add_h(sum[0], even_lanes(w));
        sum[1] = k_add_h(sum[1], odd_lanes(w));
    }
}
#endif

/* Add the last head and requantize words [lo, hi) into `dst` (rows padded to ATT_EP). */
static void finish(unsigned lo, unsigned hi, const int8_t *last, int8_t *dst)
{
    const uint32_t *x = (const uint32_t *)last + lo, *end = (const uint32_t *)last + hi;
    uint32_t *y = (uint32_t *)dst + lo;
#if ATT_H > 2 && !ENGINE_SUM
    const uint32_t *sum = head_sum + 2 * lo;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++, sum += 2) {
        uint32_t w = *x;
        *y = requant_word(k_add_h(sum[0], even_lanes(w)), k_add_h(sum[1], odd_lanes(w)));
    }
#elif ATT_H == 2
    const uint32_t *first = (const uint32_t *)out[0] + lo;
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++, first++) {
        uint32_t w = *x, v = *first;
        *y = requant_word(k_add_h(even_lanes(v), even_lanes(w)),
                          k_add_h(odd_lanes(v), odd_lanes(w)));
    }
#else
#pragma clang loop unroll_count(4)
    for (; x < end; x++, y++) {
        uint32_t w = *x;
        *y = requant_word(even_lanes(w), odd_lanes(w));
    }
#endif
}

/*
 * The cores' shares of words [from, to) for pass `pass`, each begun 2 * core words in and
 * wrapped around: shares of a multiple of 32 words would have every core on the same L1 bank
 * in the same cycle, served one after the other.
 */
enum pass { SUM_FIRST, SUM_ADD, FINISH };

static void run_pass(enum pass pass, unsigned core, unsigned from, unsigned to,
                     const int8_t *head, int8_t *dst)
{
    unsigned lo, hi;
    span(core, to - from, &lo, &hi);
    lo += from;
    hi += from;
    unsigned mid = MIN(lo + 2 * core, hi);
    unsigned parts[2][2] = {{mid, hi}, {lo, mid}};
    for (unsigned i = 0; i < 2; i++) {
        unsigned a = parts[i][0], b = parts[i][1];
        switch (pass) {
#if ATT_H > 2 && !ENGINE_SUM
        case SUM_FIRST:
            sum_first(a, b, out[0], out[1]);
            break;
        case SUM_ADD:
            sum_add(a, b, head);
            break;
#endif
        default:
            finish(a, b, head, dst);
            break;
        }
    }
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
    dma_copy_1d(weights[head % W_BUFS], (const void *)att_l2_wq[head], ATT_W_BYTES);
}

/*
 * The last bytes of head 0's weights (an eighth of what head 0 needs, the cores' share by
 * the rates measured: about 15 B/cycle by the DMA, 2 by the cores through their own L2
 * port) come by the cores while the DMA moves the rest; the engine waits for all of it.
 */
#define JOB0_BYTES (2 * ATT_SP * ATT_EP + ATT_W_BYTES)
#define W_SPLIT (ATT_W_BYTES - MIN(JOB0_BYTES / 8 / 32 * 32, ATT_W_BYTES))

static void copy_share(unsigned core, int8_t *dst, uint32_t l2_src, unsigned bytes)
{
    unsigned lo, hi;
    span(core, bytes / 4, &lo, &hi);
    uint32_t *d = (uint32_t *)dst + lo;
    const volatile uint32_t *src = (const volatile uint32_t *)l2_src + lo;
    for (unsigned k = lo; k < hi; k++)
        *d++ = *src++;
}

static uint32_t submit(unsigned head)
{
    const int8_t *w = weights[head % W_BUFS];
    int8_t *result = out[head % OUTS];
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
        [ITA_PTR_VP] = vp_t,            [ITA_PTR_A] = result,
        [ITA_PTR_O] = qp_o,             [ITA_PTR_OUT] = result,
    };
    for (unsigned p = 0; p < ITA_PTRS; p++) {
        job.pointer[p] = pointers[p];
    }
    return ita_submit(&job);
}

/*
 * Copy rows [from, to) of the requantized sum (rows padded to ATT_EP in L1) to L2, where the
 * sum is S x E bytes. Word-sized rows of a sum of 8 KiB or more go in chunks while the cores
 * requantize the next rows; other rows are packed in L1 first, all at once.
 */
#define SUM_CHUNKS (ATT_E % 4 == 0 && ATT_S * ATT_E >= 8192 ? 4 : 1)

static void store_sum(int8_t *sum, unsigned from, unsigned to)
{
#if ATT_E == ATT_EP
    dma_copy_1d((int8_t *)ATT_L2_OUT_SUM + from * ATT_E, sum + from * ATT_E,
                (to - from) * ATT_E);
#elif ATT_E % 4 == 0
    dma_copy_2d((int8_t *)ATT_L2_OUT_SUM + from * ATT_E, sum + from * ATT_EP, ATT_E,
                to - from, ATT_E, ATT_EP);
#else
    /* E < EP, so moving every byte down in increasing order never overwrites one not yet
     * moved. */
    for (unsigned row = from; row < to; row++)
        for (unsigned col = 0; col < ATT_E; col++)
            sum[row * ATT_E + col] = sum[row * ATT_EP + col];
    dma_copy_1d((void *)ATT_L2_OUT_SUM, sum, ATT_OUT_SUM_BYTES);
#endif
}

/*
 * Where the requantized sum goes: an out buffer whose head is summed and copied by then.
 * With two heads, head 0's buffer in place (the last pass reads each word before it
 * writes it); else the buffer of neither of the last two heads.
 */
#define SUM_BUFFER (ATT_H == 2 ? 0 : ATT_H % OUTS)

#if ENGINE_SUM
/* X's padding rows (when S * EP / M is no multiple of M), zeroed by the cores once. */
static void clear_padding(unsigned core)
{
    unsigned helpers = num_cores() > 1 ? num_cores() - 1 : 1; /* cores 1 .. n - 1 */
    unsigned count = (SUM_ROWS_P - SUM_ROWS) * SUM_INNER / 4;
    unsigned per = (count + helpers - 1) / helpers;
    unsigned part = num_cores() > 1 ? core - 1 : 0;
    unsigned lo = MIN(part * per, count), hi = MIN(lo + per, count);
    for (unsigned k = lo; k < hi; k++)
        ((uint32_t *)(sum_x + SUM_ROWS * SUM_INNER))[k] = 0;
}

/*
 * Queue the copy of head h's output chunks into column block h of X, from the head's copy
 * in L2 (queued just before; the DMA runs transfers in order): an L1 -> L1 copy would take
 * the L1 banks twice per beat beside the running job.
 */
static void lay_out(unsigned head, unsigned from, unsigned to)
{
    dma_copy_2d(sum_x + from * SUM_INNER + head * ITA_M,
                (const int8_t *)att_l2_out[head] + from * ITA_M, ITA_M, to - from, SUM_INNER,
                ITA_M);
}

/* The sum job, or one of its halves: rows [from, to) of X into the same rows of y. */
#define SUM_JOBS (SUM_ROWS % (2 * ITA_M) == 0 ? 2 : 1)

static uint32_t submit_sum(int8_t *y, unsigned from, unsigned to)
{
    ita_job_t job = {0};
    job.config.mode = ITA_MODE_LINEAR;
    job.config.activation = ITA_ACT_IDENTITY;
    job.config.seq_len = to - from;
    job.config.embed = SUM_INNER;
    job.config.proj = ITA_M;
    job.config.requant[ITA_STEP_Q].mult = ATT_RQ_SUM_MULT;
    job.config.requant[ITA_STEP_Q].shift = ATT_RQ_SUM_SHIFT;
    job.config.requant[ITA_STEP_Q].add = ATT_RQ_SUM_ADD;
    job.pointer[ITA_PTR_Q_IN] = sum_x + from * SUM_INNER;
    job.pointer[ITA_PTR_WQ] = sum_w;
    job.pointer[ITA_PTR_QP] = y + from * ITA_M;
    return ita_submit(&job);
}
#endif

int main(unsigned core)
{
    uint32_t start = cycles(), busy = 0, loaded = 0, last_end = 0;
    uint32_t ticket[ATT_H], submitted[ATT_H];
    int failed = 0;
    if (core == 0) {
        dma_copy_1d(q_in, (const void *)ATT_L2_Q_IN, sizeof q_in);
        dma_copy_1d(kv_in, (const void *)ATT_L2_KV_IN, sizeof kv_in);
        dma_copy_1d(weights[0], (const void *)att_l2_wq[0], W_SPLIT);
        if (ATT_H > 1 && W_BUFS > 1)
            load_weights(1);
    }
    copy_share(core, weights[0] + W_SPLIT, att_l2_wq[0] + W_SPLIT, ATT_W_BYTES - W_SPLIT);
    barrier();
    if (core == 0) {
        /* Head 0 needs the first three transfers, head 1 the fourth. */
        dma_wait_left(ATT_H > 1 && W_BUFS > 1 ? 1 : 0);
        loaded = cycles() - start;
        submitted[0] = cycles();
        ticket[0] = submit(0);
        if (ATT_H > 1 && W_BUFS > 1) {
            dma_wait_left(0);
            submitted[1] = cycles();
            ticket[1] = submit(1);
        }
    }
#if ENGINE_SUM
    /* The sum job's weights come with head 0 running (core 0 waits for all transfers
     * before it submits the sum); the other cores clear X's padding rows meanwhile. Core 0
     * goes on at once: it reads a job's outcome in ERROR before the next job ends. */
    if (core == 0)
        dma_copy_1d(sum_w, (const void *)ATT_L2_SUM_W, sizeof sum_w);
    if (SUM_ROWS_P > SUM_ROWS && (core > 0 || num_cores() == 1))
        clear_padding(core);
    uint32_t sum_cycles = 0;
#endif
    for (unsigned head = 0; head < ATT_H; head++) {
        const int8_t *result = out[head % OUTS];
        if (core == 0) {
            uint32_t error = ita_wait_job(ticket[head]);
            uint32_t end = cycles(), begin = MAX(submitted[head], last_end);
            busy += end - begin;
            last_end = end;
            if (error != 0) {
                printf("head %u: ITA error %x\n", head, (unsigned)error);
                failed = 1;
            }
            /* Head h's weight buffer is free now: load head h + AHEAD's into it. */
            if (head + AHEAD < ATT_H)
                load_weights(head + AHEAD);
#if W_BUFS == 1
            if (head + 1 < ATT_H) {
                /* Head h + 1's out buffer is head h - 2's (OUTS = 3) or h - 1's, summed
                 * and copied in an earlier step. */
                dma_wait_left(0);
                submitted[head + 1] = cycles();
                ticket[head + 1] = submit(head + 1);
            }
#endif
#if ENGINE_SUM
            /* The padding rows first (if any), then the valid rows copied and laid out in
             * SUM_JOBS parts: each part of the sum starts once its rows of X are complete. */
            if (ATT_SP > ATT_S)
                dma_copy_1d((int8_t *)att_l2_out[head] + SUM_ROWS * ITA_M,
                            result + SUM_ROWS * ITA_M, (ATT_SP - ATT_S) * ATT_EP);
            for (unsigned j = 0; j < SUM_JOBS; j++) {
                unsigned from = SUM_ROWS * j / SUM_JOBS, to = SUM_ROWS * (j + 1) / SUM_JOBS;
                dma_copy_1d((int8_t *)att_l2_out[head] + from * ITA_M, result + from * ITA_M,
                            (to - from) * ITA_M);
                lay_out(head, from, to);
            }
#else
            dma_copy_1d((void *)att_l2_out[head], result, ATT_SP * ATT_EP);
            if (head == ATT_H - 1) {
                /* Everything but this copy: the buffer of the sum has reached L2. */
                dma_wait_left(1);
            }
#endif
        }
#if ENGINE_SUM
        if (core == 0 && head + 2 < ATT_H) {
            /* Head h + 2 takes head h's buffers: its weights have landed, its out buffer
             * (h % 2) is laid out in X and copied. Head h + 1 runs: h + 2 follows it. */
            dma_wait_left(0);
            submitted[head + 2] = cycles();
            ticket[head + 2] = submit(head + 2);
        }
        if (head == ATT_H - 1)
            barrier(); /* X's padding rows are clear */
        if (core == 0 && head == ATT_H - 1) {
            /* The sum, in halves by rows so that the first half goes to L2 while the
             * engine computes the second, into the out buffer of head H - 2 (copied). */
            uint32_t t0 = cycles(), sum_ticket[SUM_JOBS];
            for (unsigned j = 0; j < SUM_JOBS; j++) {
                /* Part j's rows of X are complete when only the later parts' two
                 * transfers each are left (the DMA runs them in order). */
                dma_wait_left(2 * (SUM_JOBS - 1 - j));
                sum_ticket[j] = submit_sum(out[ATT_H % 2], SUM_ROWS * j / SUM_JOBS,
                                           SUM_ROWS * (j + 1) / SUM_JOBS);
            }
            for (unsigned j = 0; j < SUM_JOBS; j++) {
                uint32_t error = ita_wait_job(sum_ticket[j]);
                if (error != 0) {
                    printf("head sum: ITA error %x\n", (unsigned)error);
                    failed = 1;
                }
                store_sum(out[ATT_H % 2], ATT_S * j / SUM_JOBS, ATT_S * (j + 1) / SUM_JOBS);
            }
            sum_cycles = cycles() - t0;
        }
        continue;
#endif
        if (head > 0 || ATT_H == 1)
            barrier(); /* head h's output is complete */
#if ATT_H > 2 && !ENGINE_SUM
        if (head == 1)
            run_pass(SUM_FIRST, core, 0, WORDS, 0, 0);
        else if (head > 1 && head < ATT_H - 1)
            run_pass(SUM_ADD, core, 0, WORDS, result, 0);
#endif
        if (head == ATT_H - 1) {
            /* In row chunks: core 0 stores one while all cores requantize the next. */
            for (unsigned chunk = 0; chunk < SUM_CHUNKS; chunk++) {
                unsigned from = ATT_S * chunk / SUM_CHUNKS;
                unsigned to = ATT_S * (chunk + 1) / SUM_CHUNKS;
                run_pass(FINISH, core, from * ATT_EP / 4, to * ATT_EP / 4, result,
                         out[SUM_BUFFER]);
                barrier();
                if (core == 0)
                    store_sum(out[SUM_BUFFER], from, to);
            }
        } else if (head > 0) {
            barrier(); /* head h's output is summed */
        }
        if (core == 0 && W_BUFS == 2 && head + 2 < ATT_H) {
            /* Head h + 2 (so OUTS = 3) takes head h's weight buffer, free since head h
             * ended and now loaded, and out buffer (h + 2) % 3: unused before for h = 0,
             * else head h - 1's, summed and copied by now. Head h + 1 is running: h + 2
             * follows it without a gap. */
            dma_wait_left(0);
            submitted[head + 2] = cycles();
            ticket[head + 2] = submit(head + 2);
        }
    }
    if (core == 0) {
        dma_wait_left(0);
        uint32_t now = cycles();
        printf("stats: total_cycles=%u ita_cycles=%u load_cycles=%u tail_cycles=%u\n",
               (unsigned)(now - start), (unsigned)busy, (unsigned)loaded,
               (unsigned)(now - last_end));
#if ENGINE_SUM
        printf("stats: sum_job_cycles=%u\n", (unsigned)sum_cycles);
#endif
    }
    barrier();
    return failed;
}
