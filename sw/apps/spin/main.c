/*
 * A long pure-software run for simulation speed measurements (hw/harness, `make run APP=spin`):
 * every core computes for about 2 M cluster cycles with the ITA idle, then core 0 checks the
 * results and exits with the number of wrong ones (0 on success).
 *
 * Core c runs SPIN_ITERATIONS iterations of: square i, store it into its own L1 ring buffer,
 * load it back (volatile: real TCDM traffic through the banks), accumulate (c + 1) * i^2.
 * The expected sum has a closed form, (c + 1) * (n - 1) n (2n - 1) / 6 mod 2^32, computed by
 * core 0 in 64-bit arithmetic after a barrier.
 */

#include <stdint.h>

#include "runtime.h"

#ifndef SPIN_ITERATIONS
#define SPIN_ITERATIONS 160000u
#endif
#define RING 16u

static volatile uint32_t ring[RT_CORES][RING] L1_BSS;
static uint32_t result[RT_CORES] L1_BSS;
static uint32_t spent[RT_CORES] L1_BSS;

static uint32_t spin(unsigned core, uint32_t n)
{
    volatile uint32_t *buf = ring[core];
    uint32_t k = core + 1u, acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        buf[i % RING] = i * i;
        acc += k * buf[i % RING];
    }
    return acc;
}

static uint32_t expected(unsigned core, uint32_t n)
{
    uint64_t m = n;
    uint64_t squares = m == 0 ? 0 : (m - 1) * m * (2 * m - 1) / 6;
    return (uint32_t)squares * (core + 1u);
}

int main(unsigned core)
{
    uint32_t start = cycles();
    result[core] = spin(core, SPIN_ITERATIONS);
    spent[core] = cycles() - start;
    barrier();
    if (core != 0)
        return 0;
    int wrong = 0;
    for (unsigned c = 0; c < num_cores(); c++) {
        uint32_t want = expected(c, SPIN_ITERATIONS);
        if (result[c] != want) {
            printf("spin: core %u: got %08x, expected %08x\n", c, result[c], want);
            wrong++;
        }
    }
    printf("spin: %u cores x %u iterations, %s; %u cycles on core 0\n", num_cores(),
           (unsigned)SPIN_ITERATIONS, wrong ? "WRONG" : "all results correct", spent[0]);
    return wrong;
}
