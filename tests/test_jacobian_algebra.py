"""The algebra of the structured Jacobians against their dense matrices, exhaustively.

Written from the mutation run of fastjac.jacobian (issue 18; see docs/development.rst):
every product ``J @ v``, ``u @ J`` (1-D and 2-D operands), every composition ``J1 @ J2``
of two classes (and their transposes), ``numpy.asarray(J, dtype)``, and the error messages
that name the offending argument.
"""

import itertools

import numpy as np
import pytest

from fastjac.jacobian import Column, Dense, Diagonal, Row, RowScaled

RNG = np.random.default_rng(1818)


def _vec(n):
    # values away from 0 and 1, so that * and / (or + and -) give different results
    return RNG.uniform(1.5, 3.0, n) * RNG.choice([-1.0, 1.0], n)


def make(kind, m, n):
    """A Jacobian of ``kind`` with shape (m, n) where the class allows it, or None."""
    if kind == "Diagonal":
        return Diagonal(_vec(n)) if m == n else None
    if kind == "Column":
        return Column(_vec(m)) if n == 1 else None
    if kind == "Row":
        return Row(_vec(n)) if m == 1 else None
    if kind == "RowScaled":
        return RowScaled(_vec(m), RNG.uniform(-2, 2, (m, n)))
    if kind == "Dense":
        return Dense(RNG.uniform(-2, 2, (m, n)))
    raise AssertionError(kind)


KINDS = ["Diagonal", "Column", "Row", "RowScaled", "Dense"]
SHAPES = [(1, 1), (3, 3), (3, 1), (1, 3), (4, 3)]


def _all(transpose=True):
    out = []
    for kind in KINDS:
        for m, n in SHAPES:
            J = make(kind, m, n)
            if J is not None:
                out.append((f"{kind}{(m, n)}", J))
                if transpose:
                    out.append((f"{kind}{(m, n)}.T", J.T))
    return out


ALL = _all()


@pytest.mark.parametrize("label,J", ALL, ids=[a for a, _ in ALL])
def test_products_match_the_dense_matrix(label, J):
    M = J.todense()
    m, n = J.shape
    assert M.shape == (m, n)
    np.testing.assert_array_equal(J.todense(layout="denominator"), M.T)
    np.testing.assert_array_equal(np.asarray(J), M)
    a32 = np.asarray(J, dtype=np.float32)
    assert a32.dtype == np.float32
    np.testing.assert_array_equal(a32, M.astype(np.float32))
    # the __array__ protocol itself (NumPy casts its result again, hiding a wrong dtype)
    assert J.__array__(np.float32).dtype == np.float32
    assert J.__array__().dtype == M.dtype
    # Equivalent mutants left by mutmut in fastjac.jacobian (no test can kill them):
    # - Row._matvec taking np.array([r @ v]) for a 2-D v too: the same (1, k) array;
    # - Row._rmatvec taking u * r for a 1-D u: u has length 1, so u * r == r * u[0];
    # - _Transposed._matvec/_rmatvec taking the 2-D branch for a 1-D operand: .T of a
    #   1-D array is itself;
    # - _vector's kind string "fiub" padded with "X" characters: no dtype has kind "X".
    v, V = _vec(n), RNG.uniform(1.5, 3.0, (n, 2))
    u, U = _vec(m), RNG.uniform(1.5, 3.0, (2, m))
    for got, ref, what in ((J @ v, M @ v, "J @ v"), (J @ V, M @ V, "J @ V"),
                           (u @ J, u @ M, "u @ J"), (U @ J, U @ M, "U @ J")):
        got = np.asarray(got)
        assert got.shape == ref.shape, (label, what, got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13, err_msg=f"{label} {what}")
    # products with operands of the wrong length or rank are refused, naming both shapes
    for bad in (np.ones(n + 1), np.ones((n + 1, 2)), np.ones((n, 2, 1))):
        with pytest.raises(ValueError, match=r"cannot compute J @ v .*shape"):
            J @ bad
    for bad in (np.ones(m + 1), np.ones((2, m + 1)), np.ones((2, m, 1))):
        with pytest.raises(ValueError, match=r"cannot compute u @ J .*shape"):
            bad @ J


PAIRS = [(a, A, b, B) for (a, A), (b, B) in itertools.product(ALL, ALL)
         if A.shape[1] == B.shape[0]]


@pytest.mark.parametrize("a,A,b,B", PAIRS, ids=[f"{p[0]}@{p[2]}" for p in PAIRS])
def test_compositions_match_the_dense_product(a, A, b, B):
    C = A @ B
    ref = A.todense() @ B.todense()
    assert C.shape == ref.shape, (a, b)
    np.testing.assert_allclose(C.todense(), ref, rtol=1e-13, atol=1e-13, err_msg=f"{a} @ {b}")
    if isinstance(A, Diagonal) and isinstance(B, Diagonal):
        assert isinstance(C, Diagonal)  # diag ∘ diag stays diagonal (§4.5.3)


def test_composition_of_mismatched_shapes_is_refused():
    with pytest.raises(ValueError, match=r"cannot compose Jacobians of shapes \(3, 3\) and \(4, 4\)"):
        Diagonal(np.ones(3)) @ Diagonal(np.ones(4))


@pytest.mark.parametrize("cls,name", [(Diagonal, "d"), (Column, "c"), (Row, "r")])
def test_constructor_errors_name_the_argument(cls, name):
    with pytest.raises(ValueError, match=rf"^{name} must be 1-D, got shape \(2, 2\)"):
        cls(np.ones((2, 2)))
    with pytest.raises(TypeError, match=rf"^{name} must be real, got dtype complex128"):
        cls(np.ones(2, dtype=complex))
    with pytest.raises(TypeError, match=rf"^{name} must be real, got dtype"):
        cls(np.array(["a", "b"]))
    for ok in (np.ones(2, dtype=np.int32), np.ones(2, dtype=bool), np.ones(2, np.uint8)):
        assert cls(ok).shape[0] in (1, 2)


def test_rowscaled_and_dense_errors():
    with pytest.raises(ValueError, match=r"^s must be 1-D"):
        RowScaled(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"^s must be real"):
        RowScaled(np.ones(2, dtype=complex), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^M must be 2-D, got shape \(3,\)"):
        Dense(np.ones(3))
    D = Dense(np.ones((2, 3)))
    assert D.shape == (2, 3)
