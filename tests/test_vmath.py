"""The vector math under the element-wise kernels (fastjac/_kernels/fj_vmath.h).

Accuracy is measured in ulps against NumPy's long double (80-bit on x86-64: 11 more bits
than double, enough to grade a double result to ~0.001 ulp). The bounds are the measured
maxima over 1e7 points rounded up slightly (see fastjac.set_precision), checked here on
2e5 points so that a regression shows without slowing the suite.
"""

import numpy as np
import pytest

import fastjac as fj
from fastjac._kernels import elementwise as K

LONG = np.finfo(np.longdouble).nmant >= 63
needs_long = pytest.mark.skipif(not LONG, reason="needs an 80-bit long double reference")
RNG = np.random.default_rng(2024)
N = 200_000


def ulps(y, ref):
    ref64 = ref.astype(np.float64)
    err = np.abs(y.astype(np.longdouble) - ref) / np.spacing(np.abs(ref64)).astype(np.longdouble)
    return err.astype(np.float64)


@pytest.fixture
def precision():
    old = fj.get_precision()
    yield fj.set_precision
    fj.set_precision(old)


ACCURATE_BOUNDS = [  # (name, function, reference, sampler, max ulp in "accurate" mode)
    ("exp", fj.exp, np.exp, lambda: RNG.uniform(-708, 708, N), 0.6),
    ("exp small", fj.exp, np.exp, lambda: RNG.uniform(-1, 1, N), 0.6),
    ("sin", fj.sin, np.sin, lambda: RNG.uniform(-10, 10, N), 0.85),
    ("cos", fj.cos, np.cos, lambda: RNG.uniform(-10, 10, N), 0.85),
    ("sin wide", fj.sin, np.sin, lambda: RNG.uniform(-1e5, 1e5, N), 0.85),
    ("cos huge", fj.cos, np.cos, lambda: RNG.uniform(-1e9, 1e9, N), 0.55),  # libm lanes
    ("tanh'", fj.tanh.derivative, lambda x: 1 / np.cosh(x) ** 2,
     lambda: RNG.uniform(-20, 20, N), 0.6),
    ("tanh", fj.tanh, np.tanh, lambda: RNG.uniform(-20, 20, N), 0.6),
    ("log", fj.log, np.log, lambda: np.exp(RNG.uniform(-700, 700, N)), 0.85),
    ("sigmoid", fj.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda: RNG.uniform(-40, 40, N), 0.6),
    ("sigmoid'", fj.sigmoid.derivative, lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2,
     lambda: RNG.uniform(-40, 40, N), 0.6),
]


@needs_long
@pytest.mark.parametrize("name,f,ref,sample,bound", ACCURATE_BOUNDS,
                         ids=[c[0] for c in ACCURATE_BOUNDS])
def test_accurate_mode_error_in_ulps(precision, name, f, ref, sample, bound):
    precision("accurate")
    x = sample()
    assert ulps(f(x), ref(x.astype(np.longdouble))).max() <= bound


@needs_long
def test_strict_mode_is_libm():
    old = fj.set_precision("strict")
    try:
        x = RNG.uniform(-10, 10, 10_000)
        # glibc's exp, sin and cos are within 0.52 ulp (fastjac's own: 0.57 and 0.78).
        for f, ref in ((fj.exp, np.exp), (fj.sin, np.sin), (fj.cos, np.cos)):
            assert ulps(f(x), ref(x.astype(np.longdouble))).max() <= 0.52
    finally:
        fj.set_precision(old)


def test_special_values_in_every_mode(precision):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.7, 710.0, -745.0, -746.0, 1e-310,
                  1e5, -1e5, 1e22, np.pi / 2, 3 * np.pi / 2])
    for mode in ("strict", "accurate", "fast"):
        precision(mode)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(fj.exp(x[:10]), np.exp(x[:10]))
            s, c = fj.sin(x), fj.cos(x)
            assert np.signbit(s[1]) and not np.signbit(s[0])  # sin(-0) = -0
            assert np.isnan(s[2:5]).all() and np.isnan(c[2:5]).all()
            np.testing.assert_allclose(s[5:], np.sin(x[5:]), rtol=1e-15, atol=1e-15)
            np.testing.assert_allclose(c[5:], np.cos(x[5:]), rtol=1e-15, atol=1e-15)


def test_sincos_near_multiples_of_half_pi():
    k = np.arange(1, 60_000, 7, dtype=np.float64)
    x = np.concatenate([k * (np.pi / 2), np.nextafter(k * np.pi / 2, 0)])
    xl = x.astype(np.longdouble)
    assert ulps(fj.sin(x), np.sin(xl)).max() <= 0.85
    assert ulps(fj.cos(x), np.cos(xl)).max() <= 0.85


def test_precision_modes_api(precision):
    assert fj.get_precision() in ("accurate", "strict", "fast")
    precision("accurate")
    assert precision("fast") == "accurate" and fj.get_precision() == "fast"
    assert K.simd_info()["math_mode"] == "fast"
    with pytest.raises(ValueError, match="precision"):
        fj.set_precision("sloppy")
    info = K.simd_info()
    assert info["cpu"] in ("baseline", "avx2", "avx512f")
    assert isinstance(info["libmvec_built"], bool)


def test_fast_mode_is_close_and_thread_independent(precision):
    precision("fast")
    w, x, gy = (RNG.standard_normal(7 * 4096 + 5) for _ in range(3))
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    gw1, gx1 = op.vjp(w, x, gy, n_threads=1)
    gw2, gx2 = op.vjp(w, x, gy, n_threads=2)
    np.testing.assert_array_equal(gw1, gw2)
    np.testing.assert_array_equal(gx1, gx2)
    e = np.exp(w)
    np.testing.assert_allclose(gw1, gy * e * np.sin(x), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(gx1, gy * e * np.cos(x), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(fj.tanh(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(fj.log(np.abs(x) + 0.1), np.log(np.abs(x) + 0.1), rtol=1e-15)


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 255, 256, 257, 1000])
def test_results_do_not_depend_on_position_or_length(n):
    """Every element goes through the same arithmetic: SIMD body and scalar tail agree."""
    x = RNG.uniform(-30, 30, 1000)
    full = fj.exp(x), fj.sin(x), fj.tanh.derivative(x), fj.sigmoid.derivative(x)
    part = fj.exp(x[:n]), fj.sin(x[:n]), fj.tanh.derivative(x[:n]), fj.sigmoid.derivative(x[:n])
    for a, b in zip(full, part):
        np.testing.assert_array_equal(a[:n], b)
    shifted = fj.exp(x[1:n + 1])
    np.testing.assert_array_equal(full[0][1:n + 1], shifted)


def test_vexp_entry_point():
    x = RNG.uniform(-5, 5, 100)
    out = np.empty_like(x)
    K.vexp(x, out)
    np.testing.assert_array_equal(out, fj.exp(x))
    with pytest.raises(ValueError):
        K.vexp(x, np.empty(3))
