"""Every gradient method hands its own arguments and result to its validation hook.

The hooks themselves (that a wrong result raises) are tested in test_gradcheck.py and
test_gradcheck_units.py; here each public method is called inside ``validating()`` with
the hooks replaced by recorders, and the recorded call must name the method, carry the
very arguments given and the very result returned. Outside ``validating()`` no hook is
called. (Written against the survivors of the mutation runs of ops and neuron, which
changed a hook's method name or arguments without any test noticing.)
"""

import numpy as np
import pytest

import fastjac as fj
from fastjac import _config, _validation, neuron
from fastjac.gradcheck import validating


@pytest.fixture
def hooks(monkeypatch):
    calls = []
    for name in ("cross_check", "cross_check_unary", "cross_check_binary",
                 "cross_check_neuron"):
        def rec(*args, _name=name, **kw):
            calls.append((_name,) + args + ((kw,) if kw else ()))
        monkeypatch.setattr(_validation, name, rec)
    return calls


def _same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a is b


X = np.linspace(0.5, 2.0, 6)
W = np.linspace(-1.0, 1.0, 6)
G = np.linspace(1.0, 3.0, 6)
D = np.linspace(-2.0, 0.5, 6)


def test_unary_methods(hooks):
    op = fj.UNARY["exp"]
    with validating():
        r1 = op.derivative(X)
        r2 = op.jvp(X, D)
        r3 = op.vjp(X, G)
        r4 = op.value_and_vjp(X, G)
    assert len(hooks) == 4
    for call, (method, args, res) in zip(hooks, [
            ("derivative", (X,), r1), ("jvp", (X, D), r2), ("vjp", (X, G), r3),
            ("value_and_vjp", (X, G), r4)]):
        assert call[0] == "cross_check_unary" and call[1] is op and call[2] == method
        assert _same(call[3], args) and call[4] is res and len(call) == 5, call[:3]
    op.derivative(X)
    assert len(hooks) == 4 or _config.ENV_VALIDATE


def test_binary_methods(hooks):
    op = fj.BINARY["mul"]
    with validating():
        r1 = op.jvp(W, X, D, G)
        r2 = op.vjp(W, X, G)
        r3 = op.sum_grad(W, X)
        r4 = op.jacobian(W, X)
        r5 = op.jvp(W, X, None, G)
    expect = [("jvp", (W, X, D, G), r1), ("vjp", (W, X, G), r2), ("sum_grad", (W, X), r3),
              ("jacobian", (W, X), r4), ("jvp", (W, X, None, G), r5)]
    assert len(hooks) == len(expect)
    for call, (method, args, res) in zip(hooks, expect):
        assert call[0] == "cross_check_binary" and call[1] is op and call[2] == method
        assert _same(call[3], args) and call[4] is res and len(call) == 5, call[:3]


def test_dot_and_sum(hooks):
    with validating():
        r1 = fj.dot.grad(W, X)
        r2 = fj.dot.jvp(W, X, D, None)
        r3 = fj.dot.vjp(W, X, 2.5)
        r4 = fj.sum.grad(X)
        r5 = fj.sum.jvp(X, D)
        r6 = fj.sum.vjp(X, 2.5)
    assert [c[0] for c in hooks] == ["cross_check"] * 6
    assert all(c[1] is fj.dot for c in hooks[:3]) and all(c[1] is fj.sum for c in hooks[3:])
    g = hooks[0]
    assert g[2:4] == ("grad", (W, X)) and g[4] is None and g[5] is r1 and g[6] == "dot.grad"
    j = hooks[1]
    assert j[2] == "jvp" and _same(j[3], (W, X)) and j[4][0] is D and j[5] is r2
    assert np.array_equal(j[4][1], np.zeros(6)) and j[6] == "dot.jvp"
    v = hooks[2]
    assert v[2] == "vjp" and _same(v[3], (W, X)) and v[4] == 2.5 and v[5] is r3
    assert v[6] == "dot.vjp"
    s = hooks[3]
    assert s[2] == "grad" and _same(s[3], (X,)) and s[4] is None and s[5][0] is r4
    assert s[6] == "sum.grad" and len(s[5]) == 1
    s = hooks[4]
    assert s[2] == "jvp" and _same(s[3], (X,)) and _same(s[4], (D,)) and s[5] is r5
    assert s[6] == "sum.jvp"
    s = hooks[5]
    assert s[2] == "vjp" and _same(s[3], (X,)) and s[4] == 2.5 and s[5][0] is r6
    assert s[6] == "sum.vjp" and len(s[5]) == 1
    assert all(len(c) == 7 for c in hooks)


def test_neuron_methods(hooks):
    rng = np.random.default_rng(0)
    Xm = rng.standard_normal((8, 3))
    y = rng.standard_normal(8)
    w = rng.standard_normal(3)
    with validating():
        J = neuron.activation_jacobian(Xm, w, 0.25)
        res = neuron.loss_grad(Xm, y, w, 0.25)
    assert [c[0] for c in hooks] == ["cross_check_neuron"] * 2
    a, lg = hooks
    assert a[1] == "activation_jacobian" and a[2][0] is Xm and a[3] is J
    assert a[4] == {"activation": neuron.activation, "loss": neuron.loss}
    assert lg[1] == "loss_grad" and lg[3] is res and len(lg[2]) == 4
    np.testing.assert_array_equal(lg[2][0], Xm)
    np.testing.assert_array_equal(lg[2][1], y)
    assert lg[4] == {"activation": neuron.activation, "loss": neuron.loss}
