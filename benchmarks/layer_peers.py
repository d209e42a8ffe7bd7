"""fastjac.layer against NumPy, PyTorch (eager) and JAX (jit), one framework per process.

Usage::

    python benchmarks/layer_peers.py IMPL [--quick]

with IMPL one of ``fastjac``, ``numpy``, ``torch``, ``jax`` (run each in its own process,
from an environment that has it; PyTorch and JAX are never dependencies of fastjac).
Prints one line per row: ``workload shape dtype median_seconds``. The rows are the goals
of issue 15: ``loss_grad`` (the MSE loss of a ReLU layer and its gradients with respect to
W and b) at four shapes (N, n, m) in float64 and float32, and ``fit`` (300 epochs of
full-batch gradient descent at (1000, 10, 32): fastjac.layer.fit, a NumPy loop, a PyTorch
loop, ``jax.jit`` over ``lax.fori_loop``).
"""

import sys
import time

import numpy as np

SHAPES = [(32, 8, 16), (1000, 10, 32), (100_000, 100, 16), (10_000, 784, 128)]
DTYPES = ["float64", "float32"]
FIT = (1000, 10, 32, 300, 0.05)


def data(N, n, m, dtype):
    rng = np.random.default_rng(N + n + m)
    X = rng.standard_normal((N, n)).astype(dtype)
    W = (rng.standard_normal((m, n)) / np.sqrt(n)).astype(dtype)
    Y = rng.standard_normal((N, m)).astype(dtype)
    b = np.full(m, 0.1, dtype=dtype)
    return X, Y, W, b


def median_time(fn, budget=1.0, most=2000):
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    k = int(min(most, max(5, budget / one)))
    ts = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def make(impl, X, Y, W, b):
    """A zero-argument callable computing (C, gW, gb) with ``impl``."""
    if impl == "fastjac":
        import fastjac.layer as fl

        bd = b.astype(np.float64)
        out = (np.empty_like(W), np.empty_like(b))
        return lambda: fl.loss_grad(X, Y, W, bd, out=out)
    if impl == "numpy":
        N = X.shape[0]

        def step():
            Z = X @ W.T + b
            R = np.maximum(Z, 0) - Y
            c = 2 / N * R * (Z > 0)
            return (R * R).sum() / N, c.T @ X, c.sum(axis=0)
        return step
    if impl == "torch":
        import torch

        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        Wt = torch.from_numpy(W.copy()).requires_grad_(True)
        bt = torch.from_numpy(b.copy()).requires_grad_(True)

        def step():
            C = ((Yt - torch.relu(Xt @ Wt.T + bt)) ** 2).sum() / Xt.shape[0]
            gW, gb = torch.autograd.grad(C, (Wt, bt))
            return C.item(), gW, gb
        return step
    if impl == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def loss(W_, b_, X_, Y_):
            return jnp.sum((Y_ - jax.nn.relu(X_ @ W_.T + b_)) ** 2) / X_.shape[0]

        f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        Xj, Yj, Wj, bj = (jnp.asarray(a) for a in (X, Y, W, b))

        def step():
            C, (gW, gb) = f(Wj, bj, Xj, Yj)
            gW.block_until_ready()
            return C, gW, gb
        return step
    raise SystemExit(f"unknown implementation {impl!r}")


def make_fit(impl, X, Y, W0, b0, epochs, lr):
    N = X.shape[0]
    if impl == "fastjac":
        import fastjac.layer as fl

        bd = b0.astype(np.float64)
        return lambda: fl.fit(X, Y, lr=lr, epochs=epochs, W0=W0, b0=bd)
    if impl == "numpy":
        def run():
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
        return run
    if impl == "torch":
        import torch

        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

        def run():
            W = torch.from_numpy(W0.copy()).requires_grad_(True)
            b = torch.from_numpy(b0.copy()).requires_grad_(True)
            losses = torch.empty(epochs, dtype=torch.float64)
            for e in range(epochs):
                C = ((Yt - torch.relu(Xt @ W.T + b)) ** 2).sum() / N
                gW, gb = torch.autograd.grad(C, (W, b))
                losses[e] = C.detach()
                with torch.no_grad():
                    W -= lr * gW
                    b -= lr * gb
            return W, b, losses
        return run
    if impl == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def loss(W_, b_):
            return jnp.sum((Yj - jax.nn.relu(Xj @ W_.T + b_)) ** 2) / N

        vg = jax.value_and_grad(loss, argnums=(0, 1))
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

        @jax.jit
        def train(W, b):
            def body(e, state):
                W, b, losses = state
                C, (gW, gb) = vg(W, b)
                return W - lr * gW, b - lr * gb, losses.at[e].set(C)
            return jax.lax.fori_loop(0, epochs, body,
                                     (W, b, jnp.zeros(epochs, dtype=jnp.float64)))
        W0j, b0j = jnp.asarray(W0), jnp.asarray(b0)

        def run():
            out = train(W0j, b0j)
            out[0].block_until_ready()
            return out
        return run
    raise SystemExit(f"unknown implementation {impl!r}")


def main(argv):
    impl = argv[0]
    quick = "--quick" in argv
    budget = 0.3 if quick else 1.5
    for dtype in DTYPES:
        for shape in SHAPES:
            X, Y, W, b = data(*shape, dtype)
            t = median_time(make(impl, X, Y, W, b), budget)
            print(f"loss_grad {shape[0]}x{shape[1]}x{shape[2]} {dtype} {t:.6e}", flush=True)
    N, n, m, epochs, lr = FIT
    for dtype in DTYPES:
        X, Y, W, b = data(N, n, m, dtype)
        t = median_time(make_fit(impl, X, Y, W, b, epochs, lr), budget * 2, most=40)
        print(f"fit300 {N}x{n}x{m} {dtype} {t:.6e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
