"""
Training a ReLU neuron: the loss curve
======================================

:func:`fastjac.neuron.fit` trains one ReLU neuron, ``max(0, w·x + b)``, by gradient
descent on its mean squared error (paper §6), with the whole epoch loop in compiled code.
It returns the loss of every epoch, so the loss curve costs nothing extra.

The data is a planted neuron plus a little noise, so the loss should fall to the noise
level (0.05² = 0.0025). Full-batch descent and mini-batch SGD are drawn side by side.

Run:  python examples/loss_curve.py
"""

import os

import numpy as np

import fastjac as fj

# Small sizes when the documentation is built in CI.
QUICK = os.environ.get("CI", "").lower() in ("1", "true", "yes")
N, n = (2000, 8) if QUICK else (20000, 16)
EPOCHS = 100 if QUICK else 300

rng = np.random.default_rng(0)
X = rng.standard_normal((N, n))
w_star = rng.normal(0.0, 1.0 / np.sqrt(n), n)
y = np.maximum(X @ w_star + 0.3, 0.0) + 0.05 * rng.standard_normal(N)

full = fj.neuron.fit(X, y, lr=0.2, epochs=EPOCHS)
sgd = fj.neuron.fit(X, y, lr=0.05, epochs=EPOCHS, batch_size=256, seed=1)

for name, res in (("full batch", full), ("mini-batch (256 rows)", sgd)):
    print(f"{name:22s} loss {res.losses[0]:.4f} -> {res.losses[-1]:.5f}   "
          f"largest |w - w*| = {np.max(np.abs(res.w - w_star)):.3f}")

# %%
# The loss curves
# ---------------
# ``FitResult.losses[e]`` is the loss over all N rows during epoch ``e`` (for full
# batches, exactly the loss before that epoch's update).

try:
    import matplotlib.pyplot as plt
except ImportError:  # the script still trains and prints without matplotlib
    plt = None

if plt is not None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(full.losses, label="full batch, lr = 0.2")
    ax.semilogy(sgd.losses, label="mini-batches of 256, lr = 0.05")
    ax.axhline(0.05 ** 2, color="gray", linestyle=":", label="noise level")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"fastjac.neuron.fit, N = {N}, n = {n}")
    ax.legend()
    fig.tight_layout()
    if plt.get_backend().lower() != "agg":
        plt.show()
