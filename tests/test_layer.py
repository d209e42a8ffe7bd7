"""Tests of fastjac.layer: a layer of m ReLU neurons (W one row per neuron), its MSE loss,
the VJP of its activation, its structured Jacobians and its training loop."""

import itertools
import subprocess
import sys
import pathlib

import numpy as np
import pytest

import fastjac as fj
import fastjac.layer as fl
from fastjac._kernels import layer as kernels

DTYPES = [np.float64, np.float32]
ROOT = pathlib.Path(__file__).resolve().parents[1]
HOUSES = ROOT / "examples" / "houses.csv"

# shapes (N, n, m) on both paths: one pass (m n <= ONEPASS_MAX) and BLAS
SHAPES = [(7, 3, 2), (32, 8, 16), (101, 10, 5), (300, 70, 40), (120, 150, 120)]
assert 150 * 120 > max(fl.ONEPASS_MAX.values()) and min(fl.ONEPASS_MAX.values()) >= 8 * 16


@pytest.fixture(params=["blocked", "matmul"])
def blas_path(request):
    """The two ways of the BLAS path: fastjac's blocks with one-thread GEMM (forced down to
    small shapes here) and np.matmul (what runs with a BLAS the blocks cannot call)."""
    if request.param == "blocked":
        prev = kernels._set_blas_blocking(min_rows=8, min_work=1, enabled=True)
    else:
        prev = kernels._set_blas_blocking(enabled=False)
    try:
        yield request.param
    finally:
        kernels._set_blas_blocking(*prev)


# -- references ---------------------------------------------------------------------------


def numpy_forward(X, W, b):
    X, W, b = (np.asarray(a, dtype=np.float64) for a in (X, W, b))
    return X @ W.T + b


def numpy_loss_grad(X, Y, W, b):
    """What a user would write in NumPy, in float64: (C, gW, gb, gX)."""
    X, Y, W, b = (np.asarray(a, dtype=np.float64) for a in (X, Y, W, b))
    N = X.shape[0]
    with np.errstate(all="ignore"):
        Z = X @ W.T + b
        R = np.maximum(Z, 0) - Y
        c = 2 / N * R * (Z > 0)
        return (R * R).sum() / N, c.T @ X, c.sum(axis=0), c @ W


def numpy_vjp(X, W, A, G):
    X, W, A, G = (np.asarray(a, dtype=np.float64) for a in (X, W, A, G))
    with np.errstate(all="ignore"):
        c = G * (A > 0)
        return {"X": c @ W, "W": c.T @ X, "b": c.sum(axis=0)}


def make(N, n, m, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n)).astype(dtype)
    W = (rng.standard_normal((m, n)) / np.sqrt(n)).astype(dtype)
    b = rng.standard_normal(m) * 0.1
    Y = rng.standard_normal((N, m)).astype(dtype)
    return X, Y, W, b


def tol(dtype, n):
    return dict(rtol=1e-12 * n, atol=1e-12 * n) if dtype == np.float64 else \
        dict(rtol=3e-5 * np.sqrt(n), atol=3e-5 * np.sqrt(n))


# -- values against NumPy -----------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_matches_numpy(shape, dtype, blas_path):
    X, Y, W, b = make(*shape, dtype=dtype)
    C, gW, gb, gX = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    rC, rgW, rgb, rgX = numpy_loss_grad(X, Y, W, b)
    t = tol(dtype, shape[1] * shape[2])
    assert isinstance(C, float)
    assert gW.dtype == dtype and gb.dtype == dtype and gX.dtype == dtype
    assert gW.shape == W.shape and gb.shape == b.shape and gX.shape == X.shape
    np.testing.assert_allclose(C, rC, rtol=1e-12 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(gW, rgW, **t)
    np.testing.assert_allclose(gb, rgb, **t)
    np.testing.assert_allclose(gX, rgX, **t)
    assert fl.loss(X, Y, W, b) == pytest.approx(rC, rel=1e-12 if dtype == np.float64 else 1e-5)
    # the default wrt (fast path) gives the same bits as the general path
    C2, gW2, gb2 = fl.loss_grad(X, Y, W, b)
    assert C2 == C and np.array_equal(gW2, gW) and np.array_equal(gb2, gb)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_matches_numpy(shape, dtype, blas_path):
    X, Y, W, b = make(*shape, dtype=dtype)
    A = fl.activation(X, W, b)
    assert A.dtype == dtype and A.shape == (shape[0], shape[2])
    np.testing.assert_allclose(A, np.maximum(numpy_forward(X, W, b), 0), **tol(dtype, shape[1]))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wrt", [w for r in (1, 2, 3)
                                 for w in itertools.permutations(("X", "W", "b"), r)])
def test_activation_vjp_every_wrt(shape, dtype, wrt, blas_path):
    X, Y, W, b = make(*shape, dtype=dtype)
    A = fl.activation(X, W, b)
    G = np.random.default_rng(1).standard_normal(A.shape).astype(dtype)
    res = fl.activation_vjp(X, W, A, G, wrt=wrt)
    assert isinstance(res, tuple) and len(res) == len(wrt)
    ref = numpy_vjp(X, W, A, G)
    for name, got in zip(wrt, res):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref[name], **tol(dtype, shape[1] * shape[2]))
    single = fl.activation_vjp(X, W, A, G, wrt=wrt[0])
    assert np.array_equal(single, res[0])


# -- finite differences (fj.check_grad) for every wrt combination ---------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(40, 5, 3), (30, 140, 120)])
@pytest.mark.parametrize("wrt", [w for r in (1, 2, 3)
                                 for w in itertools.combinations(("W", "b", "X"), r)])
def test_loss_grad_check_grad(dtype, shape, wrt):
    N, n, m = shape
    X, Y, W, b = make(N, n, m, dtype=dtype, seed=3)
    res = fl.loss_grad(X, Y, W, b, wrt=wrt)
    assert len(res) == (4 if "X" in wrt else 3)
    grads = {"W": res[1], "b": res[2], "X": res[3] if "X" in wrt else None}
    for name in ("W", "b", "X"):
        if name not in wrt:
            assert grads[name] is None
            continue
        if name == "W":
            f = lambda v: fl.loss(X, Y, v, b)  # noqa: E731
            x0 = W
        elif name == "b":
            f = lambda v: fl.loss(X, Y, W, v)  # noqa: E731
            x0 = b
        else:
            f = lambda v: fl.loss(v, Y, W, b)  # noqa: E731
            x0 = X
        # float32 results are checked at a float32 point (check_grad then allows for
        # their rounding); b is float64 inside but its gradient is returned in dtype
        report = fj.check_grad(f, grads[name], np.asarray(x0, dtype=dtype))
        assert report, str(report)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_vjp_check_grad(dtype):
    X, Y, W, b = make(30, 4, 3, dtype=dtype, seed=5)
    G = np.random.default_rng(6).standard_normal((30, 3)).astype(dtype)
    A = fl.activation(X, W, b)
    gX, gW, gb = fl.activation_vjp(X, W, A, G)
    # <G, activation(.)> has gradient activation_vjp(G)
    for name, g, x0 in (("W", gW, W), ("b", gb, b), ("X", gX, X)):
        def f(v, name=name):
            args = {"X": X, "W": W, "b": b}
            args[name] = v
            return float(np.sum(G.astype(np.float64) * fl.activation(args["X"], args["W"],
                                                                     args["b"])))
        report = fj.check_grad(f, g, np.asarray(x0, dtype=dtype))
        assert report, str(report)


# -- m = 1 is the neuron ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,n", [(32, 8), (1000, 10), (5, 1)])
def test_one_neuron_is_the_neuron(dtype, N, n):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, n)).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    w = rng.standard_normal(n).astype(dtype)
    bb = 0.3
    C, gw, gb, gX = fj.neuron.loss_grad(X, y, w, bb, wrt=("w", "b", "X"))
    LC, LgW, Lgb, LgX = fl.loss_grad(X, y[:, None], w[None, :], [bb], wrt=("W", "b", "X"))
    assert LC == C
    assert np.array_equal(LgW[0], gw)
    assert Lgb[0] == np.asarray(gb, dtype=dtype)
    assert np.array_equal(LgX, gX)
    assert fl.loss(X, y[:, None], w[None, :], [bb]) == fj.neuron.loss(X, y, w, bb)
    assert np.array_equal(fl.activation(X, w[None, :], [bb])[:, 0],
                          fj.neuron.activation(X, w, bb))
    r1 = fj.neuron.fit(X, y, lr=0.05, epochs=5, batch_size=7, seed=3)
    r2 = fl.fit(X, y[:, None], lr=0.05, epochs=5, batch_size=7, seed=3)
    assert np.array_equal(r1.w, r2.W[0]) and r1.b == r2.b[0]
    assert np.array_equal(r1.losses, r2.losses)


def test_relu_derivative_at_exact_zero_is_zero():
    # neuron 0: z = 1*2 + (-2) = 0 exactly on row 0 -> inactive; neuron 1 active
    X = np.array([[2.0], [3.0]])
    W = np.array([[1.0], [1.0]])
    b = np.array([-2.0, 0.5])
    Y = np.array([[-1.0, 1.0], [0.0, 0.0]])
    C, gW, gb, gX = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    rC, rgW, rgb, rgX = numpy_loss_grad(X, Y, W, b)
    # row 0 neuron 0: z = 0 -> no gradient; row 1 neuron 0: z = 1, e = 1
    assert gb[0] == pytest.approx(2 / 2 * 1.0)
    assert gW[0, 0] == pytest.approx(2 / 2 * 1.0 * 3.0)
    np.testing.assert_allclose(gW, rgW)
    np.testing.assert_allclose(gb, rgb)
    np.testing.assert_allclose(gX, rgX)
    A = fl.activation(X, W, b)
    assert A[0, 0] == 0.0
    gXv, gWv, gbv = fl.activation_vjp(X, W, A, np.ones_like(A))
    assert gbv[0] == 1.0  # only row 1 passes gradient through neuron 0
    JW, Jb, JX = fl.activation_jacobian(X, W, b)
    assert Jb.block(0)[0, 0] == 0.0 and Jb.block(1)[0, 0] == 1.0


# -- Jacobians --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_jacobian_structured(dtype):
    X, Y, W, b = make(6, 4, 3, dtype=dtype, seed=8)
    JW, Jb, JX = fl.activation_jacobian(X, W, b)
    N, n, m = 6, 4, 3
    assert JW.shape == (N * m, m * n) and Jb.shape == (N * m, m) and JX.shape == (N * m, N * n)
    assert isinstance(JW, fj.LayerJacobian)
    mask = (numpy_forward(X, W, b) > 0).astype(np.float64)
    # dense reference by the paper's per-neuron rules
    DW = np.zeros((N * m, m * n))
    Db = np.zeros((N * m, m))
    DX = np.zeros((N * m, N * n))
    for i in range(N):
        for k in range(m):
            DW[i * m + k, k * n:(k + 1) * n] = mask[i, k] * X[i]
            Db[i * m + k, k] = mask[i, k]
            DX[i * m + k, i * n:(i + 1) * n] = mask[i, k] * W[k]
    t = tol(dtype, n)
    np.testing.assert_allclose(JW.todense(), DW, **t)
    np.testing.assert_allclose(Jb.todense(), Db, **t)
    np.testing.assert_allclose(JX.todense(), DX, **t)
    rng = np.random.default_rng(9)
    for J, D in ((JW, DW), (Jb, Db), (JX, DX)):
        v = rng.standard_normal(J.shape[1])
        u = rng.standard_normal(J.shape[0])
        np.testing.assert_allclose(J @ v, D @ v, **t)
        np.testing.assert_allclose(u @ J, u @ D, **t)
    # the VJP through the Jacobian is activation_vjp
    A = fl.activation(X, W, b)
    G = rng.standard_normal(A.shape).astype(dtype)
    gX, gW, gb = fl.activation_vjp(X, W, A, G)
    np.testing.assert_allclose(G.ravel() @ JW, gW.ravel(), **t)
    np.testing.assert_allclose(G.ravel() @ JX, gX.ravel(), **t)
    np.testing.assert_allclose(G.ravel() @ Jb, gb, **t)


# -- layouts, out=, threads, inputs never written -------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 8, 16), (200, 150, 120)])
def test_layouts_give_identical_results(dtype, shape):
    X, Y, W, b = make(*shape, dtype=dtype, seed=11)
    ref = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    Xf = np.asfortranarray(X)
    Xs = np.zeros((shape[0], 2 * shape[1]), dtype=dtype)[:, ::2]
    Xs[...] = X
    Xr = X.copy()
    Xr.flags.writeable = False
    Wf = np.asfortranarray(W)
    for Xv in (Xf, Xs, Xr):
        got = fl.loss_grad(Xv, Y, Wf, b, wrt=("W", "b", "X"))
        assert got[0] == ref[0]
        for a, r in zip(got[1:], ref[1:]):
            assert np.array_equal(a, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 8, 16), (200, 150, 120)])
def test_inputs_never_written(dtype, shape):
    X, Y, W, b = make(*shape, dtype=dtype, seed=12)
    copies = [a.copy() for a in (X, Y, W, b)]
    for a in (X, Y, W, b):
        a.flags.writeable = False
    fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    A = fl.activation(X, W, b)
    G = np.ones_like(A)
    G.flags.writeable = False
    A.flags.writeable = False
    fl.activation_vjp(X, W, A, G)
    fl.fit(X, Y, lr=0.01, epochs=2)
    for a, c in zip((X, Y, W, b), copies):
        assert np.array_equal(a, c)
    assert np.all(G == 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 8, 16), (200, 150, 120)])
def test_out_given(dtype, shape):
    X, Y, W, b = make(*shape, dtype=dtype, seed=13)
    N, n, m = shape
    ref = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    gW, gb, gX = np.empty((m, n), dtype), np.empty(m, dtype), np.empty((N, n), dtype)
    got = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"), out=(gW, gb, gX))
    assert got[1] is gW and got[2] is gb and got[3] is gX
    for a, r in zip(got[1:], ref[1:]):
        assert np.array_equal(a, r)
    # default wrt with a tuple out, and a Fortran-order gW_out
    gWf = np.asfortranarray(np.empty((m, n), dtype))
    got = fl.loss_grad(X, Y, W, b, out=(gWf, None))
    assert got[1] is gWf and np.array_equal(gWf, ref[1])
    got = fl.loss_grad(X, Y, W, b, out=gW)
    assert got[1] is gW and np.array_equal(gW, ref[1])
    A = np.empty((N, m), dtype)
    assert fl.activation(X, W, b, out=A) is A
    assert np.array_equal(A, fl.activation(X, W, b))
    G = np.ones_like(A)
    o = np.empty((m, n), dtype)
    assert fl.activation_vjp(X, W, A, G, wrt="W", out=o) is o
    assert np.array_equal(o, fl.activation_vjp(X, W, A, G, wrt="W"))
    o2 = (np.empty(m, dtype), None)
    res = fl.activation_vjp(X, W, A, G, wrt=("b", "X"), out=o2)
    assert res[0] is o2[0]


def test_out_errors():
    X, Y, W, b = make(20, 3, 4)
    with pytest.raises(ValueError, match="gW_out has shape"):
        fl.loss_grad(X, Y, W, b, out=np.empty((3, 4)))
    with pytest.raises(TypeError, match="dtype"):
        fl.loss_grad(X, Y, W, b, out=np.empty((4, 3), np.float32))
    ro = np.empty((4, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fl.loss_grad(X, Y, W, b, out=ro)
    with pytest.raises(ValueError, match="not in wrt"):
        fl.loss_grad(X, Y, W, b, wrt="W", out=(None, np.empty(4)))
    # the general path refuses an out that overlaps an input or another out (the
    # default-wrt fast path, like the neuron's, writes after its last read: safe)
    with pytest.raises(ValueError, match="overlaps"):
        fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"), out=(W, None, None))
    g = np.empty(12)
    with pytest.raises(ValueError, match="overlaps"):
        fl.loss_grad(X, Y, W, b, wrt=("W", "b"), out=(g[:12].reshape(4, 3), g[8:]))
    Wc = W.copy()
    C, gW, gb = fl.loss_grad(X, Y, Wc, b, out=(Wc, None))
    assert gW is Wc and np.array_equal(Wc, fl.loss_grad(X, Y, W, b)[1])


def assert_same_bits_as_one_thread(X, Y, W, b, G, nt, ref, A1, V1):
    # loss_grad, activation and activation_vjp at n_threads=nt against the one-thread results
    got = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"), n_threads=nt)
    assert got[0] == ref[0]
    for a, r in zip(got[1:], ref[1:]):
        assert np.array_equal(a, r)
    assert np.array_equal(fl.activation(X, W, b, n_threads=nt), A1)
    for a, r in zip(fl.activation_vjp(X, W, A1, G, n_threads=nt), V1):
        assert np.array_equal(a, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5000, 10, 32), (3000, 8, 16), (999, 30, 20)])
def test_threads_bitwise_identical(dtype, shape):
    X, Y, W, b = make(*shape, dtype=dtype, seed=14)
    assert kernels.blocks(shape[0], shape[1], shape[2])[0] > 1
    ref = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"), n_threads=1)
    A1 = fl.activation(X, W, b, n_threads=1)
    G = np.random.default_rng(0).standard_normal(A1.shape).astype(dtype)
    V1 = fl.activation_vjp(X, W, A1, G, n_threads=1)
    for nt in (2, 3, 7):
        assert_same_bits_as_one_thread(X, Y, W, b, G, nt, ref, A1, V1)
    f1 = fl.fit(X, Y, lr=0.01, epochs=3, batch_size=1000, n_threads=1)
    f2 = fl.fit(X, Y, lr=0.01, epochs=3, batch_size=1000, n_threads=2)
    assert np.array_equal(f1.W, f2.W) and np.array_equal(f1.b, f2.b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [None, 1100])
def test_fit_steps_shared_by_threads_bitwise(dtype, batch):
    # fit's epoch loop hands each step's blocks to whichever threads come (layer_block.h,
    # fj_fit_worker): several blocks per step, threaded steps, a shorter last batch
    # (3000 = 2 x 1100 + 800, fewer blocks), shuffled orders; every thread count and a
    # loop restarted every epoch (the callback) give the serial loop's bits
    X, Y, W, b = make(3000, 10, 32, dtype=dtype, seed=21)
    assert kernels.blocks(1100, 10, 32)[0] > kernels.blocks(800, 10, 32)[0] > 1
    kw = dict(lr=0.02, epochs=4, batch_size=batch, W0=W, b0=b, seed=3)
    ref = fl.fit(X, Y, n_threads=1, **kw)
    runs = [fl.fit(X, Y, n_threads=nt, **kw) for nt in (2, 3)]
    runs.append(fl.fit(X, Y, callback=lambda e, c, W_, b_: False, **kw))
    for r in runs:
        assert np.array_equal(r.W, ref.W) and np.array_equal(r.b, ref.b)
        assert np.array_equal(r.losses, ref.losses)
    assert ref.losses[-1] < ref.losses[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(300, 200, 90), (1000, 150, 120), (257, 300, 70)])
def test_blocked_blas_path_bitwise_for_every_n_threads(dtype, shape):
    X, Y, W, b = make(*shape, dtype=dtype, seed=17)
    A0 = np.maximum(numpy_forward(X, W, b), 0)
    G = np.random.default_rng(3).standard_normal(A0.shape).astype(dtype)
    prev = kernels._set_blas_blocking(min_rows=16, min_work=1 << 12, enabled=True)
    try:
        assert not fl._onepass(shape[2], shape[1], np.dtype(dtype))
        if kernels.blas_library() is None:
            pytest.skip("no BLAS the blocked path can call (np.matmul runs instead)")
        nb = kernels.blas_blocks(shape[0], shape[1], shape[2], np.dtype(dtype).itemsize)
        assert nb > 1
        ref = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"), n_threads=1)
        A1 = fl.activation(X, W, b, n_threads=1)
        V1 = fl.activation_vjp(X, W, A1, G, n_threads=1)
        for nt in (2, 3, None):
            for _ in range(3):
                assert_same_bits_as_one_thread(X, Y, W, b, G, nt, ref, A1, V1)
    finally:
        kernels._set_blas_blocking(*prev)
    # the same values as np.matmul's path, to rounding
    rC, rgW, rgb, rgX = numpy_loss_grad(X, Y, W, b)
    t = tol(dtype, shape[1] * shape[2])
    np.testing.assert_allclose(ref[0], rC, rtol=1e-12 if dtype == np.float64 else 1e-5)
    for a, r in zip(ref[1:], (rgW, rgb, rgX)):
        np.testing.assert_allclose(a, r, **t)
    np.testing.assert_allclose(A1, A0, **tol(dtype, shape[1]))


def test_blocked_blas_path_leaves_blas_threads_alone():
    """The path holds OpenBLAS to one thread only while it runs."""
    import ctypes

    lib = kernels.blas_library()
    if lib is None:
        pytest.skip("no BLAS the blocked path can call")
    blas = ctypes.CDLL(lib)
    get = next((getattr(blas, name) for name in (
        "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
        "scipy_openblas_get_num_threads", "openblas_get_num_threads")
        if hasattr(blas, name)), None)
    before = get()
    X, Y, W, b = make(2000, 150, 120, seed=18)
    assert kernels.blas_blocks(2000, 150, 120, 8) > 1 or fl._onepass(120, 150, X.dtype)
    fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    assert get() == before


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", [0, 1, 2])
def test_simd_versions_bitwise_identical(dtype, level):
    shapes = [(37, 3, 2), (64, 8, 16), (130, 10, 32), (50, 17, 9)]
    try:
        best = kernels._set_block_level(-1)
        refs = []
        for s in shapes:
            X, Y, W, b = make(*s, dtype=dtype, seed=15)
            kernels._set_block_level(0)
            r = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
            kernels._set_block_level(level)
            g = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
            refs.append(best)
            assert g[0] == r[0]
            for a, c in zip(g[1:], r[1:]):
                assert np.array_equal(a, c)
    finally:
        kernels._set_block_level(-1)


# -- special values ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 4, 3), (100, 150, 120)])
def test_nan_and_inf_propagate_like_numpy(shape, blas_path):
    X, Y, W, b = make(*shape, seed=16)
    X[2, 1] = np.nan
    X[5, 0] = np.inf
    Y[7, 1] = np.inf
    C, gW, gb, gX = fl.loss_grad(X, Y, W, b, wrt=("W", "b", "X"))
    rC, rgW, rgb, rgX = numpy_loss_grad(X, Y, W, b)
    np.testing.assert_array_equal(np.isnan(gW), np.isnan(rgW))
    np.testing.assert_array_equal(np.isnan(gb), np.isnan(rgb))
    np.testing.assert_array_equal(np.isnan(gX), np.isnan(rgX))
    assert np.isnan(C) == np.isnan(rC) and np.isinf(C) == np.isinf(rC)
    A = fl.activation(X, W, b)
    np.testing.assert_array_equal(np.isnan(A), np.isnan(np.maximum(numpy_forward(X, W, b), 0)))


# -- bad input -------------------------------------------------------------------------------


def test_bad_shapes_name_the_arguments():
    X, Y, W, b = make(10, 4, 3)
    with pytest.raises(ValueError, match=r"W must have shape \(m, n\).*X.shape=\(10, 4\).*W.shape=\(3, 5\)"):
        fl.loss_grad(X, Y, np.ones((3, 5)), b)
    with pytest.raises(ValueError, match=r"b must have shape \(m,\) = \(3,\).*b.shape=\(2,\)"):
        fl.loss_grad(X, Y, W, np.ones(2))
    with pytest.raises(ValueError, match=r"Y must have shape \(N, m\) = \(10, 3\).*Y.shape=\(10, 2\)"):
        fl.loss_grad(X, np.ones((10, 2)), W, b)
    with pytest.raises(ValueError, match=r"Y must be a 2-D array"):
        fl.loss_grad(X, np.ones(10), W, b)
    with pytest.raises(ValueError, match=r"G must have shape"):
        fl.activation_vjp(X, W, np.ones((10, 3)), np.ones((10, 4)))
    with pytest.raises(ValueError, match="no rows"):
        fl.loss_grad(X[:0], Y[:0], W, b)
    with pytest.raises(ValueError, match="wrt may only contain"):
        fl.loss_grad(X, Y, W, b, wrt=("w",))
    with pytest.raises(ValueError, match="X must be a 2-D"):
        fl.activation(np.ones(4), W, b)


def test_bad_dtypes_name_the_arguments():
    X, Y, W, b = make(10, 4, 3)
    with pytest.raises(TypeError, match="X has dtype complex"):
        fl.loss_grad(X.astype(complex), Y, W, b)
    with pytest.raises(TypeError, match="W has dtype"):
        fl.loss_grad(X, Y, W.astype(object), b)
    with pytest.raises(TypeError, match="b has dtype complex"):
        fl.loss_grad(X, Y, W, b.astype(complex))
    with pytest.raises(TypeError, match="Y"):
        fl.loss_grad(X, np.full(Y.shape, "a"), W, b)
    # integers compute in float64
    C, gW, gb = fl.loss_grad(X.astype(np.int64), Y, W, b)
    assert gW.dtype == np.float64


def test_result_dtypes():
    X, Y, W, b = make(10, 4, 3, dtype=np.float32)
    assert fl.loss_grad(X, Y, W, b)[1].dtype == np.float32
    assert fl.loss_grad(X, Y.astype(np.float64), W, b)[1].dtype == np.float64
    # b never changes the dtype
    assert fl.loss_grad(X, Y, W, b.astype(np.float64))[1].dtype == np.float32


# -- fit ---------------------------------------------------------------------------------------


def numpy_fit(X, Y, W, b, lr, epochs):
    W, b = W.astype(np.float64), b.astype(np.float64)
    losses = []
    for _ in range(epochs):
        C, gW, gb, _ = numpy_loss_grad(X, Y, W, b)
        losses.append(C)
        W = W - lr * gW
        b = b - lr * gb
    return W, b, np.array(losses)


@pytest.mark.parametrize("shape", [(200, 5, 4), (150, 150, 120)])
def test_fit_matches_numpy_loop(shape):
    X, Y, W0, b0 = make(*shape, seed=17)
    res = fl.fit(X, Y, lr=0.05, epochs=20, W0=W0, b0=b0)
    W, b, losses = numpy_fit(X, Y, W0, b0, 0.05, 20)
    np.testing.assert_allclose(res.W, W, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.b, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_recovers_teacher_layer(dtype):
    rng = np.random.default_rng(18)
    X = rng.standard_normal((2000, 6)).astype(dtype)
    Wt = rng.standard_normal((3, 6)) / 3
    Y = np.maximum(X @ Wt.T + 0.5, 0).astype(dtype)
    res = fl.fit(X, Y, lr=0.1, epochs=400, batch_size=100, seed=1)
    assert res.losses[-1] < 1e-2 * res.losses[0]
    assert res.W.dtype == dtype and res.b.dtype == np.float64


def test_fit_minibatch_shuffle_and_callback_bitwise():
    X, Y, W0, b0 = make(300, 6, 4, seed=19)
    seen = []
    r1 = fl.fit(X, Y, lr=0.05, epochs=6, batch_size=32, seed=5)
    r2 = fl.fit(X, Y, lr=0.05, epochs=6, batch_size=32, seed=5,
                callback=lambda e, c, W, b: seen.append((e, c)))
    assert np.array_equal(r1.W, r2.W) and np.array_equal(r1.losses, r2.losses)
    assert [e for e, _ in seen] == list(range(6))
    r3 = fl.fit(X, Y, lr=0.05, epochs=6, callback=lambda e, c, W, b: e == 2)
    assert len(r3.losses) == 3


def test_fit_divergence_raises_and_leaves_inputs_untouched():
    X, Y, W0, b0 = make(100, 5, 3, seed=20)
    X = X * 100
    copies = (X.copy(), Y.copy(), W0.copy())
    with pytest.raises(FloatingPointError, match="diverged") as info:
        fl.fit(X, Y, lr=10.0, epochs=500, W0=W0)
    assert info.value.epoch >= 1 and np.isfinite(info.value.losses).all()
    for a, c in zip((X, Y, W0), copies):
        assert np.array_equal(a, c)
    with pytest.raises(ValueError, match="not finite at the initial"):
        Xn = X.copy()
        Xn[0, 0] = np.nan
        fl.fit(Xn, Y, lr=0.1, epochs=3)
    with pytest.raises(ValueError, match="W0 must have shape"):
        fl.fit(X, Y, lr=0.1, epochs=3, W0=np.ones((2, 5)))
    with pytest.raises(ValueError, match="lr"):
        fl.fit(X, Y, lr=-1, epochs=3)


# -- the command line -------------------------------------------------------------------------


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastjac", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_train_hidden_on_houses(tmp_path):
    out = tmp_path / "params.json"
    r = _cli("train", str(HOUSES), "--target", "price_k", "--hidden", "8", "--standardize",
             "--epochs", "200", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "hidden" in r.stdout
    import json

    params = json.loads(out.read_text())
    assert np.array(params["W"]).shape[0] == 8
    assert len(params["v"]) == 8
    assert params["losses"][-1] < params["losses"][0]


def test_train_hidden_bad_input(tmp_path):
    r = _cli("train", str(HOUSES), "--target", "price_k", "--hidden", "0")
    assert r.returncode == 2 and "hidden" in r.stderr
    r = _cli("train", str(HOUSES), "--target", "nope", "--hidden", "4")
    assert r.returncode == 2 and "nope" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\nx,3\n")
    r = _cli("train", str(bad), "--target", "b", "--hidden", "4")
    assert r.returncode == 2 and "line" in r.stderr


def test_fit_weights_beyond_float32_are_a_divergence():
    # As the neuron: weights finite in double but beyond float32 raise fit's error.
    X = np.ones((4, 2), np.float32)
    Y = np.full((4, 3), 1e20, np.float32)
    with pytest.raises(FloatingPointError, match=r"after 1 epochs .*\|W\| = 2e\+39.*float32") as info:
        fj.layer.fit(X, Y, lr=1e19, epochs=1, W0=np.zeros((3, 2), np.float32),
                     b0=np.ones(3, np.float32))
    assert info.value.epoch == 1 and info.value.losses.shape == (1,)


def test_float32_bias_takes_the_fast_path_with_the_general_paths_bits():
    # A float32 layer's own float32 b is read in double by the kernel, exactly as the
    # general path widens it: same bits, and the one-call fast path answers.
    from fastjac._kernels import layer as _k

    rng = np.random.default_rng(3)
    X = rng.standard_normal((32, 8)).astype(np.float32)
    Y = rng.standard_normal((32, 16)).astype(np.float32)
    W = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    fast = _k.loss_grad_fast(X, Y, W, b, None, 1, fl.ONEPASS_MAX[np.dtype(np.float64)],
                             fl.ONEPASS_MAX[np.dtype(np.float32)], 1 << 30)
    assert fast is not None
    general = fl.loss_grad(X, Y, W, [float(v) for v in b])   # a list: the general path
    assert fast[0] == general[0]
    for f, g in zip(fast[1:], general[1:]):
        assert f.dtype == np.float32 and np.array_equal(f, g)
    C, gW, gb = fl.loss_grad(X, Y, W, b)
    assert C == general[0] and np.array_equal(gW, general[1]) and np.array_equal(gb, general[2])
