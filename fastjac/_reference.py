"""The ReLU neuron written the obvious NumPy way: the reference fastjac is timed against.

One copy for ``fastjac demo`` (the speed comparison) and ``fastjac bench`` (the NumPy
column). The formulas are the paper's (§5, §6)::

    z = X w + b,  r = max(0, z) - y,  C = mean(r²),
    c = (2/N) r (z > 0),  ∂C/∂w = c X,  ∂C/∂b = Σ c
"""

import numpy as np

__all__ = ["loss_grad", "fit"]


def loss_grad(X, y, w, b):
    """``(C, ∂C/∂w, ∂C/∂b)`` of the MSE loss of ``max(0, X w + b)`` against ``y``, in the
    dtype of the inputs."""
    z = X @ w + b
    r = np.maximum(z, 0) - y
    c = 2 / X.shape[0] * r * (z > 0)
    return (r * r).mean(), c @ X, c.sum()


def fit(X, y, lr, epochs, w0, b0):
    """Full-batch gradient descent, the same algorithm as
    ``fastjac.neuron.fit(..., batch_size=None)``, in float64.

    Per epoch the loss at the current parameters is recorded, then
    ``w -= lr * (2/N) Σ_active r_i x_i`` and ``b -= lr * (2/N) Σ_active r_i``.

    Returns
    -------
    w : ndarray of float64
    b : float
    losses : ndarray of float64, shape (epochs,)
    """
    N = X.shape[0]
    w = np.array(w0, dtype=np.float64)
    b = float(b0)
    losses = np.empty(epochs)
    for e in range(epochs):
        z = X @ w + b
        r = np.maximum(z, 0.0) - y
        losses[e] = np.mean(r * r)
        c = (2.0 / N) * r * (z > 0)
        w -= lr * (c @ X)
        b -= lr * float(c.sum())
    return w, b, losses
