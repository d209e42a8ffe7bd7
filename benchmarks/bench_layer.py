"""Benchmarks of fastjac.layer against the NumPy code a user would write.

Run: ``python -m pytest benchmarks/bench_layer.py --benchmark-enable -q``

Each ``group`` holds the fastjac case and its NumPy baseline (same process, same inputs).
Shapes are (N, n, m): N samples, n inputs, m neurons. ``loss_grad`` is the layer's MSE
loss and its gradients with respect to W and b (a training step's work); ``fit`` is 300
epochs of full-batch gradient descent against the same loop written in NumPy. PyTorch and
JAX rows belong in ``fastjac bench`` (each framework in its own process). Every result is
checked against the baseline after timing.
"""

import functools

import numpy as np
import pytest

import fastjac.layer as fl

SHAPES = [(32, 8, 16), (1000, 10, 32), (100_000, 100, 16), (10_000, 784, 128)]
DTYPES = ["float64", "float32"]


@functools.lru_cache(maxsize=1)
def batch(N, n, m, dtype):
    rng = np.random.default_rng(N + n + m)
    X = rng.standard_normal((N, n)).astype(dtype)
    W = (rng.standard_normal((m, n)) / np.sqrt(n)).astype(dtype)
    Y = rng.standard_normal((N, m)).astype(dtype)
    b = np.full(m, 0.1)
    return X, Y, W, b


def numpy_loss_grad(X, Y, W, b):
    """The layer's loss and gradients as a user would write them in NumPy."""
    N = X.shape[0]
    Z = X @ W.T + b
    R = np.maximum(Z, 0) - Y
    c = 2 / N * R * (Z > 0)
    return (R * R).sum() / N, c.T @ X, c.sum(axis=0)


CASES = [
    pytest.param(shape, dtype, impl, id=f"{shape[0]}x{shape[1]}x{shape[2]}-{dtype}-{impl}")
    for shape in SHAPES
    for dtype in DTYPES
    for impl in ("fastjac", "numpy")
]


@pytest.mark.parametrize("shape,dtype,impl", CASES)
def test_loss_grad(benchmark, shape, dtype, impl):
    X, Y, W, b = batch(*shape, dtype)
    bd = b.astype(dtype)
    benchmark.group = f"layer.loss_grad {shape[0]}x{shape[1]}x{shape[2]} {dtype}"
    if impl == "numpy":
        result = benchmark(numpy_loss_grad, X, Y, W, bd)
    else:
        out = (np.empty_like(W), np.empty(W.shape[0], dtype))  # preallocated, as in a loop
        result = benchmark(fl.loss_grad, X, Y, W, b, out=out)
    C0, gW0, gb0 = numpy_loss_grad(X, Y, W, bd)
    rtol = 1e-9 if dtype == "float64" else 2e-3
    assert result[0] == pytest.approx(C0, rel=rtol)
    np.testing.assert_allclose(result[1], gW0, rtol=rtol, atol=rtol * np.abs(gW0).max())
    np.testing.assert_allclose(result[2], gb0, rtol=rtol, atol=rtol * np.abs(gb0).max())


def numpy_fit(X, Y, lr, epochs, W0, b0):
    """Full-batch gradient descent on the layer as a user would write it in NumPy."""
    N = X.shape[0]
    W, b = W0.copy(), b0.copy()
    losses = np.empty(epochs)
    for e in range(epochs):
        Z = X @ W.T + b
        R = np.maximum(Z, 0) - Y
        c = 2 / N * R * (Z > 0)
        losses[e] = (R * R).sum() / N
        W -= lr * (c.T @ X)
        b -= lr * c.sum(axis=0)
    return W, b, losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fastjac", "numpy"])
def test_fit(benchmark, dtype, impl):
    N, n, m = 1000, 10, 32
    X, Y, W0, b0 = batch(N, n, m, dtype)
    benchmark.group = f"layer.fit 300 epochs {N}x{n}x{m} {dtype}"
    if impl == "numpy":
        W, b, losses = benchmark(numpy_fit, X, Y, 0.05, 300, W0.astype(np.float64), b0)
    else:
        W, b, losses = benchmark(fl.fit, X, Y, lr=0.05, epochs=300, W0=W0, b0=b0)
    W1, b1, l1 = numpy_fit(X, Y, 0.05, 300, W0.astype(np.float64), b0)
    rtol = 1e-8 if dtype == "float64" else 1e-3
    np.testing.assert_allclose(losses, l1, rtol=rtol)
