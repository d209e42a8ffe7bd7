/* The reduction loops of fastjac/_kernels/elementwise.pyx: Σ a and Σ a b over one block,
 * accumulated in double (float32 elements are widened exactly; a float32 product is exact
 * in double), in C so that they can be written once portably and once with explicit AVX2
 * instructions, the right one chosen when the CPU is known.
 *
 * Arithmetic order (the same in every version, so the same bits):
 *
 * - A block (BLOCK elements; every block starts at a multiple of BLOCK) is summed into
 *   FJ_RACC = 16 double accumulators, all starting at +0.0. Accumulator k takes the block's
 *   elements j ≡ k (mod 16), in increasing j, one addition each: acc[k] += a[j] (or
 *   acc[k] += (double)a[j] * (double)b[j], the product rounded once, never fused).
 *   A block may be fed in several calls (tiles of TILE elements): each call starts at an
 *   element of the block whose index is ≡ 0 (mod 16) (BLOCK and TILE are multiples of 16),
 *   so the call's element j goes to acc[j mod 16] and the split into calls changes nothing.
 * - The block's total is a fixed tree: t[k] = acc[k] + acc[k + 8] (k < 8),
 *   u[k] = t[k] + t[k + 4] (k < 4), v[k] = u[k] + u[k + 2] (k < 2), total = v[0] + v[1].
 * - The callers merge the block totals in block order (elementwise.pyx), so results do not
 *   depend on the thread count either.
 * - One exception, fj.sum of float32 (fj_rsum32_f32, below): 32 accumulators, element j of
 *   the block in acc[j mod 32], and the block total is the tree above applied to
 *   acc[k] + acc[k + 16] (k < 16). Everything else above holds for it (it is fed one whole
 *   block per call). Why: with 16 accumulators a float32 sum is bound by the float->double
 *   widenings and the additions sharing Zen 4's two FP-add pipes (4 cycles per 16
 *   elements); 32 accumulators let the additions run on the multiply-add pipes,
 *   fma(x, 1, acc) (x 1 is exact, so it rounds once what acc + x rounds once: the same
 *   bits), without the multiply-add's longer latency becoming the bound (0.071 -> 0.038 ns
 *   per element in L1; fj.sum float32 at 1e6 on 2 threads 61 -> 40 us in the same run,
 *   benchmarks/c/pool_trace.inc's machine, docs/performance.rst).
 *
 * Users: fj.sum and fj.dot (_block_reduce), and a scalar operand's gradient Σ gy ∂y/∂z,
 * both in the direct loop (_scalar_vjp_block) and in the interpreter (_binary_tile), which
 * therefore give the same bits.
 *
 * Nothing depends on the instruction set or on the alignment of the input: a vector
 * version holds consecutive accumulators in the lanes of each vector (two per vector in
 * the portable one, four in the AVX2 one) and adds lane by lane what the scalar
 * description adds; the tail of a call (m mod 16 elements) is added one element at a time
 * to acc[j mod 16]. An accumulator that starts at +0.0 is never -0.0, so neither is a
 * block total (a caller may use a single block's total as the result directly). Compared with one running sum, the error bound drops from
 * ~n eps to ~(n/16 + 4) eps per block (plus the block merge); the worst case of the old
 * four-accumulator loop was ~(n/4 + 2) eps.
 *
 * Versions:
 * - portable: GCC vector extensions (eight two-lane double vectors, one SSE2 or NEON
 *   register each), or plain C where there are none;
 * - AVX2 (x86-64 GCC/Clang, chosen at run time when the CPU has it): explicit intrinsics,
 *   in particular one vcvtps2pd per four floats (GCC's generic tuning splits
 *   __builtin_convertvector of four floats into halves and shuffles, and spills).
 *   fp-contract is off (setup.py): no multiply-add is formed implicitly. The float32 dot
 *   uses one explicitly, fma(a, b, acc), where the product of two widened floats is exact,
 *   so it rounds once exactly what acc + a b rounds once (the same bits as the portable
 *   version). target("avx2,fma"): like fj_vmath.h, this takes FMA for granted on CPUs with
 *   AVX2 (every x86 CPU that has AVX2 has FMA).
 * tests/test_ops.py checks that both give the same bits, forcing the portable version with
 * fj_reduce_set_level.
 */
#ifndef FJ_REDUCE_H
#define FJ_REDUCE_H

#include <stddef.h>
#include <string.h>
#include "fj_cpu.h"

#define FJ_RACC 16

#if defined(__GNUC__)
#define FJ_REDUCE_VEC 1
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(FJ_NO_MULTIVERSION)
#define FJ_REDUCE_HAVE_AVX2 1
#include <immintrin.h>
#else
#define FJ_REDUCE_HAVE_AVX2 0
#endif
#else
#define FJ_REDUCE_VEC 0
#define FJ_REDUCE_HAVE_AVX2 0
#endif

static inline void fj_racc_zero(double *acc)
{
    int k;
    for (k = 0; k < FJ_RACC; k++)
        acc[k] = 0.0;
}

/* The block total: the fixed tree described above. */
static inline double fj_racc_total(const double *acc)
{
    double t[8], u[4];
    int k;
    for (k = 0; k < 8; k++)
        t[k] = acc[k] + acc[k + 8];
    for (k = 0; k < 4; k++)
        u[k] = t[k] + t[k + 4];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

/* ---------------------------------------------------------------------------- portable */
#if FJ_REDUCE_VEC
/* Two-lane vectors: what SSE2 (the x86-64 baseline) and NEON hold in one register. With
 * four-lane ones, GCC lowers every operation of an SSE2-only build to halves that go
 * through the stack. */
typedef double fj_r2d __attribute__((vector_size(16)));
typedef float fj_r2f __attribute__((vector_size(8)));
#define FJ_R_LD_F64(p) ({ fj_r2d v_; memcpy(&v_, (p), sizeof v_); v_; })
#if defined(__SSE2__)
/* GCC lowers the vector-extension conversion below to two scalar conversions and a
 * shuffle; SSE2 (the x86-64 baseline) has one instruction for it. */
#include <emmintrin.h>
#define FJ_R_LD_F32(p)                                                                       \
    ((fj_r2d)_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(p)))))
#else
#define FJ_R_LD_F32(p)                                                                       \
    ({ fj_r2f v_; memcpy(&v_, (p), sizeof v_); __builtin_convertvector(v_, fj_r2d); })
#endif
#define FJ_R_ST(p, v) memcpy((p), &(v), sizeof(fj_r2d))

/* NAME(acc, a, b, m): the 16 accumulators of the description, two per vector. PROD(j)
 * is the vector of elements j, j+1 (a product for a dot), TERM(j) element j alone. */
#define FJ_DEFINE_RACC_PORTABLE(NAME, T, PROD, TERM)                                         \
    static void NAME(double *restrict acc, const T *restrict a, const T *restrict b,         \
                     Py_ssize_t m)                                                           \
    {                                                                                        \
        fj_r2d s0 = FJ_R_LD_F64(acc), s1 = FJ_R_LD_F64(acc + 2);                             \
        fj_r2d s2 = FJ_R_LD_F64(acc + 4), s3 = FJ_R_LD_F64(acc + 6);                         \
        fj_r2d s4 = FJ_R_LD_F64(acc + 8), s5 = FJ_R_LD_F64(acc + 10);                        \
        fj_r2d s6 = FJ_R_LD_F64(acc + 12), s7 = FJ_R_LD_F64(acc + 14);                       \
        Py_ssize_t j;                                                                        \
        (void)b;                                                                             \
        for (j = 0; j + 16 <= m; j += 16) {                                                  \
            s0 += PROD(j);                                                                   \
            s1 += PROD(j + 2);                                                               \
            s2 += PROD(j + 4);                                                               \
            s3 += PROD(j + 6);                                                               \
            s4 += PROD(j + 8);                                                               \
            s5 += PROD(j + 10);                                                              \
            s6 += PROD(j + 12);                                                              \
            s7 += PROD(j + 14);                                                              \
        }                                                                                    \
        FJ_R_ST(acc, s0);                                                                    \
        FJ_R_ST(acc + 2, s1);                                                                \
        FJ_R_ST(acc + 4, s2);                                                                \
        FJ_R_ST(acc + 6, s3);                                                                \
        FJ_R_ST(acc + 8, s4);                                                                \
        FJ_R_ST(acc + 10, s5);                                                               \
        FJ_R_ST(acc + 12, s6);                                                               \
        FJ_R_ST(acc + 14, s7);                                                               \
        for (; j < m; j++)                                                                   \
            acc[j & 15] += TERM(j);                                                          \
    }
#define FJ_P_SUM_F64(j) FJ_R_LD_F64(a + (j))
#define FJ_P_SUM_F32(j) FJ_R_LD_F32(a + (j))
#define FJ_P_DOT_F64(j) (FJ_R_LD_F64(a + (j)) * FJ_R_LD_F64(b + (j)))
#define FJ_P_DOT_F32(j) (FJ_R_LD_F32(a + (j)) * FJ_R_LD_F32(b + (j)))
#else
#define FJ_DEFINE_RACC_PORTABLE(NAME, T, PROD, TERM)                                         \
    static void NAME(double *acc, const T *a, const T *b, Py_ssize_t m)                     \
    {                                                                                        \
        Py_ssize_t j;                                                                        \
        (void)b;                                                                             \
        for (j = 0; j < m; j++)                                                              \
            acc[j & 15] += TERM(j);                                                          \
    }
#endif
#define FJ_T_SUM(j) ((double)a[j])
#define FJ_T_DOT(j) ((double)a[j] * (double)b[j])

FJ_DEFINE_RACC_PORTABLE(fj_racc_sum_f64_portable, double, FJ_P_SUM_F64, FJ_T_SUM)
FJ_DEFINE_RACC_PORTABLE(fj_racc_sum_f32_portable, float, FJ_P_SUM_F32, FJ_T_SUM)
FJ_DEFINE_RACC_PORTABLE(fj_racc_dot_f64_portable, double, FJ_P_DOT_F64, FJ_T_DOT)
FJ_DEFINE_RACC_PORTABLE(fj_racc_dot_f32_portable, float, FJ_P_DOT_F32, FJ_T_DOT)

/* -------------------------------------------------------------------------------- AVX2 */
#if FJ_REDUCE_HAVE_AVX2
#define FJ_R_AVX2_FN __attribute__((target("avx2,fma"), optimize("fp-contract=off")))
#define FJ_A_LD_F64(p) _mm256_loadu_pd(p)
#define FJ_A_LD_F32(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
/* ACC(s, j): s plus the terms of elements j..j+3, one rounding per lane. */
#define FJ_A_SUM_F64(s, j) _mm256_add_pd((s), FJ_A_LD_F64(a + (j)))
#define FJ_A_SUM_F32(s, j) _mm256_add_pd((s), FJ_A_LD_F32(a + (j)))
#define FJ_A_DOT_F64(s, j)                                                                   \
    _mm256_add_pd((s), _mm256_mul_pd(FJ_A_LD_F64(a + (j)), FJ_A_LD_F64(b + (j))))
/* float32: the double product of two widened floats is exact, so fma(a, b, s) rounds once
 * what s + a b rounds once: the same bits, with the addition moved to the multiply-add
 * pipes (Zen 4: the widenings and the additions otherwise share the two FP-add pipes;
 * 1.4x fewer cycles per element in L1). */
#define FJ_A_DOT_F32(s, j) _mm256_fmadd_pd(FJ_A_LD_F32(a + (j)), FJ_A_LD_F32(b + (j)), (s))

#define FJ_DEFINE_RACC_AVX2(NAME, T, ACC, TERM)                                              \
    static FJ_R_AVX2_FN void NAME(double *restrict acc, const T *restrict a,                 \
                                  const T *restrict b, Py_ssize_t m)                         \
    {                                                                                        \
        __m256d s0 = _mm256_loadu_pd(acc), s1 = _mm256_loadu_pd(acc + 4);                   \
        __m256d s2 = _mm256_loadu_pd(acc + 8), s3 = _mm256_loadu_pd(acc + 12);               \
        Py_ssize_t j;                                                                        \
        (void)b;                                                                             \
        for (j = 0; j + 16 <= m; j += 16) {                                                  \
            s0 = ACC(s0, j);                                                                 \
            s1 = ACC(s1, j + 4);                                                             \
            s2 = ACC(s2, j + 8);                                                             \
            s3 = ACC(s3, j + 12);                                                            \
        }                                                                                    \
        _mm256_storeu_pd(acc, s0);                                                           \
        _mm256_storeu_pd(acc + 4, s1);                                                       \
        _mm256_storeu_pd(acc + 8, s2);                                                       \
        _mm256_storeu_pd(acc + 12, s3);                                                      \
        for (; j < m; j++)                                                                   \
            acc[j & 15] += TERM(j);                                                          \
    }
#else
#define FJ_DEFINE_RACC_AVX2(NAME, T, ACC, TERM)                                              \
    static void NAME(double *acc, const T *a, const T *b, Py_ssize_t m)                     \
    {                                                                                        \
        (void)acc; (void)a; (void)b; (void)m; /* never called */                            \
    }
#endif

FJ_DEFINE_RACC_AVX2(fj_racc_sum_f64_avx2, double, FJ_A_SUM_F64, FJ_T_SUM)
FJ_DEFINE_RACC_AVX2(fj_racc_sum_f32_avx2, float, FJ_A_SUM_F32, FJ_T_SUM)
FJ_DEFINE_RACC_AVX2(fj_racc_dot_f64_avx2, double, FJ_A_DOT_F64, FJ_T_DOT)
FJ_DEFINE_RACC_AVX2(fj_racc_dot_f32_avx2, float, FJ_A_DOT_F32, FJ_T_DOT)

/* ------------------------------------------------ fj.sum of float32: 32 accumulators */
#define FJ_RSUM32 32

static inline void fj_rsum32_zero(double *acc)
{
    int k;
    for (k = 0; k < FJ_RSUM32; k++)
        acc[k] = 0.0;
}

/* The block total: acc[k] + acc[k + 16], then the 16-accumulator tree (see the top). */
static inline double fj_rsum32_total(const double *acc)
{
    double t[FJ_RACC];
    int k;
    for (k = 0; k < FJ_RACC; k++)
        t[k] = acc[k] + acc[k + FJ_RACC];
    return fj_racc_total(t);
}

#if FJ_REDUCE_VEC
/* Portable: 32 accumulators in sixteen two-lane vectors (SSE2 has sixteen registers; GCC
 * keeps most of them there); the same additions, in the same order, as the AVX2 version. */
static void fj_rsum32_f32_portable(double *restrict acc, const float *restrict a, Py_ssize_t m)
{
    fj_r2d s[16];
    Py_ssize_t j;
    int k;
    for (k = 0; k < 16; k++)
        s[k] = FJ_R_LD_F64(acc + 2 * k);
    for (j = 0; j + 32 <= m; j += 32) {
        for (k = 0; k < 16; k++)
            s[k] += FJ_R_LD_F32(a + j + 2 * k);
    }
    for (k = 0; k < 16; k++)
        FJ_R_ST(acc + 2 * k, s[k]);
    for (; j < m; j++)
        acc[j & 31] += (double)a[j];
}
#else
static void fj_rsum32_f32_portable(double *acc, const float *a, Py_ssize_t m)
{
    Py_ssize_t j;
    for (j = 0; j < m; j++)
        acc[j & 31] += (double)a[j];
}
#endif

#if FJ_REDUCE_HAVE_AVX2
/* AVX2: accumulators 4i .. 4i+3 in vector i; each addition is fma(x, 1, acc) (see the top). */
static FJ_R_AVX2_FN void fj_rsum32_f32_avx2(double *restrict acc, const float *restrict a,
                                            Py_ssize_t m)
{
    const __m256d one = _mm256_set1_pd(1.0);
    __m256d s0 = _mm256_loadu_pd(acc), s1 = _mm256_loadu_pd(acc + 4);
    __m256d s2 = _mm256_loadu_pd(acc + 8), s3 = _mm256_loadu_pd(acc + 12);
    __m256d s4 = _mm256_loadu_pd(acc + 16), s5 = _mm256_loadu_pd(acc + 20);
    __m256d s6 = _mm256_loadu_pd(acc + 24), s7 = _mm256_loadu_pd(acc + 28);
    Py_ssize_t j;
    for (j = 0; j + 32 <= m; j += 32) {
        s0 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j), one, s0);
        s1 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 4), one, s1);
        s2 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 8), one, s2);
        s3 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 12), one, s3);
        s4 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 16), one, s4);
        s5 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 20), one, s5);
        s6 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 24), one, s6);
        s7 = _mm256_fmadd_pd(FJ_A_LD_F32(a + j + 28), one, s7);
    }
    _mm256_storeu_pd(acc, s0);
    _mm256_storeu_pd(acc + 4, s1);
    _mm256_storeu_pd(acc + 8, s2);
    _mm256_storeu_pd(acc + 12, s3);
    _mm256_storeu_pd(acc + 16, s4);
    _mm256_storeu_pd(acc + 20, s5);
    _mm256_storeu_pd(acc + 24, s6);
    _mm256_storeu_pd(acc + 28, s7);
    for (; j < m; j++)
        acc[j & 31] += (double)a[j];
}
#endif

/* ---------------------------------------------------------------------------- dispatch */
/* 0: portable, 1: AVX2; -1 until the first call asks the CPU (a benign race: every thread
 * that asks gets the same answer). fj_reduce_set_level lets tests force the portable one. */
static int fj_reduce_level = -1;

static int fj_reduce_get_level(void)
{
    if (fj_reduce_level < 0) {
#if FJ_REDUCE_HAVE_AVX2
        fj_reduce_level = fj_cpu_probe() >= FJ_CPU_AVX2 ? 1 : 0;
#else
        fj_reduce_level = 0;
#endif
    }
    return fj_reduce_level;
}

/* Returns the level in force afterwards: level 1 is granted only where the CPU has AVX2;
 * a negative level goes back to asking the CPU. */
static int fj_reduce_set_level(int level)
{
    fj_reduce_level = -1;
    if (level >= 0 && level < fj_reduce_get_level())
        fj_reduce_level = level;
    return fj_reduce_get_level();
}

/* acc[j mod 16] += a[j] (b NULL) or a[j] b[j], for j in [0, m); see the top of the file. */
#define FJ_DEFINE_RACC_DISPATCH(NAME, T)                                                     \
    static void NAME(double *acc, const T *a, const T *b, Py_ssize_t m)                     \
    {                                                                                        \
        if (b == NULL) {                                                                     \
            if (FJ_REDUCE_HAVE_AVX2 && fj_reduce_get_level() >= 1)                           \
                fj_racc_sum_##T##_avx2(acc, a, NULL, m);                                     \
            else                                                                             \
                fj_racc_sum_##T##_portable(acc, a, NULL, m);                                 \
        } else {                                                                             \
            if (FJ_REDUCE_HAVE_AVX2 && fj_reduce_get_level() >= 1)                           \
                fj_racc_dot_##T##_avx2(acc, a, b, m);                                        \
            else                                                                             \
                fj_racc_dot_##T##_portable(acc, a, b, m);                                    \
        }                                                                                    \
    }
#define fj_racc_sum_double_avx2 fj_racc_sum_f64_avx2
#define fj_racc_sum_double_portable fj_racc_sum_f64_portable
#define fj_racc_dot_double_avx2 fj_racc_dot_f64_avx2
#define fj_racc_dot_double_portable fj_racc_dot_f64_portable
#define fj_racc_sum_float_avx2 fj_racc_sum_f32_avx2
#define fj_racc_sum_float_portable fj_racc_sum_f32_portable
#define fj_racc_dot_float_avx2 fj_racc_dot_f32_avx2
#define fj_racc_dot_float_portable fj_racc_dot_f32_portable
FJ_DEFINE_RACC_DISPATCH(fj_racc_add_f64, double)
FJ_DEFINE_RACC_DISPATCH(fj_racc_add_f32, float)

/* acc[j mod 32] += a[j] for j in [0, m): fj.sum of float32 (see the top). */
static void fj_rsum32_f32(double *acc, const float *a, Py_ssize_t m)
{
#if FJ_REDUCE_HAVE_AVX2
    if (fj_reduce_get_level() >= 1) {
        fj_rsum32_f32_avx2(acc, a, m);
        return;
    }
#endif
    fj_rsum32_f32_portable(acc, a, m);
}

#endif /* FJ_REDUCE_H */
