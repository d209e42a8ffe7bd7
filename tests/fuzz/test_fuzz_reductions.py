"""Fuzz the reductions of §4.4: fastjac.dot and fastjac.sum with all their methods."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastjac as fj
from fuzzlib import (
    BAD_DTYPES, BAD_N_THREADS, EDGE_LENGTHS, VALID_N_THREADS, as_ref, assert_unwritten, build,
    check_close, check_error, exact_sum, operand_descriptions, result_dtype, shapes, snapshot,
)

ARRAYS = ("array", "list")
GY_GOOD = [2.0, -0.5, 0, 3, np.float32(1.5), np.float64(-2.0), np.array(4.0), math.inf,
           -math.inf, 1e300]
GY_BAD = {"bool": True, "nan": math.nan, "complex": 1j, "array": np.ones(2), "str": "2", "none": None}


def _draw(data, bad, kinds=None):
    d = data.draw(operand_descriptions(BAD_DTYPES) if bad else operand_descriptions())
    if kinds is not None and d["kind"] not in kinds:
        d["kind"] = data.draw(st.sampled_from(kinds))
    return d


def _call(call, expect):
    try:
        res = call()
    except Exception as exc:  # noqa: BLE001 - judged by the oracle
        if not expect:
            raise
        check_error(exc, expect)
        return None
    assert not expect, f"expected an error naming one of {sorted(expect)}"
    return res


def _scalar(res, ref, tol, dt, what):
    assert isinstance(res, np.generic) and res.dtype == dt, (type(res), dt)
    check_close(res, ref, dt, what, extra_atol=tol)


def _draw_gy_and_threads(data, method, fault):
    """The scalar cotangent (vjp only) and n_threads of a reduction call, good or faulty."""
    gy = 2.0
    if method == "vjp":
        if fault == "gy":
            gy = GY_BAD[data.draw(st.sampled_from(sorted(GY_BAD)), label="gy")]
        else:
            gy = data.draw(st.sampled_from(GY_GOOD), label="gy")
    nt = data.draw(st.sampled_from(BAD_N_THREADS if fault == "n_threads" else VALID_N_THREADS))
    return gy, nt


@pytest.mark.parametrize("method", ["call", "grad", "jacobian", "jvp", "vjp"])
@given(data=st.data())
def test_dot(method, data):
    faults = ["dtype_w", "dtype_x", "shape", "ndim", "scalar"]
    faults += {"call": ["n_threads"], "jvp": ["n_threads", "dtype_t", "shape_t"],
               "vjp": ["gy"]}.get(method, [])
    fault = data.draw(st.sampled_from(["none"] * len(faults) + faults), label="fault")
    n = data.draw(st.one_of(st.integers(0, 40), st.sampled_from(EDGE_LENGTHS)), label="n")
    sw, sx = (n,), (n,)
    if fault == "shape":
        sx = (n + 1,)
    elif fault == "ndim":
        sw = sx = (n, 2)
    elif fault == "scalar":
        sw = ()
    w = build(_draw(data, fault == "dtype_w", ARRAYS if sw else None), sw)
    x = build(_draw(data, fault == "dtype_x", ARRAYS), sx)
    dw = dx = None
    bad_t = data.draw(st.sampled_from(["dw", "dx"]), label="bad_t")
    if method == "jvp":
        use = data.draw(st.sampled_from(["both", "dw", "dx", "neither"]), label="use")
        if fault in ("dtype_t", "shape_t"):
            use = "both"
        for name in ("dw", "dx"):
            if use in ("both", name):
                s = (n + 1,) if fault == "shape_t" and bad_t == name else (n,)
                t = build(_draw(data, fault == "dtype_t" and bad_t == name, ARRAYS), s)
                dw, dx = (t, dx) if name == "dw" else (dw, t)
    gy, nt = _draw_gy_and_threads(data, method, fault)

    expect = {"dtype_w": {"w"}, "dtype_x": {"x"}, "shape": {"w", "x"}, "ndim": {"w"},
              "scalar": {"w"}, "n_threads": {"n_threads"}, "gy": {"gy"},
              "dtype_t": {bad_t}, "shape_t": {bad_t}}.get(fault, set())
    inputs = {"w": w, "x": x, "dw": dw, "dx": dx}
    snap = snapshot(inputs)
    if method == "jvp":
        dt = result_dtype(w, x, dw, dx) if not expect else None
    else:
        dt = result_dtype(w, x) if not expect else None
    call = {
        "call": lambda: fj.dot(w, x, n_threads=nt),
        "grad": lambda: fj.dot.grad(w, x),
        "jacobian": lambda: fj.dot.jacobian(w, x),
        "jvp": lambda: fj.dot.jvp(w, x, dw, dx, n_threads=nt),
        "vjp": lambda: fj.dot.vjp(w, x, gy),
    }[method]
    res = _call(call, expect)
    assert_unwritten(inputs, snap)
    if expect:
        return
    wr, xr = as_ref(w, dt), as_ref(x, dt)
    what = f"dot.{method}"
    with np.errstate(all="ignore"):
        if method == "call":
            _scalar(res, *exact_sum(wr * xr), dt, what)
        elif method in ("grad", "jacobian"):
            gw, gx = (res[0].r, res[1].r) if method == "jacobian" else res
            if method == "jacobian":
                assert isinstance(res[0], fj.Row) and isinstance(res[1], fj.Row)
            check_close(gw, xr, dt, what)
            check_close(gx, wr, dt, what)
        elif method == "jvp":
            terms = [np.zeros(0)]
            if dw is not None:
                terms.append(xr * as_ref(dw, dt))
            if dx is not None:
                terms.append(wr * as_ref(dx, dt))
            # Two reductions added in double: the exact sum of all terms, with the
            # allowance of one reduction over all of them.
            _scalar(res, *exact_sum(np.concatenate(terms)), dt, what)
        else:
            g = np.asarray(gy, dtype=dt)
            check_close(res[0], (xr.astype(dt) * g).astype(np.float64), dt, what)
            check_close(res[1], (wr.astype(dt) * g).astype(np.float64), dt, what)


@pytest.mark.parametrize("method", ["call", "grad", "jacobian", "jvp", "vjp"])
@given(data=st.data())
def test_sum(method, data):
    faults = ["dtype_x", "ragged"]
    faults += {"call": ["n_threads"], "jvp": ["n_threads", "dtype_t", "shape_t"],
               "vjp": ["gy"]}.get(method, [])
    fault = data.draw(st.sampled_from(["none"] * len(faults) + faults), label="fault")
    shape = data.draw(shapes(), label="shape")
    x = build(_draw(data, fault == "dtype_x"), shape)
    if fault == "ragged":
        x = [[1.0], [2.0, 3.0]]
    sx = np.shape(x) if fault != "ragged" else (2,)
    dx = None
    if method == "jvp":
        s = (sx[0] + 1,) + sx[1:] if fault == "shape_t" and sx else ((2,) if fault == "shape_t" else sx)
        d = _draw(data, fault == "dtype_t", ARRAYS if s else None)
        dx = build(d, s)
    gy, nt = _draw_gy_and_threads(data, method, fault)
    expect = {"dtype_x": {"x"}, "ragged": {"x"}, "n_threads": {"n_threads"}, "gy": {"gy"},
              "dtype_t": {"dx"}, "shape_t": {"x", "dx"}}.get(fault, set())
    inputs = {"x": x, "dx": dx}
    snap = snapshot(inputs)
    dt = (result_dtype(x, dx) if method == "jvp" else result_dtype(x)) if not expect else None
    call = {
        "call": lambda: fj.sum(x, n_threads=nt),
        "grad": lambda: fj.sum.grad(x),
        "jacobian": lambda: fj.sum.jacobian(x),
        "jvp": lambda: fj.sum.jvp(x, dx, n_threads=nt),
        "vjp": lambda: fj.sum.vjp(x, gy),
    }[method]
    res = _call(call, expect)
    assert_unwritten(inputs, snap)
    if expect:
        return
    what = f"sum.{method}"
    with np.errstate(all="ignore"):
        if method == "call":
            _scalar(res, *exact_sum(as_ref(x, dt)), dt, what)
        elif method == "jvp":
            _scalar(res, *exact_sum(as_ref(dx, dt)), dt, what)
        elif method == "grad":
            assert res.shape == sx
            check_close(res, np.ones(res.size), dt, what)
        elif method == "jacobian":
            assert isinstance(res, fj.Row) and res.shape == (1, int(np.prod(sx)))
            check_close(res.r, np.ones(res.r.size), dt, what)
        else:
            assert res.shape == sx
            check_close(res, np.full(res.size, float(np.asarray(gy, dtype=dt))), dt, what)
