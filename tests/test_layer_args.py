"""fastjac.layer's messages, options and less common paths, each pinned exactly.

Complements test_layer.py (values on every path against NumPy). Written against the
survivors of the sampled mutation run of ``layer`` (issue 18).

Equivalent mutants of fastjac.layer, left alive on purpose:

- ``_finish`` handing ``buf.reshape(None)`` (an N-d buffer) instead of a flat view to
  ``_validate.finish``, which reshapes the buffer to ``out.shape`` itself;
- the np.matmul fallbacks after ``_BLAS[dtype](...) is None`` reached with other
  arguments (``activation`` handing the BLAS path ``None`` for its buffer, so that the
  fallback computes the same activations; ``activation_vjp``'s fallback copy of ``G``
  without ``dtype=``: ``G`` already has the computation dtype there);
- ``fit``'s shuffled chunk of epochs at least 2 instead of 1 when N exceeds the order
  budget: the permutations are drawn in the same sequence, an extra one is only unused;
- ``_validate_loss_grad`` naming ``Y`` "y" in its conversion: it runs after
  ``loss_grad`` accepted the same ``Y``, so that name is never shown.
"""

import numpy as np
import pytest

import fastjac as fj
import fastjac.layer as fl
from fastjac._kernels import pool

RNG = np.random.default_rng(11)


def make(N, n, m, dtype=np.float64):
    X = RNG.standard_normal((N, n)).astype(dtype)
    W = (RNG.standard_normal((m, n)) / np.sqrt(n)).astype(dtype)
    b = RNG.standard_normal(m) * 0.5
    Y = RNG.standard_normal((N, m)).astype(dtype)
    return X, Y, W, b


def wide(dtype):
    """(n, m) with m n above the one-pass limit: the BLAS path."""
    n = 64
    m = fl.ONEPASS_MAX[np.dtype(dtype)] // n + 3
    return n, m


def test_messages_name_the_argument():
    X, Y, W, b = make(6, 3, 2)
    with pytest.raises(ValueError, match=r"^X must be a 2-D array \(N, n\), got shape \(3,\)$"):
        fl.activation(np.ones(3), W, b)
    with pytest.raises(ValueError, match=r"^b must have shape \(m,\) = \(2,\) to match "
                                         r"W\.shape=\(2, 3\), got b\.shape=\(3,\)$"):
        fl.activation(X, W, np.zeros(3))
    with pytest.raises(ValueError, match=r"^out must be an ndarray \(gW_out\) or a tuple "
                                         r"\(gW_out, gb_out\) or \(gW_out, gb_out, gX_out\)$"):
        fl.loss_grad(X, Y, W, b, out=[None, None])
    with pytest.raises(ValueError, match=r"^gX_out has shape \(6, 2\), expected \(6, 3\)$"):
        fl.loss_grad(X, Y, W, b, wrt=("W", "X"), out=(None, None, np.empty((6, 2))))
    with pytest.raises(ValueError, match=r"^batch_size must be"):
        fl.fit(X, Y, 0.1, 2, batch_size=0)
    with pytest.raises(TypeError, match=r"^X has dtype complex128; "):
        fl.fit(X + 0j, Y, 0.1, 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_missing_data_arrays_are_refused(dtype):
    # Y, A or G given as None once reached the kernels as a NULL buffer: a segfault
    X, Y, W, b = make(6, 3, 2, dtype)
    A = fl.activation(X, W, b)
    msg = r" must be an array of shape \(N, m\) = \(6, 2\), got None$"
    for call in (lambda: fl.loss(X, None, W, b), lambda: fl.loss_grad(X, None, W, b),
                 lambda: fl.loss_grad(X, None, W, b, wrt=("W", "b", "X"))):
        with pytest.raises(TypeError, match="^Y" + msg):
            call()
    with pytest.raises(TypeError, match="^A" + msg):
        fl.activation_vjp(X, W, None, np.ones_like(A))
    with pytest.raises(TypeError, match="^G" + msg):
        fl.activation_vjp(X, W, A, None)


@pytest.mark.parametrize("shape", [(6, 3, 2), (6, 3, 1), "wide"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bias_none_is_refused_as_neuron_does(dtype, shape):
    # DESIGN.md gives b the shape (m,) and documents no None; fj.neuron raises TypeError
    # for b=None, and the layer once read None as a zero bias (undocumented). Every path:
    # one-pass, m = 1 (the neuron's kernel), BLAS.
    if shape == "wide":
        n, m = wide(dtype)
        shape = (5, n, m)
    X, Y, W, b = make(*shape, dtype)
    msg = rf"^b must be an array of shape \(m,\) = \({shape[2]},\), got None$"
    calls = (lambda: fl.activation(X, W, None), lambda: fl.activation_jacobian(X, W, None),
             lambda: fl.loss(X, Y, W, None), lambda: fl.loss_grad(X, Y, W, None),
             lambda: fl.loss_grad(X, Y, W, None, wrt=("W", "b", "X")),
             lambda: fl.loss_grad(X, Y, W, None, out=(np.empty(W.shape, dtype), None)))
    for call in calls:
        with pytest.raises(TypeError, match=msg):
            call()
    with pytest.raises(TypeError, match=r"^b must be a real number, got NoneType$"):
        fj.neuron.loss(X, Y[:, 0], W[0], None)
    # a zero bias is spelled np.zeros(m); activation_vjp takes no b at all
    A = fl.activation(X, W, np.zeros(shape[2]))
    assert A.shape == (shape[0], shape[2])
    fl.activation_vjp(X, W, A, np.ones_like(A))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jacobian_mask_on_the_blas_path_includes_the_bias(dtype):
    # wide enough for the BLAS path, biases large enough to flip many signs of X W^T
    n, m = wide(dtype)
    X, _, W, _ = make(5, n, m, dtype)
    b = np.where(np.arange(m) % 2, 3.0, -3.0)
    JW, Jb, JX = fl.activation_jacobian(X, W, b)
    z = X.astype(np.float64) @ W.astype(np.float64).T + b
    mask = (z > 0).astype(dtype)
    # no entry of z is near 0 here (|b| = 3 dominates), so the mask is exact
    assert np.abs(z).min() > 1e-3
    for i in range(5):
        np.testing.assert_array_equal(np.diag(Jb.block(i)), mask[i])


def test_n_threads_one_runs_serially():
    # n_threads is an upper bound: 1 never starts a parallel loop, whatever the cap
    n, m = wide(np.float64)
    X, Y, W, b = make(256, n, m)  # N n m far above the serial threshold
    old = pool.thread_info()["max_threads"]
    try:
        cap = pool.set_max_threads(2)
        calls = lambda: pool.thread_info()["parallel_calls"]  # noqa: E731
        before = calls()
        fl.activation_jacobian(X, W, b, n_threads=1)
        fl.loss_grad(X, Y, W, b, wrt=("W", "X"), n_threads=1)
        assert calls() == before
        if cap >= 2 and pool.thread_info()["threads_enabled"]:  # not in the serial build
            # the same calls with every thread of the cap do run in parallel
            fl.activation_jacobian(X, W, b)
            mid = calls()
            assert mid > before
            fl.loss_grad(X, Y, W, b, wrt=("W", "X"))
            assert calls() > mid
    finally:
        pool.set_max_threads(old)


def test_plain_loss_takes_the_fast_path(monkeypatch):
    X, Y, W, b = make(20, 4, 3)
    ref = fl.loss(X.tolist(), Y.tolist(), W.tolist(), list(b))

    def refuse(*args, **kwargs):
        raise AssertionError("plain input took the general path")

    monkeypatch.setattr(fl, "_loss_grad", refuse)
    assert fl.loss(X, Y, W, b) == ref


def test_validation_mode_checks_the_gradients(monkeypatch):
    X, Y, W, b = make(30, 4, 3)
    with fj.validating():
        C, gW, gb = fl.loss_grad(X, Y, W, b)
        C2, gW2, gb2, gX2 = fl.loss_grad(X.tolist(), Y, W, b, wrt=("W", "b", "X"))
    np.testing.assert_array_equal(gb, gb2)
    # a wrong gb (1% off) is caught under validation, and passes unnoticed without it
    real = fl._k.loss_grad_fast

    def off(*args):
        res = real(*args)
        if isinstance(res, tuple):
            res = (res[0], res[1], res[2] * 1.01)
        return res

    monkeypatch.setattr(fl._k, "loss_grad_fast", off)
    fl.loss_grad(X, Y, W, b)
    with fj.validating():
        with pytest.raises(AssertionError):
            fl.loss_grad(X, Y, W, b)


def test_fit_converts_y_to_the_data_dtype():
    X, Y, W, b = make(40, 4, 3, np.float32)
    Yi = (Y > 0).astype(np.int8)
    r1 = fl.fit(X, Yi, 0.05, 3, W0=W, b0=b)
    r2 = fl.fit(X, Yi.astype(np.float32), 0.05, 3, W0=W, b0=b)
    assert r1.W.dtype == np.float32
    np.testing.assert_array_equal(r1.W, r2.W)
    np.testing.assert_array_equal(r1.losses, r2.losses)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_blas_sums_the_bias_gradient_in_float64(dtype):
    # BLAS-path training (m n above the one-pass limit) with exactly representable data:
    # every row active with z = 1, residual 2^24 in row 0 and 1 in the other N - 1 rows,
    # so (2/N) c is exact in either dtype and ∂C/∂b = (2/N)(2^24 + N - 1) exactly. A
    # float32 sum of the column (for float32 data) would lose every 1 after the 2^24.
    n, m = wide(dtype)
    N = 1024
    X = np.zeros((N, n), dtype)
    X[:, 0] = 1
    W0 = np.zeros((m, n), dtype)
    W0[:, 0] = 1
    Y = np.zeros((N, m), dtype)
    Y[0] = 1 - 2.0 ** 24
    lr = 2.0 ** -20
    res = fl.fit(X, Y, lr, 1, W0=W0, b0=np.zeros(m), shuffle=False)
    expected = -lr * (2.0 / N) * (2.0 ** 24 + N - 1)  # exact in float64
    np.testing.assert_array_equal(res.b, np.full(m, expected))


def test_fit_shuffles_as_documented():
    # minibatches in the order rng.permutation(N) per epoch, rng = default_rng(seed);
    # a NumPy loop in float64 with the same orders
    N, B, lr, epochs = 50, 16, 0.05, 3
    X, Y, W0, b0 = make(N, 4, 3)
    res = fl.fit(X, Y, lr, epochs, batch_size=B, W0=W0, b0=b0, seed=7)
    rng = np.random.default_rng(7)
    W, b = W0.copy(), b0.copy()
    for _ in range(epochs):
        order = rng.permutation(N)
        for s in range(0, N, B):
            r = order[s:s + B]
            Z = X[r] @ W.T + b
            c = 2 / len(r) * (np.maximum(Z, 0) - Y[r]) * (Z > 0)
            W, b = W - lr * (c.T @ X[r]), b - lr * c.sum(axis=0)
    np.testing.assert_allclose(res.W, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.b, b, rtol=1e-10, atol=1e-12)
    unshuffled = fl.fit(X, Y, lr, epochs, batch_size=B, W0=W0, b0=b0, seed=7, shuffle=False)
    assert not np.allclose(unshuffled.W, W, rtol=1e-6)
