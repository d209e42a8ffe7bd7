/* Vectorised transcendental functions for fastjac's element-wise kernels.

   Every function here maps double arrays to double arrays (in place allowed where noted),
   and every element goes through the same arithmetic whatever its position or the SIMD
   width, so results never depend on n, on the block partition or on the thread count.

   Three precision modes (fj_fast_math, set from Python by fastjac.set_precision):

   * "accurate" (default): exp, sin and cos are fastjac's own vectorised routines below
     (measured max error 0.57 ulp for exp, 0.78 ulp for sin and cos over 1e7 points: always
     below one ulp, i.e. faithfully rounded; glibc's are ~0.52); tanh and log call libm.
   * "strict": libm for every transcendental (glibc's bits exactly, several times slower).
   * "fast" (opt-in): sin, cos, tanh and log call glibc's libmvec (AVX-512 or AVX2 variants,
     chosen at run time). Measured error: up to ~3.5 ulp for sin/cos, ~1.5 ulp for log,
     ~1.2 (AVX-512) / ~2.1 (AVX2) ulp for tanh. exp stays fastjac's own.

   Without libmvec at build time (FJ_HAVE_LIBMVEC 0), "fast" is the same as "accurate".
   The file is compiled with -ffp-contract=off (setup.py): no fused multiply-add is formed,
   so the SSE2, AVX2 and AVX-512 clones give bitwise-identical results. */
#ifndef FJ_VMATH_H
#define FJ_VMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fj_exp_table.h"

#ifndef FJ_HAVE_LIBMVEC
#define FJ_HAVE_LIBMVEC 0
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FJ_NO_TARGET_CLONES)
#define FJ_X86_DISPATCH 1
#define FJ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FJ_X86_DISPATCH 0
#define FJ_CLONES
#endif

#if FJ_HAVE_LIBMVEC && !FJ_X86_DISPATCH
#undef FJ_HAVE_LIBMVEC
#define FJ_HAVE_LIBMVEC 0
#endif

/* -1 "strict": libm for every transcendental; 0 "accurate" (default): fastjac's vectorised
   exp, sin, cos (< 1 ulp), libm for tanh and log; 1 "fast": libmvec for sin, cos, tanh,
   log where available. */
static int fj_fast_math = 0;
static int fj_cpu_level = 0;  /* 0: baseline, 1: AVX2, 2: AVX-512F (set by fj_vmath_init) */

static void fj_vmath_init(void) {
#if FJ_X86_DISPATCH
    __builtin_cpu_init();
    fj_cpu_level = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") ? 1 : 0);
#endif
}

static int fj_have_libmvec(void) { return FJ_HAVE_LIBMVEC && fj_cpu_level > 0; }

static inline uint64_t fj_asu64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double fj_asf64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

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
static inline double fj_exp_core(double x) {
    double kd = x * FJ_INV_LN2_N + FJ_SHIFT;
    uint64_t ki = fj_asu64(kd);
    kd -= FJ_SHIFT;
    double r = (x - kd * FJ_LN2HI_N) - kd * FJ_LN2LO_N;
    uint64_t i = ki & 15;
    double scale = fj_asf64(fj_exp_head[i] + (ki << 48));
    double r2 = r * r;
    double p = (fj_exp_tail[i] + r) + r2 * (0.5 + r * FJ_C3);
    p = p + (r2 * r2) * ((FJ_C4 + r * FJ_C5) + r2 * (FJ_C6 + r * FJ_C7));
    return scale + scale * p;
}

/* The same arithmetic, operation for operation, on 8 lanes (the table lookups are register
   permutes: gathers are microcoded and slow on many Xeons) and on 4 lanes (scalar lookups).
   No FMA anywhere: the same bits as fj_exp_core. */
#if FJ_X86_DISPATCH
#include <immintrin.h>
__attribute__((target("avx512f"))) static inline __m512d fj_exp_core8(__m512d x) {
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
    return _mm512_add_pd(scale, _mm512_mul_pd(scale, p));
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

__attribute__((target("avx2"))) static inline __m256d fj_exp_core4(__m256d x) {
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
    return _mm256_add_pd(scale, _mm256_mul_pd(scale, p));
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

/* 1/(1+q)^2 and 1/(1+q) for q in [0, 1], with the rounding of 1 + q and of the square
   compensated (Fast2Sum and Dekker's exact product: exact without FMA), so that
   4q/(1+q)^2 and q/(1+q)^2 come out within ~1 ulp instead of ~4. */
#define FJ_SPLIT 134217729.0 /* 2^27 + 1 */
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

#define FJ_TILE_TMP 256

/* sech^2(x) = 4q/(1+q)^2 with q = exp(-2|x|) in (0, 1]: no cancellation (the map
   q -> 4q/(1+q)^2 has condition number (1-q)/(1+q) < 1); 0 at |x| = inf; NaN stays NaN.
   y == x allowed. */
FJ_CLONES static void fj_sech2_n(double* y, const double* x, ptrdiff_t n) {
    double q[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) q[k] = -2.0 * fabs(x[i + k]);
        fj_exp_n(q, q, m);
        for (k = 0; k < m; k++) y[i + k] = fj_over_1pq_sq(4.0 * q[k], q[k]);
    }
}

/* sigmoid: with e = exp(-|x|) in (0, 1], v = 1/(1+e) (x >= 0) or e/(1+e) (x < 0), and
   sigmoid'(x) = e/(1+e)^2 for all x: no cancellation, accurate even where v rounds to 1.
   v or d may be NULL; v == x allowed (d must not alias x). */
FJ_CLONES static void fj_sigmoid_n(double* v, double* d, const double* x, ptrdiff_t n) {
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

/* ---- sin and cos, vectorised, accurate (the default for sin, cos and sincos) ----------

   x = k pi/2 + r, |r| <= ~pi/4, k = round(2x/pi) for |x| < 1e5 (|k| < 2^16): pi/2 in three
   parts (33 + 33 + 53 bits, 2^-123 short of pi/2), the first two products exact, r kept as
   a double-double (rh, rl). Then, on the quadrant k mod 4, sin/cos(x) = +-sin/cos(r):
     sin(rh + rl) = rh + (rh z S(z) + rl (1 - z/2)),           z = rh^2
     cos(rh + rl) = w + (((1 - w) - hz - hze) + (z^2 C(z) - rh rl)),  w = 1 - hz,
   with S, C the Taylor series to r^17 and r^18 (truncation < 0.002 ulp) and rh^2 exact in
   cos (hz + hze = rh^2/2 by Dekker's product, exact without FMA). The last addition is the
   only rounding of size: measured <= ~0.6 ulp over 1e7 points (tests/test_vmath.py), like
   glibc. Lanes with |x| >= 1e5, inf, NaN, or |r| < 2^-25 with k != 0 (x within 2^-25 of a
   multiple of pi/2, where three parts of pi/2 may not be enough) are redone by libm. */
#define FJ_INV_PIO2 0x1.45f306dc9c883p-1
#define FJ_PIO2_1 0x1.921fb54400000p+0
#define FJ_PIO2_2 0x1.0b4611a600000p-34
#define FJ_PIO2_3 0x1.3198a2e037073p-69
#define FJ_TRIG_MAX 1e5

/* One lane: *s = sin(x), *c = cos(x), *rr = |r| (0 when k = 0), from which the caller
   decides whether libm must redo the lane. */
static inline void fj_sincos_core(double x, double* s, double* c, double* rr) {
    double kd = x * FJ_INV_PIO2 + FJ_SHIFT;
    uint64_t ki = fj_asu64(kd);
    kd -= FJ_SHIFT;
    double t1 = x - kd * FJ_PIO2_1;          /* exact */
    double t2 = kd * FJ_PIO2_2;              /* exact */
    double rh = t1 - t2;                     /* TwoSum(t1, -t2) */
    double bb = rh - t1;
    double e = (t1 - (rh - bb)) - (t2 + bb);
    double cc = e - kd * FJ_PIO2_3;
    double r = rh + cc;                      /* Fast2Sum: |cc| << |rh| */
    double rl = cc - (r - rh);
    double z = r * r;
    /* sin(r + rl) */
    double ps = -1.0 / 6.0 + z * (1.0 / 120.0 + z * (-1.0 / 5040.0 + z * (1.0 / 362880.0
                + z * (-1.0 / 39916800.0 + z * (1.0 / 6227020800.0
                + z * (-1.0 / 1307674368000.0 + z * (1.0 / 355687428096000.0)))))));
    double sv = r + (r * z * ps + rl * (1.0 - 0.5 * z));
    /* cos(r + rl), with r^2 = z + ze exactly */
    double sp = FJ_SPLIT * r;
    double h = sp - (sp - r);
    double l = r - h;
    double ze = ((h * h - z) + 2.0 * (h * l)) + l * l;
    double hz = 0.5 * z;
    double w = 1.0 - hz;
    double pc = 1.0 / 24.0 + z * (-1.0 / 720.0 + z * (1.0 / 40320.0 + z * (-1.0 / 3628800.0
                + z * (1.0 / 479001600.0 + z * (-1.0 / 87178291200.0
                + z * (1.0 / 20922789888000.0 + z * (-1.0 / 6402373705728000.0)))))));
    double cv = w + ((((1.0 - w) - hz) - 0.5 * ze) + (z * z * pc - r * rl));
    uint64_t q = ki & 3;
    double s0 = (q & 1) ? cv : sv;
    double c0 = (q & 1) ? sv : cv;
    s0 = (q & 2) ? -s0 : s0;
    *s = x == 0.0 ? x : s0;  /* sin(-0) = -0 */
    *c = ((q + 1) & 2) ? -c0 : c0;
    *rr = kd == 0.0 ? 1.0 : fabs(r);
}
#define FJ_TRIG_OK(x, rr) (fabs(x) < FJ_TRIG_MAX && (rr) >= 0x1p-25)

/* s[k] = sin(x[k]) and/or c[k] = cos(x[k]) (either may be NULL); s or c may be x. */
FJ_CLONES static void fj_sincos_acc_n(double* s, double* c, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP], ss[FJ_TILE_TMP], cs[FJ_TILE_TMP], rr[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    int bad;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        for (k = 0; k < m; k++) fj_sincos_core(xs[k], &ss[k], &cs[k], &rr[k]);
        bad = 0;
        for (k = 0; k < m; k++) bad |= !FJ_TRIG_OK(xs[k], rr[k]);
        if (bad)
            for (k = 0; k < m; k++)
                if (!FJ_TRIG_OK(xs[k], rr[k])) {
                    ss[k] = sin(xs[k]);
                    cs[k] = cos(xs[k]);
                }
        if (s != NULL)
            for (k = 0; k < m; k++) s[i + k] = ss[k];
        if (c != NULL)
            for (k = 0; k < m; k++) c[i + k] = cs[k];
    }
}

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

static void fj_sin_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(sin, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(sin, y, x, n); return; }
    fj_sincos_acc_n(y, NULL, x, n);
}

static void fj_cos_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(cos, y, x, n); return; }
    if (fj_fast_math < 0) { FJ_LIBM_LOOP(cos, y, x, n); return; }
    fj_sincos_acc_n(NULL, y, x, n);
}

static void fj_tanh_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(tanh, y, x, n); return; }
    FJ_LIBM_LOOP(tanh, y, x, n);
}

static void fj_log_n(double* y, const double* x, ptrdiff_t n) {
    if (FJ_USE_MVEC) { FJ_MVEC_CALL(log, y, x, n); return; }
    FJ_LIBM_LOOP(log, y, x, n);
}

/* s[k] = sin(x[k]), c[k] = cos(x[k]); s or c may be x (not both). */
static void fj_sincos_n(double* s, double* c, const double* x, ptrdiff_t n) {
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
    fj_sincos_acc_n(s, c, x, n);
}

#endif /* FJ_VMATH_H */
