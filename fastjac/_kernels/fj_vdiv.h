/* fj.div's float64 gradients with one of their three divisions taken off the divider.

   fj_tile.h's fj_div_grads_f64 computes gw = (1/x) gy and gx = -((w/x)/x) gy: three
   divisions per element, and the loop is bound by the divider (precision.rst, "The
   divider"). Here 1/x is formed by FMAs as RN(1/x), the correctly rounded reciprocal, so
   every result keeps fj_div_grads_f64's bits (NaN signs aside, which no path of fastjac
   fixes), while the divider does two divisions per element instead of three:

     y0 = vrcp14pd(x) (AVX-512, |1 - x y0| < 2^-14) or the float vrcpps of (float)x (AVX2,
          |1 - x y0| < 1.5 2^-12 + 2^-24 < 2^-11.4), e = 1 - x y0 (one fma);
     y1 = y0 (1 + e + e^2 + e^3) (AVX-512) or y0 (1 + e + e^2 + e^3 + e^4) (AVX2): as
          y0 = (1 - e)/x, y1 = (1/x)(1 - e^4) (or (1 - e^5)), a relative error below 2^-56
          plus the evaluation's roundings (about 2^-66, e and the sum carry relative errors
          of 2^-53 on terms of size 2^-11) and the last rounding: within 0.64 ulp of 1/x,
          a faithful reciprocal;
     y  = y1 + y1 (1 - x y1) by fmas (1 - x y1 exact): RN(1/x) for a faithful y1 unless
          x has an all-ones significand (Markstein's theorem for the reciprocal; checked
          exhaustively in binary precisions 8-13 by benchmarks/c/div_markstein_sim.inc).

   Lanes with |x| outside [2^-1000, 2^1000] (AVX2: [2^-125, 2^125], the float seed's range),
   zero, infinite, NaN or with an all-ones significand take 1/x from the divider (a masked
   division, run only when such a lane is in the vector), so 1/x is IEEE division's for every
   input. The loops run at fj_cpu_level (AVX-512F or AVX2 with FMA); the baseline and the
   last m mod 8 (4) elements run fj_div_grads_f64 itself. Outputs may be inputs (each vector
   is loaded before it is stored). */
#ifndef FJ_VDIV_H
#define FJ_VDIV_H

#include "fj_vmath.h"
#include "fj_tile.h"

#if FJ_X86_DISPATCH
#define FJ_SIG_ONES 0x000FFFFFFFFFFFFFLL

/* y = RN(1/q) on the lanes of *ok (the others: garbage, redone by the caller) */
__attribute__((target("avx512f,fma"))) static inline __m512d fj_rcp_rn8(__m512d q,
                                                                      __mmask8* ok) {
    __m512d one = _mm512_set1_pd(1.0), a = _mm512_abs_pd(q), y0 = _mm512_rcp14_pd(q), e, y1;
    __m512i ones = _mm512_set1_epi64(FJ_SIG_ONES);
    *ok = _mm512_cmp_pd_mask(a, _mm512_set1_pd(0x1p-1000), _CMP_GE_OQ)
          & _mm512_cmp_pd_mask(a, _mm512_set1_pd(0x1p1000), _CMP_LE_OQ)
          & _mm512_cmpneq_epi64_mask(_mm512_and_si512(_mm512_castpd_si512(q), ones), ones);
    e = _mm512_fnmadd_pd(q, y0, one);
    y1 = _mm512_fmadd_pd(y0, _mm512_fmadd_pd(_mm512_fmadd_pd(e, e, e), e, e), y0);
    return _mm512_fmadd_pd(y1, _mm512_fnmadd_pd(q, y1, one), y1);
}

__attribute__((target("avx2,fma"))) static inline __m256d fj_rcp_rn4(__m256d q, int* ok) {
    __m256d one = _mm256_set1_pd(1.0), a = _mm256_andnot_pd(_mm256_set1_pd(-0.0), q);
    __m256d y0 = _mm256_cvtps_pd(_mm_rcp_ps(_mm256_cvtpd_ps(q))), e, e2, s, y1;
    __m256i ones = _mm256_set1_epi64x(FJ_SIG_ONES);
    __m256i all = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(q), ones), ones);
    __m256d in = _mm256_and_pd(_mm256_cmp_pd(a, _mm256_set1_pd(0x1p-125), _CMP_GE_OQ),
                               _mm256_cmp_pd(a, _mm256_set1_pd(0x1p125), _CMP_LE_OQ));
    *ok = _mm256_movemask_pd(_mm256_andnot_pd(_mm256_castsi256_pd(all), in));
    e = _mm256_fnmadd_pd(q, y0, one);
    e2 = _mm256_mul_pd(e, e);
    s = _mm256_fmadd_pd(e, e, e);                                  /* e + e^2 */
    y1 = _mm256_fmadd_pd(y0, _mm256_fmadd_pd(s, e2, s), y0);      /* (e + e^2)(1 + e^2) */
    return _mm256_fmadd_pd(y1, _mm256_fnmadd_pd(q, y1, one), y1);
}

#define FJ_NEG8(v) \
    _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(v), _mm512_set1_epi64(INT64_MIN)))
__attribute__((target("avx512f,fma"))) static void fj_div_grads_f64_avx512(
    const double* w, const double* x, const double* gy, double* gw, double* gx, ptrdiff_t m) {
    ptrdiff_t k;
    for (k = 0; k + 8 <= m; k += 8) {
        __m512d q = _mm512_loadu_pd(x + k), p = _mm512_loadu_pd(w + k);
        __m512d g = _mm512_loadu_pd(gy + k), y, v;
        __mmask8 ok;
        y = fj_rcp_rn8(q, &ok);
        if (ok != 0xFF) y = _mm512_mask_div_pd(y, (__mmask8)~ok, _mm512_set1_pd(1.0), q);
        v = _mm512_div_pd(_mm512_div_pd(p, q), q);
        _mm512_storeu_pd(gw + k, _mm512_mul_pd(y, g));
        _mm512_storeu_pd(gx + k, _mm512_mul_pd(FJ_NEG8(v), g));
    }
    fj_div_grads_f64(w + k, x + k, gy + k, gw + k, gx + k, m - k);
}

__attribute__((target("avx2,fma"))) static void fj_div_grads_f64_avx2(
    const double* w, const double* x, const double* gy, double* gw, double* gx, ptrdiff_t m) {
    ptrdiff_t k;
    for (k = 0; k + 4 <= m; k += 4) {
        __m256d q = _mm256_loadu_pd(x + k), p = _mm256_loadu_pd(w + k);
        __m256d g = _mm256_loadu_pd(gy + k), y, v;
        int ok;
        y = fj_rcp_rn4(q, &ok);
        if (ok != 0xF) {
            __m256d d = _mm256_div_pd(_mm256_set1_pd(1.0), q);
            y = _mm256_blendv_pd(d, y, _mm256_castsi256_pd(_mm256_set_epi64x(
                                           -((ok >> 3) & 1), -((ok >> 2) & 1),
                                           -((ok >> 1) & 1), -(ok & 1))));
        }
        v = _mm256_div_pd(_mm256_div_pd(p, q), q);
        _mm256_storeu_pd(gw + k, _mm256_mul_pd(y, g));
        _mm256_storeu_pd(gx + k, _mm256_mul_pd(_mm256_xor_pd(v, _mm256_set1_pd(-0.0)), g));
    }
    fj_div_grads_f64(w + k, x + k, gy + k, gw + k, gx + k, m - k);
}
#endif

/* gw = (1/x) gy, gx = -((w/x)/x) gy: fj_div_grads_f64's bits (gy not NULL) */
static void fj_div_grads_f64_fast(const double* w, const double* x, const double* gy,
                                  double* gw, double* gx, ptrdiff_t m) {
#if FJ_X86_DISPATCH
    if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    if (fj_cpu_level == 2) {
        fj_div_grads_f64_avx512(w, x, gy, gw, gx, m);
        return;
    }
    if (fj_cpu_level == 1 && fj_has_fma) {
        fj_div_grads_f64_avx2(w, x, gy, gw, gx, m);
        return;
    }
#endif
    fj_div_grads_f64(w, x, gy, gw, gx, m);
}

#endif /* FJ_VDIV_H */
