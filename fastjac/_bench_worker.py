"""The workers of ``fastjac bench``: the table of workloads, and the timing of its rows for
one framework in one process.

:data:`WORKLOADS` is the one table of what ``fastjac bench`` measures: every workload's
inputs, sizes, memory traffic, and its code in fastjac, NumPy, PyTorch, JAX and Numba (see
:class:`Workload`; adding a row there is all a new workload needs).

A worker times the rows of one framework on inputs it builds from per-row seeds with NumPy
alone, then checks every result against NumPy's in float64, and returns JSON. It runs
either all its rows in one go (``_run_worker``: a spec file in, a JSON file out) or, with
``--serve``, one request at a time from the parent over its stdin and stdout (``_serve``:
``fastjac bench --interleave`` samples the frameworks in turn). Both drive the same
``_Session``. :mod:`fastjac.bench` starts one worker per framework, each in its own
process, and merges them.

This file imports nothing from fastjac at module level: workers for PyTorch, JAX and
Numba may run it by path in a Python without fastjac (``fastjac bench --peer-python``).
Keep it that way (fastjac is imported inside the functions that the fastjac worker runs).
"""

import json
import math
import os
import runpy
import sys
import time
import types
import zlib

import numpy as np

FRAMEWORKS = ("fastjac", "numpy", "torch", "jax", "numba")
PEERS = ("torch", "jax", "numba")

# --------------------------------------------------------------------------------- timing
def _median_time(fn, repeat, min_time, best=False):
    """Median (or, with ``best``, least) seconds per call of ``fn()`` over ``repeat``
    samples of >= ``min_time`` each."""
    return _timed(fn, repeat, min_time, best)[0]


def _timed(fn, repeat, min_time, best=False, number=None):
    """``(seconds per call, number)``: the median (least with ``best``) over ``repeat``
    loops of ``number`` calls of ``fn()``, after one warm-up call. The loop is lengthened
    until it takes >= ``min_time``. Pass the returned ``number`` to time the same loop
    again (the interleaved bench does, once per sample); it is lengthened again if its
    loop now takes less than half of ``min_time`` (it was found in a stall: on a loaded
    machine a Numba call whose second thread is not scheduled takes ~8 ms, not 4 µs)."""
    fn()  # warm up (first-touch page faults, lazy imports, thread pool start, JIT compile)
    enough = min_time if number is None else min_time / 2
    number = number or 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= enough or number >= 1 << 20:
            break
        number *= 2 if dt <= 0 else max(2, min(10, int(min_time / dt * 1.2) + 1))
        enough = min_time
    samples = [dt / number]
    while len(samples) < repeat:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(min(samples) if best else np.median(samples)), number


def _as_float64(result):
    """A framework's result (array, tensor, scalar or a tuple of them) as float64 arrays."""
    if isinstance(result, (tuple, list)):
        return tuple(a for r in result for a in _as_float64(r))
    if hasattr(result, "detach"):  # a torch tensor
        result = result.detach().cpu().numpy()
    return (np.asarray(result, dtype=np.float64),)


def _agree(got, want, dtype):
    """(agree, largest error relative to each result's scale): a framework's result against
    the NumPy reference computed in float64."""
    rtol = 1e-9 if np.dtype(dtype) == np.float64 else 1e-3
    got, want = _as_float64(got), _as_float64(want)
    if len(got) != len(want):
        return False, math.inf
    worst = 0.0
    for u, v in zip(got, want):
        if u.shape != v.shape:
            return False, math.inf
        if not v.size:
            continue
        scale = max(1.0, float(np.max(np.abs(v))))
        err = np.abs(u - v) / (np.abs(v) + scale)
        worst = max(worst, float(np.max(err)) if np.all(np.isfinite(err)) else math.inf)
    return worst <= rtol, worst


# ------------------------------------------------------------------------ the workload table
class Workload:
    """One benchmark: its inputs, its sizes, the bytes it moves, and one implementation
    per framework.

    Parameters
    ----------
    name, description : str
        The table's title line.
    inputs : callable
        ``inputs(size, dtype, rng) -> tuple``: NumPy arrays (and scalars) built from ``rng``
        alone, so every worker, in any interpreter, builds the same inputs. Arrays and NumPy
        scalars become tensors for PyTorch and JAX; Python numbers are passed unchanged.
    sizes, quick : list
        The sizes of the full run and of ``--quick`` (an int n, or a tuple such as (N, n)).
    traffic : callable, optional
        ``traffic(size, itemsize) -> (bytes_read, bytes_written)``: the least memory traffic
        of one call, for the ×bound column.
    expr : callable, optional
        ``expr(m, *inputs)``: code that is the same for ``m`` = numpy, torch and jax.numpy;
        the default of the three implementations below.
    fastjac, numpy, torch, jax, numba : callable, optional
        ``factory(module) -> fn``, called once per worker (set-up, tracing and compiling are
        not timed); ``fn(*inputs)`` is timed. ``module`` is the framework's top-level
        module (``jax``, not ``jax.numpy``). JAX's ``fn`` is wrapped in ``jax.jit``. The
        NumPy implementation is also the reference every result is checked against (run
        on the inputs in float64).
    first_call : bool
        Also report the first call (factory + first run: tracing, compiling) per row.
    needs : str, optional
        A dotted attribute of fastjac (``"fuse"``, ``"layer.fit"``) the workload needs: the
        workload is left out, with a note, when the installed fastjac lacks it.
    """

    def __init__(self, name, description, inputs, sizes, quick, traffic=None, expr=None, *,
                 fastjac, numpy=None, torch=None, jax=None, numba=None, first_call=False,
                 needs=None):
        self.name, self.description = name, description
        self.inputs, self.sizes, self.quick, self.traffic = inputs, sizes, quick, traffic
        self.first_call, self.needs = first_call, needs
        if expr is not None:
            numpy = numpy or (lambda m: lambda *a: expr(m, *a))
            torch = torch or (lambda m: lambda *a: expr(m, *a))
            jax = jax or (lambda m: lambda *a: expr(m.numpy, *a))
        if numpy is None:
            raise ValueError(f"workload {name}: a NumPy implementation is required")
        self.impls = {"fastjac": fastjac, "numpy": numpy, "torch": torch, "jax": jax,
                      "numba": numba}


def _normals(k, positive=()):
    """inputs: k standard-normal vectors of length n (those in ``positive``: |v| + 0.5)."""
    def inputs(n, dtype, rng):
        out = []
        for i in range(k):
            v = rng.standard_normal(n)
            out.append((np.abs(v) + 0.5 if i in positive else v).astype(dtype))
        return tuple(out)
    return inputs


def _stream(reads, writes):
    """traffic: ``reads`` vectors of n read, ``writes`` vectors of n written."""
    return lambda n, itemsize: (reads * n * itemsize, writes * n * itemsize)


def _numba_unary(deriv):
    """The Numba loop a user writes for a unary VJP: ``out[i] = g[i] * deriv(x[i])``."""
    def factory(numba):
        d = numba.njit(deriv)
        prange = numba.prange

        @numba.njit(parallel=True)
        def vjp(x, g):
            out = np.empty_like(x)
            for i in prange(x.shape[0]):
                out[i] = g[i] * d(x[i])
            return out
        return vjp
    return factory


def _numba_binary(partials):
    """The Numba loop for a binary VJP: ``partials(w, x) -> (∂/∂w, ∂/∂x)`` per element."""
    def factory(numba):
        p = numba.njit(partials)
        prange = numba.prange

        @numba.njit(parallel=True)
        def vjp(w, x, g):
            gw = np.empty_like(w)
            gx = np.empty_like(x)
            for i in prange(w.shape[0]):
                dw, dx = p(w[i], x[i])
                gw[i] = g[i] * dw
                gx[i] = g[i] * dx
            return gw, gx
        return vjp
    return factory


def _d_tanh(x):
    t = np.tanh(x)
    return 1.0 - t * t


def _d_sigmoid(x):
    s = 1.0 / (1.0 + np.exp(-x))
    return s * (1.0 - s)


def _p_fused(w, x):
    e = np.exp(w)
    return e * np.sin(x), e * np.cos(x)


def _sigmoid_vjp(m, x, g):
    s = 1 / (1 + m.exp(-x))
    return g * s * (1 - s)


def _tanh_vjp(m, x, g):
    t = m.tanh(x)
    return g * (1 - t * t)


EW_SIZES, EW_QUICK = [10, 1000, 1_000_000], [10, 1000]


def _unary(op, formula, expr, deriv, positive=False, torch=None):
    return Workload(f"{op}.vjp", formula, _normals(2, (0,) if positive else ()),
                    EW_SIZES, EW_QUICK, _stream(2, 1), expr,
                    fastjac=lambda fj: getattr(fj, op).vjp, torch=torch,
                    numba=_numba_unary(deriv))


def _binary(name, formula, expr, partials, fastjac, positive_x=False):
    return Workload(name, formula, _normals(3, (1,) if positive_x else ()),
                    EW_SIZES, EW_QUICK, _stream(3, 2), expr, fastjac=fastjac,
                    numba=_numba_binary(partials))


def _nb_scalar_mul(numba):
    prange = numba.prange

    @numba.njit(parallel=True)
    def vjp(x, g):
        gx = np.empty_like(g)
        gz = 0.0
        for i in prange(g.shape[0]):
            gx[i] = g[i] * 2.5
            gz += g[i] * x[i]
        return gx, gz
    return vjp


def _nb_sum(numba):
    prange = numba.prange

    @numba.njit(parallel=True)
    def total(x):
        s = 0.0
        for i in prange(x.shape[0]):
            s += x[i]
        return s
    return total


def _nb_dot(numba):
    prange = numba.prange

    @numba.njit(parallel=True)
    def dot(w, x):
        s = 0.0
        for i in prange(w.shape[0]):
            s += w[i] * x[i]
        return s
    return dot


# --- the ReLU neuron (paper §6)
NEURON_EPOCHS, NEURON_LR = 300, 0.05


def _neuron_inputs(shape, dtype, rng):
    N, n = shape
    X = rng.standard_normal((N, n), dtype=np.float64).astype(dtype, copy=False)
    w = (rng.standard_normal(n) / math.sqrt(n)).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    return X, y, w, dtype.type(0.1)


def _neuron_traffic(shape, itemsize):
    N, n = shape
    return (N * n + N + n) * itemsize, n * itemsize


def _np_loss_grad(np_):
    return _reference().loss_grad


def _torch_loss_grad(torch):
    def loss_grad(X, y, w, b):
        w = w.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True)
        r = torch.relu(X @ w + b) - y
        C = (r * r).mean()
        gw, gb = torch.autograd.grad(C, (w, b))
        return C, gw, gb
    return loss_grad


def _jax_loss(jax):
    def loss(w, b, X, y):
        r = jax.numpy.maximum(X @ w + b, 0) - y
        return jax.numpy.mean(r * r)
    return loss


def _jax_loss_grad(jax):
    vg = jax.value_and_grad(_jax_loss(jax), argnums=(0, 1))

    def loss_grad(X, y, w, b):
        C, (gw, gb) = vg(w, b, X, y)
        return C, gw, gb
    return loss_grad


def _nb_loss_grad(numba):
    """The neuron's loss and gradient as a Numba user writes it: row blocks in parallel,
    each with its own partial gradient, merged at the end."""
    prange = numba.prange

    @numba.njit(parallel=True)
    def loss_grad(X, y, w, b):
        N, n = X.shape
        nblk = min(N, 64)
        part = np.zeros((nblk, n))
        loss = np.zeros(nblk)
        gbs = np.zeros(nblk)
        for k in prange(nblk):
            for i in range(k * N // nblk, (k + 1) * N // nblk):
                z = b
                for j in range(n):
                    z += X[i, j] * w[j]
                r = max(z, 0.0) - y[i]
                loss[k] += r * r
                if z > 0:
                    c = 2.0 / N * r
                    gbs[k] += c
                    for j in range(n):
                        part[k, j] += c * X[i, j]
        gw = np.zeros(n, dtype=X.dtype)
        for k in range(nblk):
            for j in range(n):
                gw[j] += part[k, j]
        return loss.sum() / N, gw, gbs.sum()
    return loss_grad


def _np_fit(np_):
    ref = _reference()
    return lambda X, y, w, b: ref.fit(X, y, NEURON_LR, NEURON_EPOCHS, w, b)[:2]


def _torch_fit(torch):
    step = _torch_loss_grad(torch)

    def fit(X, y, w, b):
        losses = torch.empty(NEURON_EPOCHS, dtype=w.dtype)
        for e in range(NEURON_EPOCHS):
            losses[e], gw, gb = step(X, y, w, b)
            w, b = w - NEURON_LR * gw, b - NEURON_LR * gb
        return w, b
    return fit


def _jax_fit(jax, loss=None):
    """``jit(fori_loop)`` over the epochs of gradient descent on ``loss(w, b, X, y)``
    (default: the neuron's)."""
    vgrad = jax.value_and_grad(loss or _jax_loss(jax), argnums=(0, 1))

    def fit(X, y, w, b):
        def epoch(e, state):
            w, b, losses = state
            C, (gw, gb) = vgrad(w, b, X, y)
            return w - NEURON_LR * gw, b - NEURON_LR * gb, losses.at[e].set(C)
        zeros = jax.numpy.zeros(NEURON_EPOCHS, dtype=w.dtype)
        return jax.lax.fori_loop(0, NEURON_EPOCHS, epoch, (w, b, zeros))[:2]
    return fit


def _fj_fit(fj):
    def fit(X, y, w, b):
        res = fj.neuron.fit(X, y, lr=NEURON_LR, epochs=NEURON_EPOCHS, w0=w, b0=b)
        return res.w, res.b
    return fit


def _descent(loss_grad):
    """Full-batch gradient descent as a user writes it over ``loss_grad(X, Y, W, b)``
    (NumPy or PyTorch): NEURON_EPOCHS epochs at NEURON_LR, each epoch's loss kept."""
    def fit(X, Y, W, b):
        losses = [None] * NEURON_EPOCHS
        for e in range(NEURON_EPOCHS):
            losses[e], gW, gb = loss_grad(X, Y, W, b)
            W, b = W - NEURON_LR * gW, b - NEURON_LR * gb
        return W, b
    return fit


def _fj_layer_fit(fj):
    def fit(X, Y, W, b):
        res = fj.layer.fit(X, Y, lr=NEURON_LR, epochs=NEURON_EPOCHS, W0=W, b0=b)
        return res.W, res.b
    return fit


# --- fj.fuse (issue 14) and fj.layer (issue 15); left out where fastjac lacks them
def _p_fuse(w, x):
    e = np.exp(w)
    return e * np.sin(x) + 1.0 / x, e * np.cos(x) - w / (x * x)


def _layer_inputs(shape, dtype, rng):
    N, n, m = shape
    X = rng.standard_normal((N, n)).astype(dtype)
    W = (rng.standard_normal((m, n)) / math.sqrt(n)).astype(dtype)
    b = (0.1 * rng.standard_normal(m)).astype(dtype)
    Y = rng.standard_normal((N, m)).astype(dtype)
    return X, Y, W, b


def _layer_traffic(shape, itemsize):
    N, n, m = shape
    return (N * n + N * m + m * n + m) * itemsize, (m * n + m) * itemsize


def _np_layer_loss_grad(np_):
    def loss_grad(X, Y, W, b):
        Z = X @ W.T + b
        R = np_.maximum(Z, 0) - Y
        G = 2 / X.shape[0] * R * (Z > 0)
        return (R * R).sum() / X.shape[0], G.T @ X, G.sum(axis=0)
    return loss_grad


def _torch_layer_loss_grad(torch):
    def loss_grad(X, Y, W, b):
        W = W.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True)
        R = torch.relu(X @ W.T + b) - Y
        C = (R * R).sum() / X.shape[0]
        gW, gb = torch.autograd.grad(C, (W, b))
        return C, gW, gb
    return loss_grad


def _jax_layer_loss(jax):
    def loss(W, b, X, Y):
        R = jax.numpy.maximum(X @ W.T + b, 0) - Y
        return (R * R).sum() / X.shape[0]
    return loss


def _jax_layer_loss_grad(jax):
    vg = jax.value_and_grad(_jax_layer_loss(jax), argnums=(0, 1))

    def loss_grad(X, Y, W, b):
        C, (gW, gb) = vg(W, b, X, Y)
        return C, gW, gb
    return loss_grad


WORKLOADS = [
    _unary("exp", "gy ⊗ exp(x)", lambda m, x, g: g * m.exp(x), lambda x: np.exp(x)),
    _unary("log", "gy ⊘ x", lambda m, x, g: g / x, lambda x: 1.0 / x, positive=True),
    _unary("sin", "gy ⊗ cos(x)", lambda m, x, g: g * m.cos(x), lambda x: np.cos(x)),
    _unary("cos", "-gy ⊗ sin(x)", lambda m, x, g: -g * m.sin(x), lambda x: -np.sin(x)),
    _unary("tanh", "gy ⊗ (1 - tanh²x)", _tanh_vjp, _d_tanh),
    _unary("sigmoid", "gy ⊗ σ(x)(1 - σ(x))", _sigmoid_vjp, _d_sigmoid,
           torch=lambda t: lambda x, g: g * t.sigmoid(x) * (1 - t.sigmoid(x))),
    _unary("sqrt", "gy ⊘ (2√x)", lambda m, x, g: g * 0.5 / m.sqrt(x),
           lambda x: 0.5 / np.sqrt(x), positive=True),
    _unary("reciprocal", "-gy ⊘ x²", lambda m, x, g: -g / (x * x),
           lambda x: -1.0 / (x * x), positive=True),
    _unary("relu", "gy ⊗ (x > 0)", lambda m, x, g: g * (x > 0),
           lambda x: 1.0 if x > 0 else 0.0),
    _binary("mul.vjp", "(gy ⊗ x, gy ⊗ w)", lambda m, w, x, g: (g * x, g * w),
            lambda w, x: (x, w), lambda fj: fj.mul.vjp),
    _binary("div.vjp", "(gy ⊘ x, -gy ⊗ w ⊘ x²)", lambda m, w, x, g: (g / x, -g * w / (x * x)),
            lambda w, x: (1.0 / x, -w / (x * x)), lambda fj: fj.div.vjp, positive_x=True),
    _binary("exp(w)⊗sin(x).vjp", "fused f(w) ○ g(x), §4.2",
            lambda m, w, x, g: (g * m.exp(w) * m.sin(x), g * m.exp(w) * m.cos(x)),
            _p_fused, lambda fj: fj.elementwise(fj.mul, f=fj.exp, g=fj.sin).vjp),
    Workload("fuse.vjp", "fj.fuse(exp(w) ⊗ sin(x) + w ⊘ x).vjp, §4.2, §4.5.2",
             _normals(3, (1,)), EW_SIZES, EW_QUICK, _stream(3, 2),
             lambda m, w, x, g: (g * (m.exp(w) * m.sin(x) + 1 / x),
                                 g * (m.exp(w) * m.cos(x) - w / (x * x))),
             fastjac=lambda fj: fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x).vjp,
             numba=_numba_binary(_p_fuse), first_call=True, needs="fuse"),
    Workload("mul.vjp scalar", "x z: (gy z, Σ gy ⊗ x), §4.3", _normals(2), EW_SIZES,
             EW_QUICK, _stream(2, 1), fastjac=lambda fj: lambda x, g: fj.mul.vjp(x, 2.5, g),
             numpy=lambda m: lambda x, g: (g * 2.5, m.sum(g * x)),
             torch=lambda t: lambda x, g: (g * 2.5, t.sum(g * x)),
             jax=lambda jax: lambda x, g: (g * 2.5, jax.numpy.sum(g * x)),
             numba=_nb_scalar_mul),
    Workload("sum", "Σ x (double accumulator)", _normals(1), EW_SIZES, EW_QUICK,
             _stream(1, 0), lambda m, x: m.sum(x), fastjac=lambda fj: fj.sum,
             numba=_nb_sum),
    Workload("dot", "w · x", _normals(2), EW_SIZES, EW_QUICK, _stream(2, 0),
             lambda m, w, x: m.dot(w, x), fastjac=lambda fj: fj.dot, numba=_nb_dot),
    Workload("neuron.loss_grad", "C, ∂C/∂w, ∂C/∂b in one pass over X, §6", _neuron_inputs,
             [(32, 8), (1000, 10), (100_000, 100), (1_000_000, 100)], [(256, 8), (1000, 10)],
             _neuron_traffic, fastjac=lambda fj: fj.neuron.loss_grad, numpy=_np_loss_grad,
             torch=_torch_loss_grad, jax=_jax_loss_grad, numba=_nb_loss_grad),
    Workload("neuron.fit", f"{NEURON_EPOCHS} full-batch epochs of gradient descent, "
             f"lr {NEURON_LR}", _neuron_inputs, [(1000, 10)], [(1000, 10)],
             fastjac=_fj_fit, numpy=_np_fit, torch=_torch_fit, jax=_jax_fit),
    Workload("layer.loss_grad", "C, ∂C/∂W, ∂C/∂b of m ReLU neurons in one pass over X",
             _layer_inputs, [(32, 8, 16), (1000, 10, 32), (100_000, 100, 16),
                             (10_000, 784, 128)], [(32, 8, 16), (1000, 10, 32)],
             _layer_traffic, fastjac=lambda fj: fj.layer.loss_grad,
             numpy=_np_layer_loss_grad, torch=_torch_layer_loss_grad,
             jax=_jax_layer_loss_grad, needs="layer.loss_grad"),
    Workload("layer.fit", f"{NEURON_EPOCHS} full-batch epochs of gradient descent, lr "
             f"{NEURON_LR}", _layer_inputs, [(1000, 10, 32)], [(1000, 10, 32)],
             fastjac=_fj_layer_fit, numpy=lambda m: _descent(_np_layer_loss_grad(m)),
             torch=lambda t: _descent(_torch_layer_loss_grad(t)),
             jax=lambda jax: _jax_fit(jax, _jax_layer_loss(jax)), needs="layer.fit"),
]
"""Every workload of ``fastjac bench``, in table order. Add a row here (see
:class:`Workload`); nothing else needs to change."""


def _workload(name):
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(name)


# --- "next to BLAS" (issue 12): a training loop's step [NumPy 400x400 product; fastjac call]
NEXT_TO_BLAS = [
    # (workload of the table whose inputs are used, full size, --quick size,
    #  fastjac call with n_threads)
    ("neuron.loss_grad", (100_000, 100), (10_000, 100),
     lambda fj, X, y, w, b, n_threads: fj.neuron.loss_grad(X, y, w, b, n_threads=n_threads)),
    ("tanh.vjp", 2_000_000, 200_000,
     lambda fj, x, g, n_threads: fj.tanh.vjp(x, g, n_threads=n_threads)),
]
NEXT_TO_BLAS_PRODUCT = 400


def _next_to_blas(fj, quick, repeat, min_time):
    """[{name, size, product_s, fastjac_1thread_s, fastjac_s, step_s, ratio,
    quiet_speedup}] for each entry of NEXT_TO_BLAS, float64."""
    dt = np.dtype(np.float64)
    calls = []
    for name, size, qsize, call in NEXT_TO_BLAS:
        size = qsize if quick else size
        inputs = _workload(name).inputs(size, dt, np.random.default_rng(_seed(name, size,
                                                                              "float64")))
        calls.append((name, size, lambda nt, c=call, a=inputs: c(fj, *a, n_threads=nt)))
    rng = np.random.default_rng(12)
    A = rng.standard_normal((NEXT_TO_BLAS_PRODUCT, NEXT_TO_BLAS_PRODUCT))
    B = rng.standard_normal((NEXT_TO_BLAS_PRODUCT, NEXT_TO_BLAS_PRODUCT))
    rows = []
    # quiet first: no BLAS call has run yet in this process
    for name, size, call in calls:
        rows.append({"name": name, "size": _label(size), "dtype": "float64",
                     "fastjac_1thread_s": _median_time(lambda: call(1), repeat, min_time),
                     "fastjac_s": _median_time(lambda: call(None), repeat, min_time)})
    product_s = _median_time(lambda: A @ B, repeat, min_time)
    for row, (name, size, call) in zip(rows, calls):
        def step():
            A @ B
            call(None)
        row["product_s"] = product_s
        row["step_s"] = _median_time(step, repeat, min_time)
        row["ratio"] = row["step_s"] / (product_s + row["fastjac_1thread_s"])
        row["quiet_speedup"] = row["fastjac_1thread_s"] / row["fastjac_s"]
    return rows


# ------------------------------------------------------------------------------ bandwidth
def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)


def memory_bandwidth(nbytes=10**8, repeat=5):
    """Read and write bandwidth (GB/s) over a working set of ``nbytes`` (caches included).

    * read: ``fastjac.sum`` on all threads (and ``numpy.sum``; the faster counts) over
      ``nbytes`` of float64: a reduction reads every byte once and writes nothing;
    * triad: ``c = relu.vjp(a, b, out=c)`` on all threads (and ``numpy.multiply(a, b,
      out=c)``), three vectors of ``nbytes / 3``: two read, one written;
    * write: the triad's bytes written over its time beyond reading (at the read rate),
      at most twice the read rate.

    Times are the best of ``repeat``: a ceiling is the fastest the machine was seen to go
    (a median would fall whenever another job shares the memory bus). The memory-traffic
    bound of a call reading R and writing W bytes is ``R / read + W / write``.
    """
    import fastjac as fj

    cpus = _cpus()
    x = np.ones(max(3, nbytes // 8))
    res = {"bytes": int(x.nbytes)}
    t_fj1 = _median_time(lambda: fj.sum(x, n_threads=1), repeat, 0.0, best=True)
    t_fj = _median_time(lambda: fj.sum(x, n_threads=cpus), repeat, 0.0, best=True)
    t_np = _median_time(lambda: np.sum(x), repeat, 0.0, best=True)
    res["fastjac_1thread_GBps"] = x.nbytes / t_fj1 / 1e9
    res["fastjac_all_threads_GBps"] = x.nbytes / t_fj / 1e9
    res["numpy_GBps"] = x.nbytes / t_np / 1e9
    read = x.nbytes / min(t_fj1, t_fj, t_np)
    x = None  # free it before the triad
    m = max(1, nbytes // 24)
    a, b, c = np.ones(m), np.ones(m), np.empty(m)
    t_triad = min(
        _median_time(lambda: fj.relu.vjp(a, b, out=c, n_threads=cpus), repeat, 0.0, best=True),
        _median_time(lambda: np.multiply(a, b, out=c), repeat, 0.0, best=True))
    written = c.nbytes
    t_write = max(t_triad - 2 * written / read, written / (2 * read))
    res["read_GBps"] = read / 1e9
    res["triad_GBps"] = 3 * written / t_triad / 1e9
    res["write_GBps"] = written / t_write / 1e9
    return res


def _reference():
    """fastjac._reference (the NumPy neuron: the baseline and the check), also where fastjac
    is not installed: it needs NumPy only, so it is then run from its file beside this one."""
    try:
        from fastjac import _reference as ref
    except ImportError:
        here = os.path.dirname(os.path.abspath(__file__))
        ref = types.SimpleNamespace(**runpy.run_path(os.path.join(here, "_reference.py")))
    return ref


def _openblas_info():
    """[{"version", "kernel", "threads"}] of the BLAS libraries this process loaded (NumPy's
    OpenBLAS: which kernel it chose), from threadpoolctl when installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _openblas_info_ctypes()
    return [{"api": i.get("internal_api"), "version": i.get("version"),
             "kernel": i.get("architecture"), "threads": i.get("num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _openblas_info_ctypes():
    """Without threadpoolctl: ask every OpenBLAS this process mapped (Linux) for its
    kernel, through the library's own ``*_get_corename`` call."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    found = []
    for path in sorted(p for p in paths if os.path.isfile(p)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
            if corename is None:
                continue
            config = getattr(lib, f"{prefix}_get_config{suffix}", None)
            threads = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            corename.restype = ctypes.c_char_p
            info = {"api": "openblas", "kernel": corename().decode(), "version": None,
                    "threads": threads() if threads else None}
            if config is not None:
                config.restype = ctypes.c_char_p
                parts = config().decode().split()
                info["version"] = parts[1] if len(parts) > 1 else None
            found.append(info)
            break
    return found or None


# ---------------------------------------------------------------------------------- worker
def _seed(name, size, dtype):
    return zlib.crc32(f"{name}|{size}|{dtype}".encode())


def _label(size):
    """A row's size as JSON shows it: n, or "NxM"."""
    return size if isinstance(size, int) else "x".join(map(str, size))


def _size(label):
    return label if isinstance(label, int) else tuple(int(v) for v in str(label).split("x"))


def _inputs_crc(inputs):
    """A checksum of the first MB of every input: proof that two workers timed the same."""
    crc = 0
    for a in inputs:
        a = np.asarray(a)
        crc = zlib.crc32(a.reshape(-1)[: (1 << 20) // max(1, a.itemsize)].tobytes(), crc)
    return crc


def _load(framework):
    """The framework's module, configured for a fair CPU comparison."""
    if framework == "numpy":
        return np
    if framework == "fastjac":
        import fastjac

        return fastjac
    if framework == "torch":
        import torch

        return torch
    if framework == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        return jax
    if framework == "numba":
        import numba

        return numba
    raise ValueError(f"unknown framework {framework!r}")


def _converter(framework, mod):
    """inputs (NumPy) -> the framework's inputs."""
    if framework == "torch":
        return lambda a: mod.from_numpy(np.asarray(a)) if isinstance(a, (np.ndarray,
                                                                           np.generic)) else a
    if framework == "jax":
        return lambda a: mod.numpy.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a
    return lambda a: a


def _build(framework, mod, wl):
    fn = wl.impls[framework](mod)
    if framework == "jax":
        fn = mod.jit(fn)
    if framework == "jax":
        return lambda *a: mod.block_until_ready(fn(*a))
    return fn


def _to_float64(a):
    if isinstance(a, np.ndarray):
        return a if a.dtype == np.float64 else a.astype(np.float64)
    if isinstance(a, np.generic):
        return np.float64(a)
    return a


class _Session:
    """One framework in one worker process: its module, the row being timed, and what the
    worker reports (``out``, the JSON of :func:`_run_worker`).

    Both ways of running the bench drive it the same way: :meth:`prepare` a row, take one
    or more :meth:`sample`, then :meth:`prepare` the next; :meth:`finish` ends with the
    extra measurements and the checks. :func:`_run_worker` takes one sample per row, all
    in one go; :func:`_serve` takes them when the parent asks (``fastjac bench
    --interleave``).
    """

    def __init__(self, framework):
        self.framework = framework
        self.out = {"framework": framework, "python": sys.executable,
                    "numpy": np.__version__, "rows": []}
        self.mod = self.convert = None
        self.built, self.timed, self.current = {}, [], None

    def load(self):
        """Import the framework; False (and ``out["missing"]``) if it cannot be."""
        try:
            self.mod = _load(self.framework)
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            self.out["missing"] = f"{type(exc).__name__}: {exc}"
            return False
        self.out["version"] = getattr(self.mod, "__version__", "?")
        if self.framework == "numba":
            self.out["threading_layer"] = None
        self.convert = _converter(self.framework, self.mod)
        return True

    def _make(self, name, label, dtype):
        wl, dt = _workload(name), np.dtype(dtype)
        size = _size(label)
        inputs = wl.inputs(size, dt, np.random.default_rng(_seed(name, size, dtype)))
        return wl, dt, inputs, tuple(self.convert(a) for a in inputs)

    def prepare(self, name, label, dtype):
        """End the current row and set up the next: its inputs, their checksum, the
        framework's function (and its first call, where the workload asks). Returns the
        row's dict (with ``error`` where it cannot be timed)."""
        self._end_row()
        row = {"workload": name, "size": label, "dtype": dtype}
        self.out["rows"].append(row)
        if _workload(name).impls[self.framework] is None:
            row["error"] = "no implementation"
            return row
        try:
            wl, dt, inputs, args = self._make(name, label, dtype)
            row["inputs_crc"] = _inputs_crc(inputs)
            if wl.first_call:
                t0 = time.perf_counter()
                fn = _build(self.framework, self.mod, wl)
                fn(*args)
                row["first_call_s"] = time.perf_counter() - t0
            if name not in self.built:
                self.built[name] = _build(self.framework, self.mod, wl)
            fn = self.built[name]
            self.current = {"row": row, "call": lambda: fn(*args), "number": None,
                            "samples": []}
        except Exception as exc:  # noqa: BLE001 - a framework failing is reported, not ours
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return row

    def sample(self, repeat, min_time):
        """Seconds per call of the current row: one warm-up call, then the median of
        ``repeat`` loops of >= ``min_time`` (the loop's length is found once per row).
        None if there is no row to time or the call fails (``error`` in its row)."""
        cur = self.current
        if cur is None:
            return None
        try:
            t, cur["number"] = _timed(cur["call"], repeat, min_time, number=cur["number"])
        except Exception as exc:  # noqa: BLE001
            cur["row"]["error"] = f"{type(exc).__name__}: {exc}"[:300]
            self.current = None
            return None
        cur["samples"].append(t)
        return t

    def _end_row(self):
        """The current row's time is the median of its samples; its arrays are freed."""
        cur, self.current = self.current, None
        if cur and cur["samples"]:
            cur["row"]["time_s"] = float(np.median(cur["samples"]))
            self.timed.append(cur["row"])

    def finish(self, spec):
        """fastjac's extra measurements (bandwidth, next to BLAS), then every timed result
        against NumPy's in float64, on the same inputs rebuilt; returns ``out``.

        Nothing here runs before the last sample: NumPy's reference may call BLAS, whose
        threads keep spinning and would slow the next timing."""
        self._end_row()
        out = self.out
        repeat, min_time = spec["repeat"], spec["min_time"]
        if spec.get("bandwidth_bytes"):
            out["bandwidth"] = {str(nb): memory_bandwidth(nb, repeat=spec["bandwidth_repeat"])
                                for nb in spec["bandwidth_bytes"]}
        if spec.get("next_to_blas"):
            out["next_to_blas"] = _next_to_blas(self.mod, spec["quick"], repeat, min_time)
        reference = {}
        for row in self.timed:
            try:
                wl, dt, inputs, args = self._make(row["workload"], row["size"], row["dtype"])
                if wl.name not in reference:
                    reference[wl.name] = wl.impls["numpy"](np)
                want = reference[wl.name](*(_to_float64(a) for a in inputs))
                row["checked"], row["max_error"] = _agree(self.built[wl.name](*args), want,
                                                          dt)
            except Exception as exc:  # noqa: BLE001
                row["checked"], row["error"] = False, f"{type(exc).__name__}: {exc}"[:300]
            inputs = args = want = None
        if self.framework == "numba":
            try:
                out["threading_layer"] = self.mod.threading_layer()
            except Exception:  # noqa: BLE001 - only known after a parallel call
                pass
        out["blas"] = _openblas_info()
        return out


def _run_worker(spec):
    """Time ``spec["rows"]`` for ``spec["framework"]`` in this process, each row once in
    turn, then check them; returns a dict (:attr:`_Session.out`)."""
    session = _Session(spec["framework"])
    if not session.load():
        return session.out
    for name, label, dtype in spec["rows"]:
        session.prepare(name, label, dtype)
        session.sample(spec["repeat"], spec["min_time"])
    return session.finish(spec)


def _serve(requests, replies):
    """The interleaved worker: answer JSON requests, one a line, until ``quit`` or EOF.

    ``{"op": "load", "framework": F}`` -> ``{"ok": true, ...}`` or ``{"missing": why}``;
    ``{"op": "prepare", "row": [name, size, dtype]}`` -> the row's dict;
    ``{"op": "sample", "repeat": r, "min_time": t}`` -> ``{"time_s": seconds or null}``;
    ``{"op": "finish", ...spec}`` -> the worker's JSON, as :func:`_run_worker` returns it.
    An exception becomes ``{"failed": why}``.
    """
    session = None
    for line in requests:
        req = json.loads(line)
        op = req["op"]
        if op == "quit":
            break
        try:
            if op == "load":
                session = _Session(req["framework"])
                rep = {"ok": session.load()}
                rep.update({k: v for k, v in session.out.items() if k != "rows"})
            elif op == "prepare":
                rep = session.prepare(*req["row"])
            elif op == "sample":
                rep = {"time_s": session.sample(req["repeat"], req["min_time"])}
            elif op == "finish":
                rep = session.finish(req)
            else:
                rep = {"failed": f"unknown request {op!r}"}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which goes on
            rep = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
        replies.write(json.dumps(rep) + "\n")
        replies.flush()


def _die_with_parent():
    """Linux: be killed when the parent bench process dies, even while stopped (SIGSTOP)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere the parent's cleanup alone must do
        pass


def _serve_main():
    """``--serve``: replies go to the original stdout; anything a library prints goes to
    stderr instead, so it cannot garble them. Ctrl-C is left to the parent, which stops
    and ends its workers itself."""
    import signal

    if sys.platform.startswith("linux"):
        _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.stdin, replies)
    return 0


def _worker_main(argv):
    """``SPEC.json OUT.json``: run a worker and write its JSON."""
    spec_path, out_path = argv[:2]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    res = _run_worker(spec)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(res, f)
    return 0


# The worker runs this file by path (runpy), so an interpreter without fastjac can run it:
# ``python _bench_worker.py SPEC.json OUT.json`` or ``python _bench_worker.py --serve``.


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_serve_main() if sys.argv[-1] == "--serve" else _worker_main(sys.argv[-2:]))
