/*
 * Trap report: every exception (and any interrupt, though none is connected) enters here from
 * the vector table in crt0.S, on a fresh stack. The handler prints one line without taking the
 * output lock (the trap may have happened inside printf), then writes mcause to SOC_CTRL TRAP
 * and mepc to TRAP_PC, which ends the simulation as a failure.
 */

#include "runtime.h"

void rt_trap(unsigned core, uint32_t mcause, uint32_t mepc, uint32_t mtval)
    __attribute__((noreturn));

/* Out of line and not unrolled: this path is about size, not speed. */
static __attribute__((noinline)) void put_text(const char *s)
{
    while (*s)
        putchar(*s++);
}

static __attribute__((noinline)) void put_hex(uint32_t value)
{
    put_text("0x");
#pragma clang loop unroll(disable)
    for (int shift = 28; shift >= 0; shift -= 4)
        putchar("0123456789abcdef"[(value >> shift) & 0xFu]);
}

void rt_trap(unsigned core, uint32_t mcause, uint32_t mepc, uint32_t mtval)
{
    put_text("\n*** trap on core ");
    if (core >= 10)
        putchar('0' + (int)(core / 10u));
    putchar('0' + (int)(core % 10u));
    put_text(": mcause=");
    put_hex(mcause);
    put_text(" mepc=");
    put_hex(mepc);
    put_text(" mtval=");
    put_hex(mtval);
    putchar('\n');
    rt_write32(SOC_CTRL_TRAP_ADDR, mcause);
    rt_write32(SOC_CTRL_TRAP_PC_ADDR, mepc);
    for (;;)
        __asm__ volatile("wfi");
}
