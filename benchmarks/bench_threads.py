"""fastjac's thread pool next to BLAS (issue 12): the goals measured as pytest-benchmark groups.

Run: ``python -m pytest benchmarks/bench_threads.py --benchmark-enable -q``
(``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are removed from the environment of this
process at import, so that NumPy's product runs as a user's would).

Each group is one workload, float64, with five cases:

* ``numpy_product``: the 400 x 400 NumPy matrix product alone (OpenBLAS, its own threads);
* ``fastjac_1thread`` and ``fastjac_default``: the fastjac call alone with ``n_threads=1``
  and with the default ``None`` (quiet speed-up goal: 1thread / default >= 1.6 on 2 idle
  cores);
* ``step_default`` and ``step_1thread``: a training-loop step, the product then the fastjac
  call (goal: step_default / (numpy_product + fastjac_1thread) <= 1.10, that is, running
  next to BLAS's threads costs at most 10% over the serial sum).

The ``pool, short calls`` groups time the memory-bound calls at n = 1e6 (sum, dot, relu and
mul VJPs, 50-500 us each) on 1 thread and by default, with NumPy's call as baseline: what
a second thread gives a short call (session 6: chunked claims and a briefly polling helper).

The ``micro`` groups hold the microsecond calls (``loss_grad`` at (32, 8), ``exp.vjp`` at
n = 10) with their NumPy baselines: the pool must not slow them down (they never reach it).
On a shared machine take ratios within one run, and several runs.
"""

import os

os.environ.pop("OPENBLAS_CORETYPE", None)  # a NumPy baseline process (see common rules)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastjac as fj  # noqa: E402

RNG = np.random.default_rng(12)
A = RNG.standard_normal((400, 400))
B = RNG.standard_normal((400, 400))
X = RNG.standard_normal((100_000, 100))
W = RNG.standard_normal(100) / 10
Y = RNG.standard_normal(100_000)
T = RNG.standard_normal(2_000_000)
G = RNG.standard_normal(2_000_000)

WORKLOADS = {
    "loss_grad_1e5x100": lambda nt: fj.neuron.loss_grad(X, Y, W, 0.1, n_threads=nt),
    "tanh_vjp_2e6": lambda nt: fj.tanh.vjp(T, G, n_threads=nt),
}
CASES = ["numpy_product", "fastjac_1thread", "fastjac_default", "step_default",
         "step_1thread"]


def _case(name, call):
    if name == "numpy_product":
        return lambda: A @ B
    if name == "fastjac_1thread":
        return lambda: call(1)
    if name == "fastjac_default":
        return lambda: call(None)

    nt = None if name == "step_default" else 1

    def step():
        A @ B
        return call(nt)

    return step


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_next_to_blas(benchmark, workload, case):
    benchmark.group = f"next to BLAS: {workload} float64"
    call = WORKLOADS[workload]
    res = benchmark(_case(case, call))
    if case != "numpy_product":
        ref = call(1)
        got = res if case.startswith("fastjac") else call(None)
        for u, v in zip(np.atleast_1d(ref) if not isinstance(ref, tuple) else ref,
                        np.atleast_1d(got) if not isinstance(got, tuple) else got):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()


XS = RNG.standard_normal((32, 8))
WS = RNG.standard_normal(8)
YS = RNG.standard_normal(32)
X10 = RNG.standard_normal(10)
G10 = RNG.standard_normal(10)


def _numpy_loss_grad(X, y, w, b):
    N = X.shape[0]
    z = X @ w + b
    r = np.maximum(z, 0) - y
    c = 2 / N * r * (z > 0)
    return (r * r).mean(), c @ X, c.sum()


@pytest.mark.parametrize("impl", ["fastjac", "numpy"])
def test_micro_loss_grad(benchmark, impl):
    benchmark.group = "micro: loss_grad (32, 8) float64"
    f = fj.neuron.loss_grad if impl == "fastjac" else _numpy_loss_grad
    C, gw, gb = benchmark(f, XS, YS, WS, 0.1)
    Cn, gwn, gbn = _numpy_loss_grad(XS, YS, WS, 0.1)
    np.testing.assert_allclose(gw, gwn, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("impl", ["fastjac", "numpy"])
def test_micro_exp_vjp(benchmark, impl):
    benchmark.group = "micro: exp.vjp n=10 float64"
    f = fj.exp.vjp if impl == "fastjac" else (lambda x, g: g * np.exp(x))
    r = benchmark(f, X10, G10)
    np.testing.assert_allclose(r, G10 * np.exp(X10), rtol=1e-15)


# The pool on short memory-bound calls (session 6): n = 1e6, 50-500 us per call, where a
# helper that wakes late or a claim word shared per block cost the whole second thread.
# Goal: fastjac_default clearly under fastjac_1thread on 2 idle cores (same bits).
N6 = 1_000_000
P6 = {dt: tuple(RNG.standard_normal(N6).astype(dt) for _ in range(3))
      for dt in ("float64", "float32")}
POOL_CALLS = {
    "sum": (lambda w, x, g, nt: fj.sum(x, n_threads=nt), lambda w, x, g: x.sum()),
    "dot": (lambda w, x, g, nt: fj.dot(w, x, n_threads=nt), lambda w, x, g: np.dot(w, x)),
    "relu_vjp": (lambda w, x, g, nt: fj.relu.vjp(x, g, n_threads=nt),
                 lambda w, x, g: g * (x > 0)),
    "mul_vjp": (lambda w, x, g, nt: fj.mul.vjp(w, x, g, n_threads=nt),
                lambda w, x, g: (g * x, g * w)),
}


@pytest.mark.parametrize("case", ["numpy", "fastjac_1thread", "fastjac_default"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", list(POOL_CALLS))
def test_pool_short_calls(benchmark, op, dtype, case):
    benchmark.group = f"pool, short calls: {op} n=1e6 {dtype}"
    fjc, npc = POOL_CALLS[op]
    w, x, g = P6[dtype]
    if case == "numpy":
        benchmark(npc, w, x, g)
        return
    res = benchmark(fjc, w, x, g, 1 if case == "fastjac_1thread" else None)
    ref = fjc(w, x, g, 1)
    for u, v in zip(res if isinstance(res, tuple) else (res,),
                    ref if isinstance(ref, tuple) else (ref,)):
        assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
