/*
 * Helpers shared by the kernels (not part of their interface): the requantization, the
 * split of work over the cores, and word loads.
 */

#ifndef K_COMMON_H
#define K_COMMON_H

#include <stdint.h>

#include "kernels.h"
#include "runtime.h"

/* K_ERR_REQUANT unless mult, shift and add lie in the engine's ranges (ita.golden.requant
 * raises outside them; a larger mult can overflow the 32-bit paths). */
static inline int k_rq_check(int mult, int shift, int add)
{
    return (uint32_t)mult > 255u || (uint32_t)shift > 255u || (uint32_t)add + 128u > 255u
               ? K_ERR_REQUANT
               : K_OK;
}

/* The status of a call from each core's finding `mine` (on its share of the data): every
 * core stores it in its slot of `slots` (one array of num_cores() per kernel, in L1), meets
 * the others in a barrier and takes the first non-zero slot, so all return the same code.
 * One set of slots suffices: a core writes its slot again only in the kernel's next call,
 * after the final barrier of this one, which waits for every core's reads. */
static inline int k_agree(volatile int32_t *slots, int mine)
{
    slots[core_id()] = mine;
    barrier();
    int status = K_OK;
    for (unsigned c = 0; c < num_cores() && !status; c++)
        status = slots[c];
    return status;
}

/* A requantization prepared once per call: `fast` when every reachable value v gives
 * |mult * v| + 2^(shift-1) < 2^31, so that 32-bit arithmetic is exact. */
typedef struct {
    int32_t mult, shift, add, round;
    int fast;
    /* `fold` when also |mult * v| + 2^(shift-1) + 128 * 2^shift < 2^31: then
     * floor((mult * v + 2^(shift-1)) / 2^shift) + add = (mult * v + k) >> shift, k =
     * 2^(shift-1) + add * 2^shift (one multiply-accumulate and one shift, k_requant_fold). */
    int fold;
    int32_t k;
} k_rq_t;

/* `bound` is the largest |v| the kernel can pass to k_requant with these constants. */
static inline k_rq_t k_rq_make(int mult, int shift, int add, uint32_t bound)
{
    k_rq_t rq;
    rq.mult = mult;
    rq.shift = shift > 62 ? 62 : shift; /* as ita.golden.requant: larger shifts act alike */
    rq.add = add;
    rq.round = rq.shift > 0 && rq.shift < 32 ? 1 << (rq.shift - 1) : 0;
    uint64_t worst = (uint64_t)bound * (uint32_t)mult + (uint32_t)rq.round;
    rq.fast = rq.shift < 32 && worst < (1u << 31);
    rq.fold = rq.fast && rq.shift < 24 && worst + (128u << rq.shift) < (1u << 31);
    rq.k = rq.fold ? rq.round + (int32_t)((uint32_t)rq.add << rq.shift) : 0;
    return rq;
}

/* clamp(v, -128, 127) in one instruction (cv.clip with 8 bits), as an int32 (no sign
 * extension needed before k_pack4). */
static inline int32_t k_clip8(int32_t v)
{
    int32_t r;
    __asm__("cv.clip %0, %1, 8" : "=r"(r) : "r"(v));
    return r;
}

static inline int8_t k_sat8(int32_t v)
{
    return (int8_t)k_clip8(v);
}

/* acc + the sum of the four products of the unsigned lanes of u and the int8 lanes of v
 * (cv.sdotusp.b). */
static inline int32_t k_sdotusp4(int32_t acc, uint32_t u, uint32_t v)
{
    __asm__("cv.sdotusp.b %0, %1, %2" : "+r"(acc) : "r"(u), "r"(v));
    return acc;
}

/* acc + a * b in one instruction (cv.mac). */
static inline int32_t k_mac(int32_t acc, int32_t a, int32_t b)
{
    __asm__("cv.mac %0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

/* The sum of the four products of the unsigned lanes of u and the int8 lanes of v
 * (cv.dotusp.b, no accumulator). */
static inline int32_t k_dotusp4(uint32_t u, uint32_t v)
{
    int32_t r;
    __asm__("cv.dotusp.b %0, %1, %2" : "=r"(r) : "r"(u), "r"(v));
    return r;
}

/* (v + a + 2^(s-1)) >> s, arithmetic, for 0 <= s < 32 (no rounding term when s = 0) in one
 * instruction (cv.addrnr); the 32-bit sum wraps. */
static inline int32_t k_addrn(int32_t v, int32_t a, int32_t s)
{
    __asm__("cv.addrnr %0, %1, %2" : "+r"(v) : "r"(a), "r"(s));
    return v;
}

/* clamp(floor((mult * v + 2^(shift-1)) / 2^shift) + add, -128, 127) */
static inline int8_t k_requant(int32_t v, const k_rq_t *rq)
{
    if (rq->fast)
        return k_sat8(((v * rq->mult + rq->round) >> rq->shift) + rq->add);
    int64_t p = (int64_t)v * rq->mult;
    if (rq->shift > 0) {
        int64_t q = p >> (rq->shift - 1); /* then floor((q + 1) / 2) rounds half up */
        p = (q >> 1) + (q & 1);
    }
    p += rq->add;
    return (int8_t)(p > 127 ? 127 : p < -128 ? -128 : p);
}

/* k_requant for an rq with `fold` set, as an int32. */
static inline int32_t k_requant_fold(int32_t v, const k_rq_t *rq)
{
    return k_clip8(k_mac(rq->k, v, rq->mult) >> rq->shift);
}

/* This core's share [*lo, *hi) of `count` items cut into chunks of `quantum` (so that cores
 * write whole words when quantum is a multiple of 4). */
static inline void k_span(int count, int quantum, int *lo, int *hi)
{
    int cores = (int)num_cores(), core = (int)core_id();
    int units = (count + quantum - 1) / quantum;
    int per = (units + cores - 1) / cores;
    int a = core * per * quantum, b = a + per * quantum;
    *lo = a < count ? a : count;
    *hi = b < count ? b : count;
}

/*
 * Where this core starts in its share [lo, hi) of a byte array at `base`, so that the cores,
 * running in step, touch different L1 banks: word (4 * core) modulo CLUSTER_L1_BANKS. Loops
 * then run from lo + rot to hi and wrap around to lo; any order gives the same result for
 * element-wise work. 0 when the share is too short.
 */
static inline int k_rotation(const void *base, int lo, int hi)
{
    const uint32_t banks = CLUSTER_L1_BANKS;
    uint32_t word = ((uint32_t)(uintptr_t)base + (uint32_t)lo) >> 2;
    uint32_t rot = 4u * (((4u * core_id() - word) % banks + banks) % banks);
    return rot < (uint32_t)(hi - lo) ? (int)rot : 0;
}

/* Whether p is word-aligned. Word loads are only issued on aligned addresses (a misaligned
 * one costs two bus accesses); unaligned operands take byte loads (k_bytes). */
static inline int k_aligned(const void *p)
{
    return ((uintptr_t)p & 3u) == 0;
}

/* The four bytes at p as one little-endian word, for any alignment. */
static inline uint32_t k_bytes(const int8_t *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return u[0] | ((uint32_t)u[1] << 8) | ((uint32_t)u[2] << 16) | ((uint32_t)u[3] << 24);
}

/* The word at p (word-aligned), then p += 4. The "m" operand orders the load after the
 * memory clobbers of barrier(). */
static inline uint32_t k_lw_inc(const int8_t **p)
{
    uint32_t w;
    __asm__("cv.lw %0, (%1), 4" : "=r"(w), "+r"(*p) : "m"(**p));
    return w;
}

/* The word at p + off (word-aligned). */
static inline uint32_t k_lw_off(const int8_t *p, int off)
{
    uint32_t w;
    __asm__("cv.lw %0, %2(%1)" : "=r"(w) : "r"(p), "r"(off), "m"(p[off]));
    return w;
}

/* acc + the sum of the four products of the int8 lanes of a and b */
static inline int32_t k_sdot4(int32_t acc, uint32_t a, uint32_t b)
{
    __asm__("cv.sdotsp.b %0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}

/* Byte `i` of w, sign-extended (cv.extract.b). */
#define K_BYTE(w, i)                                                                       \
    ({                                                                                     \
        int32_t k_b_;                                                                      \
        __asm__("cv.extract.b %0, %1, " #i : "=r"(k_b_) : "r"(w));                        \
        k_b_;                                                                              \
    })

/* The low bytes of a, b, c, d as one little-endian word (cv.packlo.b, cv.packhi.b). The
 * upper half left by cv.packlo.b is overwritten by cv.packhi.b, so w needs no initial value. */
static inline uint32_t k_pack4(int32_t a, int32_t b, int32_t c, int32_t d)
{
    uint32_t w;
    __asm__("cv.packlo.b %0, %1, %2" : "=r"(w) : "r"(b), "r"(a));
    __asm__("cv.packhi.b %0, %1, %2" : "+r"(w) : "r"(d), "r"(c));
    return w;
}

/* Store w at p (word-aligned), then p += 4. */
static inline void k_sw_inc(int8_t **p, uint32_t w)
{
    __asm__ volatile("cv.sw %2, (%0), 4" : "+r"(*p), "=m"(*(uint32_t *)*p) : "r"(w));
}

/* Bytes picked from a and b by the lanes of sel (cv.shuffle2.b): lane i of the result is byte
 * sel.b[i] & 3 of b if sel.b[i] & 4, else of a. */
static inline uint32_t k_shuffle2(uint32_t a, uint32_t b, uint32_t sel)
{
    __asm__("cv.shuffle2.b %0, %1, %2" : "+r"(a) : "r"(b), "r"(sel));
    return a;
}

/* The four int8 lanes of w as int16 pairs: *even = (b0, b2), *odd = (b1, b3). */
static inline void k_unpack_h(uint32_t w, uint32_t *even, uint32_t *odd)
{
    uint32_t e = w << 8, o;
    __asm__("cv.sra.sci.h %0, %1, 8" : "=r"(o) : "r"(w));
    __asm__("cv.sra.sci.h %0, %1, 8" : "=r"(e) : "r"(e));
    *even = e;
    *odd = o;
}

/* Lane-wise int16 addition (cv.add.h). */
static inline uint32_t k_add_h(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("cv.add.h %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* Halfword `i` of w, sign-extended (cv.extract.h). */
#define K_HALF(w, i)                                                                       \
    ({                                                                                     \
        int32_t k_h_;                                                                      \
        __asm__("cv.extract.h %0, %1, " #i : "=r"(k_h_) : "r"(w));                        \
        k_h_;                                                                              \
    })

#endif /* K_COMMON_H */
