/* ITA HAL (see ita.h). */

#include "ita.h"

#include <stddef.h>

#include "runtime.h"

static void write_reg(uint32_t offset, uint32_t value)
{
    rt_write32(ITA_BASE + offset, value);
}

uint32_t ita_read(uint32_t offset)
{
    return rt_read32(ITA_BASE + offset);
}

int ita_acquire(void)
{
    for (;;) {
        int32_t id = ita_hwpe_acquire_job_id_get(ita_read(ITA_HWPE_ACQUIRE_OFFSET));
        if (id >= 0)
            return id;
    }
}

void ita_program_config(const ita_config_t *c)
{
    write_reg(ITA_HWPE_MODE_OFFSET,
              ita_hwpe_mode_pack(c->mode, c->activation, c->bias_enable, c->causal,
                                 c->logit_frac));
    write_reg(ITA_HWPE_DIMS_SE_OFFSET, ita_hwpe_dims_se_pack(c->seq_len, c->embed));
    write_reg(ITA_HWPE_DIMS_PF_OFFSET, ita_hwpe_dims_pf_pack(c->proj, c->ffn));
    write_reg(ITA_HWPE_VALID_KEYS_OFFSET, ita_hwpe_valid_keys_pack(c->valid_keys));
    for (unsigned i = 0; i < ITA_STEPS; i++) {
        const ita_requant_t *r = &c->requant[i];
        write_reg(ita_hwpe_requant_offset((enum ita_step)i),
                  ita_hwpe_requant_pack(r->mult, r->shift, r->add));
    }
    write_reg(ITA_HWPE_GELU_OFFSET, ita_hwpe_gelu_pack(c->gelu_b, c->gelu_c));
    write_reg(ITA_HWPE_ACT_REQUANT_OFFSET,
              ita_hwpe_act_requant_pack(c->act_requant.mult, c->act_requant.shift,
                                        c->act_requant.add));
}

void ita_program_pointer(enum ita_pointer pointer, const void *address)
{
    write_reg(ita_hwpe_pointer_offset(pointer),
              ita_hwpe_pointer_pack((uint32_t)(uintptr_t)address));
}

void ita_program_pointers(const void *const pointer[ITA_PTRS])
{
    for (unsigned i = 0; i < ITA_PTRS; i++)
        ita_program_pointer((enum ita_pointer)i, pointer[i]);
}

void ita_program_job(const ita_job_t *job)
{
    ita_program_config(&job->config);
    ita_program_pointers(job->pointer);
}

void ita_trigger(void)
{
    write_reg(ITA_HWPE_TRIGGER_OFFSET, ITA_HWPE_TRIGGER_RUN);
}

void ita_commit(void)
{
    write_reg(ITA_HWPE_TRIGGER_OFFSET, ITA_HWPE_TRIGGER_COMMIT);
}

uint32_t ita_wait(void)
{
    for (;;) {
        /* Enable the event before looking: a job ending after the check stays pending. */
        rt_write32(EVENT_UNIT_EVT_MASK_ADDR, EVENT_ITA_MASK);
        uint32_t status = ita_read(ITA_HWPE_STATUS_OFFSET);
        if ((status & (ITA_HWPE_STATUS_CONTEXTS_MASK | ITA_HWPE_STATUS_RUNNING_MASK)) == 0)
            break;
        (void)rt_read32(EVENT_UNIT_EVT_WAIT_ADDR);
    }
    return ita_hwpe_error_code_get(ita_read(ITA_HWPE_ERROR_OFFSET));
}

uint32_t ita_run(const ita_job_t *job)
{
    (void)ita_acquire();
    ita_program_job(job);
    ita_trigger();
    return ita_wait();
}

/*
 * Tickets of ita_submit: `submitted` jobs committed, `finished` of them seen ending (FINISHED
 * is a count of jobs ended since its last read, so adding up the reads counts them all), and
 * the job ids of the last tickets, to match the ERROR register's job_id. More than
 * ITA_TICKET_IDS tickets cannot be outstanding: the HWPE holds at most 8 jobs (STATUS).
 */
#define ITA_TICKET_IDS 16u
static uint32_t ita_submitted, ita_finished;
static uint8_t ita_ticket_id[ITA_TICKET_IDS];

uint32_t ita_submit(const ita_job_t *job)
{
    if (ita_finished == ita_submitted) {
        /* None of ours is outstanding: forget the ends of jobs run some other way. */
        (void)ita_read(ITA_HWPE_FINISHED_OFFSET);
    }
    int id = ita_acquire();
    ita_program_job(job);
    ita_trigger();
    ita_submitted++;
    ita_ticket_id[ita_submitted % ITA_TICKET_IDS] = (uint8_t)id;
    return ita_submitted;
}

uint32_t ita_wait_job(uint32_t ticket)
{
    while ((int32_t)(ita_finished - ticket) < 0) {
        /* Enable the event before looking: a job ending after the read stays pending. */
        rt_write32(EVENT_UNIT_EVT_MASK_ADDR, EVENT_ITA_MASK);
        ita_finished += ita_hwpe_finished_count_get(ita_read(ITA_HWPE_FINISHED_OFFSET));
        if ((int32_t)(ita_finished - ticket) >= 0)
            break;
        (void)rt_read32(EVENT_UNIT_EVT_WAIT_ADDR);
    }
    uint32_t error = ita_read(ITA_HWPE_ERROR_OFFSET);
    if (ita_hwpe_error_job_id_get(error) != ita_ticket_id[ticket % ITA_TICKET_IDS])
        return ITA_ERROR_OVERWRITTEN;
    return ita_hwpe_error_code_get(error);
}

void ita_soft_clear(int clear_registers)
{
    ita_finished = ita_submitted; /* dropped jobs never end: count them as ended */
    write_reg(ITA_HWPE_SOFT_CLEAR_OFFSET,
              clear_registers ? ITA_HWPE_SOFT_CLEAR_ALL : ITA_HWPE_SOFT_CLEAR_KEEP_REGISTERS);
}
