"""Every public function through both of its paths, with values compared each time.

Most public functions have a compiled fast path for plain input (C-contiguous 1-D float
arrays, a Python-float scalar operand, a batch of one float dtype) and a Python path for
everything else (0-d arrays, lists, strided or Fortran-ordered arrays, integer or mixed
dtypes). A bug in one path is invisible to tests that only ever take the other (issue 18:
a scalar operand's gradient computed as sum(gy) instead of sum(gy·x) in the Python path of
``BinaryOp._reverse`` went unnoticed). Here each function is called

* on plain input with the fast entry points *spied* (the test asserts the fast path
  really answered),
* on the same input with the fast entry points *disabled* (every call then takes the
  Python path: same kernels, so the results must be the same bits),
* on lists, 0-d arrays, strided, Fortran-ordered, read-only, integer and float32 input,

and every result is compared with a float64 NumPy reference.
"""

import numpy as np
import pytest

import fastjac as fj
from fastjac import _validate, neuron, ops

RNG = np.random.default_rng(1818)
N = 37


class _Spy:
    """Stands in for a kernel module: ``*_fast`` entry points are counted (mode "fast")
    or answer None, i.e. "take the general path" (mode "python")."""

    def __init__(self, mod, mode):
        self._mod, self._mode, self.hits = mod, mode, 0

    def __getattr__(self, name):
        real = getattr(self._mod, name)
        if not name.endswith("_fast"):
            return real
        if self._mode == "python":
            return lambda *a, **k: None

        def spy(*a, **k):
            res = real(*a, **k)
            self.hits += res is not None
            return res
        return spy


@pytest.fixture(params=["fast", "python"])
def path(request, monkeypatch):
    """Returns a function ``took_fast()`` telling whether a fast path answered since the
    last call (always False in "python" mode)."""
    mode = request.param
    k_ops = _Spy(ops._K, mode)
    k_neu = _Spy(neuron._k, mode)
    monkeypatch.setattr(ops, "_K", k_ops)
    monkeypatch.setattr(neuron, "_k", k_neu)
    if mode == "python":
        monkeypatch.setattr(_validate, "fast_batch", lambda *a, **k: None)
        monkeypatch.setattr(_validate, "fast_output", lambda *a, **k: False)
    state = {"seen": 0}

    def took_fast():
        now = k_ops.hits + k_neu.hits
        fast, state["seen"] = now > state["seen"], now
        return fast

    took_fast.mode = mode
    return took_fast


def _tol(dtype):
    return dict(rtol=1e-13, atol=1e-300) if np.dtype(dtype) == np.float64 else dict(
        rtol=3e-6, atol=1e-37)


def close(got, ref, dtype, what, scale=None):
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), (what, got.dtype, dtype)
    ref = np.asarray(ref, dtype=np.float64)
    t = _tol(dtype)
    atol = t["atol"] if scale is None else t["rtol"] * 4 * float(np.max(np.abs(scale)))
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=t["rtol"], atol=atol,
                               err_msg=what)


def variants(x, dtype):
    """(label, value, expected dtype) for one 1-D operand."""
    big = np.zeros(2 * x.size, dtype=dtype)
    big[::2] = x
    ro = x.astype(dtype)
    ro.flags.writeable = False
    out = [("plain", x.astype(dtype), dtype), ("strided", big[::2], dtype),
           ("reversed", x.astype(dtype)[::-1].copy()[::-1], dtype), ("readonly", ro, dtype),
           ("list", x.astype(dtype).astype(np.float64).tolist(), np.float64)]
    return out


def f64(v):
    return np.asarray(v, dtype=np.float64)


# ------------------------------------------------------------------------- unary ops
UNARY = {
    "exp": (np.exp, np.exp, "any"),
    "log": (np.log, lambda x: 1 / x, "pos"),
    "sin": (np.sin, np.cos, "any"),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2, "any"),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)),
                lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, "any"),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, "any"),
    "square": (np.square, lambda x: 2 * x, "any"),
    "reciprocal": (lambda x: 1 / x, lambda x: -1 / x**2, "pos"),
}


def _point(domain, n=N, rng=RNG):
    x = rng.uniform(-2, 2, n)
    return np.abs(x) + 0.25 if domain == "pos" else x


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_both_paths(name, dtype, path):
    f, d, domain = UNARY[name]
    op = getattr(fj, name)
    x0 = _point(domain)
    t0 = RNG.standard_normal(N)
    plain = {}
    for label, x, dt in variants(x0, dtype):
        xr = f64(x)
        t = t0.astype(dt)
        res = {}
        # each method's own fast path answers plain input (one disabled method would hide
        # behind the others: a mutant of UnaryOp.jvp that never offered the call survived)
        for k, call in (("value", lambda: op(x)), ("derivative", lambda: op.derivative(x)),
                        ("jvp", lambda: op.jvp(x, t)), ("vjp", lambda: op.vjp(x, t))):
            res[k] = call()
            fast = path()
            if label == "plain":
                assert fast == (path.mode == "fast"), (name, k, label)
        res["jacobian"] = op.jacobian(x).d
        if label == "plain":
            plain = res
        close(res["value"], f(xr), dt, f"{name}({label})")
        close(res["derivative"], d(xr), dt, f"{name}.derivative({label})")
        close(res["jvp"], d(xr) * f64(t), dt, f"{name}.jvp({label})")
        close(res["vjp"], d(xr) * f64(t), dt, f"{name}.vjp({label})")
        close(res["jacobian"], d(xr), dt, f"{name}.jacobian({label})")
        if dt == dtype:  # same kernel on either path and any layout: the same bits
            for k in res:
                np.testing.assert_array_equal(res[k], plain[k], err_msg=f"{name} {k} {label}")
    # 0-d array and Python scalar: scalar in, scalar out
    for s in (np.array(0.75, dtype=dtype), 0.75, np.float32(0.75) if dtype == np.float32
              else np.float64(0.75)):
        dt = np.result_type(s) if isinstance(s, np.ndarray) or isinstance(s, np.generic) \
            else np.float64
        for got, ref in ((op(s), f(0.75)), (op.derivative(s), d(np.array(0.75))),
                         (op.vjp(s, 2.0 if dt == np.float64 else dt.type(2.0)),
                          2 * d(np.array(0.75)))):
            assert np.ndim(got) == 0
            close(got, ref, dt, f"{name} scalar {type(s).__name__}")
    # integers compute in float64
    xi = np.arange(1, 6)
    close(op(xi), f(f64(xi)), np.float64, f"{name}(int)")
    close(op.derivative(xi), d(f64(xi)), np.float64, f"{name}.derivative(int)")


# ------------------------------------------------------------------------ binary ops
BINARY = {
    "add": (np.add, lambda a, b: np.ones_like(a), lambda a, b: np.ones_like(b)),
    "sub": (np.subtract, lambda a, b: np.ones_like(a), lambda a, b: -np.ones_like(b)),
    "mul": (np.multiply, lambda a, b: b, lambda a, b: a),
    "div": (np.divide, lambda a, b: 1 / b, lambda a, b: -a / b**2),
    "maximum": (np.maximum, lambda a, b: (a >= b) * 1.0, lambda a, b: (a < b) * 1.0),
    "minimum": (np.minimum, lambda a, b: (a <= b) * 1.0, lambda a, b: (a > b) * 1.0),
}


def _binary_refs(name, w, x, gy, dw, dx):
    f, da, db = BINARY[name]
    w, x, gy, dw, dx = map(f64, (w, x, gy, dw, dx))
    shape = np.broadcast(w, x).shape
    W, X = np.broadcast_to(w, shape), np.broadcast_to(x, shape)
    GA, GB = da(W, X), db(W, X)

    def red(g, like):  # §4.3: a scalar operand's gradient is the sum over its uses
        return np.sum(g) if np.ndim(like) == 0 else g
    return {
        "value": f(W, X),
        "jvp": GA * dw + GB * dx,
        "gw": red(gy * GA, w), "gx": red(gy * GB, x),
        "sw": red(GA, w), "sx": red(GB, x),
        "scale_gw": red(np.abs(gy * GA), w), "scale_gx": red(np.abs(gy * GB), x),
    }


def _binary_point(name):
    w = RNG.uniform(-2, 2, N)
    x = RNG.uniform(-2, 2, N)
    if name == "div":
        x = np.sign(x) * (0.5 + np.abs(x))
    if name in ("maximum", "minimum"):
        x = np.where(np.abs(w - x) < 0.1, x + 0.3, x)
    return w, x


def _scalar_forms(z, dtype):
    """A scalar operand as a Python float (fast path) and as the forms that take the
    Python path: a 0-d array of the dtype, a NumPy scalar."""
    return [("float", z, None), ("0-d", np.array(z, dtype=dtype), dtype),
            ("np-scalar", np.dtype(dtype).type(z), dtype)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_both_paths(name, dtype, path):
    op = getattr(fj, name)
    w0, x0 = _binary_point(name)
    gy0, dw0, dx0 = (RNG.standard_normal(N) for _ in range(3))
    plain = None
    for (lw, w, dt), (_, x, _) in zip(variants(w0, dtype), variants(x0, dtype)):
        gy, dw, dx = (v.astype(dt) for v in (gy0, dw0, dx0))
        r = _binary_refs(name, w, x, gy, dw, dx)
        res = {"value": op(w, x)}
        fast = {"value": path()}
        res["jvp"] = op.jvp(w, x, dw, dx)
        path()  # (jvp: the general path only)
        res["gw"], res["gx"] = op.vjp(w, x, gy)
        fast["vjp"] = path()
        res["sw"], res["sx"] = op.sum_grad(w, x)
        fast["sum_grad"] = path()
        if lw == "plain":  # each method's own fast path answers plain input
            for k, f in fast.items():
                assert f == (path.mode == "fast"), (name, k, lw)
            plain = res
        for k in ("value", "jvp", "gw", "gx", "sw", "sx"):
            close(res[k], r[k], dt, f"{name} {k} ({lw})")
        if dt == dtype:
            for k in res:
                np.testing.assert_array_equal(res[k], plain[k], err_msg=f"{name} {k} {lw}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("side", ["w", "x"])
def test_binary_scalar_operand_both_paths(name, side, dtype, path):
    """§4.3: y = w ○ z with a scalar z; ∂L/∂z = Σ_i gy_i ∂y_i/∂z (e.g. Σ gy·x for mul),
    through the fast path (Python float) and the Python path (0-d array, NumPy scalar,
    list or strided array operand), the two gradients compared with NumPy each time."""
    op = getattr(fj, name)
    w0, _ = _binary_point(name)
    z = 0.8125
    gy0, dv0 = RNG.standard_normal(N), RNG.standard_normal(N)
    for lv, v, vdt in variants(w0, dtype):
        for ls, s, sdt in _scalar_forms(z, dtype):
            dt = np.result_type(vdt, sdt) if sdt is not None else np.dtype(vdt)
            args = (v, s) if side == "x" else (s, v)
            gy, dv = gy0.astype(dt), dv0.astype(dt)
            r = _binary_refs(name, *args, gy, *((dv, 0.5) if side == "x" else (0.5, dv)))
            gw, gx = op.vjp(*args, gy)
            sw, sx = op.sum_grad(*args)
            y = op(*args)
            jv = op.jvp(*args, *((dv, 0.5) if side == "x" else (0.5, dv)))
            fast = path()
            if path.mode == "python":
                assert not fast
            elif lv == "plain" and ls == "float":
                assert fast, (name, side)
            what = f"{name}({side} scalar: {ls}, array: {lv})"
            scalar_g, array_g = (gx, gw) if side == "x" else (gw, gx)
            assert np.ndim(scalar_g) == 0 and np.ndim(array_g) == 1, what
            close(gw, r["gw"], dt, what + " gw", scale=r["scale_gw"])
            close(gx, r["gx"], dt, what + " gx", scale=r["scale_gx"])
            close(sw, r["sw"], dt, what + " sum_grad w", scale=np.abs(r["sw"]) + 1)
            close(sx, r["sx"], dt, what + " sum_grad x", scale=np.abs(r["sx"]) + 1)
            close(y, r["value"], dt, what + " value")
            close(jv, r["jvp"], dt, what + " jvp", scale=np.abs(r["jvp"]) + 1)


def test_scalar_gradient_is_sum_of_gy_times_x_not_sum_of_gy():
    """The issue-18 bug, directly: mul's scalar-operand gradient on the Python path."""
    x = np.array([1.0, 2.0, 3.0, -4.0])
    gy = np.array([0.5, -1.0, 2.0, 1.0])
    want = float(np.sum(gy * x))  # 0.5 - 2 + 6 - 4 = 0.5; sum(gy) would be 2.5
    for z in (3.0, np.array(3.0), np.float64(3.0), np.array([3.0])[0]):
        gx, gz = fj.mul.vjp(x, z, gy)
        assert gz == want and np.ndim(gz) == 0, type(z)
        gz2, gx2 = fj.mul.vjp(z, x.tolist(), gy.tolist())
        assert gz2 == want
        np.testing.assert_array_equal(gx2, 3.0 * gy)
        gz3 = fj.mul.vjp(np.array(z), x[::1], gy)[0]
        assert gz3 == want



def _binary_edge_calls(dtype):
    """(label, thunk) pairs of binary calls at the edges of ``binary_fast``: out= exactly an
    input, 0-size arrays, scalar operands of every eligible kind, a chained op; each thunk
    makes its own arrays, so the two paths see the same input."""
    op_chain = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    dt = np.dtype(dtype)

    def arr(n, seed):
        return np.random.default_rng(seed).uniform(0.5, 2.0, n).astype(dt)

    def value_out_is(k):
        def call(op):
            w, x = arr(N, 1), arr(N, 2)
            out = (w, x)[k]
            return op(w, x, out=out), out
        return call

    def vjp_out_is(kind):
        def call(op):
            w, x, gy = arr(N, 1), arr(N, 2), arr(N, 3)
            out = {"inputs": (w, x), "gy": (gy, None), "swapped": (x, w)}[kind]
            return op.vjp(w, x, gy, out=out), out
        return call

    calls = [("value out=w", value_out_is(0)), ("value out=x", value_out_is(1))]
    calls += [(f"vjp out={k}", vjp_out_is(k)) for k in ("inputs", "gy", "swapped")]
    calls += [
        ("empty value", lambda op: op(arr(0, 1), arr(0, 2))),
        ("empty vjp", lambda op: op.vjp(arr(0, 1), arr(0, 2), arr(0, 3))),
        ("empty scalar vjp", lambda op: op.vjp(arr(0, 1), 2.0, arr(0, 3))),
        ("empty scalar value", lambda op: op(1.5, arr(0, 1))),
    ]
    for lz, z in (("float", 0.8125), ("int", 3), ("np-scalar", dt.type(0.8125))):
        calls += [
            (f"value w, {lz}", lambda op, z=z: op(arr(N, 1), z)),
            (f"value {lz}, x", lambda op, z=z: op(z, arr(N, 1))),
            (f"vjp w, {lz}", lambda op, z=z: op.vjp(arr(N, 1), z, arr(N, 3))),
            (f"vjp {lz}, x", lambda op, z=z: op.vjp(z, arr(N, 1), arr(N, 3))),
            (f"sum_grad {lz}, x", lambda op, z=z: op.sum_grad(z, arr(N, 1))),
        ]
    chain = [("chain " + lbl, lambda op, c=c: c(op_chain)) for lbl, c in calls]
    return calls + chain


def _flat(res):
    if isinstance(res, tuple):
        return [v for r in res for v in _flat(r)]
    return [res]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", ["mul", "div", "sub", "maximum"])
def test_binary_fast_edges_same_bits_as_general_path(name, dtype, monkeypatch):
    """binary_fast runs the kernel on the buffers it has checked itself; at the edges of
    what it accepts (out= an input, 0-size arrays, scalar operands, chains) it must give
    the general path's results, dtypes and shapes bit for bit, and answer the call."""
    op = getattr(fj, name)
    for label, call in _binary_edge_calls(dtype):
        fast_k = _Spy(ops._K, "fast")
        monkeypatch.setattr(ops, "_K", fast_k)
        got = _flat(call(op))
        monkeypatch.setattr(ops, "_K", _Spy(fast_k._mod, "python"))
        want = _flat(call(op))
        monkeypatch.setattr(ops, "_K", fast_k._mod)
        assert fast_k.hits == 1, (name, label)
        assert len(got) == len(want), label
        for g, w in zip(got, want):
            if g is None or w is None:
                assert g is w, label
                continue
            assert type(g) is type(w) and np.shape(g) == np.shape(w), (label, g, w)
            assert np.asarray(g).dtype == np.asarray(w).dtype, label
            np.testing.assert_array_equal(g, w, err_msg=f"{name} {label}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_binary_fast_refuses_bad_out_like_general_path(dtype):
    """A read-only, wrong-dtype, wrong-shape or partly overlapping out= is declined by
    binary_fast, and the general path raises for it: nothing is written."""
    dt = np.dtype(dtype)
    other = np.float32 if dt == np.float64 else np.float64
    w, x, gy = (np.linspace(0.5, 2.0, N).astype(dt) for _ in range(3))
    ro = np.zeros(N, dt)
    ro.flags.writeable = False
    big = np.zeros(N + 1, dt)
    bad = [("read-only", ro, ValueError), ("dtype", np.zeros(N, other), TypeError),
           ("shape", np.zeros(N + 1, dt), ValueError)]
    for label, out, err in bad:
        with pytest.raises(err):
            fj.mul(w, x, out=out)
        with pytest.raises(err):
            fj.mul.vjp(w, x, gy, out=(out, None))
        assert not np.any(out), label
        assert _K_fast(w, x, None, True, out) is None, label
        assert _K_fast(w, x, gy, False, (out, None)) is None, label
    # out shifted by one element over an input: a partial overlap the kernels cannot run
    wb = big[:N]
    wb[:] = w
    assert _K_fast(wb, x, None, True, big[1:]) is None
    assert _K_fast(wb, x, gy, False, (big[1:], None)) is None


def _K_fast(w, x, gy, value, out):
    return ops._K.binary_fast(fj.mul._op, b"", b"", w, x, gy, value, out, 1,
                              fj.mul._work_per_element, ops.PARALLEL_THRESHOLD)


# --------------------------------------------------------------------- reductions
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sum_and_dot_both_paths(dtype, path):
    w0, x0 = RNG.standard_normal(N), RNG.standard_normal(N)
    dw0, dx0 = RNG.standard_normal(N), RNG.standard_normal(N)
    for (lw, w, dt), (_, x, _) in zip(variants(w0, dtype), variants(x0, dtype)):
        wr, xr = f64(w), f64(x)
        dw, dx = dw0.astype(dt), dx0.astype(dt)
        s = fj.sum(x)
        d = fj.dot(w, x)
        fast = path()
        if lw == "plain":
            assert fast == (path.mode == "fast")
        close(s, np.sum(xr), dt, f"sum ({lw})", scale=np.abs(xr))
        close(d, np.dot(wr, xr), dt, f"dot ({lw})", scale=np.abs(wr * xr))
        close(fj.sum.grad(x), np.ones(N), dt, f"sum.grad ({lw})")
        close(fj.sum.vjp(x, 2.0), np.full(N, 2.0), dt, f"sum.vjp ({lw})")
        close(fj.sum.jvp(x, dx), np.sum(f64(dx)), dt, f"sum.jvp ({lw})", scale=np.abs(f64(dx)))
        gw, gx = fj.dot.grad(w, x)
        close(gw, xr, dt, f"dot.grad w ({lw})")
        close(gx, wr, dt, f"dot.grad x ({lw})")
        gw, gx = fj.dot.vjp(w, x, 2.0)
        close(gw, 2 * xr, dt, f"dot.vjp w ({lw})")
        close(gx, 2 * wr, dt, f"dot.vjp x ({lw})")
        ref = np.dot(f64(dw), xr) + np.dot(wr, f64(dx))
        close(fj.dot.jvp(w, x, dw, dx), ref, dt, f"dot.jvp ({lw})",
              scale=np.abs(f64(dw) * xr) + np.abs(wr * f64(dx)))


# ------------------------------------------------------------ fused and chained ops
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_elementwise_and_chain_both_paths(dtype, path):
    fused = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    h = fj.chain(fj.sin, fj.square)
    w0, x0, gy0 = (RNG.uniform(-1.5, 1.5, N) for _ in range(3))
    for (lw, w, dt), (_, x, _) in zip(variants(w0, dtype), variants(x0, dtype)):
        wr, xr, gy = f64(w), f64(x), gy0.astype(dt)
        g = f64(gy)
        close(fused(w, x), np.exp(wr) * np.sin(xr), dt, f"fused ({lw})")
        gw, gx = fused.vjp(w, x, gy)
        close(gw, g * np.exp(wr) * np.sin(xr), dt, f"fused.vjp w ({lw})")
        close(gx, g * np.exp(wr) * np.cos(xr), dt, f"fused.vjp x ({lw})")
        gz = fused.vjp(w, np.array(0.5, dtype=dtype), gy)[1]  # scalar g-operand (§4.3)
        close(gz, np.sum(g * np.exp(wr) * np.cos(0.5)), np.result_type(dt, dtype),
              f"fused.vjp scalar ({lw})", scale=np.abs(g * np.exp(wr)))
        close(h(x), np.sin(xr**2), dt, f"chain ({lw})")  # h(x) = sin(x**2)
        close(h.derivative(x), 2 * xr * np.cos(xr**2), dt, f"chain' ({lw})")
        close(h.vjp(x, gy), g * 2 * xr * np.cos(xr**2), dt, f"chain.vjp ({lw})")
        path()


# ---------------------------------------------------------------------- the neuron
def _neuron_ref(X, y, w, b):
    X, y, w = f64(X), f64(y), f64(w)
    z = X @ w + b
    a = np.maximum(z, 0)
    r = a - y
    c = 2 / X.shape[0] * r * (z > 0)
    return dict(a=a, mask=(z > 0) * 1.0, C=np.mean(r * r), gw=c @ X, gb=np.sum(c),
                gX=np.outer(c, w), sse=np.sum(r * r), gws=c @ X * X.shape[0] / 2,
                gbs=np.sum(c) * X.shape[0] / 2, scale=np.abs(c) @ np.abs(X))


def _neuron_variants(X, y, w, dtype):
    Xd, yd, wd = X.astype(dtype), y.astype(dtype), w.astype(dtype)
    big = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=dtype)
    big[:, ::2] = Xd
    ro = Xd.copy()
    ro.flags.writeable = False
    return [
        ("plain", Xd, yd, wd, dtype),
        ("fortran", np.asfortranarray(Xd), yd, wd, dtype),
        ("strided", big[:, ::2], np.repeat(yd, 2)[::2], wd, dtype),
        ("readonly", ro, yd, wd, dtype),
        ("lists", Xd.astype(np.float64).tolist(), yd.astype(np.float64).tolist(),
         wd.astype(np.float64).tolist(), np.float64),
        ("list-w", Xd, yd, wd.tolist() if dtype == np.float64 else wd.astype(np.float64),
         np.float64 if dtype == np.float64 else np.float64),
        ("int-y", Xd, np.round(y * 3).astype(np.int32), wd, dtype),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_neuron_both_paths(dtype, path):
    rng = np.random.default_rng(18)
    Nn, n = 61, 5
    X0, y0, w0 = rng.standard_normal((Nn, n)), rng.standard_normal(Nn), rng.standard_normal(n)
    for b in (0.1, np.float64(0.1), np.array(0.1), 0):
        bf = float(b)
        for label, X, y, w, dt in _neuron_variants(X0, y0, w0, dtype):
            dt_act = dt  # activation and its Jacobian do not see y
            if label == "int-y":  # int32 y with float32 X: NumPy's result_type, float64
                dt = np.result_type(np.asarray(X).dtype, y.dtype)
            r = _neuron_ref(X, y, w, bf)
            what = f"neuron ({label}, b={type(b).__name__})"
            a = neuron.activation(X, w, b)
            C, gw, gb = neuron.loss_grad(X, y, w, b)
            fast = path()
            if label == "plain" and type(b) is float:
                assert fast == (path.mode == "fast"), what
            close(a, r["a"], dt_act, what + " activation", scale=np.abs(f64(X)) @ np.abs(f64(w)))
            Jw, Jb = neuron.activation_jacobian(X, w, b)
            close(Jb.c, r["mask"], dt_act, what + " jacobian mask")
            close(Jw.todense(), r["mask"][:, None] * f64(X), dt_act, what + " jacobian dense")
            tol = 1e-12 if dt == np.float64 else 2e-5
            assert type(C) is float and C == pytest.approx(r["C"], rel=tol), what
            assert type(gb) is float and gb == pytest.approx(r["gb"], rel=tol,
                                                             abs=tol * r["scale"].max()), what
            close(gw, r["gw"], dt, what + " gw", scale=r["scale"])
            assert neuron.loss(X, y, w, b) == pytest.approx(r["C"], rel=tol), what
            C2, gw2, gb2, gX = neuron.loss_grad(X, y, w, b, wrt=("w", "b", "X"))
            assert C2 == C and gb2 == gb, what
            np.testing.assert_array_equal(gw2, gw, err_msg=what)
            close(gX, r["gX"], dt, what + " gX", scale=np.abs(r["gX"]) + 1e-300)
            sse, gws, gbs = neuron.loss_grad_sums(X, y, w, b)
            assert sse == pytest.approx(r["sse"], rel=tol), what
            assert gbs == pytest.approx(r["gbs"], rel=tol, abs=tol * Nn * r["scale"].max())
            close(gws, r["gws"], dt, what + " gw sums", scale=r["scale"] * Nn)
