/*
 * The event-unit barrier under load: ROUNDS rounds of unequal work followed by a barrier,
 * checked for correctness and timed.
 *
 * Round r on core c: spin for a core- and round-dependent number of iterations (the last core
 * to arrive changes from round to round), announce the arrival (arrival[c] = r + 1), read
 * mcycle, arrive at the barrier (a load from EVENT_UNIT BARRIER that completes only when
 * every core has arrived; it returns the barrier generation), read mcycle again. After the
 * barrier every core checks that every other core has announced round r (no core left
 * before all arrived) and is at most one round ahead (arrival[i] <= r + 2), and records the
 * generation it got and the cycles it spent in the barrier load. A core that finds the
 * check broken prints an error and ends the run at once with exit(1) (the cores are out of
 * step then, and later barriers could wait forever).
 *
 * At the end core 0 checks that all cores saw the same generation in a round and that it
 * grew by one per round, and reports:
 *   - cost: per round, the cycles the *last* core to arrive spent in the barrier (the
 *     smallest wait of the round: the barrier's own latency, nothing of the imbalance),
 *     averaged over the rounds;
 *   - wait: the average wait over all cores and rounds (latency plus load imbalance);
 *   - b2b: cycles per barrier of BACK_TO_BACK barriers in a row without work.
 * Each core uses its own mcycle only (the counters of different cores are not aligned).
 * The line "barrier: ... cost=<n> ..." is parsed by verif/cluster/kernels.py.
 * Exit code: 0 on success, 1 for a barrier that released early, 2 for a wrong generation.
 *
 * -DBARRIER_COUNT_OVERRIDE=n makes core 0 set EVENT_UNIT BARRIER_COUNT to n first (a
 * negative test: with n < RT_CORES cores leave early and the checks must fail).
 */

#include <stdint.h>

#include "runtime.h"

#ifndef ROUNDS
#define ROUNDS 100
#endif
#ifndef BACK_TO_BACK
#define BACK_TO_BACK 32
#endif

/* arrival[c]: the last round core c announced, plus one. */
static volatile uint32_t arrival[RT_CORES] L1_BSS;
/* Per round and core: cycles spent in the barrier load, the generation it returned (every
 * entry is written before it is read: not zeroed at boot, which would cost cycles). */
static uint32_t wait_cycles[ROUNDS][RT_CORES] L1_NOINIT;
static uint32_t generation[ROUNDS][RT_CORES] L1_NOINIT;
static uint32_t b2b_cycles[RT_CORES] L1_NOINIT;

/* Iterations of busy work of core `core` in round `round`: 0 .. 31, scrambled. */
static unsigned work_amount(unsigned core, unsigned round)
{
    return ((core + 1u) * 37u + round * 101u + ((core * round) & 7u) * 19u) & 0x1Fu;
}

/* Busy work the compiler cannot remove: a few cycles per iteration. */
static uint32_t work(unsigned iterations)
{
    uint32_t x = iterations;
    for (unsigned i = 0; i < iterations; i++) {
        __asm__ volatile("" : "+r"(x));
        x = x * 3u + i;
    }
    return x;
}

/* The barrier load, returning the generation the event unit answers with. */
static inline uint32_t barrier_generation(void)
{
    rt_compiler_barrier();
    uint32_t g = rt_read32(EVENT_UNIT_BARRIER_ADDR);
    rt_compiler_barrier();
    return g;
}

int main(unsigned core)
{
    uint32_t sink = 0;
#ifdef BARRIER_COUNT_OVERRIDE
    /* Negative test: a barrier that releases too early must make the checks fail. */
    if (core == 0)
        rt_write32(EVENT_UNIT_BARRIER_COUNT_ADDR, BARRIER_COUNT_OVERRIDE);
#endif
    uint32_t start = cycles();

    for (unsigned r = 0; r < ROUNDS; r++) {
        sink += work(work_amount(core, r));
        arrival[core] = r + 1;
        uint32_t t0 = cycles();
        uint32_t g = barrier_generation();
        uint32_t t1 = cycles();
        for (unsigned i = 0; i < num_cores(); i++) {
            uint32_t seen = arrival[i];
            if (seen < r + 1 || seen > r + 2) {
                /* The barrier let this core through too early: the cores are out of step
                 * now and later barriers could wait forever, so end the run here. */
                printf("error: core %u left round %u while core %u had announced round "
                       "%d\n", core, r, i, (int)seen - 1);
                exit(1);
            }
        }
        wait_cycles[r][core] = t1 - t0;
        generation[r][core] = g;
    }
    uint32_t loop_cycles = cycles() - start;

    /* Back-to-back barriers: the cost when every core arrives at once. */
    barrier();
    uint32_t t0 = cycles();
    for (unsigned i = 0; i < BACK_TO_BACK; i++)
        barrier();
    b2b_cycles[core] = cycles() - t0;
    barrier();

    if (core != 0)
        return 0;

    uint32_t failures = 0, cost_sum = 0, wait_sum = 0, cost_max = 0, b2b_max = 0;
    for (unsigned c = 0; c < num_cores(); c++) {
        if (b2b_cycles[c] > b2b_max)
            b2b_max = b2b_cycles[c];
    }
    for (unsigned r = 0; r < ROUNDS; r++) {
        uint32_t least = UINT32_MAX;
        for (unsigned c = 0; c < num_cores(); c++) {
            uint32_t w = wait_cycles[r][c];
            wait_sum += w;
            if (w < least)
                least = w;
            if (generation[r][c] != generation[0][0] + r) {
                if (failures < 4)
                    printf("round %u core %u: generation %u, expected %u\n", r, c,
                           (unsigned)generation[r][c], (unsigned)(generation[0][0] + r));
                failures++;
            }
        }
        cost_sum += least;
        if (least > cost_max)
            cost_max = least;
    }
    uint32_t samples = ROUNDS * num_cores();
    uint32_t cost = (100u * cost_sum + ROUNDS / 2) / ROUNDS;         /* hundredths */
    uint32_t wait = (100u * wait_sum + samples / 2) / samples;
    uint32_t b2b = (100u * b2b_max + BACK_TO_BACK / 2) / BACK_TO_BACK;
    printf("barrier: cores=%u rounds=%u cost=%u.%02u cost_max=%u wait=%u.%02u b2b=%u.%02u "
           "loop_cycles=%u generation_errors=%u sink=%x\n",
           num_cores(), ROUNDS, (unsigned)(cost / 100), (unsigned)(cost % 100),
           (unsigned)cost_max, (unsigned)(wait / 100), (unsigned)(wait % 100),
           (unsigned)(b2b / 100), (unsigned)(b2b % 100), (unsigned)loop_cycles,
           (unsigned)failures, (unsigned)sink);
    return failures ? 2 : 0;
}
