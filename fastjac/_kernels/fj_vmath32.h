/* float32 vector math: exp, log, tanh (and sech^2), sigmoid (and sigmoid'), and the
   derivatives of sqrt and reciprocal, sized for a float32 result.

   Included by fj_vmath.h (it uses its helpers, FJ_MULTI and its rare-lane routines).

   Two kinds of routine (docs/guide/precision.rst has the methods and the measured maxima
   over all 2^32 float32 inputs, tests/test_vmath_accuracy.py FASTJAC_EXHAUSTIVE=1):

   - native float32 (fj32n_*: float arithmetic, 16 lanes of AVX-512, 8 of AVX2): exp,
     faithfully rounded in float32; sqrt' and reciprocal' (fj32n_sqrt_deriv,
     fj32n_recip_deriv, with exact fmaf residuals);
     sech^2 = tanh', faithful in float arithmetic (fj32n_sech2, FJ32F_SECH2_OF); and
     sigmoid' and sigmoid from one exponential and one division in double lanes
     (fj32n_sigmoid_vd, FJ32D_*_OF). They take a lane whose
     input is a float32 in their range (fj32n_lane_ok); a tile whose lanes all qualify runs
     one native loop, any other tile chooses lane by lane, so an element's bits never
     depend on its neighbours or the tiling.
   - in double (fj32_*), with polynomials sized for a 24-bit result instead of a 53-bit
     one, and without the double-double steps that the float64 routines need for their
     last bit: log, tanh, log', and every lane the native routines do not take
     (NaN, infinities, far tails, and a chain's intermediate doubles, which may lie outside
     float32's range: exp(x) of a float32 x may exceed it before a log brings it back).
     Each returns a double within about 2^-29 relative error of the exact value over the
     whole double range (the rare lanes at the ends of the range take the float64
     routines); rounding that to float32 is within 0.5 + 2^-5 ulp.

     exp      x = k ln2 + r, |r| <= ln2/2, exp(r) = 1 + r + r^2 E(r), E of degree 5
              (relative error of exp ~2^-31); 2^k built in the exponent bits.
     log      x = 2^k m, m in [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1), z = s^2,
              log(m) = 2s + s z L(z), L of degree 3 (~2^-35).
     tanh     |x| < 1/8: x + x z P(z), z = x^2, P of degree 2 (~2^-34);
              else (1 - q)/(1 + q), q = exp(-2|x|) (~2^-29 at |x| = 1/8, better beyond).
     sech^2   4q/(1 + q)^2 (for the lanes the float routine does not take).
     sigmoid  e = exp(-|x|): 1/(1 + e) or e/(1 + e); sigmoid' = e/(1 + e)^2.
     sqrt'    0.5/sqrt(x): a float32 estimate, one Newton step in double (~2^-43), for
              the lanes fj32n_sqrt_deriv does not take.
     (log's VJP is t/x, one float32 division: fj_vmath.h FJ_LOG_VJP.)
     recip'   -1/(x x) in double (x x is exact for a float32 x), for the lanes
              fj32n_recip_deriv does not take.

   The coefficients are fitted by _gen_vmath_poly.py. These routines are used in the
   default ("accurate") precision mode only: fj32_* fall back to the float64 routines in
   the "strict" and "fast" modes, so those modes keep their bits. Every loop is plain C
   compiled three times (FJ_MULTI) with fp contraction off: the AVX-512, AVX2 and baseline
   versions give the same bits. */
#ifndef FJ_VMATH32_H
#define FJ_VMATH32_H

#ifndef FJ_VMATH_H
#error "fj_vmath32.h is included by fj_vmath.h"
#endif

#define FJ32_INV_LN2 0x1.71547652b82fep+0
#define FJ32_LN2 0x1.62e42fefa39efp-1
/* FJ32_EXP_E: relative error 2^-28.4 of E, ~2^-31 of exp (_gen_vmath_poly.py) */
#define FJ32_EXP_E0 0x1.0000000b79829p-1
#define FJ32_EXP_E1 0x1.5555551a631adp-3
#define FJ32_EXP_E2 0x1.5554e968d8777p-5
#define FJ32_EXP_E3 0x1.1111668ef1c8ap-7
#define FJ32_EXP_E4 0x1.6d42bdb8e7347p-10
#define FJ32_EXP_E5 0x1.a0464cbfb5322p-13
/* FJ32_TANH_P: relative error 2^-26.9 of P, ~2^-34 of tanh (_gen_vmath_poly.py) */
#define FJ32_TANH_P0 -0x1.55555528e61b9p-2
#define FJ32_TANH_P1 0x1.110f815b84927p-3
#define FJ32_TANH_P2 -0x1.b5f00a1ce9cf2p-5
/* FJ32_LOG_L: relative error 2^-29.1 of L, ~2^-35 of log (_gen_vmath_poly.py) */
#define FJ32_LOG_L0 0x1.5555554bb8303p-1
#define FJ32_LOG_L1 0x1.9999eb44bb765p-2
#define FJ32_LOG_L2 0x1.245c4bbe568e9p-2
#define FJ32_LOG_L3 0x1.ddcd7b381d928p-3

#define FJ32_TANH_SMALL 0.125
#define FJ32_EXP_CORE_MAX 708.0 /* |x| <= this: 2^k stays a normal double */

/* exp(x) for |x| <= 708 (other x: garbage, never a trap). */
static inline double fj32_exp_core(double x) {
    double kd = x * FJ32_INV_LN2 + FJ_SHIFT;
    uint64_t ki = fj_asu64(kd);
    double r, r2, p;
    kd -= FJ_SHIFT;
    r = x - kd * FJ32_LN2;
    r2 = r * r;
    p = (FJ32_EXP_E0 + r * FJ32_EXP_E1)
        + r2 * ((FJ32_EXP_E2 + r * FJ32_EXP_E3) + r2 * (FJ32_EXP_E4 + r * FJ32_EXP_E5));
    p = r + r2 * p; /* exp(r) - 1 */
    /* 2^k: the low 12 bits of ki hold k (two's complement), moved to the exponent field */
    return fj_asf64((ki << 52) + 0x3ff0000000000000ULL) * (1.0 + p);
}

/* exp(x) for every x but the rare lanes 708 < |x| <= 746 (those: 0.0 here, redone by the
   caller with libm). Beyond: inf or 0, NaN stays NaN. */
static inline double fj32_exp_main(double x) {
    double y = fj32_exp_core(fabs(x) <= FJ32_EXP_CORE_MAX ? x : 0.0);
    y = fabs(x) <= FJ32_EXP_CORE_MAX ? y : 0.0;
    y = x > 746.0 ? INFINITY : y;
    return x != x ? x + x : y;
}
#define FJ32_EXP_RARE(x) (fabs(x) > FJ32_EXP_CORE_MAX && fabs(x) <= 746.0)

/* ---- native float32 exp: float arithmetic, 16 lanes of AVX-512, 8 of AVX2 ------------
   For a float32 x with |x| <= FJ32N_EXP_MAX (the result and 2^k are normal floats):
   x = k ln2 + r (k from a float product, so |r| <= ln2/2 (1 + 2^-10)); x - k LN2_HI is
   exact (LN2_HI has 15 bits, |k| <= 126, Sterbenz), and r = that - k LN2_LO rounds once.
   exp(r) = 1 + r + r^2 P(r), P of degree 5 with float32 coefficients (relative error
   2^-27.7 of P, r^2 P < 0.07); 1 + r is split exactly into hi + lo (Fast2Sum), so the sum
   before the last rounding errs only by r's rounding (<= 2^-26 |exp|) and the evaluation of
   lo + r^2 P (~2^-27): below half an ulp of the result, which is then faithful (within
   1 ulp; the exhaustive maximum is in docs/guide/precision.rst). 2^k scales exactly.
   Float arithmetic only, no FMA: every SIMD level gives the same bits. */
#define FJ32N_EXP_MAX 87.0f
#define FJ32N_INV_LN2 0x1.715476p+0f
#define FJ32N_SHIFT 0x1.8p23f
#define FJ32N_LN2_HI 0x1.62e4p-1f
#define FJ32N_LN2_LO 0x1.7f7d1cp-20f
/* FJ32N_EXP_P: relative error 2^-27.7 of P (_gen_vmath_poly.py, float32 coefficients) */
#define FJ32N_EXP_P0 0x1p-1f
#define FJ32N_EXP_P1 0x1.555554p-3f
#define FJ32N_EXP_P2 0x1.555502p-5f
#define FJ32N_EXP_P3 0x1.11134ap-7f
#define FJ32N_EXP_P4 0x1.6d2e28p-10f
#define FJ32N_EXP_P5 0x1.9d6caap-13f

/* exp(x) for a float x with |x| <= FJ32N_EXP_MAX (other x: garbage, never a trap). */
static inline float fj32n_exp_core(float x) {
    float kf = x * FJ32N_INV_LN2 + FJ32N_SHIFT;
    uint32_t ki = fj_asu32(kf);
    float r, r2, p, hi, lo;
    kf -= FJ32N_SHIFT;
    r = (x - kf * FJ32N_LN2_HI) - kf * FJ32N_LN2_LO;
    r2 = r * r;
    p = (FJ32N_EXP_P0 + r * FJ32N_EXP_P1)
        + r2 * ((FJ32N_EXP_P2 + r * FJ32N_EXP_P3) + r2 * (FJ32N_EXP_P4 + r * FJ32N_EXP_P5));
    hi = 1.0f + r;
    lo = (1.0f - hi) + r; /* 1 + r = hi + lo exactly */
    /* 2^k: the low bits of ki hold k (two's complement), moved to the exponent field */
    return fj_asf32((ki << 23) + 0x3f800000u) * (hi + (lo + r2 * p));
}
#define FJ32N_EXP_OK(x) (fabsf(x) <= FJ32N_EXP_MAX)

/* ---- float32 sech^2, sigmoid' and sigmoid: one exponential in double -------------------

   For a float32 x with |x| <= FJ32N_TANH_MAX (sech^2) or FJ32N_SIGD_MAX (sigmoid', sigmoid)
   the lane is widened to double (exact) and, with a = |x| and c = 2 (sech^2) or 1:
   - q = exp(-c a) within ~2^-36 relative, as fj_vmath.h's FJ_EXPM_OF but sized for a
     float32 result: one fma for the reduction (r = a + kf ln2/(16c) rounded once; the
     error of ln2/16 in double, < 2^-45 of exp at these a), the table head only (its
     rounding 2^-53; the tail is dropped), exp(-u) = 1 - u + u^2 Q(u), Q of degree 2
     (2^-36.5 of exp, _gen_vmath_poly.py), q = sc (1 + p) by one fma;
   - sech^2 = q/h^2 with h = (1 + q)/2 (one fma, exact scaling), one division;
   - sigmoid: g = 1/(1 + q) (one division), e g = q g, sigmoid' = (q g) g and the value g
     (x >= 0) or q g (x < 0), so the value costs nothing more than the derivative.
   Each is a double within ~2^-36 + 2^-51 relative of the exact value (the quotients'
   condition in q is below 1), so its rounding to float32 is within 0.5 + 2^-12 ulp: the
   exhaustive maxima are in docs/guide/precision.rst. The derivative is rounded to float32
   (and multiplied by t in float: the float32 product, as the other float32 VJPs); a
   chain's sigmoid value stays a double. About half the work of the float32 route this
   replaced (a hi + lo exponential in float, a corrected float quotient) and a value
   without a second exponential. One source for every width: FJ32D_*_OF on a type V
   (double, or a GCC vector of doubles with the fmadd intrinsic and a permute or scalar
   table lookup, fj_vmath.h's FJ_EXPM_LOOKUP*); fma is exact everywhere (the instruction,
   or the C library's on the baseline), so every level gives the same bits. */
/* The native lanes end where the derivative is still a normal float32: sigmoid'(80) =
   1.8e-35 and sech^2(40) = 7.2e-35 (FLT_MIN = 1.2e-38), as exp's range does (87). Beyond,
   a derivative rounded to float32 would be subnormal or 0, and the float32 product with gy
   would lose the product's bits (f'(x) gy = 1e-50 * 1e30 is 1e-20, not 0) or give NaN
   for an infinite gy (0 * inf) where the exact product is infinite: those lanes take the
   double routine, whose product is rounded once. */
#define FJ32N_TANH_MAX 40.0f
#define FJ32N_SIGD_MAX 80.0f
/* FJ32D_Q: Q(u) = (expm1(-u) + u)/u^2, |u| <= ln2/32 (1 + 2^-8); 2^-36.5 of exp */
#define FJ32D_Q0 0x1.000000010017fp-1
#define FJ32D_Q1 -0x1.5556e2002fa44p-3
#define FJ32D_Q2 0x1.555555551a860p-5
#define FJ32D_EXPM_OF(V, FMA, LOOKUP, a, q)                                                  \
    do {                                                                                     \
        V kd_ = FMA((a), FJ_V(V, -FJ_INV_LN2_N), FJ_V(V, FJ_SHIFT));                         \
        V u_ = FMA(kd_ - FJ_SHIFT, FJ_V(V, FJ_EXPM_L1), (a));                                \
        V tail_, sc_, p_;                                                                    \
        LOOKUP(kd_, tail_, sc_);                                                             \
        (void)tail_;                                                                         \
        p_ = FMA(FMA(u_, FJ_V(V, FJ32D_Q2), FJ_V(V, FJ32D_Q1)), u_, FJ_V(V, FJ32D_Q0));      \
        p_ = FMA(u_ * u_, p_, -u_);                                                          \
        (q) = FMA(sc_, p_, sc_);                                                             \
    } while (0)
/* sigmoid' (d) and q g (eg; the value of x < 0) and g (the value of x >= 0) from q */
#define FJ32D_SIG_OF(V, q, g, eg, d)                                                         \
    do {                                                                                     \
        (g) = 1.0 / (1.0 + (q));                                                             \
        (eg) = (q) * (g);                                                                    \
        (d) = (eg) * (g);                                                                    \
    } while (0)

/* ---- float32 sech^2 = tanh' on float lanes: 16 of AVX-512, 8 of AVX2 ------------------
   For a float32 x with |x| <= FJ32N_TANH_MAX, a = |x|, sech^2(a) = 4q/(1 + q)^2 with
   q = exp(-2a), in float arithmetic with fma (fmaf on the baseline):
   - a = k ln2/16 + r: k from one fma (rounded to an integer by the 1.5 * 2^23 shift; k <=
     924, r within ln2/32 (1 + 2^-10)), r by two fmas with ln2/16 in two parts (the first
     has 13 bits, so a - k HI is exact; the rest of ln2/16 beyond HI + LO, 1e-13, costs
     k 1e-13 <= 2^-33 of r at most);
   - q = 2^(-k/8) exp(-2r): 2^(-j/8) = head (1 + tau), j = k mod 8, from two 8-entry
     float tables (one register permute each on AVX-512 and AVX2), 2^-(k div 8) applied
     to head by integer arithmetic on the exponent bits (qh = head 2^-m, exact);
     exp(-2r) - 1 = r H(r), H of degree 3 (float coefficients, fitted at Chebyshev nodes:
     absolute error 2^-32.0); ql = qh (r H + tau), so q = qh + ql but for qh tau r H;
   - qn = qh + ql and s = 1 + qn rounded, e = ((1 - s) + qh) + ql their error (the first
     sum is exact, the second errs by 2^-24 |e| <= 2^-48), so (1 + q)^2 = P + Dl with
     P = s s, its exact remainder pl (fma) and Dl = 2 s e + pl;
   - y0 = qn (1/P) (one float division), the residual R = (qh - y0 P) + ql - y0 Dl (about
     2^-22 y: its roundings are below 2^-45 of y) and y = y0 + R (1/P), one rounding;
     4y by the exponent bits (exact).
   Error before that last rounding, relative to sech^2: the roundings of r (2^-24 of |2r|
   <= ln2/16: 2^-28.5), of H (2^-23 absolute, times |r|: 2^-28.5), of r H + tau and of
   its product with qh (2^-28.5 each), the dropped tau r H (2^-29.4), H's fit (2^-31.9),
   the rest of ln2/16 beyond HI + LO (1e-13 k, 2^-32.3 of q) and the other steps (below
   2^-40): at most 2^-26.2, under 0.22 ulp (an ulp is at least 2^-24 of the value). So the
   float32 result is within 0.72 ulp, faithful on every input: the exhaustive maximum is
   in docs/guide/precision.rst (tests/c/sig32_exhaustive.inc). It replaced one
   exponential and one division in double lanes (FJ32D_*_OF, sigmoid's still), which
   were correctly rounded on all but 2,702 inputs: the bits changed on some inputs (the
   count is in precision.rst), for 1.12-1.19x in cache and 1.07-1.17x at n = 1e6 (C
   harness; fewer vector operations per element: 32 per 16 elements, not 36). One source
   (FJ32F_SECH2_OF) for float, 16 and 8 lanes; every operation is correctly rounded or
   exact (fma everywhere: the instruction, or the C library's fmaf on the baseline), so
   every level gives the same bits. All intermediates are normal floats but ql near
   |x| = 40 (subnormal there: its rounding costs under 2^-33 of q). */
/* FJ32N_K(V, c): the constant c as a V (a float, or c in every lane of a vector) */
#define FJ32N_K(V, c) ((V){0} + (c))
#define FJ32F_INV_LN2_16 0x1.715476p+4f /* 16/ln2 */
#define FJ32F_LN2_16_HI 0x1.62ep-5f      /* ln2/16: 13 bits */
#define FJ32F_LN2_16_LO 0x1.0bfbe8p-19f
/* H(r) = (exp(-2r) - 1)/r ~ ((H0 r + H1) r + 2) r - 2, |r| <= ln2/32 (1 + 2^-10) */
#define FJ32F_H0 0x1.555ad0p-1f
#define FJ32F_H1 -0x1.555d8cp+0f
/* 2^(-j/8) = head (1 + tau), j = 0..7: head rounded to float, tau the float nearest
   2^(-j/8)/head - 1 (|tau| < 2^-24.9; mpmath at 200 bits), repeated for j = 8..15: the
   16-lane permute reads the low 4 bits */
static const float fj32f_exp8_head[16] = {
    0x1p+0f,        0x1.d5818ep-1f, 0x1.ae89fap-1f, 0x1.8ace54p-1f,
    0x1.6a09e6p-1f, 0x1.4bfdaep-1f, 0x1.306fe0p-1f, 0x1.172b84p-1f,
    0x1p+0f,        0x1.d5818ep-1f, 0x1.ae89fap-1f, 0x1.8ace54p-1f,
    0x1.6a09e6p-1f, 0x1.4bfdaep-1f, 0x1.306fe0p-1f, 0x1.172b84p-1f};
static const float fj32f_exp8_tau[16] = {
    0.0f,            -0x1.a5217cp-28f, -0x1.f9c304p-27f, 0x1.67a1cap-28f,
    0x1.26055cp-26f, -0x1.0a3550p-25f, 0x1.125002p-25f,  -0x1.9c0c22p-27f,
    0.0f,            -0x1.a5217cp-28f, -0x1.f9c304p-27f, 0x1.67a1cap-28f,
    0x1.26055cp-26f, -0x1.0a3550p-25f, 0x1.125002p-25f,  -0x1.9c0c22p-27f};
/* V the float type (float or a GCC vector of floats), U the unsigned one of its width,
   AS_U and AS_F reinterpret the bits, FMA(a, b, c) = a b + c and FNMA(a, b, c) = c - a b
   rounded once, LOOKUP(kb, head, tau) reads the tables at kb mod 8 */
#define FJ32F_SECH2_OF(V, U, AS_U, AS_F, FMA, FNMA, LOOKUP, x, y)                            \
    do {                                                                                     \
        V a_ = AS_F(AS_U(x) & FJ32N_K(U, 0x7fffffffu));                                      \
        V kf_ = FMA(a_, FJ32N_K(V, FJ32F_INV_LN2_16), FJ32N_K(V, FJ32N_SHIFT));              \
        U kb_ = AS_U(kf_);                                                                   \
        U m_ = (kb_ >> 3) << 23; /* k div 8 in the exponent field (the shift's bits drop) */ \
        V kd_ = kf_ - FJ32N_K(V, FJ32N_SHIFT);                                               \
        V r_ = FNMA(kd_, FJ32N_K(V, FJ32F_LN2_16_HI), a_); /* exact */                       \
        V th_, tau_, h_, qh_, ql_, qn_, s_, e_, p_, pl_, dl_, inv_, y0_, res_, y_;          \
        LOOKUP(kb_, th_, tau_);                                                              \
        qh_ = AS_F(AS_U(th_) - m_); /* head 2^-m */                                          \
        r_ = FNMA(kd_, FJ32N_K(V, FJ32F_LN2_16_LO), r_);                                     \
        h_ = FMA(FMA(FMA(r_, FJ32N_K(V, FJ32F_H0), FJ32N_K(V, FJ32F_H1)), r_,                \
                     FJ32N_K(V, 2.0f)),                                                      \
                 r_, FJ32N_K(V, -2.0f));                                                     \
        ql_ = qh_ * FMA(r_, h_, tau_); /* q - qh, but for qh tau r H (< 2^-29.4 q) */        \
        qn_ = qh_ + ql_;                                                                     \
        s_ = FJ32N_K(V, 1.0f) + qn_;                                                         \
        e_ = ((FJ32N_K(V, 1.0f) - s_) + qh_) + ql_;                                          \
        p_ = s_ * s_;                                                                        \
        pl_ = FMA(s_, s_, -p_); /* s^2 - P, exact */                                         \
        dl_ = FMA(s_ + s_, e_, pl_);                                                         \
        inv_ = FJ32N_K(V, 1.0f) / p_;                                                        \
        y0_ = qn_ * inv_;                                                                    \
        res_ = FNMA(y0_, dl_, FNMA(y0_, p_, qh_) + ql_);                                     \
        y_ = FMA(res_, inv_, y0_);                                                           \
        (y) = AS_F(AS_U(y_) + FJ32N_K(U, 2u << 23)); /* 4 y, exact */                        \
    } while (0)
#define FJ32F_FNMA1(a, b, c) fmaf(-(a), (b), (c))
#define FJ32F_LOOKUP1(kb, th, tl)                                                            \
    do {                                                                                     \
        (th) = fj32f_exp8_head[(kb) & 7u];                                                   \
        (tl) = fj32f_exp8_tau[(kb) & 7u];                                                    \
    } while (0)
/* One lane (x a float32 in the range): sech^2. */
FJ_BODY float fj32n_sech2(float x) {
    float y;
    FJ32F_SECH2_OF(float, uint32_t, fj_asu32, fj_asf32, fmaf, FJ32F_FNMA1, FJ32F_LOOKUP1, x, y);
    return y;
}

/* One lane (x a float32 in the range): sigmoid', and sigmoid's value as a double. */
FJ_BODY float fj32n_sigmoid_deriv(float x) {
    double a = fabs((double)x), q, g, eg, d;
    FJ32D_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, q);
    FJ32D_SIG_OF(double, q, g, eg, d);
    return (float)d;
}
FJ_BODY double fj32n_sigmoid_vd(double x, double* d) {
    double a = fabs(x), q, g, eg, dd;
    FJ32D_EXPM_OF(double, fma, FJ_EXPM_LOOKUP1, a, q);
    FJ32D_SIG_OF(double, q, g, eg, dd);
    *d = (double)(float)dd;
    return x >= 0.0 ? g : eg;
}

/* The vector loops. out[k] = sigmoid'(x[k]) * t[k] (sigmoid'(x[k]) when t is NULL), for
   float32 lanes all in the range; out may be x or t. And the chain interpreter's sigmoid
   tile: v[k] (the double value) and d[k] (sigmoid' rounded to float32) from doubles xs
   that are all float32 in the range. The float lanes are loaded W at a time and widened
   to doubles (exact), the results narrowed (rounded once) and multiplied by t in float;
   two vectors per step, so that their chains overlap. */
#if FJ_X86_DISPATCH
/* J constant; x, t, out, m, k of the caller. Software-pipelined: each step computes the
   exponentials of the next two vectors (HEAD) and finishes the current two (TAIL: the
   quotient, rounding, product with t, store), so that the chains of neighbouring vectors
   overlap; the next vectors are loaded before the current ones are stored (out may be x
   or t). */
#define FJ32D_HEAD(V, FMA, LOOKUP, ABS, LOADF, CVT, j, q)                                    \
    do {                                                                                     \
        V a_ = ABS(CVT(LOADF(x + (j))));                                                     \
        FJ32D_EXPM_OF(V, FMA, LOOKUP, a_, q);                                                \
    } while (0)
#define FJ32D_TAIL(V, VF, FMA, LOADF, NARROW, MULF, STOREF, j, q)                            \
    do {                                                                                     \
        V d_, g_, eg_;                                                                       \
        VF f_;                                                                               \
        FJ32D_SIG_OF(V, q, g_, eg_, d_);                                                     \
        f_ = NARROW(d_);                                                                     \
        if (t != NULL) f_ = MULF(f_, LOADF(t + (j)));                                        \
        STOREF(out + (j), f_);                                                               \
    } while (0)
#define FJ32D_VJP_LOOP(V, VF, W, FMA, LOOKUP, ABS, LOADF, CVT, NARROW, MULF, STOREF)         \
    if (m >= 2 * W) {                                                                        \
        V q0_, q1_, q2_, q3_;                                                                \
        FJ32D_HEAD(V, FMA, LOOKUP, ABS, LOADF, CVT, 0, q0_);                                 \
        FJ32D_HEAD(V, FMA, LOOKUP, ABS, LOADF, CVT, W, q1_);                                 \
        for (; k + 4 * W <= m; k += 2 * W) {                                                 \
            FJ32D_HEAD(V, FMA, LOOKUP, ABS, LOADF, CVT, k + 2 * W, q2_);                     \
            FJ32D_HEAD(V, FMA, LOOKUP, ABS, LOADF, CVT, k + 3 * W, q3_);                     \
            FJ32D_TAIL(V, VF, FMA, LOADF, NARROW, MULF, STOREF, k, q0_);                     \
            FJ32D_TAIL(V, VF, FMA, LOADF, NARROW, MULF, STOREF, k + W, q1_);                 \
            q0_ = q2_;                                                                       \
            q1_ = q3_;                                                                       \
        }                                                                                    \
        FJ32D_TAIL(V, VF, FMA, LOADF, NARROW, MULF, STOREF, k, q0_);                         \
        FJ32D_TAIL(V, VF, FMA, LOADF, NARROW, MULF, STOREF, k + W, q1_);                     \
        k += 2 * W;                                                                          \
    }
#define FJ32D_LOOP8                                                                          \
    FJ32D_VJP_LOOP(__m512d, __m256, 8, _mm512_fmadd_pd, FJ_EXPM_LOOKUP8, FJ_ABS8,            \
                   _mm256_loadu_ps, _mm512_cvtps_pd, _mm512_cvtpd_ps, _mm256_mul_ps,         \
                   _mm256_storeu_ps)
#define FJ32D_LOOP4                                                                          \
    FJ32D_VJP_LOOP(__m256d, __m128, 4, _mm256_fmadd_pd, FJ_EXPM_LOOKUP4, FJ_ABS4,            \
                   _mm_loadu_ps, _mm256_cvtps_pd, _mm256_cvtpd_ps, _mm_mul_ps, _mm_storeu_ps)
__attribute__((target("avx512f,fma"))) static ptrdiff_t fj32n_sigd_vjp_avx512(
    const float* x, const float* t, float* out, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32D_LOOP8
    return k;
}
__attribute__((target("avx2,fma"))) static ptrdiff_t fj32n_sigd_vjp_avx2(
    const float* x, const float* t, float* out, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32D_LOOP4
    return k;
}
/* the tiles: d (sigmoid', float32-rounded) and, with v != NULL, v (sigmoid, a double)
   from doubles xs; SELGE(x, g, eg): g where x >= 0 */
#define FJ32D_TILE_LOOP(V, W, FMA, LOOKUP, ABS, PFX, NARROW, WIDEN, SELGE)                   \
    for (; k + W <= m; k += W) {                                                             \
        V xd_ = PFX##_loadu_pd(xs + k), a_ = ABS(xd_), q_, g_, eg_, d_;                      \
        FJ32D_EXPM_OF(V, FMA, LOOKUP, a_, q_);                                               \
        FJ32D_SIG_OF(V, q_, g_, eg_, d_);                                                    \
        if (v != NULL) PFX##_storeu_pd(v + k, SELGE(xd_, g_, eg_));                          \
        PFX##_storeu_pd(d + k, WIDEN(NARROW(d_)));                                           \
    }
#define FJ32D_SELGE8(x, g, eg)                                                               \
    _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_GE_OQ), eg, g)
#define FJ32D_SELGE4(x, g, eg)                                                               \
    _mm256_blendv_pd(eg, g, _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GE_OQ))
#define FJ32D_TILE8                                                                          \
    FJ32D_TILE_LOOP(__m512d, 8, _mm512_fmadd_pd, FJ_EXPM_LOOKUP8, FJ_ABS8, _mm512,           \
                    _mm512_cvtpd_ps, _mm512_cvtps_pd, FJ32D_SELGE8)
#define FJ32D_TILE4                                                                          \
    FJ32D_TILE_LOOP(__m256d, 4, _mm256_fmadd_pd, FJ_EXPM_LOOKUP4, FJ_ABS4, _mm256,           \
                    _mm256_cvtpd_ps, _mm256_cvtps_pd, FJ32D_SELGE4)
__attribute__((target("avx512f,fma"))) static ptrdiff_t fj32n_sig_tile_avx512(
    const double* xs, double* v, double* d, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32D_TILE8
    return k;
}
__attribute__((target("avx2,fma"))) static ptrdiff_t fj32n_sig_tile_avx2(
    const double* xs, double* v, double* d, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32D_TILE4
    return k;
}
typedef uint32_t fj32n_u16 __attribute__((vector_size(64)));
typedef uint32_t fj32n_u8 __attribute__((vector_size(32)));
#define FJ32N_AS_U16(v) ((fj32n_u16)(v))
#define FJ32N_AS_F16(v) ((__m512)(v))
#define FJ32N_AS_U8(v) ((fj32n_u8)(v))
#define FJ32N_AS_F8(v) ((__m256)(v))
/* sech^2 on 16 (AVX-512) or 8 (AVX2) float lanes: out[k] = sech^2(x[k]) * t[k]
   (sech^2(x[k]) when t is NULL) for float32 lanes all in the range, two vectors per step,
   then one; returns how many it did (a multiple of W). out may be x or t. */
#define FJ32F_LOOKUP16(kb, th, tl)                                                           \
    do {                                                                                     \
        (th) = _mm512_permutexvar_ps((__m512i)(kb), _mm512_loadu_ps(fj32f_exp8_head));       \
        (tl) = _mm512_permutexvar_ps((__m512i)(kb), _mm512_loadu_ps(fj32f_exp8_tau));       \
    } while (0)
#define FJ32F_LOOKUP8(kb, th, tl)                                                            \
    do {                                                                                     \
        (th) = _mm256_permutevar8x32_ps(_mm256_loadu_ps(fj32f_exp8_head), (__m256i)(kb));    \
        (tl) = _mm256_permutevar8x32_ps(_mm256_loadu_ps(fj32f_exp8_tau), (__m256i)(kb));    \
    } while (0)
#define FJ32F_SECH2_16(x, y)                                                                 \
    FJ32F_SECH2_OF(__m512, fj32n_u16, FJ32N_AS_U16, FJ32N_AS_F16, _mm512_fmadd_ps,           \
                   _mm512_fnmadd_ps, FJ32F_LOOKUP16, x, y)
#define FJ32F_SECH2_8(x, y)                                                                  \
    FJ32F_SECH2_OF(__m256, fj32n_u8, FJ32N_AS_U8, FJ32N_AS_F8, _mm256_fmadd_ps,              \
                   _mm256_fnmadd_ps, FJ32F_LOOKUP8, x, y)
#define FJ32F_VJP_STEPS(V, W, PFX, SECH2, TIMES_T)                                           \
    for (; k + 2 * (W) <= m; k += 2 * (W)) {                                                 \
        V x0_ = PFX##_loadu_ps(x + k), x1_ = PFX##_loadu_ps(x + k + (W)), d0_, d1_;          \
        SECH2(x0_, d0_);                                                                     \
        SECH2(x1_, d1_);                                                                     \
        if (TIMES_T) {                                                                       \
            d0_ = d0_ * PFX##_loadu_ps(t + k);                                               \
            d1_ = d1_ * PFX##_loadu_ps(t + k + (W));                                         \
        }                                                                                    \
        PFX##_storeu_ps(out + k, d0_);                                                       \
        PFX##_storeu_ps(out + k + (W), d1_);                                                 \
    }                                                                                        \
    for (; k + (W) <= m; k += (W)) {                                                         \
        V x0_ = PFX##_loadu_ps(x + k), d0_;                                                  \
        SECH2(x0_, d0_);                                                                     \
        if (TIMES_T) d0_ = d0_ * PFX##_loadu_ps(t + k);                                      \
        PFX##_storeu_ps(out + k, d0_);                                                       \
    }
#define FJ32F_VJP_LOOP(V, W, PFX, SECH2)                                                     \
    if (t != NULL) {                                                                         \
        FJ32F_VJP_STEPS(V, W, PFX, SECH2, 1)                                                 \
    } else {                                                                                 \
        FJ32F_VJP_STEPS(V, W, PFX, SECH2, 0)                                                 \
    }
__attribute__((target("avx512f,fma"))) static ptrdiff_t fj32f_sech2_vjp_avx512(
    const float* x, const float* t, float* out, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32F_VJP_LOOP(__m512, 16, _mm512, FJ32F_SECH2_16)
    return k;
}
__attribute__((target("avx2,fma"))) static ptrdiff_t fj32f_sech2_vjp_avx2(
    const float* x, const float* t, float* out, ptrdiff_t m) {
    ptrdiff_t k = 0;
    FJ32F_VJP_LOOP(__m256, 8, _mm256, FJ32F_SECH2_8)
    return k;
}
#endif
/* out[k] = D(x[k]) * t[k] (D(x[k]) when t is NULL), D = sech^2 (j = 2: the float lanes)
   or sigmoid' (j = 0: the double lanes), for float32 lanes all in the range; out may be
   x or t. The vector loop of the CPU's level, the scalar routine for the rest (the same
   bits). */
static void fj32n_sigd_vjp(uint32_t j, const float* x, const float* t, float* out,
                           ptrdiff_t m) {
    ptrdiff_t k = 0;
#if FJ_X86_DISPATCH
    if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    if (j) {
        if (fj_cpu_level == 2) k = fj32f_sech2_vjp_avx512(x, t, out, m);
        else if (fj_cpu_level == 1 && fj_has_fma) k = fj32f_sech2_vjp_avx2(x, t, out, m);
    } else if (fj_cpu_level == 2) {
        k = fj32n_sigd_vjp_avx512(x, t, out, m);
    } else if (fj_cpu_level == 1 && fj_has_fma) {
        k = fj32n_sigd_vjp_avx2(x, t, out, m);
    }
#endif
    for (; k < m; k++) {
        float d = j ? fj32n_sech2(x[k]) : fj32n_sigmoid_deriv(x[k]);
        out[k] = t != NULL ? d * t[k] : d;
    }
}
/* d[k] = D (rounded to float32) and, for sigmoid (j = 0) with v != NULL, v[k] = sigmoid
   (a double), for a tile of doubles xs that are all float32 in the range. sech^2 (j = 2)
   takes the float lanes: xs narrowed to float (exact), the results widened. */
static void fj32n_sig_tile(uint32_t j, const double* xs, double* v, double* d, ptrdiff_t m) {
    ptrdiff_t k = 0;
    double dd;
    if (j) {
        float xf[FJ_TILE_TMP], df[FJ_TILE_TMP];
        ptrdiff_t i, c;
        for (i = 0; i < m; i += FJ_TILE_TMP) {
            c = m - i < FJ_TILE_TMP ? m - i : FJ_TILE_TMP;
            for (k = 0; k < c; k++) xf[k] = (float)xs[i + k];
            fj32n_sigd_vjp(2, xf, NULL, df, c);
            for (k = 0; k < c; k++) d[i + k] = (double)df[k];
        }
        return;
    }
#if FJ_X86_DISPATCH
    if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    if (fj_cpu_level == 2) k = fj32n_sig_tile_avx512(xs, v, d, m);
    else if (fj_cpu_level == 1 && fj_has_fma) k = fj32n_sig_tile_avx2(xs, v, d, m);
#endif
    for (; k < m; k++) {
        dd = fj32n_sigmoid_vd(xs[k], &d[k]);
        if (v != NULL) v[k] = dd;
    }
}
/* a lane of a stage (a double) that the native routines take: a float32 with |x| <= lim */
static inline int fj32n_lane_ok(double x, float lim) {
    float xf = (float)x;
    return (double)xf == x && fabsf(xf) <= lim;
}

/* One lane of a float32 exp stage from a double: the native routine where x is a float32
   in its range, the double routine (fj32_exp_main; its rare lanes return 0.0 and are
   redone by the caller) for every other x (NaN, infinities, far tails, and the doubles
   that a chain's earlier stages produce). The choice depends on the lane alone, so every
   tiling of the same input gives the same bits. */
static inline int fj32n_exp_lane_ok(double x) {
    float xf = (float)x;
    return (double)xf == x && FJ32N_EXP_OK(xf);
}

/* tanh and sech^2 from one exp: q = exp(-2|x|) (|x| >= 354: sech^2 underflows, tanh is 1). */
static inline double fj32_q(double a) {
    return fj32_exp_core(a < 354.0 ? -2.0 * a : -708.0);
}
static inline double fj32_tanh_from(double x, double q) {
    double a = fabs(x);
    double z = a * a;
    double big = (1.0 - q) / (1.0 + q);
    double small = a + a * (z * (FJ32_TANH_P0 + z * (FJ32_TANH_P1 + z * FJ32_TANH_P2)));
    double r = copysign(a < FJ32_TANH_SMALL ? small : big, x);
    return x != x ? x + x : r;
}
static inline double fj32_sech2_from(double x, double q) {
    double a = fabs(x);
    double s = 1.0 + q;
    double y = (4.0 * q) / (s * s);
    y = a < 400.0 ? y : 0.0; /* 4 exp(-2a) < 2^-1075 */
    return x != x ? x + x : y;
}
#define FJ32_SECH2_RARE(x) (fabs(x) >= 354.0 && fabs(x) < 400.0)

/* sigmoid and sigmoid' from e = exp(-|x|) (|x| >= 700: the float64 routine; >= 750: the
   limits 1 or 0 and 0). */
static inline void fj32_sigmoid_from(double x, double* v, double* d) {
    double a = fabs(x);
    double e = fj32_exp_core(a < 700.0 ? -a : -700.0);
    double s = 1.0 + e;
    double inv = 1.0 / s;
    double vv = (x >= 0.0 ? 1.0 : e) * inv;
    double dd = e * (inv * inv);
    vv = a < 750.0 ? vv : (x > 0.0 ? 1.0 : 0.0);
    dd = a < 750.0 ? dd : 0.0;
    *v = x != x ? x + x : vv;
    *d = x != x ? x + x : dd;
}
#define FJ32_SIGMOID_RARE(x) (fabs(x) >= 700.0 && fabs(x) < 750.0)

/* log(x): the reduction of fj_log_core, a shorter series. */
static inline double fj32_log_core(double x) {
    double kd, s, z, y;
    double m = fj_log_reduce(x, &kd);
    s = (m - 1.0) / (m + 1.0);
    z = s * s;
    y = kd * FJ32_LN2 + (2.0 * s + s * (z * (FJ32_LOG_L0 + z * (FJ32_LOG_L1
        + z * (FJ32_LOG_L2 + z * FJ32_LOG_L3)))));
    y = x == INFINITY ? x : y;
    return x > 0.0 ? y : (x == 0.0 ? -INFINITY : (x != x ? x + x : NAN));
}

/* sqrt'(x) = 0.5/sqrt(x) without a double division or root (slow on 8 double lanes): a
   float32 estimate (sqrtf and the division are correctly rounded, so the same on every
   SIMD path; relative error < 2^-22) and one Newton step in double from the double x
   (error ~2^-43), for x in [2^-125, 2^125] (FJ32_NEWTON_OK: there x rounded to float32
   keeps 24 bits and the estimate neither overflows nor underflows). Other x (zeros,
   infinities, NaN, negative x, doubles outside float32's range in a chain) are rare
   lanes: the plain double expression, whose zeros, infinities and NaN are the NumPy
   expression's. */
#define FJ32_NEWTON_OK(a) ((a) >= 0x1p-125 && (a) <= 0x1p125)
static inline double fj32_sqrt_deriv_core(double x) {
    double r = (double)(1.0f / sqrtf((float)x));
    return r * (0.75 - (0.25 * x) * (r * r)); /* 0.5 r (1.5 - 0.5 x r^2) */
}
/* ---- native float32 sqrt' = 0.5/sqrt(x): float arithmetic and fmaf ------------------
   For a float32 x in [2^-100, FLT_MAX] (FJ32N_SQRTD_OK): s = sqrtf(x) and q = 0.5f/s are
   correctly rounded, and their residuals are exact floats, formed by fmaf:
   rq = 0.5 - q s (the remainder of a correctly rounded quotient) and e = x - s^2 (of a
   correctly rounded root; x >= 2^-100 keeps e a multiple of 2^-146, so representable).
   With a = rq/(q s) and b = e/s^2 (|a|, |b| <= ~2^-22),
   0.5/sqrt(x) = (0.5/s) (1 + b)^(-1/2) = q (1 + a)(1 - b/2 + O(b^2)), and
   q (a - b/2) = 2q (rq - e q^2) (1 + O(a)). So y = q + 2q c, c = rq - (e q) q, errs before
   its one rounding (the final fmaf) by the dropped second-order terms (~2^-45 relative)
   and c's three roundings (~3 2^-24 |2c| <= 2^-44): the result is within 0.5 + 2^-20 ulp
   (faithful; the exhaustive maximum is in docs/guide/precision.rst). fmaf is exact in
   every SIMD version and in libm (the baseline), so every path gives the same bits. */
#define FJ32N_SQRTD_OK(x) ((x) >= 0x1p-100f && (x) <= 0x1.fffffep127f)
/* written once for V = float (fmaf, sqrtf) and the 16- and 8-lane vectors of the single-op
   VJP (FJ32N_VJP1_VEC: the FMA and square-root intrinsics; the same correctly rounded or
   exact operations, so the same bits) */
#define FJ32N_SQRTD_OF(V, FMA, SQRT, x, y)                                                   \
    do {                                                                                     \
        V s_ = SQRT(x);                                                                      \
        V q_ = FJ32N_K(V, 0.5f) / s_;                                                        \
        V rq_ = FMA(-q_, s_, FJ32N_K(V, 0.5f)); /* 0.5 - q s, exact */                       \
        V e_ = FMA(-s_, s_, (x));               /* x - s^2, exact */                         \
        V c_ = rq_ - (e_ * q_) * q_;                                                         \
        (y) = FMA(q_ + q_, c_, q_);                                                          \
    } while (0)
static inline float fj32n_sqrt_deriv(float x) {
    float y;
    FJ32N_SQRTD_OF(float, fmaf, sqrtf, x, y);
    return y;
}
/* a lane of a stage (a double) that fj32n_sqrt_deriv takes: a float32 in its range */
static inline int fj32n_sqrtd_lane_ok(double x) {
    float xf = (float)x;
    return (double)xf == x && FJ32N_SQRTD_OK(xf);
}
/* reciprocal'(x) = -1/x^2: +-0 give -inf, +-inf -0, NaN NaN. */
static inline double fj32_recip_deriv(double x) { return -1.0 / (x * x); }

/* ---- native float32 reciprocal' = -1/x^2: float arithmetic and fmaf ------------------
   For a float32 x with 2^-50 <= |x| <= 2^63 (FJ32N_RECIPD_OK): p = x x rounded and its
   exact remainder pl = x^2 - p (fmaf; |x| >= 2^-50 keeps pl a multiple of 2^-146, so
   representable); q = 1/p correctly rounded (p <= 2^126: q normal) and its exact residual
   r = 1 - q p (fmaf). Then 1/x^2 = 1/(p + pl) = q (1 + r + O(r^2)) (1 - pl/p + O(2^-48))
   = q (1 + r - pl q + O(2^-46)) (pl/p = pl q (1 + O(r))). y = q + q (r - pl q): the inner
   fmaf errs by <= 2^-24 of |r - pl q| <= ~2^-23, the outer rounds once: within
   0.5 + 2^-21 ulp before the exact negation (faithful; the exhaustive maximum is in
   docs/guide/precision.rst). fmaf is exact on every path: the same bits everywhere. */
#define FJ32N_RECIPD_OK(a) ((a) >= 0x1p-50f && (a) <= 0x1p63f) /* a = |x| */
#define FJ32N_RECIPD_OF(V, FMA, x, y)                                                        \
    do {                                                                                     \
        V p_ = (x) * (x);                                                                    \
        V pl_ = FMA((x), (x), -p_);                 /* x^2 - p, exact */                     \
        V q_ = FJ32N_K(V, 1.0f) / p_;                                                        \
        V r_ = FMA(-q_, p_, FJ32N_K(V, 1.0f)); /* 1 - q p, exact */                          \
        (y) = -FMA(q_, FMA(-pl_, q_, r_), q_);                                               \
    } while (0)
static inline float fj32n_recip_deriv(float x) {
    float y;
    FJ32N_RECIPD_OF(float, fmaf, x, y);
    return y;
}
static inline int fj32n_recipd_lane_ok(double x) {
    float xf = (float)x;
    return (double)xf == x && FJ32N_RECIPD_OK(fabsf(xf));
}

/* ---- tiles: xs (m <= FJ_TILE_TMP) to outputs that do not overlap it ------------------ */
/* d[k] = sqrt'(xs[k]): the native float32 routine (fj32n_sqrt_deriv) for the lanes
   fj32n_sqrtd_lane_ok accepts (all of them, usually: one vectorised pass), the double one
   for the others (the choice depends on the lane alone), the plain expression for its
   rare lanes. */
FJ_BODY void fj32_sqrt_deriv_tile(const double* xs, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0, other = 0;
    for (k = 0; k < m; k++) other |= !fj32n_sqrtd_lane_ok(xs[k]);
    if (!other) {
        for (k = 0; k < m; k++) d[k] = (double)fj32n_sqrt_deriv((float)xs[k]);
        return;
    }
    for (k = 0; k < m; k++) {
        int ok = fj32n_sqrtd_lane_ok(xs[k]);
        double n = (double)fj32n_sqrt_deriv(ok ? (float)xs[k] : 1.0f);
        double o = fj32_sqrt_deriv_core(FJ32_NEWTON_OK(xs[k]) ? xs[k] : 1.0);
        d[k] = ok ? n : o;
    }
    for (k = 0; k < m; k++) rare |= !fj32n_sqrtd_lane_ok(xs[k]) && !FJ32_NEWTON_OK(xs[k]);
    if (rare)
        for (k = 0; k < m; k++)
            if (!fj32n_sqrtd_lane_ok(xs[k]) && !FJ32_NEWTON_OK(xs[k])) d[k] = 0.5 / sqrt(xs[k]);
}
/* d[k] = reciprocal'(xs[k]): the native float32 routine for the lanes fj32n_recipd_lane_ok
   accepts, fj32_recip_deriv (double) for the others, lane by lane. */
FJ_BODY void fj32_recip_deriv_tile(const double* xs, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int other = 0;
    for (k = 0; k < m; k++) other |= !fj32n_recipd_lane_ok(xs[k]);
    if (!other) {
        for (k = 0; k < m; k++) d[k] = (double)fj32n_recip_deriv((float)xs[k]);
        return;
    }
    for (k = 0; k < m; k++) {
        int ok = fj32n_recipd_lane_ok(xs[k]);
        double n = (double)fj32n_recip_deriv(ok ? (float)xs[k] : 1.0f);
        d[k] = ok ? n : fj32_recip_deriv(xs[k]);
    }
}
/* exp: the native float32 routine for the lanes fj32n_exp_lane_ok accepts (all of them,
   usually: one vectorised pass), fj32_exp_main for the others. */
FJ_BODY void fj32_exp_tile(const double* xs, double* y, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0, other = 0;
    for (k = 0; k < m; k++) other |= !fj32n_exp_lane_ok(xs[k]);
    if (!other) {
        for (k = 0; k < m; k++) y[k] = (double)fj32n_exp_core((float)xs[k]);
        return;
    }
    for (k = 0; k < m; k++) {
        double e = (double)fj32n_exp_core(fj32n_exp_lane_ok(xs[k]) ? (float)xs[k] : 0.0f);
        y[k] = fj32n_exp_lane_ok(xs[k]) ? e : fj32_exp_main(xs[k]);
    }
    for (k = 0; k < m; k++) rare |= FJ32_EXP_RARE(xs[k]);
    if (rare)
        for (k = 0; k < m; k++)
            if (FJ32_EXP_RARE(xs[k])) y[k] = exp(xs[k]);
}

/* v = tanh, d = sech^2 (either may be NULL). sech^2: the native routine (fj32n_sech2) for
   the lanes fj32n_lane_ok(x, FJ32N_TANH_MAX) accepts, the double one for the others (the
   choice depends on the lane alone). tanh: the double routine. */
FJ_BODY void fj32_tanh_tile(const double* xs, double* v, double* d, ptrdiff_t m) {
    double q[FJ_TILE_TMP];
    ptrdiff_t k;
    int rare = 0, other = 0;
    if (d != NULL) {
        for (k = 0; k < m; k++) other |= !fj32n_lane_ok(xs[k], FJ32N_TANH_MAX);
        if (!other) fj32n_sig_tile(2, xs, NULL, d, m);
    }
    if (v == NULL && !other) return;
    for (k = 0; k < m; k++) q[k] = fj32_q(fabs(xs[k]));
    if (v != NULL)
        for (k = 0; k < m; k++) v[k] = fj32_tanh_from(xs[k], q[k]);
    if (d != NULL && other) {
        for (k = 0; k < m; k++) {
            int ok = fj32n_lane_ok(xs[k], FJ32N_TANH_MAX);
            double n = (double)fj32n_sech2(ok ? (float)xs[k] : 0.0f);
            d[k] = ok ? n : fj32_sech2_from(xs[k], q[k]);
        }
        for (k = 0; k < m; k++) rare |= FJ32_SECH2_RARE(xs[k]);
        if (rare)
            for (k = 0; k < m; k++)
                if (FJ32_SECH2_RARE(xs[k])) d[k] = fj_sech2_far(xs[k]);
    }
}

/* v = sigmoid, d = sigmoid' (neither NULL): both from one exponential and one division
   (fj32n_sig_tile, fj32n_sigmoid_vd) for the lanes fj32n_lane_ok(x, FJ32N_SIGD_MAX)
   accepts, the double routine for the others (the choice depends on the lane alone). */
FJ_BODY void fj32_sigmoid_tile(const double* xs, double* v, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0, other = 0;
    for (k = 0; k < m; k++) other |= !fj32n_lane_ok(xs[k], FJ32N_SIGD_MAX);
    if (!other) {
        fj32n_sig_tile(0, xs, v, d, m);
        return;
    }
    for (k = 0; k < m; k++) {
        int ok = fj32n_lane_ok(xs[k], FJ32N_SIGD_MAX);
        double nd, nv = fj32n_sigmoid_vd(ok ? xs[k] : 0.0, &nd);
        fj32_sigmoid_from(xs[k], &v[k], &d[k]);
        v[k] = ok ? nv : v[k];
        d[k] = ok ? nd : d[k];
    }
    for (k = 0; k < m; k++) rare |= FJ32_SIGMOID_RARE(xs[k]);
    if (rare)
        for (k = 0; k < m; k++)
            if (FJ32_SIGMOID_RARE(xs[k])) fj_sigmoid_far(xs[k], &v[k], &d[k]);
}

/* ---- whole arrays (the chain interpreter's stages): y == x allowed ------------------- */
FJ_BODY void fj32_exp_acc_n_body(double* y, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        fj32_exp_tile(xs, y + i, m);
    }
}
FJ_MULTI(fj32_exp_acc_n, (double* y, const double* x, ptrdiff_t n), (y, x, n))

/* The chain interpreter's float32 sqrt' stage; d must not overlap x. */
FJ_BODY void fj32_sqrt_deriv_n_body(double* d, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i += FJ_TILE_TMP)
        fj32_sqrt_deriv_tile(x + i, d + i, n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP);
}
FJ_MULTI_FMA(fj32_sqrt_deriv_n, (double* d, const double* x, ptrdiff_t n), (d, x, n))

/* The chain interpreter's float32 reciprocal' stage; d must not overlap x. */
FJ_BODY void fj32_recip_deriv_n_body(double* d, const double* x, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i += FJ_TILE_TMP)
        fj32_recip_deriv_tile(x + i, d + i, n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP);
}
FJ_MULTI_FMA(fj32_recip_deriv_n, (double* d, const double* x, ptrdiff_t n), (d, x, n))

FJ_MAP_BODY(fj32_log_acc_n, fj32_log_core)
FJ_MULTI(fj32_log_acc_n, (double* y, const double* x, ptrdiff_t n), (y, x, n))

/* v[k] = tanh(x[k]), d[k] = sech^2(x[k]); v or d may be NULL; v may be x (d not). */
FJ_BODY void fj32_tanh_acc_n_body(double* v, double* d, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        fj32_tanh_tile(xs, v != NULL ? v + i : NULL, d != NULL ? d + i : NULL, m);
    }
}
FJ_MULTI_FMA(fj32_tanh_acc_n, (double* v, double* d, const double* x, ptrdiff_t n),
             (v, d, x, n))

/* sigmoid and sigmoid' tile by tile (fj_vmath.h's FJ_SIGMOID_ACC). */
FJ_SIGMOID_ACC(fj32_sigmoid_acc_n, fj32_sigmoid_tile)

/* The entry points for a float32 stage: these routines in the default mode, the float64
   ones (the mode's own arithmetic) otherwise. */
static void fj32_exp_n(double* y, const double* x, ptrdiff_t n) {
    if (fj_fast_math != 0) fj_exp_n(y, x, n);
    else fj32_exp_acc_n(y, x, n);
}

static void fj32_log_n(double* y, const double* x, ptrdiff_t n) {
    if (fj_fast_math != 0) fj_log_n(y, x, n);
    else fj32_log_acc_n(y, x, n);
}

static void fj32_tanh_n(double* v, double* d, const double* x, ptrdiff_t n) {
    if (fj_fast_math != 0) {
        if (d != NULL) fj_sech2_n(d, x, n);
        if (v != NULL) fj_tanh_n(v, x, n);
    } else {
        fj32_tanh_acc_n(v, d, x, n);
    }
}

static void fj32_sigmoid_n(double* v, double* d, const double* x, ptrdiff_t n) {
    if (fj_fast_math != 0) fj_sigmoid_n(v, d, x, n);
    else fj32_sigmoid_acc_n(v, d, x, n);
}

/* The derivative-only tile of a float32 single-op VJP (fj_vmath.h FJ_DERIV_TILE): d[k] =
   f'(x[k]) as a float32 stage computes it; returns 0 (nothing done) for the ops it does
   not cover and outside the default mode. */
FJ_BODY int fj32_deriv_tile(int code, const float* x, double* d, ptrdiff_t m) {
    double xs[FJ_TILE_TMP], ss[FJ_TILE_TMP];
    ptrdiff_t k;
    if (fj_fast_math != 0) return 0;
    switch (code) {
    case FJ_U_SQRT:
        for (k = 0; k < m; k++) xs[k] = (double)x[k];
        fj32_sqrt_deriv_tile(xs, d, m);
        return 1;
    case FJ_U_RECIPROCAL:
        for (k = 0; k < m; k++) xs[k] = (double)x[k];
        fj32_recip_deriv_tile(xs, d, m);
        return 1;
    case FJ_U_EXP:
        for (k = 0; k < m; k++) xs[k] = (double)x[k];
        fj32_exp_tile(xs, d, m);
        return 1;
    case FJ_U_TANH:
        for (k = 0; k < m; k++) xs[k] = (double)x[k];
        fj32_tanh_tile(xs, NULL, d, m);
        return 1;
    case FJ_U_SIGMOID:
        for (k = 0; k < m; k++) xs[k] = (double)x[k];
        fj32_sigmoid_tile(xs, ss, d, m);
        return 1;
    default:
        return 0;
    }
}

/* In a case of fj32_vjp1_body's switch: a tile whose every lane passes OK (a condition on
   xx[k]) runs the native float32 derivative F and, with a cotangent, the float32 product
   F(x) * t, then goes on to the next tile; any other tile leaves the switch for the
   per-lane path. (Not wrapped in do-while: its continue is the tile loop's.) */
#define FJ32N_VJP1_NATIVE(OK, F)                                                             \
    for (k = 0; k < m; k++) rare |= !(OK);                                                   \
    if (!rare) {                                                                             \
        if (t == NULL)                                                                       \
            for (k = 0; k < m; k++) oo[k] = F(xx[k]);                                        \
        else                                                                                 \
            for (k = 0; k < m; k++) oo[k] = F(xx[k]) * tt[k];                                \
        continue;                                                                            \
    }

/* The float32 single-op VJP of the ops with a native float32 derivative: out[k] =
   f'(x[k]) * t[k] (f'(x[k]) when t is NULL), tile by tile. A tile whose lanes are all in
   the native range runs FJ32N_VJP1_NATIVE (the float32 product); any other tile takes
   fj32_deriv_tile and rounds the double product once, which for the native lanes is the
   same float32 product (53 >= 2 * 24 + 2), so an element's bits never depend on its
   neighbours. out may be x or t (not a partial overlap). Returns 0 (nothing done) for
   the other ops and outside the default mode. */
FJ_BODY int fj32_vjp1_body(int code, const float* x, const float* t, float* out, ptrdiff_t n) {
    double d[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    if (fj_fast_math != 0) return 0;
    if (!(code == FJ_U_SQRT || code == FJ_U_RECIPROCAL || code == FJ_U_EXP
          || code == FJ_U_TANH || code == FJ_U_SIGMOID))
        return 0;
    if (code == FJ_U_TANH || code == FJ_U_SIGMOID) {
        /* every lane in the range (the common case): one call for the whole block, whose
           software pipeline would otherwise restart every tile (~8% of the time); the
           same per-lane choice, so the same bits */
        uint32_t top = 0, u; /* the largest |x| as bits: NaN lies above inf */
        for (k = 0; k < n; k++) {
            memcpy(&u, x + k, 4);
            u &= 0x7fffffffu;
            top = u > top ? u : top;
        }
        if (top <= fj_asu32(code == FJ_U_TANH ? FJ32N_TANH_MAX : FJ32N_SIGD_MAX)) {
            fj32n_sigd_vjp(code == FJ_U_TANH ? 2 : 0, x, t, out, n);
            return 1;
        }
    }
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        const float* xx = x + i;
        const float* tt = t != NULL ? t + i : NULL;
        float* oo = out + i;
        int rare = 0;
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        switch (code) {
        case FJ_U_SQRT:
            /* native float32, the product in float as for exp below */
            FJ32N_VJP1_NATIVE(FJ32N_SQRTD_OK(xx[k]), fj32n_sqrt_deriv);
            break;
        case FJ_U_RECIPROCAL:
            /* native float32, the product in float as for exp below */
            FJ32N_VJP1_NATIVE(FJ32N_RECIPD_OK(fabsf(xx[k])), fj32n_recip_deriv);
            break;
        case FJ_U_EXP:
            /* native float32: (float)((double)e * (double)t) is the float product e * t
               (53 >= 2 * 24 + 2: rounding twice is innocuous), computed on float lanes */
            FJ32N_VJP1_NATIVE(FJ32N_EXP_OK(xx[k]), fj32n_exp_core);
            break;
        case FJ_U_TANH: /* native float32 (fj32n_sigd_vjp), the product in float */
            for (k = 0; k < m; k++) rare |= !(fabsf(xx[k]) <= FJ32N_TANH_MAX);
            if (!rare) {
                fj32n_sigd_vjp(2, xx, tt, oo, m);
                continue;
            }
            break;
        default: /* FJ_U_SIGMOID, likewise */
            for (k = 0; k < m; k++) rare |= !(fabsf(xx[k]) <= FJ32N_SIGD_MAX);
            if (!rare) {
                fj32n_sigd_vjp(0, xx, tt, oo, m);
                continue;
            }
        }
        fj32_deriv_tile(code, xx, d, m);
        if (t == NULL)
            for (k = 0; k < m; k++) oo[k] = (float)d[k];
        else
            for (k = 0; k < m; k++) oo[k] = (float)(d[k] * (double)tt[k]);
    }
    return 1;
}
FJ_BODY void fj32_vjp1_void_body(int* done, int code, const float* x, const float* t,
                                 float* out, ptrdiff_t n) {
    *done = fj32_vjp1_body(code, x, t, out, n);
}
FJ_MULTI_FMA(fj32_vjp1_void, (int* done, int code, const float* x, const float* t, float* out,
                          ptrdiff_t n), (done, code, x, t, out, n))

/* ---- the float32 single-op VJP of sqrt and reciprocal in one pass ---------------------
   One vector of 16 (AVX-512) or 8 (AVX2) floats at a time: x is loaded once, the lanes are
   checked against the native range (FJ32N_SQRTD_OK, FJ32N_RECIPD_OK) and the native
   derivative (FJ32N_SQRTD_OF, FJ32N_RECIPD_OF: the scalar routines' operations) times t is
   stored, all in registers. fj32_vjp1_body ran a checking pass over
   each 256-element tile first and its plain-C loops left gcc to version them for aliasing
   (out = x or t ran scalar). A vector with a lane outside the native range, and the last
   n mod W elements, go to fj32_vjp1_body as they are, which decides lane by lane: so every
   element has the bits it had (the float32 product f'(x) * t; the double route rounded
   once outside the native range), whatever its neighbours. Each vector's x and t are
   loaded before its store: out may be x or t. (exp stays in fj32_vjp1_body: the same loop
   with an exp of 16 lanes measured 4% slower than gcc's vectorisation of the tile loop.) */
#if FJ_X86_DISPATCH
/* every lane in [lo, hi] (NaN is not) */
#define FJ32N_ALL_IN16(v, lo, hi)                                                            \
    ((_mm512_cmp_ps_mask((v), _mm512_set1_ps(lo), _CMP_GE_OQ)                                \
      & _mm512_cmp_ps_mask((v), _mm512_set1_ps(hi), _CMP_LE_OQ)) == 0xffff)
#define FJ32N_ALL_IN8(v, lo, hi)                                                             \
    (_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps((v), _mm256_set1_ps(lo), _CMP_GE_OQ),    \
                                      _mm256_cmp_ps((v), _mm256_set1_ps(hi), _CMP_LE_OQ)))   \
     == 0xff)
/* The loop for one op: CHECK(x) is what the range applies to (x or |x|), DERIV(x, y) the
   derivative. Two vectors per step (half the loop and branch overhead per element), then
   one; a step with a lane out of range hands its 2W (or W) elements to fj32_vjp1_body. */
#define FJ32N_VJP1_STEP1(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV, TIMES_T)              \
    for (; i + (W) <= n; i += (W)) {                                                         \
        V x0_ = PFX##_loadu_ps(x + i), d0_;                                                  \
        if (!ALL_IN(CHECK(x0_, ABS), LO, HI)) {                                              \
            fj32_vjp1_void(&done, code, x + i, t != NULL ? t + i : NULL, out + i, (W));      \
            continue;                                                                        \
        }                                                                                    \
        DERIV(x0_, d0_);                                                                     \
        if (TIMES_T) d0_ = d0_ * PFX##_loadu_ps(t + i);                                      \
        PFX##_storeu_ps(out + i, d0_);                                                       \
    }
#define FJ32N_VJP1_STEP2(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV, TIMES_T)              \
    for (; i + 2 * (W) <= n; i += 2 * (W)) {                                                 \
        V x0_ = PFX##_loadu_ps(x + i), x1_ = PFX##_loadu_ps(x + i + (W)), d0_, d1_;          \
        if (!(ALL_IN(CHECK(x0_, ABS), LO, HI) & ALL_IN(CHECK(x1_, ABS), LO, HI))) {          \
            fj32_vjp1_void(&done, code, x + i, t != NULL ? t + i : NULL, out + i, 2 * (W));  \
            continue;                                                                        \
        }                                                                                    \
        DERIV(x0_, d0_);                                                                     \
        DERIV(x1_, d1_);                                                                     \
        if (TIMES_T) {                                                                       \
            d0_ = d0_ * PFX##_loadu_ps(t + i);                                               \
            d1_ = d1_ * PFX##_loadu_ps(t + i + (W));                                         \
        }                                                                                    \
        PFX##_storeu_ps(out + i, d0_);                                                       \
        PFX##_storeu_ps(out + i + (W), d1_);                                                 \
    }                                                                                        \
    FJ32N_VJP1_STEP1(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV, TIMES_T)
#define FJ32N_VJP1_VEC(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV)                         \
    if (t != NULL) {                                                                         \
        FJ32N_VJP1_STEP2(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV, 1)                    \
    } else {                                                                                 \
        FJ32N_VJP1_STEP2(V, W, PFX, ALL_IN, ABS, CHECK, LO, HI, DERIV, 0)                    \
    }
#define FJ32N_ON_X(v, ABS) (v)
#define FJ32N_ON_ABS(v, ABS) ABS(v)
#define FJ32N_ABS16(v) FJ32N_AS_F16(FJ32N_AS_U16(v) & 0x7fffffffu)
#define FJ32N_ABS8(v) FJ32N_AS_F8(FJ32N_AS_U8(v) & 0x7fffffffu)
#define FJ32N_SQRTD16(x, y) FJ32N_SQRTD_OF(__m512, _mm512_fmadd_ps, _mm512_sqrt_ps, x, y)
#define FJ32N_SQRTD8(x, y) FJ32N_SQRTD_OF(__m256, _mm256_fmadd_ps, _mm256_sqrt_ps, x, y)
#define FJ32N_RECIPD16(x, y) FJ32N_RECIPD_OF(__m512, _mm512_fmadd_ps, x, y)
#define FJ32N_RECIPD8(x, y) FJ32N_RECIPD_OF(__m256, _mm256_fmadd_ps, x, y)
#define FJ32N_VJP1_OPS(V, W, PFX, ALL_IN, ABS, SQRTD, RECIPD)                                \
    do {                                                                                     \
        ptrdiff_t i = 0;                                                                     \
        int done = 0;                                                                        \
        if (code == FJ_U_SQRT) {                                                             \
            FJ32N_VJP1_VEC(V, W, PFX, ALL_IN, ABS, FJ32N_ON_X, 0x1p-100f, 0x1.fffffep127f,   \
                           SQRTD)                                                            \
        } else {                                                                             \
            FJ32N_VJP1_VEC(V, W, PFX, ALL_IN, ABS, FJ32N_ON_ABS, 0x1p-50f, 0x1p63f, RECIPD)  \
        }                                                                                    \
        if (i < n) fj32_vjp1_void(&done, code, x + i, t != NULL ? t + i : NULL, out + i, n - i); \
    } while (0)
__attribute__((target("avx512f,fma"))) static void fj32n_vjp1_avx512(
    int code, const float* x, const float* t, float* out, ptrdiff_t n) {
    FJ32N_VJP1_OPS(__m512, 16, _mm512, FJ32N_ALL_IN16, FJ32N_ABS16, FJ32N_SQRTD16,
                   FJ32N_RECIPD16);
}
__attribute__((target("avx2,fma"))) static void fj32n_vjp1_avx2(
    int code, const float* x, const float* t, float* out, ptrdiff_t n) {
    FJ32N_VJP1_OPS(__m256, 8, _mm256, FJ32N_ALL_IN8, FJ32N_ABS8, FJ32N_SQRTD8, FJ32N_RECIPD8);
}
#endif

/* The float32 single-op VJP (fj_vmath.h FJ_VJP1): sqrt and reciprocal in the vector
   loops above where the CPU has them, every covered op in fj32_vjp1_body otherwise (the
   baseline: the same bits). Returns 0 (nothing done) for the ops it does not cover and
   outside the default mode. */
static int fj32_vjp1(int code, const float* x, const float* t, float* out, ptrdiff_t n) {
    int done = 0;
#if FJ_X86_DISPATCH
    if (fj_fast_math == 0 && (code == FJ_U_SQRT || code == FJ_U_RECIPROCAL)) {
        if (fj_has_fma < 0) fj_has_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        if (fj_cpu_level == 2) {
            fj32n_vjp1_avx512(code, x, t, out, n);
            return 1;
        }
        if (fj_cpu_level == 1 && fj_has_fma) {
            fj32n_vjp1_avx2(code, x, t, out, n);
            return 1;
        }
    }
#endif
    fj32_vjp1_void(&done, code, x, t, out, n);
    return done;
}

#endif /* FJ_VMATH32_H */
