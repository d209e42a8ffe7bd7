"""Reliability (issue 6): regression tests for every bug the fuzzing found, build checks,
thread safety, memory stability, inputs never written, and the crash-isolated fuzz run.

The property-based fuzz suite lives in ``tests/fuzz/``; it is *not* collected by the main
run (see ``tests/conftest.py``) but run once, in a subprocess, by
``test_fuzz_suite_in_a_subprocess`` below, so that a segfault in a kernel fails that test
instead of killing pytest.
"""

import gc
import hashlib
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastjac as fj
from fastjac import _validate as V

ROOT = Path(__file__).resolve().parent.parent


def _unaligned(values, dtype=np.float64):
    """A C-contiguous but misaligned array: a view of a byte buffer at offset 1."""
    values = np.asarray(values, dtype=dtype)
    raw = np.zeros(values.nbytes + 1, dtype=np.uint8)
    a = np.frombuffer(raw.data, dtype=dtype, count=values.size, offset=1)
    a[...] = values.reshape(-1)
    assert not a.flags.aligned and a.flags.c_contiguous
    return a.reshape(values.shape)


# ------------------------------------------------------------------ regression: found bugs
@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("dtype", ["f8", "f4"])
def test_non_native_byte_order_is_read_correctly(order, dtype):
    # Bug: result_dtype returned '>f8' unchanged, and the kernels (and their C fast paths)
    # checked only the type number, so byte-swapped memory was read as native: fj.exp of a
    # big-endian [1.0] returned garbage silently.
    x = np.array([0.5, 1.0, 2.0], dtype=order + dtype)
    ref = np.exp(x.astype(np.float64))
    tol = dict(rtol=1e-6) if dtype == "f4" else dict(rtol=1e-15)
    np.testing.assert_allclose(fj.exp(x), ref, **tol)
    np.testing.assert_allclose(fj.exp.vjp(x, x), ref * x.astype(np.float64), **tol)
    np.testing.assert_allclose(fj.mul(x, x), x.astype(np.float64) ** 2, **tol)
    gw, gx = fj.mul.vjp(x, x, x)
    np.testing.assert_allclose(gw, x.astype(np.float64) ** 2, **tol)
    assert fj.sum(x) == pytest.approx(3.5)
    assert fj.dot(x, x) == pytest.approx(5.25)
    assert fj.exp(x).dtype.isnative
    out = np.empty(3, dtype=order + dtype)  # a byte-swapped out is the wrong dtype
    if not out.dtype.isnative:
        with pytest.raises(TypeError, match="out"):
            fj.exp(x.astype(np.float64 if dtype == "f8" else np.float32), out=out)


def test_kernel_refuses_byte_swapped_buffers():
    from fastjac._kernels import elementwise as K

    x = np.ones(3, dtype=">f8")
    with pytest.raises(ValueError, match="byte order"):
        K.unary(bytes([K.UNARY_CODES["exp"]]), x, y_out=np.empty(3), n_threads=1)


def test_misaligned_inputs_and_outputs_are_accepted():
    # Bug: a C-contiguous but misaligned view (np.frombuffer at an odd offset) was passed
    # uncopied and the kernel refused it with "x is not aligned" (or "a is not aligned" for
    # fj.sum, naming an argument the caller never passed).
    v = np.linspace(-2, 2, 10)
    u = _unaligned(v)
    np.testing.assert_allclose(fj.exp(u), np.exp(v), rtol=1e-15)
    np.testing.assert_allclose(fj.mul(u, u), v * v, rtol=1e-15)
    np.testing.assert_allclose(fj.mul.vjp(u, 2.0, u)[1], np.sum(v * v), rtol=1e-14)
    assert fj.sum(u) == pytest.approx(v.sum(), abs=1e-12)
    assert fj.dot(u, u) == pytest.approx(v @ v)
    out = _unaligned(np.zeros(10))
    res = fj.exp(v, out=out)
    assert res is out
    np.testing.assert_allclose(out, np.exp(v), rtol=1e-15)
    out_w, out_x = _unaligned(np.zeros(10)), _unaligned(np.zeros(10))
    fj.mul.vjp(v, v, np.ones(10), out=(out_w, out_x))
    np.testing.assert_allclose(out_w, v, rtol=1e-15)


def test_python_int_beyond_int64_is_a_number():
    # Bug: np.asarray(10**20) has dtype object, so fj.mul(x, 10**20) raised "x has dtype
    # object" although NumPy computes float32_array * 10**20 happily.
    x = np.ones(3, dtype=np.float32)
    np.testing.assert_array_equal(fj.mul(x, 10**20), x * np.float32(1e20))
    assert fj.exp(-(10**30)) == 0.0
    with pytest.raises(ValueError, match="x is an integer too large"):
        fj.exp(10**400)
    with pytest.raises(ValueError, match="x is an integer too large"):
        fj.mul(x, 10**400)


def test_huge_n_threads_does_not_crash():
    # Bug: n_threads=100_000 was passed to OpenMP as is; thread creation failed and the
    # process died with SIGSEGV. n_threads=10**10 raised OverflowError. It is now clamped
    # (results do not depend on the thread count anyway).
    x = np.linspace(-1, 1, 70_000)
    code = (
        "import numpy as np, fastjac as fj\n"
        "x = np.linspace(-1, 1, 70_000)\n"
        "r = fj.exp(x, n_threads=100_000)\n"
        "assert np.array_equal(r, fj.exp(x, n_threads=1))\n"
        "assert np.array_equal(fj.mul.vjp(x, 2.0, x, n_threads=10**10)[0], 2.0 * x)\n"
        "assert fj.sum(x, n_threads=10**6) == fj.sum(x, n_threads=1)\n"
        # The C fast paths resolve n_threads themselves: 60_000 must not reach OpenMP.
        "o = np.empty_like(x)\n"
        "assert fj.exp(x, out=o, n_threads=60_000) is o\n"
        "assert np.array_equal(fj.mul(x, x, n_threads=60_000), fj.mul(x, x, n_threads=1))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert V.n_threads(10**10, 1, 1) == fj.thread_info()["max_threads"]
    assert fj.exp(x, n_threads=10**10).tobytes() == fj.exp(x, n_threads=1).tobytes()


def test_masked_arrays_are_refused_not_unmasked():
    # Bug: np.asarray drops the mask, so masked entries were computed as if valid.
    m = np.ma.array([1.0, 2.0], mask=[False, True])
    for call in (lambda: fj.exp(m), lambda: fj.mul(m, 2.0), lambda: fj.sum(m),
                 lambda: fj.exp.vjp(np.ones(2), m)):
        with pytest.raises(TypeError, match="MaskedArray"):
            call()


@pytest.mark.parametrize("method", ["jvp", "vjp", "value_and_vjp"])
def test_unary_none_tangent_is_an_error(method):
    # Bug: fj.exp.jvp(x, None) returned exp'(x) (a tangent of ones) while fj.mul.jvp reads a
    # None tangent as zero: a silent disagreement. A unary tangent/cotangent is required.
    with pytest.raises(TypeError, match="(dx|gy) must be an array"):
        getattr(fj.exp, method)(np.ones(3), None)


def test_out_pair_of_nones_gives_the_same_results_as_out_none():
    # Bug: out=(None, None) returned 0-d arrays for scalar inputs where out=None returns
    # NumPy scalars (NumPy ufuncs return scalars for out=(None,)).
    for res in (fj.exp.value_and_vjp(0.5, 2.0, out=(None, None)),
                fj.mul.vjp(0.5, 2.0, 1.0, out=(None, None)),
                fj.mul.sum_grad(0.5, 2.0, out=(None, None))):
        assert all(isinstance(r, np.float64) for r in res), res
    o = np.empty(())
    gw, gx = fj.mul.vjp(0.5, 2.0, 1.0, out=(o, None))
    assert gw is o and float(o) == 2.0 and isinstance(gx, np.float64)


def test_dot_jvp_result_dtype_includes_the_tangents():
    # Bug: dot.jvp took its dtype from w and x only, so a float64 tangent with float32
    # primals was rounded to float32 (mul.jvp and sum.jvp include the tangents).
    w = np.ones(3, dtype=np.float32)
    dw = np.full(3, 1 + 2.0**-40)
    res = fj.dot.jvp(w, w, dw, None)
    assert res.dtype == np.float64 and res == 3 * (1 + 2.0**-40)
    assert fj.dot.jvp(w, w, w, w).dtype == np.float32


# ------------------------------------------------------------------ builds
def test_threads_flag_matches_the_build():
    """CI sets FASTJAC_EXPECT_THREADS=0 for the serial build (and 1 for the normal one)."""
    expect = os.environ.get("FASTJAC_EXPECT_THREADS")
    if expect is None:
        pytest.skip("FASTJAC_EXPECT_THREADS not set (CI sets it for each build)")
    threads = expect.strip() not in ("0", "false", "no")
    assert fj.thread_info()["threads_enabled"] is threads
    with pytest.warns(DeprecationWarning, match="thread_info"):
        assert fj.openmp_enabled() is threads


# ------------------------------------------------------------------ inputs never written
def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    return h.hexdigest()


def _every_call(w, x, t):
    """Every public element-wise entry point on (w, x) with a tangent/cotangent t."""
    fused = fj.elementwise(fj.div, f=fj.exp, g=fj.chain(fj.sigmoid, fj.square))
    chained = fj.chain(fj.tanh, fj.log, fj.abs)
    calls = []
    for u in (*fj.UNARY.values(), chained):
        calls += [lambda u=u: u(x), lambda u=u: u.derivative(x), lambda u=u: u.jacobian(x),
                  lambda u=u: u.jvp(x, t), lambda u=u: u.vjp(x, t),
                  lambda u=u: u.value_and_vjp(x, t), lambda u=u: u.sum_grad(x)]
    for b in (*fj.BINARY.values(), fused):
        for ww in (w, 1.5):
            calls += [lambda b=b, ww=ww: b(ww, x),
                      lambda b=b, ww=ww: b.jvp(ww, x, ww, t),
                      lambda b=b, ww=ww: b.vjp(ww, x, t),
                      lambda b=b, ww=ww: b.sum_grad(ww, x),
                      lambda b=b, ww=ww: b.jacobian(ww, x)]
    calls += [lambda: fj.dot(w, x), lambda: fj.dot.grad(w, x), lambda: fj.dot.jvp(w, x, t, t),
              lambda: fj.dot.vjp(w, x, 2.0), lambda: fj.dot.jacobian(w, x),
              lambda: fj.sum(x), lambda: fj.sum.jvp(x, t), lambda: fj.sum.vjp(x, 2.0),
              lambda: fj.sum.grad(x)]
    try:
        from fastjac import neuron
    except ImportError:  # pragma: no cover - before the neuron module is merged
        return calls
    n = x.shape[0]
    X = np.stack([w, x, t], axis=1) if n else np.zeros((0, 3), dtype=x.dtype)
    v = x[:3] if n >= 3 else np.ones(3, dtype=x.dtype)
    calls += [lambda: neuron.activation(X, v, 0.5), lambda: neuron.activation_jacobian(X, v, 0.5),
              lambda: neuron.loss_grad_sums(X, w, v, 0.5)]
    if n:
        calls += [lambda: neuron.loss(X, w, v, 0.5),
                  lambda: neuron.loss_grad(X, w, v, 0.5, wrt=("w", "b", "X")),
                  lambda: neuron.fit(X, w, lr=1e-3, epochs=2, batch_size=7, w0=v)]
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
@pytest.mark.parametrize("n", [0, 1, 300, 4097])
def test_inputs_are_never_written(n, dtype):
    rng = np.random.default_rng(n)
    w, x, t = (rng.uniform(-2, 2, n).astype(dtype) for _ in range(3))
    before = _digest(w, x, t)
    for call in _every_call(w, x, t):
        with np.errstate(all="ignore"):
            call()
        assert _digest(w, x, t) == before
    # Read-only inputs are accepted as they are (a write would raise inside NumPy).
    for a in (w, x, t):
        a.flags.writeable = False
    with np.errstate(all="ignore"):
        for call in _every_call(w, x, t):
            call()


# ------------------------------------------------------------------ thread safety
def _kernel_jobs(n):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 3, n)
    w = rng.uniform(-3, 3, n)
    g = rng.standard_normal(n)
    h = fj.chain(fj.sin, fj.square, fj.sigmoid)
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.tanh)
    return [
        ("exp", lambda nt: fj.exp(x, n_threads=nt)),
        ("log.vjp", lambda nt: fj.log.vjp(x, g, n_threads=nt)),
        ("chain.value_and_vjp", lambda nt: np.concatenate(h.value_and_vjp(x, g, n_threads=nt))),
        ("div.vjp", lambda nt: np.concatenate(fj.div.vjp(w, x, g, n_threads=nt))),
        ("fused.jvp", lambda nt: op.jvp(w, x, g, x, n_threads=nt)),
        ("mul.scalar_vjp", lambda nt: np.array(fj.mul.vjp(w, 3.0, g, n_threads=nt)[1])),
        ("maximum.sum_grad", lambda nt: np.concatenate(fj.maximum.sum_grad(w, x, n_threads=nt))),
        ("sum", lambda nt: np.array(fj.sum(g, n_threads=nt))),
        ("dot", lambda nt: np.array(fj.dot(w, g, n_threads=nt))),
    ] + _neuron_jobs(n, rng)


def _neuron_jobs(n, rng):
    try:
        from fastjac import neuron
    except ImportError:  # pragma: no cover - before the neuron module is merged
        return []
    cols = 16
    X = rng.standard_normal((max(n // cols, 1), cols))
    y = rng.standard_normal(X.shape[0])
    v = rng.standard_normal(cols)

    def grads(nt):
        C, gw, gb, gX = neuron.loss_grad(X, y, v, 0.1, n_threads=nt, wrt=("w", "b", "X"))
        return np.concatenate([[C, gb], gw, gX.ravel()])

    return [
        ("neuron.activation", lambda nt: neuron.activation(X, v, 0.1, n_threads=nt)),
        ("neuron.loss_grad", grads),
        ("neuron.fit", lambda nt: neuron.fit(X, y, lr=1e-3, epochs=2, batch_size=64, w0=v,
                                             n_threads=nt).w),
    ]


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("n", [5000, 3 * 4096 + 17, 200_000])
def test_n_threads_is_bitwise_irrelevant(n):
    for name, job in _kernel_jobs(n):
        ref = job(1)
        for nt in (2, 3, None):
            assert _same_bits(job(nt), ref), (name, nt)


def test_concurrent_python_threads_agree_with_serial_calls():
    """8 Python threads call the kernels at once (the GIL is released in them)."""
    jobs = _kernel_jobs(3 * 4096 + 101) + _kernel_jobs(150_000)
    serial = [job(1) for _, job in jobs]
    errors = []
    barrier = threading.Barrier(8)

    def worker(k):
        try:
            barrier.wait()
            for rep in range(6):
                for j, (name, job) in enumerate(jobs):
                    nt = (1, 2, None)[(k + rep + j) % 3]
                    if not _same_bits(job(nt), serial[j]):
                        errors.append((k, name, nt))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append((k, repr(exc)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a worker thread hung"
    assert not errors, errors[:5]


_GIL_CALLS = {
    # the general unary path (a chain), the single-op fast path (unary_fast's own work
    # count), a float32 one, and the binary fast path (_binary_dispatch), one thread, one
    # kernel call each
    "chain": lambda x, x32: fj.chain(fj.sin, fj.exp, fj.log, fj.sqrt, fj.tanh).vjp(
        x, x, n_threads=1),
    "unary_fast": lambda x, x32: fj.sin.vjp(x, x, n_threads=1),
    "unary_fast32": lambda x, x32: fj.tanh.vjp(x32, x32, n_threads=1),
    "binary_fast": lambda x, x32: fj.div.vjp(x, x, x, n_threads=1),
}


@pytest.mark.parametrize("path", list(_GIL_CALLS))
def test_the_gil_is_released_in_kernels(path):
    # A pure-Python thread keeps ticking while another thread is inside a long kernel: a
    # tick in the middle half of a call (its Python prologue and epilogue are at the ends)
    # can only happen if the kernel released the GIL. With the GIL kept (planted in a
    # copy: _unary_dispatch / the plain binary loop passing work 0), no call of any path
    # had a tick in its middle half; released, nearly every call has dozens.
    import time

    x = np.linspace(0.1, 2, 4_000_000)
    x32 = x.astype(np.float32)
    call = _GIL_CALLS[path]
    spans, ticks = [], []
    done = threading.Event()

    def kernel():
        for _ in range(5):
            t0 = time.perf_counter()
            call(x, x32)
            spans.append((t0, time.perf_counter()))
        done.set()

    th = threading.Thread(target=kernel)
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        done.wait(0.0005)
    th.join()
    t = np.array(ticks)
    middle = [int(((t > a + (b - a) / 4) & (t < b - (b - a) / 4)).sum()) for a, b in spans]
    assert sum(middle) > 0, (middle, [b - a for a, b in spans])


# ------------------------------------------------------------------ fuzz, crash-isolated
def test_fuzz_suite_in_a_subprocess():
    """Run tests/fuzz in a child interpreter: a crash there is a failure here."""
    if os.environ.get("FASTJAC_FUZZ_CHILD"):
        pytest.skip("already inside the fuzz subprocess")
    env = dict(os.environ, FASTJAC_FUZZ_CHILD="1")
    cmd = [sys.executable, "-X", "faulthandler", "-m", "pytest", str(ROOT / "tests" / "fuzz"),
           "-p", "no:cacheprovider", "-q", "-x", "--benchmark-disable"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    tail = (proc.stdout[-6000:] + "\n" + proc.stderr[-4000:])
    if proc.returncode < 0:
        pytest.fail(f"the fuzz subprocess was killed by signal {-proc.returncode}:\n{tail}")
    assert proc.returncode == 0, tail
    print(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ memory
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _leak_families():
    """Kernel families -> the call variants that exercise them (run round-robin)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 2, 64)
    x32 = x.astype(np.float32)
    xs = rng.uniform(0.5, 2, 128)[::2]
    g = np.ones(64)
    out = np.empty(64)
    outs = (np.empty(64), np.empty(64))
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    h = fj.chain(fj.tanh, fj.square)
    return {
        "unary": [lambda: fj.exp(x), lambda: fj.sin.vjp(x32, xs), lambda: fj.log(x, out=out),
                  lambda: fj.relu.derivative(x)],
        "chain": [lambda: h.value_and_vjp(x, g), lambda: h.jvp(x, g)],
        "binary": [lambda: fj.add([1.0, 2.0], 3), lambda: fj.mul.vjp(x, 2.0, g),
                   lambda: op.jvp(x, x, g, g, out=out), lambda: fj.div.vjp(x, x, g, out=outs),
                   lambda: fj.maximum.sum_grad(x, x), lambda: fj.sub(x, x)],
        "reductions": [lambda: fj.sum(x), lambda: fj.dot(x, x), lambda: fj.dot.jvp(x, x, g, g),
                       lambda: fj.sum.vjp(x, 2.0)],
        "jacobians": [lambda: fj.mul.jacobian(x, 3.0), lambda: fj.exp.jacobian(x)],
        **_neuron_leak_family(rng),
        "errors": [lambda: _swallow(lambda: fj.exp(x, out=np.empty(3))),
                   lambda: _swallow(lambda: fj.mul(x, np.ones(64, complex))),
                   lambda: _swallow(lambda: fj.mul.vjp(x, x, g, out=(out, out))),
                   lambda: _swallow(lambda: fj.exp(x, n_threads=0))],
    }


def _neuron_leak_family(rng):
    try:
        from fastjac import neuron
    except ImportError:  # pragma: no cover - before the neuron module is merged
        return {}
    X = rng.standard_normal((32, 8))
    X32 = X.astype(np.float32)
    y = rng.standard_normal(32)
    v = rng.standard_normal(8)
    gw = np.empty(8)
    return {"neuron": [
        lambda: neuron.loss_grad(X, y, v, 0.1, out=gw),
        lambda: neuron.loss_grad(X32, y, v, 0.1, wrt=("w", "b", "X")),
        lambda: neuron.activation(np.asfortranarray(X), v, 0.0),
        lambda: neuron.loss(X, y, v, 0.1),
        lambda: neuron.fit(X, y, lr=1e-3, epochs=1, w0=v),
        lambda: _swallow(lambda: neuron.loss(X, y[:3], v, 0.1)),
    ]}


def _swallow(f):
    try:
        f()
    except (TypeError, ValueError):
        pass


# CI lowers this for the debug and serial rebuilds; the default run makes 10**5 calls.
LEAK_CALLS = int(os.environ.get("FASTJAC_LEAK_CALLS", "100000"))
TRACED = 2000


def _run_calls(variants, count):
    k = len(variants)
    for i in range(count):
        variants[i % k]()


@pytest.mark.parametrize("family", list(_leak_families()))
def test_no_memory_growth(family):
    variants = _leak_families()[family]
    _run_calls(variants, TRACED)  # warm caches, pools and lazily created objects
    gc.collect()
    rss0 = _rss_bytes()
    # tracemalloc slows every allocation: trace two samples and compare them.
    tracemalloc.start()
    try:
        _run_calls(variants, TRACED)
        gc.collect()
        traced0, _ = tracemalloc.get_traced_memory()
        _run_calls(variants, TRACED)
        gc.collect()
        traced1, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _run_calls(variants, max(LEAK_CALLS - 3 * TRACED, 0))
    gc.collect()
    rss1 = _rss_bytes()
    # A leak of 16 bytes per call would show as >= 32 kB traced and >= 1.5 MB of RSS over
    # 10**5 calls; the allowances stay below that and above allocator noise.
    assert traced1 - traced0 < 8 * TRACED, f"traced memory grew by {traced1 - traced0} B"
    assert rss1 - rss0 < max(1 << 20, 8 * LEAK_CALLS), f"RSS grew by {rss1 - rss0} B"


def test_fit_float32_weights_that_overflow_are_a_divergence():
    # Bug: parameters are kept in float64 during fit, so weights of 1e75 passed the
    # kernel's finiteness check and were returned rounded to float32 as -inf, silently.
    neuron = pytest.importorskip("fastjac.neuron")
    X = np.array([[1e10], [-1.95], [0.69], [-1e10], [0.0], [1.76], [2.76]], dtype=np.float32)
    y = np.array([0.82, -1.38, -2.75, -2.90, 1.88, 2.48, 0.64], dtype=np.float32)
    snap = (X.tobytes(), y.tobytes())
    with pytest.raises(FloatingPointError, match="diverged.*float32.*lr=0.001") as info:
        neuron.fit(X, y, lr=1e-3, epochs=5, seed=1)
    assert np.isfinite(info.value.losses).all()
    assert (X.tobytes(), y.tobytes()) == snap


def test_neuron_kernels_get_aligned_buffers():
    # Misaligned C-contiguous X/y/w/out went straight to the neuron kernels' typed
    # memoryviews (fast_batch and matrix/vector checked contiguity only). x86 tolerates
    # it; strict-alignment CPUs and aligned vector loads do not. They are copied now.
    neuron = pytest.importorskip("fastjac.neuron")
    rng = np.random.default_rng(5)
    X, y, w = rng.standard_normal((300, 7)), rng.standard_normal(300), rng.standard_normal(7)
    Xu, yu, wu = _unaligned(X), _unaligned(y), _unaligned(w)
    assert V.fast_batch(Xu, yu, wu) is None
    assert V.matrix(Xu, "X", V.F64).flags.aligned and V.vector(yu, "y", V.F64).flags.aligned
    ref = neuron.loss_grad(X, y, w, 0.1, wrt=("w", "b", "X"))
    got = neuron.loss_grad(Xu, yu, wu, 0.1, wrt=("w", "b", "X"))
    assert got[0] == ref[0] and got[2] == ref[2]
    assert np.array_equal(got[1], ref[1]) and np.array_equal(got[3], ref[3])
    out = _unaligned(np.zeros(7))
    assert neuron.loss_grad(X, y, w, 0.1, out=out)[1] is out
    assert np.array_equal(out, ref[1])


@pytest.mark.parametrize("big", [1.7976931348623157e308, -1.7976931348623157e308, 1e308])
def test_validation_mode_does_not_fail_correct_results_near_overflow(big):
    # Bug: in validation mode (fj.validating / FASTJAC_VALIDATE=1) fj.neg.vjp raised
    # GradCheckError for x = ±max float: the finite differences overflow, the error bound
    # became NaN and the entry counted as a failure. Such entries are now reported apart.
    x = np.array([1.0, big, -2.0])
    gy = np.array([1.0, -2.5, 0.5])
    with fj.validating(True):
        np.testing.assert_array_equal(fj.neg.vjp(x, gy), -gy)
        np.testing.assert_array_equal(fj.mul.vjp(x, 2.0, gy)[0], 2.0 * gy)
        np.testing.assert_array_equal(fj.identity.value_and_vjp(x, gy)[1], gy)


def test_chain_derivative_product_overflow():
    # h(x) = 1/(1/x) = x, so h'(x) = 1; the running product of stage derivatives was
    # -(1/x)**2 = -inf (at x = 1.5e-158) times -x**2: inf. Found by the gradcheck fuzz.
    # Fixed by recomputing such elements with a mantissa/exponent product.
    h = fj.chain(fj.reciprocal, fj.reciprocal)
    x = np.array([1.5e-158, 2.0, -3e-170, 0.0, np.inf, 1e300])
    d = h.derivative(x)
    # products of rounded factors: a few ulps, as on the ordinary path (x = 3 here)
    np.testing.assert_allclose(d[[0, 1, 2, 5]], 1.0, rtol=4 * np.finfo(float).eps, atol=0)
    np.testing.assert_allclose(h.derivative(np.array([3.0])), 1.0, rtol=4 * np.finfo(float).eps)
    assert np.isnan(d[3]) and np.isnan(d[4])  # x = 0 and inf: no finite answer to rescue
    np.testing.assert_array_equal(h.derivative(x[:3]), d[:3])  # independent of neighbours
    # a product that truly underflows stays 0; through a binary op the same rescue applies
    g = fj.chain(fj.square, fj.reciprocal, fj.reciprocal)  # (1/(1/x))**2, derivative 2x
    np.testing.assert_allclose(g.derivative(np.array([1.5e-158, 3.0])), [3e-158, 6.0],
                               rtol=8 * np.finfo(float).eps)
    op = fj.elementwise(fj.add, f=fj.chain(fj.reciprocal, fj.reciprocal))
    gw, gx = op.sum_grad(np.array([1.5e-158]), np.array([1.0]))
    assert gw[0] == pytest.approx(1.0, rel=4e-16) and gx[0] == 1.0
