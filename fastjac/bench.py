"""``fastjac bench``: fastjac against NumPy, PyTorch, JAX and Numba in one command.

For each workload of the table :data:`WORKLOADS` (element-wise VJPs, the fused
``exp(w) ⊗ sin(x)`` VJP, scalar expansion, sum and dot, the ReLU neuron's ``loss_grad`` and
``fit``) it times the fastjac call and the code a user of each other framework would write
for the same result, on the same inputs, and prints one table per workload::

    size  dtype    numpy    fastjac  speed-up    torch    jax    numba  vs best  ×bound

* *speed-up* is ``numpy time / fastjac time`` (above 1: fastjac is faster);
* *vs best* is the time of the fastest other framework over fastjac's;
* *×bound* is fastjac's time over the row's memory-traffic bound: the bytes the row must read
  and write, at the read and write bandwidths measured over the same number of bytes (shown
  from 1 MB of traffic; below that a call's fixed cost dominates).

**Each framework runs in its own process** (a worker: this file run with ``--worker``), one
after the other: a framework's thread pool keeps spinning after a call and would slow
whatever is timed next in the same process. Every worker builds the same inputs from
per-row seeds with NumPy alone, so a worker for PyTorch, JAX or Numba can run in another
Python that does not have fastjac (``--peer-python``); a checksum of the inputs confirms it.
Each time is the median of several repeats of a loop long enough to make the timer's
resolution irrelevant, after a warm-up call (so JAX's and Numba's compile time is
excluded; a workload that asks for it also reports the first call). Every framework's
result is checked against NumPy's in float64 after timing.

Where ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` is set, both are unset for the NumPy
baseline's process only, and the output says so.

The "next to BLAS" section times a training loop's step, a 400×400 NumPy matrix product
followed by a fastjac call, against the sum of the product alone and the fastjac call on
one thread, and the quiet speed-up of the default threads over one thread.

Examples
--------
``fastjac bench``                      the full tables (a few minutes)
``fastjac bench --quick``              a few seconds: small sizes, few repeats
``fastjac bench --peer-python /path/to/venv/bin/python``   peers from another environment
``fastjac bench --json out.json --plot out.png``

This file imports nothing from fastjac at module level: peer workers load it by path in
an interpreter without fastjac. Keep it that way (import fastjac inside functions).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

__all__ = ["WORKLOADS", "Workload", "main_bench", "memory_bandwidth", "run_bench"]

FRAMEWORKS = ("fastjac", "numpy", "torch", "jax", "numba")
PEERS = ("torch", "jax", "numba")
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Traffic below this many bytes gets no ×bound: a call's fixed cost dominates.
BOUND_MIN_BYTES = 1 << 20
# Bandwidth is measured over the row's own bytes (caches included), capped here (beyond
# the last-level cache every size streams from memory alike).
BOUND_MAX_BYTES = 1 << 28


# --------------------------------------------------------------------------------- timing
def _median_time(fn, repeat, min_time, best=False):
    """Median (or, with ``best``, least) seconds per call of ``fn()`` over ``repeat``
    samples of >= ``min_time`` each."""
    fn()  # warm up (first-touch page faults, lazy imports, thread pool start, JIT compile)
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or number >= 1 << 20:
            break
        number *= 2 if dt <= 0 else max(2, min(10, int(min_time / dt * 1.2) + 1))
    samples = [dt / number]
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(min(samples) if best else np.median(samples))


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
    """

    def __init__(self, name, description, inputs, sizes, quick, traffic=None, expr=None, *,
                 fastjac, numpy=None, torch=None, jax=None, numba=None, first_call=False):
        self.name, self.description = name, description
        self.inputs, self.sizes, self.quick, self.traffic = inputs, sizes, quick, traffic
        self.first_call = first_call
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
    def loss_grad(X, y, w, b):
        z = X @ w + b
        r = np_.maximum(z, 0) - y
        c = 2 / X.shape[0] * r * (z > 0)
        return (r * r).mean(), c @ X, c.sum()
    return loss_grad


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
    lg = _np_loss_grad(np_)

    def fit(X, y, w, b):  # what fit does: each epoch's loss recorded too
        losses = np_.empty(NEURON_EPOCHS)
        for e in range(NEURON_EPOCHS):
            losses[e], gw, gb = lg(X, y, w, b)
            w = w - NEURON_LR * gw
            b = b - NEURON_LR * gb
        return w, b
    return fit


def _torch_fit(torch):
    step = _torch_loss_grad(torch)

    def fit(X, y, w, b):
        losses = torch.empty(NEURON_EPOCHS, dtype=w.dtype)
        for e in range(NEURON_EPOCHS):
            losses[e], gw, gb = step(X, y, w, b)
            w, b = w - NEURON_LR * gw, b - NEURON_LR * gb
        return w, b
    return fit


def _jax_fit(jax):
    vgrad = jax.value_and_grad(_jax_loss(jax), argnums=(0, 1))

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
    del x
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


def _bound_bytes(traffic):
    """The working set a row's bandwidth is measured over, or None below BOUND_MIN_BYTES."""
    total = sum(traffic)
    return None if total < BOUND_MIN_BYTES else min(total, BOUND_MAX_BYTES)


# ------------------------------------------------------------------------------ machine info
def cpu_model():
    """The CPU's model name, with its family and model numbers (a virtual machine may show
    only "AMD EPYC"), from /proc/cpuinfo on Linux; else what the platform knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if not key and fields:
                    break  # the first processor's block is enough
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    if fields.get("model name"):
        ids = [f"{k} {fields[k]}" for k in ("cpu family", "model") if fields.get(k)]
        return fields["model name"] + (f" ({', '.join(ids)})" if ids else "")
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


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


def _machine_info():
    import fastjac as fj
    from fastjac._kernels import elementwise as K

    info = {
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastjac": getattr(fj, "__version__", "?"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": _cpus(),
        "openmp": bool(fj.openmp_enabled()),
        "precision": fj.get_precision() if hasattr(fj, "get_precision") else "accurate",
    }
    if hasattr(K, "simd_info"):
        info["simd"] = K.simd_info()
    if hasattr(fj, "thread_info"):  # the caller-runs pool (issue 12)
        info["threads"] = fj.thread_info()
    if hasattr(os, "getloadavg"):
        info["loadavg"] = list(os.getloadavg())
    return info


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


def _run_worker(spec):
    """Time ``spec["rows"]`` for ``spec["framework"]`` in this process; returns a dict."""
    framework = spec["framework"]
    out = {"framework": framework, "python": sys.executable, "numpy": np.__version__,
           "rows": []}
    try:
        mod = _load(framework)
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        out["missing"] = f"{type(exc).__name__}: {exc}"
        return out
    out["version"] = getattr(mod, "__version__", "?")
    if framework == "numba":
        out["threading_layer"] = None
    convert = _converter(framework, mod)
    repeat, min_time = spec["repeat"], spec["min_time"]
    built, reference, timed = {}, {}, []

    def make(name, label, dtype):
        wl, dt = _workload(name), np.dtype(dtype)
        size = _size(label)
        inputs = wl.inputs(size, dt, np.random.default_rng(_seed(name, size, dtype)))
        return wl, dt, inputs, tuple(convert(a) for a in inputs)

    # 1. every row's time. No check in between: NumPy's reference would run BLAS, whose
    # threads keep spinning and would slow the next row's timing.
    for name, label, dtype in spec["rows"]:
        row = {"workload": name, "size": label, "dtype": dtype}
        out["rows"].append(row)
        if _workload(name).impls[framework] is None:
            row["error"] = "no implementation"
            continue
        try:
            wl, dt, inputs, args = make(name, label, dtype)
            row["inputs_crc"] = _inputs_crc(inputs)
            if wl.first_call:
                t0 = time.perf_counter()
                fn = _build(framework, mod, wl)
                fn(*args)
                row["first_call_s"] = time.perf_counter() - t0
            if name not in built:
                built[name] = _build(framework, mod, wl)
            fn = built[name]
            row["time_s"] = _median_time(lambda: fn(*args), repeat, min_time)
            timed.append(row)
        except Exception as exc:  # noqa: BLE001 - a framework failing is reported, not ours
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        inputs = args = fn = None  # the next row's arrays may be large
    # 2. fastjac's extra measurements, still before any BLAS call of ours
    if spec.get("bandwidth_bytes"):
        out["bandwidth"] = {str(nb): memory_bandwidth(nb, repeat=spec["bandwidth_repeat"])
                            for nb in spec["bandwidth_bytes"]}
    if spec.get("next_to_blas"):
        out["next_to_blas"] = _next_to_blas(mod, spec["quick"], repeat, min_time)
    # 3. every timed result against NumPy's in float64, on the same inputs rebuilt
    for row in timed:
        try:
            wl, dt, inputs, args = make(row["workload"], row["size"], row["dtype"])
            if wl.name not in reference:
                reference[wl.name] = wl.impls["numpy"](np)
            want = reference[wl.name](*(_to_float64(a) for a in inputs))
            row["checked"], row["max_error"] = _agree(built[wl.name](*args), want, dt)
        except Exception as exc:  # noqa: BLE001
            row["checked"], row["error"] = False, f"{type(exc).__name__}: {exc}"[:300]
        inputs = args = want = None
    if framework == "numba":
        try:
            out["threading_layer"] = mod.threading_layer()
        except Exception:  # noqa: BLE001 - only known after a parallel call
            pass
    out["blas"] = _openblas_info()
    return out


def _worker_main(argv):
    """``--worker SPEC.json OUT.json``: run a worker and write its JSON."""
    spec_path, out_path = argv[:2]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    res = _run_worker(spec)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(res, f)
    return 0


# The worker runs this file by path (runpy), so an interpreter without fastjac can run it.
_LOADER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


def _launch(spec, python, env, timeout):
    """Run one worker in a fresh process; its JSON, or {"failed": reason}."""
    with tempfile.TemporaryDirectory(prefix="fastjac-bench-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        cmd = [python, "-c", _LOADER, os.path.abspath(__file__), "--worker", spec_path,
               out_path]
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"failed": f"timed out after {timeout:.0f} s"}
        except OSError as exc:
            return {"failed": f"could not start {python}: {exc}"}
        if proc.returncode != 0 or not os.path.exists(out_path):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {"failed": f"exit status {proc.returncode}: {tail[0][:300]}"}
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


# ----------------------------------------------------------------------------------- main
def run_bench(quick=False, repeat=None, workloads=None, dtypes=("float64", "float32"),
              bandwidth=True, frameworks=None, peer_python=None, next_to_blas=None,
              timeout=None, max_size=None, progress=None):
    """Run the benchmark and return its results as a dict (what ``--json`` writes).

    Parameters
    ----------
    quick : bool
        Small sizes and few repeats.
    repeat : int, optional
        Samples per median (default 7, 3 with ``quick``).
    workloads : list of str, optional
        Names of :data:`WORKLOADS` to run (and ``"next-to-blas"``); default all.
    dtypes : tuple of str
    bandwidth : bool
        Measure the memory bandwidth (and each large row's ×bound).
    frameworks : list of str, optional
        Default: all of ``FRAMEWORKS``; a peer that cannot be imported is reported missing.
    peer_python : str, optional
        The Python that runs the PyTorch, JAX and Numba workers (default: this one).
    next_to_blas : bool, optional
        Run the "next to BLAS" section (default: when ``workloads`` is None or names it).
    timeout : float, optional
        Seconds per worker (default 1800, or 300 with ``quick``).
    max_size : int, optional
        Only rows of at most this many elements (n, or N·n).
    progress : callable, optional
        ``progress(message)`` before each worker starts.
    """
    repeat = repeat or (3 if quick else 7)
    min_time = 0.002 if quick else 0.02
    timeout = timeout or (300 if quick else 1800)
    frameworks = list(frameworks or FRAMEWORKS)
    if "fastjac" not in frameworks:
        frameworks.insert(0, "fastjac")
    table = [w for w in WORKLOADS if not workloads or w.name in workloads]
    if next_to_blas is None:
        next_to_blas = not workloads or "next-to-blas" in workloads
    rows = [(w, _label(s), dt) for w in table for s in (w.quick if quick else w.sizes)
            for dt in dtypes if not max_size or _elements(_label(s)) <= max_size]
    res = {"machine": _machine_info(), "frameworks": [], "missing": {}, "quick": bool(quick),
           "repeat": repeat, "ratio": "numpy_s / fastjac_s (above 1: fastjac is faster)",
           "workloads": [], "environment": {}}
    merged, index = {}, {}
    for w, label, dt in rows:
        if w.name not in index:
            index[w.name] = {"name": w.name, "description": w.description, "rows": []}
            res["workloads"].append(index[w.name])
        row = {"size": label, "dtype": dt, "checks": {}}
        index[w.name]["rows"].append(row)
        merged[(w.name, label, dt)] = row
    sizes = set()
    for w, label, dt in rows:
        if w.traffic is not None:
            nb = _bound_bytes(w.traffic(_size(label), np.dtype(dt).itemsize))
            if nb:
                sizes.add(nb)
    if bandwidth:
        sizes.add(10**7 if quick else 10**8)
    unset = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    res["environment"]["openblas_unset_for_numpy"] = unset
    crcs = {}
    for fw in frameworks:
        spec = {"framework": fw, "rows": [[w.name, label, dt] for w, label, dt in rows],
                "repeat": repeat, "min_time": min_time, "quick": bool(quick)}
        env = dict(os.environ)
        python = sys.executable
        if fw == "fastjac":
            spec["bandwidth_bytes"] = sorted(sizes) if bandwidth else []
            spec["bandwidth_repeat"] = 3 if quick else 5
            spec["next_to_blas"] = bool(next_to_blas)
        elif fw == "numpy":
            for k in unset:
                del env[k]
        elif fw in PEERS and peer_python:
            python = peer_python
        if fw == "jax":
            env.setdefault("JAX_PLATFORMS", "cpu")
        if progress:
            progress(f"timing {fw} in its own process ({python})")
        out = _launch(spec, python, env, timeout)
        if "failed" in out or "missing" in out:
            reason = out.get("failed") or out["missing"]
            res["missing"][fw] = f"{reason} (in {python})"
            if fw == "fastjac":
                raise RuntimeError(f"fastjac bench: the fastjac worker failed: {reason}")
            continue
        res["frameworks"].append({"name": fw, "version": out.get("version"),
                                  "python": out["python"], "numpy": out["numpy"],
                                  "blas": out.get("blas")})
        if out.get("threading_layer"):
            res["frameworks"][-1]["threading_layer"] = out["threading_layer"]
        for r in out["rows"]:
            row = merged[(r["workload"], r["size"], r["dtype"])]
            if "time_s" in r:
                row[f"{fw}_s"] = r["time_s"]
                row["checks"][fw] = bool(r.get("checked"))
                if "first_call_s" in r:
                    row[f"{fw}_first_call_s"] = r["first_call_s"]
                crcs.setdefault((r["workload"], r["size"], r["dtype"]), set()).add(
                    r["inputs_crc"])
            elif r.get("error") != "no implementation":
                row[f"{fw}_s"] = None
            if r.get("error") and r["error"] != "no implementation":
                row.setdefault("errors", {})[fw] = r["error"]
        if fw == "fastjac":
            if "bandwidth" in out:
                res["bandwidth_by_bytes"] = out["bandwidth"]
                if bandwidth:
                    res["bandwidth"] = out["bandwidth"][str(10**7 if quick else 10**8)]
            if "next_to_blas" in out:
                res["next_to_blas"] = out["next_to_blas"]
    res["inputs_identical"] = all(len(v) == 1 for v in crcs.values())
    _derive(res, {w.name: w for w in table})
    return res


def _derive(res, table):
    """Ratios, best peers and ×bound of every row, from the merged times."""
    others = [fw for fw in FRAMEWORKS if fw != "fastjac"]
    by_bytes = res.get("bandwidth_by_bytes", {})
    for w in res["workloads"]:
        wl = table[w["name"]]
        for row in w["rows"]:
            fj_s, np_s = row.get("fastjac_s"), row.get("numpy_s")
            row["ratio"] = np_s / fj_s if fj_s and np_s else None
            row["checked"] = bool(row["checks"].get("fastjac"))
            times = {fw: row[f"{fw}_s"] for fw in others if row.get(f"{fw}_s")}
            if times and fj_s:
                best = min(times, key=times.get)
                row["best_other"] = best
                row["vs_best"] = times[best] / fj_s
            if wl.traffic is not None and fj_s:
                r_bytes, w_bytes = wl.traffic(_size(row["size"]),
                                              np.dtype(row["dtype"]).itemsize)
                nb = _bound_bytes((r_bytes, w_bytes))
                bw = by_bytes.get(str(nb)) if nb else None
                if bw:
                    row["traffic_bytes"] = [r_bytes, w_bytes]
                    row["bound_s"] = (r_bytes / (bw["read_GBps"] * 1e9)
                                      + w_bytes / (bw["write_GBps"] * 1e9))
                    row["bound_ratio"] = fj_s / row["bound_s"]
    big = _largest_loss_grad(res)
    if big is not None and "bandwidth" in res:
        res["bandwidth"]["loss_grad"] = big


def _largest_loss_grad(res):
    """{"size", "dtype", "GBps", "fraction"} of the largest loss_grad row with a bound:
    the rate at which it reads X, and the fraction of the read bandwidth measured over the
    same bytes."""
    best = None
    for w in res["workloads"]:
        if w["name"] != "neuron.loss_grad":
            continue
        for r in w["rows"]:
            if "bound_s" not in r:
                continue
            nbytes = r["traffic_bytes"][0]
            if best is None or nbytes > best[0]:
                best = (nbytes, {"size": r["size"], "dtype": r["dtype"],
                                 "GBps": nbytes / r["fastjac_s"] / 1e9,
                                 "fraction_of_read_bandwidth": r["bound_s"] / r["fastjac_s"]})
    return None if best is None else best[1]


def _fmt_time(t):
    if t is None:
        return "n/a"
    if t < 1e-6:
        return f"{t * 1e9:.0f} ns"
    if t < 1e-3:
        return f"{t * 1e6:.2f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _header(res):
    m = res["machine"]
    lines = [
        f"fastjac {m['fastjac']} | numpy {m['numpy']} | Python {m['python']} | "
        f"CPU {m.get('cpu_model', '?')}, {m['cpus']} CPUs | OpenMP "
        f"{'on' if m['openmp'] else 'off'} | precision {m['precision']}"
        + (f" | SIMD {m['simd']['cpu']}" if "simd" in m else ""),
    ]
    fws = []
    for f in res["frameworks"]:
        text = f["name"] + ("" if f["name"] in ("fastjac", "numpy") else f" {f['version']}")
        if f["name"] == "jax":
            text += " (jax.jit)"
        elif f["name"] == "torch":
            text += " (eager)"
        elif f["name"] == "numba":
            text += (" (@njit(parallel=True) loops, threading layer "
                     f"{f.get('threading_layer') or '?'})")
        if f["python"] != sys.executable:
            text += f" [{f['python']}]"
        fws.append(text)
    lines.append("each framework timed in its own process: " + ", ".join(fws))
    lines.append("JAX's and Numba's compile time is excluded (a warm-up call precedes the "
                 "timing); every result is checked against NumPy's in float64")
    for fw, why in res.get("missing", {}).items():
        lines.append(f"not measured: {fw}: {why}")
    if not res.get("inputs_identical", True):
        lines.append("WARNING: the workers built different inputs (different NumPy "
                     "random streams?): compare rows with care")
    unset = res["environment"].get("openblas_unset_for_numpy")
    if unset:
        lines.append(", ".join(f"{k}={v}" for k, v in unset.items())
                     + ": unset for the NumPy baseline process only (it slows a current "
                       "OpenBLAS); every other process keeps it")
    for f in res["frameworks"]:
        if f["name"] in ("numpy", "fastjac") and f.get("blas"):
            lines.append(f"BLAS in the {f['name']} process: " + "; ".join(
                f"{b['api']} {b['version']} kernel {b['kernel']}, {b['threads']} threads"
                for b in f["blas"]))
    lines.append(f"speed-up = numpy / fastjac (median of {res['repeat']} repeats; above 1: "
                 "fastjac is faster); vs best = fastest other framework / fastjac; ×bound = "
                 "fastjac / memory-traffic bound (bytes read and written at the bandwidths "
                 "measured over as many bytes; rows from 1 MB)")
    if "loadavg" in m:
        lines.append(f"load average at start: {m['loadavg'][0]:.2f} (a busy machine makes "
                     "every number noisier)")
    return lines


def format_tables(res):
    """The text tables ``fastjac bench`` prints."""
    lines = _header(res)
    extra = [fw for fw in PEERS if any(f"{fw}_s" in r for w in res["workloads"]
                                       for r in w["rows"])]
    for w in res["workloads"]:
        lines.append("")
        lines.append(f"{w['name']}: {w['description']}")
        head = f"  {'size':>12}  {'dtype':<8} {'numpy':>10} {'fastjac':>10} {'speed-up':>9}"
        for k in extra:
            head += f" {k:>10}"
        head += f" {'vs best':>8} {'×bound':>7}"
        lines.append(head)
        first = []
        for r in w["rows"]:
            ratio = f"{r['ratio']:>8.2f}x" if r.get("ratio") else f"{'n/a':>9}"
            line = (f"  {r['size']!s:>12}  {r['dtype']:<8} {_fmt_time(r.get('numpy_s')):>10} "
                    f"{_fmt_time(r.get('fastjac_s')):>10} {ratio}")
            for k in extra:
                line += f" {_fmt_time(r.get(f'{k}_s')) if f'{k}_s' in r else '-':>10}"
            line += f" {r['vs_best']:>7.2f}x" if "vs_best" in r else f" {'-':>8}"
            line += f" {r['bound_ratio']:>6.2f}x" if "bound_ratio" in r else f" {'-':>7}"
            bad = [fw for fw, ok in r["checks"].items() if not ok]
            if bad:
                line += f"  (RESULT MISMATCH: {', '.join(bad)})"
            if r.get("errors"):
                line += "  (failed: " + "; ".join(f"{k}: {v}" for k, v in
                                                  r["errors"].items()) + ")"
            lines.append(line)
            fc = [(k[:-13], r[k]) for k in r if k.endswith("_first_call_s")]
            if fc:
                first.append(f"{r['size']} {r['dtype']}: " + ", ".join(
                    f"{k} {_fmt_time(v)}" for k, v in fc))
        if first:
            lines.append("  first call (set-up, tracing, compiling and one run): "
                         + "; ".join(first))
    if "bandwidth" in res:
        b = res["bandwidth"]
        lines.append("")
        lines.append(f"memory bandwidth over {b['bytes'] / 1e6:.0f} MB: read "
                     f"{b['read_GBps']:.1f} GB/s (fastjac.sum: {b['fastjac_1thread_GBps']:.1f} "
                     f"on 1 thread, {b['fastjac_all_threads_GBps']:.1f} on all; numpy.sum "
                     f"{b['numpy_GBps']:.1f}), write {b['write_GBps']:.1f} GB/s, triad "
                     f"{b['triad_GBps']:.1f} GB/s")
        if "loss_grad" in b:
            lg = b["loss_grad"]
            lines.append(f"neuron.loss_grad {lg['size']} {lg['dtype']} reads X at "
                         f"{lg['GBps']:.1f} GB/s: {100 * lg['fraction_of_read_bandwidth']:.0f}% "
                         "of the read bandwidth measured over as many bytes")
    if res.get("next_to_blas"):
        lines.append("")
        lines.append(f"next to BLAS: a loop step [NumPy {NEXT_TO_BLAS_PRODUCT}x"
                     f"{NEXT_TO_BLAS_PRODUCT} product; fastjac call], float64, default "
                     "threads; ratio = step / (product alone + fastjac on 1 thread), goal "
                     "≤ 1.10; quiet = 1 thread / default threads with no BLAS call before")
        lines.append(f"  {'call':<18} {'size':>12} {'product':>10} {'1 thread':>10} "
                     f"{'default':>10} {'step':>10} {'ratio':>7} {'quiet':>7}")
        for r in res["next_to_blas"]:
            lines.append(f"  {r['name']:<18} {r['size']!s:>12} {_fmt_time(r['product_s']):>10} "
                         f"{_fmt_time(r['fastjac_1thread_s']):>10} "
                         f"{_fmt_time(r['fastjac_s']):>10} {_fmt_time(r['step_s']):>10} "
                         f"{r['ratio']:>6.2f}x {r['quiet_speedup']:>6.2f}x")
    return "\n".join(lines)


def _elements(size):
    """Elements of a row's size: n, or N·n for an "NxM" neuron batch."""
    return math.prod(int(v) for v in str(size).split("x"))


def _plot(res, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("fastjac bench: --plot needs matplotlib, which is not installed "
              "(pip install 'fastjac[plot]'); the tables and JSON are unaffected.",
              file=sys.stderr)
        return False
    dtypes = [d for d in ("float64", "float32")
              if any(r["dtype"] == d for w in res["workloads"] for r in w["rows"])]
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.8), squeeze=False,
                             sharey=True)
    for ax, dtype in zip(axes[0], dtypes):
        for i, w in enumerate(res["workloads"]):
            pts = sorted((_elements(r["size"]), r["ratio"]) for r in w["rows"]
                         if r["dtype"] == dtype and r.get("ratio"))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^vD<>"[i % 7],
                        ls="-" if i < 10 else "--", label=w["name"])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (n, or N·n for the neuron)")
        ax.set_title(dtype)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("speed-up over NumPy (numpy time / fastjac time)")
    axes[0][-1].legend(fontsize=7, loc="best")
    m = res["machine"]
    fig.suptitle(f"fastjac bench: {m.get('cpu_model', '?')}, {m['cpus']} CPUs, numpy "
                 f"{m['numpy']} (above the line: fastjac is faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main_bench(argv=None):
    """Entry point of ``fastjac bench``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="fastjac bench",
        description="Time fastjac against the code a user of NumPy, PyTorch, JAX or Numba "
                    "would write (one table per workload, speed-up = numpy / fastjac), each "
                    "framework in its own process, with each large row's ratio to its "
                    "memory-traffic bound and the 'next to BLAS' loop step.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: a few seconds")
    parser.add_argument("--repeat", type=int, default=None,
                        help="samples per median (default 7, or 3 with --quick)")
    parser.add_argument("--workload", action="append", default=None, metavar="NAME",
                        help="run only this workload (repeatable), e.g. 'tanh.vjp' or "
                             "'next-to-blas'")
    parser.add_argument("--max-size", type=int, default=None, metavar="N",
                        help="only rows of at most N elements (n, or N·n for the neuron)")
    parser.add_argument("--dtype", action="append", choices=["float64", "float32"],
                        default=None, help="only this dtype (repeatable)")
    parser.add_argument("--framework", action="append", choices=list(FRAMEWORKS),
                        default=None, help="only this framework (repeatable; fastjac always "
                                           "runs)")
    parser.add_argument("--peer-python", metavar="PYTHON", default=None,
                        help="the Python that runs the PyTorch, JAX and Numba workers "
                             "(another environment; it needs NumPy, not fastjac)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="per framework process (default 1800, or 300 with --quick)")
    parser.add_argument("--no-bandwidth", action="store_true",
                        help="skip the memory-bandwidth measurement (and ×bound)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also save a chart of the speed-ups (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.max_size is not None and args.max_size < 1:
        parser.error("--max-size must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.peer_python and not os.path.exists(args.peer_python):
        parser.error(f"--peer-python {args.peer_python}: no such file")
    known = [w.name for w in WORKLOADS] + ["next-to-blas"]
    if args.workload:
        unknown = [w for w in args.workload if w not in known]
        if unknown:
            print(f"fastjac bench: no workload named {', '.join(unknown)} (known: "
                  f"{', '.join(known)})", file=sys.stderr)
            return 2
    try:
        res = run_bench(quick=args.quick, repeat=args.repeat, workloads=args.workload,
                        dtypes=tuple(args.dtype) if args.dtype else ("float64", "float32"),
                        bandwidth=not args.no_bandwidth, frameworks=args.framework,
                        peer_python=args.peer_python, timeout=args.timeout,
                        max_size=args.max_size,
                        progress=lambda msg: print(f"fastjac bench: {msg}", file=sys.stderr,
                                                   flush=True))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(format_tables(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2, ensure_ascii=False)
    if args.plot and not _plot(res, args.plot):
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    if "--worker" in sys.argv:
        sys.exit(_worker_main(sys.argv[sys.argv.index("--worker") + 1:]))
    sys.exit(main_bench())
