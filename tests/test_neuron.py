"""Tests of fastjac.neuron: the batched ReLU neuron of the paper's §5 and §6."""

import ast
import hashlib
import pathlib
import sys
import tracemalloc
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastjac as fj
import fastjac.neuron as fn
from fastjac._kernels import neuron as kernels
from fastjac.jacobian import Column, RowScaled

DTYPES = [np.float64, np.float32]


# -- references ---------------------------------------------------------------------------


def numpy_loss_grad(X, y, w, b):
    """What a user would write in NumPy (the benchmark baseline), in float64."""
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    N = X.shape[0]
    with np.errstate(all="ignore"):
        z = X @ w + b
        r = np.maximum(z, 0) - y
        c = 2 / N * r * (z > 0)
        return (r * r).mean(), c @ X, c.sum(), c[:, None] * w


def make_batch(N, n, dtype=np.float64, seed=0, margin=0.0):
    """Random batch; with margin > 0, rows with |z| < margin are dropped (away from the
    kink, so that finite differences see one smooth piece)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n))
    w = rng.standard_normal(n) / np.sqrt(n)
    b = 0.1
    y = rng.standard_normal(N)
    if margin:
        keep = np.abs(X @ w + b) > margin
        X, y = X[keep], y[keep]
    return X.astype(dtype), y.astype(dtype), w.astype(dtype), b


def checksum(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture
def stream_reads():
    """stream_reads(True) makes the C loop read X as if it came from memory (each row's
    dot product in turn) whatever its size, stream_reads(False) never; restored after."""
    default = kernels._set_stream_min_bytes(0)
    kernels._set_stream_min_bytes(default)
    yield lambda on: kernels._set_stream_min_bytes(0 if on else 2**62)
    kernels._set_stream_min_bytes(default)


# -- the paper's §6 on a hand-made batch ----------------------------------------------------
#
# w = [1, -1], b = 0.5:
#   x1 = [2, 1]    z =  1.5  active     y1 = 1    e1 = 0.5     r1² = 0.25
#   x2 = [1, 3]    z = -1.5  inactive   y2 = 2                 r2² = 4
#   x3 = [0.5, 1]  z =  0    inactive   y3 = -1   (ReLU'(0)=0) r3² = 1
#   x4 = [3, 0]    z =  3.5  active     y4 = 3    e4 = 0.5     r4² = 0.25
# C  = (0.25 + 4 + 1 + 0.25) / 4 = 1.375
# gw = (2/4) (0.5 [2, 1] + 0.5 [3, 0]) = [1.25, 0.25]
# gb = (2/4) (0.5 + 0.5) = 0.5
# gX = (2/4) e_i w on active rows: [0.25, -0.25] on rows 1 and 4, zeros on rows 2 and 3
# (had x3 counted as active, gw would be [1.75, 1.25] and gb 1.5)

HAND_X = [[2.0, 1.0], [1.0, 3.0], [0.5, 1.0], [3.0, 0.0]]
HAND_Y = [1.0, 2.0, -1.0, 3.0]
HAND_W = [1.0, -1.0]
HAND_B = 0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_paper_section6_hand_case(dtype):
    X = np.array(HAND_X, dtype=dtype)
    y = np.array(HAND_Y, dtype=dtype)
    w = np.array(HAND_W, dtype=dtype)
    C, gw, gb, gX = fn.loss_grad(X, y, w, HAND_B, wrt=("w", "b", "X"))
    assert C == 1.375
    assert gw.dtype == dtype and gX.dtype == dtype
    np.testing.assert_array_equal(gw, [1.25, 0.25])
    assert gb == 0.5
    np.testing.assert_array_equal(gX, [[0.25, -0.25], [0, 0], [0, 0], [0.25, -0.25]])
    assert fn.loss(X, y, w, HAND_B) == 1.375
    np.testing.assert_array_equal(fn.activation(X, w, HAND_B), [1.5, 0.0, 0.0, 3.5])
    sse, gw_sum, gb_sum = fn.loss_grad_sums(X, y, w, HAND_B)
    assert sse == 5.5 and gb_sum == 1.0
    np.testing.assert_array_equal(gw_sum, [2.5, 0.5])


def test_paper_section5_jacobians_hand_case():
    X = np.array(HAND_X)
    Jw, Jb = fn.activation_jacobian(X, HAND_W, HAND_B)
    assert isinstance(Jw, RowScaled) and isinstance(Jb, Column)
    assert Jw.X is X  # a reference to the caller's X, not a copy
    np.testing.assert_array_equal(Jw.s, [1.0, 0.0, 0.0, 1.0])  # z == 0 is inactive
    np.testing.assert_array_equal(Jw.todense(), [[2, 1], [0, 0], [0, 0], [3, 0]])
    np.testing.assert_array_equal(Jb.todense(), [[1], [0], [0], [1]])
    # §6 by the chain rule through the §5 Jacobians: ∂C/∂w = (2/N) (a - y)ᵀ Jw
    a = fn.activation(X, HAND_W, HAND_B)
    v = 2 / 4 * (a - np.array(HAND_Y))
    np.testing.assert_array_equal(v @ Jw, [1.25, 0.25])
    np.testing.assert_array_equal(v @ Jb, [0.5])


# -- agreement with NumPy and with finite differences ----------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (32, 8), (1000, 10), (3000, 37)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_numpy(shape, dtype):
    X, y, w, b = make_batch(*shape, dtype=dtype, seed=shape[0])
    C, gw, gb, gX = fn.loss_grad(X, y, w, b, wrt=("w", "b", "X"))
    C0, gw0, gb0, gX0 = numpy_loss_grad(X, y, w, b)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    atol = 1e-12 if dtype == np.float64 else 1e-6
    assert C == pytest.approx(C0, rel=rtol)
    np.testing.assert_allclose(gw, gw0, rtol=rtol, atol=atol)
    assert gb == pytest.approx(gb0, rel=rtol, abs=atol)
    np.testing.assert_allclose(gX, gX0, rtol=rtol, atol=atol)
    with np.errstate(all="ignore"):
        act0 = np.maximum(X.astype(np.float64) @ w.astype(np.float64) + b, 0)
    np.testing.assert_allclose(fn.activation(X, w, b), act0, rtol=rtol, atol=atol)


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("stream", [False, True])
def test_finite_differences_float64(stream, stream_reads):
    stream_reads(stream)
    X, y, w, b = make_batch(200, 6, seed=3, margin=0.05)
    C, gw, gb, gX = fn.loss_grad(X, y, w, b, wrt=("w", "b", "X"))
    step = np.finfo(np.float64).eps ** (1 / 3)
    for j in range(w.size):
        def f(t, j=j):
            w2 = w.copy()
            w2[j] = t
            return fn.loss(X, y, w2, b)
        h = step * max(1.0, abs(w[j]))
        assert gw[j] == pytest.approx(_central(f, w[j], h), rel=1e-7, abs=1e-10)
    h = step * max(1.0, abs(b))
    assert gb == pytest.approx(_central(lambda t: fn.loss(X, y, w, t), b, h), rel=1e-7)
    for i, j in [(0, 0), (5, 3), (50, 5), (199 if X.shape[0] > 199 else 10, 1)]:
        def g(t, i=i, j=j):
            X2 = X.copy()
            X2[i, j] = t
            return fn.loss(X2, y, w, b)
        h = step * max(1.0, abs(X[i, j]))
        assert gX[i, j] == pytest.approx(_central(g, X[i, j], h), rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("stream", [False, True])
def test_finite_differences_float32(stream, stream_reads):
    stream_reads(stream)
    X, y, w, b = make_batch(200, 6, dtype=np.float32, seed=4, margin=0.1)
    C, gw, gb = fn.loss_grad(X, y, w, b)
    step = np.finfo(np.float32).eps ** (1 / 3)
    for j in range(w.size):
        hi, lo = w.copy(), w.copy()
        hi[j] = w[j] + np.float32(step)
        lo[j] = w[j] - np.float32(step)
        # the loss is accumulated in double, so only the float32 step needs care: divide
        # by the step that float32 really took
        num = (fn.loss(X, y, hi, b) - fn.loss(X, y, lo, b)) / (float(hi[j]) - float(lo[j]))
        assert float(gw[j]) == pytest.approx(num, rel=1e-4, abs=1e-5)
    h = 1e-3
    num = (fn.loss(X, y, w, b + h) - fn.loss(X, y, w, b - h)) / (2 * h)
    assert gb == pytest.approx(num, rel=1e-4, abs=1e-5)


def test_loss_grad_sums_compose_over_chunks():
    X, y, w, b = make_batch(5000, 12, seed=5)
    C, gw, gb = fn.loss_grad(X, y, w, b)
    parts = [fn.loss_grad_sums(X[i:i + 1234], y[i:i + 1234], w, b) for i in range(0, 5000, 1234)]
    parts.append(fn.loss_grad_sums(X[:0], y[:0], w, b))  # an empty chunk adds nothing
    sse = sum(p[0] for p in parts)
    gws = sum(p[1] for p in parts)
    gbs = sum(p[2] for p in parts)
    N = X.shape[0]
    assert sse / N == pytest.approx(C, rel=1e-13)
    np.testing.assert_allclose(2 / N * gws, gw, rtol=1e-12)
    assert 2 / N * gbs == pytest.approx(gb, rel=1e-12)


@st.composite
def dyadic_batches(draw):
    """Small batches of halves in [-2, 2]: every product and sum is exact in float32 and
    float64 whatever the summation order, and z == 0 ties are common."""
    N = draw(st.integers(0, 40))
    n = draw(st.integers(0, 9))
    halves = st.integers(-4, 4).map(lambda k: k / 2)
    X = np.array(draw(st.lists(halves, min_size=N * n, max_size=N * n))).reshape(N, n)
    y = np.array(draw(st.lists(halves, min_size=N, max_size=N)))
    w = np.array(draw(st.lists(halves, min_size=n, max_size=n)))
    b = draw(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]))
    dtype = draw(st.sampled_from(DTYPES))
    layout = draw(st.sampled_from(["C", "F", "strided", "readonly"]))
    return X, y, w, b, dtype, layout


@settings(max_examples=100, deadline=None)
@given(dyadic_batches(), st.sampled_from([1, 2]))
def test_property_exact_sums_any_layout(batch, n_threads):
    X, y, w, b, dtype, layout = batch
    Xd = X.astype(dtype)
    if layout == "F":
        Xd = np.asfortranarray(Xd)
    elif layout == "strided":
        Xd = np.repeat(Xd, 2, axis=1)[:, ::2]
    elif layout == "readonly":
        Xd.flags.writeable = False
    z = X @ w + b
    active = z > 0
    e = z - y
    sse0 = float(np.sum(np.where(active, e, y) ** 2))
    gw0 = (e * active) @ X if X.shape[0] else np.zeros(X.shape[1])
    gb0 = float(np.sum(e * active))
    sse, gw_sum, gb_sum = fn.loss_grad_sums(Xd, y.astype(dtype), w.astype(dtype), b,
                                            n_threads=n_threads)
    assert sse == sse0 and gb_sum == gb0
    assert gw_sum.dtype == dtype
    np.testing.assert_array_equal(gw_sum, gw0)
    np.testing.assert_array_equal(fn.activation(Xd, w.astype(dtype), b), np.maximum(z, 0))
    mask = fn.activation_jacobian(Xd, w.astype(dtype), b)[1].c
    np.testing.assert_array_equal(mask, active.astype(float))
    if X.shape[0]:
        C, gw, gb = fn.loss_grad(Xd, y.astype(dtype), w.astype(dtype), b)
        assert C == sse0 / X.shape[0]
        assert gb == 2 / X.shape[0] * gb0
        np.testing.assert_array_equal(gw, (2 / X.shape[0] * gw0).astype(dtype))


# -- dtypes, layouts, out= --------------------------------------------------------------------


def test_result_dtypes():
    X, y, w, b = make_batch(20, 3)
    X32, y32, w32 = X.astype(np.float32), y.astype(np.float32), w.astype(np.float32)
    assert fn.loss_grad(X32, y32, w32, b)[1].dtype == np.float32
    assert fn.loss_grad(X32, y, w32, b)[1].dtype == np.float64  # result_type widens
    Xi = np.arange(12).reshape(4, 3)
    C, gw, gb = fn.loss_grad(Xi, [1, 2, 3, 4], [1, 0, -1], 1)
    assert gw.dtype == np.float64
    ref = numpy_loss_grad(Xi, [1, 2, 3, 4], [1, 0, -1], 1)
    assert C == ref[0] and gb == ref[2]
    np.testing.assert_array_equal(gw, ref[1])
    assert fn.activation(Xi, [True, False, True], 0).dtype == np.float64
    assert isinstance(fn.loss(X, y, w, np.float32(0.5)), float)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_scalar_bias_same_as_float(dtype):
    """A bias held as a NumPy scalar (as training loops often keep it) gives the results of
    the same value as a Python float, through the one-call fast path and the general one."""
    X, y, w, _ = make_batch(64, 5, dtype=dtype, seed=22)
    for b in (np.float64(0.3), np.float32(0.3), np.array(0.3), 0.3):
        ref = fn.loss_grad(X, y, w, float(b), wrt=["w", "b"])  # the general path
        got = fn.loss_grad(X, y, w, b)
        assert got[0] == ref[0] and got[2] == ref[2] and type(got[2]) is float
        np.testing.assert_array_equal(got[1], ref[1])
        assert fn.loss(X, y, w, b) == ref[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_give_identical_results(dtype):
    X, y, w, b = make_batch(300, 9, dtype=dtype, seed=7)
    expected = fn.loss_grad(X, y, w, b, wrt=("w", "b", "X"))
    big = np.zeros((300, 18), dtype=dtype)
    big[:, ::2] = X
    strided = big[:, ::2]
    fortran = np.asfortranarray(X)
    readonly = X.copy()
    readonly.flags.writeable = False
    y_ro, w_ro = y.copy(), w.copy()
    y_ro.flags.writeable = w_ro.flags.writeable = False
    y_strided = np.repeat(y, 2)[::2]
    for Xv, yv, wv in [(strided, y, w), (fortran, y, w), (readonly, y_ro, w_ro),
                       (X, y_strided, w), (X.tolist(), y.tolist(), w.tolist())]:
        if isinstance(Xv, list):  # lists are float64 data
            got = fn.loss_grad(np.array(Xv, dtype=dtype), yv, np.array(wv, dtype=dtype), b)
            assert got[0] == pytest.approx(expected[0], rel=1e-6)
            # and all-list input (the general path, computed in float64): C, gw and gb
            # against the float64 NumPy reference (issue 18: only C was checked)
            ref = numpy_loss_grad(np.array(Xv), np.array(yv), np.array(wv), b)
            C, gw, gb = fn.loss_grad(Xv, yv, wv, b)
            assert gw.dtype == np.float64 and type(gb) is float
            assert C == pytest.approx(ref[0], rel=1e-12)
            np.testing.assert_allclose(gw, ref[1], rtol=1e-12, atol=1e-14)
            assert gb == pytest.approx(ref[2], rel=1e-12, abs=1e-14)
            continue
        got = fn.loss_grad(Xv, yv, wv, b, wrt=("w", "b", "X"))
        assert got[0] == expected[0] and got[2] == expected[2]
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[3], expected[3])
        np.testing.assert_array_equal(fn.activation(Xv, wv, b), fn.activation(X, w, b))
    assert readonly.flags.writeable is False  # still read-only, and untouched
    np.testing.assert_array_equal(readonly, X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_given_or_absent(dtype):
    X, y, w, b = make_batch(500, 7, dtype=dtype, seed=8)
    C, gw, gb, gX = fn.loss_grad(X, y, w, b, wrt=("w", "b", "X"))
    gw_out = np.full(7, 99, dtype=dtype)
    C2, gw2, gb2 = fn.loss_grad(X, y, w, b, out=gw_out)
    assert gw2 is gw_out and C2 == C and gb2 == gb
    np.testing.assert_array_equal(gw_out, gw)
    gX_out = np.empty((500, 7), dtype=dtype)
    res = fn.loss_grad(X, y, w, b, out=(gw_out, gX_out), wrt=("w", "b", "X"))
    assert res[1] is gw_out and res[3] is gX_out
    np.testing.assert_array_equal(gX_out, gX)
    # a non-contiguous out is filled through a temporary
    holder = np.zeros((7, 2), dtype=dtype)
    res = fn.loss_grad(X, y, w, b, out=holder[:, 0])
    np.testing.assert_array_equal(holder[:, 0], gw)
    assert not holder[:, 1].any()
    act_out = np.empty(500, dtype=dtype)
    assert fn.activation(X, w, b, out=act_out) is act_out
    np.testing.assert_array_equal(act_out, fn.activation(X, w, b))


def test_out_errors():
    X, y, w, b = make_batch(50, 4)
    with pytest.raises(TypeError, match="gw_out"):
        fn.loss_grad(X, y, w, b, out=np.empty(4, dtype=np.float32))
    with pytest.raises(ValueError, match="gw_out"):
        fn.loss_grad(X, y, w, b, out=np.empty(5))
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fn.loss_grad(X, y, w, b, out=ro)
    with pytest.raises(ValueError, match="wrt"):
        fn.loss_grad(X, y, w, b, out=np.empty(4), wrt="b")
    gX = np.empty((50, 4))
    with pytest.raises(ValueError, match="overlaps"):
        fn.loss_grad(X, y, w, b, out=(gX[0], gX), wrt=("w", "X"))
    with pytest.raises(ValueError, match="out"):
        fn.loss_grad(X, y, w, b, out=(None, None, None))
    with pytest.raises(ValueError, match="out"):
        fn.activation(X, w, b, out=np.empty(49))


def test_wrt_selection():
    X, y, w, b = make_batch(100, 5, seed=9)
    C, gw, gb = fn.loss_grad(X, y, w, b)
    Cw, gw1, gb1 = fn.loss_grad(X, y, w, b, wrt="w")
    assert Cw == C and gb1 is None
    np.testing.assert_array_equal(gw1, gw)
    Cb, gw2, gb2 = fn.loss_grad(X, y, w, b, wrt=["b"])
    assert Cb == C and gw2 is None and gb2 == gb
    assert fn.loss_grad(X, y, w, b, wrt=()) == (C, None, None)
    res = fn.loss_grad(X, y, w, b, wrt=("X",))
    assert len(res) == 4 and res[1] is None and res[2] is None
    np.testing.assert_allclose(res[3], numpy_loss_grad(X, y, w, b)[3], rtol=1e-13)
    with pytest.raises(ValueError, match="wrt"):
        fn.loss_grad(X, y, w, b, wrt=("w", "y"))
    with pytest.raises(TypeError, match="wrt"):
        fn.loss_grad(X, y, w, b, wrt=3)


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_bitwise_identical(dtype):
    N, n = 10_000, 13
    nblocks, rows = kernels.blocks(N, n)
    assert nblocks >= 8 and N % rows != 0  # many blocks, a ragged last one
    X, y, w, b = make_batch(N, n, dtype=dtype, seed=10)
    one = fn.loss_grad(X, y, w, b, n_threads=1, wrt=("w", "b", "X"))
    for nt in (2, 3):
        other = fn.loss_grad(X, y, w, b, n_threads=nt, wrt=("w", "b", "X"))
        assert other[0] == one[0] and other[2] == one[2]
        np.testing.assert_array_equal(other[1], one[1])
        np.testing.assert_array_equal(other[3], one[3])
        np.testing.assert_array_equal(fn.activation(X, w, b, n_threads=nt),
                                      fn.activation(X, w, b, n_threads=1))
        assert fn.loss_grad_sums(X, y, w, b, n_threads=nt)[0] == fn.loss_grad_sums(
            X, y, w, b, n_threads=1)[0]
    fits = [fn.fit(X, y, lr=0.05, epochs=3, batch_size=N // 2 + 1, n_threads=nt)
            for nt in (1, 2)]
    np.testing.assert_array_equal(fits[0].w, fits[1].w)
    assert fits[0].b == fits[1].b
    np.testing.assert_array_equal(fits[0].losses, fits[1].losses)


@pytest.fixture
def block_level():
    """Set the hot loop's version (0 portable, 1 AVX2) for one test, then restore the CPU's."""
    yield kernels._set_block_level
    kernels._set_block_level(-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_simd_versions_bitwise_identical(dtype, block_level, stream_reads):
    """The AVX2 loop and the portable one do the same arithmetic lane by lane: same bits,
    with the four rows of a group read in step or one after the other (the order for an X
    from memory). Shapes cover every n mod 4, rows short and long enough to be prefetched
    or not (256 B .. 4 KB), float32 rows kept widened in the L1 buffer or not
    (n = 256 / 257), n up to 16 (a copy with n constant) and above, the remainder of 1, 2
    or 3 elements, and N mod 4 (the one-row tail); fit's mini-batches take the idx path."""
    if block_level(1) != 1:
        pytest.skip("this CPU or build has no AVX2 version")
    rng = np.random.default_rng(21)
    for N, n in [(1, 1), (3, 5), (4, 4), (37, 1), (61, 2), (203, 3), (129, 7), (1000, 10),
                 (45, 18), (33, 23), (515, 100), (130, 255), (66, 256), (67, 257), (21, 512),
                 (19, 1000)]:
        X = rng.standard_normal((N, n)).astype(dtype)
        y = rng.standard_normal(N).astype(dtype)
        w = (rng.standard_normal(n) / np.sqrt(n)).astype(dtype)
        X[::3] *= -1  # a mix of active and inactive rows
        res = {}
        for level in (1, 0):
            assert block_level(level) == level
            for stream in (False, True):
                stream_reads(stream)
                res[level, stream] = (
                    fn.loss_grad(X, y, w, 0.05, n_threads=1),
                    fn.loss_grad(X, y, w, 0.05, n_threads=1, wrt=()),
                    fn.fit(X, y, lr=0.01, epochs=3, batch_size=max(N // 3, 1), n_threads=1))
        (C1, gw1, gb1), loss1, fit1 = res[1, False]
        for key in [(1, True), (0, False), (0, True)]:
            (C0, gw0, gb0), loss0, fit0 = res[key]
            assert (C1, gb1) == (C0, gb0) and loss1 == loss0, (N, n, key)
            np.testing.assert_array_equal(gw1, gw0, err_msg=f"{(N, n, key)}")
            np.testing.assert_array_equal(fit1.w, fit0.w, err_msg=f"{(N, n, key)}")
            np.testing.assert_array_equal(fit1.losses, fit0.losses, err_msg=f"{(N, n, key)}")
            assert fit1.b == fit0.b
        # and both agree with the NumPy reference to rounding
        C_ref, gw_ref, gb_ref, _ = numpy_loss_grad(X, y, w, 0.05)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gw1, gw_ref, rtol=tol, atol=tol)
        assert C1 == pytest.approx(C_ref, rel=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_x_streamed_reads(dtype, stream_reads):
    """An X above the streaming size (4 MB) takes the row-after-row read order by default:
    same bits as the in-step order, for every layout, out=, n_threads 1 and 2, and fit;
    and it agrees with NumPy."""
    N, n = (6000, 100) if dtype == np.float64 else (12000, 100)
    X, y, w, b = make_batch(N, n, dtype=dtype, seed=31)
    X[::3] *= -1
    default = kernels._set_stream_min_bytes(0)
    kernels._set_stream_min_bytes(default)
    assert X.nbytes > default
    streamed = fn.loss_grad(X, y, w, b, n_threads=1)
    stream_reads(False)
    in_step = fn.loss_grad(X, y, w, b, n_threads=1)
    fit_in_step = fn.fit(X, y, lr=0.01, epochs=2, batch_size=N // 2, n_threads=1)
    kernels._set_stream_min_bytes(default)
    assert streamed[0] == in_step[0] and streamed[2] == in_step[2]
    np.testing.assert_array_equal(streamed[1], in_step[1])
    C0, gw0, gb0, _ = numpy_loss_grad(X, y, w, b)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert streamed[0] == pytest.approx(C0, rel=tol)
    np.testing.assert_allclose(streamed[1], gw0, rtol=tol, atol=tol)
    assert streamed[2] == pytest.approx(gb0, rel=tol, abs=tol)
    big = np.zeros((N, 2 * n), dtype=dtype)
    big[:, ::2] = X
    readonly = X.copy()
    readonly.flags.writeable = False
    gw_out = np.full(n, 7, dtype=dtype)
    for Xv in (big[:, ::2], np.asfortranarray(X), readonly):
        for nt in (1, 2):
            got = fn.loss_grad(Xv, y, w, b, out=gw_out, n_threads=nt)
            assert got[1] is gw_out
            assert got[0] == in_step[0] and got[2] == in_step[2]
            np.testing.assert_array_equal(gw_out, in_step[1])
            assert fn.loss(Xv, y, w, b, n_threads=nt) == in_step[0]
    fit = fn.fit(X, y, lr=0.01, epochs=2, batch_size=N // 2, n_threads=2)
    np.testing.assert_array_equal(fit.w, fit_in_step.w)
    np.testing.assert_array_equal(fit.losses, fit_in_step.losses)


def test_n_threads_validation():
    X, y, w, b = make_batch(10, 2)
    with pytest.raises(ValueError, match="n_threads"):
        fn.loss_grad(X, y, w, b, n_threads=0)
    with pytest.raises(TypeError, match="n_threads"):
        fn.loss(X, y, w, b, n_threads=1.5)


# -- memory ----------------------------------------------------------------------------------


def test_loss_grad_extra_memory_is_O_n():
    N, n = 1_000_000, 10
    rng = np.random.default_rng(11)
    X = rng.standard_normal((N, n))
    y = rng.standard_normal(N)
    w = rng.standard_normal(n)
    gw = np.empty(n)
    fn.loss_grad(X, y, w, 0.1, out=gw)  # warm up (imports, caches)
    tracemalloc.start()
    # validation mode (FASTJAC_VALIDATE=1) re-evaluates the loss on purpose: measure the kernel
    with fj.validating(False):
        tracemalloc.reset_peak()
        C, _, gb = fn.loss_grad(X, y, w, 0.1, out=gw)
        fn.loss_grad(X, y, w, 0.1, n_threads=2)
        fn.loss(X, y, w, 0.1)
        _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 1024, peak  # N * 8 bytes would be 8 MB; X itself is 80 MB
    assert np.isfinite(C) and np.isfinite(gb)


# -- special values --------------------------------------------------------------------------


def test_nan_and_inf_propagate_like_numpy():
    X, y, w, b = make_batch(40, 3, seed=12)
    z = X @ w + b
    inactive = np.flatnonzero(z <= 0)
    active = np.flatnonzero(z > 0)
    cases = []
    Xn = X.copy()
    Xn[3, 1] = np.nan
    cases.append((Xn, y, w, b))
    yn = y.copy()
    yn[inactive[0]] = np.nan  # NumPy: r*0 = NaN leaks into c @ X
    cases.append((X, yn, w, b))
    yn2 = y.copy()
    yn2[active[0]] = np.inf
    cases.append((X, yn2, w, b))
    Xi = X.copy()
    Xi[inactive[1]] = [-np.inf if wj > 0 else np.inf for wj in w]  # z = -inf, inactive
    cases.append((Xi, y, w, b))
    cases.append((X, y, np.array([np.nan, 0, 0]), b))
    cases.append((X, y, w, np.nan))
    cases.append((X, y, w, np.inf))
    for Xc, yc, wc, bc in cases:
        C, gw, gb, gX = fn.loss_grad(Xc, yc, wc, bc, wrt=("w", "b", "X"))
        C0, gw0, gb0, gX0 = numpy_loss_grad(Xc, yc, wc, bc)
        np.testing.assert_allclose(C, C0, rtol=1e-12)
        np.testing.assert_allclose(gw, gw0, rtol=1e-12)
        np.testing.assert_allclose(gb, gb0, rtol=1e-12)
        np.testing.assert_allclose(gX, gX0, rtol=1e-12)
    assert np.isnan(fn.activation(Xn, w, b)[3])
    assert np.isnan(fn.activation_jacobian(Xn, w, b)[0].s[3])


# -- bad inputs ------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument():
    X, y, w, b = make_batch(10, 3)
    with pytest.raises(ValueError, match=r"X must be a 2-D"):
        fn.loss_grad(X[0], y, w, b)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(10,\)"):
        fn.loss_grad(X, y[:9], w, b)
    with pytest.raises(ValueError, match=r"w must have shape \(n,\) = \(3,\)"):
        fn.loss_grad(X, y, w[:2], b)
    with pytest.raises(ValueError, match="y must be a 1-D"):
        fn.loss(X, y[:, None], w, b)
    with pytest.raises(ValueError, match="y must be a 1-D"):
        fn.loss(X, y[:, None].tolist(), w, b)
    with pytest.raises(TypeError, match="X has dtype complex"):
        fn.loss(X.astype(complex), y, w, b)
    with pytest.raises(TypeError, match="y"):
        fn.loss(X, ["a"] * 10, w, b)
    with pytest.raises(TypeError, match="b must be a real number"):
        fn.loss(X, y, w, "0.5")
    with pytest.raises(TypeError, match="b must be a real number"):
        fn.activation(X, w, 1j)
    with pytest.raises(TypeError, match="b must be a real number"):
        fn.activation(X, w, np.zeros(2))
    with pytest.raises(ValueError, match="lr"):
        fn.fit(X, y, lr=float("nan"), epochs=1)
    with pytest.raises(ValueError, match="lr"):
        fn.fit(X, y, lr=-0.1, epochs=1)
    with pytest.raises(TypeError, match="lr"):
        fn.fit(X, y, lr="fast", epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fn.fit(X, y, lr=0.1, epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        fn.fit(X, y, lr=0.1, epochs=2.5)
    with pytest.raises(ValueError, match="batch_size"):
        fn.fit(X, y, lr=0.1, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="b0"):
        fn.fit(X, y, lr=0.1, epochs=1, b0=np.inf)
    with pytest.raises(ValueError, match="w0 must have shape"):
        fn.fit(X, y, lr=0.1, epochs=1, w0=np.zeros(4))
    with pytest.raises(TypeError, match="callback"):
        fn.fit(X, y, lr=0.1, epochs=1, callback=3)
    with pytest.raises(ValueError, match="y must have shape"):
        fn.fit(X, y[:3], lr=0.1, epochs=1)


def test_empty_batches():
    X = np.empty((0, 3))
    y = np.empty(0)
    w = np.ones(3)
    with pytest.raises(ValueError, match="N == 0"):
        fn.loss(X, y, w, 0.0)
    with pytest.raises(ValueError, match="N == 0"):
        fn.loss_grad(X, y, w, 0.0)
    with pytest.raises(ValueError, match="N == 0"):
        fn.fit(X, y, lr=0.1, epochs=1)
    sse, gw, gb = fn.loss_grad_sums(X, y, w, 0.0)
    assert sse == 0.0 and gb == 0.0 and gw.shape == (3,) and not gw.any()
    assert fn.activation(X, w, 0.0).shape == (0,)
    Jw, Jb = fn.activation_jacobian(X, w, 0.0)
    assert Jw.shape == (0, 3) and Jb.shape == (0, 1)


def test_zero_features():
    # n == 0: z = b for every sample
    X = np.empty((4, 0))
    y = np.array([1.0, 2.0, 0.0, -1.0])
    C, gw, gb = fn.loss_grad(X, y, np.empty(0), 0.5)
    C0, gw0, gb0, _ = numpy_loss_grad(X, y, np.empty(0), 0.5)
    assert C == pytest.approx(C0) and gb == pytest.approx(gb0) and gw.shape == (0,)
    np.testing.assert_array_equal(fn.activation(X, np.empty(0), 0.5), [0.5] * 4)


# -- fit --------------------------------------------------------------------------------------


def numpy_fit(X, y, lr, epochs, batch_size, w0, b0, seed, shuffle):
    """The same training loop written in NumPy, for reference."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    rng = np.random.default_rng(seed)
    N, n = X.shape
    w = rng.normal(0.0, 1.0 / np.sqrt(n), size=n) if w0 is None else np.array(w0, float)
    b = b0
    B = N if batch_size is None else min(batch_size, N)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(N) if shuffle and B < N else np.arange(N)
        sse = 0.0
        for s in range(0, N, B):
            rows = order[s:s + B]
            Xb, yb = X[rows], y[rows]
            z = Xb @ w + b
            r = np.maximum(z, 0) - yb
            c = 2 / len(rows) * r * (z > 0)
            sse += (r * r).sum()
            w = w - lr * (c @ Xb)
            b = b - lr * c.sum()
        losses.append(sse / N)
    return w, b, np.array(losses)


@pytest.mark.parametrize("batch_size,shuffle,w0", [(None, True, None), (32, True, None),
                                                   (50, False, "given"), (64, True, "given")])
def test_fit_matches_numpy_loop(batch_size, shuffle, w0):
    X, y, w, b = make_batch(300, 4, seed=13)
    w0 = w if w0 == "given" else None
    res = fn.fit(X, y, lr=0.05, epochs=20, batch_size=batch_size, w0=w0, b0=0.2, seed=5,
                 shuffle=shuffle)
    w_ref, b_ref, losses_ref = numpy_fit(X, y, 0.05, 20, batch_size, w0, 0.2, 5, shuffle)
    np.testing.assert_allclose(res.w, w_ref, rtol=1e-10, atol=1e-12)
    assert res.b == pytest.approx(b_ref, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(res.losses, losses_ref, rtol=1e-10)
    assert res.losses.shape == (20,)
    if batch_size is None:  # full batch: losses[e] is C at the start of epoch e
        assert res.losses[0] == pytest.approx(fn.loss(X, y, numpy_fit(
            X, y, 0.05, 0, None, w0, 0.2, 5, shuffle)[0], 0.2), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_recovers_teacher_neuron(dtype):
    rng = np.random.default_rng(14)
    N, n = 2000, 5
    w_star = np.array([1.5, -2.0, 0.5, 1.0, -0.7])
    b_star = 3.0  # with |w*·x| ~ 2.8, most samples are active
    X = rng.standard_normal((N, n))
    y = np.maximum(X @ w_star + b_star, 0)
    assert (X @ w_star + b_star > 0).mean() > 0.8
    res = fn.fit(X.astype(dtype), y.astype(dtype), lr=0.1, epochs=300, batch_size=100,
                 b0=1.0, seed=1)
    tol = 1e-6 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(res.w, w_star, atol=tol)
    assert res.b == pytest.approx(b_star, abs=tol)
    assert res.w.dtype == dtype
    assert res.losses[-1] < 1e-6 * res.losses[0]
    assert np.all(np.diff(res.losses[:5]) < 0)


def test_fit_divergence_raises_and_leaves_inputs_untouched():
    X, y, w, b = make_batch(200, 5, seed=15)
    X *= 10
    before = checksum(X, y, w)
    with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+.*lr=10") as info:
        fn.fit(X, y, lr=10.0, epochs=200, w0=w, b0=0.5)
    assert info.value.epoch >= 1
    assert np.isfinite(info.value.losses).all() and len(info.value.losses) == info.value.epoch
    assert checksum(X, y, w) == before
    with pytest.raises(FloatingPointError, match="diverged"):
        fn.fit(X, y, lr=10.0, epochs=200, batch_size=16, w0=w, b0=0.5)
    assert checksum(X, y, w) == before


def test_fit_nonfinite_start_is_a_value_error():
    X, y, w, b = make_batch(20, 2, seed=16)
    Xn = X.copy()
    Xn[0, 0] = np.inf
    Xn[1, 0] = np.nan
    with pytest.raises(ValueError, match="initial parameters"):
        fn.fit(Xn, y, lr=0.1, epochs=3, w0=w)
    with pytest.raises(ValueError, match="w0 must be finite"):
        fn.fit(X, y, lr=0.1, epochs=3, w0=[np.nan, 0])


def test_fit_callback_is_bitwise_the_same_and_can_stop():
    X, y, w, b = make_batch(500, 6, seed=17)
    kwargs = dict(lr=0.05, epochs=12, batch_size=64, seed=3)
    plain = fn.fit(X, y, **kwargs)
    seen = []

    def callback(epoch, loss, w, b):
        seen.append((epoch, loss, w.copy(), b))

    with_cb = fn.fit(X, y, callback=callback, **kwargs)
    np.testing.assert_array_equal(with_cb.w, plain.w)
    assert with_cb.b == plain.b
    np.testing.assert_array_equal(with_cb.losses, plain.losses)
    assert [s[0] for s in seen] == list(range(12))
    assert [s[1] for s in seen] == list(plain.losses)
    np.testing.assert_array_equal(seen[-1][2], plain.w)
    stopped = fn.fit(X, y, callback=lambda e, *_: e == 4, **kwargs)
    assert stopped.losses.shape == (5,)
    np.testing.assert_array_equal(stopped.losses, plain.losses[:5])


def test_fit_progress_bar(monkeypatch):
    updates = []

    class FakeBar:
        def __init__(self, total, **kw):
            self.total = total

        def set_postfix(self, **kw):
            updates.append(kw["loss"])

        def update(self, k):
            pass

        def close(self):
            updates.append("closed")

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    X, y, w, b = make_batch(100, 3, seed=18)
    res = fn.fit(X, y, lr=0.05, epochs=4, progress=True)
    assert len(updates) == 5 and updates[-1] == "closed"
    assert float(updates[0]) == pytest.approx(res.losses[0], rel=1e-5)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    with pytest.raises(ImportError, match="tqdm"):
        fn.fit(X, y, lr=0.05, epochs=4, progress=True)


# -- the stub --------------------------------------------------------------------------------


def test_stub_matches_compiled_module():
    stub = pathlib.Path(kernels.__file__).with_name("neuron.pyi")
    tree = ast.parse(stub.read_text())
    declared = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    public = {name for name in dir(kernels)
              if not name.startswith("_") and callable(getattr(kernels, name))}
    assert declared == public


def test_fit_weights_beyond_float32_are_a_divergence():
    # Trained in double, finite there, but 2e39 does not fit in float32: fit says so
    # rather than returning inf weights.
    X = np.ones((4, 2), np.float32)
    y = np.full(4, 1e20, np.float32)
    with pytest.raises(FloatingPointError, match=r"after 1 epochs .*\|w\| = 2e\+39.*float32") as info:
        fn.fit(X, y, lr=1e19, epochs=1, w0=np.zeros(2, np.float32), b0=1.0)
    assert info.value.epoch == 1 and info.value.losses.shape == (1,)
