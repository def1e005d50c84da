/*
 * Refused transfers, programmed from core 0 through the HAL: each descriptor the DMA cannot
 * do must end with its DMA event, leave STATUS idle, write nothing (its would-be destination
 * keeps a sentinel) and read back through dma_error() with its cause and a count of 1, which
 * the read clears; two refusals in a row add up; then a legal copy lands with no error.
 *
 * Step 10 of the dma program (main.c), and the whole program when it is built with
 * DMA_ERRORS_ONLY=1 (tests/cluster/test_apps_verilator.py): it needs only SRC_L2 of dma_data.h.
 */

#include <stdint.h>

#include "dma_data.h"
#include "dma_errors.h"
#include "runtime.h"

#define SENTINEL 0xEEEEEEEEu
#define ROW_WORDS 16u /* words of a row of the refused copies */
#define GUARD_WORDS (4u * ROW_WORDS)

static uint32_t guard[GUARD_WORDS] L1_NOINIT;
static uint32_t failures;

static void check(const char *what, uint32_t got, uint32_t want)
{
    if (got == want)
        return;
    if (failures < 8)
        printf("dma_errors: %s: got %x, expected %x\n", what, (unsigned)got, (unsigned)want);
    failures++;
}

static void fill_guard(void)
{
    for (uint32_t i = 0; i < GUARD_WORDS; i++)
        guard[i] = SENTINEL;
}

/* The queued transfers have ended: their DMA event came and STATUS is idle. */
static void await_end(const char *what)
{
    (void)evt_wait(EVENT_DMA_MASK);
    check(what, rt_read32(DMA_STATUS_ADDR) & DMA_STATUS_BUSY_MASK, 0);
}

static void check_guard(const char *what)
{
    uint32_t changed = 0;
    for (uint32_t i = 0; i < GUARD_WORDS; i++)
        changed += guard[i] != SENTINEL;
    check(what, changed, 0);
}

/* Queue one refused copy with `queue`, then check its event, the sentinel and dma_error(). */
#define REFUSED(name, queue, cause)                                                            \
    do {                                                                                       \
        fill_guard();                                                                          \
        check(name " queued", (uint32_t)(queue), 0);                                           \
        await_end(name " status");                                                             \
        check_guard(name " wrote");                                                            \
        uint32_t error = dma_error();                                                          \
        check(name " error", error & ~DMA_ERROR_REFUSED_MASK, (cause));                        \
        check(name " count", dma_error_count(error), 1);                                       \
        check(name " cleared", dma_error(), 0);                                                \
        refused++;                                                                             \
    } while (0)

uint32_t dma_error_checks(void)
{
    uint32_t *buf = guard;
    uint32_t refused = 0;
    const uint8_t *src = (const uint8_t *)SRC_L2;

    /* A DMA event left pending by an earlier step would end the first wait early. */
    if (rt_read32(EVENT_UNIT_EVT_PENDING_ADDR) & EVENT_DMA_MASK)
        (void)evt_wait(EVENT_DMA_MASK);
    check("error before", dma_error(), 0);

    REFUSED("src past L2", dma_copy_1d(buf, (const void *)(L2_BASE + L2_SIZE - 32), 64),
            DMA_ERROR_SRC_RANGE_MASK);
    /* The second row would land L1_SIZE above the first, outside L1. */
    REFUSED("dst row outside L1", dma_copy_2d(buf, src, 4 * ROW_WORDS, 2, L1_SIZE, 0),
            DMA_ERROR_DST_RANGE_MASK);
    REFUSED("overlap", dma_copy_1d(buf + 1, buf, 4 * ROW_WORDS), DMA_ERROR_OVERLAP_MASK);
    REFUSED("misaligned", dma_copy_1d(buf, src + 2, 4 * ROW_WORDS), DMA_ERROR_ALIGN_MASK);
    REFUSED("misaligned stride", dma_copy_2d(buf, src, 4 * ROW_WORDS, 2, 4 * ROW_WORDS, 6),
            DMA_ERROR_ALIGN_MASK);

    /* Two refusals queued back to back: both causes, a count of 2. */
    fill_guard();
    dma_copy_1d(buf, (const void *)(L2_BASE + L2_SIZE - 32), 64);
    dma_copy_1d(buf + 1, buf, 4 * ROW_WORDS);
    dma_wait();
    check_guard("two refused wrote");
    uint32_t error = dma_error();
    check("two refused error", error & ~DMA_ERROR_REFUSED_MASK,
          DMA_ERROR_SRC_RANGE_MASK | DMA_ERROR_OVERLAP_MASK);
    check("two refused count", dma_error_count(error), 2);
    refused += 2;
    if (rt_read32(EVENT_UNIT_EVT_PENDING_ADDR) & EVENT_DMA_MASK)
        (void)evt_wait(EVENT_DMA_MASK);

    /* The DMA still works: a legal copy lands whole. */
    fill_guard();
    check("legal queued", (uint32_t)dma_copy_1d(buf, src, sizeof guard), 0);
    await_end("legal status");
    check("legal error", dma_error(), 0);
    const volatile uint32_t *want = (const volatile uint32_t *)SRC_L2;
    for (uint32_t i = 0; i < GUARD_WORDS; i++)
        check("legal copy", guard[i], want[i]);

    printf("dma_errors: refused=%u failures=%u\n", (unsigned)refused, (unsigned)failures);
    return failures;
}
