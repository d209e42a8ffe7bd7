"""Fit the polynomial coefficients of fj_vmath.h (tanh near 0, log's atanh series).

Run ``python fastjac/_kernels/_gen_vmath_poly.py`` (needs mpmath) and paste the printed
``#define`` lines into fj_vmath.h. The fit is a relative-error least-squares fit on
Chebyshev nodes at 200-bit precision (close to minimax for these smooth functions); the
printed bound is the relative error of the polynomial with its coefficients rounded to
double, measured on a fine grid.

- tanh(x) = x + x z P(z), z = x^2, |x| < 1/4: P(z) = (tanh(x) - x) / x^3, degree 7.
  P enters the result scaled by z < 1/16, so its ~2^-54 error is ~2^-58 of tanh.
- log(1 + f) = f - (f^2/2 - s (f^2/2 + z L(z))), s = f / (2 + f), z = s^2 < 0.0295 (the
  fdlibm decomposition; |f| < sqrt(2) - 1): L(z) = (2 atanh(s) - 2 s) / s^3, degree 6.
  L enters the result scaled by ~z/3 < 0.01.

- exp(-u) = 1 - u + u^2 Q(u), |u| <= ln2/32 (the exponential of tanh', sigmoid' and
  sigmoid, FJ_EXPM_OF): Q(u) = (expm1(-u) + u) / u^2, degree 5 (2^-64 of exp).

And for fj_vmath32.h (float32: relative errors near 2^-30 are plenty):

- exp(-u) as above for the float32 sech^2, sigmoid' and sigmoid (FJ32D_EXPM_OF): Q of
  degree 2 (2^-36.5 of exp).

- exp(r) = 1 + r + r^2 E(r), |r| <= ln2/2: E(r) = (exp(r) - 1 - r) / r^2, degree 5.
- tanh, |x| < 1/8 (z < 1/64): P as above, degree 2.
- log: L as above, degree 3.

And for the native float32 routines of fj_vmath32.h (float arithmetic, 16 lanes; the
coefficients rounded to float32 and the error measured with them):

- exp(r) = 1 + r + r^2 P(r), |r| <= ln2/2 (a little more: k comes from a float32 product):
  P(r) = (exp(r) - 1 - r) / r^2, degree 5 (P enters exp scaled by r^2 < 0.121).
"""
import mpmath as mp

mp.mp.prec = 200


def fit(f, a, b, deg, npts=400, single=False):
    if single:
        return fit_single(f, a, b, deg, npts)
    nodes = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (i + mp.mpf(0.5)) / npts)
             for i in range(npts)]
    A = mp.matrix(npts, deg + 1)
    y = mp.matrix(npts, 1)
    for i, t in enumerate(nodes):
        w = 1 / abs(f(t))
        for j in range(deg + 1):
            A[i, j] = t**j * w
        y[i] = f(t) * w
    c = mp.lu_solve(A.T * A, A.T * y)
    cs = [float(c[j]) for j in range(deg + 1)]
    err = 0
    for i in range(4001):
        t = a + (b - a) * mp.mpf(i) / 4000
        p = mp.mpf(0)
        for cc in reversed(cs):
            p = p * t + mp.mpf(cc)
        err = max(err, abs(p / f(t) - 1))
    return cs, float(mp.log(err, 2))


def fit_single(f, a, b, deg, npts):
    """fit with float32 coefficients: round c0, refit c1.. to what is left, and so on."""
    import numpy as np
    nodes = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (i + mp.mpf(0.5)) / npts)
             for i in range(npts)]
    fixed = []
    for j in range(deg + 1):
        A = mp.matrix(npts, deg + 1 - j)
        y = mp.matrix(npts, 1)
        for i, t in enumerate(nodes):
            w = 1 / abs(f(t))
            for q in range(deg + 1 - j):
                A[i, q] = t**(j + q) * w
            y[i] = (f(t) - sum(mp.mpf(c) * t**q for q, c in enumerate(fixed))) * w
        c = mp.lu_solve(A.T * A, A.T * y)
        fixed.append(float(np.float32(float(c[0]))))
    err = 0
    for i in range(4001):
        t = a + (b - a) * mp.mpf(i) / 4000
        p = sum(mp.mpf(c) * t**q for q, c in enumerate(fixed))
        err = max(err, abs(p / f(t) - 1))
    return fixed, float(mp.log(err, 2))


def tanh_p(z):
    if z == 0:
        return mp.mpf(-1) / 3
    x = mp.sqrt(z)
    return (mp.tanh(x) - x) / x**3


def log_l(z):
    if z == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) - 2 * s) / (s * z)


def exp_e(r):
    if r == 0:
        return mp.mpf(1) / 2
    return (mp.exp(r) - 1 - r) / r**2


def expm_q(u):
    if u == 0:
        return mp.mpf(1) / 2
    return (mp.expm1(-u) + u) / u**2


def main():
    zlog = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * mp.mpf("1.0001")
    for name, f, b, deg in (("FJ_TANH_P", tanh_p, mp.mpf(1) / 16, 7),
                            ("FJ_LOG_L", log_l, zlog, 6)):
        cs, e = fit(f, mp.mpf(0), b, deg)
        print(f"/* {name}: relative error 2^{e:.1f} */")
        for j, c in enumerate(cs):
            print(f"#define {name}{j} {c.hex()}")
    h = mp.log(2) / 32 * (1 + mp.mpf(2) ** -9)
    cs, e = fit(expm_q, -h, h, 5)
    print(f"/* FJ_EXPM_Q: relative error 2^{e:.1f} */")
    for j, c in enumerate(cs):
        print(f"#define FJ_EXPM_Q{j} {c.hex()}")
    h = mp.log(2) / 32 * (1 + mp.mpf(2) ** -8)
    cs, e = fit(expm_q, -h, h, 2)
    print(f"/* FJ32D_Q: relative error 2^{e:.1f} */")
    for j, c in enumerate(cs):
        print(f"#define FJ32D_Q{j} {c.hex()}")
    h = mp.log(2) / 2 * mp.mpf("1.0001")
    for name, f, a, b, deg in (("FJ32_EXP_E", exp_e, -h, h, 5),
                               ("FJ32_TANH_P", tanh_p, mp.mpf(0), mp.mpf(1) / 64, 2),
                               ("FJ32_LOG_L", log_l, mp.mpf(0), zlog, 3)):
        cs, e = fit(f, a, b, deg)
        print(f"/* {name}: relative error 2^{e:.1f} */")
        for j, c in enumerate(cs):
            print(f"#define {name}{j} {c.hex()}")
    h = mp.log(2) / 2 * mp.mpf("1.001")
    cs, e = fit(exp_e, -h, h, 5, npts=300, single=True)
    print(f"/* FJ32N_EXP_P: relative error 2^{e:.1f} (float32 coefficients) */")
    for j, c in enumerate(cs):
        print(f"#define FJ32N_EXP_P{j} {c.hex()}f")


if __name__ == "__main__":
    main()
