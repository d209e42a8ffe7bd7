"""Reliability (issue 6): regression tests for every bug the fuzzing found."""

import os
import subprocess
import sys
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


def test_kernel_refuses_byte_swapped_buffers():
    from fastjac._kernels import elementwise as K

    x = np.ones(3, dtype=">f8")
    with pytest.raises(ValueError, match="byte order"):
        K.unary(bytes([K.UNARY_CODES["exp"]]), x, None, np.empty(3), None, 1)


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
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert V.n_threads(10**10, 1, 1) == V.MAX_THREADS
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
