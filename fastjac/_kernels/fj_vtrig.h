/* Vectorised sin and cos for fastjac's element-wise kernels: float64 (within 1 ulp) and
   float32-sized (a double result within ~2^-33 relative error, faithfully rounded to
   float32).

   Included by fj_vmath.h (it uses its helpers: FJ_MULTI, FJ_BODY, FJ_SHIFT, FJ_SPLIT,
   FJ_TILE_TMP, fj_asu64). Every loop is plain C compiled for AVX-512F, AVX2 and the
   baseline (FJ_MULTI, FJ32_MULTI), with fp contraction off (explicit, correctly rounded
   fma only, in the float32 code), so the three give the same bits; lanes the
   vector code cannot do (large |x|, inf, NaN, and for float64 x near a multiple of pi/2)
   are redone by libm after the vector pass. Used in the default ("accurate") precision
   mode; "strict" calls libm and "fast" libmvec (fj_sin_n & co. in fj_vmath.h). */
#ifndef FJ_VTRIG_H
#define FJ_VTRIG_H

#ifndef FJ_VMATH_H
#error "fj_vtrig.h is included by fj_vmath.h"
#endif

/* ---- float64: sin and cos within 1 ulp ------------------------------------------------

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
FJ_BODY void fj_sincos_acc_n_body(double* s, double* c, const double* x, ptrdiff_t n) {
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
FJ_MULTI(fj_sincos_acc_n, (double* s, double* c, const double* x, ptrdiff_t n), (s, c, x, n))

/* ---- float32-sized: sin and cos for a float32 result ----------------------------------

   A float32 call computes in double (the chain interpreter's tiles are double, and a
   stage's input may be any double, e.g. x*x of a float32 x), with a reduction and a
   polynomial sized for a 24-bit result, and with fused multiply-adds:

   sin: x = m pi/2 + r with m = 2n even, n = round(x/pi), sin(x) = (-1)^n sin(r);
   cos: m = 2n + 1 odd, n = round(x/pi - 1/2), cos(x) = (-1)^(n+1) sin(r);
   |r| <= pi/2, r = fma(-m, P2, fma(-m, P1, x)) with pi/2 = P1 + P2 to 2^-107 relative:
   each fma rounds once, at 2^-53 of its result, so for |x| < 2^20 (|m| < 2^20) r has a
   relative error of a few 2^-53 however close x is to a zero of the function (the
   2^-107 pi/2 m left out is far below any |r| a float32, or a product of two, can leave).
   Then sin(r) = r + r z S(z), z = r^2, S of degree 4 fitted by _gen_vtrig_poly.py
   (relative error 2^-32.4 of S, which enters sin(r) scaled by < 0.57): ~2^-33 relative
   error in all, < 0.51 ulp once rounded to float32. One polynomial for both functions
   and no per-lane choice of coefficients: a VJP of sin evaluates cos only.
   Lanes with |x| >= 2^20, inf and NaN are redone by libm's double sin and cos (< 1 ulp of
   double, so faithful in float32).

   fma is correctly rounded wherever it runs: the AVX2 and AVX-512 versions use the
   instruction (FJ32_MULTI: their targets include FMA, and AVX2 is used only when the CPU
   has FMA), the baseline calls the C library's fma (exact, much slower), other
   architectures their instruction: all give the same bits (-ffp-contract=off forms no
   other fused operation). */
/* FJ32_SIN_S: relative error 2^-32.4 of S (_gen_vtrig_poly.py) */
#define FJ32_SIN_S0 -0x1.555555544ee3ep-3
#define FJ32_SIN_S1 0x1.11110fcc41bb7p-7
#define FJ32_SIN_S2 -0x1.a018fe3b762e2p-13
#define FJ32_SIN_S3 0x1.7195520acadb2p-19
#define FJ32_SIN_S4 -0x1.9d908a5657f13p-26
#define FJ32_INV_PI 0x1.45f306dc9c883p-2
#define FJ32_PIO2_1 0x1.921fb54442d18p+0
#define FJ32_PIO2_2 0x1.1a62633145c07p-54
#define FJ32_TRIG_MAX 0x1p20

/* One lane, |x| < FJ32_TRIG_MAX: sin(x) (cosine 0, half 0.0) or cos(x) (cosine 1,
   half -0.5); garbage for larger |x|. */
static inline double fj32_trig_core(double x, uint64_t cosine, double half) {
    double kd = fma(x, FJ32_INV_PI, half) + FJ_SHIFT;    /* n in the low bits */
    uint64_t sign = (fj_asu64(kd) + cosine) << 63;      /* (-1)^n, (-1)^(n+1) */
    kd -= FJ_SHIFT;
    double m = kd + kd + (double)cosine;
    double r = fma(-m, FJ32_PIO2_2, fma(-m, FJ32_PIO2_1, x));
    double z = r * r;
    double v = fma(r * z, fma(z, fma(z, fma(z, fma(z, FJ32_SIN_S4, FJ32_SIN_S3), FJ32_SIN_S2),
                                     FJ32_SIN_S1), FJ32_SIN_S0), r);
    v = fj_asf64(fj_asu64(v) ^ sign);
    return (x == 0.0 && !cosine) ? x : v;  /* sin(-0) = -0 */
}
#define FJ32_TRIG_OK(x) (fabs(x) < FJ32_TRIG_MAX)


/* y[k] = sin(x[k]) (cosine 0), cos(x[k]) (cosine 1) or, with neg, their negations, sized
   for a float32 result; y may be x (not a partial overlap). */
FJ_BODY void fj32_trig_n_body(double* y, const double* x, ptrdiff_t n, int cosine, int neg) {
    double ys[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    uint64_t cs = cosine ? 1 : 0;
    double half = cosine ? -0.5 : 0.0;
    int bad;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        bad = 0;
        for (k = 0; k < m; k++) {
            double xd = x[i + k];
            ys[k] = fj32_trig_core(xd, cs, half);
            bad |= !FJ32_TRIG_OK(xd);
        }
        if (bad)
            for (k = 0; k < m; k++)
                if (!FJ32_TRIG_OK(x[i + k])) ys[k] = cosine ? cos(x[i + k]) : sin(x[i + k]);
        if (neg)
            for (k = 0; k < m; k++) y[i + k] = -ys[k];
        else
            for (k = 0; k < m; k++) y[i + k] = ys[k];
    }
}
FJ32_MULTI(fj32_trig_n, (double* y, const double* x, ptrdiff_t n, int cosine, int neg),
           (y, x, n, cosine, neg))

/* s[k] = sin(x[k]) and c[k] = cos(x[k]) in one pass, the bits of fj32_trig_n's two with
   one range check and one store per result (the fused interpreter's sin and cos nodes
   need both, as value and derivative). s or c may be x (not both, no partial overlap):
   each chunk of x is copied to xs first, so the loop that writes s and c reads only xs
   and vectorises without alias checks. */
FJ_BODY void fj32_sincos2_n_body(double* s, double* c, const double* x, ptrdiff_t n) {
    double xs[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    int bad;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        bad = 0;
        for (k = 0; k < m; k++) {
            xs[k] = x[i + k];
            bad |= !FJ32_TRIG_OK(xs[k]);
        }
        {
            double* restrict sp = s + i;
            double* restrict cp = c + i;
            for (k = 0; k < m; k++) {
                sp[k] = fj32_trig_core(xs[k], 0, 0.0);
                cp[k] = fj32_trig_core(xs[k], 1, -0.5);
            }
            if (bad)
                for (k = 0; k < m; k++)
                    if (!FJ32_TRIG_OK(xs[k])) {
                        sp[k] = sin(xs[k]);
                        cp[k] = cos(xs[k]);
                    }
        }
    }
}
FJ32_MULTI(fj32_sincos2_n, (double* s, double* c, const double* x, ptrdiff_t n), (s, c, x, n))

/* s[k] = sin(x[k]) and/or c[k] = cos(x[k]) (either may be NULL; s or c may be x, not
   both), sized for a float32 result. */
static void fj32_sincos_n(double* s, double* c, const double* x, ptrdiff_t n) {
    if (s != NULL && c != NULL) {
        fj32_sincos2_n(s, c, x, n);
    } else if (c == x) {
        if (s != NULL) fj32_trig_n(s, x, n, 0, 0);
        fj32_trig_n(c, x, n, 1, 0);
    } else {
        if (c != NULL) fj32_trig_n(c, x, n, 1, 0);
        if (s != NULL) fj32_trig_n(s, x, n, 0, 0);
    }
}

/* d[k] = cos(x[k]) (neg_sin 0: sin') or -sin(x[k]) (neg_sin 1: cos') for float32 x,
   k < m <= FJ_TILE_TMP: the derivative-only tile of the single-op VJP (FJ_DERIV_TILE), the
   same bits as fj32_sincos_n on the widened x (and a negation). A function of its own
   (one call per tile), so that it is compiled with FMA. */
FJ_BODY void fj32_trig_deriv_body(int neg_sin, const float* x, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int bad = 0;
    if (neg_sin) {
        for (k = 0; k < m; k++) {
            double xd = (double)x[k];
            d[k] = -fj32_trig_core(xd, 0, 0.0);
            bad |= !FJ32_TRIG_OK(xd);
        }
    } else {
        for (k = 0; k < m; k++) {
            double xd = (double)x[k];
            d[k] = fj32_trig_core(xd, 1, -0.5);
            bad |= !FJ32_TRIG_OK(xd);
        }
    }
    if (bad)
        for (k = 0; k < m; k++)
            if (!FJ32_TRIG_OK((double)x[k]))
                d[k] = neg_sin ? -sin((double)x[k]) : cos((double)x[k]);
}
FJ32_MULTI(fj32_trig_deriv, (int neg_sin, const float* x, double* d, ptrdiff_t m),
           (neg_sin, x, d, m))

#endif /* FJ_VTRIG_H */
