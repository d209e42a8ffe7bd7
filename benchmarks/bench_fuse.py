"""Benchmarks of ``fj.fuse`` against the NumPy code a user would write.

Run: ``python -m pytest benchmarks/bench_fuse.py --benchmark-enable -q
--benchmark-group-by=group --benchmark-sort=name`` (NumPy baseline processes: unset
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE where they are set).

Workload (issue 14): the VJP of y = exp(w)·sin(x) + w/x (paper §4.2 general form, §4.5.2
total derivative: w and x each reach y along two paths), n = 10, 1e3, 1e6, float64 and
float32. Each group holds the fused VJP (1 thread, and 2 threads at 1e6), the same VJP
composed from the existing ops (elementwise(mul, exp, sin).vjp + div.vjp + two adds:
what fastjac offered before fuse), and the NumPy baseline, on the same inputs; results are
checked against NumPy after timing (a benchmark asserts nothing about speed). A last
group times the first call of a new fused function: trace, compile and one call at n = 10.
"""

import numpy as np
import pytest

import fastjac as fj

SIZES = [10, 1000, 1_000_000]
DTYPES = ["float64", "float32"]
F = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
EXP_SIN = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)


def inputs(n, dtype):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(dtype)
    x = (rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)).astype(dtype)
    gy = rng.standard_normal(n).astype(dtype)
    return w, x, gy


def numpy_vjp(w, x, gy):
    """The VJP as a NumPy user writes it (exp(w) shared by hand)."""
    ew = np.exp(w)
    gw = gy * ew * np.sin(x) + gy / x
    gx = gy * ew * np.cos(x) - gy * w / (x * x)
    return gw, gx


def composed_vjp(w, x, gy, n_threads):
    a, b = EXP_SIN.vjp(w, x, gy, n_threads=n_threads)
    c, d = fj.div.vjp(w, x, gy, n_threads=n_threads)
    return fj.add(a, c, n_threads=n_threads), fj.add(b, d, n_threads=n_threads)


def impls(n):
    big = n >= 100_000
    return (["fuse-1t"] + (["fuse-2t"] if big else []) + ["composed-1t", "numpy"])


CASES = [pytest.param(n, dt, impl, id=f"{n}-{dt}-{impl}")
         for n in SIZES for dt in DTYPES for impl in impls(n)]


def check(got, want, dtype):
    rtol = 1e-12 if dtype == "float64" else 3e-6
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=np.float64)
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, rtol=rtol,
                                   atol=rtol * max(1.0, float(np.max(np.abs(w)))))


@pytest.mark.parametrize("n,dtype,impl", CASES)
def test_fuse_vjp(benchmark, n, dtype, impl):
    w, x, gy = inputs(n, dtype)
    benchmark.group = f"exp(w)*sin(x)+w/x .vjp n={n} {dtype}"
    if impl == "numpy":
        res = benchmark(numpy_vjp, w, x, gy)
    elif impl == "composed-1t":
        res = benchmark(composed_vjp, w, x, gy, 1)
    else:
        res = benchmark(F.vjp, w, x, gy, n_threads=2 if impl == "fuse-2t" else 1)
    check(res, numpy_vjp(w, x, gy), dtype)


def test_fuse_first_call(benchmark):
    """Trace + compile + one VJP at n = 10 of a function never seen before."""
    w, x, gy = inputs(10, "float64")
    benchmark.group = "fuse first call (trace + compile + call, n=10)"

    def first():
        f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
        return f.vjp(w, x, gy)

    check(benchmark(first), numpy_vjp(w, x, gy), "float64")
