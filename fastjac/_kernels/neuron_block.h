/* The hot loop of fastjac/_kernels/neuron.pyx (``_block_sums`` without gX), in C so that
 * it can be compiled for several instruction sets and the best one chosen at load time.
 *
 * fj_block_sums_f64 / _f32 compute, over rows r0..r1 of X (rows idx[i] when idx is not
 * NULL), part = [Σ r², Σ c, Σ c x (n)] exactly as the Cython loop documents it: four rows
 * at a time (groups start at r0), each row's dot product in four accumulators that take
 * the elements j ≡ 0, 1, 2, 3 (mod 4), combined as (a0 + a1) + (a2 + a3), the remainder
 * elements added to a0; the gradient updated once per four rows with
 * g += (c0 x0 + c1 x1) + (c2 x2 + c3 x3).
 *
 * Determinism: the four accumulators are the four lanes of one vector (GCC vector
 * extensions), so the arithmetic is the same lane by lane on every instruction set, and
 * no variant is compiled with FMA (the "avx2" and "avx512f" targets do not enable it, so
 * nothing is contracted). Every variant therefore gives bitwise the results of the
 * portable Cython loop; the variants differ only in vector width and instruction
 * encoding (the float32 widening in particular: 4 floats to 4 doubles in one AVX
 * instruction instead of two SSE2 ones).
 *
 * FJ_NEURON_C_BLOCK is 1 where this code is compiled (GCC-compatible compilers, for the
 * vector extensions); elsewhere it is 0 and the Cython loop runs. The run-time dispatch
 * (target_clones, an ifunc resolved once when the module loads) is used only with GCC on
 * x86-64 glibc Linux; other platforms get the baseline build of the same code.
 */
#ifndef FJ_NEURON_BLOCK_H
#define FJ_NEURON_BLOCK_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define FJ_NEURON_C_BLOCK 1

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && !defined(__clang__) \
    && !defined(FJ_NO_MULTIVERSION)
/* GCC's avx512f target also enables FMA: fp-contract=off keeps every a * b + c rounded
 * twice, as in the baseline build */
#define FJ_CLONES                                                                            \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
#else
#define FJ_CLONES
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

/* One definition for both dtypes: T the element type of X and y, LOAD4 its widening
 * load of four elements. NAME##_body is inlined four times into NAME, once for each
 * combination of (idx given, do_gw), so that neither test is made per row. */
#define FJ_DEFINE_BLOCK_SUMS(NAME, T, LOAD4)                                                  \
    static inline __attribute__((always_inline)) void NAME##_body(                           \
        const T *restrict X, const T *restrict y, const Py_ssize_t *restrict idx,            \
        Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *restrict w, double b,      \
        int do_gw, double *restrict part)                                                    \
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
            for (j = 0; j < m; j += 4) {                                                     \
                const fj_v4d wv = fj_load4_f64(w + j);                                       \
                a0 += LOAD4(x0 + j) * wv;                                                    \
                a1 += LOAD4(x1 + j) * wv;                                                    \
                a2 += LOAD4(x2 + j) * wv;                                                    \
                a3 += LOAD4(x3 + j) * wv;                                                    \
            }                                                                                \
            { /* transpose: lane k of Tq is accumulator q of row k; then all four rows at \
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
            double t0, z0, y0, e, r, c0;                                                     \
            int inactive;                                                                    \
            for (j = 0; j < m; j += 4)                                                       \
                a0 += LOAD4(x0 + j) * fj_load4_f64(w + j);                                   \
            t0 = a0[0];                                                                      \
            for (j = m; j < n; j++)                                                          \
                t0 += (double)x0[j] * w[j];                                                  \
            z0 = ((t0 + a0[1]) + (a0[2] + a0[3])) + b;                                       \
            y0 = (double)y[q0];                                                              \
            inactive = z0 <= 0.0;                                                            \
            e = z0 - y0;                                                                     \
            r = inactive ? -y0 : e;                                                          \
            c0 = inactive ? (0.0 - y0) * 0.0 : e;                                            \
            sse += r * r;                                                                    \
            gb += c0;                                                                        \
            if (do_gw)                                                                       \
                for (j = 0; j < n; j++)                                                      \
                    g[j] += c0 * (double)x0[j];                                              \
        }                                                                                    \
        part[0] = sse;                                                                       \
        part[1] = gb;                                                                        \
    }                                                                                        \
                                                                                             \
    FJ_CLONES static void NAME(const T *X, const T *y, const Py_ssize_t *idx, Py_ssize_t r0, \
                               Py_ssize_t r1, Py_ssize_t n, const double *w, double b,       \
                               int do_gw, double *part)                                      \
    {                                                                                        \
        if (idx == NULL) {                                                                   \
            if (do_gw)                                                                       \
                NAME##_body(X, y, NULL, r0, r1, n, w, b, 1, part);                           \
            else                                                                             \
                NAME##_body(X, y, NULL, r0, r1, n, w, b, 0, part);                           \
        } else {                                                                             \
            if (do_gw)                                                                       \
                NAME##_body(X, y, idx, r0, r1, n, w, b, 1, part);                            \
            else                                                                             \
                NAME##_body(X, y, idx, r0, r1, n, w, b, 0, part);                            \
        }                                                                                    \
    }

FJ_DEFINE_BLOCK_SUMS(fj_block_sums_f64, double, fj_load4_f64)
FJ_DEFINE_BLOCK_SUMS(fj_block_sums_f32, float, fj_load4_f32)

#else /* not a GCC-compatible compiler: the Cython loop runs */
#define FJ_NEURON_C_BLOCK 0
static void fj_block_sums_f64(const double *X, const double *y, const Py_ssize_t *idx,
                              Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *w,
                              double b, int do_gw, double *part) { abort(); }
static void fj_block_sums_f32(const float *X, const float *y, const Py_ssize_t *idx,
                              Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *w,
                              double b, int do_gw, double *part) { abort(); }
#endif

#endif /* FJ_NEURON_BLOCK_H */
