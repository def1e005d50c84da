/*
 * Register-level check of the drivers on the single-core test top, which logs every write to
 * the event unit, DMA and ITA: one 2-D DMA copy, an event wait, and a whole ITA job through
 * ita_run() with a distinct value in every field. tests/sw/test_runtime.py compares the log
 * with the Python register model. (The test top answers every register read with 0: ACQUIRE
 * gives job 0, STATUS and the DMA read idle.)
 */

#include "ita.h"
#include "runtime.h"

int main(unsigned core)
{
    if (core != 0)
        return 0;
    if (dma_copy_2d((void *)(L1_BASE + 0x100), (const void *)(L2_BASE + 0x8000), 64, 3, 128,
                    256) != 0)
        return 1;
    if (dma_copy_1d((void *)L1_BASE, (const void *)L2_BASE, 6) != -1) /* not a word multiple */
        return 2;
    dma_wait();
    (void)evt_wait(EVENT_SW0_MASK | EVENT_DMA_MASK);

    ita_job_t job = {
        .config = {
            .mode = ITA_MODE_FFN,
            .activation = ITA_ACT_GELU,
            .bias_enable = 1,
            .causal = 1,
            .seq_len = 100,
            .embed = 72,
            .proj = 40,
            .ffn = 160,
            .valid_keys = 90,
            .gelu_b = -1234,
            .gelu_c = 567,
            .act_requant = {7, 9, -5},
            .logit_frac = 2,
        },
    };
    for (unsigned i = 0; i < ITA_STEPS; i++)
        job.config.requant[i] = (ita_requant_t){10 + i, 20 + i, -3 - (int32_t)i};
    for (unsigned i = 0; i < ITA_PTRS; i++)
        job.pointer[i] = (const void *)(uintptr_t)(L1_BASE + 0x1000 * i);
    return (int)ita_run(&job);
}
