"""fj.fuse's messages, constant folding and special exponents, each pinned exactly.

Complements test_fuse.py (values against NumPy and finite differences). Written against
the survivors of the sampled mutation run of ``fuse`` (issue 18).

Equivalent mutants of fastjac.fuse, left alive on purpose (no input tells them apart):

- ``_Trace.__init__`` keying the inputs ``("XXinXX", k)`` instead of ``("in", k)``: the
  key only has to differ from every other node's key, and both do;
- ``_Trace.op`` folding with ``b >= 1`` instead of ``b >= 0``: node 0 is the first input,
  never a constant, so a folded operand ``b`` is never 0;
- ``Fused._grad_outputs`` checking an array input's ``out`` against the common shape
  instead of its own: an array input (not a scalar) always has the common shape;
- ``_Compiled`` marking a unary node's missing operand -2 instead of -1: the Program
  (fused.pyx) tests only its sign;
- ``_Compiled``'s work estimate ``2 + ...`` per node instead of ``1 + ...``: it only sets
  the size below which a call runs serially, and every thread count gives the same bits.
"""

import sys

import numpy as np
import pytest

import fastjac as fj
from fastjac import _optable

FM = sys.modules["fastjac.fuse"]  # the module (fastjac.fuse the attribute is the function)
RNG = np.random.default_rng(3)
ONLY = ("is not supported on a traced value; a fused function may use only + - * / ** "
        "(constant exponent), abs() and fastjac's element-wise operations")


@pytest.mark.parametrize("fn, what, hint", [
    (lambda x: x[0], "indexing", "element-wise operations on whole arrays"),
    (lambda x: 2.0 ** x, "c ** x (a traced exponent)", "fj.exp(x * math.log(c))"),
    (lambda x: x @ x, "@ (matrix product)", "fj.dot outside the fused function"),
    (lambda x: x.sum(), "the attribute .sum", "fj.sum outside the fused function, or "
                                             "f.sum_grad"),
    (lambda x: int(x), "int()", None),
])
def test_refusals_name_the_operation_and_the_alternative(fn, what, hint):
    f = fj.fuse(fn)
    with pytest.raises(TypeError) as info:
        f(np.ones(3))
    expected = f"fj.fuse: {what} {ONLY}" + (f"; use {hint} instead" if hint else "")
    assert str(info.value) == expected


def test_argument_count_messages():
    g = fj.fuse(lambda w, x: w * x)

    def uses_g(x):
        return g(x)

    f = fj.fuse(uses_g)
    with pytest.raises(TypeError, match=r"^<lambda> takes 2 inputs, got 1$"):
        f(np.ones(3))
    with pytest.raises(TypeError, match=r"^<lambda>\.jacobian takes 2 inputs \(w, x\), "
                                        r"got 1 positional arguments$"):
        g.jacobian(np.ones(3))


def test_jvp_and_vjp_messages_name_the_argument():
    g = fj.fuse(lambda w, x: w * x)
    one = np.ones(3)
    with pytest.raises(ValueError, match=r"^x and dx must have the same shape; got "
                                         r"x\.shape=\(3,\) and dx\.shape=\(2,\)$"):
        g.jvp(one, one, one, np.ones(2))
    base = np.zeros(4)
    gy = base[:3]
    gy[:] = 1.0
    with pytest.raises(ValueError, match=r"^out\[0\] partially overlaps the input gy; "):
        g.vjp(one, one, gy, out=(base[1:], None))


def test_kernel_code_check():
    _optable.check_kernel_codes("m", {"a": 1, "b": 2}, {"b": 2, "a": 1})  # equal: silent
    with pytest.raises(ImportError, match=r"^fastjac: the op codes compiled into m "
                                          r"\(\{'a': 1\}\) differ from fastjac/_optable\.py "
                                          r"\(\{'a': 2\}\); rebuild the extension"):
        _optable.check_kernel_codes("m", {"a": 1}, {"a": 2})


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_constants_fold(dt):
    # x ** 0 is the constant 1; exp(1) * 3 folds to one constant computed by fastjac's
    # own kernels in double (then held in the computation dtype), leaving one addition
    # per element
    f = fj.fuse(lambda x: fj.exp(x ** 0) * 3.0 + x)
    assert f.n_ops == 1
    x = RNG.normal(size=50).astype(dt)
    c = float(fj.exp(np.float64(1.0))) * 3.0
    np.testing.assert_array_equal(f(x), dt(c) + x)
    np.testing.assert_array_equal(f.derivative(x), np.ones(50, dt))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_x_to_the_minus_one_is_reciprocal(dt):
    # the special exponents compile to the op itself: the same bits as fj.reciprocal
    # (the general power path rounds differently for some x)
    x = RNG.uniform(0.1, 10.0, size=1000).astype(dt)
    f = fj.fuse(lambda x: x ** -1.0)
    np.testing.assert_array_equal(f(x), fj.reciprocal(x))
    np.testing.assert_array_equal(f.derivative(x), fj.reciprocal.derivative(x))
    np.testing.assert_array_equal(fj.fuse(lambda x: x ** 0.5)(x), fj.sqrt(x))


def test_plain_vjp_takes_the_one_call_path(monkeypatch):
    # f.vjp(w, x, gy) on plain arrays is checked and run in one C call: the general
    # conversions must not run (a spy makes them raise); values as the general path
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x))
    w, x, gy = (RNG.normal(size=20) for _ in range(3))
    ref = f.vjp(list(w), list(x), list(gy))

    def refuse(*args, **kwargs):
        raise AssertionError("plain input took the general path")

    monkeypatch.setattr(FM.Fused, "_reverse", refuse)
    res = f.vjp(w, x, gy)
    for r, e in zip(res, ref):
        np.testing.assert_array_equal(r, e)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_out_takes_the_one_call_path(monkeypatch, dt):
    # out= on plain arrays (new, in place, one entry None, a list) is checked and run in one
    # C call too (a spy makes the general path raise): the bits of the call without out=
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    n = 5000
    w = RNG.uniform(-1, 1, n).astype(dt)
    x = RNG.uniform(0.5, 2, n).astype(dt)
    gy = RNG.normal(size=n).astype(dt)
    ref_g, ref_y, ref_s = f.vjp(w, x, gy), f(w, x), f.sum_grad(w, x)
    ref_vg = f._reverse((w, x, gy), True, True, None, 1, "value_and_vjp")
    assert np.array_equal(ref_vg[0], ref_y) and np.array_equal(ref_vg[1][1], ref_g[1])

    def refuse(*args, **kwargs):
        raise AssertionError("plain out= took the general path")

    monkeypatch.setattr(FM.Fused, "_reverse", refuse)
    monkeypatch.setattr(FM.Fused, "_prepare", refuse)
    for nt in (1, 2):
        o = (np.empty_like(w), np.empty_like(w))
        res = f.vjp(w, x, gy, out=o, n_threads=nt)
        assert res[0] is o[0] and res[1] is o[1]
        assert np.array_equal(o[0], ref_g[0]) and np.array_equal(o[1], ref_g[1])
        ww, gg = w.copy(), gy.copy()
        res = f.vjp(ww, x, gg, out=[ww, gg], n_threads=nt)  # in place, a list
        assert res[0] is ww and res[1] is gg
        assert np.array_equal(ww, ref_g[0]) and np.array_equal(gg, ref_g[1])
        o1 = np.empty_like(w)
        a, b = f.vjp(w, x, gy, out=(None, o1), n_threads=nt)
        assert b is o1 and np.array_equal(a, ref_g[0]) and np.array_equal(b, ref_g[1])
        xx = x.copy()
        assert f(w, xx, out=xx, n_threads=nt) is xx and np.array_equal(xx, ref_y)
        o = (np.empty_like(w), np.empty_like(w))
        a, b = f.sum_grad(w, x, out=o, n_threads=nt)
        assert a is o[0] and np.array_equal(a, ref_s[0]) and np.array_equal(b, ref_s[1])
        y, (a, b) = f.value_and_vjp(w, x, gy, n_threads=nt)
        assert np.array_equal(y, ref_y) and np.array_equal(a, ref_g[0])
        assert np.array_equal(b, ref_g[1])
        ww, xx, gg = w.copy(), x.copy(), gy.copy()
        y, (a, b) = f.value_and_vjp(ww, xx, gg, out=(gg, [ww, None]), n_threads=nt)
        assert y is gg and a is ww and np.array_equal(y, ref_y)
        assert np.array_equal(a, ref_g[0]) and np.array_equal(b, ref_g[1])
        oy = np.empty_like(w)
        y, (a, b) = f.value_and_vjp(w, x, gy, out=(oy, None), n_threads=nt)
        assert y is oy and np.array_equal(y, ref_y) and np.array_equal(b, ref_g[1])
    assert np.array_equal(w, w.copy()) and not np.shares_memory(ref_g[0], w)


def test_out_the_fast_path_declines_goes_to_the_checks():
    # out= arrays the one-call path does not take reach the general path's checks (or its
    # temporaries): the same results and the same errors as before it took out=
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    n = 1000
    w = RNG.uniform(-1, 1, n)
    x = RNG.uniform(0.5, 2, n)
    gy = RNG.normal(size=n)
    ref = f.vjp(w, x, gy)
    base = np.zeros(2 * n)
    with pytest.raises(ValueError,
                       match=r"^out\[0\] overlaps out\[1\]; outputs must not share memory$"):
        f.vjp(w, x, gy, out=(base[:n], base[n // 2:n // 2 + n]))
    o = np.empty(n)
    with pytest.raises(ValueError, match=r"overlaps"):
        f.vjp(w, x, gy, out=(o, o))
    with pytest.raises(ValueError, match=r"^out\[0\] partially overlaps the input x; "):
        buf = np.concatenate([x, x])
        f.vjp(w, buf[1:n + 1], gy, out=(buf[:n], None))
    ro = np.empty(n)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"^out\[0\] is read-only$"):
        f.vjp(w, x, gy, out=(ro, None))
    with pytest.raises(TypeError, match=r"^out\[1\] has dtype float32, expected float64"):
        f.vjp(w, x, gy, out=(None, np.empty(n, np.float32)))
    with pytest.raises(ValueError, match=r"^out\[0\] has shape \(999,\)"):
        f.vjp(w, x, gy, out=(np.empty(n - 1), None))
    with pytest.raises(TypeError, match=r"^out must be None or a sequence of 2 arrays"):
        f.vjp(w, x, gy, out=np.empty(n))
    with pytest.raises(TypeError, match=r"^out must be None or a sequence of 2 arrays"):
        f.vjp(w, x, gy, out=(np.empty(n),))
    with pytest.raises(ValueError, match=r"^out has shape"):
        f(w, x, out=np.empty(n + 1))
    o = np.empty(n)
    with pytest.raises(ValueError, match=r"^out\[0\] overlaps out\[1\]\[0\]"):
        f.value_and_vjp(w, x, gy, out=(o, (o, None)))
    with pytest.raises(TypeError, match=r"^out must be None or a pair \(y, grads\)$"):
        f.value_and_vjp(w, x, gy, out=(o,))
    # strided and Fortran-order outputs: through a temporary, the same bits
    s = np.empty(2 * n)[::2]
    res = f.vjp(w, x, gy, out=(s, None))
    assert res[0] is s and np.array_equal(s, ref[0]) and np.array_equal(res[1], ref[1])
    W, X, G = (a.reshape(20, 50) for a in (w, x, gy))
    F = np.asfortranarray(np.empty((20, 50)))
    res = f.vjp(W, X, G, out=(F, None))
    assert res[0] is F and np.array_equal(F.reshape(-1), ref[0])


def test_plain_input_names_match_the_signature():
    # fuse reads a plain function's inputs from its code object (fast); where it does, the
    # names are those inspect.signature gives, and anything else takes the signature path
    import functools
    import inspect

    def two(w, x):
        return w * x

    def with_default(w, x, c=2.0):
        return w * c + x

    def kw_only(w, *, c=2.0):
        return w * c

    def pos_only(w, /, x):
        return w + x

    def wrapped(w, x):
        return w - x
    wrapped.__wrapped__ = with_default

    for fn, want in ((two, ("w", "x")), (with_default, ("w", "x")), (kw_only, ("w",)),
                     (pos_only, ("w", "x")), (lambda a, b, c: a, ("a", "b", "c"))):
        assert FM._plain_input_names(fn) == want
        sig = inspect.signature(fn)
        assert want == tuple(p.name for p in sig.parameters.values()
                             if p.default is p.empty and p.kind != p.KEYWORD_ONLY)
        assert fj.fuse(fn).n_inputs == len(want)
    # the signature path: wrappers, partials, *args, a keyword-only input, no inputs
    assert FM._plain_input_names(wrapped) is None
    assert fj.fuse(wrapped).n_inputs == 2
    assert FM._plain_input_names(functools.partial(with_default, c=1.0)) is None
    assert fj.fuse(functools.partial(with_default, c=1.0)).n_inputs == 2

    def star(*xs):
        return xs[0]

    def kw_no_default(w, *, c):
        return w * c

    for fn, msg in ((star, r"\*args"), (kw_no_default, "keyword-only parameter c"),
                    (lambda c=1.0: c, "takes no inputs")):
        assert FM._plain_input_names(fn) is None
        with pytest.raises(TypeError, match=msg):
            fj.fuse(fn)


def test_input_names_paths_and_messages(monkeypatch):
    # The code-object path answers for a plain function without asking inspect.signature
    # (its whole point: tens of µs); a function carrying __signature__ takes the signature
    # path, which reads that signature; the signature path's names and its errors, word
    # for word.
    import inspect

    def two(w, x):
        return w * x

    def boom(*a, **k):
        raise AssertionError("inspect.signature called for a plain function")

    with monkeypatch.context() as m:
        m.setattr(inspect, "signature", boom)
        assert FM._input_names(two) == (("w", "x"), 2)
        assert fj.fuse(two).n_inputs == 2

    def scaled(a, b=None):
        return a * (2.0 if b is None else b)
    P = inspect.Parameter
    scaled.__signature__ = inspect.Signature([P("a", P.POSITIONAL_OR_KEYWORD),
                                              P("b", P.POSITIONAL_OR_KEYWORD)])
    assert FM._plain_input_names(scaled) is None
    assert FM._input_names(scaled) == (("a", "b"), 2)
    assert fj.fuse(scaled).n_inputs == 2

    def wrapped(w, x):
        return w - x

    def target(w, x, c=2.0):
        return w * c + x
    wrapped.__wrapped__ = target
    assert FM._input_names(wrapped) == (("w", "x"), 2)

    def unreadable(w):
        return w
    unreadable.__signature__ = 3  # inspect.signature raises TypeError
    with pytest.raises(TypeError, match=r"^fj\.fuse could not read the parameters of the "
                                        r"function; pass n_inputs=k$"):
        fj.fuse(unreadable)

    def star(w, *xs):
        return w

    with pytest.raises(TypeError, match=r"^fj\.fuse: the function must take a fixed number "
                                        r"of inputs \(no \*args / \*\*kwargs\); pass "
                                        r"n_inputs=k$"):
        fj.fuse(star)
    with pytest.raises(TypeError, match=r"^fj\.fuse: the function takes no inputs$"):
        fj.fuse(lambda c=1.0: c)

    # a parameter with a default, or a keyword-only one with a default, is skipped and
    # the parameters after it are still read (here: a keyword-only one without a default)
    def default_then_kw(a, b=1.0, *, c):
        return a * b * c

    def kw_default_then_kw(a, *, c=1.0, d):
        return a * c * d

    for fn, name in ((default_then_kw, "c"), (kw_default_then_kw, "d")):
        assert FM._plain_input_names(fn) is None
        with pytest.raises(TypeError, match=rf"^fj\.fuse: keyword-only parameter {name} has "
                                            r"no default$"):
            fj.fuse(fn)
