/* Vectorised sin and cos for fastjac's element-wise kernels: float64 (within 1 ulp), native
   float32 (float arithmetic, 16 or 8 lanes, faithful: fj32n_sincos_core, the float32
   single-op loops fj32_trig_map) and float32-sized double (a double result within ~2^-33
   relative error, faithfully rounded to float32: the lanes the native routine does not
   take).

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

/* ---- native float32 sin and cos: float arithmetic, 16 lanes of AVX-512, 8 of AVX2 -------

   For a float32 x with |x| <= FJ32N_TRIG_MAX, sin(x) and cos(x) together, each faithfully
   rounded (within 1 ulp; the exhaustive maxima are in docs/guide/precision.rst):
   - k = round(x 2/pi) from one fmaf (a float 2/pi: |r| below may pass pi/4 by < 0.1%);
     x = k pi/2 + rh + rl with pi/2 = P1 + P2 + P3 in three floats (P1 + P2 + P3 within
     2^-76 of pi/2): t = x - k P1 is exact (a multiple of 2^-24 below 1 in magnitude for
     |k| < 2^20), k P2 = ph + pl exactly (fmaf), t - ph = rh + e exactly (TwoSum), and
     rl = e - pl - k P3 carries the rest to ~2^-48 of rh however close x lies to a
     multiple of pi/2 (the closest float32 in range is ~2^-29 away; its k P3 term is
     what keeps that lane's result faithful).
   - sin(rh + rl) = rh + (rh z S(z) + rl (1 - z/2)), z = rh^2, and
     cos(rh + rl) = w + ((((1 - w) - z/2) - zl/2) + (z^2 C(z) - rh rl)), w = 1 - z/2,
     with z + zl = rh^2 exactly (fmaf) and (1 - w) - z/2 the exact error of w (Fast2Sum),
     S and C of degree 3 in z with float coefficients (_gen_vtrig_poly.py). Each result is
     a leading term plus a correction below ~0.1 of it, whose own errors stay below ~0.2
     ulp of the result; the last addition rounds once.
   - the quadrant k mod 4 picks +-sin(r) or +-cos(r) (an exact sign flip); sin(-0) = -0.
   Lanes with larger |x|, inf or NaN take the float32-sized double routine above
   (fj32_trig_core, libm's sin and cos beyond FJ32_TRIG_MAX), one lane at a time: the
   choice depends on the lane alone, so an element's bits never depend on its neighbours.
   Plain C that gcc vectorises, compiled by FJ_MULTI_FMA: fmaf is exact on every level
   (the instruction, or libm's on the baseline), so AVX-512, AVX2 and the baseline give the
   same bits. */
/* FJ32N_SIN_S, FJ32N_COS_C: relative error 2^-25.0 (_gen_vtrig_poly.py) */
#define FJ32N_SIN_S0 -0x1.555556p-3f
#define FJ32N_SIN_S1 0x1.111192p-7f
#define FJ32N_SIN_S2 -0x1.a079c4p-13f
#define FJ32N_SIN_S3 0x1.8457f4p-19f
#define FJ32N_COS_C0 0x1.555556p-5f
#define FJ32N_COS_C1 -0x1.6c17c8p-10f
#define FJ32N_COS_C2 0x1.a0e32ap-16f
#define FJ32N_COS_C3 -0x1.52bc82p-22f
#define FJ32N_2_PI 0x1.45f306p-1f
#define FJ32N_PIO2_1 0x1.921fb6p+0f
#define FJ32N_PIO2_2 -0x1.777a5cp-25f
#define FJ32N_PIO2_3 -0x1.ee59dap-50f
#define FJ32N_TRIG_SHIFT 0x1.8p23f /* x + this rounds x to an integer, held in the low bits */
#define FJ32N_TRIG_MAX 0x1p16f
#define FJ32N_TRIG_OK(x) (fabsf(x) <= FJ32N_TRIG_MAX) /* false for NaN */

/* *s = sin(x), *c = cos(x) for a float x with |x| <= FJ32N_TRIG_MAX (other x: garbage,
   never a trap). The vector kernel: inlined into a loop that gcc vectorises. */
FJ_BODY void fj32n_sincos_core(float x, float* s, float* c) {
    float kf = fmaf(x, FJ32N_2_PI, FJ32N_TRIG_SHIFT);
    uint32_t q = fj_asu32(kf); /* k mod 4 in the low two bits */
    float t, ph, pl, rh, bb, e, rl, z, zl, hz, w, ps, pc, sr, cr, sv, cv;
    kf -= FJ32N_TRIG_SHIFT;
    t = fmaf(-kf, FJ32N_PIO2_1, x);          /* exact */
    ph = kf * FJ32N_PIO2_2;
    pl = fmaf(kf, FJ32N_PIO2_2, -ph);        /* exact */
    rh = t - ph;                             /* TwoSum(t, -ph) = rh + e */
    bb = rh - t;
    e = (t - (rh - bb)) - (ph + bb);
    rl = fmaf(-kf, FJ32N_PIO2_3, e - pl);
    z = rh * rh;
    zl = fmaf(rh, rh, -z);                   /* exact */
    ps = fmaf(fmaf(fmaf(FJ32N_SIN_S3, z, FJ32N_SIN_S2), z, FJ32N_SIN_S1), z, FJ32N_SIN_S0);
    sr = rh + fmaf(rh * z, ps, fmaf(-0.5f * z, rl, rl));
    pc = fmaf(fmaf(fmaf(FJ32N_COS_C3, z, FJ32N_COS_C2), z, FJ32N_COS_C1), z, FJ32N_COS_C0);
    hz = 0.5f * z;
    w = 1.0f - hz;
    cr = w + fmaf(z * z, pc, fmaf(-rh, rl, ((1.0f - w) - hz) - 0.5f * zl));
    sv = (q & 1) ? cr : sr;
    cv = (q & 1) ? sr : cr;
    sv = fj_asf32(fj_asu32(sv) ^ ((q & 2) << 30));
    cv = fj_asf32(fj_asu32(cv) ^ (((q + 1) & 2) << 30));
    *s = x == 0.0f ? x : sv; /* sin(-0) = -0 */
    *c = cv;
}

/* libm's sin(x) and cos(x) of one double: glibc's sincos() does the argument reduction
   once (541 instructions per call past 2^20 against 969 for sin() and cos(); 50-53
   against 91-97 ns of CPU per input). It gives sin()'s and cos()'s bits, as doubles and
   rounded to float32, on every float32 input with |x| >= 2^20 (all 1,811,939,330 of
   them), on inf and on NaN, the inputs fastjac's float32 paths hand to libm's sin and cos
   (glibc 2.36, session 9: tests/c/sincos32_same_bits.inc in three parts of 6.0e8 inputs,
   0 differences; tests/test_vtrig.py runs it on a sample with the hard cases, and on
   every input with FASTJAC_EXHAUSTIVE=1). gcc already turns
   fj32_sincos_rare's sin() and cos() below into one sincos() call by itself (its sincos
   pass, at -O1 and up); the chain's loop in fj32_sincos_dtile computes them under
   separate conditions, which that pass does not merge, so it calls this function. Not
   inlined on purpose: inside a loop that stores to arrays gcc 12 splits even a
   __builtin_sincos back into sin() and cos() calls. Other C libraries: the two calls. */
#if defined(__GLIBC__) && defined(__GNUC__)
__attribute__((noinline)) static void fj_libm_sincos(double x, double* s, double* c) {
    __builtin_sincos(x, s, c);
}
#define FJ_LIBM_SINCOS(x, s, c) fj_libm_sincos((x), (s), (c))
#else
#define FJ_LIBM_SINCOS(x, s, c) (*(s) = sin(x), *(c) = cos(x))
#endif

/* The lanes the native routine does not take: the float32-sized double routine. */
static void fj32_sincos_rare(double x, double* s, double* c) {
    if (FJ32_TRIG_OK(x)) {
        *s = fj32_trig_core(x, 0, 0.0);
        *c = fj32_trig_core(x, 1, -0.5);
    } else {
        *s = sin(x);
        *c = cos(x);
    }
}

/* s[k] = sin(x[k]) and c[k] = cos(x[k]) for m float32 x, faithfully rounded for every x
   (the lanes outside FJ32N_TRIG_MAX, inf and NaN by fj32_sincos_rare, rounded to float);
   s or c may be NULL (the other is computed anyway: each needs both polynomials); no
   output may overlap x. Returns nonzero when some lane took fj32_sincos_rare (a caller
   that keeps derivatives in double redoes those lanes with its double result). Inlined
   into the caller (FJ_BODY), so it is vectorised for the caller's target: call it from a
   function compiled with FMA (FJ_MULTI_FMA), e.g. the fused interpreter's float32 tile
   loop; the bits are the same on every level. */
FJ_BODY int fj32n_sincos_tile(const float* x, float* s, float* c, ptrdiff_t m) {
    ptrdiff_t k;
    int rare = 0;
    float sv, cv;
    for (k = 0; k < m; k++) rare |= !FJ32N_TRIG_OK(x[k]);
    if (s != NULL && c != NULL)
        for (k = 0; k < m; k++) fj32n_sincos_core(x[k], &s[k], &c[k]);
    else if (s != NULL)
        for (k = 0; k < m; k++) fj32n_sincos_core(x[k], &s[k], &cv);
    else if (c != NULL)
        for (k = 0; k < m; k++) fj32n_sincos_core(x[k], &sv, &c[k]);
    if (rare)
        for (k = 0; k < m; k++)
            if (!FJ32N_TRIG_OK(x[k])) {
                double sd, cd;
                fj32_sincos_rare((double)x[k], &sd, &cd);
                if (s != NULL) s[k] = (float)sd;
                if (c != NULL) c[k] = (float)cd;
            }
    return rare;
}

/* ---- the float32 stages, tiles and VJP ----------------------------------------------- */

/* s[k] = sin(xs[k]) and/or c[k] = cos(xs[k]) (either may be NULL) for a tile of doubles
   (m <= FJ_TILE_TMP; s or c may be xs, not both), sized for a float32 result: the native
   routine for the lanes that are float32 numbers in its range, the double routine for the
   others (a chain's intermediate doubles, e.g. x*x before a sin; large |x|, inf, NaN).
   Each routine runs as one vectorised pass over the tile, and only when some lane needs
   it. (A chain's sin of an intermediate has no float32 lane; until session 6 its lanes
   went one at a time through fj32_sincos_rare, compiled for the baseline with the C
   library's fma: ~100 cycles per element, against ~1 for the vectorised double routine.)
   The bits are fj32_sincos_rare's: fj32_trig_core below FJ32_TRIG_MAX (fma is correctly
   rounded on every level), libm's sin and cos beyond. */
FJ_BODY void fj32_sincos_dtile(const double* xs, double* s, double* c, ptrdiff_t m) {
    float xf[FJ_TILE_TMP], sf[FJ_TILE_TMP], cf[FJ_TILE_TMP];
    double rs[FJ_TILE_TMP], rc[FJ_TILE_TMP];
    ptrdiff_t k;
    int n_nat = 0, any_nat, any_dbl, far = 0;
    float sv, cv;
    /* separate loops, so that the float loop runs on full float vectors; both routines
       write temporaries before s and c are written (either may be xs) */
    for (k = 0; k < m; k++) {
        float f = (float)xs[k]; /* the core takes any float without a trap */
        n_nat += ((double)f == xs[k]) & FJ32N_TRIG_OK(f);
        xf[k] = f;
    }
    any_nat = n_nat > 0;
    any_dbl = n_nat < m;
    if (any_nat) {
        if (s != NULL && c != NULL)
            for (k = 0; k < m; k++) fj32n_sincos_core(xf[k], &sf[k], &cf[k]);
        else if (s != NULL)
            for (k = 0; k < m; k++) fj32n_sincos_core(xf[k], &sf[k], &cv);
        else
            for (k = 0; k < m; k++) fj32n_sincos_core(xf[k], &sv, &cf[k]);
    }
    if (any_dbl) {
        for (k = 0; k < m; k++) far |= !FJ32_TRIG_OK(xs[k]);
        if (s != NULL)
            for (k = 0; k < m; k++) rs[k] = fj32_trig_core(xs[k], 0, 0.0);
        if (c != NULL)
            for (k = 0; k < m; k++) rc[k] = fj32_trig_core(xs[k], 1, -0.5);
        if (far) /* fj32_sincos_rare's libm lanes (no native lane is among them) */
            for (k = 0; k < m; k++)
                if (!FJ32_TRIG_OK(xs[k])) {
                    if (s != NULL && c != NULL)
                        FJ_LIBM_SINCOS(xs[k], &rs[k], &rc[k]);
                    else if (s != NULL)
                        rs[k] = sin(xs[k]);
                    else
                        rc[k] = cos(xs[k]);
                }
    }
    if (!any_dbl) {
        if (s != NULL)
            for (k = 0; k < m; k++) s[k] = (double)sf[k];
        if (c != NULL)
            for (k = 0; k < m; k++) c[k] = (double)cf[k];
    } else if (!any_nat) {
        if (s != NULL)
            for (k = 0; k < m; k++) s[k] = rs[k];
        if (c != NULL)
            for (k = 0; k < m; k++) c[k] = rc[k];
    } else { /* both kinds: the lane test again (before the lane is written) */
        for (k = 0; k < m; k++) {
            int ok = ((double)xf[k] == xs[k]) & FJ32N_TRIG_OK(xf[k]);
            if (s != NULL) s[k] = ok ? (double)sf[k] : rs[k];
            if (c != NULL) c[k] = ok ? (double)cf[k] : rc[k];
        }
    }
}

/* s[k] = sin(x[k]) and/or c[k] = cos(x[k]) (either may be NULL; s or c may be x, not
   both), sized for a float32 result: the chain interpreter's float32 sin and cos stages. */
FJ_BODY void fj32_sincos_acc_n_body(double* s, double* c, const double* x, ptrdiff_t n) {
    ptrdiff_t i, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        fj32_sincos_dtile(x + i, s != NULL ? s + i : NULL, c != NULL ? c + i : NULL, m);
    }
}
FJ_MULTI_FMA(fj32_sincos_acc_n, (double* s, double* c, const double* x, ptrdiff_t n),
             (s, c, x, n))
static void fj32_sincos_n(double* s, double* c, const double* x, ptrdiff_t n) {
    fj32_sincos_acc_n(s, c, x, n);
}

/* The float32 single-op loops on float arrays, no double tiles: out = f(x) * t (f(x) when
   t is NULL) for f = sin (FJ32N_SIN), cos (FJ32N_COS), sin' = cos (FJ32N_DSIN) or
   cos' = -sin (FJ32N_DCOS): the values of fj.sin and fj.cos, their derivatives, and the
   derivative-only VJP and JVP (a VJP computes cos(x) alone, not sin(x) as well: both
   polynomials run on every lane, but only what is stored is rounded and written). The
   product is in float, which is the double product rounded once (53 >= 2 * 24 + 2), the
   interpreter's bits; the lanes of the double routine round its double result times t
   once, as the interpreter does. out may be x or t (not a partial overlap). */
enum { FJ32N_SIN = 0, FJ32N_COS = 1, FJ32N_DSIN = 2, FJ32N_DCOS = 3 };
FJ_BODY void fj32n_trig_loop(int f, const float* __restrict x, const float* __restrict t,
                             float* __restrict o, ptrdiff_t m) {
    ptrdiff_t k;
    float sv, cv;
    int neg_sin = f == FJ32N_SIN || f == FJ32N_DCOS; /* sin up to a sign; else cos */
    float sg = f == FJ32N_DCOS ? -1.0f : 1.0f;
    if (t == NULL) {
        if (neg_sin)
            for (k = 0; k < m; k++) { fj32n_sincos_core(x[k], &sv, &cv); o[k] = sg * sv; }
        else
            for (k = 0; k < m; k++) { fj32n_sincos_core(x[k], &sv, &cv); o[k] = cv; }
    } else {
        if (neg_sin)
            for (k = 0; k < m; k++) { fj32n_sincos_core(x[k], &sv, &cv); o[k] = sg * sv * t[k]; }
        else
            for (k = 0; k < m; k++) { fj32n_sincos_core(x[k], &sv, &cv); o[k] = cv * t[k]; }
    }
}
FJ_BODY void fj32_trig_map_body(int f, const float* x, const float* t, float* out, ptrdiff_t n) {
    float xs[FJ_TILE_TMP], ts[FJ_TILE_TMP];
    ptrdiff_t i, k, m;
    for (i = 0; i < n; i += FJ_TILE_TMP) {
        const float* xx = x + i;
        const float* tt = t != NULL ? t + i : NULL;
        float* oo = out + i;
        int rare = 0;
        m = n - i < FJ_TILE_TMP ? n - i : FJ_TILE_TMP;
        for (k = 0; k < m; k++) rare |= !FJ32N_TRIG_OK(xx[k]);
        if (rare || oo == xx || oo == tt) { /* in place, or lanes to redo: copies */
            for (k = 0; k < m; k++) xs[k] = xx[k];
            for (k = 0; k < m; k++) ts[k] = tt != NULL ? tt[k] : 1.0f;
            xx = xs;
            tt = t != NULL ? ts : NULL;
        }
        fj32n_trig_loop(f, xx, tt, oo, m);
        if (rare)
            for (k = 0; k < m; k++)
                if (!FJ32N_TRIG_OK(xs[k])) {
                    double sd, cd, v;
                    fj32_sincos_rare((double)xs[k], &sd, &cd);
                    v = f == FJ32N_SIN ? sd : f == FJ32N_DCOS ? -sd : cd;
                    oo[k] = (float)(v * (double)ts[k]);
                }
    }
}
FJ_MULTI_FMA(fj32_trig_map, (int f, const float* x, const float* t, float* out, ptrdiff_t n),
             (f, x, t, out, n))

/* The float32 single-op entry point (default mode only; 0: not done, the interpreter runs):
   f is FJ32N_SIN or FJ32N_COS for the value of fj.sin or fj.cos (t NULL), FJ32N_DSIN or
   FJ32N_DCOS for their VJP and JVP (or derivative, t NULL). */
static int fj32_trig_run(int f, const float* x, const float* t, float* out, ptrdiff_t n) {
    if (fj_fast_math != 0) return 0;
    fj32_trig_map(f, x, t, out, n);
    return 1;
}

#endif /* FJ_VTRIG_H */
