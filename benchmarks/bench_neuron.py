"""Benchmarks of fastjac.neuron against the NumPy code a user would write.

Run: ``python -m pytest benchmarks/bench_neuron.py --benchmark-enable -q``

Each ``group`` holds the fastjac cases and their NumPy baseline, so the table compares
like with like. Inputs are built outside the timed call (one case's arrays are kept at a
time: the largest X is 800 MB); every result is checked against the baseline after timing.
"""

import functools

import numpy as np
import pytest

import fastjac.neuron as fn

SHAPES = [(32, 8), (1000, 10), (100_000, 100), (1_000_000, 100)]
DTYPES = ["float64", "float32"]


@functools.lru_cache(maxsize=1)
def batch(N, n, dtype):
    rng = np.random.default_rng(N + n)
    X = rng.standard_normal((N, n), dtype=np.float64).astype(dtype)
    w = (rng.standard_normal(n) / np.sqrt(n)).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    return X, y, w, 0.1


def numpy_loss_grad(X, y, w, b):
    N = X.shape[0]
    z = X @ w + b
    r = np.maximum(z, 0) - y
    c = 2 / N * r * (z > 0)
    gw = c @ X
    gb = c.sum()
    C = (r * r).mean()
    return C, gw, gb


CASES = [
    pytest.param(shape, dtype, impl, id=f"{shape[0]}x{shape[1]}-{dtype}-{impl}")
    for shape in SHAPES
    for dtype in DTYPES
    for impl in ("fastjac-1thread", "fastjac-2threads", "numpy")
]


@pytest.mark.parametrize("shape,dtype,impl", CASES)
def test_loss_grad(benchmark, shape, dtype, impl):
    X, y, w, b = batch(*shape, dtype)
    benchmark.group = f"loss_grad {shape[0]}x{shape[1]} {dtype}"
    if impl == "numpy":
        result = benchmark(numpy_loss_grad, X, y, w, b)
    else:
        gw = np.empty_like(w)  # a training loop's preallocated output
        nt = 1 if impl == "fastjac-1thread" else 2
        result = benchmark(fn.loss_grad, X, y, w, b, out=gw, n_threads=nt)
    C0, gw0, gb0 = numpy_loss_grad(X, y, w, b)
    rtol = 1e-9 if dtype == "float64" else 1e-3
    assert result[0] == pytest.approx(C0, rel=rtol)
    np.testing.assert_allclose(result[1], gw0, rtol=rtol, atol=rtol * np.abs(gw0).max())
    assert result[2] == pytest.approx(gb0, rel=rtol, abs=rtol * abs(gb0) + 1e-6)


def numpy_fit(X, y, lr, epochs, w0, b0):
    """Full-batch gradient descent as a user would write it in NumPy."""
    N = X.shape[0]
    w, b = w0.copy(), b0
    losses = np.empty(epochs)
    for e in range(epochs):
        z = X @ w + b
        r = np.maximum(z, 0) - y
        c = 2 / N * r * (z > 0)
        losses[e] = (r * r).mean()
        w -= lr * (c @ X)
        b -= lr * c.sum()
    return w, b, losses


@pytest.mark.parametrize("impl", ["fastjac", "numpy"])
def test_fit(benchmark, impl):
    X, y, w0, b0 = batch(1000, 10, "float64")
    benchmark.group = "fit 300 epochs 1000x10 float64 full batch"
    if impl == "numpy":
        w, b, losses = benchmark(numpy_fit, X, y, 0.05, 300, w0, b0)
    else:
        w, b, losses = benchmark(fn.fit, X, y, lr=0.05, epochs=300, w0=w0, b0=b0)
    w_ref, b_ref, losses_ref = numpy_fit(X, y, 0.05, 300, w0, b0)
    np.testing.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-12)
    assert b == pytest.approx(b_ref, rel=1e-9)
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-9)


def numpy_fit_minibatch(X, y, lr, epochs, batch_size, w0, b0, seed):
    rng = np.random.default_rng(seed)
    N = X.shape[0]
    w, b = w0.copy(), b0
    for _ in range(epochs):
        order = rng.permutation(N)
        for s in range(0, N, batch_size):
            rows = order[s:s + batch_size]
            Xb, yb = X[rows], y[rows]
            z = Xb @ w + b
            r = np.maximum(z, 0) - yb
            c = 2 / len(rows) * r * (z > 0)
            w -= lr * (c @ Xb)
            b -= lr * c.sum()
    return w, b


@pytest.mark.parametrize("impl", ["fastjac", "numpy"])
def test_fit_minibatch(benchmark, impl):
    X, y, w0, b0 = batch(1000, 10, "float64")
    benchmark.group = "fit 30 epochs 1000x10 float64 batch 32 shuffled"
    if impl == "numpy":
        w, b = benchmark(numpy_fit_minibatch, X, y, 0.01, 30, 32, w0, b0, 0)
    else:
        w, b, _ = benchmark(fn.fit, X, y, lr=0.01, epochs=30, batch_size=32, w0=w0, b0=b0,
                            seed=0)
    w_ref, b_ref = numpy_fit_minibatch(X, y, 0.01, 30, 32, w0, b0, 0)
    np.testing.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-12)
    assert b == pytest.approx(b_ref, rel=1e-9)
