/*
 * Several chips on a ring of chip-to-chip links (docs/multichip.md). Every chip runs this
 * program with its own L2 data (multichip_data.h, written by verif/cluster/multichip.py):
 *
 *  1. Ring: chip i sends the first RING_WORDS words of its vector X to chip i + 1 (link
 *     LINK_NEXT, straight from L2 into the neighbour's L1), waits for the block of chip
 *     i - 1 (LINK_PREV's event and counter) and checks it against RING_EXPECT.
 *  2. All-reduce (ALLREDUCE=1): X (N int32) summed over every chip, on every chip, with a
 *     ring all-reduce: N is cut into CHIPS chunks; in K - 1 reduce-scatter steps each chip
 *     sends one chunk of its running sum to the next chip (into a receive buffer of that step)
 *     and adds the chunk that came from the previous one (all cores, a slice each); after
 *     them chip i holds chunk i + 1 complete, and K - 1 all-gather steps pass the complete
 *     chunks on, written straight into the neighbour's sum. Sums wrap modulo 2^32, so the
 *     order of the additions does not matter and every chip matches numpy bit for bit.
 *     Each receive buffer is written once, and a chip reaches all-gather step s only after
 *     its neighbour has sent its reduce-scatter step s, so no transfer overwrites data still
 *     in use, whatever the link stalls.
 *  3. Illegal link descriptors (core 0): a link the chip does not have, the hole after the
 *     neighbour's L1, a source in a remote window; each must be refused with its cause.
 *
 * Prints "stats: ring_cycles=<n> allreduce_cycles=<n> tx_bytes=<n> rx_bytes=<n>
 * mismatches=<n>"; a mismatch line names the tensor, the chip and the element. Returns 0 on
 * success, else the number of failed checks (at most 255).
 */

#include <stdint.h>

#include "multichip_data.h"
#include "runtime.h"

#define CHUNK_MAX (N / CHIPS)
#define MAX_REPORTS 4

#if N % CHIPS || RING_WORDS > N
#error "N must be a multiple of CHIPS and hold the ring block"
#endif

static uint32_t sum[N] L1_NOINIT __attribute__((aligned(16)));
static uint32_t received[N] L1_NOINIT __attribute__((aligned(16))); /* one chunk per step */
static uint32_t ring[RING_WORDS] L1_NOINIT __attribute__((aligned(16)));
static uint32_t mismatches[RT_CORES] L1_BSS;
static uint32_t failures L1_BSS;

static void report(const char *tensor, unsigned chip, unsigned element, uint32_t got,
                   uint32_t want)
{
    if (mismatches[core_id()]++ < MAX_REPORTS)
        printf("mismatch: %s chip %u element %u: got %d, expected %d\n", tensor, chip, element,
               (int)got, (int)want);
}

/* Compare words [0, count) of `got` with `want`, a slice per core. */
static void compare(const char *tensor, unsigned chip, const uint32_t *got,
                    const uint32_t *want, unsigned count)
{
    unsigned core = core_id(), cores = num_cores();
    for (unsigned e = core; e < count; e += cores)
        if (got[e] != want[e])
            report(tensor, chip, e, got[e], want[e]);
}

static void check(const char *what, uint32_t got, uint32_t want)
{
    if (got == want)
        return;
    printf("multichip: %s: got %x, expected %x\n", what, (unsigned)got, (unsigned)want);
    failures++;
}

/*
 * Core 0's waits for data, one function per phase and never inlined, so that a watchdog report
 * names the phase a chip waits in by the function holding core 0's PC.
 */
static void __attribute__((noinline)) wait_ring(uint32_t arrivals)
{
    link_wait(LINK_PREV, arrivals);
}

static void __attribute__((noinline)) wait_reduce_scatter(uint32_t arrivals)
{
    link_wait(LINK_PREV, arrivals);
}

static void __attribute__((noinline)) wait_all_gather(uint32_t arrivals)
{
    link_wait(LINK_PREV, arrivals);
}

/* One refused descriptor: queued, ended with no transfer, its cause in dma_error(). */
static void refused(const char *what, void *dst, const void *src, uint32_t cause)
{
    uint32_t before = link_counter(LINK_NEXT, LINK_TX_BYTES0_OFFSET)
                      + link_counter(LINK_PREV, LINK_TX_BYTES0_OFFSET);
    check(what, (uint32_t)dma_copy_1d(dst, src, 16), 0);
    dma_wait();
    check(what, dma_error(), cause | (1u << DMA_ERROR_REFUSED_LSB));
    check(what, link_counter(LINK_NEXT, LINK_TX_BYTES0_OFFSET)
                + link_counter(LINK_PREV, LINK_TX_BYTES0_OFFSET), before);
}

int main(unsigned core)
{
    unsigned cores = num_cores();
    unsigned me = chip_id(), k = num_chips();
    uint32_t t0 = 0, ring_cycles = 0, allreduce_cycles = 0;
    const uint32_t *x = (const uint32_t *)X_L2;
    uint32_t arrivals = 0; /* transfers expected so far over LINK_PREV */

    if (core == 0 && k != CHIPS) {
        printf("multichip: built for %u chips, running on %u\n", (unsigned)CHIPS, k);
        exit(2);
    }
    barrier();

    /* 1: ring. */
    if (core == 0) {
        t0 = cycles();
        dma_copy_1d(link_remote(LINK_NEXT, ring), x, RING_WORDS * 4);
        wait_ring(++arrivals);
        ring_cycles = cycles() - t0;
        dma_wait();
    }
    barrier();
    compare("ring", me, ring, (const uint32_t *)RING_EXPECT_L2, RING_WORDS);

    /* 2: all-reduce. */
    if (ALLREDUCE) {
        unsigned chunk = N / k;
        if (core == 0) {
            dma_copy_1d(sum, x, N * 4);
            dma_wait();
        }
        barrier();
        if (core == 0)
            t0 = cycles();
        for (unsigned s = 0; s + 1 < k; s++) { /* reduce-scatter */
            unsigned out = (me + k - s) % k, in = (me + 2 * k - s - 1) % k;
            uint32_t *landing = received + s * chunk;
            if (core == 0) {
                dma_copy_1d(link_remote(LINK_NEXT, landing), sum + out * chunk, chunk * 4);
                wait_reduce_scatter(++arrivals);
            }
            barrier();
            uint32_t *acc = sum + in * chunk;
            for (unsigned e = core; e < chunk; e += cores)
                acc[e] += landing[e];
            barrier();
        }
        if (core == 0) {
            for (unsigned s = 0; s + 1 < k; s++) { /* all-gather */
                unsigned out = (me + 1 + k - s) % k;
                dma_copy_1d(link_remote(LINK_NEXT, sum + out * chunk), sum + out * chunk,
                            chunk * 4);
                wait_all_gather(++arrivals);
            }
            dma_wait();
            allreduce_cycles = cycles() - t0;
        }
        barrier();
        compare("allreduce", me, sum, (const uint32_t *)EXPECT_L2, N);
    }
    barrier();

    if (core != 0)
        return 0;
    /* 3: refused link descriptors. */
    refused("link that does not exist",
            (void *)(REMOTE_BASE + CLUSTER_LINKS * REMOTE_WINDOW_SIZE), x, DMA_ERROR_LINK_MASK);
    refused("hole after the neighbour's L1",
            (void *)(REMOTE_BASE + L1_SIZE), x, DMA_ERROR_LINK_MASK);
    refused("source in a remote window", ring, link_remote(LINK_NEXT, x),
            DMA_ERROR_SRC_RANGE_MASK);

    uint32_t wrong = 0;
    for (unsigned c = 0; c < cores; c++)
        wrong += mismatches[c];
    uint32_t tx = link_counter(LINK_NEXT, LINK_TX_BYTES0_OFFSET)
                  + link_counter(LINK_PREV, LINK_TX_BYTES0_OFFSET);
    uint32_t rx = link_counter(LINK_NEXT, LINK_RX_BYTES0_OFFSET)
                  + link_counter(LINK_PREV, LINK_RX_BYTES0_OFFSET);
    printf("stats: ring_cycles=%u allreduce_cycles=%u tx_bytes=%u rx_bytes=%u mismatches=%u\n",
           (unsigned)ring_cycles, (unsigned)allreduce_cycles, (unsigned)tx, (unsigned)rx,
           (unsigned)wrong);
    failures += wrong;
    return failures > 255 ? 255 : (int)failures;
}
