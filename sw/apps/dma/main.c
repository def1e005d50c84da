/*
 * The cluster DMA: 1-D and 2-D copies L2 -> L1 and L1 -> L2, checked and timed.
 *
 * The testbench (verif/cluster/kernels.py) places random bytes in L2 and describes them in
 * dma_data.h (addresses, sizes, and a checksum of every source block); it compares the L2
 * destinations with check.npz after the run. Steps (core 0 drives the DMA alone unless
 * noted; the others wait in the barrier):
 *
 *   1. 1-D L2 -> L1: DMA_BLOCK bytes of SRC into blk.
 *   2. 2-D L2 -> L1: a window of WIN_ROWS x WIN_BYTES from the image IMG (rows IMG_PITCH bytes
 *      apart, starting at row WIN_ROW, byte WIN_COL) into the dense buffer win.
 *   3. Core 0 checks blk and win against the checksums, all cores check them against L2
 *      word by word (each core a share), then xor every word of blk with XOR_PATTERN.
 *   4. 1-D L1 -> L2: blk to OUT1 (expected: SRC ^ pattern).
 *   5. 2-D L1 -> L2: win to OUT2 with rows OUT2_PITCH bytes apart; the gaps between the rows
 *      were filled with a sentinel by the testbench and must keep it.
 *   6. Every core at once: its 1/RT_CORES share of SRC L2 -> L1 (part), waits (timed: the
 *      eight cores share the DMA's queue and lock), checks it, copies it on to OUT3
 *      (L1 -> L2) and waits.
 *   7. All cores read OUT1, OUT2 and OUT3 back from L2 and compare them with L1.
 *   8. Where L1 holds it, the sustained rate: a 1-D copy of BIG_BYTES (64 KiB) of L2 from SRC
 *      on into big, then a 2-D copy of BIG_BYTES / 64 rows of 64 bytes, the source rows
 *      BIG_PITCH bytes apart, into big; all cores check each against L2.
 *   9. L3: DMA_BLOCK bytes of SRC L2 -> L3 (at L3_BASE), then L3 -> L1 into part, checked by
 *      every core; the L3 -> L1 copy is timed (the off-chip link's rate).
 *  10. Refused transfers (errors.c, core 0): descriptors the DMA cannot do end with their
 *      event and an error through dma_error(), writing nothing; then a legal copy lands.
 *      Built with DMA_ERRORS_ONLY=1, the program is this step alone.
 *
 * Steps 1, 2, 4, 5, 8 and 9 are timed on core 0 from before programming the DMA to the end of
 * dma_wait(); step 6's copy in from the barrier before to the barrier after it. The line
 * "dma: ... l2_l1_1d=<bytes/cycle> ..." is parsed by verif/cluster/kernels.py; its
 * l2_l1_64k and l2_l1_2d_64b fields are the rates of step 8, l3_l1 that of step 9.
 * Returns 0 on success, else the number of failed checks (at most 255).
 */

#include <stdint.h>

#include "dma_data.h"
#include "dma_errors.h"
#include "runtime.h"

/* 1: run step 10 alone (-DDMA_ERRORS_ONLY=1). */
#ifndef DMA_ERRORS_ONLY
#define DMA_ERRORS_ONLY 0
#endif

#define XOR_PATTERN 0x5A5A5A5Au
#define PART_BYTES (DMA_BLOCK / RT_CORES)

#if DMA_BLOCK % (4 * RT_CORES) || WIN_BYTES % 4 || IMG_PITCH % 4 || WIN_COL % 4 \
    || OUT2_PITCH % 4
#error "the DMA moves whole words"
#endif

static uint32_t blk[DMA_BLOCK / 4] L1_NOINIT;
static uint32_t win[WIN_ROWS * WIN_BYTES / 4] L1_NOINIT;
static uint32_t part[DMA_BLOCK / 4] L1_NOINIT;

/* Step 8 needs 64 KiB of L1 beside the other buffers (a quarter of L1 at most) and 128 KiB
 * of L2 from SRC on. */
#define BIG_WANTED (64u * 1024u)
#if L1_SIZE >= 4 * BIG_WANTED
#define BIG_BYTES BIG_WANTED
#define BIG_ROW 64u
#define BIG_PITCH 128u
static uint32_t big[BIG_BYTES / 4] L1_NOINIT;
#else
#define BIG_BYTES 0u
#endif
static uint32_t errors[RT_CORES] L1_BSS;  /* failed checks per core */
static uint32_t elapsed[8] L1_BSS;        /* cycles of the timed steps */
static uint32_t big_rate[3] L1_BSS;       /* steps 8, 9: hundredths of bytes per cycle */

/* FNV-1a over 32-bit words (kernels.py computes the same). */
static uint32_t checksum(const volatile uint32_t *words, uint32_t count)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < count; i++)
        h = (h ^ words[i]) * 16777619u;
    return h;
}

static void fail(unsigned core, const char *what, uint32_t index, uint32_t got, uint32_t want)
{
    if (errors[core] < 4)
        printf("core %u: %s word %u: got %x, expected %x\n", core, what, (unsigned)index,
               (unsigned)got, (unsigned)want);
    errors[core]++;
}

/* Compare `count` words of L1 `l1` with L2 at `l2`, words [first, first + count). */
static void compare(unsigned core, const char *what, const uint32_t *l1, uint32_t l2,
                    uint32_t first, uint32_t count)
{
    const volatile uint32_t *l2w = (const volatile uint32_t *)l2;
    for (uint32_t i = first; i < first + count; i++)
        if (l1[i] != l2w[i])
            fail(core, what, i, l1[i], l2w[i]);
}

static uint32_t timed_wait(uint32_t start)
{
    dma_wait();
    return cycles() - start;
}

/* "<n>.<nn>" of bytes per cycle, in hundredths. */
static uint32_t rate(uint32_t bytes, uint32_t cycles_taken)
{
    return (bytes * 100u + cycles_taken / 2) / cycles_taken;
}

int main(unsigned core)
{
    if (DMA_ERRORS_ONLY) {
        if (core != 0)
            return 0;
        uint32_t failed = dma_error_checks();
        return failed > 255 ? 255 : (int)failed;
    }

    unsigned cores = num_cores();
    uint32_t t;

    /* 1, 2: L2 -> L1. */
    if (core == 0) {
        t = cycles();
        dma_copy_1d(blk, (const void *)SRC_L2, DMA_BLOCK);
        elapsed[0] = timed_wait(t);
        t = cycles();
        dma_copy_2d(win, (const void *)(IMG_L2 + WIN_ROW * IMG_PITCH + WIN_COL), WIN_BYTES,
                    WIN_ROWS, WIN_BYTES, IMG_PITCH);
        elapsed[1] = timed_wait(t);
    }
    barrier();

    /* 3: check (core 0 the checksums, every core a share of the words), then modify blk. */
    if (core == 0) {
        uint32_t h = checksum(blk, DMA_BLOCK / 4);
        if (h != SRC_CHECKSUM)
            fail(core, "blk checksum", 0, h, SRC_CHECKSUM);
        h = checksum(win, WIN_ROWS * WIN_BYTES / 4);
        if (h != WIN_CHECKSUM)
            fail(core, "win checksum", 0, h, WIN_CHECKSUM);
    }
    uint32_t words = DMA_BLOCK / 4 / cores;
    compare(core, "blk", blk, SRC_L2, core * words, words);
    for (unsigned row = core; row < WIN_ROWS; row += cores)
        compare(core, "win", &win[row * WIN_BYTES / 4],
                IMG_L2 + (WIN_ROW + row) * IMG_PITCH + WIN_COL, 0, WIN_BYTES / 4);
    barrier(); /* core 0's checksum has read blk */
    for (uint32_t i = core * words; i < (core + 1) * words; i++)
        blk[i] ^= XOR_PATTERN;
    barrier();

    /* 4, 5: L1 -> L2. */
    if (core == 0) {
        t = cycles();
        dma_copy_1d((void *)OUT1_L2, blk, DMA_BLOCK);
        elapsed[2] = timed_wait(t);
        t = cycles();
        dma_copy_2d((void *)OUT2_L2, win, WIN_BYTES, WIN_ROWS, OUT2_PITCH, WIN_BYTES);
        elapsed[3] = timed_wait(t);
    }

    /* 6: every core copies its share through L1, in and out, at the same time. */
    barrier();
    uint32_t t6 = cycles();
    uint32_t *mine = &part[core * PART_BYTES / 4];
    dma_copy_1d(mine, (const void *)(SRC_L2 + core * PART_BYTES), PART_BYTES);
    dma_wait();
    barrier();
    if (core == 0)
        elapsed[4] = cycles() - t6;
    compare(core, "part", part, SRC_L2, core * PART_BYTES / 4, PART_BYTES / 4);
    dma_copy_1d((void *)(OUT3_L2 + core * PART_BYTES), mine, PART_BYTES);
    dma_wait();
    barrier(); /* every core's copy to OUT3 has landed */

    /* 7: read the L2 destinations back (every core a share). */
    compare(core, "out1", blk, OUT1_L2, core * words, words);
    for (unsigned row = core; row < WIN_ROWS; row += cores)
        compare(core, "out2", &win[row * WIN_BYTES / 4], OUT2_L2 + row * OUT2_PITCH, 0,
                WIN_BYTES / 4);
    compare(core, "out3", part, OUT3_L2, core * words, words);
    barrier();

    /* 8: the sustained rate on large copies (every core checks a share). */
#if BIG_BYTES
    uint32_t big_words = BIG_BYTES / 4 / cores;
    if (core == 0) {
        t = cycles();
        dma_copy_1d(big, (const void *)SRC_L2, BIG_BYTES);
        elapsed[5] = timed_wait(t);
    }
    barrier();
    compare(core, "big", big, SRC_L2, core * big_words, big_words);
    barrier();
    if (core == 0) {
        t = cycles();
        dma_copy_2d(big, (const void *)SRC_L2, BIG_ROW, BIG_BYTES / BIG_ROW, BIG_ROW, BIG_PITCH);
        elapsed[6] = timed_wait(t);
    }
    barrier();
    for (unsigned row = core; row < BIG_BYTES / BIG_ROW; row += cores)
        compare(core, "big_2d", &big[row * BIG_ROW / 4], SRC_L2 + row * BIG_PITCH, 0,
                BIG_ROW / 4);
    barrier();
    if (core == 0) {
        big_rate[0] = rate(BIG_BYTES, elapsed[5]);
        big_rate[1] = rate(BIG_BYTES, elapsed[6]);
    }
#endif

    /* 9: through L3 and back into L1. */
    if (core == 0) {
        dma_copy_1d((void *)L3_BASE, (const void *)SRC_L2, DMA_BLOCK);
        dma_wait();
        t = cycles();
        dma_copy_1d(part, (const void *)L3_BASE, DMA_BLOCK);
        elapsed[7] = timed_wait(t);
        big_rate[2] = rate(DMA_BLOCK, elapsed[7]);
    }
    barrier();
    compare(core, "l3", part, SRC_L2, core * words, words);
    barrier();
    if (core != 0)
        return 0;

    /* 10: refused transfers. */
    uint32_t failures = dma_error_checks();
    for (unsigned c = 0; c < cores; c++)
        failures += errors[c];
    static const uint32_t bytes[5] = {DMA_BLOCK, WIN_ROWS * WIN_BYTES, DMA_BLOCK,
                                      WIN_ROWS * WIN_BYTES, DMA_BLOCK};
    uint32_t r[5];
    for (unsigned i = 0; i < 5; i++)
        r[i] = rate(bytes[i], elapsed[i]);
    printf("dma: block=%u window=%ux%u l2_l1_1d=%u.%02u l2_l1_2d=%u.%02u l1_l2_1d=%u.%02u "
           "l1_l2_2d=%u.%02u all_cores=%u.%02u l2_l1_64k=%u.%02u l2_l1_2d_64b=%u.%02u "
           "l3_l1=%u.%02u cycles_1d=%u errors=%u\n",
           DMA_BLOCK, WIN_ROWS, WIN_BYTES, (unsigned)(r[0] / 100), (unsigned)(r[0] % 100),
           (unsigned)(r[1] / 100), (unsigned)(r[1] % 100), (unsigned)(r[2] / 100),
           (unsigned)(r[2] % 100), (unsigned)(r[3] / 100), (unsigned)(r[3] % 100),
           (unsigned)(r[4] / 100), (unsigned)(r[4] % 100), (unsigned)(big_rate[0] / 100),
           (unsigned)(big_rate[0] % 100), (unsigned)(big_rate[1] / 100),
           (unsigned)(big_rate[1] % 100), (unsigned)(big_rate[2] / 100),
           (unsigned)(big_rate[2] % 100), (unsigned)elapsed[0],
           (unsigned)failures);
    return failures > 255 ? 255 : (int)failures;
}
