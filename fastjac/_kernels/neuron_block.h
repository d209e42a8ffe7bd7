/* The hot loop of fastjac/_kernels/neuron.pyx (``_block_sums`` without gX), in C so that
 * it can be written once with explicit AVX2 instructions and once portably, the right one
 * chosen when the CPU is known.
 *
 * fj_block_sums_f64 / _f32 compute, over rows r0..r1 of X (rows idx[i] when idx is not
 * NULL), part = [Σ r², Σ c, Σ c x (n)] exactly as the Cython loop documents it: four rows
 * at a time (groups start at r0), each row's dot product in four accumulators that take
 * the elements j ≡ 0, 1, 2, 3 (mod 4), combined as (a0 + a1) + (a2 + a3), the remainder
 * elements added to a0; the gradient updated once per four rows with
 * g += (c0 x0 + c1 x1) + (c2 x2 + c3 x3).
 *
 * Determinism: both versions do that arithmetic lane by lane in the same order, and none
 * is compiled with FMA (the AVX2 target does not enable it, and fp-contract is off), so
 * every version gives bitwise the results of the portable Cython loop. tests/test_neuron.py
 * checks this by forcing the portable version (fj_neuron_set_level).
 *
 * Versions:
 * - portable: GCC vector extensions (four-lane double vectors), or, on compilers without
 *   them, FJ_NEURON_C_BLOCK is 0 and the Cython loop runs;
 * - AVX2 (x86-64 GCC/Clang, chosen at run time when the CPU has it): explicit intrinsics.
 *   GCC's generic tuning splits a four-float-to-four-double conversion of the vector
 *   extensions into two halves and a shuffle, and spills; the intrinsics make one
 *   vcvtps2pd per four floats. Two more things make it keep up with memory: short rows
 *   are software-prefetched FJ_PREFETCH_BYTES ahead (or, for a mini-batch, the rows two
 *   groups ahead in idx), so that the gradient half of each group, which reads only L1,
 *   overlaps with the next rows' transfer; and for float32 rows of at most
 *   FJ_STASH_MAX_N elements, the rows are widened once, kept in an L1 buffer by the
 *   dot-product loop and read back by the gradient loop instead of converted twice.
 *   Measured on a 2-vCPU Xeon (AVX-512) over 1e6 x 100 rows, one thread: float64 from
 *   3.2 to 2.2 cycles per element, float32 from 2.6 to 1.3.
 *
 * Read order (``stream``, set by the caller for an X larger than a core's L2): the four dot
 * products of a group either run in step (one loop over j, four chains per iteration: the
 * fastest for an X in cache) or one row after the other (four loops: the group is read as
 * one sequential stream). On Zen 4, reading four rows in step from memory ran at half the
 * bandwidth of one stream whether or not rows were prefetched (even two rows in step did):
 * float64 1e5 x 100, one thread, 10.9 -> 5.6 ms. A streamed group is not prefetched by
 * software (the hardware prefetchers follow one stream; the prefetch instructions only
 * cost) except for a mini-batch's rows through idx. The float32 rows that are widened into
 * the L1 buffer keep the in-step order (no gain measured). Either order does the same
 * arithmetic lane by lane: the same bits (tests/test_neuron.py forces both).
 */
#ifndef FJ_NEURON_BLOCK_H
#define FJ_NEURON_BLOCK_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "fj_cpu.h"

#if defined(__GNUC__)
#define FJ_NEURON_C_BLOCK 1

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(FJ_NO_MULTIVERSION)
#define FJ_NEURON_HAVE_AVX2 1
#include <immintrin.h>
#else
#define FJ_NEURON_HAVE_AVX2 0
#endif

typedef double fj_v4d __attribute__((vector_size(32)));
typedef float fj_v4f __attribute__((vector_size(16)));

typedef long long fj_v4di __attribute__((vector_size(32)));

/* mask ? a : b lane by lane, for a mask from a vector comparison (all ones or zeros) */
#define fj_select(mask, a, b)                                                                \
    ((fj_v4d)(((fj_v4di)(a) & (mask)) | ((fj_v4di)(b) & ~(mask))))

/* Unaligned loads of four elements, widened to double (macros, not functions: a vector
 * passed or returned by value across a target boundary changes the ABI) */
#define fj_load4_f64(p) ({ fj_v4d v_; memcpy(&v_, (p), sizeof v_); v_; })
#define fj_load4_f32(p)                                                                      \
    ({ fj_v4f v_; memcpy(&v_, (p), sizeof v_); __builtin_convertvector(v_, fj_v4d); })

/* One row's share of the loss and gradient sums, the scalar arithmetic of the Cython
 * loop's _sq_residual: returns r² and sets *c (c = +-0 for an inactive row, z == 0
 * included). The one-row tails of both versions use it. */
static inline double fj_sq_residual(double z, double y, double *c)
{
    const int inactive = z <= 0.0;
    const double e = z - y;
    const double r = inactive ? -y : e;
    *c = inactive ? (0.0 - y) * 0.0 : e;
    return r * r;
}

/* BODY(X, y, idx, r0, r1, n, w, b, do_gw, part) with "idx is NULL" and do_gw as
 * compile-time constants: four inlined copies, so that neither is tested per row. */
#define FJ_CALL_BODY(BODY, X, y, idx, r0, r1, n, w, b, do_gw, stream, part)                  \
    do {                                                                                     \
        if ((idx) == NULL) {                                                                 \
            if (do_gw)                                                                       \
                BODY(X, y, NULL, r0, r1, n, w, b, 1, stream, part);                          \
            else                                                                             \
                BODY(X, y, NULL, r0, r1, n, w, b, 0, stream, part);                          \
        } else {                                                                             \
            if (do_gw)                                                                       \
                BODY(X, y, idx, r0, r1, n, w, b, 1, stream, part);                           \
            else                                                                             \
                BODY(X, y, idx, r0, r1, n, w, b, 0, stream, part);                           \
        }                                                                                    \
    } while (0)

/* One definition for both dtypes: T the element type of X and y, LOAD4 its widening
 * load of four elements. NAME##_body is inlined four times into NAME (FJ_CALL_BODY). */
#define FJ_DEFINE_BLOCK_SUMS(NAME, T, LOAD4)                                                 \
    static inline __attribute__((always_inline)) void NAME##_body(                           \
        const T *restrict X, const T *restrict y, const Py_ssize_t *restrict idx,            \
        Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *restrict w, double b,      \
        int do_gw, int stream, double *restrict part)                                        \
    {                                                                                        \
        double sse = 0.0, gb = 0.0;                                                          \
        double *restrict g = part + 2;                                                       \
        const Py_ssize_t m = n - (n & 3);                                                    \
        Py_ssize_t i, j;                                                                     \
        for (j = 0; j < n; j++)                                                              \
            g[j] = 0.0;                                                                      \
        for (i = r0; i + 3 < r1; i += 4) {                                                   \
            const Py_ssize_t q0 = idx ? idx[i] : i, q1 = idx ? idx[i + 1] : i + 1;           \
            const Py_ssize_t q2 = idx ? idx[i + 2] : i + 2, q3 = idx ? idx[i + 3] : i + 3;   \
            const T *x0 = X + q0 * n, *x1 = X + q1 * n, *x2 = X + q2 * n, *x3 = X + q3 * n;  \
            fj_v4d a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0, a2 = a0, a3 = a0;                     \
            double c[4];                                                                     \
            if (stream) { /* one row after the other: one sequential stream */               \
                for (j = 0; j < m; j += 4)                                                   \
                    a0 += LOAD4(x0 + j) * fj_load4_f64(w + j);                               \
                for (j = 0; j < m; j += 4)                                                   \
                    a1 += LOAD4(x1 + j) * fj_load4_f64(w + j);                               \
                for (j = 0; j < m; j += 4)                                                   \
                    a2 += LOAD4(x2 + j) * fj_load4_f64(w + j);                               \
                for (j = 0; j < m; j += 4)                                                   \
                    a3 += LOAD4(x3 + j) * fj_load4_f64(w + j);                               \
            } else {                                                                         \
                for (j = 0; j < m; j += 4) {                                                 \
                    const fj_v4d wv = fj_load4_f64(w + j);                                   \
                    a0 += LOAD4(x0 + j) * wv;                                                \
                    a1 += LOAD4(x1 + j) * wv;                                                \
                    a2 += LOAD4(x2 + j) * wv;                                                \
                    a3 += LOAD4(x3 + j) * wv;                                                \
                }                                                                            \
            }                                                                                \
            { /* transpose: lane k of Tq is accumulator q of row k; then all four rows at    \
                 once, lane by lane the scalar arithmetic of _dot and _sq_residual */        \
                fj_v4d T0 = {a0[0], a1[0], a2[0], a3[0]}, T1 = {a0[1], a1[1], a2[1], a3[1]}; \
                const fj_v4d T2 = {a0[2], a1[2], a2[2], a3[2]};                              \
                const fj_v4d T3 = {a0[3], a1[3], a2[3], a3[3]};                              \
                const fj_v4d yv = {(double)y[q0], (double)y[q1], (double)y[q2],              \
                                   (double)y[q3]};                                           \
                fj_v4d zv, ev, rv, cv, sv;                                                   \
                fj_v4di inactive;                                                            \
                for (j = m; j < n; j++) { /* the remainder goes to the first accumulator */  \
                    const fj_v4d xj = {(double)x0[j], (double)x1[j], (double)x2[j],          \
                                       (double)x3[j]};                                       \
                    T0 += xj * w[j];                                                         \
                }                                                                            \
                zv = ((T0 + T1) + (T2 + T3)) + b;                                            \
                inactive = zv <= 0.0;                                                        \
                ev = zv - yv;                                                                \
                rv = fj_select(inactive, -yv, ev);                                           \
                cv = fj_select(inactive, (0.0 - yv) * 0.0, ev);                              \
                sv = rv * rv;                                                                \
                sse += sv[0];                                                                \
                sse += sv[1];                                                                \
                sse += sv[2];                                                                \
                sse += sv[3];                                                                \
                gb += cv[0];                                                                 \
                gb += cv[1];                                                                 \
                gb += cv[2];                                                                 \
                gb += cv[3];                                                                 \
                c[0] = cv[0];                                                                \
                c[1] = cv[1];                                                                \
                c[2] = cv[2];                                                                \
                c[3] = cv[3];                                                                \
            }                                                                                \
            if (do_gw) { /* g += (c0 x0 + c1 x1) + (c2 x2 + c3 x3), lane by lane */          \
                const double c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];                     \
                for (j = 0; j < m; j += 4) {                                                 \
                    fj_v4d gv = fj_load4_f64(g + j);                                         \
                    gv += (c0 * LOAD4(x0 + j) + c1 * LOAD4(x1 + j))                          \
                          + (c2 * LOAD4(x2 + j) + c3 * LOAD4(x3 + j));                       \
                    memcpy(g + j, &gv, sizeof gv);                                           \
                }                                                                            \
                for (j = m; j < n; j++)                                                      \
                    g[j] += (c0 * (double)x0[j] + c1 * (double)x1[j])                        \
                            + (c2 * (double)x2[j] + c3 * (double)x3[j]);                     \
            }                                                                                \
        }                                                                                    \
        for (; i < r1; i++) {                                                                \
            const Py_ssize_t q0 = idx ? idx[i] : i;                                          \
            const T *x0 = X + q0 * n;                                                        \
            fj_v4d a0 = {0.0, 0.0, 0.0, 0.0};                                                \
            double t0, c0;                                                                   \
            for (j = 0; j < m; j += 4)                                                       \
                a0 += LOAD4(x0 + j) * fj_load4_f64(w + j);                                   \
            t0 = a0[0];                                                                      \
            for (j = m; j < n; j++)                                                          \
                t0 += (double)x0[j] * w[j];                                                  \
            sse += fj_sq_residual(((t0 + a0[1]) + (a0[2] + a0[3])) + b, (double)y[q0], &c0); \
            gb += c0;                                                                        \
            if (do_gw)                                                                       \
                for (j = 0; j < n; j++)                                                      \
                    g[j] += c0 * (double)x0[j];                                              \
        }                                                                                    \
        part[0] = sse;                                                                       \
        part[1] = gb;                                                                        \
    }                                                                                        \
                                                                                             \
    static void NAME(const T *X, const T *y, const Py_ssize_t *idx, Py_ssize_t r0,           \
                               Py_ssize_t r1, Py_ssize_t n, const double *w, double b,       \
                               int do_gw, int stream, double *part)                          \
    {                                                                                        \
        FJ_CALL_BODY(NAME##_body, X, y, idx, r0, r1, n, w, b, do_gw, stream, part);          \
    }

FJ_DEFINE_BLOCK_SUMS(fj_block_sums_f64_portable, double, fj_load4_f64)
FJ_DEFINE_BLOCK_SUMS(fj_block_sums_f32_portable, float, fj_load4_f32)

#include "neuron_block_avx2.h"

/* 0: portable, 1: AVX2; -1 until the first call asks the CPU (a benign race: every thread
 * that asks gets the same answer). fj_neuron_set_level lets tests force the portable one. */
static int fj_neuron_level = -1;

static int fj_neuron_get_level(void)
{
    if (fj_neuron_level < 0) {
#if FJ_NEURON_HAVE_AVX2
        fj_neuron_level = fj_cpu_probe() >= FJ_CPU_AVX2 ? 1 : 0;
#else
        fj_neuron_level = 0;
#endif
    }
    return fj_neuron_level;
}

/* Returns the level in force afterwards: level 1 is granted only where the CPU has AVX2;
 * a negative level goes back to asking the CPU. */
static int fj_neuron_set_level(int level)
{
    fj_neuron_level = -1;
    if (level >= 0 && level < fj_neuron_get_level())
        fj_neuron_level = level;
    return fj_neuron_get_level();
}

#define FJ_DEFINE_DISPATCH(NAME, T)                                                          \
    static void NAME(const T *X, const T *y, const Py_ssize_t *idx, Py_ssize_t r0,           \
                     Py_ssize_t r1, Py_ssize_t n, const double *w, double b, int do_gw,      \
                     int stream, double *part)                                               \
    {                                                                                        \
        if (FJ_NEURON_HAVE_AVX2 && fj_neuron_get_level() >= 1)                               \
            NAME##_avx2(X, y, idx, r0, r1, n, w, b, do_gw, stream, part);                    \
        else                                                                                 \
            NAME##_portable(X, y, idx, r0, r1, n, w, b, do_gw, stream, part);                \
    }
FJ_DEFINE_DISPATCH(fj_block_sums_f64, double)
FJ_DEFINE_DISPATCH(fj_block_sums_f32, float)

#else /* not a GCC-compatible compiler: the Cython loop runs */
#define FJ_NEURON_C_BLOCK 0
static int fj_neuron_set_level(int level) { return 0; }
static void fj_block_sums_f64(const double *X, const double *y, const Py_ssize_t *idx,
                              Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *w,
                              double b, int do_gw, int stream, double *part) { abort(); }
static void fj_block_sums_f32(const float *X, const float *y, const Py_ssize_t *idx,
                              Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *w,
                              double b, int do_gw, int stream, double *part) { abort(); }
#endif

#endif /* FJ_NEURON_BLOCK_H */
