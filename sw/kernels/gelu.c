/*
 * k_gelu: i-GELU (I-BERT polynomial with the engine's 26-bit wrapping) and its requantization.
 *
 * The result depends on the int8 input only, so the cores first fill a 256-entry table
 * together (32 entries each with 8 cores), meet in a barrier, and then look every element
 * up: three memory accesses per element instead of the polynomial, two products and the
 * requantization.
 */

#include "k_common.h"
#include "kernels.h"

/* Two's-complement wrap of v to 26 bits (arithmetic in uint32 keeps the low bits exact). */
static inline int32_t wrap26(uint32_t v)
{
    return (int32_t)(v << 6) >> 6;
}

static int8_t gelu_table[256] L1_BSS;

static int8_t gelu_one(int32_t q, int32_t b, int32_t c, const k_rq_t *rq)
{
    int32_t mag = q < 0 ? -q : q;
    int32_t t = mag < -b ? mag : -b;                        /* min(|q|, -b) */
    uint32_t tb = (uint32_t)(t + b);
    int32_t poly = wrap26(tb * tb + (uint32_t)c);           /* (t + b)^2 + c */
    int32_t erf = q < 0 ? -poly : poly;
    int32_t sum = wrap26((uint32_t)erf + (uint32_t)c);      /* e + c */
    return k_requant(wrap26((uint32_t)q * (uint32_t)sum), rq);   /* q * (e + c) */
}

int k_gelu(const int8_t *x, int8_t *out, int count, int b, int c, int mult, int shift,
           int add)
{
    if (k_rq_check(mult, shift, add))
        return K_ERR_REQUANT;
    if ((uint32_t)b + 32768u > 65535u || (uint32_t)c + 32768u > 65535u)
        return K_ERR_GELU_CONST;
    const k_rq_t rq = k_rq_make(mult, shift, add, 1u << 25);
    int lo, hi;
    k_span(256, 4, &lo, &hi);
    for (int v = lo; v < hi; v++)
        gelu_table[v] = gelu_one(v - 128, b, c, &rq);
    barrier();
    k_span(count, 4, &lo, &hi);
    const int rot = k_rotation(x, lo, hi);
    for (int i = lo + rot; i < hi; i++)
        out[i] = gelu_table[x[i] + 128];
    for (int i = lo; i < lo + rot; i++)
        out[i] = gelu_table[x[i] + 128];
    barrier();
    return K_OK;
}
