"""
Speed-up over NumPy
===================

fastjac's kernels against the NumPy code a user would write for the same result, on the
same inputs, over a range of sizes:

* the fused VJP of ``y = exp(w) ⊗ sin(x)`` (paper §4.2): ``fj.elementwise(fj.mul, f=fj.exp,
  g=fj.sin).vjp(w, x, gy)`` against ``e = np.exp(w); gy * e * np.sin(x), gy * e * np.cos(x)``;
* the ReLU neuron's loss and gradient (§6) with n = 10 features:
  ``fj.neuron.loss_grad(X, y, w, b)`` against the five-line NumPy expression.

Each time is the best of a few repeats, measured when this page was built, so the numbers
depend on that machine and its load: read the ratios. ``fastjac bench`` is the careful,
complete version of this measurement (see the Performance page).

Run:  python examples/speedup.py
"""

import os
import timeit

import numpy as np

import fastjac as fj

QUICK = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SIZES = [10, 100, 1_000, 10_000, 100_000] + ([] if QUICK else [1_000_000])


def best_time(fn, budget=0.05 if QUICK else 0.2):
    """Seconds per call: the best of 3 repeats of a loop lasting about budget / 3."""
    number = max(1, int(budget / 3 / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=3)) / number


op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)


def numpy_vjp(w, x, gy):
    e = np.exp(w)
    return gy * e * np.sin(x), gy * e * np.cos(x)


def numpy_loss_grad(X, y, w, b):
    z = X @ w + b
    r = np.maximum(z, 0) - y
    c = 2 / len(y) * r * (z > 0)
    return np.mean(r * r), c @ X, c.sum()


rng = np.random.default_rng(0)
rows = []
print(f"{'workload':24s} {'size':>9s} {'NumPy':>10s} {'fastjac':>10s} {'speed-up':>9s}")
for size in SIZES:
    w, x, gy = rng.standard_normal((3, size))
    assert np.allclose(op.vjp(w, x, gy), numpy_vjp(w, x, gy))
    t_np, t_fj = best_time(lambda: numpy_vjp(w, x, gy)), best_time(lambda: op.vjp(w, x, gy))
    rows.append(("exp(w)⊗sin(x) VJP", size, t_np, t_fj))

    N = max(size // 10, 1)
    X = rng.standard_normal((N, 10))
    yy = np.maximum(X @ np.linspace(-1, 1, 10) + 0.1, 0)
    wv = np.full(10, 0.1)
    assert np.allclose(fj.neuron.loss_grad(X, yy, wv, 0.1)[1], numpy_loss_grad(X, yy, wv, 0.1)[1])
    t_np = best_time(lambda: numpy_loss_grad(X, yy, wv, 0.1))
    t_fj = best_time(lambda: fj.neuron.loss_grad(X, yy, wv, 0.1))
    rows.append(("neuron.loss_grad (N, 10)", size, t_np, t_fj))

for name, size, t_np, t_fj in sorted(rows, key=lambda r: r[0]):
    print(f"{name:24s} {size:9,d} {t_np * 1e6:8.1f}µs {t_fj * 1e6:8.1f}µs {t_np / t_fj:8.1f}x")

# %%
# The speed-up against size
# -------------------------
# Above the dotted line fastjac is faster. For the neuron, "size" counts the elements of
# ``X`` (N rows of 10).

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in sorted({r[0] for r in rows}):
        pts = [(r[1], r[2] / r[3]) for r in rows if r[0] == name]
        ax.semilogx(*zip(*pts), marker="o", label=name)
    ax.axhline(1.0, color="gray", linestyle=":")
    ax.set_xlabel("elements")
    ax.set_ylabel("speed-up (NumPy time / fastjac time)")
    ax.set_title("fastjac against NumPy, float64")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    if plt.get_backend().lower() != "agg":
        plt.show()
