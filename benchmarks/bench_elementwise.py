"""Benchmarks of fastjac's element-wise kernels against the NumPy code a user would write.

Run: ``python -m pytest benchmarks/bench_elementwise.py --benchmark-enable -q``
(add ``--benchmark-group-by=group --benchmark-sort=name`` for one table per case,
``-k "tanh and 1000000"`` to select).

Every ``group`` holds the fastjac cases (1 and 2 threads where the size makes threads
matter) and their NumPy baseline, on the same inputs, so the table compares like with
like. Inputs are built outside the timed call; every result is checked against the
baseline after timing (never a time: a benchmark asserts nothing about speed).

Workloads: unary VJPs (exp, tanh, relu, sigmoid), binary VJPs (mul, div, maximum), the
fused exp(w) ⊗ sin(x) VJP (paper §4.2), a chain sin(x²) (§4.5), scalar expansion
x z (§4.3), and the reductions sum and dot (§4.4); n = 10, 1e3, 1e6 (1e7 for a few);
float64 and float32.
"""

import functools

import numpy as np
import pytest

import fastjac as fj

SIZES = [10, 1000, 1_000_000]
BIG = 10_000_000
DTYPES = ["float64", "float32"]
FUSED = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
SIN_SQ = fj.chain(fj.sin, fj.square)


@functools.lru_cache(maxsize=2)
def arrays(n, dtype, k=3, positive_last=False):
    """k arrays of n standard normals (the last one >= 0.5 with positive_last)."""
    rng = np.random.default_rng(n + k)
    out = [rng.standard_normal(n).astype(dtype) for _ in range(k)]
    if positive_last:
        out[-1] = (np.abs(out[-1]) + 0.5).astype(dtype)
    return out


def impls(n):
    """fastjac with 1 thread (and 2 where n is large enough for threads) and NumPy."""
    return ["fastjac-1t", "fastjac-2t", "numpy"] if n >= 100_000 else ["fastjac-1t", "numpy"]


def cases(sizes, dtypes=DTYPES):
    return [pytest.param(n, dt, impl, id=f"{n}-{dt}-{impl}")
            for n in sizes for dt in dtypes for impl in impls(n)]


def check(got, want, dtype):
    rtol = 1e-12 if dtype == "float64" else 2e-6
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=np.float64)
        scale = float(np.max(np.abs(w))) if w.size else 1.0
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, rtol=rtol,
                                   atol=rtol * max(1.0, scale))


def run(benchmark, group, impl, fj_call, np_call, dtype):
    benchmark.group = group
    if impl == "numpy":
        result = benchmark(np_call)
    else:
        result = benchmark(fj_call, 1 if impl == "fastjac-1t" else 2)
    check(result, np_call(), dtype)


# ------------------------------------------------------------------------------ unary VJP
def np_tanh_vjp(x, g):
    t = np.tanh(x)
    return g * (1 - t * t)


def np_sigmoid_vjp(x, g):
    s = 1 / (1 + np.exp(-x))
    return g * s * (1 - s)


UNARY = {
    "exp": (fj.exp, lambda x, g: g * np.exp(x)),
    "tanh": (fj.tanh, np_tanh_vjp),
    "relu": (fj.relu, lambda x, g: g * (x > 0)),
    "sigmoid": (fj.sigmoid, np_sigmoid_vjp),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("n,dtype,impl", cases(SIZES))
def test_unary_vjp(benchmark, name, n, dtype, impl):
    op, np_vjp = UNARY[name]
    x, gy = arrays(n, dtype, 2)
    run(benchmark, f"{name}.vjp n={n} {dtype}", impl,
        lambda nt: op.vjp(x, gy, n_threads=nt), lambda: np_vjp(x, gy), dtype)


@pytest.mark.parametrize("name", ["exp", "tanh"])
@pytest.mark.parametrize("n,dtype,impl", cases([BIG], ["float64"]))
def test_unary_vjp_big(benchmark, name, n, dtype, impl):
    test_unary_vjp(benchmark, name, n, dtype, impl)


# ----------------------------------------------------------------------------- binary VJP
BINARY = {
    "mul": (fj.mul, lambda w, x, g: (g * x, g * w)),
    "div": (fj.div, lambda w, x, g: (g / x, -g * w / (x * x))),
    "maximum": (fj.maximum, lambda w, x, g: (g * (w >= x), g * (w < x))),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("n,dtype,impl", cases(SIZES))
def test_binary_vjp(benchmark, name, n, dtype, impl):
    op, np_vjp = BINARY[name]
    w, x, gy = arrays(n, dtype, 3, positive_last=False)
    if name == "div":
        x = np.abs(x) + np.asarray(0.5, dtype)
    run(benchmark, f"{name}.vjp n={n} {dtype}", impl,
        lambda nt: op.vjp(w, x, gy, n_threads=nt), lambda: np_vjp(w, x, gy), dtype)


@pytest.mark.parametrize("n,dtype,impl", cases([1_000_000], ["float64"]))
def test_mul_vjp_into_out(benchmark, n, dtype, impl):
    """A training loop's form: preallocated outputs on both sides."""
    w, x, gy = arrays(n, dtype, 3)
    o1, o2 = np.empty_like(w), np.empty_like(w)
    run(benchmark, f"mul.vjp out= n={n} {dtype}", impl,
        lambda nt: fj.mul.vjp(w, x, gy, out=(o1, o2), n_threads=nt),
        lambda: (np.multiply(gy, x, out=o1), np.multiply(gy, w, out=o2)), dtype)


# -------------------------------------------------------------------- fused and chained
def np_fused_vjp(w, x, g):
    e = np.exp(w)
    return g * e * np.sin(x), g * e * np.cos(x)


@pytest.mark.parametrize("n,dtype,impl", cases(SIZES + [BIG], DTYPES))
def test_fused_exp_sin_vjp(benchmark, n, dtype, impl):
    if n == BIG and dtype == "float32":
        pytest.skip("1e7 in float64 only")
    w, x, gy = arrays(n, dtype, 3)
    run(benchmark, f"exp(w)*sin(x).vjp n={n} {dtype}", impl,
        lambda nt: FUSED.vjp(w, x, gy, n_threads=nt), lambda: np_fused_vjp(w, x, gy), dtype)


@pytest.mark.parametrize("n,dtype,impl", cases([1000, 1_000_000]))
def test_chain_sin_square_vjp(benchmark, n, dtype, impl):
    x, gy = arrays(n, dtype, 2)
    run(benchmark, f"sin(x^2).vjp n={n} {dtype}", impl,
        lambda nt: SIN_SQ.vjp(x, gy, n_threads=nt), lambda: gy * 2 * x * np.cos(x * x), dtype)


# ------------------------------------------------------------------- scalar expansion
@pytest.mark.parametrize("n,dtype,impl", cases(SIZES))
def test_scalar_expansion_mul_vjp(benchmark, n, dtype, impl):
    x, gy = arrays(n, dtype, 2)
    z = 2.5
    benchmark.group = f"mul.vjp(x, z) n={n} {dtype}"
    if impl == "numpy":
        gx, gz = benchmark(lambda: (gy * z, np.sum(gy * x)))
    else:
        gx, gz = benchmark(fj.mul.vjp, x, z, gy, n_threads=1 if impl == "fastjac-1t" else 2)
    check(gx, gy * np.asarray(z, dtype), dtype)
    exact = float(np.dot(gy.astype(np.float64), x.astype(np.float64)))
    assert abs(float(gz) - exact) <= (1e-9 if dtype == "float64" else 1e-3) * (
        1 + float(np.abs(gy.astype(np.float64) * x).sum()))


# ------------------------------------------------------------------------ reductions
@pytest.mark.parametrize("n,dtype,impl", cases([1000, 1_000_000, BIG], ["float64", "float32"]))
def test_sum(benchmark, n, dtype, impl):
    (x,) = arrays(n, dtype, 1)
    benchmark.group = f"sum n={n} {dtype}"
    if impl == "numpy":
        s = benchmark(np.sum, x)
    else:
        s = benchmark(fj.sum, x, n_threads=1 if impl == "fastjac-1t" else 2)
    exact = float(np.sum(x, dtype=np.float64))
    assert abs(float(s) - exact) <= (1e-9 if dtype == "float64" else 1e-4) * (1 + float(np.abs(x).sum()))


@pytest.mark.parametrize("n,dtype,impl", cases([1000, 1_000_000, BIG], ["float64", "float32"]))
def test_dot(benchmark, n, dtype, impl):
    w, x = arrays(n, dtype, 2)
    benchmark.group = f"dot n={n} {dtype}"
    if impl == "numpy":
        s = benchmark(np.dot, w, x)
    else:
        s = benchmark(fj.dot, w, x, n_threads=1 if impl == "fastjac-1t" else 2)
    exact = float(np.dot(w.astype(np.float64), x.astype(np.float64)))
    assert abs(float(s) - exact) <= (1e-9 if dtype == "float64" else 1e-4) * (
        1 + float(np.abs(w.astype(np.float64) * x).sum()))
