/*
 * ITA HAL: program and run jobs on the ITA HWPE through its control registers
 * (sw/include/generated/ita_hwpe_regs.h, from cluster_integration/hwpe/regmap.py).
 *
 * A job is a whole operation (attention head, feed-forward block, linear layer); tensors are
 * row-major in L1, zero-padded to whole ITA_M x ITA_M tiles. The usual sequence:
 *
 *     ita_job_t job = {...};
 *     int id = ita_acquire();        // lock the job registers, get a job id
 *     ita_program_job(&job);
 *     ita_trigger();                 // commit and start (releases the lock)
 *     uint32_t error = ita_wait();   // sleep until idle; the error code, 0 on success
 *
 * Waiting: the HWPE raises its event for the core that committed a job, once STATUS shows
 * the job's end. ita_wait() sleeps on this core's ITA event and re-checks STATUS, so it must
 * run on the core that committed the last outstanding job (in practice one core drives the
 * ITA). ita_acquire() polls ACQUIRE, so any core may call it.
 *
 * Queueing: the HWPE holds ITA_CONTEXTS jobs and starts a triggered one the cycle the engine
 * frees, so a job submitted while another runs follows it without a gap:
 *
 *     uint32_t a = ita_submit(&job0);  // starts at once
 *     uint32_t b = ita_submit(&job1);  // waits in the second context
 *     uint32_t error = ita_wait_job(a); // job0 done; job1 is running now
 *
 * ita_submit() returns a ticket (1, 2, ... in submission order) and ita_wait_job() counts
 * finished jobs through FINISHED, so one core submits and waits, and it waits for every job
 * run some other way (ita_run) before it submits again.
 */

#ifndef ITA_H
#define ITA_H

#include <stdint.h>

#include "ita_hwpe_regs.h" /* enum ita_step, enum ita_pointer, the encodings */

typedef struct {
    uint32_t mult;  /* unsigned multiplier */
    uint32_t shift; /* right shift */
    int32_t add;    /* signed offset */
} ita_requant_t;

/* Everything of a job except the tensor addresses. */
typedef struct {
    uint32_t mode;        /* ITA_MODE_* */
    uint32_t activation;  /* ITA_ACT_* (FFN F1, linear) */
    uint32_t bias_enable; /* 0 or 1 */
    uint32_t causal;      /* 0 or 1 */
    uint32_t seq_len;     /* S */
    uint32_t embed;       /* E */
    uint32_t proj;        /* P */
    uint32_t ffn;         /* F */
    uint32_t valid_keys;  /* keys in the softmax; 0: all S */
    ita_requant_t requant[ITA_STEPS];
    int32_t gelu_b;
    int32_t gelu_c;
    ita_requant_t act_requant;
    uint32_t logit_frac;  /* softmax logit step ln 2 / 2^logit_frac; 0: the reference's */
} ita_config_t;

typedef struct {
    ita_config_t config;
    const void *pointer[ITA_PTRS]; /* byte addresses, word-aligned; NULL for unused tensors */
} ita_job_t;

/* Lock the job registers for this core; returns the new job id (0..255). Spins until free. */
int ita_acquire(void);

/* Write the job registers (after ita_acquire). */
void ita_program_config(const ita_config_t *config);
void ita_program_pointer(enum ita_pointer pointer, const void *address);
void ita_program_pointers(const void *const pointer[ITA_PTRS]);
void ita_program_job(const ita_job_t *job);

/* Commit the programmed job and start it when the engine is free; releases the lock. */
void ita_trigger(void);
/* Commit only: the job waits for a later ita_trigger(); releases the lock. */
void ita_commit(void);

/* Sleep until no job is committed or running; returns the last job's error code (ITA_ERROR_*,
 * 0: success), the code field of the ERROR register. */
uint32_t ita_wait(void);

/* Acquire, program, trigger and wait; returns the job's error code (0: success). */
uint32_t ita_run(const ita_job_t *job);

/* ita_wait_job's code when the ERROR register already holds a later job's outcome (the
 * waiting core came back after two jobs had ended): the job's own code is lost. */
#define ITA_ERROR_OVERWRITTEN 0xFFFFFFFFu

/* Acquire, program and trigger without waiting; returns the job's ticket (see above). Spins
 * only while every context holds a job. */
uint32_t ita_submit(const ita_job_t *job);

/* Sleep until the job of `ticket` has finished; returns its error code (0: success), or
 * ITA_ERROR_OVERWRITTEN. Jobs finish in submission order, so earlier tickets are done too. */
uint32_t ita_wait_job(uint32_t ticket);

/* Abort everything and clear the engine; with clear_registers also zero the job registers.
 * The tickets of the jobs it drops count as finished. */
void ita_soft_clear(int clear_registers);

/* Read a register at `offset` (ITA_HWPE_*_OFFSET), e.g. STATUS or FINISHED. */
uint32_t ita_read(uint32_t offset);

#endif /* ITA_H */
