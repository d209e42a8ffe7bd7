"""Fit the float32-sized sin polynomial of fj_vtrig.h.

Run ``python fastjac/_kernels/_gen_vtrig_poly.py`` (needs mpmath) and paste the printed
``#define`` lines into fj_vtrig.h. The fit is _gen_vmath_poly.py's (relative-error least
squares on Chebyshev nodes at 200-bit precision, the bound measured with the coefficients
rounded to double): sin(r) = r + r z S(z), z = r^2, S(z) = (sin(r) - r) / r^3 of degree 4
on |r| <= pi/2 (with a margin of 0.1%: the rounded quotient may put r a little beyond).
cos is sin shifted by a quadrant, so one polynomial serves both.
"""
import os
import sys

import mpmath as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gen_vmath_poly import fit  # noqa: E402

mp.mp.prec = 200


def sin_s(z):
    if z == 0:
        return mp.mpf(-1) / 6
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def main():
    zmax = (mp.pi / 2) ** 2 * mp.mpf("1.002")
    cs, e = fit(sin_s, mp.mpf(0), zmax, 4)
    print(f"/* FJ32_SIN_S: relative error 2^{e:.1f} of S (_gen_vtrig_poly.py) */")
    for i, c in enumerate(cs):
        print(f"#define FJ32_SIN_S{i} {float(c).hex()}")


if __name__ == "__main__":
    main()
