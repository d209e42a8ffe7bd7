/* Vectorised sin and cos for fastjac's element-wise kernels: float64 (within 1 ulp) and
   float32-sized (a double result within ~2^-31 relative error, faithfully rounded to
   float32).

   Included by fj_vmath.h (it uses its helpers: FJ_MULTI, FJ_BODY, FJ_SHIFT, FJ_SPLIT,
   FJ_TILE_TMP, fj_asu64). Every loop is plain C compiled for AVX-512F, AVX2 and the
   baseline (FJ_MULTI), with fp contraction off, so the three give the same bits; lanes the
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
   stage's input may be any double, e.g. x*x of a float32 x), with the reduction and the
   polynomials sized for a 24-bit result:

   x = k pi/2 + r, k = round(2x/pi), for |x| < 2^20 (|k| < 2^20): pi/2 in the three parts of
   the float64 code (33 + 33 + 53 bits); k p1 and k p2 are exact, x - k p1 is exact
   (Sterbenz: k p1 is within a factor 2 of x once k != 0), and the two last subtractions
   either are exact (Sterbenz again, when r is small) or round at 2^-53 of r: r has a
   relative error of a few 2^-53 however close x is to a multiple of pi/2 (the 2^-122
   left out of pi/2, times |k| < 2^20, is far below any |r| a float32 or a product of two
   float32s can leave). Then
     sin(r) = r + r z S(z),  cos(r) = 1 + z C(z),  z = r^2, |r| <= pi/4,
   S and C of degree 3 fitted by _gen_vtrig_poly.py (relative errors 2^-32.4 of S, which
   enters sin scaled by z/6 < 0.11, and 2^-30.6 of C, which enters cos scaled by < 0.44):
   ~2^-31.8 relative error in all, that is < 0.51 ulp once rounded to float32. Only the
   function asked for is evaluated (a VJP of sin needs cos only).
   Lanes with |x| >= 2^20 (about 2^20 pi/2 <= |x| of float32 inputs), inf and NaN are
   redone by libm's sin and cos (< 1 ulp of double, so faithful in float32). */
/* FJ32_SIN_S: relative error 2^-32.4 of S (_gen_vtrig_poly.py) */
#define FJ32_SIN_S0 -0x1.555555545a593p-3
#define FJ32_SIN_S1 0x1.11110de869ddbp-7
#define FJ32_SIN_S2 -0x1.a013a03733f58p-13
#define FJ32_SIN_S3 0x1.6dbc07436120ap-19
/* FJ32_COS_C: relative error 2^-30.6 of C (_gen_vtrig_poly.py) */
#define FJ32_COS_C0 -0x1.fffffffa8f772p-2
#define FJ32_COS_C1 0x1.55554c9bf461ap-5
#define FJ32_COS_C2 -0x1.6c0df78bc6e55p-10
#define FJ32_COS_C3 0x1.9a6a937514f62p-16
#define FJ32_TRIG_MAX 0x1p20

/* One lane, |x| < FJ32_TRIG_MAX: sin(x) (cosine 0) or cos(x) (cosine 1) (garbage for
   larger |x|). cos(x) = sin(x + pi/2) shifts the quadrant by one, and on each quadrant one
   polynomial is evaluated, its coefficients chosen per lane: b + (b z) P(z) with b = r,
   P = S (sin r) or b = 1, P = C (cos r; 1 z = z exactly), negated in quadrants 2 and 3. */
static inline double fj32_trig_core(double x, uint64_t cosine) {
    double kd = x * FJ_INV_PIO2 + FJ_SHIFT;
    uint64_t q = fj_asu64(kd) + cosine;
    kd -= FJ_SHIFT;
    double r = ((x - kd * FJ_PIO2_1) - kd * FJ_PIO2_2) - kd * FJ_PIO2_3;
    double z = r * r;
    uint64_t odd = q & 1;
    double b = odd ? 1.0 : r;
    double p3 = odd ? FJ32_COS_C3 : FJ32_SIN_S3;
    double p2 = odd ? FJ32_COS_C2 : FJ32_SIN_S2;
    double p1 = odd ? FJ32_COS_C1 : FJ32_SIN_S1;
    double p0 = odd ? FJ32_COS_C0 : FJ32_SIN_S0;
    double v = b + (b * z) * (p0 + z * (p1 + z * (p2 + z * p3)));
    v = (q & 2) ? -v : v;
    return (x == 0.0 && !cosine) ? x : v;  /* sin(-0) = -0 */
}
#define FJ32_TRIG_OK(x) (fabs(x) < FJ32_TRIG_MAX)

/* y[k] = sin(x[k]) (cosine 0), cos(x[k]) (cosine 1) or, with neg, their negations, sized
   for a float32 result; y may be x (not a partial overlap). */
FJ_BODY void fj32_trig_n_body(double* y, const double* x, ptrdiff_t n, int cosine, int neg) {
    double xs[FJ_TILE_TMP], ys[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    uint64_t cs = (uint64_t)cosine;
    int bad;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) xs[k] = x[i + k];
        for (k = 0; k < m; k++) ys[k] = fj32_trig_core(xs[k], cs);
        bad = 0;
        for (k = 0; k < m; k++) bad |= !FJ32_TRIG_OK(xs[k]);
        if (bad)
            for (k = 0; k < m; k++)
                if (!FJ32_TRIG_OK(xs[k])) ys[k] = cosine ? cos(xs[k]) : sin(xs[k]);
        if (neg)
            for (k = 0; k < m; k++) y[i + k] = -ys[k];
        else
            for (k = 0; k < m; k++) y[i + k] = ys[k];
    }
}
FJ_MULTI(fj32_trig_n, (double* y, const double* x, ptrdiff_t n, int cosine, int neg),
         (y, x, n, cosine, neg))

/* s[k] = sin(x[k]) and/or c[k] = cos(x[k]) (either may be NULL; s or c may be x, not
   both), sized for a float32 result. */
static void fj32_sincos_n(double* s, double* c, const double* x, ptrdiff_t n) {
    if (c == x) {
        if (s != NULL) fj32_trig_n(s, x, n, 0, 0);
        fj32_trig_n(c, x, n, 1, 0);
    } else {
        if (c != NULL) fj32_trig_n(c, x, n, 1, 0);
        if (s != NULL) fj32_trig_n(s, x, n, 0, 0);
    }
}

/* d[k] = cos(x[k]) (neg_sin 0: sin') or -sin(x[k]) (neg_sin 1: cos') for float32 x,
   k < m <= FJ_TILE_TMP: the derivative-only tile of the single-op VJP (FJ_DERIV_TILE), the
   same bits as fj32_sincos_n on the widened x (and a negation). */
FJ_BODY void fj32_trig_deriv_tile(int neg_sin, const float* x, double* d, ptrdiff_t m) {
    ptrdiff_t k;
    int bad = 0;
    if (neg_sin) {
        for (k = 0; k < m; k++) {
            double xd = (double)x[k];
            d[k] = -fj32_trig_core(xd, 0);
            bad |= !FJ32_TRIG_OK(xd);
        }
    } else {
        for (k = 0; k < m; k++) {
            double xd = (double)x[k];
            d[k] = fj32_trig_core(xd, 1);
            bad |= !FJ32_TRIG_OK(xd);
        }
    }
    if (bad)
        for (k = 0; k < m; k++)
            if (!FJ32_TRIG_OK((double)x[k])) d[k] = neg_sin ? -sin((double)x[k]) : cos((double)x[k]);
}

#endif /* FJ_VTRIG_H */
