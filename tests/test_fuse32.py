"""fj.fuse in float32: float32 registers, rounding at every op (docs/guide/fuse.rst).

A float32 call whose inputs are all arrays (value, vjp, sum_grad, jacobian, derivative,
value_and_vjp) gives the bits of its program evaluated op by op with fastjac's float32
operations and their float32 VJPs: each node's value is ``fj.<op>`` of its operands'
float32 values, each adjoint contribution is ``fj.<op>.vjp`` of the operands and the
node's adjoint, and an adjoint with several contributions is their ``fj.add``, in the
reverse sweep's order (nodes from the last to the first, first operand before second).
``replay32`` below is that evaluation, written with the public operations only.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastjac as fj
from fastjac import _optable

F32 = np.float32
BASE = _optable.FUSED_BINARY_BASE
_UNARY = {op.code: op.name for op in _optable.UNARY_OPS}
_BINARY = {BASE + op.code: op.name for op in _optable.BINARY_OPS}
_POW = _optable.UNARY_CODES["pow"]


def _value(code, param, va, vb):
    if code == _POW:  # libm's pow in double, rounded once (fused.pyx _pow_node)
        with np.errstate(all="ignore"):
            return np.power(va.astype(np.float64), param).astype(F32)
    if code >= BASE:
        return getattr(fj, _BINARY[code])(va, vb)
    return getattr(fj, _UNARY[code])(va)


def _contribs(code, param, va, vb, adj):
    """The node's VJP contributions to its operands (a, b), fastjac's float32 VJPs."""
    if code == _POW:
        with np.errstate(all="ignore"):
            d = param * np.power(va.astype(np.float64), param - 1.0)
            return (d * adj.astype(np.float64)).astype(F32), None
    if code >= BASE:
        return getattr(fj, _BINARY[code]).vjp(va, vb, adj)
    return getattr(fj, _UNARY[code]).vjp(va, adj), None


def replay32(f, inputs, gy=None):
    """(value, grads) of fused f at float32 arrays, op by op with fastjac's float32 ops."""
    n_in, consts, nodes, out = f._compile().listing
    k = len(inputs)
    assert n_in == k, "captured arrays are not replayed here"
    shape = np.shape(inputs[0])
    vals = [np.asarray(a, F32).reshape(-1) for a in inputs]
    vals += [np.full(vals[0].shape, c, F32) for c in consts]
    with np.errstate(all="ignore"):
        for code, a, b, param in nodes:
            vals.append(_value(code, param, vals[a], vals[b] if b >= 0 else None))
        adj = [None] * len(vals)
        adj[out] = (np.ones_like(vals[0]) if gy is None
                    else np.asarray(gy, F32).reshape(-1).copy())
        node0 = n_in + len(consts)
        for i in range(len(nodes) - 1, -1, -1):
            code, a, b, param = nodes[i]
            if adj[node0 + i] is None:
                continue
            ca, cb = _contribs(code, param, vals[a], vals[b] if b >= 0 else None,
                               adj[node0 + i])
            for o, cv in ((a, ca), (b, cb)):
                if o < 0:
                    continue
                adj[o] = cv if adj[o] is None else fj.add(adj[o], cv)
    grads = [np.zeros(vals[0].shape, F32) if adj[r] is None else adj[r] for r in range(k)]
    return vals[out].reshape(shape), tuple(g.reshape(shape) for g in grads)


def _tangent(code, param, va, vb, ta, tb):
    """The node's float32 tangent, fastjac's float32 JVP (None: a zero tangent)."""
    if code == _POW:
        with np.errstate(all="ignore"):
            d = param * np.power(va.astype(np.float64), param - 1.0)
            return (d * ta.astype(np.float64)).astype(F32)
    if code >= BASE:
        return getattr(fj, _BINARY[code]).jvp(va, vb, ta, tb)
    return getattr(fj, _UNARY[code]).jvp(va, ta)


def replay32_jvp(f, inputs, tangents):
    """The JVP of fused f at float32 arrays, op by op with fastjac's float32 JVPs."""
    n_in, consts, nodes, out = f._compile().listing
    shape = np.shape(inputs[0])
    vals = [np.asarray(a, F32).reshape(-1) for a in inputs]
    vals += [np.full(vals[0].shape, c, F32) for c in consts]
    tans = [None if t is None else np.asarray(t, F32).reshape(-1) for t in tangents]
    tans += [None] * len(consts)
    with np.errstate(all="ignore"):
        for code, a, b, param in nodes:
            va, vb = vals[a], vals[b] if b >= 0 else None
            vals.append(_value(code, param, va, vb))
            ta, tb = tans[a], tans[b] if b >= 0 else None
            tans.append(None if ta is None and tb is None
                        else _tangent(code, param, va, vb, ta, tb))
    t = tans[out]
    return (np.zeros(vals[0].shape, F32) if t is None else t).reshape(shape)


def assert_bits(a, b):
    # bit for bit, except that a NaN's payload and sign are not compared (they depend on
    # the order of a commutative operation's operands in the machine code)
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype == F32 and a.shape == b.shape
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    np.testing.assert_array_equal(a[~nan].view(np.uint32), b[~nan].view(np.uint32))


def check(f, inputs, gy, nts=(1, 2)):
    y_ref, g_ref = replay32(f, inputs, gy)
    _, s_ref = replay32(f, inputs, None)
    k = len(inputs)
    for nt in nts:
        assert_bits(f(*inputs, n_threads=nt), y_ref)
        g = f.vjp(*inputs, gy, n_threads=nt)
        s = f.sum_grad(*inputs, n_threads=nt)
        y2, g2 = f.value_and_vjp(*inputs, gy, n_threads=nt)
        g, s, g2 = ((g,), (s,), (g2,)) if k == 1 else (g, s, g2)
        assert_bits(y2, y_ref)
        for r in range(k):
            assert_bits(g[r], g_ref[r])
            assert_bits(g2[r], g_ref[r])
            assert_bits(s[r], s_ref[r])
        with np.errstate(all="ignore"):
            ts = tuple(np.asarray(gy[::-1] if r % 2 else gy, F32) * F32(0.5 + r)
                       for r in range(k))
        assert_bits(f.jvp(*inputs, *ts, n_threads=nt), replay32_jvp(f, inputs, ts))
        if k > 1:  # a zero (None) tangent
            ts = (None,) + ts[1:]
            assert_bits(f.jvp(*inputs, *ts, n_threads=nt), replay32_jvp(f, inputs, ts))
        jac = f.jacobian(*inputs, n_threads=nt)
        jac = (jac,) if k == 1 else jac
        for r in range(k):
            assert_bits(jac[r].d, s_ref[r].reshape(-1))


RNG = np.random.default_rng(32)


def _edges(x, lo, hi):
    # values at the edges of the routines' ranges and special values, then random ones
    sp = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3e38, -3e38,
                   88.5, -88.5, 87.0, -87.0, -95.0, -103.5, 2e6, -3e7, 1e5, 0.5],
                  F32)
    x[:len(sp)] = sp
    x[len(sp):] = RNG.uniform(lo, hi, x.size - len(sp)).astype(F32)
    return x


N = 3 * 4096 + 37  # several blocks, a partial tile; above the pool's threshold

GOAL = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)


def test_goal_expression_op_by_op():
    w = RNG.normal(size=N).astype(F32) * 3
    x = RNG.uniform(0.5, 2.0, N).astype(F32)
    gy = RNG.normal(size=N).astype(F32)
    check(GOAL, (w, x), gy)
    # by hand, as the docs write it
    e, s = fj.exp(w), fj.sin(x)
    ge, gs = fj.mul.vjp(e, s, gy)
    gw2, gx2 = fj.div.vjp(w, x, gy)
    gw, gx = GOAL.vjp(w, x, gy)
    assert_bits(gw, fj.add(gw2, fj.exp.vjp(w, ge)))
    assert_bits(gx, fj.add(gx2, fj.sin.vjp(x, gs)))
    assert_bits(GOAL(w, x), fj.add(fj.mul(e, s), fj.div(w, x)))


def test_goal_expression_special_values():
    w = _edges(np.empty(N, F32), -100, 100)
    x = _edges(np.empty(N, F32), -1e6, 1e6)[::-1].copy()
    gy = _edges(np.empty(N, F32), -4, 4)
    check(GOAL, (w, x), gy)


EXPRS = [
    ("unary ops", lambda x: fj.tanh(x) + fj.sigmoid(x) * fj.cos(x) - fj.relu(x) * abs(x)),
    ("sqrt, reciprocal, log", lambda x: fj.sqrt(abs(x)) + 1.0 / x + fj.log(x * x + 0.5)),
    ("square, neg, pow", lambda x: -(x ** 2) + abs(x) ** 1.5 + fj.exp(-x) ** -1),
    ("max, min, sub", lambda w, x: fj.maximum(w, x) - fj.minimum(w * 2.0, x) - w),
    ("three paths", lambda w, x: w * x + fj.exp(w) * fj.sin(w) - w / x + fj.cos(w)),
    ("x + x^2 (paper 4.5.2)", lambda x: x + x * x),
    ("shared exp, deep", lambda w, x, z: fj.exp(fj.sin(w * x)) * z + fj.exp(fj.sin(w * x))
     / (z * z + 1.0) + fj.tanh(fj.exp(fj.sin(w * x)) - x)),
    ("chain and elementwise", lambda w, x: fj.chain(fj.sin, fj.exp)(w)
     + fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)(w, x)),
    # a quotient's first contribution formed in one loop with the passed-on one that
    # follows it (_tile32), with float and double partials, and followed by other kinds
    ("quotient, then passed on", lambda w, x: fj.tanh(w) * fj.sigmoid(x) + w / x),
    ("quotient, then mixed paths", lambda w, x: fj.exp(w) * x + fj.log(w) * fj.sin(x) + x / w),
    ("quotient, then a product", lambda w, x: w * x + w / x + fj.log(x)),
]


@pytest.mark.parametrize("name,fn", EXPRS, ids=[e[0] for e in EXPRS])
def test_expressions_op_by_op(name, fn):
    f = fj.fuse(fn)
    k = f._k
    xs = tuple(RNG.uniform(-3, 3, N).astype(F32) for _ in range(k))
    gy = RNG.normal(size=N).astype(F32)
    check(f, xs, gy)
    # with special values and the ranges' edges in every input
    xs = tuple(_edges(np.empty(N, F32), -100, 100)[::(1 if r % 2 else -1)].copy()
               for r in range(k))
    check(f, xs, gy)


@pytest.mark.parametrize("mode", ["strict", "fast"])
def test_other_precision_modes_op_by_op(mode):
    # exp and sin/cos leave the native float32 road in the other modes (they use the float64
    # routines there, as fastjac's own float32 ops do): still the bits of op by op
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + fj.cos(w) / x)
    w = RNG.uniform(-3, 3, 5000).astype(F32)
    x = RNG.uniform(0.5, 2, 5000).astype(F32)
    gy = RNG.normal(size=5000).astype(F32)
    old = fj.get_precision()
    fj.set_precision(mode)
    try:
        check(f, (w, x), gy, nts=(1,))
    finally:
        fj.set_precision(old)


def test_vmath_levels_op_by_op():
    from fastjac._kernels import elementwise as _EW
    w = RNG.uniform(-90, 90, 5000).astype(F32)
    x = RNG.uniform(-1e3, 1e3, 5000).astype(F32)
    gy = RNG.normal(size=5000).astype(F32)
    ref = GOAL.vjp(w, x, gy)
    try:
        for level in (0, 1, 2):
            _EW._set_vmath_level(level)
            check(GOAL, (w, x), gy, nts=(1,))
            for a, b in zip(GOAL.vjp(w, x, gy), ref):
                assert_bits(a, b)
    finally:
        _EW._set_vmath_level(-1)


def test_layouts_out_and_in_place():
    n = 6000
    W = RNG.normal(size=(2 * n,)).astype(F32)
    X = RNG.uniform(0.5, 2, size=(2 * n,)).astype(F32)
    gy = RNG.normal(size=n).astype(F32)
    w, x = W[::2], X[1::2]  # strided
    wc, xc = w.copy(), x.copy()
    y_ref, (gw_ref, gx_ref) = replay32(GOAL, (wc, xc), gy)
    x.flags.writeable = False
    assert_bits(GOAL(w, x), y_ref)
    for a, b in zip(GOAL.vjp(w, x, gy), (gw_ref, gx_ref)):
        assert_bits(a, b)
    # Fortran order
    wf = np.asfortranarray(wc.reshape(60, 100))
    xf = np.asfortranarray(xc.reshape(60, 100))
    gf = np.asfortranarray(gy.reshape(60, 100))
    yr, (gwr, gxr) = replay32(GOAL, (np.ascontiguousarray(wf), np.ascontiguousarray(xf)),
                              np.ascontiguousarray(gf))
    gw, gx = GOAL.vjp(wf, xf, gf)
    assert_bits(np.ascontiguousarray(gw), gwr)
    assert_bits(np.ascontiguousarray(gx), gxr)
    # out= and in place: every output exactly one of the inputs
    for nt in (1, 2):
        a, b, g = wc.copy(), xc.copy(), gy.copy()
        outs = (np.empty_like(a), np.empty_like(a))
        res = GOAL.vjp(a, b, g, out=outs, n_threads=nt)
        assert res[0] is outs[0] and res[1] is outs[1]
        assert_bits(outs[0], gw_ref)
        assert_bits(outs[1], gx_ref)
        GOAL.vjp(a, b, g, out=(a, b), n_threads=nt)
        assert_bits(a, gw_ref)
        assert_bits(b, gx_ref)
        a, b, g = wc.copy(), xc.copy(), gy.copy()
        GOAL.vjp(a, b, g, out=(g, a), n_threads=nt)
        assert_bits(g, gw_ref)
        assert_bits(a, gx_ref)
        a, b = wc.copy(), xc.copy()
        GOAL(a, b, out=b, n_threads=nt)
        assert_bits(b, y_ref)
    assert np.array_equal(wc, W[::2]) and np.array_equal(xc, X[1::2])  # inputs unchanged


def test_tile_lengths_and_threads_bitwise():
    from fastjac._kernels import fused as _FK
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x + fj.tanh(w * x) ** 2)
    w = _edges(np.empty(N, F32), -100, 100)
    x = RNG.uniform(-5, 5, N).astype(F32)
    gy = RNG.normal(size=N).astype(F32)
    ref = (f(w, x), *f.vjp(w, x, gy))
    old = _FK._set_tile_length(256)
    try:
        for t in (16, 48, 304, 1024):
            _FK._set_tile_length(t)
            for nt in (1, 2):
                for a, b in zip((f(w, x, n_threads=nt), *f.vjp(w, x, gy, n_threads=nt)), ref):
                    assert_bits(a, b)
    finally:
        _FK._set_tile_length(old)


def test_quotient_merge_bitwise():
    # a quotient's first contribution formed with the next one in one loop (the default)
    # or each in its own loop: the same operations in the same order, the same bits (NaN
    # and inf lanes included), for the goal and the programs that take either path
    from fastjac._kernels import fused as _FK
    w = _edges(np.empty(N, F32), -100, 100)
    x = _edges(np.empty(N, F32), -1e6, 1e6)[::-1].copy()
    gy = _edges(np.empty(N, F32), -4, 4)
    fns = [GOAL] + [fj.fuse(fn) for name, fn in EXPRS if name.startswith("quotient")]
    old = _FK._set_quotient_merge(False)
    try:
        ref = [(f.vjp(w, x, gy), f.sum_grad(w, x), f.value_and_vjp(w, x, gy)[1]) for f in fns]
        _FK._set_quotient_merge(True)
        for f, want in zip(fns, ref):
            for nt in (1, 2):
                got = (f.vjp(w, x, gy, n_threads=nt), f.sum_grad(w, x, n_threads=nt),
                       f.value_and_vjp(w, x, gy, n_threads=nt)[1])
                for g, r in zip(got, want):
                    for a, b in zip(g, r):
                        assert_bits(a, b)
    finally:
        _FK._set_quotient_merge(old)


def test_quotient_merge_nans_do_not_depend_on_position():
    # NaN terms meet in the merged loop's addition (w = NaN, x = -inf: -(gy·w)/(x·x) and
    # cos(x)·(exp(w)·gy)). Where both terms are NaN, which one the sum carries (its sign) may
    # depend on whether the element sits in the loop's vector body or its scalar tail
    # (precision.rst's one exception); which elements are NaN, every other bit, and the sign
    # of a NaN that comes from one NaN term may not.
    sp = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0], F32)
    w, x, gy = (np.random.default_rng(s).choice(sp, 67).astype(F32) for s in (1, 2, 3))
    gy[::5] = 100.0
    with np.errstate(all="ignore"):
        e, s = fj.exp(w), fj.sin(x)
        ge, gs = fj.mul.vjp(e, s, gy)
        terms = list(zip(fj.div.vjp(w, x, gy), (fj.exp.vjp(w, ge), fj.sin.vjp(x, gs))))
    for f in [GOAL] + [fj.fuse(fn) for name, fn in EXPRS if name.startswith("quotient")]:
        with np.errstate(all="ignore"):
            whole = f.vjp(w, x, gy)
            alone = [f.vjp(w[i:i + 1], x[i:i + 1], gy[i:i + 1]) for i in range(w.size)]
        for r in range(2):
            one = np.concatenate([a[r] for a in alone])
            bad = whole[r].view(np.uint32) != one.view(np.uint32)
            both = np.isnan(whole[r]) & np.isnan(one)
            if f is GOAL:  # NaN signs too, except where both terms are NaN
                both &= np.isnan(terms[r][0]) & np.isnan(terms[r][1])
            assert not (bad & ~both).any(), (r, np.flatnonzero(bad & ~both))


@pytest.mark.parametrize("shift", [0, 1, 4, 500, 1023])
@pytest.mark.parametrize("extra", [77, 0, 1])
def test_page_aligned_tiles_bitwise(shift, extra):
    # from 65536 elements the float32 blocks start at the first input's page boundaries
    # (the first block takes the elements before the first one): the bits are those of
    # op-by-op evaluation whatever the page offsets, and every element is computed once,
    # also where the last block is full or holds one element (extra 0, 1)
    n = (1024 - shift) % 1024 + 17 * 4096 + extra
    buf = np.empty(n + 2048, F32)
    s0 = (-buf.ctypes.data % 4096) // 4 + shift
    w = buf[s0:s0 + n]
    w[:] = _edges(np.empty(n, F32), -100, 100)
    x = RNG.uniform(-5, 5, n).astype(F32)
    gy = RNG.normal(size=n).astype(F32)
    assert w.ctypes.data % 4096 == 4 * shift
    y_ref, g_ref = replay32(GOAL, (w.copy(), x), gy)
    for nt in (1, 2):
        assert_bits(GOAL(w, x, n_threads=nt), y_ref)
        for a, b in zip(GOAL.vjp(w, x, gy, n_threads=nt), g_ref):
            assert_bits(a, b)
        # outputs that hold other numbers first: an element left out would show
        y, gw, gx = (np.full(n, 7.0, F32) for _ in range(3))
        GOAL(w, x, out=y, n_threads=nt)
        GOAL.vjp(w, x, gy, out=(gw, gx), n_threads=nt)
        for a, b in zip((y, gw, gx), (y_ref, *g_ref)):
            assert_bits(a, b)


def test_scalar_inputs_keep_double_registers():
    # A call with a scalar input (its gradient is summed in double from double partials,
    # as the binary ops' scalar VJP) keeps the double registers: one rounding per output.
    w = RNG.uniform(-2, 2, 3000).astype(F32)
    x = RNG.uniform(0.5, 2, 3000).astype(F32)
    gy = RNG.normal(size=3000).astype(F32)
    w64, x64, g64 = (a.astype(np.float64) for a in (w, x, gy))
    f = fj.fuse(lambda w, x, z: w * x * z)
    gw, gx, gz = f.vjp(w, x, F32(1.5), gy)
    np.testing.assert_array_equal(gw, (x64 * 1.5 * g64).astype(F32))
    dy = f.jvp(w, x, F32(1.0), gy, None, None)
    np.testing.assert_array_equal(dy, (x64 * 1.0 * g64).astype(F32))
    # the array call rounds w*x first: op by op, the JVP too
    g = fj.fuse(lambda w, x: w * x * w)
    gwa, gxa = g.vjp(w, x, gy)
    _, (rw, rx) = replay32(g, (w, x), gy)
    assert_bits(gwa, rw)
    assert_bits(gxa, rx)
    wx = fj.mul(w, x)
    assert_bits(g.jvp(w, x, gy, None), fj.mul.jvp(wx, w, fj.mul.jvp(w, x, gy, None), gy))


def test_overflowing_intermediates_follow_op_by_op():
    # exp(exp(w)) overflows float32 at w = 6 as fj.exp(fj.exp(w)) does, and the quotient
    # of two such infinities is NaN, as op by op (the double registers of a JVP or a
    # scalar-input call keep such intermediates finite: test_fuse.py).
    w = np.array([5.9, 5.95, 6.0, 1.0, 0.5], F32)
    x = np.array([5.9, 5.9, 5.98, 1.0, 0.7], F32)
    f = fj.fuse(lambda w, x: fj.exp(fj.exp(w)) / fj.exp(fj.exp(x)))
    check(f, (w, x), np.ones(5, F32), nts=(1,))
    assert np.isnan(f(w, x)[2]) and np.isfinite(f(w, x)[3])


_UN = ["exp", "sin", "cos", "tanh", "sigmoid", "square", "neg", "log", "sqrt", "abs",
       "reciprocal", "relu"]
_OP = st.tuples(st.sampled_from(["add", "mul", "sub", "div", "maximum", "scale"] + _UN),
                st.integers(0, 20), st.integers(0, 20), st.floats(-2, 2, width=32))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 3), ops=st.lists(_OP, min_size=1, max_size=10),
       n=st.integers(1, 300), seed=st.integers(0, 2 ** 31))
def test_random_dags_op_by_op(k, ops, n, seed):
    def run(*xs):
        vals = list(xs)
        for kind, i, j, c in ops:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            if kind == "add":
                v = a + b
            elif kind == "mul":
                v = a * b
            elif kind == "sub":
                v = a - c * b
            elif kind == "div":
                v = a / (b * b + 0.5)
            elif kind == "maximum":
                v = fj.maximum(a, b)
            elif kind == "scale":
                v = a * c + 0.25
            else:
                v = getattr(fj, kind)(a)
            vals.append(v)
        return vals[-1]

    names = ", ".join(f"x{i}" for i in range(k))
    f = fj.fuse(eval(f"lambda {names}: run({names})", {"run": run}))  # noqa: S307
    rng = np.random.default_rng(seed)
    xs = tuple(rng.uniform(-3, 3, n).astype(F32) for _ in range(k))
    gy = rng.normal(size=n).astype(F32)
    if f._compile().listing[0] != k:
        return  # (not reached: every input is a traced value)
    check(f, xs, gy, nts=(1,))


@pytest.mark.parametrize("fn", [lambda x: fj.exp(x), lambda x: fj.sin(x), lambda x: fj.cos(x),
                                lambda x: fj.exp(x) * fj.sin(x) + fj.cos(x)],
                         ids=["exp", "sin", "cos", "exp sin cos"])
def test_one_lane_outside_the_native_range(fn):
    # exp, sin and cos check their native range in the loop that computes them: a tile
    # with one lane outside (the tile's last lane, or the array's last element in a
    # partial tile) is redone lane by lane by _stage, the bits of fastjac's float32 op
    f = fj.fuse(fn)
    n = 2 * 1024 + 5
    for pos in (0, 1023, 1024 + 517, n - 1):
        for bad in (100.0, -1e5, 3e7, np.inf, np.nan):
            x = RNG.uniform(-3.0, 3.0, n).astype(F32)
            x[pos] = bad
            gy = RNG.normal(size=n).astype(F32)
            check(f, (x,), gy, nts=(1,))
