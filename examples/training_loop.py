"""
A training loop that allocates nothing per step
===============================================

Your own training loop around fastjac.neuron.loss_grad, allocating nothing per step.

fastjac.neuron.fit runs the whole loop in compiled code. When you want to own the loop
(your schedule, your logging, your stopping rule) call the fused kernel yourself:
``loss_grad(X, y, w, b, out=gw)`` reads each row of the batch once and returns the loss
C and ∂C/∂b as floats and writes ∂C/∂w (paper §6.1, §6.2) into your buffer ``gw``.

Everything an epoch needs is allocated once, before the loop: the shuffled copy of the
data (filled in place with ``np.take(..., out=)``), the permutation (shuffled in place),
the gradient buffer. Batches are row slices of a C-contiguous array, so they are views,
and the update ``w -= lr * gw`` is done with ``out=`` so it makes no temporary. The script
measures that with tracemalloc and prints it (the kernel itself uses a small O(n) scratch
space per call, independent of the batch size).

Run:  python examples/training_loop.py
"""

import time
import tracemalloc

import numpy as np

import fastjac as fj
from fastjac import neuron


def make_data(N=4096, n=32, seed=0):
    """A planted ReLU neuron plus noise: y = max(0, X w* + b*) + 0.05 ε."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n))
    w_star = rng.normal(0.0, 1.0 / np.sqrt(n), n)
    b_star = 0.3
    y = np.maximum(X @ w_star + b_star, 0.0) + 0.05 * rng.standard_normal(N)
    return X, y, w_star, b_star


def train(X, y, lr=0.2, epochs=30, batch_size=256, seed=0, log=print):
    """Minibatch SGD on the ReLU neuron's MSE with preallocated buffers.

    Returns ``(w, b, epoch_losses, peak_bytes)``: the last is the largest growth of
    traced memory seen inside an epoch after the first.
    """
    N, n = X.shape
    rng = np.random.default_rng(seed)

    # --- allocated once -----------------------------------------------------------------
    w = rng.normal(0.0, 1.0 / np.sqrt(n), n)   # parameters (float64, updated in place)
    b = 0.1
    gw = np.empty(n)                            # ∂C/∂w of the current batch
    perm = np.arange(N)                         # shuffled in place every epoch
    Xs = np.empty_like(X)                       # the epoch's shuffled data
    ys = np.empty_like(y)
    epoch_losses = []
    starts = range(0, N, batch_size)
    peak = 0

    tracemalloc.start()
    try:
        for epoch in range(epochs):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            rng.shuffle(perm)
            # mode="clip": with the default mode="raise" NumPy fills a hidden temporary
            # and copies it into out (the indices are a permutation, so never clipped)
            np.take(X, perm, axis=0, out=Xs, mode="clip")
            np.take(y, perm, out=ys, mode="clip")
            total = 0.0
            for s in starts:
                Xb = Xs[s:s + batch_size]         # a view: rows are contiguous
                yb = ys[s:s + batch_size]
                C, _, gb = neuron.loss_grad(Xb, yb, w, b, out=gw)   # ONE pass over Xb
                np.multiply(gw, lr, out=gw)       # w -= lr * gw, without a temporary
                np.subtract(w, gw, out=w)
                b -= lr * gb
                total += C * Xb.shape[0]
            epoch_losses.append(total / N)
            if epoch > 0:  # the first epoch warms caches (imports, dispatch tables)
                peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
            if log is not None and (epoch % 10 == 0 or epoch == epochs - 1):
                log(f"  epoch {epoch:3d}   mean batch loss {epoch_losses[-1]:.5f}")
    finally:
        tracemalloc.stop()
    return w, b, epoch_losses, peak


def main():
    X, y, w_star, b_star = make_data()
    N, n = X.shape
    batch_size = 256
    print(f"fastjac {fj.__version__}: minibatch SGD on one ReLU neuron, N={N}, n={n}, "
          f"batch {batch_size}, with fastjac.neuron.loss_grad(..., out=gw)")
    t0 = time.perf_counter()
    w, b, losses, peak = train(X, y, batch_size=batch_size)
    elapsed = time.perf_counter() - t0
    final = neuron.loss(X, y, w, b)
    steps = len(losses) * -(-N // batch_size)
    print(f"final loss on all {N} rows: {final:.5f}  (noise floor ~ {0.05 ** 2:.4f})")
    print(f"largest |w - w*| = {np.max(np.abs(w - w_star)):.4f},  b = {b:.4f} (b* = {b_star})")
    print(f"{steps} steps in {elapsed * 1e3:.0f} ms (tracemalloc on)")
    batch_bytes = batch_size * n * X.itemsize
    print(f"peak memory allocated inside an epoch, beyond the buffers made before the "
          f"loop: {peak} bytes")
    print(f"  (one batch is {batch_bytes} bytes; what remains is the kernel's O(n) scratch "
          "space, freed on return, and Python floats)")
    if peak >= batch_bytes:
        raise SystemExit("FAILED: the training loop allocated a batch-sized array")
    print("OK: no array is allocated per step")
    plot_losses(losses, batch_size)


def plot_losses(losses, batch_size):
    """The mean batch loss of each epoch (needs matplotlib)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(losses, marker=".")
    ax.axhline(0.05 ** 2, color="gray", linestyle=":", label="noise level")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean batch loss")
    ax.set_title(f"minibatch SGD with loss_grad(..., out=gw), batches of {batch_size}")
    ax.legend()
    fig.tight_layout()
    if plt.get_backend().lower() != "agg":
        plt.show()

if __name__ == "__main__":
    main()
