"""Fit the float32-sized sin and cos polynomials of fj_vtrig.h.

Run ``python fastjac/_kernels/_gen_vtrig_poly.py`` (needs mpmath) and paste the printed
``#define`` lines into fj_vtrig.h. The fit is _gen_vmath_poly.py's (relative-error least
squares on Chebyshev nodes at 200-bit precision, the bound measured with the coefficients
rounded to double), on |r| <= pi/4 with z = r^2:

- sin(r) = r + r z S(z): S(z) = (sin(r) - r) / r^3, degree 3;
- cos(r) = 1 + z C(z):   C(z) = (cos(r) - 1) / r^2, degree 3.
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


def cos_c(z):
    if z == 0:
        return mp.mpf(-1) / 2
    r = mp.sqrt(z)
    return (mp.cos(r) - 1) / z


def main():
    zmax = (mp.pi / 4) ** 2 * mp.mpf("1.0001")
    for name, f, what in (("FJ32_SIN_S", sin_s, "S"), ("FJ32_COS_C", cos_c, "C")):
        cs, e = fit(f, mp.mpf(0), zmax, 3)
        print(f"/* {name}: relative error 2^{e:.1f} of {what} (_gen_vtrig_poly.py) */")
        for i, c in enumerate(cs):
            print(f"#define {name}{i} {float(c).hex()}")


if __name__ == "__main__":
    main()
