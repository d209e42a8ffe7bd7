/* The tile loops of the fused-expression interpreter (fastjac/_kernels/fused.pyx): binary
 * nodes with their local partials, the adjoint/tangent accumulation, and the float32
 * loads and stores. In C so that each can be compiled for AVX-512, AVX2 and the baseline
 * and chosen at run time (GCC target_clones on x86-64 Linux, as fj_vmath.h does); the
 * interpreter calls each once per node and tile (up to 256 elements).
 *
 * Every loop does one operation per element in a fixed order with no reassociation and no
 * fused multiply-add (setup.py compiles with -ffp-contract=off), so every version gives the
 * same bits. The binary arithmetic is exactly that of elementwise.pyx's binary kernels
 * (_plain_value, _plain_partials), so a fused w ○ x has the bits of the plain op.
 */
#ifndef FJ_FUSED_H
#define FJ_FUSED_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FJ_NO_TARGET_CLONES)
#define FJ_FUSED_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FJ_FUSED_CLONES
#endif

/* op codes of the fused interpreter (fastjac/_optable.py: FUSED_BINARY_BASE + code) */
enum { FJF_ADD = 32, FJF_SUB, FJF_MUL, FJF_DIV, FJF_MAXIMUM, FJF_MINIMUM };
/* kinds of a local partial */
enum { FJF_PK_NONE = 0, FJF_PK_CONST = 1, FJF_PK_REG = 2, FJF_PK_BUF = 3 };

/* y = a ○ b; with pd, pa = ∂y/∂a and pb = ∂y/∂b where they are buffers (div, maximum,
 * minimum; add, sub and mul have constant or register partials). */
FJ_FUSED_CLONES static void fj_fused_binary(int op, const double *restrict a,
                                            const double *restrict b, double *restrict y,
                                            double *restrict pa, double *restrict pb, int pd,
                                            ptrdiff_t m)
{
    ptrdiff_t k;
    switch (op) {
    case FJF_ADD:
        for (k = 0; k < m; k++) y[k] = a[k] + b[k];
        break;
    case FJF_SUB:
        for (k = 0; k < m; k++) y[k] = a[k] - b[k];
        break;
    case FJF_MUL:
        for (k = 0; k < m; k++) y[k] = a[k] * b[k];
        break;
    case FJF_DIV:
        if (pd) {
            /* ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -(a/b)/b  (paper §4.2 table) */
            for (k = 0; k < m; k++) {
                double q = b[k], v = a[k] / q;
                pa[k] = 1.0 / q;
                pb[k] = -(v / q);
                y[k] = v;
            }
        } else {
            for (k = 0; k < m; k++) y[k] = a[k] / b[k];
        }
        break;
    case FJF_MAXIMUM:
        /* ties send the whole gradient to the first operand; NaN propagates to all */
        for (k = 0; k < m; k++) {
            double p = a[k], q = b[k];
            y[k] = p >= q ? p : (p < q ? q : p + q);
        }
        if (pd)
            for (k = 0; k < m; k++) {
                double p = a[k], q = b[k];
                pa[k] = p >= q ? 1.0 : (p < q ? 0.0 : p + q);
                pb[k] = p >= q ? 0.0 : (p < q ? 1.0 : p + q);
            }
        break;
    default: /* FJF_MINIMUM */
        for (k = 0; k < m; k++) {
            double p = a[k], q = b[k];
            y[k] = p <= q ? p : (p > q ? q : p + q);
        }
        if (pd)
            for (k = 0; k < m; k++) {
                double p = a[k], q = b[k];
                pa[k] = p <= q ? 1.0 : (p > q ? 0.0 : p + q);
                pb[k] = p <= q ? 0.0 : (p > q ? 1.0 : p + q);
            }
        break;
    }
}

/* mode 0: dst = src·partial; 1: dst += src·partial (cur is dst); 2: dst = cur + src·partial
 * (cur another buffer). The partial is c (FJF_PK_CONST) or p[k]. Modes 1 and 2 do the
 * same arithmetic: where a sum is formed never changes its bits. */
FJ_FUSED_CLONES static void fj_fused_axpy(double *dst, const double *cur, const double *src,
                                          int kind, double c, const double *p, int mode,
                                          ptrdiff_t m)
{
    ptrdiff_t k;
    if (kind == FJF_PK_CONST) {
        if (mode == 0) {
            if (c == 1.0)
                memcpy(dst, src, (size_t)m * sizeof(double));
            else if (c == -1.0)
                for (k = 0; k < m; k++) dst[k] = -src[k];
            else
                for (k = 0; k < m; k++) dst[k] = src[k] * c;
        } else if (c == 1.0) {
            for (k = 0; k < m; k++) dst[k] = cur[k] + src[k];
        } else if (c == -1.0) {
            for (k = 0; k < m; k++) dst[k] = cur[k] + -src[k];
        } else {
            for (k = 0; k < m; k++) dst[k] = cur[k] + src[k] * c;
        }
    } else if (mode == 0) {
        for (k = 0; k < m; k++) dst[k] = p[k] * src[k];
    } else {
        for (k = 0; k < m; k++) dst[k] = cur[k] + p[k] * src[k];
    }
}

FJ_FUSED_CLONES static void fj_fused_widen(double *restrict dst, const float *restrict src,
                                           ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) dst[k] = (double)src[k];
}

FJ_FUSED_CLONES static void fj_fused_narrow(float *restrict dst, const double *restrict src,
                                            ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) dst[k] = (float)src[k];
}

#endif /* FJ_FUSED_H */
