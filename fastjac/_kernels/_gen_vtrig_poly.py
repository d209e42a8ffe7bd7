"""Fit the float32-sized sin polynomial of fj_vtrig.h.

Run ``python fastjac/_kernels/_gen_vtrig_poly.py`` (needs mpmath) and paste the printed
``#define`` lines into fj_vtrig.h. The fit is _gen_vmath_poly.py's (relative-error least
squares on Chebyshev nodes at 200-bit precision, the bound measured with the coefficients
rounded to double): sin(r) = r + r z S(z), z = r^2, S(z) = (sin(r) - r) / r^3 of degree 4
on |r| <= pi/2 (with a margin of 0.1%: the rounded quotient may put r a little beyond).
cos is sin shifted by a quadrant, so one polynomial serves both.

And the native float32 sin and cos of fj_vtrig.h (float arithmetic, 16 lanes), with
float32 coefficients (``fit(..., single=True)``, the error measured with them), on
|r| <= pi/4 with a margin (k comes from a float32 product, |r| may pass pi/4 by ~0.4%):

- sin(r) = r + r z S(z), z = r^2: S(z) = (sin(r) - r) / r^3, degree 3;
- cos(r) = 1 - z/2 + z^2 C(z): C(z) = (cos(r) - 1 + z/2) / r^4, degree 3;
- pi/2 = P1 + P2 + P3 in three floats (each the rounded remainder of the ones before).
"""
import os
import sys

import mpmath as mp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gen_vmath_poly import fit  # noqa: E402

mp.mp.prec = 200


def sin_s(z):
    if z == 0:
        return mp.mpf(-1) / 6
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def f32hex(c):
    """a float32 value as a C float literal, e.g. 0x1.555556p-3f"""
    m, e = float(c).hex().split("p")
    return f"{m.rstrip('0').rstrip('.')}p{e}f"


def cos_c(z):
    if z == 0:
        return mp.mpf(1) / 24
    r = mp.sqrt(z)
    return (mp.cos(r) - 1 + z / 2) / (z * z)


def main():
    zmax = (mp.pi / 2) ** 2 * mp.mpf("1.002")
    cs, e = fit(sin_s, mp.mpf(0), zmax, 4)
    print(f"/* FJ32_SIN_S: relative error 2^{e:.1f} of S (_gen_vtrig_poly.py) */")
    for i, c in enumerate(cs):
        print(f"#define FJ32_SIN_S{i} {float(c).hex()}")
    zn = (mp.pi / 4 * mp.mpf("1.02")) ** 2
    for name, f in (("FJ32N_SIN_S", sin_s), ("FJ32N_COS_C", cos_c)):
        cs, e = fit(f, mp.mpf(0), zn, 3, npts=200, single=True)
        print(f"/* {name}: relative error 2^{e:.1f} (_gen_vtrig_poly.py) */")
        for i, c in enumerate(cs):
            print(f"#define {name}{i} {f32hex(c)}")
    print(f"#define FJ32N_2_PI {f32hex(np.float32(float(2 / mp.pi)))}")
    rest = mp.pi / 2
    for i in range(1, 4):
        part = float(np.float32(float(rest)))
        print(f"#define FJ32N_PIO2_{i} {f32hex(part)}")
        rest -= mp.mpf(part)
    print(f"/* pi/2 - P1 - P2 - P3 = {float(rest):.3g} */")


if __name__ == "__main__":
    main()
