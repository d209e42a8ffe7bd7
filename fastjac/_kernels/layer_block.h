/* The one-pass block loop of fastjac/_kernels/layer.pyx: a layer of m ReLU neurons over
 * rows r0..r1 of X (N x n), W (m x n) one row per neuron, read once per row.
 *
 * For each row x (widened to double into a per-block buffer) the loop computes the m
 * pre-activations z_k = (Σ_j x_j W_kj) + b_k, with the sum over j in order j = 0..n-1,
 * as m independent lanes: z[0..m) += x_j Wt[j, 0..m) for j = 0..n-1 (Wt = Wᵀ, n x m,
 * double). Four rows are processed together so that the out-of-order core has four
 * independent chains per lane. Then, per mode:
 *
 * - FJ_LAYER_LOSS: r = y_k - max(0, z_k), c_k = e_k = z_k - y_k for z_k > 0 and
 *   (0 - y_k) * 0 otherwise (the neuron's _sq_residual, ReLU'(0) = 0); Σ r² per neuron
 *   over the block's rows in order, then over k in order (lane-independent, so it
 *   vectorises); gb[k] += c_k; gWt[j, k] += (c0 x0_j + c1 x1_j) + (c2 x2_j + c3 x3_j) per group
 *   of four rows; gX row i = gx_scale Σ_k c_k W_k (k in order), when asked for.
 * - FJ_LAYER_VJP: no z; c_k = G_ik * (A_ik > 0 ? 1 : 0) (NumPy's G * (A > 0)), then the
 *   same sums (without Σ r²) and gX.
 * - FJ_LAYER_ACT: A_ik = max(0, z_k) (NaN stays NaN).
 *
 * Every loop over k or j is lane-independent (no reassociation), fp-contract is off, so
 * the AVX-512, AVX2 and portable compilations of the same C give bitwise the same
 * results; fj_layer_set_level lets tests force each one. The partial sums of a block go
 * to its own slot of the scratch; layer.pyx merges the slots in block order, so results
 * do not depend on the thread count.
 */
#ifndef FJ_LAYER_BLOCK_H
#define FJ_LAYER_BLOCK_H

#include <stddef.h>
#include "fj_cpu.h"
#include <string.h>

#define FJ_LAYER_LOSS 0
#define FJ_LAYER_VJP 1
#define FJ_LAYER_ACT 2

typedef struct {
    const void *X;        /* IN  N x n rows (data dtype) */
    const void *Y;        /* IN  N x m targets (LOSS), or NULL */
    const void *A;        /* IN  N x m activations (VJP) */
    const void *G;        /* IN  N x m cotangent (VJP) */
    const ptrdiff_t *idx; /* IN  row numbers (mini-batch), or NULL for rows 0.. */
    const double *Wt;     /* IN  n x mp (Wᵀ, columns m..mp-1 zero), double */
    const double *Wd;     /* IN  m x n, double (gX only) */
    const double *b;      /* IN  mp (zero padded), double (LOSS, ACT) */
    void *out;            /* OUT N x m activations (ACT) */
    void *gX;             /* OUT N x n (rows as numbered in the batch), or NULL */
    double gx_scale;
    ptrdiff_t N, n, m, rows_per_block;
    int mode, do_gw;
    double *scratch;      /* per block: see fj_layer_stride */
    ptrdiff_t stride;
} fj_layer_ctx;

/* m rounded up to a multiple of 8 (FJ_LAYER_LANES): the width of every per-neuron array,
 * so that every SIMD width (2, 4, 8 doubles) divides it; the padding lanes compute
 * z = 0, an inactive neuron with y = 0, which adds exact zeros to every sum. */
#define FJ_LAYER_LANES 8
static inline ptrdiff_t fj_layer_mpad(ptrdiff_t m)
{
    return (m + FJ_LAYER_LANES - 1) / FJ_LAYER_LANES * FJ_LAYER_LANES;
}

/* Scratch of one block, in doubles: [Σ r² (1), gb (mp), gWt (n mp) | z/c (4 mp),
 * rows (4 n), gX row (n), Σ r² per lane (mp)]; the part before "|" is what is merged. */
static inline ptrdiff_t fj_layer_stride(ptrdiff_t n, ptrdiff_t m)
{
    const ptrdiff_t mp = fj_layer_mpad(m);
    return 1 + mp + n * mp + 4 * mp + 5 * n + mp;
}

#define FJ_RESTRICT __restrict__

typedef double fj_lv8 __attribute__((vector_size(64)));
typedef double fj_lv4 __attribute__((vector_size(32)));
typedef double fj_lv2 __attribute__((vector_size(16)));
typedef float fj_lf8 __attribute__((vector_size(32)));
typedef float fj_lf4 __attribute__((vector_size(16)));
typedef float fj_lf2 __attribute__((vector_size(8)));
#define FJ_LLOAD(V, p) ({ V ldw_; memcpy(&ldw_, (p), sizeof ldw_); ldw_; })
#define FJ_LSTORE(p, v) do { __typeof__(v) stv_ = (v); memcpy((p), &stv_, sizeof stv_); } while (0)
/* VL elements of type T at p widened to double (TV: the vector of VL T's); only the first
 * `live` when live < VL, the other lanes 0 (the padding neurons) */
#define FJ_LLOADT(V, TV, VL, T, p, live) ({                                                  \
    V ldv_;                                                                                    \
    if ((live) >= (VL)) {                                                                    \
        ldv_ = __builtin_convertvector(FJ_LLOAD(TV, (p)), V);                                  \
    } else {                                                                                 \
        double ldt_[VL];                                                                       \
        ptrdiff_t ldl_;                                                                        \
        for (ldl_ = 0; ldl_ < (VL); ldl_++) ldt_[ldl_] = ldl_ < (live) ? (double)(p)[ldl_] : 0.0;          \
        ldv_ = FJ_LLOAD(V, ldt_);                                                                \
    }                                                                                        \
    ldv_; })
/* lane-wise (mask ? a : b) for a mask from a vector comparison (all ones or zero per lane):
 * bit selection, so every lane is exactly one of its two inputs */
#define FJ_LSEL(V, mask, a, b) ((V)(((mask) & (__typeof__(mask))(a))                         \
                                    | (~(mask) & (__typeof__(mask))(b))))

#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64)) && !defined(FJ_NO_MULTIVERSION)
#define FJ_LAYER_HAVE_X86 1
#include <immintrin.h>
#else
#define FJ_LAYER_HAVE_X86 0
#endif

/* The loss terms of one vector of lanes, z and y given: s += r², c = the error or 0.
 * Where z <= 0 (inactive, ReLU'(0) = 0): r = 0 - y and c = (0 - y) 0; elsewhere r = c =
 * z - y. (0 - y differs from the residual y - max(0, z) = y by its sign only, and from -y
 * only for y = +-0, so r² is the same number.) GEN: any width, selections by bit masks;
 * AVX512: the same operations, selections by mask registers (a blend and a masked
 * multiply). */
#define FJ_LOSS_GEN(V, z, y, s, c) do {                                                      \
    const __typeof__((z) <= vzero) off_ = (z) <= vzero;                                      \
    const V e_ = (z) - (y), t_ = vzero - (y);                                                \
    const V res_ = FJ_LSEL(V, off_, t_, e_);                                                 \
    (s) += res_ * res_;                                                                      \
    (c) = FJ_LSEL(V, off_, t_ * vzero, e_);                                                  \
} while (0)
#define FJ_LOSS_AVX512(V, z, y, s, c) do {                                                   \
    const __mmask8 off_ = _mm512_cmp_pd_mask((__m512d)(z), (__m512d)vzero, _CMP_LE_OQ);      \
    const V e_ = (z) - (y), t_ = vzero - (y);                                                \
    const V res_ = (V)_mm512_mask_blend_pd(off_, (__m512d)e_, (__m512d)t_);                 \
    (s) += res_ * res_;                                                                      \
    (c) = (V)_mm512_mask_mul_pd((__m512d)e_, off_, (__m512d)t_, (__m512d)vzero);            \
} while (0)
/* VL elements of type T at p (all live), widened to double */
#define FJ_LOADW_GEN(V, TV, T, p) __builtin_convertvector(FJ_LLOAD(TV, (p)), V)
#define FJ_LOADW_AVX512(V, TV, T, p)                                                         \
    (__builtin_types_compatible_p(T, float)                                                  \
         ? (V)_mm512_cvtps_pd(_mm256_loadu_ps((const float *)(const void *)(p)))            \
         : (V)_mm512_loadu_pd((const void *)(p)))

#define FJ_UNROLL _Pragma("GCC unroll 16")

/* One chunk: lanes k..k + U VL (U vectors) of the group of four rows x0..x3 (nr of them
 * live, row numbers in row[]), with everything between the two products in registers:
 * z for the four rows (one j loop: each w vector loaded once for four rows, each x_j
 * broadcast once for U vectors), then the loss terms and c (LOSS) or c = G (A > 0) (VJP),
 * Σ r² and Σ c for these lanes, and the lanes' share of gWt (the second j loop). Uses the
 * body's locals. */
#define FJ_LAYER_CHUNK(T, V, TV, VL, U, ISA)                                                    \
do {                                                                                         \
    V c_[4][U];                                                                              \
    if (mode != FJ_LAYER_VJP) {                                                              \
        V a_[4][U];                                                                          \
        FJ_UNROLL for (int r_ = 0; r_ < 4; r_++)                                             \
            FJ_UNROLL for (int u_ = 0; u_ < U; u_++) a_[r_][u_] = vzero;                     \
        for (j = 0; j < n; j++) {                                                            \
            V w_[U];                                                                         \
            const double x0j = x0[j], x1j = x1[j], x2j = x2[j], x3j = x3[j];                 \
            FJ_UNROLL for (int u_ = 0; u_ < U; u_++)                                         \
                w_[u_] = FJ_LLOAD(V, Wt + j * mp + k + u_ * VL);                             \
            FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                       \
                a_[0][u_] += x0j * w_[u_];                                                   \
                a_[1][u_] += x1j * w_[u_];                                                   \
                a_[2][u_] += x2j * w_[u_];                                                   \
                a_[3][u_] += x3j * w_[u_];                                                   \
            }                                                                                \
        }                                                                                    \
        /* z = (Σ_j x_j W_kj) + b_k */                                                       \
        FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                           \
            const V bv_ = FJ_LLOAD(V, ctx->b + k + u_ * VL);                                 \
            FJ_UNROLL for (int r_ = 0; r_ < 4; r_++) a_[r_][u_] = a_[r_][u_] + bv_;          \
        }                                                                                    \
        if (mode == FJ_LAYER_ACT) {                                                          \
            FJ_UNROLL for (int r_ = 0; r_ < 4; r_++)                                         \
                FJ_UNROLL for (int u_ = 0; u_ < U; u_++)                                     \
                    FJ_LSTORE(zc + r_ * mp + k + u_ * VL, a_[r_][u_]);                       \
            break;                                                                           \
        }                                                                                    \
        /* r = y - max(0, z): -y where inactive (z <= 0), else -(z - y), squared; */         \
        /* c = z - y where active, (0 - y) 0 where inactive (ReLU'(0) = 0) */                \
        FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                           \
            const ptrdiff_t live_ = m - k - u_ * VL;   /* lanes < live_ are neurons */      \
            V s_ = FJ_LLOAD(V, sl + k + u_ * VL);                                            \
            if (live_ < (VL)) {                                                              \
                /* padding lanes: z = +0, an inactive neuron with y = 0 and c = +0, even */  \
                /* where a NaN or inf in x made their z NaN */                               \
                long long lane_[VL];                                                         \
                for (int l_ = 0; l_ < (VL); l_++) lane_[l_] = l_ < live_ ? -1 : 0;           \
                const __typeof__(vzero < vzero) keep_ = FJ_LLOAD(__typeof__(vzero < vzero),  \
                                                                 lane_);                     \
                FJ_UNROLL for (int r_ = 0; r_ < 4; r_++)                                     \
                    a_[r_][u_] = (V)(keep_ & (__typeof__(keep_))a_[r_][u_]);                 \
            }                                                                                \
            FJ_UNROLL for (int r_ = 0; r_ < 4; r_++) {                                       \
                if (r_ >= nr) { c_[r_][u_] = vzero; continue; }                              \
                const T *yp_ = (const T *)ctx->Y + row[r_] * m + k + u_ * VL;                \
                const V y_ = live_ >= (VL) ? FJ_LOADW_##ISA(V, TV, T, yp_)                   \
                                           : FJ_LLOADT(V, TV, VL, T, yp_, live_);            \
                FJ_LOSS_##ISA(V, a_[r_][u_], y_, s_, c_[r_][u_]);                            \
            }                                                                                \
            FJ_LSTORE(sl + k + u_ * VL, s_);                                                 \
        }                                                                                    \
    } else {                                                                                 \
        FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                           \
            const ptrdiff_t live_ = m - k - u_ * VL;                                         \
            FJ_UNROLL for (int r_ = 0; r_ < 4; r_++) {                                       \
                if (r_ >= nr) { c_[r_][u_] = vzero; continue; }                              \
                const V av_ = FJ_LLOADT(V, TV, VL, T,                                        \
                                        (const T *)ctx->A + row[r_] * m + k + u_ * VL, live_); \
                const V gv_ = FJ_LLOADT(V, TV, VL, T,                                        \
                                        (const T *)ctx->G + row[r_] * m + k + u_ * VL, live_); \
                c_[r_][u_] = gv_ * FJ_LSEL(V, av_ > vzero, vzero + 1.0, vzero);              \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                               \
        V gs_ = FJ_LLOAD(V, gb + k + u_ * VL);                                               \
        FJ_UNROLL for (int r_ = 0; r_ < 4; r_++)                                             \
            if (r_ < nr) gs_ += c_[r_][u_];                                                  \
        FJ_LSTORE(gb + k + u_ * VL, gs_);                                                    \
    }                                                                                        \
    if (keep_c)                                                                              \
        FJ_UNROLL for (int r_ = 0; r_ < 4; r_++)                                             \
            FJ_UNROLL for (int u_ = 0; u_ < U; u_++)                                         \
                FJ_LSTORE(zc + r_ * mp + k + u_ * VL, c_[r_][u_]);                           \
    if (do_gw) {                                                                             \
        /* gWt[j, k..] += (c0 x0_j + c1 x1_j) + (c2 x2_j + c3 x3_j), a zero row added */     \
        /* exactly for a group of fewer than four rows */                                    \
        for (j = 0; j < n; j++) {                                                            \
            const double x0j = x0[j], x1j = x1[j], x2j = x2[j], x3j = x3[j];                 \
            FJ_UNROLL for (int u_ = 0; u_ < U; u_++) {                                       \
                double *FJ_RESTRICT gp_ = gWt + j * mp + k + u_ * VL;                        \
                V gv_ = FJ_LLOAD(V, gp_);                                                    \
                gv_ += (c_[0][u_] * x0j + c_[1][u_] * x1j)                                   \
                       + (c_[2][u_] * x2j + c_[3][u_] * x3j);                                \
                FJ_LSTORE(gp_, gv_);                                                         \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
} while (0)

/* The block body, for element type T (TV: VL of them) and vector type V of VL doubles,
 * chunks of at most UMAX vectors; instantiated below per type and SIMD level. Within a
 * lane every operation happens in the same order at every VL and chunk width, so every
 * instantiation gives the same bits: per lane the order is that of the unfused loops (z
 * over j in order, then + b; Σ r² and Σ c over the group's live rows in order; gWt as
 * stated in FJ_LAYER_CHUNK), so the results are those of computing Z, then c, then the
 * sums, one after the other. */
#define FJ_LAYER_BODY(NAME, T, V, TV, VL, UMAX, ISA, ATTR)                                      \
ATTR static void NAME(const fj_layer_ctx *ctx, ptrdiff_t blk)                                \
{                                                                                            \
    const ptrdiff_t n = ctx->n, m = ctx->m, mp = fj_layer_mpad(ctx->m);                     \
    const int mode = ctx->mode;                                                              \
    const ptrdiff_t r0 = blk * ctx->rows_per_block;                                          \
    const ptrdiff_t r1 = r0 + ctx->rows_per_block < ctx->N ? r0 + ctx->rows_per_block      \
                                                            : ctx->N;                        \
    const T *FJ_RESTRICT X = (const T *)ctx->X;                                              \
    const double *FJ_RESTRICT Wt = ctx->Wt;                                                  \
    double *FJ_RESTRICT part = ctx->scratch + blk * ctx->stride;                             \
    double *FJ_RESTRICT gb = part + 1;                                                       \
    double *FJ_RESTRICT gWt = gb + mp;                                                       \
    double *FJ_RESTRICT zc = gWt + n * mp;   /* 4 x mp: z (ACT) or c (gX) */               \
    double *FJ_RESTRICT xd = zc + 4 * mp;    /* 4 x n: the rows, widened */                \
    double *FJ_RESTRICT acc = xd + 4 * n;    /* n: a gX row */                             \
    double *FJ_RESTRICT sl = acc + n;        /* mp: Σ r² per neuron (lane) */              \
    const int do_gw = ctx->do_gw && mode != FJ_LAYER_ACT;                                   \
    const int keep_c = ctx->gX != NULL && mode != FJ_LAYER_ACT;                             \
    const V vzero = {0};                                                                     \
    double sse = 0.0;                                                                        \
    ptrdiff_t i, j, k, r, g;                                                                 \
    for (k = 0; k < mp; k++) { gb[k] = 0.0; sl[k] = 0.0; }                                   \
    if (do_gw) for (j = 0; j < n * mp; j++) gWt[j] = 0.0;                                    \
    for (i = r0; i < r1; i += 4) {                                                           \
        const ptrdiff_t nr = r1 - i < 4 ? r1 - i : 4;                                        \
        ptrdiff_t row[4];                                                                    \
        for (r = 0; r < nr; r++) {                                                           \
            row[r] = ctx->idx ? ctx->idx[i + r] : i + r;                                     \
            const T *FJ_RESTRICT x = X + row[r] * n;                                         \
            double *FJ_RESTRICT xr = xd + r * n;                                             \
            for (j = 0; j < n; j++) xr[j] = (double)x[j];                                    \
        }                                                                                    \
        for (r = nr; r < 4; r++) {                                                           \
            row[r] = row[0];                                                                 \
            for (j = 0; j < n; j++) xd[r * n + j] = 0.0;                                     \
        }                                                                                    \
        const double *FJ_RESTRICT x0 = xd, *FJ_RESTRICT x1 = xd + n;                         \
        const double *FJ_RESTRICT x2 = xd + 2 * n, *FJ_RESTRICT x3 = xd + 3 * n;             \
        for (k = 0; k < mp;) {                                                               \
            if ((UMAX) >= 4 && mp - k >= 4 * (VL)) {                                         \
                FJ_LAYER_CHUNK(T, V, TV, VL, 4, ISA);                                           \
                k += 4 * (VL);                                                               \
            } else if ((UMAX) >= 2 && mp - k >= 2 * (VL)) {                                  \
                FJ_LAYER_CHUNK(T, V, TV, VL, 2, ISA);                                           \
                k += 2 * (VL);                                                               \
            } else {                                                                         \
                FJ_LAYER_CHUNK(T, V, TV, VL, 1, ISA);                                           \
                k += VL;                                                                     \
            }                                                                                \
        }                                                                                    \
        if (mode == FJ_LAYER_ACT) {                                                          \
            for (r = 0; r < nr; r++) {                                                       \
                T *FJ_RESTRICT a = (T *)ctx->out + row[r] * m;                               \
                const double *FJ_RESTRICT zr = zc + r * mp;                                  \
                for (k = 0; k < m; k++) {                                                    \
                    const double v = zr[k];                                                  \
                    a[k] = (T)(v > 0.0 ? v : (v <= 0.0 ? 0.0 : v));                          \
                }                                                                            \
            }                                                                                \
            continue;                                                                        \
        }                                                                                    \
        if (keep_c) {                                                                        \
            for (r = 0; r < nr; r++) {                                                       \
                const double *FJ_RESTRICT cr = zc + r * mp;                                  \
                T *FJ_RESTRICT gx = (T *)ctx->gX + (i + r) * n;                              \
                for (j = 0; j < n; j++) acc[j] = 0.0;                                        \
                for (g = 0; g < m; g++) {                                                    \
                    const double sc = ctx->gx_scale * cr[g];                                 \
                    const double *FJ_RESTRICT wg = ctx->Wd + g * n;                          \
                    for (j = 0; j < n; j++) acc[j] += sc * wg[j];                            \
                }                                                                            \
                for (j = 0; j < n; j++) gx[j] = (T)acc[j];                                   \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    for (k = 0; k < m; k++) sse += sl[k];                                                    \
    part[0] = sse;                                                                           \
}

FJ_LAYER_BODY(fj_layer_block_f64_base, double, fj_lv2, fj_lv2, 2, 2, GEN, )
FJ_LAYER_BODY(fj_layer_block_f32_base, float, fj_lv2, fj_lf2, 2, 2, GEN, )

#if FJ_LAYER_HAVE_X86
FJ_LAYER_BODY(fj_layer_block_f64_avx2, double, fj_lv4, fj_lv4, 4, 2, GEN, __attribute__((target("avx2"))))
FJ_LAYER_BODY(fj_layer_block_f32_avx2, float, fj_lv4, fj_lf4, 4, 2, GEN, __attribute__((target("avx2"))))
FJ_LAYER_BODY(fj_layer_block_f64_avx512, double, fj_lv8, fj_lv8, 8, 4, AVX512,
              __attribute__((target("avx512f,avx512dq,avx512vl,prefer-vector-width=512"))))
FJ_LAYER_BODY(fj_layer_block_f32_avx512, float, fj_lv8, fj_lf8, 8, 4, AVX512,
              __attribute__((target("avx512f,avx512dq,avx512vl,prefer-vector-width=512"))))
#endif

/* The pass between the two BLAS products, over rows of block blk of the (N, m) array Z
 * (Z = X Wᵀ from BLAS): LOSS: z = Z + b, Σ r², Σ c, Z <- scale c; ACT: Z <- max(0, Z + b);
 * VJP: Z holds G, Z <- G (A > 0), Σ of it. Sums in double, per neuron over the rows in
 * order (lane-independent: vectorises), Σ r² then over k in order. */
typedef struct {
    void *Z;
    const void *Y, *A;
    const double *b;
    double scale;
    ptrdiff_t N, m, rows_per_block;
    int mode;
    double *scratch;      /* per block: [Σ r² (1), Σ c (m), Σ r² per lane (m)] */
} fj_between_ctx;

#define FJ_BETWEEN_BODY(NAME, T, ATTR)                                                       \
ATTR static void NAME(const fj_between_ctx *ctx, ptrdiff_t blk)                              \
{                                                                                            \
    const ptrdiff_t m = ctx->m;                                                              \
    const ptrdiff_t r0 = blk * ctx->rows_per_block;                                          \
    const ptrdiff_t r1 = r0 + ctx->rows_per_block < ctx->N ? r0 + ctx->rows_per_block      \
                                                            : ctx->N;                        \
    T *FJ_RESTRICT Z = (T *)ctx->Z;                                                          \
    const double *FJ_RESTRICT b = ctx->b;                                                    \
    double *FJ_RESTRICT part = ctx->scratch + blk * (1 + 2 * m);                             \
    double *FJ_RESTRICT gb = part + 1;                                                       \
    double *FJ_RESTRICT sl = gb + m;                                                         \
    const double scale = ctx->scale;                                                         \
    double sse = 0.0;                                                                        \
    ptrdiff_t i, k;                                                                          \
    for (k = 0; k < m; k++) { gb[k] = 0.0; sl[k] = 0.0; }                                    \
    if (ctx->mode == FJ_LAYER_LOSS) {                                                        \
        const T *FJ_RESTRICT Y = (const T *)ctx->Y;                                          \
        for (i = r0; i < r1; i++) {                                                          \
            T *FJ_RESTRICT zr = Z + i * m;                                                   \
            const T *FJ_RESTRICT yr = Y + i * m;                                             \
            for (k = 0; k < m; k++) {                                                        \
                const double z = (double)zr[k] + b[k], y = (double)yr[k];                    \
                const int inactive = z <= 0.0;                                               \
                const double e = z - y;                                                      \
                const double r = inactive ? -y : e;                                          \
                const double c = inactive ? (0.0 - y) * 0.0 : e;                             \
                sl[k] += r * r;                                                              \
                gb[k] += c;                                                                  \
                zr[k] = (T)(scale * c);                                                      \
            }                                                                                \
        }                                                                                    \
    } else if (ctx->mode == FJ_LAYER_ACT) {                                                  \
        for (i = r0; i < r1; i++) {                                                          \
            T *FJ_RESTRICT zr = Z + i * m;                                                   \
            for (k = 0; k < m; k++) {                                                        \
                const double z = (double)zr[k] + b[k];                                       \
                zr[k] = (T)(z > 0.0 ? z : (z <= 0.0 ? 0.0 : z));                             \
            }                                                                                \
        }                                                                                    \
    } else {                                                                                 \
        const T *FJ_RESTRICT A = (const T *)ctx->A;                                          \
        for (i = r0; i < r1; i++) {                                                          \
            T *FJ_RESTRICT zr = Z + i * m;                                                   \
            const T *FJ_RESTRICT ar = A + i * m;                                             \
            for (k = 0; k < m; k++) {                                                        \
                const double c = (double)zr[k] * ((double)ar[k] > 0.0 ? 1.0 : 0.0);          \
                gb[k] += c;                                                                  \
                zr[k] = (T)c;                                                                \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    for (k = 0; k < m; k++) sse += sl[k];                                                    \
    part[0] = sse;                                                                           \
}

FJ_BETWEEN_BODY(fj_between_f64_base, double, )
FJ_BETWEEN_BODY(fj_between_f32_base, float, )
#if FJ_LAYER_HAVE_X86
FJ_BETWEEN_BODY(fj_between_f64_avx2, double, __attribute__((target("avx2"))))
FJ_BETWEEN_BODY(fj_between_f32_avx2, float, __attribute__((target("avx2"))))
#endif

/* 0 portable, 1 AVX2, 2 AVX-512 (fj_cpu.h's levels); asked at the first call. */
static int fj_layer_level = -1;

static int fj_layer_get_level(void)
{
    if (fj_layer_level < 0)
        fj_layer_level = FJ_LAYER_HAVE_X86 ? fj_cpu_probe() : FJ_CPU_BASELINE;
    return fj_layer_level;
}

/* Testing hook: force a level no higher than the CPU's; a negative level asks the CPU
 * again. Returns the level in force. */
static int fj_layer_set_level(int level)
{
    fj_layer_level = -1;
    if (level >= 0 && level < fj_layer_get_level())
        fj_layer_level = level;
    return fj_layer_get_level();
}

static void fj_layer_block_f64(const fj_layer_ctx *ctx, ptrdiff_t blk)
{
#if FJ_LAYER_HAVE_X86
    const int level = fj_layer_get_level();
    if (level == 2) { fj_layer_block_f64_avx512(ctx, blk); return; }
    if (level == 1) { fj_layer_block_f64_avx2(ctx, blk); return; }
#endif
    fj_layer_block_f64_base(ctx, blk);
}

static void fj_layer_block_f32(const fj_layer_ctx *ctx, ptrdiff_t blk)
{
#if FJ_LAYER_HAVE_X86
    const int level = fj_layer_get_level();
    if (level == 2) { fj_layer_block_f32_avx512(ctx, blk); return; }
    if (level == 1) { fj_layer_block_f32_avx2(ctx, blk); return; }
#endif
    fj_layer_block_f32_base(ctx, blk);
}

static void fj_between_f64(const fj_between_ctx *ctx, ptrdiff_t blk)
{
#if FJ_LAYER_HAVE_X86
    if (fj_layer_get_level() >= 1) { fj_between_f64_avx2(ctx, blk); return; }
#endif
    fj_between_f64_base(ctx, blk);
}

static void fj_between_f32(const fj_between_ctx *ctx, ptrdiff_t blk)
{
#if FJ_LAYER_HAVE_X86
    if (fj_layer_get_level() >= 1) { fj_between_f32_avx2(ctx, blk); return; }
#endif
    fj_between_f32_base(ctx, blk);
}


/* ---- The epoch loop of fit: every step's blocks shared by the threads that are there ---- */
/*
 * fit runs many short steps (one batch each) whose blocks depend on the parameters of the
 * step before. One parallel_for per step would wake the pool's helper every step, and on a
 * busy or virtual machine the wake-up takes about as long as a step. Instead the caller
 * runs fj_fit_worker inside ONE parallel_for of as many "blocks" as threads: every thread
 * that gets there claims the current step's blocks one at a time (a compare-and-swap on a
 * word holding the step number and the next block), and the thread that finishes a step's
 * last block merges the blocks' sums in block order, updates the parameters and publishes
 * the next step. A thread with nothing to claim waits for that (spinning, then yielding).
 * The caller alone can always finish everything (a helper that never comes delays
 * nothing), and as the merge is in block order and the block partition depends on the
 * batch size only, the results are the same bits for every number of threads and every
 * schedule: those of the serial loop.
 */
#if defined(__GNUC__) || defined(__clang__)
#define FJ_FIT_ATOMICS 1
#else
#define FJ_FIT_ATOMICS 0
#endif
#if FJ_FIT_ATOMICS && (defined(__unix__) || defined(__APPLE__))
#include <sched.h>
#define FJ_FIT_YIELD() sched_yield()
#else
#define FJ_FIT_YIELD() ((void)0)
#endif
#if defined(__x86_64__) || defined(__i386__)
#define FJ_FIT_PAUSE() __builtin_ia32_pause()
#else
#define FJ_FIT_PAUSE() ((void)0)
#endif

#define FJ_FIT_DONE 0xffffffffu

typedef struct {
    fj_layer_ctx kc;       /* the one-pass context of the current step */
    void (*block)(const fj_layer_ctx *, ptrdiff_t);
    const char *X, *Y;     /* N x n, N x m, elements of isz bytes */
    size_t isz;
    const ptrdiff_t *orders; /* epochs x N row orders, or NULL */
    double *Wt, *bd;       /* IN/OUT parameters: Wᵀ (n x mp, padded), b (mp) */
    double *losses;        /* OUT per epoch */
    double lr;
    ptrdiff_t N, n, m, batch, epochs;
    ptrdiff_t nb_full, nb_last;   /* blocks of a full batch and of the last one */
    /* progress, written only by the thread that finishes a step */
    ptrdiff_t ep, s0, step, nb;
    double sse;
    ptrdiff_t bad_epoch, bad_step;
    unsigned long long claim;     /* FJ_FIT_WORD(step tag, blocks) + next block */
    long done;                    /* blocks of the current step finished */
} fj_fit_ctx;

/* Set kc for the step starting at row s0 of epoch ep. */
static void fj_fit_setup(fj_fit_ctx *f)
{
    const ptrdiff_t B = f->batch < f->N - f->s0 ? f->batch : f->N - f->s0;
    f->nb = B == f->batch || f->nb_last <= 0 ? f->nb_full : f->nb_last;
    f->kc.N = B;
    f->kc.rows_per_block = (B + f->nb - 1) / f->nb;
    if (f->orders != NULL) {
        f->kc.X = f->X;
        f->kc.Y = f->Y;
        f->kc.idx = f->orders + f->ep * f->N + f->s0;
    } else {
        f->kc.X = f->X + (size_t)(f->s0 * f->n) * f->isz;
        f->kc.Y = f->Y + (size_t)(f->s0 * f->m) * f->isz;
        f->kc.idx = NULL;
    }
}

/* After the last block of a step: merge in block order, update, set up the next step.
 * Returns 0 when the loop is over (all epochs, or a divergence). The same arithmetic as
 * the serial loop it replaced in layer.pyx. */
static int fj_fit_finish_step(fj_fit_ctx *f)
{
    const ptrdiff_t n = f->n, m = f->m, mp = fj_layer_mpad(f->m), nb = f->nb;
    const ptrdiff_t stride = f->kc.stride, width = 1 + mp + n * mp;
    double *total = f->kc.scratch + nb * stride;
    const ptrdiff_t B = f->kc.N;
    ptrdiff_t j, k, blk;
    int bad = 0;
    if (nb == 1) {
        for (j = 0; j < width; j++) total[j] = f->kc.scratch[j];
    } else {
        for (j = 0; j < width; j++) total[j] = 0.0;
        for (blk = 0; blk < nb; blk++) {
            const double *p = f->kc.scratch + blk * stride;
            for (j = 0; j < width; j++) total[j] += p[j];
        }
    }
    if (!(total[0] - total[0] == 0.0)) {
        f->bad_epoch = f->ep;
        f->bad_step = f->step;
        return 0;
    }
    f->sse += total[0];
    {
        /* W <- W - lr ∂C/∂W, b <- b - lr ∂C/∂b, ∂C/∂W = (2/B) Σ c x (paper §6); the
         * padding lanes' sums are exact zeros, so they stay zero */
        const double step_lr = f->lr * (2.0 / (double)B);
        for (k = 0; k < m; k++) f->bd[k] -= step_lr * total[1 + k];
        for (j = 0; j < n * mp; j++) f->Wt[j] -= step_lr * total[1 + mp + j];
    }
    f->s0 += B;
    f->step += 1;
    if (f->s0 >= f->N) {
        const double loss = f->sse / (double)f->N;
        f->losses[f->ep] = loss;
        bad = !(loss - loss == 0.0);
        for (k = 0; k < m; k++)
            if (!(f->bd[k] - f->bd[k] == 0.0)) bad = 1;
        for (j = 0; j < n * mp; j++)
            if (!(f->Wt[j] - f->Wt[j] == 0.0)) bad = 1;
        if (bad) {
            f->bad_epoch = f->ep;
            return 0;
        }
        f->ep += 1;
        f->s0 = 0;
        f->step = 0;
        f->sse = 0.0;
        if (f->ep >= f->epochs) return 0;
    }
    fj_fit_setup(f);
    return 1;
}

/* The claim word: step tag << 32 | blocks of the step << 16 | next block to claim. */
#define FJ_FIT_WORD(tag, nb) (((unsigned long long)(tag) << 32) | ((unsigned long long)(nb) << 16))

/* The worker: run by the caller and by every helper that comes (blk is unused). */
static void fj_fit_worker(void *p, ptrdiff_t blk)
{
    fj_fit_ctx *f = (fj_fit_ctx *)p;
    (void)blk;
#if FJ_FIT_ATOMICS
    unsigned spins = 0;
    for (;;) {
        unsigned long long c = __atomic_load_n(&f->claim, __ATOMIC_ACQUIRE);
        const unsigned tag = (unsigned)(c >> 32);
        const long nb = (long)((c >> 16) & 0xffffu), next = (long)(c & 0xffffu);
        if (tag == FJ_FIT_DONE) return;
        if (next < nb) {
            if (!__atomic_compare_exchange_n(&f->claim, &c, c + 1, 0, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE))
                continue;
            /* f->kc is the step's while its blocks are unfinished */
            f->block(&f->kc, (ptrdiff_t)next);
            spins = 0;
            if (__atomic_add_fetch(&f->done, 1, __ATOMIC_ACQ_REL) == nb) {
                /* the step's last block: no other thread touches the state now */
                const int more = fj_fit_finish_step(f);
                unsigned ntag = tag + 1u == FJ_FIT_DONE ? 0u : tag + 1u;
                __atomic_store_n(&f->done, 0, __ATOMIC_RELAXED);
                __atomic_store_n(&f->claim, more ? FJ_FIT_WORD(ntag, f->nb)
                                                 : FJ_FIT_WORD(FJ_FIT_DONE, 0),
                                 __ATOMIC_RELEASE);
            }
            continue;
        }
        /* every block of this step is taken: wait for the thread that finishes it */
        FJ_FIT_PAUSE();
        if (++spins >= 4096) {
            spins = 0;
            FJ_FIT_YIELD();
        }
    }
#else
    for (;;) {
        ptrdiff_t b;
        for (b = 0; b < f->nb; b++) f->block(&f->kc, b);
        if (!fj_fit_finish_step(f)) return;
    }
#endif
}

/* Start the loop: fills the progress fields and the first step. */
static void fj_fit_start(fj_fit_ctx *f)
{
    f->ep = 0;
    f->s0 = 0;
    f->step = 0;
    f->sse = 0.0;
    f->bad_epoch = -1;
    f->bad_step = -1;
    f->done = 0;
    fj_fit_setup(f);
    f->claim = FJ_FIT_WORD(0, f->nb);
}

#endif /* FJ_LAYER_BLOCK_H */
