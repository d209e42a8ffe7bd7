/* Vectorised transcendental functions for fastjac's element-wise kernels.

   Every function here maps double arrays to double arrays (in place allowed where noted),
   and every element goes through the same arithmetic whatever its position or the SIMD
   width, so results never depend on n, on the block partition or on the thread count.
   float32 is computed in double too, but (in the default mode) through the routines of
   fj_vmath32.h, sized for a 24-bit result, and rounded once: faithfully rounded.

   Three precision modes (fj_fast_math, set from Python by fastjac.set_precision):

   * "accurate" (default): exp, log, sin, cos, tanh, sigmoid and the derivatives of tanh
     and sigmoid are fastjac's own vectorised routines below, every one under one ulp
     (measured maxima over 1e7 points in docs/guide/precision.rst: exp 0.57, sin/cos 0.78,
     log 0.83, tanh 0.57, sech^2, sigmoid, sigmoid' 0.54).
   * "strict": libm for every transcendental (glibc's bits exactly, several times slower).
   * "fast" (opt-in): sin, cos, tanh and log call glibc's libmvec (AVX-512 or AVX2 variants,
     chosen at run time). Measured error: up to ~3.5 ulp for sin/cos, ~1.5 ulp for log,
     ~1.2 (AVX-512) / ~2.1 (AVX2) ulp for tanh. The rest as "accurate".

   Without libmvec at build time (FJ_HAVE_LIBMVEC 0), "fast" is the same as "accurate".

   SIMD versions: the CPU is asked once (fj_cpu.h); the loops exist for AVX-512F, AVX2 and
   the baseline, either written with intrinsics (exp: table lookups by register permutes)
   or written once in plain C and compiled three times (FJ_MULTI). The file is compiled
   with -ffp-contract=off (setup.py): no fused multiply-add is formed, so all versions give
   bitwise-identical results; _set_vmath_level forces a lower one for the tests. */
#ifndef FJ_VMATH_H
#define FJ_VMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fj_cpu.h"
#include "fj_exp_table.h"

#ifndef FJ_HAVE_LIBMVEC
#define FJ_HAVE_LIBMVEC 0
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FJ_NO_TARGET_CLONES)
#define FJ_X86_DISPATCH 1
#else
#define FJ_X86_DISPATCH 0
#endif

/* FJ_MULTI(NAME, PARAMS, ARGS): from a body written once in plain C as
   "FJ_BODY void NAME_body PARAMS", three compiled versions (AVX-512F, AVX2, baseline x86-64)
   that gcc vectorises for each instruction set, and NAME PARAMS calling the one for
   fj_cpu_level (which _set_vmath_level can lower for tests). The bodies use no FMA (fp
   contraction is off, setup.py) and no reduction whose order the vectoriser could change,
   so the three give the same bits (tests/test_vmath.py compares them). */
#if defined(__GNUC__)
#define FJ_BODY static inline __attribute__((always_inline))
#else
#define FJ_BODY static inline
#endif
#if FJ_X86_DISPATCH
#define FJ_MULTI(NAME, PARAMS, ARGS)                                                         \
    __attribute__((target("avx512f"))) static void NAME##_avx512 PARAMS { NAME##_body ARGS; } \
    __attribute__((target("avx2"))) static void NAME##_avx2 PARAMS { NAME##_body ARGS; }     \
    static void NAME##_base PARAMS { NAME##_body ARGS; }                                     \
    static void NAME PARAMS {                                                                \
        if (fj_cpu_level == 2) NAME##_avx512 ARGS;                                           \
        else if (fj_cpu_level == 1) NAME##_avx2 ARGS;                                        \
        else NAME##_base ARGS;                                                               \
    }
#else
#define FJ_MULTI(NAME, PARAMS, ARGS) \
    static void NAME PARAMS { NAME##_body ARGS; }
#endif

/* FJ_MULTI_FMA: FJ_MULTI with FMA in the AVX-512 and AVX2 targets, for bodies that call
   fma() explicitly (it forms no other fused operation: -ffp-contract=off); the AVX2 version only
   where the CPU has FMA (every AVX2 CPU the project knows has it; checked anyway). */
#if FJ_X86_DISPATCH
static int fj_has_fma = -1;
#define FJ_MULTI_FMA(NAME, PARAMS, ARGS)                                                     \
    __attribute__((target("avx512f,fma"))) static void NAME##_avx512 PARAMS {                \
        NAME##_body ARGS;                                                                    \
    }                                                                                        \
    __attribute__((target("avx2,fma"))) static void NAME##_avx2 PARAMS { NAME##_body ARGS; } \
    static void NAME##_base PARAMS { NAME##_body ARGS; }                                     \
    static void NAME PARAMS {                                                                \
        if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;              \
        if (fj_cpu_level == 2) NAME##_avx512 ARGS;                                           \
        else if (fj_cpu_level == 1 && fj_has_fma) NAME##_avx2 ARGS;                          \
        else NAME##_base ARGS;                                                               \
    }
#else
#define FJ_MULTI_FMA(NAME, PARAMS, ARGS) \
    static void NAME PARAMS { NAME##_body ARGS; }
#endif
#define FJ32_MULTI FJ_MULTI_FMA /* the name fj_vtrig.h's float32 code uses */

#if FJ_HAVE_LIBMVEC && !FJ_X86_DISPATCH
#undef FJ_HAVE_LIBMVEC
#define FJ_HAVE_LIBMVEC 0
#endif

/* -1 "strict": libm for every transcendental; 0 "accurate" (default): fastjac's vectorised
   exp, log, sin, cos, tanh, sigmoid (< 1 ulp); 1 "fast": libmvec for sin, cos, tanh, log
   where available. */
static int fj_fast_math = 0;
static int fj_cpu_level = 0;  /* 0: baseline, 1: AVX2, 2: AVX-512F (set by fj_vmath_init) */

static int fj_vmath_best_level(void) {
#if FJ_X86_DISPATCH
    return fj_cpu_probe();
#else
    return 0;
#endif
}

static void fj_vmath_init(void) { fj_cpu_level = fj_vmath_best_level(); }

/* Testing hook: run the vector math at `level` (0 baseline, 1 AVX2, 2 AVX-512F) when the CPU
   has it, or at the CPU's best for a negative level; returns the level in force. Every
   level gives the same bits. */
static int fj_vmath_set_level(int level) {
    int best = fj_vmath_best_level();
    fj_cpu_level = (level >= 0 && level < best) ? level : best;
    return fj_cpu_level;
}

static int fj_have_libmvec(void) { return FJ_HAVE_LIBMVEC && fj_cpu_level > 0; }

static inline uint64_t fj_asu64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double fj_asf64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t fj_asu32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float fj_asf32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

#define FJ_EXP_IN_RANGE(x) (fabs(x) < 700.0)
#define FJ_INV_LN2_N 0x1.71547652b82fep+4 /* 16 / ln 2 */
#define FJ_SHIFT 0x1.8p52
#define FJ_LN2HI_N 0x1.62e42fefa0000p-5   /* ln2/16, head with 38 bits: kd * head is exact */
#define FJ_LN2LO_N 0x1.cf79abc9e3b3ap-44
#define FJ_C3 (1.0 / 6.0)
#define FJ_C4 (1.0 / 24.0)
#define FJ_C5 (1.0 / 120.0)
#define FJ_C6 (1.0 / 720.0)
#define FJ_C7 (1.0 / 5040.0)

/* exp(x) for |x| < 700: x = k ln2/16 + r, |r| <= ln2/32, exp(x) = 2^(k/16) exp(r)
   = 2^e H_i (1 + T_i)(1 + r + r^2/2 + ... + r^7/5040). The reduction is exact (ln2/16 split
   in a 38-bit head and a tail; |k| < 2^14), the Taylor truncation is ~0.01 ulp and the two
   final roundings bound the error at ~0.51 ulp. Out-of-range lanes (|x| >= 700, inf, NaN)
   are redone by libm. */
static inline void fj_exp_dd(double x, double* hi, double* lo) {
    double kd = x * FJ_INV_LN2_N + FJ_SHIFT;
    uint64_t ki = fj_asu64(kd);
    kd -= FJ_SHIFT;
    double r = (x - kd * FJ_LN2HI_N) - kd * FJ_LN2LO_N;
    uint64_t i = ki & 15;
    double scale = fj_asf64(fj_exp_head[i] + (ki << 48));
    double r2 = r * r;
    double p = (fj_exp_tail[i] + r) + r2 * (0.5 + r * FJ_C3);
    p = p + (r2 * r2) * ((FJ_C4 + r * FJ_C5) + r2 * (FJ_C6 + r * FJ_C7));
    p = scale * p;
    *hi = scale + p;
    *lo = p - (*hi - scale);  /* Fast2Sum: |scale| > |p| */
}

/* exp(x) rounded (fj_exp_core: hi), or hi + lo unrounded, |lo| <= ulp(hi)/2, with ~2^-57
   relative error (used where exp feeds a further operation: tanh, sech^2, sigmoid). */
static inline double fj_exp_core(double x) {
    double hi, lo;
    fj_exp_dd(x, &hi, &lo);
    return hi;
}

/* The same arithmetic, operation for operation, on 8 lanes (the table lookups are register
   permutes: gathers are microcoded and slow on many Xeons) and on 4 lanes (scalar lookups).
   No FMA anywhere: the same bits as fj_exp_core. */
#if FJ_X86_DISPATCH
#include <immintrin.h>
__attribute__((target("avx512f"))) static inline void fj_exp_parts8(__m512d x, __m512d* sc,
                                                                    __m512d* sp) {
    const __m512d shift = _mm512_set1_pd(FJ_SHIFT);
    __m512d kd = _mm512_add_pd(_mm512_mul_pd(x, _mm512_set1_pd(FJ_INV_LN2_N)), shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_sub_pd(_mm512_sub_pd(x, _mm512_mul_pd(kd, _mm512_set1_pd(FJ_LN2HI_N))),
                              _mm512_mul_pd(kd, _mm512_set1_pd(FJ_LN2LO_N)));
    __m512d tail = _mm512_permutex2var_pd(_mm512_load_pd(fj_exp_tail), ki,
                                          _mm512_load_pd(fj_exp_tail + 8));
    __m512i head = _mm512_castpd_si512(_mm512_permutex2var_pd(
        _mm512_load_pd((const double*)fj_exp_head), ki,
        _mm512_load_pd((const double*)fj_exp_head + 8)));
    __m512d scale = _mm512_castsi512_pd(_mm512_add_epi64(head, _mm512_slli_epi64(ki, 48)));
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d p = _mm512_add_pd(_mm512_add_pd(tail, r),
                              _mm512_mul_pd(r2, _mm512_add_pd(_mm512_set1_pd(0.5),
                                  _mm512_mul_pd(r, _mm512_set1_pd(FJ_C3)))));
    __m512d q = _mm512_add_pd(
        _mm512_add_pd(_mm512_set1_pd(FJ_C4), _mm512_mul_pd(r, _mm512_set1_pd(FJ_C5))),
        _mm512_mul_pd(r2, _mm512_add_pd(_mm512_set1_pd(FJ_C6),
                                        _mm512_mul_pd(r, _mm512_set1_pd(FJ_C7)))));
    p = _mm512_add_pd(p, _mm512_mul_pd(_mm512_mul_pd(r2, r2), q));
    *sc = scale;
    *sp = _mm512_mul_pd(scale, p);
}

__attribute__((target("avx512f"))) static inline __m512d fj_exp_core8(__m512d x) {
    __m512d sc, sp;
    fj_exp_parts8(x, &sc, &sp);
    return _mm512_add_pd(sc, sp);
}

__attribute__((target("avx512f"))) static void fj_exp_n_avx512(double* y, const double* x,
                                                               ptrdiff_t n) {
    ptrdiff_t i = 0;
    int k;
    for (; i + 8 <= n; i += 8) {
        __m512d xv = _mm512_loadu_pd(x + i);
        __mmask8 ok = _mm512_cmp_pd_mask(_mm512_abs_pd(xv), _mm512_set1_pd(700.0), _CMP_LT_OQ);
        _mm512_storeu_pd(y + i, fj_exp_core8(xv));
        if (ok != 0xFF) {
            double xs[8];
            _mm512_storeu_pd(xs, xv);
            for (k = 0; k < 8; k++)
                if (!((ok >> k) & 1)) y[i + k] = exp(xs[k]);
        }
    }
    for (; i < n; i++) y[i] = FJ_EXP_IN_RANGE(x[i]) ? fj_exp_core(x[i]) : exp(x[i]);
}

__attribute__((target("avx2"))) static inline void fj_exp_parts4(__m256d x, __m256d* sc,
                                                                 __m256d* sp) {
    const __m256d shift = _mm256_set1_pd(FJ_SHIFT);
    uint64_t kb[4];
    __m256d kd = _mm256_add_pd(_mm256_mul_pd(x, _mm256_set1_pd(FJ_INV_LN2_N)), shift);
    __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    __m256d r = _mm256_sub_pd(_mm256_sub_pd(x, _mm256_mul_pd(kd, _mm256_set1_pd(FJ_LN2HI_N))),
                              _mm256_mul_pd(kd, _mm256_set1_pd(FJ_LN2LO_N)));
    _mm256_storeu_si256((__m256i*)kb, ki);
    __m256d tail = _mm256_set_pd(fj_exp_tail[kb[3] & 15], fj_exp_tail[kb[2] & 15],
                                 fj_exp_tail[kb[1] & 15], fj_exp_tail[kb[0] & 15]);
    __m256i head = _mm256_set_epi64x(
        (long long)fj_exp_head[kb[3] & 15], (long long)fj_exp_head[kb[2] & 15],
        (long long)fj_exp_head[kb[1] & 15], (long long)fj_exp_head[kb[0] & 15]);
    __m256d scale = _mm256_castsi256_pd(_mm256_add_epi64(head, _mm256_slli_epi64(ki, 48)));
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d p = _mm256_add_pd(_mm256_add_pd(tail, r),
                              _mm256_mul_pd(r2, _mm256_add_pd(_mm256_set1_pd(0.5),
                                  _mm256_mul_pd(r, _mm256_set1_pd(FJ_C3)))));
    __m256d q = _mm256_add_pd(
        _mm256_add_pd(_mm256_set1_pd(FJ_C4), _mm256_mul_pd(r, _mm256_set1_pd(FJ_C5))),
        _mm256_mul_pd(r2, _mm256_add_pd(_mm256_set1_pd(FJ_C6),
                                        _mm256_mul_pd(r, _mm256_set1_pd(FJ_C7)))));
    p = _mm256_add_pd(p, _mm256_mul_pd(_mm256_mul_pd(r2, r2), q));
    *sc = scale;
    *sp = _mm256_mul_pd(scale, p);
}

__attribute__((target("avx2"))) static inline __m256d fj_exp_core4(__m256d x) {
    __m256d sc, sp;
    fj_exp_parts4(x, &sc, &sp);
    return _mm256_add_pd(sc, sp);
}

__attribute__((target("avx2"))) static void fj_exp_n_avx2(double* y, const double* x,
                                                          ptrdiff_t n) {
    ptrdiff_t i = 0;
    int k;
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    for (; i + 4 <= n; i += 4) {
        __m256d xv = _mm256_loadu_pd(x + i);
        int ok = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_and_pd(xv, absmask),
                                                  _mm256_set1_pd(700.0), _CMP_LT_OQ));
        _mm256_storeu_pd(y + i, fj_exp_core4(xv));
        if (ok != 0xF) {
            double xs[4];
            _mm256_storeu_pd(xs, xv);
            for (k = 0; k < 4; k++)
                if (!((ok >> k) & 1)) y[i + k] = exp(xs[k]);
        }
    }
    for (; i < n; i++) y[i] = FJ_EXP_IN_RANGE(x[i]) ? fj_exp_core(x[i]) : exp(x[i]);
}
#endif

/* y[k] = exp(x[k]); y == x allowed. */
static void fj_exp_n(double* y, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
    if (fj_fast_math < 0) {
        for (i = 0; i < n; i++) y[i] = exp(x[i]);
        return;
    }
#if FJ_X86_DISPATCH
    if (fj_cpu_level == 2) { fj_exp_n_avx512(y, x, n); return; }
    if (fj_cpu_level == 1) { fj_exp_n_avx2(y, x, n); return; }
#endif
    for (i = 0; i < n; i++) y[i] = FJ_EXP_IN_RANGE(x[i]) ? fj_exp_core(x[i]) : exp(x[i]);
}

/* hi[k] + lo[k] = exp(x[k]) as fj_exp_dd gives it, for |x[k]| < 700 (other lanes: garbage,
   the callers redo or discard them), in every mode; the AVX-512 version looks the table up
   with register permutes (gcc would not vectorise the lookup of the plain C core), the
   AVX2 one like fj_exp_core4; the same bits on every path. */
#if FJ_X86_DISPATCH
__attribute__((target("avx512f"))) static void fj_exp_dd_n_avx512(double* hi, double* lo,
                                                                  const double* x,
                                                                  ptrdiff_t n) {
    ptrdiff_t i = 0;
    __m512d sc, sp, h;
    double tx[8], th[8], tl[8];
    for (; i + 8 <= n; i += 8) {
        fj_exp_parts8(_mm512_loadu_pd(x + i), &sc, &sp);
        h = _mm512_add_pd(sc, sp);
        _mm512_storeu_pd(hi + i, h);
        _mm512_storeu_pd(lo + i, _mm512_sub_pd(sp, _mm512_sub_pd(h, sc)));
    }
    if (i < n) {
        ptrdiff_t k, r = n - i;
        for (k = 0; k < 8; k++) tx[k] = k < r ? x[i + k] : 0.0;
        fj_exp_parts8(_mm512_loadu_pd(tx), &sc, &sp);
        h = _mm512_add_pd(sc, sp);
        _mm512_storeu_pd(th, h);
        _mm512_storeu_pd(tl, _mm512_sub_pd(sp, _mm512_sub_pd(h, sc)));
        for (k = 0; k < r; k++) {
            hi[i + k] = th[k];
            lo[i + k] = tl[k];
        }
    }
}

__attribute__((target("avx2"))) static void fj_exp_dd_n_avx2(double* hi, double* lo,
                                                             const double* x, ptrdiff_t n) {
    ptrdiff_t i = 0;
    __m256d sc, sp, h;
    for (; i + 4 <= n; i += 4) {
        fj_exp_parts4(_mm256_loadu_pd(x + i), &sc, &sp);
        h = _mm256_add_pd(sc, sp);
        _mm256_storeu_pd(hi + i, h);
        _mm256_storeu_pd(lo + i, _mm256_sub_pd(sp, _mm256_sub_pd(h, sc)));
    }
    for (; i < n; i++) fj_exp_dd(x[i], &hi[i], &lo[i]);
}
#endif

static void fj_exp_dd_n(double* hi, double* lo, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
#if FJ_X86_DISPATCH
    if (fj_cpu_level == 2) { fj_exp_dd_n_avx512(hi, lo, x, n); return; }
    if (fj_cpu_level == 1) { fj_exp_dd_n_avx2(hi, lo, x, n); return; }
#endif
    for (i = 0; i < n; i++) fj_exp_dd(x[i], &hi[i], &lo[i]);
}

/* ---- double-double helpers (exact without FMA) ---------------------------------------- */
#define FJ_SPLIT 134217729.0 /* 2^27 + 1 */

/* a b = p + e exactly (where a b - p is not below the subnormal range) by one fma, the
   error term Dekker's split product gave with 17 operations (the same e wherever both are
   exact). Used only in loops compiled by FJ_MULTI_FMA (tanh, sech^2, sigmoid): the
   instruction on AVX-512 and AVX2, the C library's exact fma on the baseline. */
static inline void fj_two_prod(double a, double b, double* p, double* e) {
    *p = a * b;
    *e = fma(a, b, -*p);
}

/* (nh + nl) / (dh + dl) rounded with ~0.5 ulp + ~2^-100 relative error, given inv ~ 1/dh
   (within a few ulp): y = nh inv (within a few ulp), then one Newton correction with the
   residual nh - y dh formed exactly (fj_two_prod; nh - p is exact by Sterbenz) and scaled by
   inv, whose error only touches the correction (~2^-52 of an ulp). |nl| << |nh|,
   |dl| << |dh|. One division (1/dh) can serve several quotients. */
static inline double fj_dd_div_inv(double nh, double nl, double dh, double dl, double inv) {
    double y = nh * inv, p, e;
    fj_two_prod(y, dh, &p, &e);
    return y + ((((nh - p) - e) + nl) - y * dl) * inv;
}

static inline double fj_dd_div(double nh, double nl, double dh, double dl) {
    return fj_dd_div_inv(nh, nl, dh, dl, 1.0 / dh);
}

/* ---- sqrt' and reciprocal' within 1 ulp ----------------------------------------------

   0.5/sqrt(x) and -(1/x)^2 as plain expressions round two or three times (measured 1.5
   and 1.9 ulp in float64). sqrt' is sqrt(0.25/x): the quotient's relative error (< 2^-53)
   is halved by the square root, < 1/2 ulp of the result, plus the final rounding: < 1 ulp.
   reciprocal': below. Inputs are scaled by powers of 2 so that no intermediate overflows
   or underflows; zeros, infinities, NaN and negative inputs take the plain expression
   (the NumPy expression's inf, 0 or NaN, signed zeros kept). */
static inline double fj_sqrt_deriv(double x) {
    int lo = x < 0x1p-1000, hi = x > 0x1p1000;
    double xs = lo ? x * 0x1p200 : (hi ? x * 0x1p-200 : x);
    double sc = lo ? 0x1p100 : (hi ? 0x1p-100 : 1.0);
    double d = sc * sqrt(0.25 / xs);
    /* 0.5/sqrt(x) at +-0 (+-inf), inf (0), x < 0 and NaN (NaN), without a second root */
    return (x > 0.0 && x < INFINITY) ? d
           : (x == 0.0 ? copysign(INFINITY, x) : (x == INFINITY ? 0.0 : x + NAN));
}

/* reciprocal'(x) = -1/x^2 = -1/(P + E) with x^2 = P + E exactly (E = fma(x, x, -P)):
   q = 1/P (the one division), r = 1 - q (P + E) (fma(-q, P, 1) is exact; q E adds
   ~2^-105), and -(q + q r) rounded once by an fma: ~0.5 ulp + 2^-50 ulp. Inputs with
   |x| < 2^-400 are scaled by 2^600 (the result by 2^1200 in two exact steps: an overflow
   there is the true result's), |x| > 2^400 by 2^-513 (the result by the subnormal 2^-1026
   in one step: one rounding into the subnormals), so that P, E and q stay normal. Written
   with fma() (never formed by the compiler: -ffp-contract=off): the AVX-512 and AVX2
   loops (FJ_MULTI_FMA) use the instruction, the baseline the C library's exact fma, so every
   level gives the same bits. The vector loops (fj_recip_deriv_tile) run the unscaled core
   on every lane and redo the others (FJ_RECIP_CORE_OK false) with fj_recip_deriv: gcc
   would otherwise compute the core once per scaling branch (three divisions). */
#define FJ_RECIP_CORE_OK(a) ((a) >= 0x1p-400 && (a) <= 0x1p400)
static inline double fj_recip_deriv_core(double xs) {
    double P = xs * xs;
    double E = fma(xs, xs, -P);
    double q = 1.0 / P;
    double r = fma(-q, P, 1.0) - q * E;
    return -fma(q, r, q);
}
static inline double fj_recip_deriv(double x) {
    double a = fabs(x);
    int lo = a < 0x1p-400, hi = a > 0x1p400;
    double xs = lo ? x * 0x1p600 : (hi ? x * 0x1p-513 : x);
    double d = fj_recip_deriv_core(xs);
    d = lo ? (d * 0x1p600) * 0x1p600 : (hi ? d * 0x1p-1026 : d);
    /* -(1/x)^2 at +-0 (-inf), +-inf (-0) and NaN (NaN), without a division */
    return (a > 0.0 && a < INFINITY) ? d : (a == 0.0 ? -INFINITY : (a == INFINITY ? -0.0 : x + x));
}

/* ---- tanh, sech^2, sigmoid (default precision: < 1 ulp, vectorised) -------------------

   With a = |x| and q = exp(-2a) (or e = exp(-a)) carried as a double-double (fj_exp_dd,
   ~2^-57 relative error):
     tanh(a)    = (1 - q) / (1 + q)               for a >= 1/4 (1 - q >= 0.39: no cancellation)
                = a + a z P(z), z = a^2            for a < 1/4 (fitted, _gen_vmath_poly.py)
     sech^2(x)  = 4q / (1 + q)^2
     sigmoid(x) = 1 / (1 + e) (x >= 0), e / (1 + e) (x < 0);  sigmoid'(x) = e / (1 + e)^2
   each quotient formed by fj_dd_div from double-double operands, so that the only error of
   size is the final rounding (~0.5 ulp; measured in tests/test_vmath.py). The sign of tanh
   is restored with copysign (tanh(-0) = -0). Beyond the range of fj_exp_dd, tanh is 1
   (a >= 22: 1 - tanh(a) < 2^-63), and sech^2, sigmoid' and the negative side of sigmoid
   are recomputed in long double (a >= 350 for sech^2, >= 700 for sigmoid: subnormal or
   zero results, rare lanes, NaN included). */
#define FJ_TANH_SMALL 0.25
#define FJ_TANH_ONE 22.0
#define FJ_SECH2_BIG 350.0
#define FJ_SIGMOID_BIG 700.0
/* FJ_TANH_P: relative error 2^-54.0 (_gen_vmath_poly.py) */
#define FJ_TANH_P0 -0x1.5555555555555p-2
#define FJ_TANH_P1 0x1.111111111109fp-3
#define FJ_TANH_P2 -0x1.ba1ba1b9f63f1p-5
#define FJ_TANH_P3 0x1.664f485d541f9p-6
#define FJ_TANH_P4 -0x1.226e22f174d00p-7
#define FJ_TANH_P5 0x1.d6c9f0fd10e92p-9
#define FJ_TANH_P6 -0x1.7c2a8d1787ef7p-10
#define FJ_TANH_P7 0x1.17caa156b19d7p-11

/* The cores take exp as fj_exp_dd_n gives it (q = exp(-2|x|) or e = exp(-|x|) as qh + ql). */
static inline double fj_tanh_from(double x, double qh, double ql) {
    double a = fabs(x);
    double z, p, big, small, r;
    /* 1 - q and 1 + q as double-doubles (Fast2Sum: 1 >= q) */
    double nh = 1.0 - qh, nl = ((1.0 - nh) - qh) - ql;
    double dh = 1.0 + qh, dl = (qh - (dh - 1.0)) + ql;
    big = fj_dd_div(nh, nl, dh, dl);
    z = a * a;
    p = FJ_TANH_P0 + z * (FJ_TANH_P1 + z * (FJ_TANH_P2 + z * (FJ_TANH_P3 + z * (FJ_TANH_P4
        + z * (FJ_TANH_P5 + z * (FJ_TANH_P6 + z * FJ_TANH_P7))))));
    small = a + a * (z * p);
    r = copysign(a < FJ_TANH_SMALL ? small : (a < FJ_TANH_ONE ? big : 1.0), x);
    return x != x ? x + x : r;
}

/* ---- the exponential of tanh', sigmoid' and sigmoid: exp(-c a), a = |x|, c = 2 or 1 ------

   Their quotients need q = exp(-c a) as a double-double qh + ql within ~2^-57 (the exp of
   fj_exp_dd serves exp's own bits and stays as it is). This one is shorter, fused
   multiply-adds throughout (FMA-compiled loops only: the instruction on AVX-512 and AVX2,
   the C library's exact fma on the baseline, so every level gives the same bits):
   - kd = fma(a, -c 16/ln2, 1.5 2^52) holds -k = round(-c a 16/ln2) in its low bits, kf =
     kd - 1.5 2^52; r = fma(kf, L2/c, fma(kf, L1/c, a)) with ln2/16 = L1 + L2: the inner
     fma is exact (a + kf L1/c is a multiple of ulp(L1/c)/2 below 2^-5: 53 bits), the outer
     rounds once (<= 2^-60). Then -c a = -k ln2/16 - u, u = c r, |u| <= ln2/32.
   - exp(-c a) = 2^(-k/16) exp(-u) = sc (1 + T_j)(1 + m): 2^(-k/16) = sc (1 + T_j) from
     fj_exp_table.h (j = -k mod 16: head and tail by register permutes on AVX-512),
     m = expm1(-u) = -u + u^2 Q(u), Q of degree 5 (_gen_vmath_poly.py, 2^-64 of exp), and
     p = (T_j - u) + u^2 Q (T_j m < 2^-59 dropped) rounded once (<= 2^-59).
   - qh + ql = sc (1 + p) exactly: qh = fma(sc, p, sc), ql = fma(sc, p, sc - qh) (sc - qh
     exact: Sterbenz).
   About 2^-57.3 relative error in all: the same size as fj_exp_dd's, with 12 multiplies
   or fmas where fj_exp_dd took 13 and 14 additions (the float64 VJP is bound by the
   fma/multiply pipes; the additions counted too: every operation of the loop waits in
   the same scheduler).

   FJ_EXPM_OF(V, FMA, LOOKUP, a, TWO, qh, ql): that on a type V, double (FMA fma, LOOKUP
   FJ_EXPM_LOOKUP1) or a GCC vector of doubles (the fmadd intrinsic and a permute or
   scalar lookup), one source operation for operation. TWO: 1 for c = 2, 0 for c = 1
   (a constant of the caller). Valid for 0 <= a, c a < 700; other lanes give garbage
   (never a trap), which the callers replace. */
#define FJ_EXPM_L1 0x1.62e42fefa39efp-5  /* ln2/16 = L1 + L2 */
#define FJ_EXPM_L2 0x1.abc9e3b39803fp-60
/* FJ_EXPM_Q: Q(u) = (expm1(-u) + u)/u^2, |u| <= ln2/32 (1 + 2^-9); relative error 2^-52
   (its coefficients' rounding), 2^-64 of exp (_gen_vmath_poly.py) */
#define FJ_EXPM_Q0 0x1.0000000000001p-1
#define FJ_EXPM_Q1 -0x1.5555555555552p-3
#define FJ_EXPM_Q2 0x1.55555554e86e2p-5
#define FJ_EXPM_Q3 -0x1.11111111671d5p-7
#define FJ_EXPM_Q4 0x1.6c17ee78895b0p-10
#define FJ_EXPM_Q5 -0x1.a01a2e397fd39p-13
#define FJ_V(V, c) ((V){0} + (c)) /* the constant c in every lane of V (double: c) */
#define FJ_EXPM_OF(V, FMA, LOOKUP, a, TWO, qh, ql)                                         \
    do {                                                                                     \
        V kd_ = FMA((a), FJ_V(V, (TWO ? -2.0 : -1.0) * FJ_INV_LN2_N), FJ_V(V, FJ_SHIFT));    \
        V kf_ = kd_ - FJ_SHIFT;                                                              \
        V r_ = FMA(kf_, FJ_V(V, (TWO ? 0.5 : 1.0) * FJ_EXPM_L1), (a));                       \
        V u_, tail_, sc_, u2_, q_, p_;                                                       \
        r_ = FMA(kf_, FJ_V(V, (TWO ? 0.5 : 1.0) * FJ_EXPM_L2), r_);                          \
        if (TWO) u_ = r_ + r_;                                                               \
        else u_ = r_;                                                                        \
        LOOKUP(kd_, tail_, sc_);                                                             \
        u2_ = u_ * u_;                                                                       \
        q_ = FMA(u_, FJ_V(V, FJ_EXPM_Q5), FJ_V(V, FJ_EXPM_Q4));                              \
        q_ = FMA(u_, q_, FJ_V(V, FJ_EXPM_Q3));                                               \
        q_ = FMA(u_, q_, FJ_V(V, FJ_EXPM_Q2));                                               \
        q_ = FMA(u_, q_, FJ_V(V, FJ_EXPM_Q1));                                               \
        q_ = FMA(u_, q_, FJ_V(V, FJ_EXPM_Q0));                                               \
        p_ = FMA(u2_, q_, tail_ - u_);                                                       \
        (qh) = FMA(sc_, p_, sc_);                                                            \
        (ql) = FMA(sc_, p_, sc_ - (qh));                                                     \
    } while (0)
/* the table lookup of one lane: kd's bits hold -k; 2^(-k/16) = sc (1 + tail) */
#define FJ_EXPM_LOOKUP1(kd, tail, sc)                                                        \
    do {                                                                                     \
        uint64_t kb_ = fj_asu64(kd);                                                         \
        (tail) = fj_exp_tail[kb_ & 15];                                                      \
        (sc) = fj_asf64(fj_exp_head[kb_ & 15] + (kb_ << 48));                                \
    } while (0)

/* q/(1 + q)^2 from q = qh + ql (sigmoid' = e/(1+e)^2; sech^2 is 4 times it, 4q/(1+q)^2),
   in a type V as FJ_EXPM_OF: s + sl = 1 + q (Fast2Sum), (1 + q)^2 = P + dl (P = s^2
   rounded, dl = E + 2 s sl with E = fma(s, s, -P) the exact rounding error of the square;
   sl^2 < 2^-105 left out), inv = 1/P (the one division, correctly rounded), y = qh inv
   and one correction by fmas, res = y + (qh - y P + ql - y dl) inv, rounded once by the
   last fma. The correction's own errors are ~2^-100 of the result, the quotient's
   condition in q is below 1 ((1 - q)/(1 + q)), so what remains is the final rounding plus
   q's ~2^-57: measured maxima in precision.rst. */
#define FJ_QUOT_SQ_OF(V, FMA, qh, ql, res)                                                   \
    do {                                                                                     \
        V s_ = 1.0 + (qh);                                                                   \
        V sl_ = ((qh) - (s_ - 1.0)) + (ql);   /* 1 + q = s + sl */                           \
        V P_ = s_ * s_;                                                                      \
        V dl_ = FMA(s_ + s_, sl_, FMA(s_, s_, -P_));                                         \
        V inv_ = 1.0 / P_;                                                                   \
        V y_ = (qh) * inv_;                                                                  \
        V r_ = FMA(-y_, P_, (qh)) + (ql);                                                    \
        (res) = FMA(FMA(-y_, dl_, r_), inv_, y_);                                            \
    } while (0)

/* One lane: sech^2(x) for |x| < FJ_SECH2_BIG, sigmoid'(x) for |x| < FJ_SIGMOID_BIG (the
   vector loops' operations; 4 res is exact: res >= e^-700 is far from the subnormals). */
static inline double fj_sech2_core(double x) {
    double a = fabs(x), qh, ql, r;
    FJ_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, 1, qh, ql);
    FJ_QUOT_SQ_OF(double, fma, qh, ql, r);
    return 4.0 * r;
}
static inline double fj_sigmoid_d_core(double x) {
    double a = fabs(x), eh, el, r;
    FJ_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, 0, eh, el);
    FJ_QUOT_SQ_OF(double, fma, eh, el, r);
    return r;
}
/* sigmoid and sigmoid' of one lane from e = exp(-|x|) = eh + el (FJ_EXPM_OF), |x| <
   FJ_SIGMOID_BIG: the value (1 or e)/(1 + e) by fj_dd_div_inv (its own division 1/s). */
static inline void fj_sigmoid_from(double x, double eh, double el, double* v, double* d) {
    double s, sl;
    int pos = x >= 0.0;
    s = 1.0 + eh;
    sl = (eh - (s - 1.0)) + el;
    *v = fj_dd_div_inv(pos ? 1.0 : eh, pos ? 0.0 : el, s, sl, 1.0 / s);
    FJ_QUOT_SQ_OF(double, fma, eh, el, *d);
}

/* The rare lanes, in long double (on x86-64 64-bit mantissa and a wide exponent: one
   rounding to double at the end, correct for subnormal results). */
static double fj_sech2_far(double x) {
    if (x != x) return x + x;
    long double q = expl(-2.0L * fabsl((long double)x));
    return (double)(4.0L * q / ((1.0L + q) * (1.0L + q)));
}
static void fj_sigmoid_far(double x, double* v, double* d) {
    if (x != x) { *v = *d = x + x; return; }
    long double e = expl(-fabsl((long double)x));
    *v = (double)((x >= 0.0 ? 1.0L : e) / (1.0L + e));
    *d = (double)(e / ((1.0L + e) * (1.0L + e)));
}

#define FJ_TILE_TMP 256

/* hi[k] + lo[k] = exp(-c |x[k]|) by FJ_EXPM_OF (two: c = 2, else c = 1), for c |x[k]| < 700
   (other lanes: garbage, replaced by the callers); the table lookups are register
   permutes on AVX-512 and scalar loads on AVX2 (as fj_exp_parts4): the same bits on every
   level. FJ_MULTI_FMA bodies only (the baseline's fma is the C library's). */
#if FJ_X86_DISPATCH
#define FJ_EXPM_LOOKUP8(kd, tail, sc)                                                        \
    do {                                                                                     \
        __m512i kb_ = _mm512_castpd_si512(kd);                                               \
        (tail) = _mm512_permutex2var_pd(_mm512_load_pd(fj_exp_tail), kb_,                    \
                                        _mm512_load_pd(fj_exp_tail + 8));                    \
        (sc) = _mm512_castsi512_pd(_mm512_add_epi64(                                         \
            _mm512_castpd_si512(_mm512_permutex2var_pd(                                      \
                _mm512_load_pd((const double*)fj_exp_head), kb_,                             \
                _mm512_load_pd((const double*)fj_exp_head + 8))),                            \
            _mm512_slli_epi64(kb_, 48)));                                                    \
    } while (0)
#define FJ_EXPM_LOOKUP4(kd, tail, sc)                                                        \
    do {                                                                                     \
        uint64_t kb_[4];                                                                     \
        _mm256_storeu_si256((__m256i*)kb_, _mm256_castpd_si256(kd));                         \
        (tail) = _mm256_set_pd(fj_exp_tail[kb_[3] & 15], fj_exp_tail[kb_[2] & 15],           \
                               fj_exp_tail[kb_[1] & 15], fj_exp_tail[kb_[0] & 15]);          \
        (sc) = _mm256_castsi256_pd(_mm256_add_epi64(                                         \
            _mm256_set_epi64x((long long)fj_exp_head[kb_[3] & 15],                           \
                              (long long)fj_exp_head[kb_[2] & 15],                           \
                              (long long)fj_exp_head[kb_[1] & 15],                           \
                              (long long)fj_exp_head[kb_[0] & 15]),                          \
            _mm256_slli_epi64(_mm256_castpd_si256(kd), 48)));                                \
    } while (0)
#define FJ_ABS8(v) _mm512_abs_pd(v)
#define FJ_ABS4(v) _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
#define FJ_EXPM_DD_LOOP(V, PFX, W, FMA, LOOKUP, ABS)                                         \
    for (; i + W <= n; i += W) {                                                             \
        V a_ = ABS(PFX##_loadu_pd(x + i)), h_, l_;                                           \
        if (two) FJ_EXPM_OF(V, FMA, LOOKUP, a_, 1, h_, l_);                                  \
        else FJ_EXPM_OF(V, FMA, LOOKUP, a_, 0, h_, l_);                                      \
        PFX##_storeu_pd(hi + i, h_);                                                         \
        PFX##_storeu_pd(lo + i, l_);                                                         \
    }
__attribute__((target("avx512f,fma"))) static void fj_expm_dd_n_avx512(
    int two, const double* x, double* hi, double* lo, ptrdiff_t n, ptrdiff_t i) {
    FJ_EXPM_DD_LOOP(__m512d, _mm512, 8, _mm512_fmadd_pd, FJ_EXPM_LOOKUP8, FJ_ABS8)
}
__attribute__((target("avx2,fma"))) static void fj_expm_dd_n_avx2(
    int two, const double* x, double* hi, double* lo, ptrdiff_t n, ptrdiff_t i) {
    FJ_EXPM_DD_LOOP(__m256d, _mm256, 4, _mm256_fmadd_pd, FJ_EXPM_LOOKUP4, FJ_ABS4)
}
#endif
static void fj_expm_dd_n(int two, const double* x, double* hi, double* lo, ptrdiff_t n) {
    ptrdiff_t i = 0;
#if FJ_X86_DISPATCH
    if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    if (fj_cpu_level == 2) {
        fj_expm_dd_n_avx512(two, x, hi, lo, n, 0);
        i = n - n % 8;
    } else if (fj_cpu_level == 1 && fj_has_fma) {
        fj_expm_dd_n_avx2(two, x, hi, lo, n, 0);
        i = n - n % 4;
    }
#endif
    for (; i < n; i++) {
        double a = fabs(x[i]);
        if (two) FJ_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, 1, hi[i], lo[i]);
        else FJ_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, 0, hi[i], lo[i]);
    }
}

/* Tiles: xs (m <= FJ_TILE_TMP doubles) to outputs that do not overlap xs. */
FJ_BODY void fj_tanh_tile(const double* xs, double* y, ptrdiff_t m) {
    double qh[FJ_TILE_TMP], ql[FJ_TILE_TMP];
    ptrdiff_t k;
    for (k = 0; k < m; k++) qh[k] = -2.0 * fabs(xs[k]);
    fj_exp_dd_n(qh, ql, qh, m);  /* garbage where |x| >= 350 or NaN: not selected */
    for (k = 0; k < m; k++) y[k] = fj_tanh_from(xs[k], qh[k], ql[k]);
}

/* sech^2 and sigmoid' (the derivative-only VJP's bits, fj_vjp_expfam: the same
   operations through memory), the far lanes redone in long double. */
FJ_BODY void fj_sech2_tile(const double* xs, double* y, ptrdiff_t m) {
    double qh[FJ_TILE_TMP], ql[FJ_TILE_TMP], r;
    ptrdiff_t k;
    int far = 0;
    fj_expm_dd_n(1, xs, qh, ql, m);
    for (k = 0; k < m; k++) {
        FJ_QUOT_SQ_OF(double, fma, qh[k], ql[k], r);
        y[k] = 4.0 * r;
    }
    for (k = 0; k < m; k++) far |= !(fabs(xs[k]) < FJ_SECH2_BIG);
    if (far)
        for (k = 0; k < m; k++)
            if (!(fabs(xs[k]) < FJ_SECH2_BIG)) y[k] = fj_sech2_far(xs[k]);
}

FJ_BODY void fj_sigmoid_d_tile(const double* xs, double* d, ptrdiff_t m) {
    double eh[FJ_TILE_TMP], el[FJ_TILE_TMP], v;
    ptrdiff_t k;
    int far = 0;
    fj_expm_dd_n(0, xs, eh, el, m);
    for (k = 0; k < m; k++) FJ_QUOT_SQ_OF(double, fma, eh[k], el[k], d[k]);
    for (k = 0; k < m; k++) far |= !(fabs(xs[k]) < FJ_SIGMOID_BIG);
    if (far)
        for (k = 0; k < m; k++)
            if (!(fabs(xs[k]) < FJ_SIGMOID_BIG)) fj_sigmoid_far(xs[k], &v, &d[k]);
}

FJ_BODY void fj_sigmoid_tile(const double* xs, double* v, double* d, ptrdiff_t m) {
    double eh[FJ_TILE_TMP], el[FJ_TILE_TMP];
    ptrdiff_t k;
    int far = 0;
    fj_expm_dd_n(0, xs, eh, el, m);
    for (k = 0; k < m; k++) fj_sigmoid_from(xs[k], eh[k], el[k], &v[k], &d[k]);
    for (k = 0; k < m; k++) far |= !(fabs(xs[k]) < FJ_SIGMOID_BIG);
    if (far)
        for (k = 0; k < m; k++)
            if (!(fabs(xs[k]) < FJ_SIGMOID_BIG)) fj_sigmoid_far(xs[k], &v[k], &d[k]);
}

/* Whole arrays, y == x allowed (not a partial overlap). */
FJ_BODY void fj_tanh_acc_n_body(double* y, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP], t[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        fj_tanh_tile(xs, t, m);
        for (k = 0; k < m; k++) y[i + k] = t[k];
    }
}
FJ_MULTI_FMA(fj_tanh_acc_n, (double* y, const double* x, ptrdiff_t n), (y, x, n))

/* sech^2(x) = 1 - tanh^2(x); y == x allowed. */
FJ_BODY void fj_sech2_acc_n_body(double* y, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP], t[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        fj_sech2_tile(xs, t, m);
        for (k = 0; k < m; k++) y[i + k] = t[k];
    }
}
FJ_MULTI_FMA(fj_sech2_acc_n, (double* y, const double* x, ptrdiff_t n), (y, x, n))

/* NAME(v, d, x, n): v[k] = sigmoid(x[k]) and/or d[k] = sigmoid'(x[k]) (either may be NULL;
   v or d may be x), tile by tile through TILE(xs, tv, td, m): the float64 routine here and
   fj_vmath32.h's float32-sized one. */
#define FJ_SIGMOID_ACC(NAME, TILE)                                                           \
    FJ_BODY void NAME##_body(double* v, double* d, const double* x, ptrdiff_t n) {           \
        double xs[FJ_TILE_TMP], tv[FJ_TILE_TMP], td[FJ_TILE_TMP];                            \
        ptrdiff_t i, k, m;                                                                   \
        for (i = 0; i < n; i += FJ_TILE_TMP) {                                               \
            m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;                                   \
            for (k = 0; k < m; k++) xs[k] = x[i + k];                                        \
            TILE(xs, tv, td, m);                                                             \
            if (v != NULL)                                                                   \
                for (k = 0; k < m; k++) v[i + k] = tv[k];                                    \
            if (d != NULL)                                                                   \
                for (k = 0; k < m; k++) d[i + k] = td[k];                                    \
        }                                                                                    \
    }                                                                                        \
    FJ_MULTI_FMA(NAME, (double* v, double* d, const double* x, ptrdiff_t n), (v, d, x, n))

FJ_SIGMOID_ACC(fj_sigmoid_acc_n, fj_sigmoid_tile)

/* 1/(1+q)^2 and 1/(1+q) for q in [0, 1], with the rounding of 1 + q and of the square
   compensated (Fast2Sum and Dekker's exact product: exact without FMA), so that
   4q/(1+q)^2 and q/(1+q)^2 come out within ~1 ulp instead of ~4. */
static inline double fj_over_1pq_sq(double num, double q) {
    double s = 1.0 + q;
    double sl = q - (s - 1.0);           /* 1 + q = s + sl exactly */
    double c = FJ_SPLIT * s;
    double sh = c - (c - s);
    double st = s - sh;
    double P = s * s;
    double E = ((sh * sh - P) + 2.0 * (sh * st)) + st * st; /* s*s = P + E exactly */
    double lo = E + 2.0 * (s * sl);      /* (1+q)^2 = P + lo (to ~2^-106) */
    double y = num / P;
    return y - y * (lo / P);
}

/* "strict" mode (as before the vectorised routines; exp from libm): sech^2(x) = 4q/(1+q)^2 with q = exp(-2|x|) in (0, 1]: no cancellation (the map
   q -> 4q/(1+q)^2 has condition number (1-q)/(1+q) < 1); 0 at |x| = inf; NaN stays NaN.
   y == x allowed. */
static void fj_sech2_strict_n(double* y, const double* x, ptrdiff_t n) {
    double q[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) q[k] = -2.0 * fabs(x[i + k]);
        fj_exp_n(q, q, m);
        for (k = 0; k < m; k++) y[i + k] = fj_over_1pq_sq(4.0 * q[k], q[k]);
    }
}

/* "strict" mode: sigmoid: with e = exp(-|x|) in (0, 1], v = 1/(1+e) (x >= 0) or e/(1+e) (x < 0), and
   sigmoid'(x) = e/(1+e)^2 for all x: no cancellation, accurate even where v rounds to 1.
   v or d may be NULL; v == x allowed (d must not alias x). */
static void fj_sigmoid_strict_n(double* v, double* d, const double* x, ptrdiff_t n) {
    double e[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    double s, sl, t, xv;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) e[k] = -fabs(x[i + k]);
        fj_exp_n(e, e, m);
        if (d != NULL)
            for (k = 0; k < m; k++) d[i + k] = fj_over_1pq_sq(e[k], e[k]);
        if (v != NULL)
            for (k = 0; k < m; k++) {
                xv = x[i + k];
                s = 1.0 + e[k];
                sl = e[k] - (s - 1.0);
                t = (xv >= 0.0 ? 1.0 : e[k]) / s;
                t = t - t * (sl / s);
                v[i + k] = xv >= 0.0 || xv < 0.0 ? t : xv;
            }
    }
}

static void fj_sech2_n(double* y, const double* x, ptrdiff_t n) {
    if (fj_fast_math < 0) fj_sech2_strict_n(y, x, n);
    else fj_sech2_acc_n(y, x, n);
}

static void fj_sigmoid_n(double* v, double* d, const double* x, ptrdiff_t n) {
    if (fj_fast_math < 0) fj_sigmoid_strict_n(v, d, x, n);
    else fj_sigmoid_acc_n(v, d, x, n);
}

/* ---- log (default precision: < 1 ulp, vectorised) -------------------------------------

   x = 2^k m with m in [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^52 first), f = m - 1
   (exact), s = f / (2 + f), z = s^2, and the fdlibm decomposition
     log(x) = k ln2_hi + (f - (f^2/2 - (s (f^2/2 + z L(z)) + k ln2_lo)))
   with ln2_hi of 33 bits (k ln2_hi exact for |k| < 2^20) and L fitted (_gen_vmath_poly.py).
   k is formed from the exponent bits with integer and floating additions only (no int64
   conversion, which AVX2 lacks). log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN
   gives NaN. */
#define FJ_LN2_HI 0x1.62e42fee00000p-1
#define FJ_LN2_LO 0x1.a39ef35793c76p-33
/* FJ_LOG_L: relative error 2^-50.9 (_gen_vmath_poly.py) */
#define FJ_LOG_L0 0x1.5555555555558p-1
#define FJ_LOG_L1 0x1.99999999952f5p-2
#define FJ_LOG_L2 0x1.2492492def926p-2
#define FJ_LOG_L3 0x1.c71c62e7451cdp-3
#define FJ_LOG_L4 0x1.7462b4426b39bp-3
#define FJ_LOG_L5 0x1.39fe6b6d6327ep-3
#define FJ_LOG_L6 0x1.2b57dcd3666eap-3

/* x = 2^k m with m in [sqrt(1/2), sqrt(2)) (subnormal x scaled by 2^52 first); returns m
   and sets *kd = k. The reduction of fj_log_core and fj32_log_core. */
static inline double fj_log_reduce(double x, double* kd) {
    int sub = x < 0x1p-1022;
    double xs = sub ? x * 0x1p52 : x;
    uint64_t u = fj_asu64(xs);
    uint64_t tmp = u - 0x3fe6a09e667f3bcdULL;        /* bits of sqrt(1/2) */
    /* k = tmp >> 52 as a signed 12-bit number, converted exactly via 0x1.8p52 */
    double k = fj_asf64(0x4338000000000000ULL + ((tmp >> 52) ^ 0x800)) - (0x1.8p52 + 2048.0);
    *kd = sub ? k - 52.0 : k;
    return fj_asf64(u - (tmp & 0xfff0000000000000ULL));
}

static inline double fj_log_core(double x) {
    double kd, f, s, z, R, hfsq, y;
    f = fj_log_reduce(x, &kd) - 1.0;
    s = f / (2.0 + f);
    z = s * s;
    R = z * (FJ_LOG_L0 + z * (FJ_LOG_L1 + z * (FJ_LOG_L2 + z * (FJ_LOG_L3 + z * (FJ_LOG_L4
        + z * (FJ_LOG_L5 + z * FJ_LOG_L6))))));
    hfsq = 0.5 * f * f;
    y = kd * FJ_LN2_HI + (f - (hfsq - (s * (hfsq + R) + kd * FJ_LN2_LO)));
    y = x == INFINITY ? x : y;
    return x > 0.0 ? y : (x == 0.0 ? -INFINITY : NAN);
}

/* y[k] = CORE(x[k]) for a core without rare lanes; y == x allowed (not partial overlap). */
#define FJ_MAP_BODY(NAME, CORE)                                                              \
    FJ_BODY void NAME##_body(double* y, const double* x, ptrdiff_t n) {                      \
        ptrdiff_t i;                                                                         \
        if (y == x) {                                                                        \
            double* p = y;                                                                   \
            for (i = 0; i < n; i++) p[i] = CORE(p[i]);                                       \
        } else {                                                                             \
            double* __restrict yy = y;                                                       \
            const double* __restrict xx = x;                                                 \
            for (i = 0; i < n; i++) yy[i] = CORE(xx[i]);                                     \
        }                                                                                    \
    }

FJ_MAP_BODY(fj_log_acc_n, fj_log_core)
FJ_MULTI(fj_log_acc_n, (double* y, const double* x, ptrdiff_t n), (y, x, n))


/* ---- sin and cos (float64 and float32-sized): fj_vtrig.h ---------------------------- */
#include "fj_vtrig.h"

/* ---- libmvec (opt-in "fast" mode) ---------------------------------------------------- */
#if FJ_HAVE_LIBMVEC
#include <immintrin.h>
__m512d _ZGVeN8v_sin(__m512d);
__m512d _ZGVeN8v_cos(__m512d);
__m512d _ZGVeN8v_tanh(__m512d);
__m512d _ZGVeN8v_log(__m512d);
__m256d _ZGVdN4v_sin(__m256d);
__m256d _ZGVdN4v_cos(__m256d);
__m256d _ZGVdN4v_tanh(__m256d);
__m256d _ZGVdN4v_log(__m256d);

#define FJ_MVEC_LOOPS(name)                                                                  \
    __attribute__((target("avx512f"))) static void fj_mvec8_##name(double* y, const double* x, \
                                                                  ptrdiff_t n) {            \
        double buf[8];                                                                       \
        ptrdiff_t i = 0, k;                                                                  \
        for (; i + 8 <= n; i += 8)                                                           \
            _mm512_storeu_pd(y + i, _ZGVeN8v_##name(_mm512_loadu_pd(x + i)));                \
        if (i < n) {                                                                         \
            for (k = 0; k < 8; k++) buf[k] = i + k < n ? x[i + k] : 0.0;                     \
            _mm512_storeu_pd(buf, _ZGVeN8v_##name(_mm512_loadu_pd(buf)));                    \
            for (k = 0; i + k < n; k++) y[i + k] = buf[k];                                   \
        }                                                                                    \
    }                                                                                        \
    __attribute__((target("avx2"))) static void fj_mvec4_##name(double* y, const double* x,  \
                                                               ptrdiff_t n) {               \
        double buf[4];                                                                       \
        ptrdiff_t i = 0, k;                                                                  \
        for (; i + 4 <= n; i += 4)                                                           \
            _mm256_storeu_pd(y + i, _ZGVdN4v_##name(_mm256_loadu_pd(x + i)));                \
        if (i < n) {                                                                         \
            for (k = 0; k < 4; k++) buf[k] = i + k < n ? x[i + k] : 0.0;                     \
            _mm256_storeu_pd(buf, _ZGVdN4v_##name(_mm256_loadu_pd(buf)));                    \
            for (k = 0; i + k < n; k++) y[i + k] = buf[k];                                   \
        }                                                                                    \
    }

FJ_MVEC_LOOPS(sin)
FJ_MVEC_LOOPS(cos)
FJ_MVEC_LOOPS(tanh)
FJ_MVEC_LOOPS(log)

#define FJ_USE_MVEC (fj_fast_math > 0 && fj_cpu_level > 0)
#define FJ_MVEC_CALL(name, y, x, n) \
    (fj_cpu_level == 2 ? fj_mvec8_##name(y, x, n) : fj_mvec4_##name(y, x, n))
#else
#define FJ_USE_MVEC 0
#define FJ_MVEC_CALL(name, y, x, n) ((void)0)
#endif

/* ---- dispatch on the precision mode ------------------------------------------------ */
#define FJ_LIBM_LOOP(name, y, x, n)                                            \
    do {                                                                       \
        ptrdiff_t k_;                                                          \
        for (k_ = 0; k_ < (n); k_++) (y)[k_] = name((x)[k_]);                  \
    } while (0)

/* sin, cos and sincos: f32 (the call's dtype is float32) takes fj_vtrig.h's float32-sized
   routines in the default mode; "strict" and "fast" keep their float64 bits. */
static void fj_sin_n(double* y, const double* x, ptrdiff_t n, int f32) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(sin, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(sin, y, x, n); return; }
    if (f32) fj32_sincos_n(y, NULL, x, n);
    else fj_sincos_acc_n(y, NULL, x, n);
}

static void fj_cos_n(double* y, const double* x, ptrdiff_t n, int f32) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(cos, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(cos, y, x, n); return; }
    if (f32) fj32_sincos_n(NULL, y, x, n);
    else fj_sincos_acc_n(NULL, y, x, n);
}

static void fj_tanh_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(tanh, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(tanh, y, x, n); return; }
    fj_tanh_acc_n(y, x, n);
}

static void fj_log_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(log, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(log, y, x, n); return; }
    fj_log_acc_n(y, x, n);
}

/* s[k] = sin(x[k]), c[k] = cos(x[k]); s or c may be x (not both). */
static void fj_sincos_n(double* s, double* c, const double* x, ptrdiff_t n, int f32) {
    ptrdiff_t k;
    double t;
    if (FJ_USE_MVEC) {
        if (c == x) {
            FJ_MVEC_CALL(sin, s, x, n);
            FJ_MVEC_CALL(cos, c, x, n);
        } else {
            FJ_MVEC_CALL(cos, c, x, n);
            FJ_MVEC_CALL(sin, s, x, n);
        }
        return;
    }
    if (fj_fast_math < 0) {
        for (k = 0; k < n; k++) {
            t = x[k];
            s[k] = sin(t);
            c[k] = cos(t);
        }
        return;
    }
    if (f32) fj32_sincos_n(s, c, x, n);
    else fj_sincos_acc_n(s, c, x, n);
}

/* ---- one function's derivative times a tangent, in one pass (the common VJP) ----------

   out[k] = f'(x[k]) * t[k] (or f'(x[k]) when t is NULL) for one unary op code, in float32 or
   float64, with the arithmetic of the chain interpreter's stage (elementwise.pyx _stage:
   the derivative formed in double, multiplied by t in double, rounded once to the output
   type), so that a VJP through here and a value-and-derivative pass through the
   interpreter give the same bits (tests/test_vmath_accuracy.py). Only the derivative is
   computed (sin' = cos, ...; log's is t/x, FJ_LOG_VJP), in vectorised loops compiled for
   AVX-512, AVX2 (both with FMA) and the baseline (FJ_MULTI_FMA; fma() only where written, so
   the same bits on every level). Returns 0, having done nothing, for an op it does not
   cover or a transcendental outside the default precision mode (the interpreter runs
   then). out may be x or t (not a partial overlap). Op codes: elementwise.pyx U_*. */
enum {
    FJ_U_IDENTITY = 0, FJ_U_NEG, FJ_U_SQUARE, FJ_U_SQRT, FJ_U_EXP, FJ_U_LOG, FJ_U_SIN, FJ_U_COS,
    FJ_U_TANH, FJ_U_SIGMOID, FJ_U_RELU, FJ_U_ABS, FJ_U_RECIPROCAL
};

/* float32 routines (sized for a 24-bit result; they use the helpers above) */
#include "fj_vmath32.h"

static inline double fj_sign_deriv(double x) {
    return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x * 0.0);
}

/* sqrt'(x) = 0.5/sqrt(x) in float64 without a double division or root (each takes the
   slow divider, on 8 lanes): r = 1/sqrtf((float)x), a correctly rounded float32 estimate
   (relative error < 2^-22, the same on every level), e = 1 - x r^2 by one fma (r^2 is
   exact: r has 24 bits), and 1/sqrt(x) = r (1 - e)^(-1/2) = r (1 + e/2 + 3e^2/8 + ...):
   y = h + h e (1/2 + 3e/8) with h = r/2, rounded once by an fma. The terms left out and
   the roundings inside are below 2^-66 relative: ~0.5 ulp. For x in [2^-125, 2^125]
   (FJ_SQRT_FAST_OK: x rounded to float32 stays normal); other lanes (zeros, infinities,
   NaN, x < 0, tiny or huge x) take fj_sqrt_deriv, one lane at a time. */
#define FJ_SQRT_FAST_OK(x) ((x) >= 0x1p-125 && (x) <= 0x1p125)
static inline double fj_sqrt_deriv_fast(double x) {
    double r = (double)(1.0f / sqrtf((float)x));
    double e = fma(-x, r * r, 1.0);
    double h = 0.5 * r;
    return fma(h, e * fma(0.375, e, 0.5), h);
}

/* sqrt'(x) for x in the fast range or x < 0 or NaN (fj_sqrt_deriv's x + NaN there): the
   float64 VJP's loop, so that negative inputs do not take the lane-by-lane path. */
static inline double fj_sqrt_deriv_fast_or_nan(double x) {
    int ok = FJ_SQRT_FAST_OK(x);
    double d = fj_sqrt_deriv_fast(ok ? x : 1.0);
    return ok ? d : x + NAN;
}

/* d[k] = sqrt'(xs[k]), k < m; d must not overlap xs. */
FJ_BODY void fj_sqrt_deriv_tile(const double* xs, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0;
    for (k = 0; k < m; k++) {
        double v = xs[k];
        int ok = FJ_SQRT_FAST_OK(v);
        d[k] = fj_sqrt_deriv_fast(ok ? v : 1.0);
        rare |= !ok;
    }
    if (rare)
        for (k = 0; k < m; k++)
            if (!FJ_SQRT_FAST_OK(xs[k])) d[k] = fj_sqrt_deriv(xs[k]);
}

/* d[k] = reciprocal'(xs[k]), k < m; d must not overlap xs. */
FJ_BODY void fj_recip_deriv_tile(const double* xs, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0;
    for (k = 0; k < m; k++) {
        double v = xs[k];
        d[k] = fj_recip_deriv_core(v);
        rare |= !FJ_RECIP_CORE_OK(fabs(v));
    }
    if (rare)
        for (k = 0; k < m; k++)
            if (!FJ_RECIP_CORE_OK(fabs(xs[k]))) d[k] = fj_recip_deriv(xs[k]);
}

/* d[k] = f'(x[k]) for k < m <= FJ_TILE_TMP, in double; T the input type. */
#define FJ_DERIV_TILE(T)                                                                     \
    FJ_BODY void fj_deriv_tile_##T(int code, const T* x, double* d, ptrdiff_t m) {           \
        ptrdiff_t k;                                                                         \
        int bad = 0;                                                                         \
        double xs[FJ_TILE_TMP], ss[FJ_TILE_TMP], rr[FJ_TILE_TMP];                            \
        /* float32 in the default mode: fj_vmath32.h for the ops it covers */                \
        if (sizeof(T) == sizeof(float)                                                       \
            && fj32_deriv_tile(code, (const float*)(const void*)x, d, m))                    \
            return;                                                                          \
        switch (code) {                                                                      \
        case FJ_U_SQUARE:                                                                    \
            for (k = 0; k < m; k++) d[k] = 2.0 * (double)x[k];                               \
            break;                                                                           \
        case FJ_U_SQRT:                                                                      \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            fj_sqrt_deriv_tile(xs, d, m);                                                    \
            break;                                                                           \
        case FJ_U_EXP:                                                                       \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            fj_exp_n(d, xs, m);                                                              \
            break;                                                                           \
        case FJ_U_SIN:                                                                       \
        case FJ_U_COS:                                                                       \
            /* float64 only: float32 sin and cos never get here (fj_vjp1_float_run gives     \
               them to fj32_trig_run in the default mode and declines them otherwise) */     \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            for (k = 0; k < m; k++) fj_sincos_core(xs[k], &ss[k], &d[k], &rr[k]);            \
            for (k = 0; k < m; k++) bad |= !FJ_TRIG_OK(xs[k], rr[k]);                        \
            if (code == FJ_U_COS)                                                            \
                for (k = 0; k < m; k++) d[k] = -ss[k];                                       \
            if (bad)                                                                         \
                for (k = 0; k < m; k++)                                                      \
                    if (!FJ_TRIG_OK(xs[k], rr[k]))                                           \
                        d[k] = code == FJ_U_SIN ? cos(xs[k]) : -sin(xs[k]);                  \
            break;                                                                           \
        case FJ_U_TANH:                                                                      \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            fj_sech2_tile(xs, d, m);                                                         \
            break;                                                                           \
        case FJ_U_SIGMOID:                                                                   \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            fj_sigmoid_d_tile(xs, d, m);                                                     \
            break;                                                                           \
        case FJ_U_ABS:                                                                       \
            for (k = 0; k < m; k++) d[k] = fj_sign_deriv((double)x[k]);                      \
            break;                                                                           \
        default: /* FJ_U_RECIPROCAL */                                                       \
            for (k = 0; k < m; k++) xs[k] = (double)x[k];                                    \
            fj_recip_deriv_tile(xs, d, m);                                                   \
        }                                                                                    \
    }

FJ_DERIV_TILE(float)
FJ_DERIV_TILE(double)

/* log's VJP: out[k] = t[k] / x[k] (1 / x[k] without t), one correctly rounded division in
   the input type: more accurate (one rounding) and cheaper than (1/x) * t, as NumPy's and
   PyTorch's gy / x. For float32 that is also (float)((double)t / (double)x): rounding a
   quotient first to double and then to float32 gives the correctly rounded float32
   quotient (53 >= 2 * 24 + 2), so the native 16-lane division gives the bits the double
   route would. The single-op VJP and value-and-VJP (elementwise.pyx) and fj.fuse's log
   node (a division by its input register) all compute it so. out may be x or t. */
#define FJ_LOG_VJP(T)                                                                        \
    FJ_BODY void fj_log_vjp_##T##_body(const T* x, const T* t, T* out, ptrdiff_t n) {       \
        ptrdiff_t k;                                                                         \
        if (t == NULL) {                                                                     \
            if (out == x) {                                                                  \
                T* p = out;                                                                  \
                for (k = 0; k < n; k++) p[k] = (T)1 / p[k];                                  \
            } else {                                                                         \
                T* __restrict o = out;                                                       \
                const T* __restrict xx = x;                                                  \
                for (k = 0; k < n; k++) o[k] = (T)1 / xx[k];                                 \
            }                                                                                \
        } else if (t == x) {                                                                 \
            for (k = 0; k < n; k++) out[k] = x[k] / x[k];                                    \
        } else if (out == x) {                                                               \
            T* p = out;                                                                      \
            const T* __restrict tt = t;                                                      \
            for (k = 0; k < n; k++) p[k] = tt[k] / p[k];                                     \
        } else if (out == t) {                                                               \
            T* p = out;                                                                      \
            const T* __restrict xx = x;                                                      \
            for (k = 0; k < n; k++) p[k] = p[k] / xx[k];                                     \
        } else {                                                                             \
            T* __restrict o = out;                                                           \
            const T* __restrict xx = x;                                                      \
            const T* __restrict tt = t;                                                      \
            for (k = 0; k < n; k++) o[k] = tt[k] / xx[k];                                    \
        }                                                                                    \
    }                                                                                        \
    FJ_MULTI(fj_log_vjp_##T, (const T* x, const T* t, T* out, ptrdiff_t n), (x, t, out, n))

FJ_LOG_VJP(float)
FJ_LOG_VJP(double)

/* fj.div's gradients in float32 (elementwise.pyx: the plain two-array VJP and the
   interpreter's plain float32 div): gw = gy/x, one float32 division (16 lanes), and
   gx = -(gy w)/(x x), whose products of float32 numbers are exact in double, so one
   double division: both correctly rounded (a double quotient rounded to float32 is the
   correctly rounded float32 quotient, 53 >= 2 * 24 + 2), where -((w/x)/x) gy rounded
   three times, with three double divisions. gy NULL: ones. Outputs may be inputs. */
FJ_BODY void fj_div_grads_f32_body(const float* w, const float* x, const float* gy, float* gw,
                                   float* gx, ptrdiff_t n) {
    ptrdiff_t k;
    if (gy == NULL) {
        for (k = 0; k < n; k++) {
            float q = x[k];
            double p = (double)w[k], qd = (double)q;
            gx[k] = (float)(-p / (qd * qd));
            gw[k] = 1.0f / q;
        }
    } else {
        for (k = 0; k < n; k++) {
            float q = x[k], g = gy[k];
            double p = (double)w[k], qd = (double)q;
            gx[k] = (float)(-((double)g * p) / (qd * qd));
            gw[k] = g / q;
        }
    }
}
FJ_MULTI(fj_div_grads_f32, (const float* w, const float* x, const float* gy, float* gw,
                            float* gx, ptrdiff_t n), (w, x, gy, gw, gx, n))

/* The chain interpreter's float64 sqrt' stage (d must not overlap x), compiled with FMA. */
FJ_BODY void fj_sqrt_deriv_n_body(double* d, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i += FJ_TILE_TMP)
        fj_sqrt_deriv_tile(x + i, d + i, n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP);
}
FJ_MULTI_FMA(fj_sqrt_deriv_n, (double* d, const double* x, ptrdiff_t n), (d, x, n))

/* d[k] = reciprocal'(x[k]) (the chain interpreter's float64 stage; d must not overlap x),
   compiled with FMA. */
FJ_BODY void fj_recip_deriv_n_body(double* d, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i += FJ_TILE_TMP)
        fj_recip_deriv_tile(x + i, d + i, n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP);
}
FJ_MULTI_FMA(fj_recip_deriv_n, (double* d, const double* x, ptrdiff_t n), (d, x, n))

#define FJ_VJP1(T)                                                                           \
    FJ_BODY void fj_vjp1_##T##_body(int code, const T* x, const T* t, T* out, ptrdiff_t n) { \
        double d[FJ_TILE_TMP];                                                               \
        ptrdiff_t i, k, m;                                                                   \
        for (i = 0; i < n; i += FJ_TILE_TMP) {                                               \
            m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;                                   \
            fj_deriv_tile_##T(code, x + i, d, m);                                            \
            if (t == NULL) {                                                                 \
                for (k = 0; k < m; k++) out[i + k] = (T)d[k];                                \
            } else if (out == t) {                                                           \
                T* p = out + i;                                                              \
                for (k = 0; k < m; k++) p[k] = (T)(d[k] * (double)p[k]);                     \
            } else {                                                                         \
                T* __restrict o = out + i;                                                   \
                const T* __restrict tt = t + i;                                              \
                for (k = 0; k < m; k++) o[k] = (T)(d[k] * (double)tt[k]);                    \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    FJ_MULTI_FMA(fj_vjp1_##T, (int code, const T* x, const T* t, T* out, ptrdiff_t n),         \
               (code, x, t, out, n))                                                         \
    static int fj_vjp1_##T##_run(int code, const T* x, const T* t, T* out, ptrdiff_t n) {    \
        if (code == FJ_U_LOG) { /* every mode: a division */                                 \
            fj_log_vjp_##T(x, t, out, n);                                                    \
            return 1;                                                                        \
        }                                                                                    \
        if (sizeof(T) == sizeof(float) && (code == FJ_U_SIN || code == FJ_U_COS)          \
            && fj32_trig_run(code == FJ_U_SIN ? FJ32N_DSIN : FJ32N_DCOS, /* fj_vtrig.h */   \
                             (const float*)(const void*)x, (const float*)(const void*)t,     \
                             (float*)(void*)out, n))                                         \
            return 1;                                                                        \
        if (sizeof(T) == sizeof(float) /* fj_vmath32.h, default mode */                      \
            && fj32_vjp1(code, (const float*)(const void*)x, (const float*)(const void*)t,   \
                         (float*)(void*)out, n))                                             \
            return 1;                                                                        \
        if (code == FJ_U_EXP || code == FJ_U_SIN || code == FJ_U_COS || code == FJ_U_TANH    \
            || code == FJ_U_SIGMOID) {                                                       \
            if (fj_fast_math != 0) return 0;                                                 \
        } else if (!(code == FJ_U_SQUARE || code == FJ_U_SQRT || code == FJ_U_ABS            \
                     || code == FJ_U_RECIPROCAL)) {                                          \
            return 0;                                                                        \
        }                                                                                    \
        fj_vjp1_##T(code, x, t, out, n);                                                     \
        return 1;                                                                            \
    }

FJ_VJP1(float)

/* ---- the float64 single-op VJP: one pass, x and t read once, out written once ----------

   The same operations as fj_deriv_tile_double followed by FJ_VJP1's product d * t (so the
   same bits), without the tile copies: FJ_VJP1 read x into a tile, wrote the derivative
   to a second tile and multiplied in a third loop, and the copy and the loads of t stalled
   on memory at 1e6 (perf: a third of the loop's time on the tile copy and on t).

   exp, tanh and sigmoid: fj_vjp_expfam, one vector of 8 (AVX-512) or 4 (AVX2) lanes at a
   time, everything in registers: exp by fj_exp_parts8/4; tanh' and sigmoid' by
   FJ_EXPM_OF and FJ_QUOT_SQ_OF on the vector type (4 q/(1+q)^2 as an exponent add); a
   vector with a far lane (FJ_EXP_IN_RANGE, FJ_SECH2_BIG, FJ_SIGMOID_BIG: overflow,
   subnormal results, NaN) redoes those lanes one at a time as the tile routines do. The
   baseline and the last n mod 8 elements take the scalar form, fj_expfam_deriv. out may
   be x or t (each vector is loaded before it is stored). */
static inline double fj_expfam_deriv(int code, double x) {
    double a = fabs(x), hi, lo;
    if (code == FJ_U_EXP) return FJ_EXP_IN_RANGE(x) ? fj_exp_core(x) : exp(x);
    if (code == FJ_U_TANH) return a < FJ_SECH2_BIG ? fj_sech2_core(x) : fj_sech2_far(x);
    if (!(a < FJ_SIGMOID_BIG)) {
        fj_sigmoid_far(x, &hi, &lo);
        return lo;
    }
    return fj_sigmoid_d_core(x);
}

FJ_BODY void fj_vjp_expfam_tail(int code, const double* x, const double* t, double* out,
                                ptrdiff_t n) {
    ptrdiff_t k;
    for (k = 0; k < n; k++) {
        double d = fj_expfam_deriv(code, x[k]);
        out[k] = t != NULL ? d * t[k] : d;
    }
}

/* fj_vjp_expfam's vector loop for a constant CODE (PFX _mm512 or _mm256, W lanes of type V),
   software-pipelined: each iteration starts the next vector (HEAD: its exponential and,
   for tanh' and sigmoid', the denominator (1 + q)^2 = P + dl and the division 1/P) and
   finishes the current one (TAIL), so the long dependency chains of neighbouring vectors
   overlap (perf showed an unpipelined loop stalled at the division). TAIL: the
   derivative, far lanes redone one at a time, times t, stored. Each vector's loads come
   before its store, and HEAD reads a vector ahead of TAIL's store: out may be x or t. */
#define FJ_EXPFAM_HEAD(CODE, V, PFX, PARTS, LOOKUP, FMA, OKBITS, ABS, j, h, l, ok)           \
    do {                                                                                     \
        V xv_ = PFX##_loadu_pd(x + (j)), a_ = ABS(xv_), sc_, sp_;                            \
        if (CODE == FJ_U_EXP) {                                                              \
            ok = OKBITS(a_, 700.0);                                                          \
            PARTS(xv_, &sc_, &sp_);                                                          \
            h = l = sc_ + sp_;                                                               \
        } else {                                                                             \
            ok = OKBITS(a_, CODE == FJ_U_TANH ? FJ_SECH2_BIG : FJ_SIGMOID_BIG);              \
            FJ_EXPM_OF(V, FMA, LOOKUP, a_, CODE == FJ_U_TANH, h, l);                         \
            (void)sc_;                                                                       \
            (void)sp_;                                                                       \
        }                                                                                    \
    } while (0)
#define FJ_EXPFAM_MID(CODE, V, FMA, h, l, P, dl, inv)                                        \
    do {                                                                                     \
        if (CODE != FJ_U_EXP) {                                                              \
            V s_ = 1.0 + h; /* FJ_QUOT_SQ_OF's first half */                                 \
            V sl_ = (h - (s_ - 1.0)) + l;                                                    \
            P = s_ * s_;                                                                     \
            dl = FMA(s_ + s_, sl_, FMA(s_, s_, -P));                                         \
            inv = 1.0 / P;                                                                   \
        } else {                                                                             \
            P = dl = inv = h;                                                                \
        }                                                                                    \
    } while (0)
#define FJ_EXPFAM_TAIL(CODE, V, VI, PFX, W, FMA, j, h, l, P, dl, inv, ok)                    \
    do {                                                                                     \
        V d_;                                                                                \
        if (CODE == FJ_U_EXP) {                                                              \
            d_ = h;                                                                          \
        } else { /* FJ_QUOT_SQ_OF's second half; sech^2 = 4 res: an exponent add */          \
            V y_ = h * inv;                                                                  \
            V r_ = FMA(-y_, P, h) + l;                                                       \
            d_ = FMA(FMA(-y_, dl, r_), inv, y_);                                             \
            if (CODE == FJ_U_TANH) d_ = (V)((VI)d_ + (2LL << 52));                           \
        }                                                                                    \
        if (ok != (1 << W) - 1) {                                                            \
            double ds_[W];                                                                   \
            int k_;                                                                          \
            PFX##_storeu_pd(ds_, d_);                                                        \
            for (k_ = 0; k_ < W; k_++)                                                       \
                if (!((ok >> k_) & 1)) ds_[k_] = fj_expfam_deriv(CODE, x[(j) + k_]);         \
            d_ = PFX##_loadu_pd(ds_);                                                        \
        }                                                                                    \
        if (t != NULL) d_ = d_ * PFX##_loadu_pd(t + (j));                                    \
        PFX##_storeu_pd(out + (j), d_);                                                      \
    } while (0)
/* three vectors in flight: the exponential of i + 2W, the denominator and division of
   i + W, the rest of i */
#define FJ_EXPFAM_LOOP(CODE, V, VI, PFX, W, PARTS, LOOKUP, FMA, OKBITS, ABS)                 \
    do {                                                                                     \
        V h0, l0, P0, dl0, inv0, h1, l1, h2, l2;                                             \
        int ok0, ok1, ok2;                                                                   \
        if (n < 2 * W) break;                                                                \
        FJ_EXPFAM_HEAD(CODE, V, PFX, PARTS, LOOKUP, FMA, OKBITS, ABS, 0, h0, l0, ok0);       \
        FJ_EXPFAM_MID(CODE, V, FMA, h0, l0, P0, dl0, inv0);                                  \
        FJ_EXPFAM_HEAD(CODE, V, PFX, PARTS, LOOKUP, FMA, OKBITS, ABS, W, h1, l1, ok1);       \
        for (; i + 3 * W <= n; i += W) {                                                     \
            V P1, dl1, inv1;                                                                 \
            FJ_EXPFAM_HEAD(CODE, V, PFX, PARTS, LOOKUP, FMA, OKBITS, ABS, i + 2 * W, h2, l2, \
                           ok2);                                                             \
            FJ_EXPFAM_MID(CODE, V, FMA, h1, l1, P1, dl1, inv1);                              \
            FJ_EXPFAM_TAIL(CODE, V, VI, PFX, W, FMA, i, h0, l0, P0, dl0, inv0, ok0);         \
            h0 = h1; l0 = l1; P0 = P1; dl0 = dl1; inv0 = inv1; ok0 = ok1;                    \
            h1 = h2; l1 = l2; ok1 = ok2;                                                     \
        }                                                                                    \
        FJ_EXPFAM_TAIL(CODE, V, VI, PFX, W, FMA, i, h0, l0, P0, dl0, inv0, ok0);             \
        FJ_EXPFAM_MID(CODE, V, FMA, h1, l1, P0, dl0, inv0);                                  \
        FJ_EXPFAM_TAIL(CODE, V, VI, PFX, W, FMA, i + W, h1, l1, P0, dl0, inv0, ok1);         \
        i += 2 * W;                                                                          \
    } while (0)

#if FJ_X86_DISPATCH
#define FJ_OK8(a, lim) ((int)_mm512_cmp_pd_mask(a, _mm512_set1_pd(lim), _CMP_LT_OQ))
#define FJ_OK4(a, lim) _mm256_movemask_pd(_mm256_cmp_pd(a, _mm256_set1_pd(lim), _CMP_LT_OQ))
#define FJ_EXPFAM_LOOP8(CODE)                                                                \
    FJ_EXPFAM_LOOP(CODE, __m512d, __m512i, _mm512, 8, fj_exp_parts8, FJ_EXPM_LOOKUP8,        \
                   _mm512_fmadd_pd, FJ_OK8, FJ_ABS8)
#define FJ_EXPFAM_LOOP4(CODE)                                                                \
    FJ_EXPFAM_LOOP(CODE, __m256d, __m256i, _mm256, 4, fj_exp_parts4, FJ_EXPM_LOOKUP4,        \
                   _mm256_fmadd_pd, FJ_OK4, FJ_ABS4)
__attribute__((target("avx512f,fma"))) static void fj_vjp_expfam_avx512(int code, const double* x,
                                                                    const double* t,
                                                                    double* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    if (code == FJ_U_EXP) FJ_EXPFAM_LOOP8(FJ_U_EXP);
    else if (code == FJ_U_TANH) FJ_EXPFAM_LOOP8(FJ_U_TANH);
    else FJ_EXPFAM_LOOP8(FJ_U_SIGMOID);
    fj_vjp_expfam_tail(code, x + i, t != NULL ? t + i : NULL, out + i, n - i);
}
__attribute__((target("avx2,fma"))) static void fj_vjp_expfam_avx2(int code, const double* x,
                                                                   const double* t,
                                                                   double* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    if (code == FJ_U_EXP) FJ_EXPFAM_LOOP4(FJ_U_EXP);
    else if (code == FJ_U_TANH) FJ_EXPFAM_LOOP4(FJ_U_TANH);
    else FJ_EXPFAM_LOOP4(FJ_U_SIGMOID);
    fj_vjp_expfam_tail(code, x + i, t != NULL ? t + i : NULL, out + i, n - i);
}
#endif

static void fj_vjp_expfam(int code, const double* x, const double* t, double* out,
                          ptrdiff_t n) {
#if FJ_X86_DISPATCH
    if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    if (fj_cpu_level == 2) { fj_vjp_expfam_avx512(code, x, t, out, n); return; }
    if (fj_cpu_level == 1 && fj_has_fma) { fj_vjp_expfam_avx2(code, x, t, out, n); return; }
#endif
    fj_vjp_expfam_tail(code, x, t, out, n);
}

/* The other covered ops (square, sqrt, abs, reciprocal; sin and cos take the tile path):
   D(xv) * t in one loop per tile,
   vectorised by gcc (FJ_MULTI_FMA), where out overlaps neither x nor t (the common case)
   and no lane of the tile is rare for sqrt' or reciprocal'; otherwise FJ_VJP1's tile
   path (the same operations). */
#define FJ_VJP1_F64_LOOP(EXPR)                                                               \
    do {                                                                                     \
        if (t == NULL)                                                                       \
            for (k = 0; k < m; k++) {                                                        \
                double xv = xx[k];                                                           \
                oo[k] = (EXPR);                                                              \
            }                                                                                \
        else                                                                                 \
            for (k = 0; k < m; k++) {                                                        \
                double xv = xx[k];                                                           \
                oo[k] = (EXPR) * tt[k];                                                      \
            }                                                                                \
    } while (0)

FJ_BODY void fj_vjp1_f64_body(int code, const double* x, const double* t, double* out,
                              ptrdiff_t n) {
    double d[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    int apart = out != x && out != t;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        const double* __restrict xx = x + i;
        const double* __restrict tt = t != NULL ? t + i : NULL;
        double* __restrict oo = out + i;
        int rare = 0;
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        if (apart) {
            switch (code) {
            case FJ_U_SQUARE:
                FJ_VJP1_F64_LOOP(2.0 * xv);
                continue;
            case FJ_U_ABS:
                FJ_VJP1_F64_LOOP(fj_sign_deriv(xv));
                continue;
            case FJ_U_SQRT:
                /* rare: a lane neither in the fast range nor negative or NaN (whose sqrt'
                   is fj_sqrt_deriv's x + NaN, the same value written without a branch) */
                for (k = 0; k < m; k++) {
                    double v = xx[k];
                    rare |= !(FJ_SQRT_FAST_OK(v) || !(v >= 0.0));
                }
                if (!rare) {
                    FJ_VJP1_F64_LOOP(fj_sqrt_deriv_fast_or_nan(xv));
                    continue;
                }
                break;
            case FJ_U_RECIPROCAL:
                for (k = 0; k < m; k++) rare |= !FJ_RECIP_CORE_OK(fabs(xx[k]));
                if (!rare) {
                    FJ_VJP1_F64_LOOP(fj_recip_deriv_core(xv));
                    continue;
                }
                break;
            default: /* sin, cos: the tile path */
                break;
            }
        }
        fj_deriv_tile_double(code, x + i, d, m);
        if (t == NULL) {
            for (k = 0; k < m; k++) out[i + k] = d[k];
        } else {
            double* p = out + i;
            const double* q = t + i;
            for (k = 0; k < m; k++) p[k] = d[k] * q[k];
        }
    }
}
FJ_MULTI_FMA(fj_vjp1_f64, (int code, const double* x, const double* t, double* out,
                           ptrdiff_t n), (code, x, t, out, n))

static int fj_vjp1_double_run(int code, const double* x, const double* t, double* out,
                              ptrdiff_t n) {
    if (code == FJ_U_LOG) { /* every mode: a division */
        fj_log_vjp_double(x, t, out, n);
        return 1;
    }
    if (code == FJ_U_EXP || code == FJ_U_TANH || code == FJ_U_SIGMOID) {
        if (fj_fast_math != 0) return 0;
        fj_vjp_expfam(code, x, t, out, n);
        return 1;
    }
    if (((code == FJ_U_SIN || code == FJ_U_COS) && fj_fast_math == 0) || code == FJ_U_SQUARE
        || code == FJ_U_SQRT || code == FJ_U_ABS || code == FJ_U_RECIPROCAL) {
        fj_vjp1_f64(code, x, t, out, n);
        return 1;
    }
    return 0;
}

#endif /* FJ_VMATH_H */
