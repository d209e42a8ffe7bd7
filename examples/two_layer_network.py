"""
A two-layer network trained with fastjac
========================================

A layer of ReLU neurons, then an output.

The network (numerator layout; X is N x n, one sample per row; W is H x n, one row per
hidden neuron)::

    hidden layer   A = max(0, X Wᵀ + b)                (N x H: H ReLU neurons, §5)
    output         ŷ = A v + c 1                       (linear; scalar expansion of c, §4.3)
    loss           C = (1/N) Σ_i (ŷ_i - y_i)²          (§6)

Reverse mode is the vector chain rule (§4.5.3) from the loss back, with no loop over the
hidden units and no dense Jacobian::

    g       = ∂C/∂ŷ = (2/N)(ŷ - y)                      a row of length N
    ∂C/∂c   = Σ_i g_i                                    (§4.3)
    ∂C/∂v   = g A,      ∂C/∂A = g vᵀ                     (N x H)
    ∂C/∂W, ∂C/∂b : fastjac.layer.activation_vjp(X, W, A, ∂C/∂A, wrt=("W", "b"))
                   (the mask A > 0, then one pass over X for all H neurons)

The same network with the paper's ReLU output neuron, ŷ = max(0, A v + c), gets its whole
output layer and the gradient flowing back into A from ONE fused call,
``fastjac.neuron.loss_grad(A, y, v, c, wrt=("w", "b", "X"))``, whose ∂C/∂A goes through
``fastjac.layer.activation_vjp`` the same way.

Both backward passes are checked with fastjac.check_grad (central finite differences)
before training, then the linear-output network is trained by gradient descent, and its
fit is drawn against the target (when matplotlib is installed).

Run:  python examples/two_layer_network.py
"""

import time

import numpy as np

import fastjac as fj
from fastjac import layer, neuron


def make_data(N=512, n=4, seed=0):
    """A smooth nonlinear target a small ReLU network can fit."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, (N, n))
    y = np.sin(1.5 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.05 * rng.standard_normal(N)
    return X, y


class TwoLayer:
    """Parameters of the network, packed in one flat vector θ = [W, b, v, c]."""

    def __init__(self, n, H):
        self.n, self.H = n, H
        self.size = H * n + H + H + 1

    def unpack(self, theta):
        n, H = self.n, self.H
        W = theta[:H * n].reshape(H, n)
        b = theta[H * n:H * n + H]
        v = theta[H * n + H:H * n + 2 * H]
        c = float(theta[-1])
        return W, b, v, c

    def init(self, y, seed=0):
        rng = np.random.default_rng(seed)
        theta = np.empty(self.size)
        W, b, v, _ = self.unpack(theta)
        W[...] = rng.normal(0.0, 1.0 / np.sqrt(self.n), W.shape)
        b[...] = 0.1                      # start the neurons active
        v[...] = rng.normal(0.0, 1.0 / np.sqrt(self.H), v.shape)
        theta[-1] = float(np.mean(y))
        return theta

    def hidden(self, theta, X):
        """A, N x H: column h is neuron h's activation max(0, X w_h + b_h)."""
        W, b, _, _ = self.unpack(theta)
        return layer.activation(X, W, b)

    # -- linear output -----------------------------------------------------------------
    def loss(self, theta, X, y):
        _, _, v, c = self.unpack(theta)
        r = self.hidden(theta, X) @ v + c - y
        return fj.dot(r, r) / len(y)

    def loss_and_grad(self, theta, X, y):
        W, b, v, c = self.unpack(theta)
        N = len(y)
        A = self.hidden(theta, X)                     # N x H
        r = A @ v + c - y
        C = fj.dot(r, r) / N
        g = fj.mul(r, 2.0 / N)                        # ∂C/∂ŷ (§6)
        grad = np.empty_like(theta)
        gW, gb, gv, _ = self.unpack(grad)
        grad[-1] = np.sum(g)                          # §4.3: ∂C/∂c = Σ_i g_i
        gv[...] = g @ A                               # ∂C/∂v
        gA = np.outer(g, v)                           # ∂C/∂A
        # back through the hidden layer: every neuron in one pass over X
        layer.activation_vjp(X, W, A, gA, wrt=("W", "b"), out=(gW, gb))
        return C, grad

    # -- ReLU output neuron ------------------------------------------------------------
    def relu_head_loss(self, theta, X, y):
        _, _, v, c = self.unpack(theta)
        return neuron.loss(self.hidden(theta, X), y, v, c)

    def relu_head_grad(self, theta, X, y):
        W, b, v, c = self.unpack(theta)
        A = self.hidden(theta, X)                     # N x H: samples in rows
        C, gv_, gc, gA = neuron.loss_grad(A, y, v, c, wrt=("w", "b", "X"))
        grad = np.empty_like(theta)
        gW, gb, gv, _ = self.unpack(grad)
        gv[...] = gv_
        grad[-1] = gc
        layer.activation_vjp(X, W, A, gA, wrt=("W", "b"), out=(gW, gb))
        return grad


def numpy_grad(net, theta, X, y):
    """The same gradient by hand in NumPy (a second, independent reference)."""
    W, b, v, c = net.unpack(theta)
    Z = X @ W.T + b                                   # N x H
    A = np.maximum(Z, 0.0)
    r = A @ v + c - y
    g = 2.0 / len(y) * r
    gZ = np.outer(g, v) * (Z > 0)
    return np.concatenate([(gZ.T @ X).ravel(), gZ.sum(0), A.T @ g, [g.sum()]])


def main():
    X, y = make_data()
    N, n = X.shape
    H = 16
    net = TwoLayer(n, H)
    theta = net.init(y)
    print(f"fastjac {fj.__version__}: two-layer network, {n} inputs -> {H} ReLU neurons "
          f"-> linear output, N={N}, {net.size} parameters")

    # 1. Check both backward passes against finite differences before trusting them.
    print("\n1. Gradient checks (fastjac.check_grad, central differences, every parameter)")
    rep = fj.check_grad(lambda t: net.loss(t, X, y),
                        lambda t: net.loss_and_grad(t, X, y)[1], theta)
    print(f"   linear output: {'passed' if rep else 'FAILED'}")
    if not rep:
        print(rep)
    rep_relu = fj.check_grad(lambda t: net.relu_head_loss(t, X, y),
                             lambda t: net.relu_head_grad(t, X, y), theta)
    print(f"   ReLU output (neuron.loss_grad with wrt=('w','b','X')): "
          f"{'passed' if rep_relu else 'FAILED'}")
    if not rep_relu:
        print(rep_relu)
    diff = np.max(np.abs(net.loss_and_grad(theta, X, y)[1] - numpy_grad(net, theta, X, y)))
    print(f"   fastjac vs hand-written NumPy backprop: max |difference| = {diff:.1e}")
    if not (rep and rep_relu) or diff > 1e-10:
        raise SystemExit("FAILED: a gradient check failed")

    # 2. Train the linear-output network by plain gradient descent.
    lr, steps = 0.1, 400
    print(f"\n2. Gradient descent, lr={lr}, {steps} steps")
    baseline = float(np.mean((y - y.mean()) ** 2))
    t0 = time.perf_counter()
    losses = []
    for step in range(steps):
        C, grad = net.loss_and_grad(theta, X, y)
        losses.append(C)
        if step % 100 == 0:
            print(f"   step {step:3d}   loss {C:.4f}")
        theta -= lr * grad
    elapsed = time.perf_counter() - t0
    C = net.loss(theta, X, y)
    print(f"   step {steps:3d}   loss {C:.4f}   ({elapsed:.2f} s)")
    print(f"\nfinal loss {C:.4f} vs {baseline:.4f} for predicting the mean: "
          f"R² = {1 - C / baseline:.3f}")
    if not C < 0.5 * baseline:
        raise SystemExit("FAILED: the network did not learn")
    plot_fit(net, theta, X, y, losses)
    print("OK")


def plot_fit(net, theta, X, y, losses):
    """The loss curve and the fitted network against the target (needs matplotlib)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    _, _, v, c = net.unpack(theta)
    pred = net.hidden(theta, X) @ v + c
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.semilogy(losses)
    ax1.set_xlabel("gradient-descent step")
    ax1.set_ylabel("mean squared error")
    ax1.set_title("training loss")
    lim = [float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))]
    ax2.plot(lim, lim, color="gray", linestyle=":")
    ax2.scatter(y, pred, s=6, alpha=0.6)
    ax2.set_xlabel("target  sin(1.5 x₀) + 0.5 x₁ x₂ + noise")
    ax2.set_ylabel("network output")
    ax2.set_title(f"fit on the {len(y)} training samples")
    fig.tight_layout()
    if plt.get_backend().lower() != "agg":
        plt.show()


if __name__ == "__main__":
    main()
