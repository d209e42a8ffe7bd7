"""Fuzz every element-wise entry point: unary functions and chains, binary operators and
fused f(w) ○ g(x), with every method. See fuzzlib.py for the oracle."""

import contextlib

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis import given

import fastjac as fj
from fuzzlib import (
    BAD_DTYPES, BAD_N_THREADS, BINARY_NAMES, OUT_CHOICES, OUT_FAULTS, UNARY_NAMES,
    VALID_N_THREADS, assert_unwritten, as_ref, binary_ref, build, chain_ref, check_close,
    check_error, exact_sum, make_out, operand_descriptions, result_dtype, shapes, snapshot,
    unary_object,
)

SCALAR_KINDS = ("pyscalar", "npscalar", "zerod")
ARRAY_KINDS = ("array", "list")


def _desc(data, bad=False, kinds=None):
    d = data.draw(operand_descriptions(BAD_DTYPES) if bad else operand_descriptions())
    if kinds is not None and d["kind"] not in kinds:
        d["kind"] = data.draw(st.sampled_from(kinds))
    return d


def _other_shape(shape):
    if shape == ():
        return (2,)
    return shape[:-1] + (shape[-1] + 1,)


def _draw_fault(data, faults):
    return data.draw(st.sampled_from(["none"] * max(len(faults), 4) + faults), label="fault")


def _draw_threads(data, fault):
    if fault == "n_threads":
        return data.draw(st.sampled_from(BAD_N_THREADS), label="n_threads")
    return data.draw(st.sampled_from(VALID_N_THREADS), label="n_threads")


def _draw_out_choice(data, fault):
    if fault == "out":
        return data.draw(st.sampled_from(sorted(OUT_FAULTS)), label="out")
    return data.draw(st.sampled_from([c for c in OUT_CHOICES if c not in OUT_FAULTS]),
                     label="out")


def _kinds_for(shape):
    return ARRAY_KINDS if shape != () else SCALAR_KINDS + ARRAY_KINDS


def _is_result_scalar(got, dt):
    assert isinstance(got, np.generic) and got.dtype == dt, (type(got), getattr(got, "dtype", None))


def _run(call, expect_error):
    """Call; return (result, None) or (None, exception) and check it against the oracle."""
    try:
        res = call()
    except Exception as exc:  # noqa: BLE001 - judged below
        if not expect_error:
            raise
        check_error(exc, expect_error)
        return None, exc
    assert not expect_error, f"expected an error naming one of {sorted(expect_error)}"
    return res, None


# ================================================================================ unary
UNARY_METHODS = ["call", "derivative", "sum_grad", "jacobian", "jvp", "vjp", "value_and_vjp"]


@contextlib.contextmanager
def _restore_precision():
    before = fj.get_precision()
    try:
        yield
    finally:
        fj.set_precision(before)


def _oracle_precision(n_stages):
    """The references use the C library (fuzzlib's premise). One stage of fastjac's default
    vectorised exp/sin/cos is within the oracle's few ulps of it, but a composition can
    amplify a sub-ulp difference (log of sigmoid(8) ≈ 1 - 3e-4 multiplies it by ~3000),
    so compositions are judged in "strict" mode, where the kernels call the C library too.
    The default routines' own accuracy is measured in tests/test_vmath.py."""
    fj.set_precision("strict" if n_stages > 1 else "accurate")


@pytest.mark.parametrize("method", UNARY_METHODS)
@pytest.mark.parametrize("name", UNARY_NAMES + ["chain"])
@given(data=st.data())
def test_unary(name, method, data):
    with _restore_precision():
        _unary_case(name, method, data)


def _unary_case(name, method, data):
    names = ([name] if name != "chain" else
             data.draw(st.lists(st.sampled_from(UNARY_NAMES), min_size=1, max_size=4),
                       label="chain"))
    _oracle_precision(len(names))
    h = unary_object(names)
    has_t = method in ("jvp", "vjp", "value_and_vjp")
    t_name = {"jvp": "dx"}.get(method, "gy")
    has_out = method != "jacobian"
    faults = ["dtype_x", "ragged", "n_threads"] + (["out"] if has_out else [])
    faults += ["dtype_t", "shape_t"] if has_t else []
    if method == "value_and_vjp":
        faults += ["out_pair"]
    fault = _draw_fault(data, faults)

    shape = data.draw(shapes(), label="shape")
    dx = _desc(data, bad=fault == "dtype_x")
    if fault == "ragged":
        x = [[1.0], [1.0, 2.0]]
    else:
        x = build(dx, shape)
    xshape = np.shape(x) if fault != "ragged" else (2,)
    t = None
    if has_t:
        tshape = _other_shape(xshape) if fault == "shape_t" else xshape
        t = build(_desc(data, bad=fault == "dtype_t", kinds=_kinds_for(tshape)), tshape)
    nt = _draw_threads(data, fault)

    expect = set()
    if fault in ("dtype_x", "ragged"):
        expect = {"x"}
    elif fault == "dtype_t":
        expect = {t_name}
    elif fault == "shape_t":
        expect = {"x", t_name}
    elif fault == "n_threads":
        expect = {"n_threads"}

    dt = result_dtype(x, t) if not expect else None
    inputs = {"x": x, "t": t}
    out, aliased = None, set()
    if has_out and not expect:
        if method == "value_and_vjp":
            if fault == "out_pair":
                out = data.draw(st.sampled_from(["same", "single", "triple"]), label="pair")
                o = np.empty(xshape, dtype=dt)
                pair = out
                out = {"same": (o, o), "single": o, "triple": (o, None, None)}[pair]
                if pair != "same" or o.size:  # two empty outputs share no memory
                    expect = {"out"}
            else:
                c0, c1 = _draw_out_choice(data, fault), _draw_out_choice(data, "none")
                o0, f0, a0 = make_out(c0, xshape, dt, inputs)
                o1, f1, a1 = make_out(c1, xshape, dt, inputs)
                out = (o0, o1)
                aliased = {a0, a1} - {None}
                if f0 or f1 or (o0 is not None and o1 is not None
                                and np.may_share_memory(o0, o1)):
                    expect = {"out"}
        else:
            out, faulty, a = make_out(_draw_out_choice(data, fault), xshape, dt, inputs)
            aliased = {a} - {None}
            if faulty:
                expect = {"out"}
        x, t = inputs["x"], inputs["t"]

    # References from the operands as the kernel sees them, before anything can write.
    if not expect:
        y_ref, d_ref = chain_ref(names, as_ref(x, dt))
        if has_t:
            with np.errstate(all="ignore"):
                # log alone: its VJP and JVP are t/x, one division (fj_vmath.h FJ_LOG_VJP),
                # finite where (1/x)·t overflows
                d_ref = (as_ref(t, dt) / as_ref(x, dt) if names == ["log"]
                         else d_ref * as_ref(t, dt))
    snap = snapshot({"x": x, "t": t})

    kw = {} if method == "jacobian" else {"out": out}
    call = {
        "call": lambda: h(x, n_threads=nt, **kw),
        "derivative": lambda: h.derivative(x, n_threads=nt, **kw),
        "sum_grad": lambda: h.sum_grad(x, n_threads=nt, **kw),
        "jacobian": lambda: h.jacobian(x, n_threads=nt),
        "jvp": lambda: h.jvp(x, t, n_threads=nt, **kw),
        "vjp": lambda: h.vjp(x, t, n_threads=nt, **kw),
        "value_and_vjp": lambda: h.value_and_vjp(x, t, n_threads=nt, **kw),
    }[method]
    res, _ = _run(call, expect)
    assert_unwritten({"x": x, "t": t}, snap, skip={k for k in ("x", "t")
                                                   if any(inputs[k] is o for o in _outs(out))})
    if expect:
        return

    what = f"{h.name}.{method}"
    if method == "jacobian":
        assert isinstance(res, fj.Diagonal)
        check_close(res.d, d_ref, dt, what)
        return
    if method == "value_and_vjp":
        results, refs = res, (y_ref, d_ref)
        outs = out
    else:
        results, refs = (res,), (y_ref if method == "call" else d_ref,)
        outs = (out,)
    for r, ref, o in zip(results, refs, outs):
        if o is not None:
            assert r is o
        elif xshape == ():
            _is_result_scalar(r, dt)
        else:
            assert type(r) is np.ndarray and r.shape == xshape
        check_close(r, ref, dt, what)


def _outs(out):
    if out is None:
        return ()
    if isinstance(out, tuple):
        return tuple(o for o in out if isinstance(o, np.ndarray))
    return (out,) if isinstance(out, np.ndarray) else ()


# ================================================================================ binary
BINARY_METHODS = ["call", "jvp", "vjp", "sum_grad", "jacobian"]
_CHAINS = st.lists(st.sampled_from(UNARY_NAMES), min_size=0, max_size=3)


@pytest.mark.parametrize("method", BINARY_METHODS)
@pytest.mark.parametrize("name", BINARY_NAMES + ["fused"])
@given(data=st.data())
def test_binary(name, method, data):
    with _restore_precision():
        _binary_case(name, method, data)


def _binary_case(name, method, data):
    if name == "fused":
        opname = data.draw(st.sampled_from(BINARY_NAMES), label="op")
        fn, gn = data.draw(_CHAINS, label="f"), data.draw(_CHAINS, label="g")
        op = fj.elementwise(fj.BINARY[opname], f=unary_object(fn) if fn else None,
                            g=unary_object(gn) if gn else None)
    else:
        opname, fn, gn, op = name, [], [], fj.BINARY[name]
    _oracle_precision(1 + len(fn) + len(gn))
    pair_out = method in ("vjp", "sum_grad")
    has_out = method != "jacobian"
    faults = ["dtype_w", "dtype_x", "shape_wx", "ragged", "n_threads"]
    faults += ["out"] if has_out else []
    faults += {"jvp": ["dtype_t", "shape_t"], "vjp": ["dtype_t", "shape_t"]}.get(method, [])
    fault = _draw_fault(data, faults)

    shape = data.draw(shapes(), label="shape")
    mode = data.draw(st.sampled_from(["same", "same", "w_scalar", "x_scalar"]), label="mode")
    if shape == ():
        mode = "same"
    sw = () if mode == "w_scalar" else shape
    sx = () if mode == "x_scalar" else shape
    if fault == "shape_wx":
        sx = _other_shape(shape)
        sw = shape if shape != () else (3,)
    w = build(_desc(data, bad=fault == "dtype_w", kinds=_kinds_for(sw)), sw)
    x = build(_desc(data, bad=fault == "dtype_x", kinds=_kinds_for(sx)), sx)
    if fault == "ragged":
        x = [[1.0, 2.0], [3.0]]
    sw, sx = np.shape(w), np.shape(x) if fault != "ragged" else (2,)
    yshape = sw if sw != () else sx

    dw = dx = gy = None
    if method == "jvp":
        # A None tangent is a zero tangent.
        use = data.draw(st.sampled_from(["both", "both", "dw", "dx", "neither"]), label="tan")
        bad_t = data.draw(st.sampled_from(["dw", "dx"])) if fault in ("dtype_t", "shape_t") else ""
        if bad_t:
            use = "both"
        if use in ("both", "dw"):
            s = _other_shape(sw) if (fault == "shape_t" and bad_t == "dw") else sw
            dw = build(_desc(data, bad=fault == "dtype_t" and bad_t == "dw", kinds=_kinds_for(s)), s)
        if use in ("both", "dx"):
            s = _other_shape(sx) if (fault == "shape_t" and bad_t == "dx") else sx
            dx = build(_desc(data, bad=fault == "dtype_t" and bad_t == "dx", kinds=_kinds_for(s)), s)
    elif method == "vjp":
        s = _other_shape(yshape) if fault == "shape_t" else yshape
        gy = build(_desc(data, bad=fault == "dtype_t", kinds=_kinds_for(s)), s)
    nt = _draw_threads(data, fault)

    expect = {"dtype_w": {"w"}, "dtype_x": {"x"}, "ragged": {"x"}, "shape_wx": {"w", "x"},
              "n_threads": {"n_threads"}}.get(fault, set())
    if fault in ("dtype_t", "shape_t"):
        expect = {bad_t} if method == "jvp" else {"gy"}
        if fault == "shape_t" and method == "jvp":
            expect |= {"w", "x"}
        if fault == "shape_t" and method == "vjp":
            expect |= {"y"}

    extra = {"jvp": (dw, dx), "vjp": (gy,)}.get(method, ())
    dt = result_dtype(w, x, *extra) if not expect else None
    inputs = {"w": w, "x": x, "dw": dw, "dx": dx, "gy": gy}
    out, aliased = None, set()
    w_scalar = sw == () and yshape != ()
    x_scalar = sx == () and yshape != ()
    if has_out and not expect:
        if pair_out:
            c0 = _draw_out_choice(data, fault)
            c1 = _draw_out_choice(data, "none")
            if data.draw(st.booleans(), label="swap"):
                c0, c1 = c1, c0
            o0, f0, a0 = make_out(c0, sw, dt, inputs)
            o1, f1, a1 = make_out(c1, sx, dt, inputs)
            out = (o0, o1)
            if f0 or f1 or (o0 is not None and o1 is not None and np.may_share_memory(o0, o1)):
                expect = {"out"}
        else:
            out, faulty, _ = make_out(_draw_out_choice(data, fault), yshape, dt, inputs)
            if faulty:
                expect = {"out"}
        w, x, dw, dx, gy = (inputs[k] for k in ("w", "x", "dw", "dx", "gy"))

    if not expect:
        n = int(np.prod(yshape))
        wv, xv = as_ref(w, dt), as_ref(x, dt)
        if w_scalar:
            wv = np.full(n, wv[0])
        if x_scalar:
            xv = np.full(n, xv[0])
        a, da = chain_ref(fn, wv)
        b, db = chain_ref(gn, xv)
        y_ref, pw, px = binary_ref(opname, a, da, b, db)
        # Tangents and cotangent as read before the call: out= may alias one of them.
        dwr, dxr, gyr = (as_ref(v, dt) if v is not None else None for v in (dw, dx, gy))
    snap = snapshot(inputs)
    kw = {} if method == "jacobian" else {"out": out}
    call = {
        "call": lambda: op(w, x, n_threads=nt, **kw),
        "jvp": lambda: op.jvp(w, x, dw, dx, n_threads=nt, **kw),
        "vjp": lambda: op.vjp(w, x, gy, n_threads=nt, **kw),
        "sum_grad": lambda: op.sum_grad(w, x, n_threads=nt, **kw),
        "jacobian": lambda: op.jacobian(w, x, n_threads=nt),
    }[method]
    res, _ = _run(call, expect)
    written = {k for k, v in inputs.items() if any(v is o for o in _outs(out))}
    assert_unwritten(inputs, snap, skip=written)
    if expect:
        return

    what = f"{op.name}.{method}"
    with np.errstate(all="ignore"):
        if method == "call":
            _check_array_result(res, out, y_ref, dt, yshape, what,
                                scale=np.abs(a) + np.abs(b) if opname in ("add", "sub") else None)
        elif method == "jvp":
            t = np.zeros(n)
            scale = np.zeros(n)
            if dw is not None:
                t = pw * _expand(dwr, n)
                scale = np.abs(t)
            if dx is not None:
                term = px * _expand(dxr, n)
                t = t + term
                scale = scale + np.abs(term)
            _check_array_result(res, out, t, dt, yshape, what, scale=scale)
        elif method == "jacobian":
            jw, jx = res
            for J, p, is_scalar in ((jw, pw, w_scalar), (jx, px, x_scalar)):
                assert isinstance(J, fj.Column if is_scalar else fj.Diagonal), type(J)
                check_close(J.c if is_scalar else J.d, p, dt, what)
        else:
            g = gyr if gy is not None else np.ones(n)
            for k, (p, is_scalar, s) in enumerate(((pw, w_scalar, sw), (px, x_scalar, sx))):
                r = res[k]
                o = out[k] if out is not None else None
                if is_scalar:
                    total, tol = exact_sum(p * g)
                    if o is not None:
                        assert r is o
                    else:
                        _is_result_scalar(r, dt)
                    check_close(r, total, dt, f"{what}[{k}] (scalar operand)", extra_atol=tol)
                else:
                    _check_array_result(r, o, p * g, dt, s, f"{what}[{k}]")


def _expand(v, n):
    return np.full(n, v[0]) if v.size == 1 and n != 1 else v


def _check_array_result(res, out, ref, dt, shape, what, scale=None):
    if out is not None:
        assert res is out
    elif shape == ():
        _is_result_scalar(res, dt)
    else:
        assert type(res) is np.ndarray and res.shape == shape, (type(res), np.shape(res))
    check_close(res, ref, dt, what, scale=scale)
