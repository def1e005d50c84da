/*
 * memcpy, memmove, memset, memcmp: clang calls these for structure copies and zero-initialised
 * arrays even in freestanding code. Word-wide where alignment allows. The runtime is built
 * with -fno-builtin, so these loops are not turned back into calls to themselves.
 */

#include "runtime.h"

typedef uint32_t __attribute__((may_alias)) word_t;

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if ((((uintptr_t)d ^ (uintptr_t)s) & 3u) == 0) {
        for (; n && ((uintptr_t)d & 3u); n--)
            *d++ = *s++;
        for (; n >= 4; n -= 4, d += 4, s += 4)
            *(word_t *)d = *(const word_t *)s;
    }
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d <= s || d >= s + n)
        return memcpy(dst, src, n); /* forward copying is safe */
    while (n--)
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    unsigned char byte = (unsigned char)c;
    for (; n && ((uintptr_t)d & 3u); n--)
        *d++ = byte;
    word_t word = byte * 0x01010101u;
    for (; n >= 4; n -= 4, d += 4)
        *(word_t *)d = word;
    while (n--)
        *d++ = byte;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}
