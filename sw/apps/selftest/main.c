/*
 * Runtime self-test for one core: printf formats, the start-up copies and clears (.l1,
 * .l1.bss, .bss), compiler_rt (64-bit division), the mem* functions (and a structure copy,
 * which clang turns into a memcpy call), the counters and a CORE-V SIMD instruction
 * (cv.sdotsp.b, present because the core is built with COREV_PULP = 1). Prints one line of
 * formats, one line per failed check and a summary; returns the number of failures.
 */

#include "runtime.h"

/* volatile: the compiler must read memory, not fold the initial values. */
static volatile int32_t l1_init[4] L1_DATA = {1, -2, 3, 0x12345678};
static volatile uint32_t l1_zero[8] L1_BSS;
static volatile uint32_t bss_zero[8];
static volatile uint64_t dividend = 1000000000007ull;
static volatile uint32_t divisor = 7;

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static int in_l1(const volatile void *p)
{
    uint32_t a = (uint32_t)(uintptr_t)p;
    return a >= L1_BASE && a < L1_BASE + L1_SIZE;
}

int main(unsigned core)
{
    if (core != 0) {
        barrier();
        return 0;
    }
    printf("[%d|%5d|%-5d|%05d|%x|%X|%08x|%u|%c|%s|%-4s|%4s|%%|%p|%*d]\n", -42, 42, 42, -42,
           0xbeefu, 0xbeefu, 0x1234u, 4000000000u, 'z', "str", "ab", "ab", (void *)0x10, 3, 7);

    check(in_l1(l1_init) && in_l1(l1_zero), "L1 sections are in L1");
    check(l1_init[0] == 1 && l1_init[1] == -2 && l1_init[2] == 3 && l1_init[3] == 0x12345678,
          ".l1 copied");
    uint32_t zeros = 0;
    for (unsigned i = 0; i < 8; i++)
        zeros |= l1_zero[i] | bss_zero[i];
    check(zeros == 0, ".bss and .l1.bss zeroed");

    uint64_t quotient = dividend / divisor;
    check(quotient == 142857142858ull, "64-bit division (compiler_rt)");

    int32_t acc = 100;
    int32_t a = (int32_t)0x01FF0203; /* bytes 3, 2, -1, 1 */
    int32_t b = 0x02030405;          /* bytes 5, 4, 3, 2 */
    __asm__ volatile("cv.sdotsp.b %0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    check(acc == 100 + 15 + 8 - 3 + 2, "cv.sdotsp.b");

    struct {
        uint32_t w[13];
        char tail[3];
    } x, y;
    for (unsigned i = 0; i < 13; i++)
        x.w[i] = i * 0x01010101u;
    memcpy(x.tail, "ab", 3);
    y = x; /* clang emits a memcpy call */
    check(memcmp(&x, &y, sizeof x) == 0 && y.w[12] == 0x0C0C0C0Cu, "structure copy");
    char text[] = "0123456789";
    memmove(text + 2, text, 5);
    check(memcmp(text, "0101234789", 11) == 0, "memmove to a higher, overlapping address");
    memmove(text, text + 3, 4);
    check(memcmp(text, "1234234789", 11) == 0, "memmove to a lower, overlapping address");
    memset(text + 1, 'x', 7);
    check(memcmp(text, "1xxxxxxx89", 11) == 0, "memset");

    uint32_t c0 = cycles(), i0 = instret();
    barrier();
    check(cycles() > c0 && instret() > i0, "mcycle and minstret count");
    check(core_id() == 0 && num_cores() == RT_CORES, "core_id and num_cores");

    printf("selftest: %d failures\n", failures);
    return failures;
}
