"""Fuzz the ReLU neuron (paper §5, §6): activation, activation_jacobian, loss, loss_grad
(with out= and wrt=), loss_grad_sums and fit, against the NumPy expressions of the
module's docstring::

    z = X @ w + b;  r = np.maximum(z, 0) - y;  c = 2/N * r * (z > 0);  gw = c @ X

Dot products are compared with the error bound of a double-precision sum (n eps Σ|x w|);
a sample whose z lies within that bound of 0 is ambiguous (active or not depends on the
rounding): there the values are compared with a tolerance widened by what the other
branch would change, and the ReLU'(0) = 0 convention is asserted (the Jacobian's mask is 0
or 1, and 1 exactly where the activation is > 0; a row of ∂C/∂X is 0 or the active row).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastjac as fj
from fuzzlib import (
    BAD_DTYPES, BAD_N_THREADS, VALID_N_THREADS, _layout, _values, assert_unwritten,
    check_close, check_error, result_dtype, snapshot,
)

neuron = pytest.importorskip("fastjac.neuron")

EPS = np.finfo(np.float64).eps
ROWS = [0, 1, 2, 3, 5, 17, 64, 257, 1030]
COLS = [0, 1, 2, 3, 4, 5, 8, 33]
NEURON_REGIMES = ["unit", "unit", "pos", "int", "special_finite", "nonfinite"]


def _vals(regime, shape, dtype, rng):
    size = math.prod(shape)
    if regime == "special_finite":
        v = rng.uniform(-3, 3, size)
        m = rng.random(size) < 0.3
        v[m] = rng.choice([0.0, -0.0, 5e-324, 1e-300, 1e10, -1e10], int(m.sum()))
    elif regime == "nonfinite":
        v = rng.uniform(-3, 3, size)
        m = rng.random(size) < 0.05
        v[m] = rng.choice([np.nan, np.inf, -np.inf], int(m.sum()))
    else:
        v = _values(regime, size, dtype, rng)
    with np.errstate(all="ignore"):
        return np.asarray(v).astype(dtype).reshape(shape)


@st.composite
def arrays(draw, shape, dtypes=("f8", "f8", "f4", "f2", "i4", "?", ">f8")):
    dtype = draw(st.sampled_from(dtypes))
    regime = draw(st.sampled_from(NEURON_REGIMES))
    layout = draw(st.sampled_from(["C", "C", "F", "strided", "negative", "unaligned", "list"]))
    readonly = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if np.dtype(dtype).kind not in "fiub" or np.dtype(dtype).itemsize > 8:
        return np.zeros(shape, dtype=dtype) if dtype != "O" else np.zeros(shape).astype(object)
    v = _vals(regime, shape, dtype, rng)
    if layout == "list":
        return v.tolist() if 0 not in shape[:-1] else v
    a = _layout(v, layout)
    if readonly:
        a.flags.writeable = False
    return a


def _f64(a, dt):
    with np.errstate(all="ignore"):
        return np.array(a, dtype=dt).astype(np.float64)


def _reference(X, y, w, b, dt):
    """z, its error bound, C, gw, gb, gX from the docstring's NumPy expression (float64)."""
    Xr, wr = _f64(X, dt), _f64(w, dt)
    N, n = Xr.shape
    with np.errstate(all="ignore"):
        z = Xr @ wr + b if n else np.full(N, b)
        zt = (n + 2) * EPS * ((np.abs(Xr) @ np.abs(wr) if n else 0) + abs(b))
        # A row with an infinite or NaN input has an IEEE-exact z (±inf or NaN), not a
        # rounded one: no allowance (an infinite one would accept anything downstream).
        exact = ~np.isfinite(Xr).all(axis=1) | (not np.isfinite(wr).all()) | (
            not math.isfinite(b))
        zt = np.where(exact, 0.0, zt)
        out = dict(z=z, ztol=zt, a=np.where(z > 0, z, np.where(z <= 0, 0.0, z)))
        if y is not None:
            yr = _f64(y, dt)
            r = np.maximum(z, 0) - yr
            out["C"] = np.mean(r * r) if N else math.nan
            c = 2.0 / max(N, 1) * r * (z > 0)
            out["c"] = c
            out["gw"] = c @ Xr if N else np.zeros(n)
            out["gb"] = float(np.sum(c))
            out["gX"] = c[:, None] * wr[None, :]
            # Error allowances: each residual is off by at most ztol (plus rounding).
            re = zt + EPS * (np.abs(r) + np.abs(yr))
            out["Ctol"] = (2 * np.sum(np.abs(r) * re) + (N + 2) * EPS * np.sum(r * r)) / max(N, 1)
            ce = 2.0 / max(N, 1) * re
            out["gwtol"] = (ce @ np.abs(Xr) if N else np.zeros(n)) + (N + 2) * EPS * (
                np.abs(c) @ np.abs(Xr) if N else np.zeros(n))
            out["gbtol"] = float(np.sum(ce) + (N + 2) * EPS * np.sum(np.abs(c)))
    return out


def _ambiguous_rows(ref):
    """Samples whose z is within its rounding bound of the kink z = 0 (active or not
    depends on the rounding), or whose bound is not finite."""
    z, zt = ref["z"], ref["ztol"]
    with np.errstate(all="ignore"):
        return (np.abs(z) <= zt) & (z != 0) | (~np.isfinite(zt) & np.isfinite(z))


def _kink_allowance(ref, y, amb, dt):
    """How far the loss and its gradients may move when the ambiguous samples take the
    other branch of the ReLU (each sample's share, active minus inactive, bounded)."""
    N = ref["z"].shape[0]
    with np.errstate(all="ignore"):
        z = np.where(amb, ref["z"], 0.0)
        yr = _f64(y, dt)
        # (y - z)^2 - y^2 = z (z - 2y): small, z is within its rounding bound of 0
        dC = float(np.sum(np.where(amb, np.abs(z) * (np.abs(z) + 2 * np.abs(yr)), 0.0))) / N
        d = np.where(amb, 2.0 / N * (np.abs(z) + np.abs(yr)), 0.0)  # |c_i| if active
    return dict(C=dC, gb=float(np.sum(d)), d=d)


def _check_scalar(got, ref, tol, what):
    assert type(got) is float, (what, type(got))
    if math.isnan(ref):
        assert math.isnan(got), (what, got, ref)
    elif math.isinf(ref):
        assert got == ref, (what, got, ref, tol)
    else:
        # a NaN or infinite tolerance would accept anything: fail loudly (issue 18)
        assert math.isfinite(tol), f"{what}: tolerance {tol} is not finite (reference {ref})"
        assert abs(got - ref) <= tol + 4 * 2.2e-308, (what, got, ref, tol)


METHODS = ["activation", "activation_jacobian", "loss", "loss_grad", "loss_grad_sums"]


@pytest.mark.parametrize("method", METHODS)
@given(data=st.data())
def test_neuron(method, data):
    faults = ["dtype_X", "dtype_w", "shape_w", "ndim_X", "b", "n_threads"]
    if method != "activation" and method != "activation_jacobian":
        faults += ["dtype_y", "shape_y"]
    if method in ("activation", "loss_grad"):
        faults += ["out"]
    fault = data.draw(st.sampled_from(["none"] * len(faults) + faults), label="fault")
    N = data.draw(st.sampled_from(ROWS), label="N")
    n = data.draw(st.sampled_from(COLS), label="n")
    bad = ("c16", "O", "U3", "g")
    X = data.draw(arrays((N, n), bad if fault == "dtype_X" else
                         ("f8", "f8", "f4", "f2", "i4", "?", ">f8")), label="X")
    if fault == "ndim_X":
        X = np.ones((N, n, 1))
    w = data.draw(arrays((n + 1,) if fault == "shape_w" else (n,),
                         bad if fault == "dtype_w" else ("f8", "f4", "i8", ">f4")), label="w")
    y = data.draw(arrays((N + 1,) if fault == "shape_y" else (N,),
                         bad if fault == "dtype_y" else ("f8", "f4", "i2", "u1")), label="y")
    b = data.draw(st.sampled_from([0.0, 0.5, -1.0, 3, np.float32(0.25), np.array(-0.5),
                                   math.inf, math.nan]), label="b")
    if fault == "b":
        b = data.draw(st.sampled_from([1j, "0.5", None, np.ones(2), True]), label="bad_b")
    nt = data.draw(st.sampled_from(BAD_N_THREADS if fault == "n_threads" else VALID_N_THREADS))
    needs_rows = method in ("loss", "loss_grad")
    expect = {"dtype_X": {"X"}, "dtype_w": {"w"}, "shape_w": {"w"}, "ndim_X": {"X"},
              "b": {"b"}, "n_threads": {"n_threads"}, "dtype_y": {"y"},
              "shape_y": {"y"}}.get(fault, set())
    if needs_rows and N == 0:  # an empty batch is an error too; either may be named
        expect = expect | {"N == 0", "X"}
    dt = None if expect else result_dtype(X, y if method not in METHODS[:2] else None, w)

    out = None
    if fault == "out" or (not expect and data.draw(st.booleans(), label="use_out")):
        shape = (N,) if method == "activation" else (n,)
        kind = data.draw(st.sampled_from(
            ["wrong_shape", "wrong_dtype", "readonly", "list"] if fault == "out"
            else ["c", "strided"]), label="out_kind")
        odt = dt or np.dtype(np.float64)
        if kind == "c":
            out = np.full(shape, np.nan, dtype=odt)
        elif kind == "strided":
            out = np.full((2 * shape[0],), np.nan, dtype=odt)[::2]
        elif kind == "wrong_shape":
            out = np.empty((shape[0] + 1,), dtype=odt)
        elif kind == "wrong_dtype":
            out = np.empty(shape, dtype=np.float32 if odt == np.float64 else np.float64)
        elif kind == "readonly":
            out = np.empty(shape, dtype=odt)
            out.flags.writeable = False
        else:
            out = [0.0] * shape[0]
        if fault == "out":
            expect = expect | {"out"}
    inputs = {"X": X, "y": y, "w": w}
    snap = snapshot(inputs)
    call = {
        "activation": lambda: neuron.activation(X, w, b, out=out, n_threads=nt),
        "activation_jacobian": lambda: neuron.activation_jacobian(X, w, b, n_threads=nt),
        "loss": lambda: neuron.loss(X, y, w, b, n_threads=nt),
        "loss_grad": lambda: neuron.loss_grad(X, y, w, b, out=out, n_threads=nt,
                                              wrt=("w", "b", "X")),
        "loss_grad_sums": lambda: neuron.loss_grad_sums(X, y, w, b, n_threads=nt),
    }[method]
    try:
        res = call()
    except Exception as exc:  # noqa: BLE001 - judged by the oracle
        if not expect:
            raise
        check_error(exc, expect | {"out"} if fault == "out" else expect)
        assert_unwritten(inputs, snap)
        return
    assert not expect, f"expected an error naming one of {sorted(expect)}"
    assert_unwritten(inputs, snap)

    bf = float(np.asarray(b))
    ref = _reference(X, y if method not in METHODS[:2] else None, w, bf, dt)
    amb = _ambiguous_rows(ref)
    ambiguous = bool(amb.any())
    what = f"neuron.{method}"
    if method == "activation":
        if out is not None:
            assert res is out
        check_close(res, ref["a"], dt, what, extra_atol=ref["ztol"])
        return
    if method == "activation_jacobian":
        Jw, Jb = res
        assert isinstance(Jw, fj.RowScaled) and isinstance(Jb, fj.Column)
        assert Jw.shape == (N, n) and Jb.shape == (N, 1)
        mask = np.where(ref["z"] > 0, 1.0, np.where(ref["z"] <= 0, 0.0, np.nan))
        check_close(Jb.c[~amb], mask[~amb], dt, what)
        if ambiguous:
            # Near the kink either branch may be right, but the mask is 0 or 1, and it is
            # 1 exactly where the activation (same z) is > 0: ReLU'(0) = 0 (issue 18).
            got = np.asarray(Jb.c)[amb]
            assert np.isin(got, (0.0, 1.0)).all(), (what, got)
            a = np.asarray(neuron.activation(X, w, b, n_threads=nt))[amb]
            np.testing.assert_array_equal(got, (a > 0).astype(got.dtype), err_msg=what)
            assert (a >= 0).all() and (a <= ref["ztol"][amb]).all(), (what, a)
        return
    # Near the kink (ambiguous samples) the values are compared with the tolerance widened
    # by exactly what the other branch would change (issue 18: assert, never skip).
    k = _kink_allowance(ref, y, amb, dt) if ambiguous else dict(C=0.0, gb=0.0, d=0.0)
    with np.errstate(all="ignore"):
        gw_kink = k["d"] @ np.abs(_f64(X, dt)) if ambiguous and N else 0.0
    if method == "loss":
        _check_scalar(res, ref["C"], ref["Ctol"] + k["C"], what)
        return
    if method == "loss_grad_sums":
        sse, gw, gb = res
        _check_scalar(sse, ref["C"] * N if N else 0.0, (ref["Ctol"] + k["C"]) * max(N, 1),
                      what + " sse")
        check_close(gw, ref["gw"] * N / 2 if N else np.zeros(n), dt, what,
                    extra_atol=(ref["gwtol"] + gw_kink) * max(N, 1) / 2)
        _check_scalar(gb, ref["gb"] * N / 2 if N else 0.0,
                      (ref["gbtol"] + k["gb"]) * max(N, 1) / 2, what + " gb")
        return
    C, gw, gb, gX = res
    _check_scalar(C, ref["C"], ref["Ctol"] + k["C"], what + " C")
    if out is not None:
        assert gw is out
    check_close(gw, ref["gw"], dt, what + " gw", extra_atol=ref["gwtol"] + gw_kink)
    _check_scalar(gb, ref["gb"], ref["gbtol"] + k["gb"], what + " gb")
    assert gX.shape == (N, n)
    with np.errstate(all="ignore"):
        gx_tol = (2.0 / N) * np.outer(ref["ztol"] + EPS * np.abs(ref["c"]) * N, np.abs(_f64(w, dt)))
        gX_ref = ref["gX"]
        if ambiguous:
            # each ambiguous row is either exactly 0 (inactive, ReLU'(z <= 0) = 0) or the
            # active row (2/N)(z_i - y_i) w
            active = (2.0 / N) * (ref["z"] - _f64(y, dt))[:, None] * _f64(w, dt)[None, :]
            zero_row = np.all(np.asarray(gX) == 0, axis=1)
            rows = amb & ~zero_row
            gX_ref = np.where(amb[:, None], np.where(rows[:, None], active, 0.0), gX_ref)
    check_close(gX, gX_ref, dt, what + " gX", extra_atol=gx_tol.reshape(-1))


# ------------------------------------------------------------------------------ fit
@given(data=st.data())
def test_fit_never_writes_inputs_and_diverges_cleanly(data):
    N = data.draw(st.sampled_from([1, 2, 7, 64, 300]))
    n = data.draw(st.sampled_from([1, 2, 5]))
    X = data.draw(arrays((N, n), ("f8", "f4")), label="X")
    y = data.draw(arrays((N,), ("f8", "f4")), label="y")
    w0 = data.draw(st.one_of(st.none(), arrays((n,), ("f8", "f4"))), label="w0")
    lr = data.draw(st.sampled_from([1e-3, 0.1, 1.0, 1e3, 1e200]), label="lr")
    batch = data.draw(st.sampled_from([None, 1, 3, 1000]), label="batch_size")
    inputs = {"X": X, "y": y, "w0": w0}
    snap = snapshot(inputs)
    try:
        res = neuron.fit(X, y, lr=lr, epochs=5, batch_size=batch, w0=w0, seed=1)
    except FloatingPointError as exc:
        assert "diverged" in str(exc) and "lr" in str(exc)
        assert np.isfinite(exc.losses).all()
    except ValueError as exc:
        # Non-finite data or start: the message says so (names the inputs).
        check_error(exc, {"X", "y", "w0", "initial"})
    else:
        assert np.isfinite(res.losses).all() and np.isfinite(res.w).all()
        assert math.isfinite(res.b)
    assert_unwritten(inputs, snap)
