/*
 * Executes an illegal instruction on purpose, to test the trap report: mcause 2 and the PC of
 * the instruction (the global label trap_here) reach SOC_CTRL TRAP / TRAP_PC.
 */

#include "runtime.h"

int main(unsigned core)
{
    if (core == 0) {
        puts("about to execute an illegal instruction");
        /* 0x00000000 is defined to be illegal in every RISC-V encoding. */
        __asm__ volatile(".global trap_here\n"
                         "trap_here:\n"
                         ".4byte 0x00000000");
        puts("not reached");
        return 1;
    }
    barrier(); /* never completes: core 0 does not arrive */
    return 0;
}
