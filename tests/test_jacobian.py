"""Structured Jacobians (jacobian.py): products, composition, layouts, never dense."""

import numpy as np
import pytest

import fastjac as fj
from fastjac.jacobian import Column, Dense, Diagonal, Row, RowScaled

RNG = np.random.default_rng(7)


def test_paper_layout_example():
    """§4: f = 3x²y, g = 2x + y⁸: numerator [[6yx, 3x²],[2, 8y⁷]], denominator its transpose."""
    x, y = 2.0, 1.5
    J = Dense([[6 * y * x, 3 * x**2], [2, 8 * y**7]])
    np.testing.assert_array_equal(J.todense(), [[18.0, 12.0], [2.0, 8 * 1.5**7]])
    np.testing.assert_array_equal(J.todense(layout="denominator"), [[18.0, 2.0], [12.0, 8 * 1.5**7]])
    with pytest.raises(ValueError, match="layout"):
        J.todense(layout="rows")


def test_diagonal_products_and_chain_rule():
    d1, d2 = RNG.standard_normal(6), RNG.standard_normal(6)
    A, B = Diagonal(d1), Diagonal(d2)
    v, M = RNG.standard_normal(6), RNG.standard_normal((6, 3))
    np.testing.assert_allclose(A @ v, np.diag(d1) @ v)
    np.testing.assert_allclose(v @ A, v @ np.diag(d1))
    np.testing.assert_allclose(A @ M, np.diag(d1) @ M)
    np.testing.assert_allclose(M.T @ A, M.T @ np.diag(d1))
    C = A @ B  # vector chain rule with diagonal factors (§4.5.3) stays diagonal
    assert isinstance(C, Diagonal)
    np.testing.assert_allclose(C.todense(), np.diag(d1) @ np.diag(d2))
    assert A.T is A and A.shape == (6, 6)
    np.testing.assert_array_equal(np.asarray(A), np.diag(d1))


def test_chain_rule_through_ops_matches_dense_product():
    x = RNG.uniform(0.5, 2, 8)
    u = fj.square(x)
    J = fj.sin.jacobian(u) @ fj.square.jacobian(x)  # ∂sin(x²)/∂x
    assert isinstance(J, Diagonal)
    np.testing.assert_allclose(J.diagonal(), fj.chain(fj.sin, fj.square).derivative(x), rtol=1e-15)


def test_column_and_row():
    c, r = RNG.standard_normal(5), RNG.standard_normal(4)
    Cc, Rr = Column(c), Row(r)
    assert Cc.shape == (5, 1) and Rr.shape == (1, 4)
    np.testing.assert_allclose(Cc @ np.array([2.0]), 2 * c)
    np.testing.assert_allclose(np.ones(5) @ Cc, [c.sum()])
    np.testing.assert_allclose(Rr @ np.ones(4), [r.sum()])
    np.testing.assert_allclose(np.array([3.0]) @ Rr, 3 * r)
    np.testing.assert_array_equal(Cc.todense(layout="denominator"), c[None, :])
    assert isinstance(Cc.T, Row) and isinstance(Rr.T, Column)
    outer = Column(c) @ Row(r[:1])
    np.testing.assert_allclose(outer.todense(), np.outer(c, r[:1]))
    # Row @ Diagonal: gradient of sum(f(x)) = 1ᵀ diag(f'(x))
    d = RNG.standard_normal(4)
    g = Row(np.ones(4)) @ Diagonal(d)
    assert isinstance(g, Row)
    np.testing.assert_array_equal(g.r, d)
    # dot product via the chain rule: 1ᵀ diag(x) = xᵀ (§5)
    x = RNG.standard_normal(4)
    np.testing.assert_array_equal((Row(np.ones(4)) @ fj.mul.jacobian(r, x)[0]).r, x)


def test_rowscaled_never_copies_X_and_matches_dense():
    X = RNG.standard_normal((7, 3))
    s = (RNG.random(7) > 0.4).astype(float)
    J = RowScaled(s, X)
    assert J.X is X and J.shape == (7, 3)
    dense = np.diag(s) @ X
    v, u = RNG.standard_normal(3), RNG.standard_normal(7)
    np.testing.assert_allclose(J @ v, dense @ v)
    np.testing.assert_allclose(u @ J, u @ dense)
    np.testing.assert_allclose(J.todense(), dense)
    np.testing.assert_allclose(J.T @ u, dense.T @ u)
    np.testing.assert_allclose(v @ J.T, v @ dense.T)
    np.testing.assert_allclose(J.T.todense(), dense.T)
    d = RNG.standard_normal(7)
    K = Diagonal(d) @ J
    assert isinstance(K, RowScaled) and K.X is X
    np.testing.assert_allclose(K.todense(), np.diag(d) @ dense)
    g = Row(np.ones(7)) @ J
    np.testing.assert_allclose(g.r, dense.sum(axis=0))


def test_shape_errors():
    with pytest.raises(ValueError, match="cannot compute"):
        Diagonal(np.ones(3)) @ np.ones(4)
    with pytest.raises(ValueError, match="cannot compose"):
        Diagonal(np.ones(3)) @ Diagonal(np.ones(4))
    with pytest.raises(ValueError, match="1-D"):
        Diagonal(np.ones((2, 2)))
    with pytest.raises(ValueError, match="rows"):
        RowScaled(np.ones(3), np.ones((4, 2)))
