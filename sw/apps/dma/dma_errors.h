/* Step 10 of the dma program: refused transfers (errors.c). */

#ifndef DMA_ERRORS_H
#define DMA_ERRORS_H

#include <stdint.h>

/* Run on core 0 alone; returns the number of failed checks. */
uint32_t dma_error_checks(void);

#endif /* DMA_ERRORS_H */
