"""Fuzz fj.fuse's float32 registers where its newest code runs: from 65536 elements a pool
block's first tile ends at the first input's 4 KB page boundary (fuse8), so the tiles
fall differently for every page offset of the inputs; sin, cos and exp hand a tile with a
lane outside their native range to the interpreter's stage (for sin and cos above 2^16:
the double-tile routine). Each example draws the length, each array's offset within a
page (inputs, cotangent and out=), out= fresh or aliasing an input or the cotangent,
n_threads, an expression and how many lanes fall outside the native ranges, and requires
the bits of op-by-op evaluation with fastjac's float32 ops (tests/test_fuse32.py's
replay32; a NaN's sign is not compared there)."""

import os
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastjac as fj

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from test_fuse32 import assert_bits, replay32  # noqa: E402

F32 = np.float32
PAGE = 1024  # floats in a 4 KB page

EXPRS = {
    "goal": fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x),
    "trig": fj.fuse(lambda w, x: fj.cos(w) * fj.sin(x) - fj.sin(w * x)),
    "exp": fj.fuse(lambda w, x: fj.exp(w) + fj.exp(x) * w),
}


def _placed(values, offset, rng_fill):
    """A copy of values that starts `offset` floats into a 4 KB page."""
    buf = np.empty(values.size + 2 * PAGE, F32)
    buf[:] = rng_fill
    s0 = (-buf.ctypes.data % 4096) // 4 + offset
    a = buf[s0:s0 + values.size]
    a[:] = values
    assert a.ctypes.data % 4096 == 4 * offset
    return a


def _outside(rng, n, k, name):
    """k lanes outside the native ranges of sin/cos (|x| > 2^16) and exp (> 88.7)."""
    big = np.array([7e4, -1.3e5, 3e6, -2e7, 1e30, 100.0, -110.0, np.inf, -np.inf, np.nan],
                   F32)
    return rng.integers(0, n, k), rng.choice(big, k)


@settings(max_examples=int(os.environ.get("FASTJAC_FUZZ_EXAMPLES") or 40))
@given(n=st.one_of(st.integers(65536, 65536 + 3 * PAGE), st.integers(65536, 200_000)),
       offs=st.tuples(*(st.integers(0, PAGE - 1) for _ in range(4))),
       out=st.sampled_from(["none", "fresh", "w", "x", "gy"]),
       method=st.sampled_from(["call", "vjp"]), nt=st.sampled_from([1, 2]),
       name=st.sampled_from(sorted(EXPRS)), n_out=st.sampled_from([0, 0, 1, 5, 300]),
       seed=st.integers(0, 2**31))
def test_fused_float32_page_offsets_out_and_aliasing(n, offs, out, method, nt, name, n_out,
                                                     seed):
    f = EXPRS[name]
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(-3, 3, n).astype(F32)
    x0 = rng.uniform(0.5, 4, n).astype(F32) * rng.choice(np.array([-1, 1], F32), n)
    for arr in (w0, x0):
        pos, vals = _outside(rng, n, n_out, name)
        arr[pos] = vals
    g0 = rng.normal(size=n).astype(F32)
    y_ref, g_ref = replay32(f, (w0, x0), g0)
    w, x, gy = (_placed(v, o, F32(9.0)) for v, o in zip((w0, x0, g0), offs))
    if method == "call":
        o = {"none": None, "fresh": _placed(np.zeros(n, F32), offs[3], F32(7.0)), "w": w,
             "x": x, "gy": None}[out]
        res = f(w, x, out=o, n_threads=nt)
        if o is not None:
            assert res is o
        assert_bits(res, y_ref)
        return
    fresh = _placed(np.zeros(n, F32), offs[3], F32(7.0))
    outs = {"none": None, "fresh": (fresh, None), "w": (w, x), "x": (x, fresh),
            "gy": (gy, w)}[out]
    res = f.vjp(w, x, gy, out=outs, n_threads=nt)
    if outs is not None:
        for r, o in zip(res, outs):
            if o is not None:
                assert r is o
    for r, ref in zip(res, g_ref):
        assert_bits(r, ref)
