"""fastjac next to BLAS: a training loop's step [NumPy 400x400 product; fastjac call].

Run: ``python -m pytest benchmarks/bench_next_to_blas.py --benchmark-enable -q
--benchmark-group-by=group``

OpenBLAS's worker threads keep spinning for a while after a product; a thread team that
starts right after one waits for a core. Each group holds, on the same inputs (float64):

* ``step-default``: the product, then the fastjac call with the default threads (what a
  training loop does);
* ``product``: the product alone;
* ``fastjac-1thread`` and ``fastjac-default``: the fastjac call alone (quiet: no product
  runs in between);
* ``numpy-step``: the product, then the NumPy code a user would write for the same call
  (the baseline).

Issue 12's goal: ``step-default`` <= 1.10 x (``product`` + ``fastjac-1thread``); quiet
speed-up ``fastjac-1thread`` / ``fastjac-default`` >= 1.6 on 2 idle cores. ``fastjac bench``
reports both ratios from one run (its "next to BLAS" section); the workloads are the
entries of ``fastjac._bench_worker.NEXT_TO_BLAS``, with the inputs of ``fastjac bench``.
"""

import functools

import numpy as np
import pytest

import fastjac as fj
from fastjac._bench_worker import NEXT_TO_BLAS, NEXT_TO_BLAS_PRODUCT, WORKLOADS, _seed

IMPLS = ["step-default", "product", "fastjac-1thread", "fastjac-default", "numpy-step"]


@functools.lru_cache(maxsize=2)
def setup(name):
    """(fastjac call taking n_threads, NumPy call, A, B, size) for a NEXT_TO_BLAS entry."""
    _, size, _, call = next(e for e in NEXT_TO_BLAS if e[0] == name)
    wl = next(w for w in WORKLOADS if w.name == name)
    dt = np.dtype(np.float64)
    inputs = wl.inputs(size, dt, np.random.default_rng(_seed(name, size, "float64")))
    rng = np.random.default_rng(12)
    A, B = (rng.standard_normal((NEXT_TO_BLAS_PRODUCT, NEXT_TO_BLAS_PRODUCT))
            for _ in range(2))
    numpy_call = wl.impls["numpy"](np)
    return (lambda nt: call(fj, *inputs, n_threads=nt), lambda: numpy_call(*inputs), A, B,
            size)


@pytest.mark.parametrize("name", [e[0] for e in NEXT_TO_BLAS])
@pytest.mark.parametrize("impl", IMPLS)
def test_next_to_blas(benchmark, name, impl):
    call, numpy_call, A, B, size = setup(name)
    label = size if isinstance(size, int) else "x".join(map(str, size))
    benchmark.group = f"next to BLAS: {name} {label} float64"

    def step():
        A @ B
        return call(None)

    def numpy_step():
        A @ B
        return numpy_call()

    run = {"step-default": step, "product": lambda: A @ B,
           "fastjac-1thread": lambda: call(1), "fastjac-default": lambda: call(None),
           "numpy-step": numpy_step}[impl]
    result = benchmark(run)
    if impl != "product":  # every fastjac result against NumPy's, after timing
        want = numpy_call()
        got = result if isinstance(result, tuple) else (result,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            w = np.asarray(w, dtype=np.float64)
            np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, rtol=1e-9,
                                       atol=1e-9 * max(1.0, float(np.max(np.abs(w)))))
