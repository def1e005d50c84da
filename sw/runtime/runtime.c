/* Runtime services: output, exit, locks and the DMA driver (see runtime.h). */

#include "runtime.h"

#include <stddef.h>

/* Serialise printf/puts output and DMA programming across cores. One section each, so that
 * --gc-sections drops the lock of an unused service. */
static rt_lock_t stdout_lock __attribute__((section(".l1.bss.stdout_lock")));
static rt_lock_t dma_lock __attribute__((section(".l1.bss.dma_lock")));

/* --- Locks -------------------------------------------------------------------------------- */

/*
 * Lamport's bakery lock: plain loads and stores suffice because each core's accesses reach
 * memory in program order (in-order core, one outstanding request per port, TCDM bank
 * accesses serialised at the grant).
 */
void rt_lock(rt_lock_t *lock)
{
    unsigned me = core_id();
    uint32_t mine = 0;

    lock->choosing[me] = 1;
    rt_compiler_barrier();
    for (unsigned i = 0; i < RT_CORES; i++) {
        uint32_t t = lock->ticket[i];
        if (t > mine)
            mine = t;
    }
    mine += 1;
    lock->ticket[me] = mine;
    rt_compiler_barrier();
    lock->choosing[me] = 0;
    rt_compiler_barrier();
    for (unsigned i = 0; i < RT_CORES; i++) {
        if (i == me)
            continue;
        while (lock->choosing[i])
            ;
        /* Wait while core i holds a smaller (ticket, id) pair. */
        for (;;) {
            uint32_t t = lock->ticket[i];
            if (t == 0 || t > mine || (t == mine && i > me))
                break;
        }
    }
    rt_compiler_barrier();
}

void rt_unlock(rt_lock_t *lock)
{
    rt_compiler_barrier();
    lock->ticket[core_id()] = 0;
}

/* --- Output ------------------------------------------------------------------------------- */

int putchar(int c)
{
    rt_write32(SOC_CTRL_PUTCHAR_ADDR, (uint32_t)(unsigned char)c);
    return (unsigned char)c;
}

static int put_string(const char *s)
{
    int n = 0;
    while (*s) {
        putchar(*s++);
        n++;
    }
    return n;
}

int puts(const char *s)
{
    rt_lock(&stdout_lock);
    int n = put_string(s);
    putchar('\n');
    rt_unlock(&stdout_lock);
    return n + 1;
}

/* Write `text` (length `len`) padded with `pad` to `width`; returns characters written. */
static int put_field(const char *text, int len, int width, int left, char pad)
{
    int n = 0;
    if (pad == '0' && (*text == '-') && len > 0) { /* sign before zero padding */
        putchar(*text++);
        len--;
        width--;
        n++;
    }
    if (!left)
        for (; width > len; width--, n++)
            putchar(pad);
    for (int i = 0; i < len; i++, n++)
        putchar(text[i]);
    if (left)
        for (; width > len; width--, n++)
            putchar(' ');
    return n;
}

/* Digits of `value` in `base` into the end of buf[12]; returns the first character. */
static char *format_unsigned(char *end, uint32_t value, unsigned base, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = end;
    do {
        *--p = digits[value % base];
        value /= base;
    } while (value);
    return p;
}

static int format(const char *f, va_list args)
{
    int n = 0;
    char buf[12];
    char *end = buf + sizeof buf;

    for (; *f; f++) {
        if (*f != '%') {
            putchar(*f);
            n++;
            continue;
        }
        f++;
        int left = 0;
        char pad = ' ';
        for (;; f++) {
            if (*f == '-')
                left = 1;
            else if (*f == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        if (*f == '*') {
            width = va_arg(args, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            f++;
        } else {
            while (*f >= '0' && *f <= '9')
                width = width * 10 + (*f++ - '0');
        }
        while (*f == 'l' || *f == 'h' || *f == 'z')
            f++;
        if (left)
            pad = ' ';

        const char *text = end;
        char c;
        switch (*f) {
        case 'd':
        case 'i': {
            int value = va_arg(args, int);
            uint32_t magnitude = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
            char *p = format_unsigned(end, magnitude, 10, 0);
            if (value < 0)
                *--p = '-';
            text = p;
            break;
        }
        case 'u':
            text = format_unsigned(end, va_arg(args, unsigned), 10, 0);
            break;
        case 'x':
        case 'X':
            text = format_unsigned(end, va_arg(args, unsigned), 16, *f == 'X');
            break;
        case 'p': {
            char *p = format_unsigned(end, (uint32_t)(uintptr_t)va_arg(args, void *), 16, 0);
            *--p = 'x';
            *--p = '0';
            text = p;
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            if (s == NULL)
                s = "(null)";
            int len = 0;
            while (s[len])
                len++;
            n += put_field(s, len, width, left, ' ');
            continue;
        }
        case 'c':
            c = (char)va_arg(args, int);
            n += put_field(&c, 1, width, left, ' ');
            continue;
        case '%':
            putchar('%');
            n++;
            continue;
        case '\0': /* a lone '%' at the end */
            return n;
        default: /* unknown conversion: print it as it stands */
            putchar('%');
            putchar(*f);
            n += 2;
            continue;
        }
        n += put_field(text, (int)(end - text), width, left, pad);
    }
    return n;
}

int vprintf(const char *fmt, va_list args)
{
    rt_lock(&stdout_lock);
    int n = format(fmt, args);
    rt_unlock(&stdout_lock);
    return n;
}

int printf(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vprintf(fmt, args);
    va_end(args);
    return n;
}

/* --- Exit --------------------------------------------------------------------------------- */

void exit(int code)
{
    rt_write32(SOC_CTRL_EXIT_ADDR, (uint32_t)code);
    for (;;)
        __asm__ volatile("wfi");
}

/* --- DMA ---------------------------------------------------------------------------------- */

int dma_copy_2d(void *dst, const void *src, uint32_t row_bytes, uint32_t rows,
                uint32_t dst_stride, uint32_t src_stride)
{
    if (row_bytes % 4 || row_bytes > (DMA_LENGTH_BYTES_MASK >> DMA_LENGTH_BYTES_LSB)
        || rows == 0 || rows > (DMA_ROWS_ROWS_MASK >> DMA_ROWS_ROWS_LSB))
        return -1;
    rt_lock(&dma_lock);
    rt_write32(DMA_SRC_ADDR, (uint32_t)(uintptr_t)src);
    rt_write32(DMA_DST_ADDR, (uint32_t)(uintptr_t)dst);
    rt_write32(DMA_LENGTH_ADDR, row_bytes);
    rt_write32(DMA_ROWS_ADDR, rows);
    rt_write32(DMA_SRC_STRIDE_ADDR, src_stride);
    rt_write32(DMA_DST_STRIDE_ADDR, dst_stride);
    rt_write32(DMA_START_ADDR, 1);
    rt_unlock(&dma_lock);
    return 0;
}

int dma_copy_1d(void *dst, const void *src, uint32_t bytes)
{
    return dma_copy_2d(dst, src, bytes, 1, bytes, bytes);
}

void dma_wait(void)
{
    while (rt_read32(DMA_STATUS_ADDR) & DMA_STATUS_BUSY_MASK)
        ;
}

uint32_t dma_error(void)
{
    return rt_read32(DMA_ERROR_ADDR);
}
