"""fj.fuse: traced element-wise expressions against NumPy references and finite differences."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, HealthCheck
from hypothesis import strategies as st

import fastjac as fj

RNG = np.random.default_rng(0)
DTYPES = [np.float64, np.float32]


def tol(dt):
    return dict(rtol=1e-12, atol=1e-12) if dt == np.float64 else dict(rtol=2e-5, atol=2e-5)


def _vjp_ref(w, x, gy):
    ew = np.exp(w)
    return gy * (ew * np.sin(x) + 1 / x), gy * (ew * np.cos(x) - w / x ** 2)


@pytest.fixture(scope="module")
def issue_f():
    return fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n", [1, 10, 257, 5000, 20000])
def test_issue_example_all_methods(issue_f, dt, n):
    f = issue_f
    w = RNG.normal(size=n).astype(dt)
    x = (RNG.uniform(0.5, 2.0, size=n) * RNG.choice([-1, 1], size=n)).astype(dt)
    gy = RNG.normal(size=n).astype(dt)
    dw, dx = RNG.normal(size=n).astype(dt), RNG.normal(size=n).astype(dt)
    w64, x64, g64 = (a.astype(np.float64) for a in (w, x, gy))
    y = f(w, x)
    assert y.dtype == dt and y.shape == (n,)
    np.testing.assert_allclose(y, np.exp(w64) * np.sin(x64) + w64 / x64, **tol(dt))
    gw, gx = f.vjp(w, x, gy)
    rw, rx = _vjp_ref(w64, x64, g64)
    assert gw.dtype == dt and gx.dtype == dt
    np.testing.assert_allclose(gw, rw, **tol(dt))
    np.testing.assert_allclose(gx, rx, **tol(dt))
    jw, jx = _vjp_ref(w64, x64, np.ones(n))
    dy = f.jvp(w, x, dw, dx)
    np.testing.assert_allclose(dy, jw * dw + jx * dx, **tol(dt))
    Jw, Jx = f.jacobian(w, x)
    assert isinstance(Jw, fj.Diagonal) and isinstance(Jx, fj.Diagonal)
    np.testing.assert_allclose(Jw.d, jw, **tol(dt))
    np.testing.assert_allclose(Jx.d, jx, **tol(dt))
    sw, sx = f.sum_grad(w, x)
    np.testing.assert_allclose(sw, jw, **tol(dt))
    np.testing.assert_allclose(sx, jx, **tol(dt))
    yv, (vw, vx) = f.value_and_vjp(w, x, gy)
    assert np.array_equal(yv, y) and np.array_equal(vw, gw) and np.array_equal(vx, gx)


def test_fused_matches_existing_ops_bitwise():
    # A single fused binary op or unary chain gives the bits of the existing kernels.
    w = RNG.normal(size=3000)
    x = RNG.uniform(0.5, 2, size=3000)
    gy = RNG.normal(size=3000)
    for op in (fj.add, fj.sub, fj.mul, fj.div, fj.maximum, fj.minimum):
        f = fj.fuse(lambda a, b, op=op: op(a, b))
        assert np.array_equal(f(w, x), op(w, x))
        for a, b in zip(f.vjp(w, x, gy), op.vjp(w, x, gy)):
            assert np.array_equal(a, b), op.name
        for a, b in zip(f.vjp(w, 1.5, gy), op.vjp(w, 1.5, gy)):
            assert np.array_equal(a, b), op.name
    for name, u in fj.UNARY.items():
        f = fj.fuse(lambda a, u=u: u(a))
        xx = x if name in ("sqrt", "log") else w
        assert np.array_equal(f(xx), u(xx)), name
        assert np.array_equal(f.vjp(xx, gy), u.vjp(xx, gy)), name
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x))
    g = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    # reverse mode multiplies gy into the partials from the output down (exp(w)·(sin(x)·gy));
    # fj.elementwise forms the derivative first ((exp(w)·sin(x))·gy): within 2 roundings
    for a, b in zip(f.vjp(w, x, gy), g.vjp(w, x, gy)):
        np.testing.assert_allclose(a, b, rtol=5e-16, atol=0)


def _div_log_operands(dt, n=300000):
    # n spans many blocks and is above the pool's threshold, so n_threads=2 runs in
    # parallel; the edges: zeros, infinities, NaN, subnormal and huge quotients
    w = RNG.normal(size=n).astype(dt)
    x = (RNG.uniform(0.25, 4.0, size=n) * RNG.choice([-1, 1], size=n)).astype(dt)
    gy = RNG.normal(size=n).astype(dt)
    big, tiny = np.finfo(dt).max, np.finfo(dt).smallest_subnormal
    w[:8] = [0.0, 1.0, -0.0, np.inf, np.nan, big, tiny, 1.0]
    x[:8] = [0.0, -0.0, 3.0, 2.0, 1.0, tiny, big, np.inf]
    if dt == np.float32:
        # an element where the old fused form (-((w/x)/x)) gy, rounded four times in
        # double, missed fj.div's correctly rounded -(gy w)/(x x) (found by a search of
        # 2e8 random triples)
        w[8], x[8], gy[8] = -3.0923855304718018, -0.6041074395179749, -0.9554809331893921
    return w, x, gy


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("nt", [1, 2])
def test_fused_div_and_log_vjp_have_the_bits_of_fj_div_and_fj_log(dt, nt):
    # A fused w/x is fj.div's VJP bit for bit in both dtypes (float32: gy/x and
    # -(gy w)/(x x), each correctly rounded; float64: (1/x) gy and (-((w/x)/x)) gy), and
    # a fused log(x) is fj.log's VJP gy/x, for every n_threads.
    w, x, gy = _div_log_operands(dt)
    xp = np.abs(x)
    with np.errstate(all="ignore"):
        for a, b in zip(fj.fuse(lambda w, x: w / x).vjp(w, x, gy, n_threads=nt),
                        fj.div.vjp(w, x, gy)):
            assert a.dtype == dt and np.array_equal(a, b, equal_nan=True)
        assert np.array_equal(fj.fuse(lambda w, x: w / x).sum_grad(w, x, n_threads=nt)[1],
                              fj.div.vjp(w, x, np.ones_like(gy))[1], equal_nan=True)
        assert np.array_equal(fj.fuse(lambda x: fj.log(x)).vjp(xp, gy, n_threads=nt),
                              fj.log.vjp(xp, gy), equal_nan=True)
        # the JVP keeps fj.div.jvp's partials 1/x and -(w/x)/x in both dtypes
        dw, dx = gy[::-1].copy(), gy * np.asarray(0.5, dt)
        assert np.array_equal(fj.fuse(lambda w, x: w / x).jvp(w, x, dw, dx, n_threads=nt),
                              fj.div.jvp(w, x, dw, dx), equal_nan=True)
        # inside a larger expression: float32 rounds at every op (fj.div.vjp's and
        # fj.log.vjp's bits, summed as fj.add; test_fuse32.py); float64 forms the same
        # formulas in double, summed, rounded once
        gw, gx = fj.fuse(lambda w, x: fj.log(x) * 2.0 + w / x).vjp(w, xp, gy, n_threads=nt)
        w64, x64, g64 = (a.astype(np.float64) for a in (w, xp, gy))
        if dt == np.float32:
            rw = fj.div.vjp(w, xp, gy)[0]
            rx = fj.add(fj.div.vjp(w, xp, gy)[1], fj.log.vjp(xp, gy * np.float32(2.0)))
        else:
            rw = (1.0 / x64) * g64
            rx = (-((w64 / x64) / x64)) * g64 + (2.0 * g64) / x64
        assert np.array_equal(gw, rw.astype(dt), equal_nan=True)
        assert np.array_equal(gx, rx.astype(dt), equal_nan=True)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_fused_float32_div_of_values_outside_float32_range(sign):
    # A float32 call with a scalar input keeps double registers: in
    # exp(±exp(w))/exp(±exp(x)) both operands are about 1e±158, where b·b overflows (or
    # underflows to 0), yet the gradient is about ±e^w: fj.div's -(gy a)/(b b) is redone
    # there as -((gy a)/b)/b. (With array inputs only, float32 registers overflow as op by
    # op does: test_fuse32.py.)
    w = np.array([5.9, 5.95, 6.0, 1.0, 0.5], np.float32)
    x = np.array([5.9, 5.9, 5.98, 1.0, 0.7], np.float32)
    f = fj.fuse(lambda w, x, z: fj.exp(sign * fj.exp(w)) / fj.exp(sign * fj.exp(x)) * z)
    gw, gx, _ = f.vjp(w, x, np.float32(1.0), np.ones(5, np.float32))
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    y = np.exp(sign * (np.exp(w64) - np.exp(x64)))
    # (float32 exp in the interpreter: e^w carries ~1e-7 relative error, times e^w ~ 400)
    np.testing.assert_allclose(gw, sign * y * np.exp(w64), rtol=1e-3)
    np.testing.assert_allclose(gx, -sign * y * np.exp(x64), rtol=1e-3)


def test_adjoint_passed_on_has_the_bits_of_the_two_products():
    # A one-operand node with a single adjoint contribution passes p1·src straight to its
    # operand as p2·(p1·src), without storing its own adjoint: the products must be the
    # ones of the unfused reverse sweep, in the same order.
    w = RNG.normal(size=3000)
    x = RNG.uniform(-3, 3, size=3000)
    gy = RNG.normal(size=3000)
    e, s, c = fj.exp(w), fj.sin(x), fj.sin.derivative(x)
    gw, gx = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x)).vjp(w, x, gy)
    assert np.array_equal(gw, e * (s * gy)) and np.array_equal(gx, c * (e * gy))
    # a chain: exp passes its adjoint on, sin (fed by exp) stores its own
    e2 = fj.exp(fj.sin(x))
    gx, gw = fj.fuse(lambda x, w: fj.exp(fj.sin(x)) * w).vjp(x, w, gy)
    assert np.array_equal(gx, c * (e2 * (w * gy))) and np.array_equal(gw, e2 * gy)
    # w gets two contributions, summed in the reverse sweep's order: the product's
    # first, then exp's passed-on one
    gw = fj.fuse(lambda w: fj.exp(w) * w).vjp(w, gy)
    assert np.array_equal(gw, e * gy + e * (w * gy))


def test_paper_total_derivative_x_plus_x_squared():
    # §4.5.2: y = x + x², dy/dx = 1 + 2x (the naive single-path answer 2x is wrong)
    f = fj.fuse(lambda x: x + x ** 2)
    x = np.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_array_equal(f(x), x + x * x)
    np.testing.assert_array_equal(f.derivative(x), 1 + 2 * x)
    assert f.derivative(1.0) == 3.0
    # f(x) = sin(x + x²): df/dx = cos(x + x²)(1 + 2x); y = x·x²: dy/dx = 3x²
    g = fj.fuse(lambda x: fj.sin(x + fj.square(x)))
    np.testing.assert_allclose(g.derivative(x), np.cos(x + x ** 2) * (1 + 2 * x), rtol=1e-14)
    h = fj.fuse(lambda x: x * x ** 2)
    np.testing.assert_allclose(h.derivative(x), 3 * x ** 2, rtol=1e-15)
    # the finite change at x = 1, Δx = 1: Δy = 4
    assert f(2.0) - f(1.0) == 4.0


def test_cse_and_constant_folding():
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + fj.exp(w) / x)
    assert f.n_ops == 5  # exp(w) once
    g = fj.fuse(lambda x: x * 2.0 + x * 2.0)
    assert g.n_ops == 2
    h = fj.fuse(lambda x: x ** 0 + x ** 1)
    assert h.n_ops == 1
    np.testing.assert_array_equal(h(np.array([np.nan, 2.0])), [np.nan + 1, 3.0])
    dead = fj.fuse(lambda x: (fj.exp(x), x * 3)[1])
    assert dead.n_ops == 1


@pytest.mark.parametrize("dt", DTYPES)
def test_scalar_inputs(dt):
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    x = RNG.uniform(0.5, 2, size=9000).astype(dt)
    gy = RNG.normal(size=9000).astype(dt)
    z = 0.7
    y = f(z, x)
    assert y.dtype == dt
    gz, gx = f.vjp(z, x, gy)
    assert np.ndim(gz) == 0 and isinstance(gz, dt)
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    z_ = float(dt(z))
    rw, rx = _vjp_ref(np.full(9000, z_), x64, g64)
    np.testing.assert_allclose(gz, rw.sum(), rtol=1e-10 if dt == np.float64 else 1e-5)
    np.testing.assert_allclose(gx, rx, **tol(dt))
    Jz, Jx = f.jacobian(z, x)
    assert isinstance(Jz, fj.Column) and isinstance(Jx, fj.Diagonal)
    np.testing.assert_allclose(Jz.todense()[:, 0], _vjp_ref(np.full(9000, z_), x64,
                                                             np.ones(9000))[0], **tol(dt))
    dy = f.jvp(z, x, 2.0, None)
    np.testing.assert_allclose(dy, 2.0 * _vjp_ref(np.full(9000, z_), x64, np.ones(9000))[0],
                               **tol(dt))
    # all scalar: scalar results
    assert isinstance(f(0.5, 2.0), np.float64)
    a, b = f.vjp(0.5, 2.0, 1.0)
    assert np.ndim(a) == 0 and np.ndim(b) == 0
    np.testing.assert_allclose((a, b), _vjp_ref(0.5, 2.0, 1.0), rtol=1e-15)


def test_scalar_gradient_bits_match_binary_op():
    x = RNG.normal(size=100000)
    gy = RNG.normal(size=100000)
    for op in (fj.mul, fj.add, fj.div, fj.sub):
        f = fj.fuse(lambda a, b, op=op: op(a, b))
        for a, b in zip(f.vjp(x, 1.25, gy), op.vjp(x, 1.25, gy)):
            assert np.array_equal(a, b), op.name
        for a, b in zip(f.vjp(1.25, x, gy), op.vjp(1.25, x, gy)):
            assert np.array_equal(a, b), op.name


@pytest.mark.parametrize("dt", DTYPES)
def test_threads_bitwise(dt):
    f = fj.fuse(lambda w, x, z: fj.tanh(w) * x + fj.maximum(w, z) * z - fj.sqrt(fj.abs(x)))
    n = 50000
    w, x, gy = (RNG.normal(size=n).astype(dt) for _ in range(3))
    for args in ((w, x, 0.3), (w, x, gy)):
        r1 = f.vjp(*args, gy, n_threads=1)
        r2 = f.vjp(*args, gy, n_threads=2)
        for a, b in zip(r1, r2):
            assert np.array_equal(a, b)
        assert np.array_equal(f(*args, n_threads=1), f(*args, n_threads=2))
        t = (x, None, gy if np.ndim(args[2]) else 1.0)
        assert np.array_equal(f.jvp(*args, *t, n_threads=1), f.jvp(*args, *t, n_threads=2))


def test_out_in_place_and_inputs_never_written():
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    w = RNG.normal(size=1000)
    x = RNG.uniform(0.5, 2, size=1000)
    gy = RNG.normal(size=1000)
    ref = f.vjp(w, x, gy)
    refy = f(w, x)
    cw, cx, cg = w.copy(), x.copy(), gy.copy()
    f(w, x)
    f.vjp(w, x, gy)
    f.jvp(w, x, gy, gy)
    f.jacobian(w, x)
    assert np.array_equal(w, cw) and np.array_equal(x, cx) and np.array_equal(gy, cg)
    # in place: the gradient of w into w, of x into gy
    ww, gg = w.copy(), gy.copy()
    res = f.vjp(ww, x, gg, out=(ww, gg))
    assert res[0] is ww and res[1] is gg
    assert np.array_equal(ww, ref[0]) and np.array_equal(gg, ref[1])
    xx = x.copy()
    assert f(w, xx, out=xx) is xx and np.array_equal(xx, refy)
    # strided out
    o = np.empty(2000)[::2]
    f(w, x, out=o)
    assert np.array_equal(o, refy)
    # read-only, Fortran and strided inputs
    W = np.asfortranarray(RNG.normal(size=(30, 20)))
    X = RNG.uniform(0.5, 2, size=(20, 30)).T
    W.flags.writeable = False
    # the sum can cancel, so the allowance is relative to the terms, not to the result
    a, b = np.exp(W) * np.sin(X), W / X
    assert np.all(np.abs(f(W, X) - (a + b)) <= 8 * np.finfo(float).eps * (np.abs(a) + np.abs(b)))
    with pytest.raises(ValueError, match="partially overlaps"):
        buf = np.concatenate([w, w])
        f(buf[:1000], x, out=buf[1:1001])


@pytest.mark.parametrize("dt", DTYPES)
def test_in_place_every_method(dt):
    f = fj.fuse(lambda w, x: fj.sin(w) * x + w * w - x / 3.0)
    n = 5000
    w, x, dw, dx, gy = (RNG.normal(size=n).astype(dt) for _ in range(5))
    ref_j = f.jvp(w, x, dw, dx)
    ref_y, ref_g = f.value_and_vjp(w, x, gy)
    ref_s = f.sum_grad(w, x)
    for target in ("w", "x", "dw", "dx"):
        arrs = dict(w=w.copy(), x=x.copy(), dw=dw.copy(), dx=dx.copy())
        o = arrs[target]
        assert f.jvp(arrs["w"], arrs["x"], arrs["dw"], arrs["dx"], out=o) is o
        assert np.array_equal(o, ref_j), target
    ww, xx, gg = w.copy(), x.copy(), gy.copy()
    y, (a, b) = f.value_and_vjp(ww, xx, gg, out=(gg, (ww, xx)))
    assert y is gg and a is ww and b is xx
    assert np.array_equal(y, ref_y) and np.array_equal(a, ref_g[0])
    assert np.array_equal(b, ref_g[1])
    ww, xx = w.copy(), x.copy()
    a, b = f.sum_grad(ww, xx, out=(xx, ww))
    assert np.array_equal(a, ref_s[0]) and np.array_equal(b, ref_s[1])


def test_empty_and_nd_inputs():
    f = fj.fuse(lambda w, x: fj.exp(w) * x - w)
    e = np.empty(0)
    assert f(e, e).shape == (0,)
    gw, gx = f.vjp(e, e, e)
    assert gw.shape == (0,) and gx.shape == (0,)
    W = RNG.normal(size=(3, 4))
    X = RNG.normal(size=(3, 4))
    gw, gx = f.vjp(W, X, np.ones((3, 4)))
    assert gw.shape == (3, 4)
    np.testing.assert_allclose(gw, np.exp(W) * X - 1, rtol=1e-14)
    Jw, Jx = f.jacobian(W, X)
    assert Jw.shape == (12, 12)
    # a scalar tangent for an array input is refused (shapes must match)
    with pytest.raises(ValueError):
        f.jvp(W, X, 1.0, None)


def test_errors():
    f = fj.fuse(lambda w, x: w * x)
    with pytest.raises(TypeError, match="takes 2 inputs"):
        f(np.ones(3))
    with pytest.raises(ValueError, match="w.*x|x.*w"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="complex"):
        f(np.ones(3), np.ones(3) * 1j)
    with pytest.raises(TypeError):
        f(np.ones(3), np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(TypeError, match="one-input"):
        f.derivative(np.ones(3))
    with pytest.raises(TypeError, match="not None"):
        f.vjp(np.ones(3), np.ones(3), None)


UNSUPPORTED = [
    (lambda x: np.exp(x), "np.exp.*fj.exp"),
    (lambda x: np.sin(x) + 1, "np.sin"),
    (lambda x: np.sum(x), "np.sum"),
    (lambda x: x if x > 0 else -x, "comparison >"),
    (lambda x: x < 1, "comparison <"),
    (lambda x: x == 1, "comparison =="),
    (lambda x: x + 1 if x else x, r"bool\(\)"),
    (lambda x: x[0], "indexing"),
    (lambda x: x @ x, "@"),
    (lambda x: x ** x, "traced exponent"),
    (lambda x: 2 ** x, "traced exponent"),
    (lambda x: x // 2, "floor division"),
    (lambda x: x % 2, "modulo"),
    (lambda x: float(x), r"float\(\)"),
    (lambda x: x.sum(), r"\.sum"),
    (lambda x: np.asarray(x), "converting"),
    (lambda x: (x, x), "one value"),
    (lambda x: x * "a", "str"),
    (lambda x: fj.exp.derivative(x), "only the value"),
    (lambda x: fj.mul.vjp(x, x, x), "only the value"),
    (lambda x: fj.exp(x, out=np.empty(3)), "only the value"),
]


@pytest.mark.parametrize("fn,msg", UNSUPPORTED)
def test_unsupported_operations_raise_type_error(fn, msg):
    f = fj.fuse(fn)
    with pytest.raises(TypeError, match=msg):
        f(np.ones(3))


def test_numpy_arithmetic_ufuncs_and_captured_arrays():
    c = RNG.normal(size=50)
    f = fj.fuse(lambda x: c * x + np.multiply(x, 2.0) - c / x)
    x = RNG.uniform(0.5, 2, size=50)
    # tolerances relative to the terms' magnitudes: a sum of terms of both signs may cancel
    # to near 0 (RNG is module-wide, so the draws depend on which tests ran before)
    np.testing.assert_array_less(np.abs(f(x) - (c * x + 2 * x - c / x)),
                                 1e-14 * (np.abs(c * x) + 2 * x + np.abs(c / x)))
    np.testing.assert_array_less(np.abs(f.derivative(x) - (c + 2 + c / x ** 2)),
                                 1e-14 * (np.abs(c) + 2 + np.abs(c) / x ** 2))
    with pytest.raises(ValueError, match="captured"):
        f(np.ones(7))


def test_chains_elementwise_and_nested_fused_are_inlined():
    inner = fj.fuse(lambda a, b: a * fj.sigmoid(b))
    h = fj.chain(fj.sin, fj.square)
    op = fj.elementwise(fj.div, f=fj.exp, g=fj.cosh if hasattr(fj, "cosh") else fj.tanh)
    f = fj.fuse(lambda w, x: inner(h(w), x) + op(w, x) + abs(-w) ** 1.5)
    w = RNG.normal(size=300)
    x = RNG.normal(size=300)
    sig = 1 / (1 + np.exp(-x))
    ref = np.sin(w ** 2) * sig + np.exp(w) / np.tanh(x) + np.abs(w) ** 1.5
    np.testing.assert_allclose(f(w, x), ref, rtol=1e-12)
    fj.assert_vjp(f, f.vjp, (w, x))
    fj.assert_jvp(f, lambda p, t: f.jvp(*p, *t), (w, x), (RNG.normal(size=300),
                                                        RNG.normal(size=300)))


def test_check_vjp_works_unchanged():
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    w = RNG.normal(size=20)
    x = RNG.uniform(0.5, 2, size=20)
    assert fj.check_vjp(f, f.vjp, (w, x)).passed
    assert fj.check_vjp(f, f.vjp, (0.3, x)).passed
    g = fj.fuse(lambda x: fj.tanh(x) * x)
    assert fj.check_vjp(g, g.vjp, (x,)).passed


def test_validation_mode_cross_checks():
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    w = RNG.normal(size=8)
    x = RNG.uniform(0.5, 2, size=8)
    with fj.validating():
        f.vjp(w, x, np.ones(8))
        f.vjp(0.5, x, np.ones(8))
        f.jvp(w, x, np.ones(8), None)
        # the hook can fail: a wrong gradient is caught
        from fastjac import _validation
        with pytest.raises(fj.GradCheckError):
            _validation.cross_check(f, "vjp", (w, x), np.ones(8), (w + 1, x + 1), "f.vjp")


def test_decorator_forms_and_cache():
    @fj.fuse
    def f(x, y):
        return x * y + x

    @fj.fuse(n_inputs=1)
    def g(x, scale=3.0):
        return x * scale

    assert f(2.0, 3.0) == 8.0 and g(2.0) == 6.0
    c = f._compiled
    f(np.ones(3), np.ones(3))
    assert f._compiled is c


def test_kept_plans_give_the_bits_of_fresh_ones():
    # The common calls keep their plan per (value or gradients, dtype) after the first:
    # one object called in every order must give the bits of a fresh object per call.
    def fn(w, x):
        return fj.exp(w) * fj.sin(x) + w / x

    f = fj.fuse(fn)
    w, x, gy = RNG.normal(size=700), RNG.uniform(0.5, 2, size=700), RNG.normal(size=700)
    calls = [lambda f, d: f(w.astype(d), x.astype(d)),
             lambda f, d: f.vjp(w.astype(d), x.astype(d), gy.astype(d)),
             lambda f, d: f.sum_grad(w.astype(d), x.astype(d))]
    for _ in range(2):
        for d in (np.float32, np.float64):
            for call in calls:
                a = np.asarray(call(f, d))
                b = np.asarray(call(fj.fuse(fn), d))
                assert a.dtype == d and np.array_equal(a, b)


# ---- random expression DAGs (hypothesis) ---------------------------------------------------

_UN = [("exp", np.exp, lambda v: np.exp(v)), ("sin", np.sin, np.cos),
       ("cos", np.cos, lambda v: -np.sin(v)), ("tanh", np.tanh, lambda v: 1 - np.tanh(v) ** 2),
       ("square", np.square, lambda v: 2 * v), ("neg", np.negative, lambda v: -np.ones_like(v)),
       ("sigmoid", lambda v: 1 / (1 + np.exp(-v)),
        lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2)]


def _build(ops, k):
    """A random DAG as a list of instructions: run(inputs, lib) evaluates it with fastjac's
    operations (lib "fj", traced) or NumPy's ("np"). With lib "np", pert=(p, f) multiplies
    the p-th operation's result by f (the value sensitivity of test_random_dags)."""

    def run(inputs, lib, pert=None):
        vals = list(inputs)
        count = [0]

        def r(v):  # one operation's result (the fused node it traces to)
            if pert is not None and count[0] == pert[0]:
                v = v * pert[1]
            count[0] += 1
            return v

        for kind, i, j, c in ops:
            a = vals[i % len(vals)]
            b = vals[j % len(vals)]
            if kind == "add":
                v = r(a + b)
            elif kind == "mul":
                v = r(a * b)
            elif kind == "sub":
                v = r(a - r(c * b))
            elif kind == "scale":
                v = r(r(a * c) + 0.25)
            else:
                u = dict((n, (fv, dv)) for n, fv, dv in _UN)[kind]
                v = getattr(fj, kind)(a) if lib == "fj" else r(u[0](a))
            vals.append(v)
        return (vals[-1], count[0]) if pert == "count" else vals[-1]

    return run


_OP = st.tuples(st.sampled_from(["add", "mul", "sub", "scale"] + [n for n, _, _ in _UN]),
                st.integers(0, 20), st.integers(0, 20), st.floats(-2, 2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 3), ops=st.lists(_OP, min_size=1, max_size=8),
       dt=st.sampled_from(DTYPES), n=st.integers(1, 40), seed=st.integers(0, 2 ** 31))
def test_random_dags(k, ops, dt, n, seed):
    if dt == np.float32:  # the fused program rounds its constants to float32
        ops = [(kind, i, j, float(np.float32(c))) for kind, i, j, c in ops]
    run = _build(ops, k)
    names = ", ".join(f"x{i}" for i in range(k))
    fn = eval(f"lambda {names}: run(({names},), 'fj')", {"run": run})  # noqa: S307
    f = fj.fuse(fn)
    rng = np.random.default_rng(seed)
    xs = tuple(rng.uniform(-1.2, 1.2, size=n).astype(dt) for _ in range(k))
    if k > 1 and seed % 3 == 0:  # one input a Python float: scalar expansion (§4.3)
        xs = (float(xs[0][0]),) + xs[1:]
    x64 = tuple(a if isinstance(a, float) else a.astype(np.float64) for a in xs)
    ref = run(x64, "np")
    y = f(*xs)
    # Outside what a comparison can judge, hypothesis draws another example (assume, not a
    # silent pass): a non-finite or huge reference, or an ill-conditioned composition.
    # sin(exp(exp(2x))) at x = 1.2 has slope 4e4: the float32 input's rounding alone moves
    # the value by 1e-3, and a central difference with h = 1e-6 is off by 0.2%.
    assume(np.all(np.isfinite(ref)) and np.max(np.abs(ref)) <= 1e6)
    slope = 0.0
    for i in range(k):
        xp = list(x64)
        xm = list(x64)
        xp[i] = x64[i] + 1e-6
        xm[i] = x64[i] - 1e-6
        dd = (np.asarray(run(tuple(xp), "np")) - np.asarray(run(tuple(xm), "np"))) / 2e-6
        slope = max(slope, float(np.max(np.abs(dd), initial=0.0)))
    assume(slope <= 1e3)
    if dt == np.float64:
        np.testing.assert_allclose(y, np.broadcast_to(ref, y.shape), **tol(dt))
    else:
        # float32 rounds at every op (within 1 ulp, <= 2^-23 |v| for a normal v), and an
        # error e in an intermediate v moves y by about e dy/dv: |y - ref| <= 2^-23
        # Σ_v |v dy/dv| to first order, where |v dy/dv| is measured by scaling v by 1 + h
        # in the float64 reference. Twice that, for the second-order terms and the
        # differences' own error, plus subnormal absolute errors.
        _, n_res = run(x64, "np", "count")
        h = 1e-6
        sens = np.zeros(np.shape(ref))
        for p in range(n_res):
            sens = sens + np.abs(np.asarray(run(x64, "np", (p, 1.0 + h))) - ref) / h
        bound = 2.0 * 2.0 ** -23 * sens + 1e-30
        assert np.all(np.abs(y - np.broadcast_to(ref, y.shape)) <= bound), (
            np.max(np.abs(y - ref) / bound))
    # derivatives against central differences of the float64 NumPy reference
    gy = rng.normal(size=n)
    grads = f.vjp(*x64, gy)
    grads = grads if k > 1 else (grads,)
    sg = f.sum_grad(*x64)
    sg = sg if k > 1 else (sg,)
    jac = f.jacobian(*x64)
    jac = jac if k > 1 else (jac,)
    ts = tuple(rng.normal() if isinstance(a, float) else rng.normal(size=n) for a in x64)
    dy = f.jvp(*x64, *ts)
    tot = np.zeros(n)
    for i in range(k):
        h = 1e-6
        xp = list(x64)
        xm = list(x64)
        xp[i] = x64[i] + h
        xm[i] = x64[i] - h
        d = (np.broadcast_to(run(tuple(xp), "np"), (n,)) - np.broadcast_to(run(tuple(xm), "np"),
                                                                          (n,))) / (2 * h)
        scale = 1e-5 * (1 + np.abs(d))
        jd = jac[i].d if isinstance(jac[i], fj.Diagonal) else jac[i].c
        assert np.all(np.abs(jd - d) <= scale)
        if isinstance(x64[i], float):  # a scalar input: the summed gradient (§4.3)
            assert isinstance(jac[i], fj.Column)
            assert abs(grads[i] - np.sum(gy * d)) <= 1e-5 * (1 + np.sum(np.abs(gy * d)))
            assert abs(sg[i] - np.sum(d)) <= 1e-5 * (1 + np.sum(np.abs(d)))
        else:
            assert np.all(np.abs(grads[i] - gy * d) <= scale * (1 + np.abs(gy))), i
            assert np.all(np.abs(sg[i] - d) <= scale)
        tot += d * ts[i]
    assert np.all(np.abs(dy - tot) <= 1e-5 * (1 + np.abs(tot)) * k * 3)


def test_selfcheck_covers_fused():
    rep = fj.selfcheck()
    text = str(rep)
    assert "fuse" in text


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_do_not_depend_on_the_tile_length(dtype):
    # The interpreter's tile length is a tuning knob: value, JVP, VJP and a scalar input's
    # summed gradient are bitwise the same for every length (n spans several blocks and
    # ends in a partial tile).
    from fastjac._kernels import fused as _FK
    rng = np.random.default_rng(7)
    n = 3 * 4096 + 37
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    x = rng.uniform(0.5, 2.0, n).astype(dtype)
    gy = rng.standard_normal(n).astype(dtype)
    dw = rng.standard_normal(n).astype(dtype)
    f = fj.fuse(lambda w, x, z: fj.exp(w) * fj.sin(x) + w / x * z)
    z = dtype(1.25)

    def everything():
        return (f(w, x, z), f.jvp(w, x, z, dw, None, None), *f.vjp(w, x, z, gy),
                *f.sum_grad(w, x, z))

    old = _FK._set_tile_length(256)
    try:
        ref = everything()
        for t in (16, 48, 128, 304, 1024):
            _FK._set_tile_length(t)
            for a, b in zip(everything(), ref):
                np.testing.assert_array_equal(a, b)
    finally:
        _FK._set_tile_length(old)
    with pytest.raises(ValueError, match="tile length"):
        _FK._set_tile_length(100)
