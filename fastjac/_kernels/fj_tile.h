/* Tile loops shared by the element-wise kernels (elementwise.pyx's binary tile) and the
 * fused-expression interpreter (fj_fused.h, fused.pyx): float32 loads and stores, the
 * product rule and cotangent scaling of fj.elementwise's tile, relu's VJP, and the plain
 * binary ops' values and gradients. In C so that each is
 * compiled for AVX-512, AVX2 and the baseline and chosen at run time (GCC target_clones on
 * x86-64 Linux; Cython's own loops get the baseline only). Plain loops, one operation per
 * element in a fixed order, no fused multiply-add (setup.py: -ffp-contract=off): every
 * version gives the same bits. No op codes here (fj_vmath.h, included next to this by
 * elementwise.pyx, has its own). */
#ifndef FJ_TILE_H
#define FJ_TILE_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FJ_NO_TARGET_CLONES)
#define FJ_FUSED_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FJ_FUSED_CLONES
#endif

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

/* Loops of elementwise.pyx's binary tile (fj.elementwise: y = f(w) ○ g(x)), here to be
 * compiled for each level like the ones above (Cython's own loops get the baseline only).
 * The product rule of ○ = mul: da = f'(w)·b, db = g'(x)·a, and the value a·b when wanted;
 * a, da, b, db are four distinct tiles. */
FJ_FUSED_CLONES static void fj_ew_mul_partials(double *restrict a, double *restrict da,
                                               const double *restrict b, double *restrict db,
                                               int need_value, ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) {
        da[k] *= b[k];
        db[k] *= a[k];
    }
    if (need_value)
        for (k = 0; k < m; k++) a[k] = a[k] * b[k];
}

/* da, db times the cotangent gy (float32 or float64; the caller's array, not a tile). */
FJ_FUSED_CLONES static void fj_ew_scale2_f32(double *restrict da, double *restrict db,
                                             const float *restrict gy, ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) {
        double c = (double)gy[k];
        da[k] *= c;
        db[k] *= c;
    }
}

FJ_FUSED_CLONES static void fj_ew_scale2_f64(double *restrict da, double *restrict db,
                                             const double *restrict gy, ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) {
        double c = gy[k];
        da[k] *= c;
        db[k] *= c;
    }
}

/* relu's derivative-only VJP (and its derivative when t is NULL): out = t where x > 0, 0*t
 * where x <= 0 (a signed zero, or NaN when t is inf or NaN), x where x is NaN. Exact in the
 * input precision, so float32 stays float32. elementwise.pyx calls it once per pool block.
 * out may be x or t (element by element: each is read before it is written); no other
 * overlap. Every operand is loaded before the selects, so the
 * loops are branch-free and vectorise at every level. */
#define FJ_RELU_VJP(NAME, T)                                                                \
    FJ_FUSED_CLONES static void NAME(const T *x, const T *t, T *out, ptrdiff_t m)          \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        if (t != NULL) {                                                                    \
            for (k = 0; k < m; k++) {                                                       \
                T xv = x[k], tv = t[k], zv = (T)0 * tv;                                     \
                out[k] = xv > 0 ? tv : (xv == xv ? zv : xv);                                \
            }                                                                               \
        } else {                                                                            \
            for (k = 0; k < m; k++) {                                                       \
                T xv = x[k];                                                                \
                out[k] = xv > 0 ? (T)1 : (xv == xv ? (T)0 : xv);                            \
            }                                                                               \
        }                                                                                   \
    }
FJ_RELU_VJP(fj_relu_vjp_f64, double)
FJ_RELU_VJP(fj_relu_vjp_f32, float)

/* The plain binary ops y = w ○ x on whole blocks (elementwise.pyx's _plain_value and
 * _plain_grads, which ran Cython's baseline loops: maximum and minimum scalar). float32 in
 * float32: a single +, -, *, / of two floats rounded once to float is the same as the double
 * operation rounded to float (53 >= 2*24 + 2), so the bits are those of the double route.
 * maximum / minimum: NumPy's rule, a NaN operand gives a NaN (p + q); their partials are 1,
 * 0 or NaN (ties go to w), times gy. Branch-free selects: every level vectorises them. */
#define FJ_PLAIN_BINARY(T, SUF)                                                             \
    FJ_FUSED_CLONES static void fj_add_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) y[k] = w[k] + x[k];                                         \
    }                                                                                       \
    FJ_FUSED_CLONES static void fj_sub_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) y[k] = w[k] - x[k];                                         \
    }                                                                                       \
    FJ_FUSED_CLONES static void fj_mul_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) y[k] = w[k] * x[k];                                         \
    }                                                                                       \
    FJ_FUSED_CLONES static void fj_div_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) y[k] = w[k] / x[k];                                         \
    }                                                                                       \
    FJ_FUSED_CLONES static void fj_max_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) {                                                           \
            T p = w[k], q = x[k], r = p + q;                                                \
            y[k] = p >= q ? p : (p < q ? q : r);                                            \
        }                                                                                   \
    }                                                                                       \
    FJ_FUSED_CLONES static void fj_min_##SUF(const T *w, const T *x, T *y, ptrdiff_t m)    \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) {                                                           \
            T p = w[k], q = x[k], r = p + q;                                                \
            y[k] = p <= q ? p : (p > q ? q : r);                                            \
        }                                                                                   \
    }                                                                                       \
    /* gw = gy, gx = sign * gy (add: 1, sub: -1; -1 * g as the double route: -g) */         \
    FJ_ADDSUB_GRADS(fj_add_grads_##SUF, T, 1)                                               \
    FJ_ADDSUB_GRADS(fj_sub_grads_##SUF, T, -1)                                              \
    FJ_FUSED_CLONES static void fj_mul_grads_##SUF(const T *w, const T *x, const T *gy,    \
                                                   T *gw, T *gx, ptrdiff_t m)               \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) {                                                           \
            T g = gy[k], p = w[k], q = x[k];                                                \
            gw[k] = q * g;                                                                  \
            gx[k] = p * g;                                                                  \
        }                                                                                   \
    }                                                                                       \
    /* maximum: the partial of the selected operand is 1, the other's 0 (ties go to w),     \
       both NaN when p or q is NaN; times g: g, 0*g or NaN. minimum likewise. */            \
    FJ_MAXMIN_GRADS(fj_max_grads_##SUF, T, >=, <)                                           \
    FJ_MAXMIN_GRADS(fj_min_grads_##SUF, T, <=, >)

/* The gradients of the plain binary ops share one signature (w, x, gy, gw, gx, m), so that
 * elementwise.pyx chooses them from one table per dtype indexed by the op; gy is not NULL
 * (the partials themselves are elementwise.pyx's loop). */
#define FJ_ADDSUB_GRADS(NAME, T, S)                                                         \
    FJ_FUSED_CLONES static void NAME(const T *w, const T *x, const T *gy, T *gw, T *gx,    \
                                     ptrdiff_t m)                                           \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        (void)w;                                                                            \
        (void)x;                                                                            \
        for (k = 0; k < m; k++) {                                                           \
            T g = gy[k];                                                                    \
            gw[k] = g;                                                                      \
            gx[k] = (T)(S) * g;                                                             \
        }                                                                                   \
    }
#define FJ_MAXMIN_GRADS(NAME, T, PICK_W, PICK_X)                                            \
    FJ_FUSED_CLONES static void NAME(const T *w, const T *x, const T *gy, T *gw, T *gx,    \
                                     ptrdiff_t m)                                           \
    {                                                                                       \
        ptrdiff_t k;                                                                        \
        for (k = 0; k < m; k++) {                                                           \
            T g = gy[k], p = w[k], q = x[k];                                                \
            T z = (T)0 * g, nan = (p + q) * g;                                              \
            gw[k] = p PICK_W q ? g : (p PICK_X q ? z : nan);                                \
            gx[k] = p PICK_W q ? z : (p PICK_X q ? g : nan);                                \
        }                                                                                   \
    }
FJ_PLAIN_BINARY(double, f64)
FJ_PLAIN_BINARY(float, f32)

/* fj.div's float64 gradients: gw = (1/x) gy, gx = (-((w/x)/x)) gy, the interpreter's
 * operations (float32: fj_vmath.h's fj_div_grads_f32, correctly rounded quotients). */
FJ_FUSED_CLONES static void fj_div_grads_f64(const double *w, const double *x, const double *gy,
                                             double *gw, double *gx, ptrdiff_t m)
{
    ptrdiff_t k;
    for (k = 0; k < m; k++) {
        double g = gy[k], p = w[k], q = x[k];
        gw[k] = (1.0 / q) * g;
        gx[k] = (-((p / q) / q)) * g;
    }
}

#endif /* FJ_TILE_H */
