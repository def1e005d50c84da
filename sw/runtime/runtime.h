/*
 * Bare-metal runtime of the cluster's CV32E40P cores.
 *
 * Start-up (crt0.S): every core boots at BOOT_ADDRESS, gets a stack of __stack_size bytes at
 * the top of L1, and calls main(core_id) once core 0 has zeroed .bss / .l1.bss and copied .l1
 * (the other cores wait in the event-unit barrier meanwhile). When main returns on core 0, its
 * value is the simulation's exit code; main returning on any other core just puts that core to
 * sleep. So core 0 must not return before the others are done: end with barrier().
 *
 * Core count: RT_CORES is the number of cores the program runs on; it defaults to the
 * cluster's CLUSTER_CORES and is set by the build (python -m sw.build APP=... CORES=1).
 *
 * Output: putchar() writes one character to SOC_CTRL PUTCHAR. printf(), vprintf() and puts()
 * hold a cluster-wide lock (a Lamport bakery lock in L1: the cores have no atomic
 * instructions) while they write, so lines from different cores never interleave; putchar()
 * alone takes no lock.
 *
 * Events: evt_wait() sets this core's event mask and blocks in a load until one of the
 * enabled events is pending. Pending bits merge and may be stale, so every waiter re-checks
 * the condition it waits for after waking.
 */

#ifndef RUNTIME_H
#define RUNTIME_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_map.h"

#ifndef RT_CORES
#define RT_CORES CLUSTER_CORES
#endif

#if RT_CORES < 1 || RT_CORES > CLUSTER_CORES
#error "RT_CORES must be between 1 and CLUSTER_CORES"
#endif

/* Placement of data in L1 (see the generated link.ld, cluster_integration/memory_map_gen.py). */
#define L1_DATA   __attribute__((section(".l1")))         /* initialised, copied at boot */
#define L1_BSS    __attribute__((section(".l1.bss")))     /* zeroed at boot */
#define L1_NOINIT __attribute__((section(".l1.noinit")))  /* left as it is */

/* Every core calls main with its id (0 .. RT_CORES - 1). */
int main(unsigned core_id);

/* --- Registers and CSRs ------------------------------------------------------------------- */

static inline uint32_t rt_read32(uint32_t address)
{
    return *(volatile uint32_t *)(uintptr_t)address;
}

static inline void rt_write32(uint32_t address, uint32_t value)
{
    *(volatile uint32_t *)(uintptr_t)address = value;
}

/* Keeps the compiler from moving memory accesses across this point. */
static inline void rt_compiler_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

/* --- Cores -------------------------------------------------------------------------------- */

/* This core's id: the low 5 bits of mhartid. */
static inline unsigned core_id(void)
{
    unsigned id;
    __asm__ volatile("csrr %0, mhartid" : "=r"(id));
    return id & 0x1Fu;
}

static inline unsigned num_cores(void)
{
    return RT_CORES;
}

/* Wait until every core taking part (EVENT_UNIT BARRIER_COUNT, reset: all) has arrived. */
static inline void barrier(void)
{
    rt_compiler_barrier();
    (void)rt_read32(EVENT_UNIT_BARRIER_ADDR);
    rt_compiler_barrier();
}

/* Cycles since crt0 enabled the counters (mcycle, low 32 bits). */
static inline uint32_t cycles(void)
{
    uint32_t value;
    __asm__ volatile("csrr %0, mcycle" : "=r"(value));
    return value;
}

/* Instructions retired since crt0 enabled the counters (minstret, low 32 bits). */
static inline uint32_t instret(void)
{
    uint32_t value;
    __asm__ volatile("csrr %0, minstret" : "=r"(value));
    return value;
}

/*
 * Set this core's event mask to `mask` (EVENT_*_MASK bits), block until one of those events
 * is pending, and return (and clear) the pending enabled events.
 */
static inline uint32_t evt_wait(uint32_t mask)
{
    rt_write32(EVENT_UNIT_EVT_MASK_ADDR, mask);
    return rt_read32(EVENT_UNIT_EVT_WAIT_ADDR);
}

/* End the simulation with `code` (0: success); the calling core then sleeps for good. */
void exit(int code) __attribute__((noreturn));

/* --- Output ------------------------------------------------------------------------------- */

int putchar(int c);
int puts(const char *s); /* appends a newline */

/*
 * Formats: %d %i %u %x %X %p %s %c %%, with the flags '-' (left-justify) and '0' (zero-pad),
 * a field width (digits or '*'), and the length modifiers l, h, hh and z (ignored: all
 * integers are 32-bit). Returns the number of characters written.
 */
int printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *format, va_list args) __attribute__((format(printf, 1, 0)));

/* --- Memory (string.c; clang also calls these for structure copies) ---------------------- */

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* --- Locks -------------------------------------------------------------------------------- */

/* A mutual-exclusion lock for RT_CORES cores; put it in L1 (L1_BSS) and zero it. */
typedef struct {
    volatile uint32_t choosing[RT_CORES];
    volatile uint32_t ticket[RT_CORES];
} rt_lock_t;

void rt_lock(rt_lock_t *lock);
void rt_unlock(rt_lock_t *lock);

/* --- DMA (L1, L2, L3) -------------------------------------------------------------------- */

/*
 * Queue a copy of `bytes` bytes (a multiple of 4, below 2^20) from `src` to `dst`; returns 0,
 * or -1, queueing nothing, for a length that is not a word multiple or does not fit LENGTH,
 * or a row count of 0 or beyond ROWS (dma_copy_2d). Programming the DMA is serialised by a
 * lock, so any core may call these. The DMA moves CLUSTER_DMA_BEAT_BYTES per cycle at any
 * word alignment of either side; CLUSTER_DMA_QUEUE_DEPTH transfers queue behind the running
 * one, and a call while the queue is full waits (in its START store) for a slot. A queued
 * transfer the DMA cannot do (a range not within one of L1, L2, L3, a non-word address or
 * stride, source and destination spans that overlap) is refused: it writes nothing, ends at
 * once like any other, and dma_error() tells the core that queued it why.
 */
int dma_copy_1d(void *dst, const void *src, uint32_t bytes);

/* Queue `rows` rows of `row_bytes` bytes each, `src_stride` / `dst_stride` bytes apart. */
int dma_copy_2d(void *dst, const void *src, uint32_t row_bytes, uint32_t rows,
                uint32_t dst_stride, uint32_t src_stride);

/*
 * Wait until the DMA has no transfer queued or running (STATUS.busy == 0), polling STATUS.
 * This waits for every core's transfers: the DMA's completion event is a per-core pending
 * bit, so completions merge and cannot tell which transfer ended.
 */
void dma_wait(void);

/*
 * Why transfers this core queued were refused since its last call, and clear it: the
 * DMA_ERROR_*_MASK cause bits of cluster_map.h (SRC_RANGE, DST_RANGE, ROWS, ALIGN, OVERLAP, LINK)
 * with the number of refused transfers in DMA_ERROR_REFUSED (dma_error_count()); 0 when none
 * was. Call it once the transfers have ended (after dma_wait() or their DMA events).
 */
uint32_t dma_error(void);

/* The number of refused transfers in a dma_error() value. */
static inline uint32_t dma_error_count(uint32_t error)
{
    return (error & DMA_ERROR_REFUSED_MASK) >> DMA_ERROR_REFUSED_LSB;
}

/* --- Chip-to-chip links (cluster_integration/link.py, docs/multichip.md) ------------------- */

/* The links of the ring: to the next chip, (chip_id() + 1) % num_chips(), and the previous. */
#define LINK_NEXT 0u
#define LINK_PREV 1u

/* This chip's place in the ring and the number of chips (set by the system). */
static inline unsigned chip_id(void)
{
    return (rt_read32(LINK_CHIP_ID_ADDR) & LINK_CHIP_ID_ID_MASK) >> LINK_CHIP_ID_ID_LSB;
}

static inline unsigned num_chips(void)
{
    return (rt_read32(LINK_CHIPS_ADDR) & LINK_CHIPS_CHIPS_MASK) >> LINK_CHIPS_CHIPS_LSB;
}

/*
 * The address that reaches `local`, an L1 or L2 address of this chip's layout, in the chip at
 * the other end of `link`: a DMA transfer to it (dma_copy_1d/2d) is sent over the link and
 * written there. Every chip runs the same memory map, so a buffer's own address names it.
 */
static inline void *link_remote(unsigned link, const void *local)
{
    uint32_t address = (uint32_t)local;
    uint32_t window = REMOTE_BASE + link * REMOTE_WINDOW_SIZE;
    if (address - L1_BASE < L1_SIZE)
        return (void *)(window + (address - L1_BASE));
    return (void *)(window + REMOTE_WINDOW_L2_OFFSET + (address - L2_BASE));
}

/* A counter of `link` (LINK_RX_BYTES0_OFFSET, ..._TX_TRANSFERS0_OFFSET: link 0's offsets). */
static inline uint32_t link_counter(unsigned link, uint32_t offset0)
{
    return rt_read32(LINK_BASE + offset0 + link * LINK_COUNTER_STRIDE);
}

/* Transfers received over `link` since reset (a transfer counts once its last beat is written). */
static inline uint32_t link_rx_transfers(unsigned link)
{
    return link_counter(link, LINK_RX_TRANSFERS0_OFFSET);
}

/* Sleep until `count` transfers have arrived over `link` since reset (the link's event). */
static inline void link_wait(unsigned link, uint32_t count)
{
    while ((int32_t)(link_rx_transfers(link) - count) < 0)
        (void)evt_wait(EVENT_LINK0_MASK << link);
}

#endif /* RUNTIME_H */
