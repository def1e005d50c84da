/*
 * Start-up code of every core: the trap vector table at TRAP_VECTOR and _start at
 * BOOT_ADDRESS (both placed by the generated link.ld, cluster_integration/memory_map_gen.py).
 *
 * _start: set gp and this core's stack (top of L1, __stack_size bytes per core), enable the
 * performance counters; core 0 zeroes .bss and .l1.bss and copies .l1 from its load image in
 * L2 while the other cores wait in the event-unit barrier; then every core calls
 * main(core_id). When main returns on core 0 its value goes to SOC_CTRL EXIT, which ends the
 * simulation; every other core (and core 0 after that) sleeps in WFI for good, as no
 * interrupt line is connected.
 */
#include "cluster_map.h"

    .section .vectors, "ax"
    .option push
    .option norvc               /* every entry must be one 4-byte jump */
    .global __vectors
__vectors:
    .rept 32                    /* exceptions enter at entry 0, interrupt i at entry i */
    j __trap_entry
    .endr
    .option pop

    .section .text.init, "ax"
    .global _start
    .type _start, @function
_start:
    .option push
    .option norelax             /* gp is not set yet: no gp-relative relaxation here */
    la gp, __global_pointer$
    .option pop
    csrr s0, mhartid
    andi s0, s0, 0x1f           /* core id: the low 5 bits of mhartid */
    call __set_stack
    csrw mcountinhibit, zero    /* counters are inhibited after reset */
    bnez s0, 3f

    /* Core 0: zero .bss and .l1.bss, copy .l1. All are word-aligned (link.ld). */
    la a0, __bss_start
    la a1, __bss_end
    call __zero_words
    la a0, __l1_bss_start
    la a1, __l1_bss_end
    call __zero_words
    la a0, __l1_data_start
    la a1, __l1_data_end
    la a2, __l1_data_load
    j 2f
1:  lw t0, 0(a2)
    sw t0, 0(a0)
    addi a0, a0, 4
    addi a2, a2, 4
2:  bltu a0, a1, 1b

    /* Every core: the barrier load completes once all cores have arrived. */
3:  li t0, EVENT_UNIT_BARRIER_ADDR
    lw t0, 0(t0)
    mv a0, s0
    call main
    bnez s0, 4f
    li t0, SOC_CTRL_EXIT_ADDR
    sw a0, 0(t0)
4:  wfi
    j 4b
    .size _start, . - _start

    .text
    /* sp = __stack_top - core id (s0) * __stack_size; clobbers t0. */
    .type __set_stack, @function
__set_stack:
    lui t0, %hi(__stack_size)
    addi t0, t0, %lo(__stack_size)
    mul t0, t0, s0
    la sp, __stack_top
    sub sp, sp, t0
    ret
    .size __set_stack, . - __set_stack

    /* Zero the words in [a0, a1); clobbers a0. */
    .type __zero_words, @function
__zero_words:
    j 2f
1:  sw zero, 0(a0)
    addi a0, a0, 4
2:  bltu a0, a1, 1b
    ret
    .size __zero_words, . - __zero_words

    /*
     * Every trap: report it (trap.c) and never return. The stack is set up afresh in case
     * the trap came from a bad sp.
     */
    .global __trap_entry
    .type __trap_entry, @function
    .balign 4
__trap_entry:
    csrr s0, mhartid
    andi s0, s0, 0x1f
    call __set_stack
    mv a0, s0
    csrr a1, mcause
    csrr a2, mepc
    csrr a3, mtval
    j rt_trap
    .size __trap_entry, . - __trap_entry
