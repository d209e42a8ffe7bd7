/* The unary ops of the fused interpreter's float32 registers (fused.pyx, _tile32) that have
 * a float32 routine of their own: exp (native float32, fj_vmath32.h) and sin/cos (the
 * float32-sized routine of fj_vtrig.h). Every other unary op is widened per op and run
 * through elementwise.pyx's _stage (fused.pyx), which gives the same bits for these two as
 * well: this file is only a shorter road to them.
 *
 * Included by elementwise.pyx after fj_vmath.h (it uses its routines, its precision mode
 * and its SIMD level, which live in elementwise's translation unit) and reached from
 * fused.pyx through elementwise.pxd's _unary32. ONE call site per op kind: sin and cos go
 * through fj_fused32_trig, or, where fj_vtrig.h has a native float32 sin/cos
 * (FJ32N_TRIG_OK, fj32n_sincos_core), through fj_fused32_ntrig: the switch is automatic.
 *
 * fj_fused32_unary(code, a, v, d, m) for a float32 tile a (m <= FJ_TILE_TMP):
 *   v: the value, rounded to float32 (NULL: not wanted);
 *   d: a double buffer for the derivative f'(a) (NULL: not wanted).
 * Returns 0 when it does nothing (another op, another precision mode, or a tile with a lane
 * outside the native range: the caller takes _stage, lane by lane the same bits); else the
 * form of the derivative: FJ_F32_PD_VALUE (it is the value v itself, a float32: exp),
 * FJ_F32_PD_DOUBLE (in d, a double: the float32-sized double sin/cos) or FJ_F32_PD_FLOAT
 * (a float32 in d's memory, read as float: a native float32 sin/cos). The value and derivative are those
 * of fj.exp / fj.sin / fj.cos in float32 (their VJP is the derivative times the cotangent
 * rounded once to float32: for a float32 derivative that is the float32 product). */
#ifndef FJ_FUSED32_H
#define FJ_FUSED32_H

#ifndef FJ_VMATH_H
#error "fj_fused32.h is included by elementwise.pyx after fj_vmath.h"
#endif

enum { FJ_F32_PD_NONE = 0, FJ_F32_PD_VALUE = 1, FJ_F32_PD_DOUBLE = 2, FJ_F32_PD_FLOAT = 3 };

/* exp: the native float32 routine, when every lane is in its range (the other tiles take
 * _stage: fj32_exp_tile makes the same per-lane choice). The range check rides in the
 * computing loop (one pass over a): the core is plain arithmetic on any lane, and a tile
 * with a lane outside the range returns 0, so the caller's _stage overwrites v. */
FJ_BODY void fj_fused32_exp_body(int* done, const float* a, float* v, ptrdiff_t m) {
    ptrdiff_t k;
    int bad = 0;
    for (k = 0; k < m; k++) {
        float x = a[k];
        bad |= !FJ32N_EXP_OK(x);
        v[k] = fj32n_exp_core(x);
    }
    *done = !bad;
}
FJ_MULTI(fj_fused32_exp, (int* done, const float* a, float* v, ptrdiff_t m), (done, a, v, m))

#ifndef FJ32N_TRIG_OK
/* sin (cosine 0: v = sin, d = cos) or cos (cosine 1: v = cos, d = -sin) of a float32 tile,
 * either output may be NULL: fj_vtrig.h's float32-sized core in double, libm for the lanes
 * it does not take; the bits of _stage's fj32_sincos_n / fj32_trig_n (and so of fj.sin,
 * fj.cos and their float32 VJPs). THE place to swap in a native float32 sin/cos: return
 * its value in v and its derivative in d (or, as a float32, change the form returned by
 * fj_fused32_unary). */
FJ_BODY void fj_fused32_trig_body(int cosine, const float* a, float* v, double* d,
                                  ptrdiff_t m) {
    ptrdiff_t k;
    int bad = 0;
    for (k = 0; k < m; k++) bad |= !FJ32_TRIG_OK((double)a[k]);
    if (d == NULL) {
        for (k = 0; k < m; k++)
            v[k] = (float)fj32_trig_core((double)a[k], (uint64_t)cosine, cosine ? -0.5 : 0.0);
    } else if (v == NULL) {
        if (cosine)
            for (k = 0; k < m; k++) d[k] = -fj32_trig_core((double)a[k], 0, 0.0);
        else
            for (k = 0; k < m; k++) d[k] = fj32_trig_core((double)a[k], 1, -0.5);
    } else {
        for (k = 0; k < m; k++) {
            double xd = (double)a[k];
            double s = fj32_trig_core(xd, 0, 0.0);
            double c = fj32_trig_core(xd, 1, -0.5);
            v[k] = (float)(cosine ? c : s);
            d[k] = cosine ? -s : c;
        }
    }
    if (bad)
        for (k = 0; k < m; k++) {
            double xd = (double)a[k];
            if (FJ32_TRIG_OK(xd)) continue;
            if (v != NULL) v[k] = (float)(cosine ? cos(xd) : sin(xd));
            if (d != NULL) d[k] = cosine ? -sin(xd) : cos(xd);
        }
}
FJ32_MULTI(fj_fused32_trig, (int cosine, const float* a, float* v, double* d, ptrdiff_t m),
           (cosine, a, v, d, m))

#else
/* With a native float32 sin/cos (fj_vtrig.h's fj32n_sincos_core, faithful, for the lanes
 * FJ32N_TRIG_OK takes): a tile whose lanes are all in its range gets the native value and
 * a float32 derivative (cos, or -sin: an exact negation), the bits of fastjac's float32
 * stage and VJP for those lanes (the derivative times the cotangent: the float32 product);
 * any other tile returns 0 and takes _stage, whose per-lane choice gives the same bits. */
FJ_BODY void fj_fused32_ntrig_body(int* done, int cosine, const float* a, float* v, float* d,
                                   ptrdiff_t m) {
    /* the range check rides in the computing loop, as for exp: the core is plain
     * arithmetic on any lane, and a tile with a lane outside the range returns 0 (the
     * caller's _stage then overwrites v and d) */
    ptrdiff_t k;
    int bad = 0;
    float s, c;
    if (v == NULL) {
        if (cosine)
            for (k = 0; k < m; k++) {
                bad |= !FJ32N_TRIG_OK(a[k]);
                fj32n_sincos_core(a[k], &s, &c);
                d[k] = -s;
            }
        else
            for (k = 0; k < m; k++) {
                bad |= !FJ32N_TRIG_OK(a[k]);
                fj32n_sincos_core(a[k], &s, &c);
                d[k] = c;
            }
    } else if (d == NULL) {
        if (cosine)
            for (k = 0; k < m; k++) {
                bad |= !FJ32N_TRIG_OK(a[k]);
                fj32n_sincos_core(a[k], &s, &c);
                v[k] = c;
            }
        else
            for (k = 0; k < m; k++) {
                bad |= !FJ32N_TRIG_OK(a[k]);
                fj32n_sincos_core(a[k], &s, &c);
                v[k] = s;
            }
    } else if (cosine) {
        /* one loop per op, so that no lane selects between sin and cos (gcc keeps a
         * loop-invariant choice inside a vectorised loop as two blends per vector) */
        for (k = 0; k < m; k++) {
            bad |= !FJ32N_TRIG_OK(a[k]);
            fj32n_sincos_core(a[k], &s, &c);
            v[k] = c;
            d[k] = -s;
        }
    } else {
        for (k = 0; k < m; k++) {
            bad |= !FJ32N_TRIG_OK(a[k]);
            fj32n_sincos_core(a[k], &s, &c);
            v[k] = s;
            d[k] = c;
        }
    }
    *done = !bad;
}
FJ32_MULTI(fj_fused32_ntrig, (int* done, int cosine, const float* a, float* v, float* d,
                              ptrdiff_t m), (done, cosine, a, v, d, m))
#endif

static int fj_fused32_unary(int code, const float* a, float* v, double* d, ptrdiff_t m) {
    int done = 0;
    if (fj_fast_math != 0) return FJ_F32_PD_NONE; /* strict, fast: _stage's float64 routines */
    switch (code) {
    case FJ_U_EXP:
        if (v == NULL) return FJ_F32_PD_NONE;
        fj_fused32_exp(&done, a, v, m);
        return done ? FJ_F32_PD_VALUE : FJ_F32_PD_NONE;
    case FJ_U_SIN:
    case FJ_U_COS:
        if (v == NULL && d == NULL) return FJ_F32_PD_NONE;
#ifdef FJ32N_TRIG_OK
        fj_fused32_ntrig(&done, code == FJ_U_COS, a, v, (float*)(void*)d, m);
        return done ? FJ_F32_PD_FLOAT : FJ_F32_PD_NONE;
#else
        fj_fused32_trig(code == FJ_U_COS, a, v, d, m);
        return FJ_F32_PD_DOUBLE;
#endif
    default:
        return FJ_F32_PD_NONE;
    }
}

#endif /* FJ_FUSED32_H */
