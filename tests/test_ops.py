"""Element-wise calculus (paper §4.2–§4.5): every op against NumPy and finite differences."""

import math

import numpy as np
import pytest

import fastjac as fj
from fastjac._kernels import elementwise as K
from fastjac._kernels.elementwise import BLOCK_SIZE

RNG = np.random.default_rng(1234)

# name -> (value, derivative, domain sampler) written the way a NumPy user would.
UNARY_REF = {
    "identity": (lambda x: x, lambda x: np.ones_like(x), "any"),
    "neg": (lambda x: -x, lambda x: -np.ones_like(x), "any"),
    "square": (np.square, lambda x: 2 * x, "any"),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), "pos"),
    "exp": (np.exp, np.exp, "any"),
    "log": (np.log, lambda x: 1 / x, "pos"),
    "sin": (np.sin, np.cos, "any"),
    "cos": (np.cos, lambda x: -np.sin(x), "any"),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2, "any"),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, "any"),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(x.dtype), "nonzero"),
    "abs": (np.abs, np.sign, "nonzero"),
    "reciprocal": (lambda x: 1 / x, lambda x: -1 / x**2, "nonzero"),
}
BINARY_REF = {
    "add": (np.add, lambda a, b: np.ones_like(a), lambda a, b: np.ones_like(b)),
    "sub": (np.subtract, lambda a, b: np.ones_like(a), lambda a, b: -np.ones_like(b)),
    "mul": (np.multiply, lambda a, b: b, lambda a, b: a),
    "div": (np.divide, lambda a, b: 1 / b, lambda a, b: -a / b**2),
    "maximum": (np.maximum, lambda a, b: (a >= b).astype(a.dtype), lambda a, b: (a < b).astype(a.dtype)),
    "minimum": (np.minimum, lambda a, b: (a <= b).astype(a.dtype), lambda a, b: (a > b).astype(a.dtype)),
}
DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-13, atol=1e-300), np.float32: dict(rtol=2e-6, atol=1e-30)}


def sample(domain, n, dtype=np.float64, rng=RNG):
    x = rng.uniform(-3, 3, n)
    if domain == "pos":
        x = np.abs(x) + 0.1
    elif domain == "nonzero":
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    return x.astype(dtype)


def central_diff(f, x):
    """Derivative of an element-wise f at every x_i from two evaluations (float64)."""
    h = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)


def ref64(fn, *arrays):
    """Reference computed in float64 from the (possibly float32) inputs."""
    return fn(*(np.asarray(a, dtype=np.float64) for a in arrays))


# ---------------------------------------------------------------------------------- unary
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(UNARY_REF))
def test_unary_against_numpy(name, dtype):
    f, df, dom = UNARY_REF[name]
    op = getattr(fj, name)
    x = sample(dom, 1000, dtype)
    t = RNG.standard_normal(1000).astype(dtype)
    y, d = op(x), op.derivative(x)
    assert y.dtype == dtype and d.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, ref64(f, x).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(d, ref64(df, x).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(op.vjp(x, t), ref64(lambda a, b: df(a) * b, x, t).astype(dtype), **TOL[dtype])
    np.testing.assert_array_equal(op.jvp(x, t), op.vjp(x, t))  # diagonal: JVP == VJP
    np.testing.assert_array_equal(op.jacobian(x).diagonal(), d)


@pytest.mark.parametrize("name", sorted(UNARY_REF))
def test_unary_derivative_matches_finite_differences(name):
    f, _, dom = UNARY_REF[name]
    x = sample(dom, 500)
    op = getattr(fj, name)
    np.testing.assert_allclose(op.derivative(x), central_diff(op, x), rtol=1e-7, atol=1e-9)


def test_tanh_and_sigmoid_derivatives_keep_relative_accuracy_in_the_tails():
    x = np.array([5.0, 10.0, 20.0, 30.0, -30.0, 40.0])
    # exact: sech^2(x) = 4 e^{-2|x|} / (1 + e^{-2|x|})^2 ; sigmoid' = e^{-|x|}/(1+e^{-|x|})^2
    q = np.exp(-2 * np.abs(x))
    np.testing.assert_allclose(fj.tanh.derivative(x), 4 * q / (1 + q) ** 2, rtol=4e-16)
    e = np.exp(-np.abs(x))
    np.testing.assert_allclose(fj.sigmoid.derivative(x), e / (1 + e) ** 2, rtol=4e-16)
    assert fj.sigmoid.derivative(np.array([40.0]))[0] > 0  # v*(1-v) would give 0 here


def test_kink_conventions():
    z = np.array([-1.0, -0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fj.relu.derivative(z), [0, 0, 0, 1])  # ReLU'(0) = 0
    np.testing.assert_array_equal(fj.abs.derivative(z), [-1, 0, 0, 1])  # abs'(0) = 0
    w = np.array([1.0, 2.0, 3.0])
    gw, gx = fj.maximum.vjp(w, np.array([1.0, 1.0, 4.0]), np.ones(3))
    np.testing.assert_array_equal(gw, [1, 1, 0])  # tie: all to the first operand
    np.testing.assert_array_equal(gx, [0, 0, 1])
    gw, gx = fj.minimum.vjp(w, np.array([1.0, 1.0, 4.0]), np.ones(3))
    np.testing.assert_array_equal(gw, [1, 0, 1])
    np.testing.assert_array_equal(gx, [0, 1, 0])


def test_nan_and_inf_propagate():
    x = np.array([np.nan, np.inf, -np.inf, 1.0])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(fj.exp(x), np.exp(x))
        np.testing.assert_array_equal(fj.relu(x), np.maximum(x, 0))
        np.testing.assert_array_equal(fj.sigmoid(x)[1:], [1.0, 0.0, 1 / (1 + np.exp(-1.0))])
        d = fj.relu.derivative(x)
        assert np.isnan(d[0]) and list(d[1:]) == [1.0, 0.0, 1.0]
        assert np.isnan(fj.tanh.derivative(x)[0]) and fj.tanh.derivative(x)[1] == 0.0
        y = fj.maximum(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
        assert np.isnan(y).all()
        gw, gx = fj.maximum.vjp(np.array([np.nan]), np.array([1.0]), np.ones(1))
        assert np.isnan(gw[0]) and np.isnan(gx[0])
        np.testing.assert_array_equal(fj.div(np.array([1.0, 0.0]), np.array([0.0, 0.0]))[:1], [np.inf])


# --------------------------------------------------------------------------------- binary
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BINARY_REF))
def test_binary_against_numpy(name, dtype):
    f, da, db = BINARY_REF[name]
    op = getattr(fj, name)
    w = sample("nonzero", 1000, dtype)
    x = sample("nonzero", 1000, dtype)
    dw, dx, gy = (RNG.standard_normal(1000).astype(dtype) for _ in range(3))
    tol = TOL[dtype]
    np.testing.assert_allclose(op(w, x), ref64(f, w, x).astype(dtype), **tol)
    gw, gx = op.vjp(w, x, gy)
    assert gw.dtype == dtype and gx.dtype == dtype
    np.testing.assert_allclose(gw, ref64(lambda a, b, g: g * da(a, b), w, x, gy).astype(dtype), **tol)
    np.testing.assert_allclose(gx, ref64(lambda a, b, g: g * db(a, b), w, x, gy).astype(dtype), **tol)
    jvp_ref = ref64(lambda a, b, s, t: da(a, b) * s + db(a, b) * t, w, x, dw, dx)
    np.testing.assert_allclose(op.jvp(w, x, dw, dx), jvp_ref.astype(dtype), rtol=tol["rtol"], atol=1e-12)
    sw, sx = op.sum_grad(w, x)
    np.testing.assert_allclose(sw, ref64(da, w, x).astype(dtype), **tol)
    np.testing.assert_allclose(sx, ref64(db, w, x).astype(dtype), **tol)
    Jw, Jx = op.jacobian(w, x)
    assert isinstance(Jw, fj.Diagonal) and isinstance(Jx, fj.Diagonal)
    np.testing.assert_array_equal(Jw.diagonal(), sw)


@pytest.mark.parametrize("name", sorted(BINARY_REF))
def test_binary_partials_match_finite_differences(name):
    op = getattr(fj, name)
    w = sample("nonzero", 400)
    x = sample("nonzero", 400)  # |x| >= 0.1: away from the pole of div
    x = np.where(np.abs(w - x) < 0.1, -x, x)  # and no max/min ties within a step
    gw, gx = op.sum_grad(w, x)
    np.testing.assert_allclose(gw, central_diff(lambda v: op(v, x), w), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gx, central_diff(lambda v: op(w, v), x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BINARY_REF))
def test_scalar_expansion(name, dtype):
    """§4.3: x ○ z for a scalar z — a Column Jacobian and a scalar gradient (the sum)."""
    f, da, db = BINARY_REF[name]
    op = getattr(fj, name)
    x = sample("nonzero", 3 * BLOCK_SIZE + 17, dtype)
    gy = RNG.standard_normal(x.size).astype(dtype)
    z = 0.75
    zv = np.full_like(x, z)
    tol = dict(rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-12)
    np.testing.assert_allclose(op(x, z), ref64(f, x, zv).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(op(z, x), ref64(f, zv, x).astype(dtype), **TOL[dtype])
    gx, gz = op.vjp(x, z, gy)
    assert np.ndim(gz) == 0 and gz.dtype == dtype  # a scalar operand's gradient is a scalar
    np.testing.assert_allclose(gx, ref64(lambda a, b, g: g * da(a, b), x, zv, gy).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(gz, ref64(lambda a, b, g: np.sum(g * db(a, b)), x, zv, gy), **tol)
    gz2, gx2 = op.vjp(z, x, gy)
    np.testing.assert_allclose(gz2, ref64(lambda a, b, g: np.sum(g * da(b, a)), x, zv, gy), **tol)
    Jx, Jz = op.jacobian(x, z)
    assert isinstance(Jx, fj.Diagonal) and isinstance(Jz, fj.Column) and Jz.shape == (x.size, 1)
    np.testing.assert_allclose(Jz.c, ref64(db, x, zv).astype(dtype), **TOL[dtype])
    # JVP with a scalar tangent for the scalar operand
    dx = RNG.standard_normal(x.size).astype(dtype)
    ref = ref64(lambda a, b, s: da(a, b) * s + db(a, b) * 0.5, x, zv, dx)
    np.testing.assert_allclose(op.jvp(x, z, dx, 0.5), ref.astype(dtype), rtol=tol["rtol"], atol=1e-6)


def test_all_scalar_operands_return_scalars():
    y = fj.mul(2.0, 3.0)
    assert np.ndim(y) == 0 and y == 6.0
    gw, gx = fj.mul.vjp(2.0, 3.0, 1.0)
    assert (gw, gx) == (3.0, 2.0)
    assert fj.exp(0.0) == 1.0 and fj.exp.derivative(0) == 1.0


# ----------------------------------------------------------------------- fused and chained
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_fused_exp_sin(dtype):
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    w, x, gy, dw, dx = (RNG.standard_normal(5000).astype(dtype) for _ in range(5))
    ew, sx, cx = (ref64(np.exp, w), ref64(np.sin, x), ref64(np.cos, x))
    np.testing.assert_allclose(op(w, x), (ew * sx).astype(dtype), **TOL[dtype])
    gw, gx = op.vjp(w, x, gy)
    np.testing.assert_allclose(gw, (gy * ew * sx).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(gx, (gy * ew * cx).astype(dtype), **TOL[dtype])
    np.testing.assert_allclose(op.jvp(w, x, dw, dx), (ew * sx * dw + ew * cx * dx).astype(dtype),
                               rtol=TOL[dtype]["rtol"] * 10, atol=1e-6)
    # the fused op agrees with finite differences
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    gw, gx = op.sum_grad(w64, x64)
    np.testing.assert_allclose(gw, central_diff(lambda v: op(v, x64), w64), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gx, central_diff(lambda v: op(w64, v), x64), rtol=1e-7, atol=1e-9)


def test_chain_sin_of_square_paper_example():
    """§4.5.1: y = sin(x²), dy/dx = 2x cos(x²)."""
    h = fj.chain(fj.sin, fj.square)
    x = np.linspace(-2, 2, 41)
    np.testing.assert_allclose(h(x), np.sin(x**2), rtol=1e-15)
    np.testing.assert_allclose(h.derivative(x), 2 * x * np.cos(x**2), rtol=1e-14, atol=1e-15)
    assert isinstance(h.jacobian(x), fj.Diagonal)


def test_chain_ln_sin_cubed_squared_paper_example():
    """§4.5.1: d/dx ln(sin(x³)²) = 6x² cos(x³)/sin(x³); the chain on u = x³ with du = 3x² dx."""
    h = fj.chain(fj.log, fj.square, fj.sin)
    x = np.linspace(0.3, 1.4, 23)
    np.testing.assert_allclose(h(x**3), np.log(np.sin(x**3) ** 2), rtol=1e-14)
    np.testing.assert_allclose(h.jvp(x**3, 3 * x**2), 6 * x**2 * np.cos(x**3) / np.sin(x**3), rtol=1e-13)


def test_chain_and_elementwise_compose():
    h = fj.chain(fj.tanh, fj.chain(fj.exp, fj.neg))  # tanh(exp(-x))
    x = sample("any", 300)
    np.testing.assert_allclose(h(x), np.tanh(np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(h.derivative(x), central_diff(h, x), rtol=1e-7, atol=1e-10)
    op = fj.elementwise(fj.elementwise(fj.add, f=fj.sin), f=fj.square)  # sin(w²) + x
    w = sample("any", 300)
    np.testing.assert_allclose(op(w, x), np.sin(w**2) + x, rtol=1e-14)
    with pytest.raises(TypeError, match="chain"):
        fj.chain(fj.sin, np.sin)
    with pytest.raises(TypeError):
        fj.chain()
    with pytest.raises(TypeError, match="f must be"):
        fj.elementwise(fj.mul, f=np.exp)


# ----------------------------------------------------------------------- paper's §4 tables
def test_paper_elementwise_table():
    """§4.2: Jacobians of w ⊕ x, w − x, w ⊗ x, w ⊘ x."""
    w, x = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    I = np.eye(3)
    for op, jw, jx in [
        (fj.add, I, I), (fj.sub, I, -I), (fj.mul, np.diag(x), np.diag(w)),
        (fj.div, np.diag(1 / x), np.diag(-w / x**2)),
    ]:
        Jw, Jx = op.jacobian(w, x)
        np.testing.assert_allclose(Jw.todense(), jw, rtol=1e-15)
        np.testing.assert_allclose(Jx.todense(), jx, rtol=1e-15)


def test_paper_scalar_expansion_and_sum_reduction():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    z = 2.5
    Jx, Jz = fj.add.jacobian(x, z)          # ∂(x+z)/∂x = I, ∂(x+z)/∂z = 1
    np.testing.assert_array_equal(Jx.todense(), np.eye(4))
    np.testing.assert_array_equal(Jz.todense(), np.ones((4, 1)))
    Jx, Jz = fj.mul.jacobian(x, z)          # ∂(xz)/∂x = I z, ∂(xz)/∂z = x
    np.testing.assert_array_equal(Jx.todense(), z * np.eye(4))
    np.testing.assert_array_equal(Jz.todense(), x[:, None])
    gx, gz = fj.mul.sum_grad(x, z)          # ∇_x sum(xz) = z 1ᵀ, ∇_z sum(xz) = sum(x)
    np.testing.assert_array_equal(gx, np.full(4, z))
    assert gz == x.sum()
    assert fj.sum(x) == 10.0
    np.testing.assert_array_equal(fj.sum.grad(x), np.ones(4))   # ∇ sum(x) = 1ᵀ
    assert isinstance(fj.sum.jacobian(x), fj.Row)


def test_paper_dot_product():
    """§4.4 / §5: ∂(w·x)/∂w = xᵀ, ∂(w·x)/∂x = wᵀ."""
    w, x = RNG.standard_normal(50), RNG.standard_normal(50)
    np.testing.assert_allclose(fj.dot(w, x), w @ x, rtol=1e-13)
    gw, gx = fj.dot.grad(w, x)
    np.testing.assert_array_equal(gw, x)
    np.testing.assert_array_equal(gx, w)
    assert not np.shares_memory(gw, x)
    Jw, Jx = fj.dot.jacobian(w, x)
    assert Jw.shape == (1, 50)
    dw, dx = RNG.standard_normal(50), RNG.standard_normal(50)
    np.testing.assert_allclose(fj.dot.jvp(w, x, dw, dx), x @ dw + w @ dx, rtol=1e-12)
    gw, gx = fj.dot.vjp(w, x, 2.0)
    np.testing.assert_array_equal(gw, 2 * x)
    with pytest.raises(ValueError, match="w and x"):
        fj.dot(w, x[:10])


def test_sum_and_dot_accumulate_in_double():
    x = np.full(10**6, 0.1, dtype=np.float32)
    exact = np.float32(10**6 * np.float64(np.float32(0.1)))  # the correctly rounded sum
    assert fj.sum(x) == exact and fj.sum(x).dtype == np.float32
    assert np.cumsum(x)[-1] != exact  # a float32 running sum drifts; double does not
    assert fj.dot(x, x) == np.float32(10**6 * np.float64(np.float32(0.1)) ** 2)



# The reduction order (fastjac/_kernels/fj_reduce.h): per block of BLOCK_SIZE elements, 16
# double accumulators (element j in accumulator j mod 16; 32 and j mod 32 for fj.sum of
# float32), a fixed tree, blocks merged in order. Lengths around every boundary of that
# scheme:
REDUCE_LENGTHS = [0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 65, 255, 257, BLOCK_SIZE - 1,
                  BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 5]
U64 = 2.0 ** -53  # unit roundoff of double


def _reduce_bound(terms, dtype):
    """(exact sum, error bound) for the fixed-order double sum of float64 ``terms``,
    rounded to ``dtype``: per block at most ceil(BLOCK/16) additions per accumulator, 4 in
    the tree, one per block in the merge; then the rounding to dtype."""
    n = terms.size
    exact = math.fsum(terms)
    nblocks = -(-n // BLOCK_SIZE)
    per_acc = -(-min(n, BLOCK_SIZE) // 16)
    bound = (per_acc + 4 + nblocks) * U64 * float(np.sum(np.abs(terms)))
    if dtype == np.float32:
        bound += 2.0 ** -24 * abs(exact) * (1 + 1e-6)
    return exact, bound


def _layouts(a):
    """a as given, strided (every other element of a twice-as-long buffer), read-only,
    and misaligned (one element into a fresh buffer)."""
    strided = np.empty(2 * a.size, a.dtype)[::2]
    strided[:] = a
    ro = a.copy()
    ro.flags.writeable = False
    buf = np.empty(a.size + 1, a.dtype)
    shifted = buf[1:]
    shifted[:] = a
    return {"contiguous": a, "strided": strided, "read-only": ro, "misaligned": shifted}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_sum_and_dot_against_fsum(dtype):
    """Σ x and w·x against math.fsum of the float64 terms, within the bound of the fixed
    order, for every length around the accumulator, tile and block boundaries and every
    layout; the same bits whatever the layout."""
    rng = np.random.default_rng(77)
    for n in REDUCE_LENGTHS:
        # mixed magnitudes and signs: cancellation makes the bound meaningful
        w = (rng.standard_normal(n) * np.exp(rng.uniform(-8, 8, n))).astype(dtype)
        x = (rng.standard_normal(n) * np.exp(rng.uniform(-8, 8, n))).astype(dtype)
        w64, x64 = w.astype(np.float64), x.astype(np.float64)
        ref_sum, tol_sum = _reduce_bound(x64, dtype)
        ref_dot, tol_dot = _reduce_bound(w64 * x64, dtype)  # float32 products are exact
        sums, dots = set(), set()
        for name, xl in _layouts(x).items():
            wl = _layouts(w)[name]
            s, d = fj.sum(xl), fj.dot(wl, xl)
            assert s.dtype == dtype and d.dtype == dtype
            assert abs(float(s) - ref_sum) <= tol_sum, (n, name, float(s), ref_sum, tol_sum)
            assert abs(float(d) - ref_dot) <= tol_dot, (n, name, float(d), ref_dot, tol_dot)
            sums.add(float(s))
            dots.add(float(d))
            assert fj.sum.jvp(xl, xl) == s and fj.dot.jvp(wl, xl, None, xl) == fj.dot(wl, xl)
        assert len(sums) == 1 and len(dots) == 1, (n, sums, dots)
        # the kernel's double result, before the rounding to dtype
        raw = K.reduce(np.ascontiguousarray(w), np.ascontiguousarray(x))
        _, tol64 = _reduce_bound(w64 * x64, np.float64)
        assert abs(raw - ref_dot) <= tol64, (n, raw, ref_dot)


SCALAR_SUM_TERMS = {  # Σ gy ∂y/∂z for y = x ○ z (z_second) or z ○ x, as exact float64 terms
    "mul": lambda x, z, g, z_second: x * g,
    "add": lambda x, z, g, z_second: g,
    "sub": lambda x, z, g, z_second: -g if z_second else g,
    "maximum": lambda x, z, g, z_second: np.where((x < z) if z_second else (z >= x), g, 0.0),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(SCALAR_SUM_TERMS))
def test_scalar_operand_gradient_against_fsum(name, dtype):
    """The scalar operand's VJP Σ gy ∂y/∂z (direct loop and interpreter, both orders)
    against math.fsum of the float64 terms; direct and interpreter give the same bits."""
    rng = np.random.default_rng(78)
    op = getattr(fj, name)
    via_interpreter = fj.elementwise(op, f=fj.identity, g=fj.identity)
    z = 0.25
    for n in REDUCE_LENGTHS[1:]:
        x = rng.standard_normal(n).astype(dtype)
        gy = (rng.standard_normal(n) * np.exp(rng.uniform(-6, 6, n))).astype(dtype)
        x64, g64 = x.astype(np.float64), gy.astype(np.float64)
        for z_second in (True, False):
            ref, tol = _reduce_bound(SCALAR_SUM_TERMS[name](x64, z, g64, z_second), dtype)
            for xl, gl in zip(_layouts(x).values(), _layouts(gy).values()):
                if z_second:
                    gz = op.vjp(xl, z, gl)[1]
                    gz_i = via_interpreter.vjp(xl, z, gl)[1]
                else:
                    gz = op.vjp(z, xl, gl)[0]
                    gz_i = via_interpreter.vjp(z, xl, gl)[0]
                assert gz.dtype == dtype
                assert abs(float(gz) - ref) <= tol, (n, z_second, float(gz), ref, tol)
                assert gz == gz_i, (n, z_second)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_reductions_bitwise_identical_for_every_n_threads(dtype):
    """Above the parallel threshold the block partition and the merge order are fixed:
    sum, dot and the scalar operand's gradient (direct and interpreter) give the same bits
    for 1, 2 and 3 threads."""
    from fastjac.ops import PARALLEL_THRESHOLD

    rng = np.random.default_rng(79)
    n = PARALLEL_THRESHOLD + 2 * BLOCK_SIZE + 7
    w, x, gy = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    fused = fj.elementwise(fj.mul, f=fj.exp)

    def results(nt):
        return (fj.sum(x, n_threads=nt), fj.dot(w, x, n_threads=nt),
                fj.mul.vjp(x, 1.5, gy, n_threads=nt)[1], fj.mul.sum_grad(1.5, x, n_threads=nt)[0],
                fj.div.vjp(x, 1.5, gy, n_threads=nt)[1], fj.sub.sum_grad(1.5, x, n_threads=nt)[0],
                fused.vjp(0.5, x, gy, n_threads=nt)[0])

    ref = results(1)
    for nt in (2, 3):
        got = results(nt)
        for k, (a, b) in enumerate(zip(ref, got)):
            assert a.tobytes() == b.tobytes(), (nt, k, a, b)
    assert fj.sum(x, n_threads=None).tobytes() == ref[0].tobytes()


@pytest.fixture
def reduce_level():
    """Set the reduction loops' version (0 portable, 1 AVX2) for one test, then restore."""
    yield K._set_reduce_level
    K._set_reduce_level(-1)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_reduce_simd_versions_bitwise_identical(dtype, reduce_level):
    """The AVX2 reduction loops and the portable ones add the same terms in the same order:
    the same bits for sum, dot and the scalar operand's gradient (direct and interpreter),
    for every length around the boundaries and every alignment of the input."""
    if reduce_level(1) != 1:
        pytest.skip("this CPU or build has no AVX2 version")
    rng = np.random.default_rng(80)
    fused = fj.elementwise(fj.mul, f=fj.exp)
    for n in REDUCE_LENGTHS + [2 * BLOCK_SIZE + 300]:
        w = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(dtype)
        x = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(dtype)
        gy = rng.standard_normal(n).astype(dtype)
        res = {}
        for level in (1, 0):
            assert reduce_level(level) == level
            out = []
            for off in range(4):  # start 0..3 elements into a fresh buffer
                bw, bx = np.empty(n + 4, dtype), np.empty(n + 4, dtype)
                wl, xl = bw[off:off + n], bx[off:off + n]
                wl[:], xl[:] = w, x
                out.append((fj.sum(xl, n_threads=1), fj.dot(wl, xl, n_threads=1),
                            fj.mul.vjp(xl, 1.5, gy, n_threads=1)[1],
                            fj.add.vjp(1.5, xl, gy, n_threads=1)[0],
                            fused.vjp(0.5, xl, gy, n_threads=1)[0])
                           + _raw_reductions(wl, xl, gy))
            res[level] = out
        bits = {tuple(np.float64(v).tobytes() for v in r) for lv in (0, 1) for r in res[lv]}
        assert len(bits) == 1, (n, res)


def test_float32_dot_fma_version_same_bits_at_the_extremes(reduce_level):
    """The AVX2 float32 dot adds with fma(a, b, acc), which equals acc + a b only because
    the double product of two floats is exact: check products at the ends of the range
    (largest and subnormal floats, whose products are far outside float32), exact
    cancellation, signed zeros, inf and NaN against the portable version and, for the
    finite ones, against math.fsum of the exact products."""
    if reduce_level(1) != 1:
        pytest.skip("this CPU or build has no AVX2 version")
    f32 = np.finfo(np.float32)
    big, tiny = float(f32.max), float(f32.smallest_subnormal)
    rng = np.random.default_rng(81)
    cases = []
    for n in (16, 33, 4096 + 17):
        mags = rng.choice([big, 1.0, 2.0 ** -126, tiny, 3.0e-39, 1.5e38], n)
        w = (mags * rng.choice([-1.0, 1.0], n)).astype(np.float32)
        x = (rng.choice([big, tiny, 0.75, 2.0 ** 60, 2.0 ** -60], n)
             * rng.choice([-1.0, 1.0], n)).astype(np.float32)
        cases.append((w, x))
        cases.append((np.concatenate([w, w]), np.concatenate([x, -x])))  # exact cancellation
    zeros = np.array([-0.0] * 20, np.float32)
    cases.append((zeros, np.ones(20, np.float32)))
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, 1.0] * 4, np.float32)
    cases.append((specials, np.roll(specials, 1)))
    for w, x in cases:
        res = {}
        for level in (1, 0):
            assert reduce_level(level) == level
            res[level] = np.float64(K.reduce(w, x, 1)).tobytes()
        assert res[0] == res[1], (w, x)
        if np.all(np.isfinite(w)) and np.all(np.isfinite(x)):
            exact = math.fsum(w.astype(np.float64) * x.astype(np.float64))
            _, tol = _reduce_bound(w.astype(np.float64) * x.astype(np.float64), np.float64)
            assert abs(np.frombuffer(res[1])[0] - exact) <= tol


def _sum32_order(x):
    """fj.sum's float32 order, in Python floats (doubles): per block, element j in
    accumulator j mod 32; the block total is the 16-accumulator tree of acc[k] + acc[k+16];
    the block totals added in order."""
    total = 0.0
    for start in range(0, x.size, BLOCK_SIZE):
        acc = [0.0] * 32
        for j, v in enumerate(x[start:start + BLOCK_SIZE].astype(np.float64).tolist()):
            acc[j % 32] += v
        t = [acc[k] + acc[k + 16] for k in range(16)]
        t = [t[k] + t[k + 8] for k in range(8)]
        u = [t[k] + t[k + 4] for k in range(4)]
        block = (u[0] + u[2]) + (u[1] + u[3])
        total = block if start == 0 else total + block
    return total


def test_float32_sum_order_32_accumulators(reduce_level):
    """fj.sum of float32 adds in its documented order (32 accumulators, fj_reduce.h) in
    every version of the loop: the same bits as the order written out in Python, for
    lengths around the accumulator and block boundaries, on 1 and 2 threads; and the
    AVX2 version (additions as fma(x, 1, acc)) gives the portable version's bits for
    infinities, NaN, signed zeros, the largest and subnormal floats."""
    rng = np.random.default_rng(82)
    levels = [lv for lv in (1, 0) if reduce_level(lv) == lv]
    for n in REDUCE_LENGTHS[1:] + [64, 2 * BLOCK_SIZE + 300]:
        x = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(np.float32)
        want = _sum32_order(x)
        for lv in levels:
            reduce_level(lv)
            assert K.reduce(x, None, 1) == want, (n, lv)
            assert K.reduce(x, None, 2) == want, (n, lv)
        assert fj.sum(x) == np.float32(want)
    f32 = np.finfo(np.float32)
    specials = [np.array([np.inf, -np.inf, np.nan, -0.0, 1.0] * 8, np.float32),
                np.array([-0.0] * 40, np.float32),
                np.array([np.inf, 1.0, -np.inf] + [2.0] * 40, np.float32),
                np.array([f32.max, f32.max, -f32.max, f32.smallest_subnormal] * 20, np.float32)]
    for x in specials:
        bits = set()
        for lv in levels:
            reduce_level(lv)
            bits.add(np.float64(K.reduce(x, None, 1)).tobytes())
        assert len(bits) == 1, (x, bits)
        if np.all(np.isfinite(x)):
            assert np.frombuffer(bits.pop())[0] == _sum32_order(x)


def _raw_reductions(w, x, gy):
    """The kernels' double results before the rounding to the dtype (which would hide a
    float32 difference): Σ x, w·x, and Σ gy x for a scalar operand, direct and through
    the interpreter (f = exp)."""
    n, dt = x.size, x.dtype
    z = np.full(1, 1.5, dt)
    g = np.empty(n, dt)
    mul, exp = K.BINARY_CODES["mul"], bytes([K.UNARY_CODES["exp"]])
    return (K.reduce(x, None, 1), K.reduce(w, x, 1),
            K.binary(mul, b"", b"", n, x, z, x_scalar=True, gy=gy, gw_out=g,
                     want_scalar_grads=True, n_threads=1)[1],
            K.binary(mul, exp, b"", n, x, z, x_scalar=True, gy=gy, gw_out=g,
                     want_scalar_grads=True, n_threads=1)[1])

# ------------------------------------------------------------ dtypes, layouts, out, threads
def test_dtype_rules():
    x32 = np.ones(4, np.float32)
    assert fj.exp(x32).dtype == np.float32
    assert fj.mul(x32, 2.0).dtype == np.float32                 # weak Python scalar
    assert fj.mul(x32, np.ones(4)).dtype == np.float64          # result_type
    assert fj.exp(np.arange(4)).dtype == np.float64             # ints compute in float64
    assert fj.exp(np.array([True, False])).dtype == np.float64
    assert fj.exp([0.0, 1.0]).dtype == np.float64               # lists
    assert fj.exp(np.ones(3, np.float16)).dtype == np.float32   # float16 computes in float32
    for bad, name in [(np.ones(3, complex), "x"), (np.array(["a"]), "x"), (np.array([object()]), "x")]:
        with pytest.raises(TypeError, match=name):
            fj.exp(bad)
    with pytest.raises(TypeError, match="gy"):
        fj.exp.vjp(np.ones(3), np.ones(3, complex))
    with pytest.raises(TypeError, match="w"):
        fj.mul(1j, np.ones(3))
    with pytest.raises(TypeError, match="x"):
        fj.mul(np.ones(3), np.ones(3, np.longdouble)) if np.dtype(np.longdouble).itemsize > 8 else fj.mul(np.ones(3), "abc")


def test_shape_errors_name_both_arguments():
    with pytest.raises(ValueError, match=r"w and x .*\(3,\).*\(4,\)"):
        fj.mul(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="x and gy"):
        fj.exp.vjp(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="w and dw"):
        fj.mul.jvp(np.ones(3), np.ones(3), np.ones(4), None)
    with pytest.raises(ValueError, match="y and gy"):
        fj.mul.vjp(np.ones(3), np.ones(3), np.ones(2))
    with pytest.raises(ValueError):
        fj.mul(np.ones(3), np.ones(1))  # (1,) is not a scalar: no broadcasting


def layouts(x):
    """The same values as ``x`` (1-D, even length) in several memory layouts."""
    n = x.size
    big = np.empty(2 * n, x.dtype)
    big[::2] = x
    ro = x.copy()
    ro.flags.writeable = False
    neg = x[::-1].copy()[::-1]
    f2 = np.asfortranarray(x.reshape(2, n // 2))
    return {"strided": big[::2], "readonly": ro, "negative": neg, "fortran": f2}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_any_layout_gives_the_same_result(dtype):
    x = sample("any", 2 * BLOCK_SIZE + 10, dtype)
    gy = RNG.standard_normal(x.size).astype(dtype)
    want_u = fj.tanh.vjp(x, gy)
    want_b = fj.div.vjp(x, gy + 5, gy)
    for lname, xl in layouts(x).items():
        for gname, gl in layouts(gy).items():
            if xl.shape != gl.shape:
                continue
            got = fj.tanh.vjp(xl, gl)
            assert got.shape == xl.shape, (lname, gname)
            np.testing.assert_array_equal(np.ravel(got, order="K" if lname != "fortran" else "C"),
                                          np.ravel(fj.tanh.vjp(np.ascontiguousarray(xl), np.ascontiguousarray(gl))))
            if xl.ndim == 1:
                np.testing.assert_array_equal(got, want_u)
                gw, gx = fj.div.vjp(xl, gl + 5, gl)
                np.testing.assert_array_equal(gw, want_b[0])
                np.testing.assert_array_equal(gx, want_b[1])


def test_nd_arrays_are_elementwise():
    x = RNG.standard_normal((3, 4, 5))
    y = fj.sin(x)
    assert y.shape == (3, 4, 5)
    np.testing.assert_allclose(y, np.sin(x), rtol=1e-15)
    gw, gx = fj.mul.vjp(x, 2.0, np.ones_like(x))
    assert gw.shape == x.shape and np.ndim(gx) == 0 and gx == pytest.approx(x.sum())


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_out_argument(dtype):
    x = sample("any", 100, dtype)
    gy = RNG.standard_normal(100).astype(dtype)
    out = np.empty(100, dtype)
    r = fj.exp.vjp(x, gy, out=out)
    assert r is out
    np.testing.assert_array_equal(out, fj.exp.vjp(x, gy))
    # non-contiguous out is filled through a temporary
    big = np.zeros(200, dtype)
    fj.exp.vjp(x, gy, out=big[::2])
    np.testing.assert_array_equal(big[::2], out)
    assert not big[1::2].any()
    # binary pair
    ow, ox = np.empty(100, dtype), np.empty(100, dtype)
    gw, gx = fj.mul.vjp(x, gy, gy, out=(ow, ox))
    assert gw is ow and gx is ox
    np.testing.assert_array_equal(ow, gy * gy)
    # in place: out may be exactly an input
    xc = x.copy()
    fj.exp.vjp(xc, gy, out=xc)
    np.testing.assert_array_equal(xc, out)
    gc = gy.copy()
    wcopy = x.copy()
    fj.mul.vjp(wcopy, gc, gc, out=(gc, None))   # gw overwrites gy, which gx still needs
    np.testing.assert_array_equal(gc, gy * gy)
    v = x.copy()
    fj.sin(v, out=v)
    np.testing.assert_array_equal(v, fj.sin(x))


def test_out_errors():
    x = np.ones(10)
    with pytest.raises(ValueError, match="out has shape"):
        fj.exp(x, out=np.empty(9))
    with pytest.raises(TypeError, match="out has dtype"):
        fj.exp(x, out=np.empty(10, np.float32))
    ro = np.empty(10)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fj.exp(x, out=ro)
    with pytest.raises(TypeError, match="out must be"):
        fj.exp(x, out=[0.0] * 10)
    buf = np.arange(12.0)
    with pytest.raises(ValueError, match="overlap"):
        fj.exp(buf[:10], out=buf[2:12])
    o = np.empty(10)
    with pytest.raises(ValueError, match="overlaps"):
        fj.mul.vjp(x, x, x, out=(o, o))
    with pytest.raises(TypeError, match="pair"):
        fj.mul.vjp(x, x, x, out=o)


def test_n_threads_give_bitwise_identical_results():
    n = 7 * BLOCK_SIZE + 123
    w, x, gy = (RNG.standard_normal(n) for _ in range(3))
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    r1 = op.vjp(w, x, gy, n_threads=1)
    r2 = op.vjp(w, x, gy, n_threads=2)
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_array_equal(r1[1], r2[1])
    s1 = fj.mul.vjp(x, 1.5, gy, n_threads=1)[1]
    s2 = fj.mul.vjp(x, 1.5, gy, n_threads=2)[1]
    s3 = fj.mul.vjp(x, 1.5, gy, n_threads=3)[1]
    assert s1 == s2 == s3  # scalar gradient: fixed block partition and merge order
    assert fj.dot(w, x, n_threads=1) == fj.dot(w, x, n_threads=2)
    assert fj.sum(x, n_threads=1) == fj.sum(x, n_threads=2)
    np.testing.assert_array_equal(fj.tanh.vjp(x, gy, n_threads=1), fj.tanh.vjp(x, gy, n_threads=2))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_threads"):
            fj.exp(x, n_threads=bad)
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="n_threads"):
            fj.exp(x, n_threads=bad)


def test_empty_inputs():
    e = np.empty(0)
    assert fj.exp(e).shape == (0,)
    assert fj.exp.vjp(e, e).shape == (0,)
    gw, gx = fj.mul.vjp(e, e, e)
    assert gw.shape == gx.shape == (0,)
    gw, gz = fj.mul.vjp(e, 2.0, e)
    assert gz == 0.0
    assert fj.sum(e) == 0.0 and fj.dot(e, e) == 0.0


def test_inputs_are_never_written():
    w, x, gy, dw, dx = (RNG.standard_normal(3 * BLOCK_SIZE) for _ in range(5))
    before = [a.copy() for a in (w, x, gy, dw, dx)]
    op = fj.elementwise(fj.div, f=fj.sigmoid, g=fj.chain(fj.exp, fj.sin))
    op(w, x), op.vjp(w, x, gy), op.jvp(w, x, dw, dx), op.sum_grad(w, x), op.jacobian(w, x)
    fj.tanh.vjp(x, gy), fj.tanh.jvp(x, dx), fj.tanh.value_and_vjp(x, gy)
    for a, b in zip((w, x, gy, dw, dx), before):
        np.testing.assert_array_equal(a, b)


def test_value_and_vjp_is_one_pass_of_both():
    x, gy = RNG.standard_normal(1000), RNG.standard_normal(1000)
    y, g = fj.sigmoid.value_and_vjp(x, gy)
    np.testing.assert_array_equal(y, fj.sigmoid(x))
    np.testing.assert_array_equal(g, fj.sigmoid.vjp(x, gy))


def test_kernel_entry_points_reject_bad_buffers():
    """The compiled layer re-checks sizes and dtypes: a caller bypassing _validate gets
    an exception, never an out-of-bounds access."""
    from fastjac._kernels import elementwise as K

    x = np.ones(10)
    with pytest.raises(ValueError):
        K.unary(b"\x04", x, t=np.ones(9), d_out=np.empty(10), n_threads=1)
    with pytest.raises(TypeError):
        K.unary(b"\x04", x, t=np.ones(10, np.float32), d_out=np.empty(10), n_threads=1)
    with pytest.raises(ValueError):
        K.unary(b"\x63", x, y_out=np.empty(10), n_threads=1)
    with pytest.raises(ValueError):
        K.unary(b"\x04", x, y_out=np.empty(20)[::2], n_threads=1)
    with pytest.raises(ValueError):
        K.binary(2, b"", b"", 11, x, x, y_out=np.empty(11))
    with pytest.raises(ValueError):
        K.reduce(x, np.ones(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_vjp_special_values_bitwise(dtype):
    """relu's VJP is t where x > 0, 0*t where x <= 0 (signed zeros; NaN for t = inf or NaN),
    and NaN where x is NaN: NumPy's np.where expression bit for bit, over lengths that end
    inside and outside a vector, strided and in place, on 1 and 2 threads."""
    bits = np.uint64 if dtype == np.float64 else np.uint32
    xs = np.array([1.5, -1.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 2.0, -5e-310, 5e-310], dtype)
    ts = np.array([2.0, np.inf, -3.0, np.nan, 1.0, -1.0, 5.0, -0.0, -np.inf, 7.0], dtype)
    grid = np.stack(np.meshgrid(xs, ts), -1).reshape(-1, 2)
    x0, t0 = grid[:, 0].copy(), grid[:, 1].copy()

    def ref(x, t):
        with np.errstate(invalid="ignore"):
            return np.where(x > 0, t, np.where(np.isnan(x), x, dtype(0) * t))

    for n in (1, 7, 17, 100, 3 * BLOCK_SIZE + 5):
        x = np.resize(x0, n)
        t = np.resize(t0[::-1], n)
        want = ref(x, t).view(bits)
        for n_threads in (1, 2):
            assert np.array_equal(fj.relu.vjp(x, t, n_threads=n_threads).view(bits), want)
        # strided views, and the cotangent's own buffer as out=
        xx = np.repeat(x, 2)[::2]
        tt = t.copy()
        fj.relu.vjp(xx, tt, out=tt)
        assert np.array_equal(tt.view(bits), want)
        xo = x.copy()  # and x's own buffer
        fj.relu.vjp(xo, t, out=xo, n_threads=2)
        assert np.array_equal(xo.view(bits), want)
        d = np.where(x > 0, dtype(1), np.where(np.isnan(x), x, dtype(0)))
        assert np.array_equal(fj.relu.derivative(x).view(bits), d.view(bits))


def _same_bits_or_both_nan(got, want, bits):
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(bits), want[~nan].view(bits))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum"])
def test_binary_value_and_vjp_special_values(name, dtype):
    """The plain binary loops against NumPy's expressions bit for bit (NaN for NaN) over signed
    zeros, infinities, NaN, ties and subnormals, at lengths that end inside and outside a
    vector, on 1 and 2 threads: maximum/minimum's ties go to w, a NaN operand gives NaN and
    NaN partials, and a zero partial times gy is 0*gy (a signed zero)."""
    bits = np.uint64 if dtype == np.float64 else np.uint32
    tiny = np.finfo(dtype).smallest_subnormal
    vals = np.array([1.5, -1.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 2.0, tiny, -3 * tiny], dtype)
    g = np.array([2.0, -0.0, -3.0, np.nan, 1.0, np.inf, 5.0, 0.0, -7.0, 3.0], dtype)
    ww, xx = (a.ravel() for a in np.meshgrid(vals, vals))
    one, zero = dtype(1), dtype(0)
    with np.errstate(all="ignore"):
        for n in (3, 9, 17, 100, 3 * BLOCK_SIZE + 5):
            w, x, gy = np.resize(ww, n), np.resize(xx, n), np.resize(g, n)
            if name == "maximum":
                first, second = w >= x, w < x
            elif name == "minimum":
                first, second = w <= x, w > x
            if name in ("maximum", "minimum"):
                value = np.where(first, w, np.where(second, x, w + x))
                nan = (w + x) * gy
                gw = np.where(first, gy, np.where(second, zero * gy, nan))
                gx = np.where(first, zero * gy, np.where(second, gy, nan))
            else:
                value = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                         "div": np.divide}[name](w, x)
                gw = {"add": gy, "sub": gy, "mul": x * gy, "div": None}[name]
                gx = {"add": gy, "sub": -one * gy, "mul": w * gy, "div": None}[name]
            op = getattr(fj, name)
            for n_threads in (1, 2):
                _same_bits_or_both_nan(op(w, x, n_threads=n_threads), value, bits)
                if gw is not None:
                    got_w, got_x = op.vjp(w, x, gy, n_threads=n_threads)
                    _same_bits_or_both_nan(got_w, gw, bits)
                    _same_bits_or_both_nan(got_x, gx, bits)
            # in place: the value into w's own buffer
            w2 = w.copy()
            op(w2, x, out=w2)
            _same_bits_or_both_nan(w2, value, bits)
