"""Each method of fastjac.ops names the argument at fault, checks every ``out=`` array
and ``n_threads``, and keeps the documented dtypes on its Python path.

Complements test_ops.py (values) and test_both_paths.py (fast and Python paths agree):
here every argument of every method is given a bad value once and the message must name
it exactly as the signature does. (Written against the survivors of the mutation run of
ops: an argument's name in a message, an overlap check or an ``n_threads`` check could be
dropped without a failing test.)
"""

import numpy as np
import pytest

import fastjac as fj

X = np.linspace(0.5, 2.0, 4)
W = np.linspace(-1.0, 1.0, 4)
C = X.astype(complex)
exp, mul = fj.UNARY["exp"], fj.BINARY["mul"]
DT = "has dtype complex128; fastjac computes on real numbers only"


def _e(n):
    return np.empty(n)


# Equivalent mutants of ops (value and messages unchanged; found by the mutation run):
# - a fast path skipped (``_K.binary_fast(..., w, None, ...)`` in BinaryOp.__call__): the Python
#   path computes the same bits, only slower;
# - ``getattr(v, "_fj_traced", None)`` for ``False``: both defaults are falsy;
# - the argument name given to ``V.operand`` after ``V.result_dtype`` checked the same
#   value under the same name (value_and_vjp's gy, sum.jvp's dx): operand cannot fail
#   where result_dtype passed, so that name is never shown.


# (call, exception, regex of the message)
CASES = {
    # unary
    "exp x": (lambda: exp(C), TypeError, rf"^x {DT}"),
    "exp out shape": (lambda: exp(X, out=_e(3)), ValueError,
                      r"^out has shape \(3,\), expected \(4,\)$"),
    "derivative x": (lambda: exp.derivative(C), TypeError, rf"^x {DT}"),
    "derivative out": (lambda: exp.derivative(X, out=_e(3)), ValueError, r"^out has shape"),
    "jvp dx": (lambda: exp.jvp(X, C), TypeError, rf"^dx {DT}"),
    "jvp shapes": (lambda: exp.jvp(X, X[:3]), ValueError,
                   r"^x and dx must have the same shape; got x.shape=\(4,\) and "
                   r"dx.shape=\(3,\)$"),
    "vjp gy": (lambda: exp.vjp(X, C), TypeError, rf"^gy {DT}"),
    "vjp shapes": (lambda: exp.vjp(X, X[:3]), ValueError,
                   r"^x and gy must have the same shape; got x.shape=\(4,\)"),
    "value_and_vjp x": (lambda: exp.value_and_vjp(C, X), TypeError, rf"^x {DT}"),
    "value_and_vjp gy": (lambda: exp.value_and_vjp(X, C), TypeError, rf"^gy {DT}"),
    "value_and_vjp gy list": (lambda: exp.value_and_vjp(X, [[1.0], [1.0, 2.0]]), TypeError,
                              r"^gy cannot be converted to a numeric array"),
    "value_and_vjp shapes": (lambda: exp.value_and_vjp(X, X[:3]), ValueError,
                             r"^x and gy must have the same shape; got x.shape=\(4,\) and "
                             r"gy.shape=\(3,\)$"),
    "value_and_vjp out pair": (lambda: exp.value_and_vjp(X, X, out=_e(4)), TypeError,
                               r"^out must be None or a pair \(y, gx\) of arrays or None$"),
    "value_and_vjp out[0]": (lambda: exp.value_and_vjp(X, X, out=(_e(3), None)), ValueError,
                             r"^out\[0\] has shape \(3,\), expected \(4,\)$"),
    "value_and_vjp out[1]": (lambda: exp.value_and_vjp(X, X, out=(None, _e(3))), ValueError,
                             r"^out\[1\] has shape \(3,\), expected \(4,\)$"),
    "value_and_vjp same out": (lambda: (lambda o: exp.value_and_vjp(X, X, out=(o, o)))(_e(4)),
                               ValueError, r"^out\[0\] overlaps out\[1\]; outputs must not "
                                           r"share memory$"),
    "value_and_vjp out[0] on x": (
        lambda: (lambda b: exp.value_and_vjp(b[1:5], X, out=(b[:4], None)))(
            np.linspace(0, 1, 5)),
        ValueError, r"^out\[0\] partially overlaps the input x;"),
    "value_and_vjp out[1] on gy": (
        lambda: (lambda b: exp.value_and_vjp(X, b[1:5], out=(None, b[:4])))(
            np.linspace(0, 1, 5)),
        ValueError, r"^out\[1\] partially overlaps the input gy;"),
    "value_and_vjp out[1] on x": (
        lambda: (lambda b: exp.value_and_vjp(b[1:5], X, out=(None, b[:4])))(
            np.linspace(0, 1, 5)),
        ValueError, r"^out\[1\] partially overlaps the input x;"),
    "value_and_vjp gy None": (lambda: exp.value_and_vjp(X, None), TypeError,
                              r"^gy must be an array or a number, not None$"),
    # binary
    "mul w": (lambda: mul(C, X), TypeError, rf"^w {DT}"),
    "mul x": (lambda: mul(W, C), TypeError, rf"^x {DT}"),
    "mul jvp dw": (lambda: mul.jvp(W, X, C, None), TypeError, rf"^dw {DT}"),
    "mul jvp dx": (lambda: mul.jvp(W, X, None, C), TypeError, rf"^dx {DT}"),
    "mul jvp dw shape": (lambda: mul.jvp(W, X, X[:3], None), ValueError,
                         r"^w and dw must have the same shape; got w.shape=\(4,\) and "
                         r"dw.shape=\(3,\)$"),
    "mul jvp dx shape": (lambda: mul.jvp(W, X, None, X[:3]), ValueError,
                         r"^x and dx must have the same shape; got x.shape=\(4,\) and "
                         r"dx.shape=\(3,\)$"),
    "mul jvp out": (lambda: mul.jvp(W, X, W, X, out=_e(3)), ValueError,
                    r"^out has shape \(3,\), expected \(4,\)$"),
    "mul jvp out on dx": (
        lambda: (lambda b: mul.jvp(W, X, None, b[1:5], out=b[:4]))(np.linspace(0, 1, 5)),
        ValueError, r"^out partially overlaps the input dx;"),
    "mul vjp gy": (lambda: mul.vjp(W, X, C), TypeError, rf"^gy {DT}"),
    "mul vjp gy shape": (lambda: mul.vjp(W, X, X[:3]), ValueError,
                         r"^y and gy must have the same shape; got y.shape=\(4,\) and "
                         r"gy.shape=\(3,\)$"),
    "mul vjp out pair": (lambda: mul.vjp(W, X, X, out=(None,)), TypeError,
                         r"^out must be None or a pair \(gw, gx\) of arrays or None$"),
    "mul vjp same out": (lambda: (lambda o: mul.vjp(W, X, X, out=(o, o)))(_e(4)), ValueError,
                         r"^out\[0\] overlaps out\[1\]; outputs must not share memory$"),
    "mul vjp out[1] dtype": (lambda: mul.vjp(W, X, X, out=(None, np.empty(4, np.float32))),
                             TypeError, r"^out\[1\] has dtype float32, expected float64"),
    "mul vjp scalar out[0]": (lambda: mul.vjp(2.0, X, X, out=(_e(4), None)), ValueError,
                              r"^out\[0\] has shape \(4,\), expected \(\)$"),
    "mul vjp scalar out[0] dtype": (lambda: mul.vjp(2.0, X, X, out=(np.empty((), "f4"), None)),
                                    TypeError, r"^out\[0\] has dtype float32, expected "
                                               r"float64"),
    "mul vjp scalar out[1]": (lambda: mul.vjp(W, 2.0, X, out=(None, _e(4))), ValueError,
                              r"^out\[1\] has shape \(4,\), expected \(\)$"),
    "mul sum_grad out": (lambda: mul.sum_grad(W, X, out=(_e(3), None)), ValueError,
                         r"^out\[0\] has shape \(3,\), expected \(4,\)$"),
    "mul shapes": (lambda: mul(W, X[:3]), ValueError,
                   r"^w and x must have the same shape, or one of them must be a scalar"),
    # dot and sum
    "dot w": (lambda: fj.dot(C, X), TypeError, rf"^w {DT}"),
    "dot jvp dx": (lambda: fj.dot.jvp(W, X, None, C), TypeError, rf"^dx {DT}"),
    "dot jvp dw": (lambda: fj.dot.jvp(W, X, C, None), TypeError, rf"^dw {DT}"),
    "mul out python path": (lambda: mul(list(W), X, out=_e(3)), ValueError,
                            r"^out has shape \(3,\), expected \(4,\)$"),
    "mul vjp out[0] on w": (
        lambda: (lambda b: mul.vjp(b[1:5], X, X, out=(b[:4], None)))(np.linspace(0, 1, 5)),
        ValueError, r"^out\[0\] partially overlaps the input w;"),
    "sum x": (lambda: fj.sum(C), TypeError, rf"^x {DT}"),
    "sum jvp dx": (lambda: fj.sum.jvp(X, C), TypeError, rf"^dx {DT}"),
    "sum jvp shapes": (lambda: fj.sum.jvp(X, X[:3]), ValueError,
                       r"^x and dx must have the same shape"),
    "sum vjp gy": (lambda: fj.sum.vjp(X, X), TypeError, r"^gy must be a real number, got "
                                                        r"ndarray$"),
    "sum vjp nan": (lambda: fj.sum.vjp(X, np.nan), ValueError, r"^gy must be finite, got nan$"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_argument_is_named(case):
    call, exc, msg = CASES[case]
    with pytest.raises(exc, match=msg):
        call()


# every method checks n_threads, also on its Python path (a list input)
NT_CALLS = {
    "exp": lambda nt: exp(list(X), n_threads=nt),
    "derivative": lambda nt: exp.derivative(list(X), n_threads=nt),
    "jvp": lambda nt: exp.jvp(list(X), X, n_threads=nt),
    "vjp": lambda nt: exp.vjp(list(X), X, n_threads=nt),
    "value_and_vjp": lambda nt: exp.value_and_vjp(list(X), X, n_threads=nt),
    "jacobian": lambda nt: exp.jacobian(list(X), n_threads=nt),
    "mul": lambda nt: mul(list(W), X, n_threads=nt),
    "mul.jvp": lambda nt: mul.jvp(list(W), X, W, X, n_threads=nt),
    "mul.vjp": lambda nt: mul.vjp(list(W), X, X, n_threads=nt),
    "mul.sum_grad": lambda nt: mul.sum_grad(list(W), X, n_threads=nt),
    "mul.jacobian": lambda nt: mul.jacobian(list(W), X, n_threads=nt),
    "mul.jacobian scalar": lambda nt: mul.jacobian(2.0, X, n_threads=nt),
    "sum": lambda nt: fj.sum(list(X), n_threads=nt),
}


@pytest.mark.parametrize("name", list(NT_CALLS))
def test_n_threads_is_checked(name):
    call = NT_CALLS[name]
    with pytest.raises(ValueError, match=r"^n_threads must be a positive integer or None, "
                                         r"got 0$"):
        call(0)
    with pytest.raises(TypeError, match=r"^n_threads must be a positive integer or None"):
        call(1.5)
    call(1)
    call(None)


def test_python_path_dtypes_and_infinite_cotangent():
    w32 = W.astype(np.float32)
    Jw, Jx = mul.jacobian(w32, 2.0)
    assert Jw.d.dtype == np.float32 and Jx.c.dtype == np.float32
    np.testing.assert_array_equal(Jx.c, w32)
    Jw, Jx = mul.jacobian(2.0, w32)
    assert Jw.c.dtype == np.float32 and Jx.d.dtype == np.float32
    np.testing.assert_array_equal(Jw.c, w32)
    # a scalar operand's gradient into a 0-d out of the right dtype
    o = np.empty((), np.float32)
    gw, gx = mul.vjp(2.0, w32, w32, out=(o, None))
    assert gw is o and o == np.float32(np.sum(w32.astype(np.float64) ** 2))
    # sum's VJP accepts an infinite cotangent (documented: any non-NaN real)
    np.testing.assert_array_equal(fj.sum.vjp(X, np.inf), np.full(4, np.inf))
    np.testing.assert_array_equal(fj.sum.vjp(list(X), -np.inf), np.full(4, -np.inf))


def test_out_is_returned_and_dtypes_follow_every_input():
    o = np.empty(())
    assert exp(0.5, out=o) is o and o == np.exp(0.5)
    assert exp([0.5], out=np.empty(1)).shape == (1,)
    o = np.empty(())
    assert mul(0.5, 2.0, out=o) is o and o == 1.0
    x32 = X.astype(np.float32)
    assert fj.dot(list(W), x32).dtype == np.float64  # w's float64 counts
    assert fj.dot(x32, list(W)).dtype == np.float64
    assert fj.dot(x32, x32).dtype == np.float32


def test_elementwise_names():
    assert fj.elementwise(mul).name == "mul[w, x]"
    assert fj.elementwise(mul, f=exp).name == "mul[exp(w), x]"
    assert fj.elementwise(mul, g=fj.UNARY["sin"]).name == "mul[w, sin(x)]"
    with pytest.raises(TypeError, match=r"^op must be a fastjac binary operator, got "
                                        r"UnaryOp$"):
        fj.elementwise(exp)
    with pytest.raises(TypeError, match=r"^g must be a fastjac unary function, got "
                                        r"BinaryOp$"):
        fj.elementwise(mul, g=mul)


# ---------------------------------------------------------------------------------------
# fastjac._validate's helpers, through the public functions that use them (written against
# the survivors of a sampled mutation run of _validate). Equivalent mutant there:
# ``reshape(-2)`` for ``reshape(-1)`` (NumPy 2.x takes any negative size as "the rest").
# The shortcuts for plain input (``type(value) is np.ndarray`` in ``operand``/``vector``,
# ``result_dtype``'s one-dtype case) give the same values when turned off and are pinned
# by test_plain_input_skips_the_conversions; ``n_threads`` ignored
# (``_pool.resolve(None, ...)``) changes only the thread count, pinned by
# test_n_threads_is_an_upper_bound.
# ---------------------------------------------------------------------------------------


def test_validate_helpers_through_the_api():
    from fastjac import neuron
    with pytest.raises(TypeError, match=rf"^x {DT} \(float32/float64, or integers/bools "
                                        r"which compute in float64\)$"):
        exp(1j)
    # a Python float is a weak scalar: float16 data computes in float32
    assert mul(np.ones(3, np.float16), 2.0).dtype == np.float32
    assert mul(2.0, np.ones(3, np.float16)).dtype == np.float32
    # a 0-d array cotangent is a number; its messages name the argument
    np.testing.assert_array_equal(fj.sum.vjp(X, np.array(2.0)), np.full(4, 2.0))
    with pytest.raises(TypeError, match=r"^gy must be a real number, got complex128$"):
        fj.sum.vjp(X, np.array(1j))
    # in place: out may be exactly an input (also on the Python path)
    x = X.copy()
    r = exp.vjp(x, list(np.ones(4)), out=x)
    assert r is x and np.array_equal(x, np.exp(X))
    # N-d contiguous operands on the Python path
    np.testing.assert_array_equal(mul(np.ones((2, 3)), [[1, 2, 3], [4, 5, 6]]),
                                  [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(TypeError, match=r"^wrt must hold strings, got 5$"):
        neuron.loss_grad(np.ones((2, 2)), np.ones(2), np.ones(2), 0.0, wrt=(5,))
    with pytest.raises(TypeError, match=r"^callback must be callable or None, got int$"):
        neuron.fit(np.ones((2, 2)), np.ones(2), 0.1, 1, callback=5)


# Written against the last open survivors of the sampled mutation run of _validate.
# Another equivalent mutant there: ``output`` returning the fresh buffer N-d
# (``reshape(None)``): the kernels read any C-contiguous buffer by its size, so a flat
# view and the N-d array give the same bits.

def test_result_dtype_failure_names_the_arguments(monkeypatch):
    # No input is known to make numpy.result_type fail once every dtype passed the
    # real-number check; the message is still pinned: it names the arguments given
    # (None ones skipped) and keeps NumPy's reason.
    from fastjac import _validate as V

    def fail(*parts):
        raise TypeError("no common type")

    monkeypatch.setattr(V.np, "result_type", fail)
    with pytest.raises(TypeError, match=r"^cannot find a common float dtype for w, x: "
                                        r"no common type$"):
        V.result_dtype(("w", np.ones(2, np.int8)), ("t", None), ("x", 1.5))


def test_n_threads_is_an_upper_bound():
    # n_threads=1 runs serially whatever the cap; None takes the cap; tiny work is serial
    from fastjac import _validate as V
    from fastjac._kernels import pool
    old = pool.thread_info()["max_threads"]
    try:
        cap = pool.set_max_threads(2)
        # the serial build (FASTJAC_SERIAL=1) has no pool threads: every call is serial
        usable = cap if pool.thread_info()["threads_enabled"] else 1
        big = 10 ** 9
        assert V.n_threads(1, big, 1000) == 1
        assert V.n_threads(None, big, 1000) == usable
        assert V.n_threads(np.int64(2), big, 1000) == min(2, usable)
        assert V.n_threads(None, 10, 1000) == 1
    finally:
        pool.set_max_threads(old)


def test_plain_input_skips_the_conversions(monkeypatch):
    # the shortcuts of _validate for what a hot loop passes: an ndarray of the right
    # dtype is used as it is (no np.asarray call, no copy), and float64/float32 arrays
    # with Python scalars need no np.result_type call
    from fastjac import _validate as V

    def refuse(*args, **kwargs):
        raise AssertionError("general conversion called for plain input")

    a = np.arange(4.0)
    m = np.ones((2, 3), np.float32)
    monkeypatch.setattr(V, "_asarray", refuse)
    monkeypatch.setattr(V.np, "result_type", refuse)
    flat, shape = V.operand(a, "x", np.dtype(np.float64))
    assert flat is a and shape == (4,)
    assert V.vector(a, "x", np.dtype(np.float64)) is a
    assert V.result_dtype(("w", a), ("x", 2.0), ("t", None)) is np.dtype(np.float64)
    assert V.result_dtype(("w", m), ("x", m), ("s", 3)) is np.dtype(np.float32)


# Equivalent mutants of the session-7 sample (ops.py, the methods' fast paths):
# UnaryOp.derivative passing None for unary_fast's ``value`` flag (a bint: None is False),
# and BinaryOp.__call__ reading ``getattr(w, "_fj_traced", None)`` (None is as false as
# the default False).
def test_binary_call_general_path_refusals_and_scalars():
    # BinaryOp.__call__'s general path (survivors of the session-7 mutation sample): an
    # out= that partially overlaps an input is refused before anything is written, a
    # scalar call returns a NumPy scalar of the dtype, and inside fj.fuse a traced operand
    # on either side (the other a constant) is traced, and out= is refused word for word
    w = np.arange(10.0)
    with pytest.raises(ValueError, match=r"^out partially overlaps the input w"):
        fj.add(w[:-1], np.ones(9), out=w[1:])
    np.testing.assert_array_equal(w, np.arange(10.0))
    for a, b, t in ((np.float64(2), np.float64(3), np.float64),
                    (np.float32(2), np.float32(3), np.float32), (np.array(2.0), 3.0, np.float64)):
        r = fj.mul(a, b)
        assert type(r) is t and r == 6
    f = fj.fuse(lambda w, x: fj.mul(w, 3.0) + fj.sub(2.0, x))
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]), np.array([0.5, 0.25])), [4.5, 7.75])
    with pytest.raises(TypeError, match=r"^mul: out= is not supported inside fj\.fuse$"):
        fj.fuse(lambda w, x: fj.mul(w, x, out=np.empty(3)))(np.ones(3), np.ones(3))


@pytest.mark.parametrize("method", ["call", "derivative", "jvp", "vjp"])
def test_unary_n_threads_1_starts_no_parallel_loop(method):
    # n_threads reaches the fast path's kernel: with 1, a call far above the parallel
    # threshold runs on the calling thread (fastjac.thread_info()'s parallel_calls)
    from fastjac._kernels import pool
    x = np.linspace(0.1, 2.0, 1 << 20)
    call = {"call": lambda: fj.tanh(x, n_threads=1),
            "derivative": lambda: fj.tanh.derivative(x, n_threads=1),
            "jvp": lambda: fj.tanh.jvp(x, x, n_threads=1),
            "vjp": lambda: fj.tanh.vjp(x, x, n_threads=1)}[method]
    before = pool.thread_info()["parallel_calls"]
    call()
    assert pool.thread_info()["parallel_calls"] == before
    if pool.thread_info()["max_threads"] > 1:  # and the default does start one
        getattr(fj.tanh, {"call": "__call__"}.get(method, method))(
            *((x,) if method in ("call", "derivative") else (x, x)))
        assert pool.thread_info()["parallel_calls"] > before
