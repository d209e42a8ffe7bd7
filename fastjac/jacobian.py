"""Structured Jacobians: the matrices of the paper, stored without their zeros.

The paper's element-wise rules (§4.2) give diagonal Jacobians, scalar expansion (§4.3)
gives a column (∂y/∂z for a scalar z), reductions (§4.4) give a row (∂y/∂x for a scalar y),
and the ReLU neuron over a batch (§5) gives ``diag(mask) X``. Each class here holds only the
vectors that define its matrix, multiplies by vectors and matrices in O(size of those
vectors), and composes with the others by the vector chain rule (§4.5.3) without ever
forming an n x n array: ``Diagonal @ Diagonal`` stays ``Diagonal``. ``todense()`` is the
only method that builds the full matrix.

Layout: every object is stored in the paper's *numerator* layout (one row per output, one
column per input: ∂y/∂x is m x n). ``todense(layout="denominator")`` returns the transpose,
the layout many other texts use.

Products follow NumPy's ``@`` conventions: ``J @ v`` with a 1-D ``v`` of length n is the
Jacobian-vector product (forward mode, length m); ``u @ J`` with a 1-D ``u`` of length m is
the vector-Jacobian product (reverse mode, length n); 2-D operands are matrices.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__all__ = ["Jacobian", "Diagonal", "Column", "Row", "RowScaled", "Dense", "LayerJacobian"]

_LAYOUTS = ("numerator", "denominator")


def _vector(v: npt.ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be real, got dtype {a.dtype}")
    return a


def _check_layout(layout: str) -> None:
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'numerator' or 'denominator', got {layout!r}")


class Jacobian:
    """Base class: a linear map stored in structured form (numerator layout).

    Attributes
    ----------
    shape : tuple of int
        ``(m, n)``: m outputs (rows) by n inputs (columns), the paper's numerator layout.
    dtype : numpy.dtype
        The dtype of the stored vectors (of ``todense()``).

    Notes
    -----
    ``J @ v`` (v of shape (n,) or (n, k)) is forward mode, ``u @ J`` (u of shape (m,) or
    (k, m)) is reverse mode, ``J1 @ J2`` composes two Jacobians by the vector chain rule
    (paper §4.5.3), keeping the structure where the product has one. ``J.T`` is the
    transpose, sharing storage. ``numpy.asarray(J)`` and ``J.todense()`` build the matrix.
    """

    __array_priority__ = 1000  # make ``ndarray @ J`` defer to ``J.__rmatmul__``

    shape: Tuple[int, int] = (0, 0)

    @property
    def dtype(self) -> np.dtype:
        raise NotImplementedError

    def todense(self, layout: str = "numerator") -> np.ndarray:
        """The full matrix.

        Parameters
        ----------
        layout : {"numerator", "denominator"}, default "numerator"
            ``"numerator"``: one row per output, shape ``self.shape`` (the paper's layout).
            ``"denominator"``: the transpose, one row per input.

        Returns
        -------
        numpy.ndarray
            A new (m, n) array, or (n, m) for the denominator layout.
        """
        _check_layout(layout)
        dense = self._dense()
        return dense if layout == "numerator" else dense.T.copy()

    # -- what each subclass provides --------------------------------------------------------
    def _dense(self) -> np.ndarray:
        raise NotImplementedError

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _rmatvec(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __array__(self, dtype: Optional[npt.DTypeLike] = None,
                  copy: Optional[bool] = None) -> np.ndarray:
        dense = self._dense()
        return dense if dtype is None else dense.astype(dtype)

    # -- products ---------------------------------------------------------------------------
    def _check_right(self, v):
        a = np.asarray(v)
        if a.ndim not in (1, 2) or a.shape[0] != self.shape[1]:
            raise ValueError(
                f"cannot compute J @ v for J of shape {self.shape} and v of shape {a.shape}"
            )
        return a

    def _check_left(self, u):
        a = np.asarray(u)
        if a.ndim not in (1, 2) or a.shape[-1] != self.shape[0]:
            raise ValueError(
                f"cannot compute u @ J for u of shape {a.shape} and J of shape {self.shape}"
            )
        return a

    def __matmul__(self, other: Union["Jacobian", npt.ArrayLike]) -> Any:
        if isinstance(other, Jacobian):
            if self.shape[1] != other.shape[0]:
                raise ValueError(
                    f"cannot compose Jacobians of shapes {self.shape} and {other.shape}"
                )
            return self._compose(other)
        return self._matvec(self._check_right(other))

    def __rmatmul__(self, other: npt.ArrayLike) -> np.ndarray:
        return self._rmatvec(self._check_left(other))

    def _compose(self, other):
        # Generic fallback: J1 @ J2 through J2's dense form is avoided where a structured
        # rule exists (subclasses override); this builds only the m x k result.
        return Dense(self._matvec(other._dense()))

    @property
    def T(self) -> "Jacobian":
        """The transpose (the denominator-layout Jacobian), sharing storage."""
        return _Transposed(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class Diagonal(Jacobian):
    """``diag(d)``: the n x n Jacobian of an element-wise map (paper §4.2).

    Parameters
    ----------
    d : array_like, shape (n,)
        The diagonal ∂y_i/∂x_i (real; kept, not copied, when it is an ndarray).

    Examples
    --------
    >>> import numpy as np, fastjac as fj
    >>> J = fj.Diagonal(np.array([1.0, 2.0, 3.0]))     # ∂(w ⊗ x)/∂w = diag(x)
    >>> J @ np.ones(3)                                  # forward mode: d ⊗ v
    array([1., 2., 3.])
    >>> (J @ J).d                                       # diag ∘ diag stays diagonal
    array([1., 4., 9.])
    """

    def __init__(self, d: npt.ArrayLike) -> None:
        self.d = _vector(d, "d")
        n = self.d.shape[0]
        self.shape = (n, n)

    @property
    def dtype(self) -> np.dtype:
        return self.d.dtype

    def diagonal(self) -> np.ndarray:
        """The diagonal vector ``d`` (not a copy)."""
        return self.d

    def _dense(self):
        return np.diag(self.d)

    def _matvec(self, v):
        return self.d * v if v.ndim == 1 else self.d[:, None] * v

    def _rmatvec(self, u):
        return u * self.d

    def _compose(self, other):
        if isinstance(other, Diagonal):
            return Diagonal(self.d * other.d)
        if isinstance(other, Column):
            return Column(self.d * other.c)
        if isinstance(other, RowScaled):
            return RowScaled(self.d * other.s, other.X)
        if isinstance(other, Dense):
            return Dense(self.d[:, None] * other.M)
        return super()._compose(other)

    @property
    def T(self) -> "Diagonal":
        return self


class Column(Jacobian):
    """An m x 1 Jacobian ∂y/∂z of a vector with respect to a scalar (paper §4.3).

    ``∂(x + z)/∂z = 1`` and ``∂(x z)/∂z = x`` are Columns.

    Parameters
    ----------
    c : array_like, shape (m,)
        The column ∂y_i/∂z.
    """

    def __init__(self, c: npt.ArrayLike) -> None:
        self.c = _vector(c, "c")
        self.shape = (self.c.shape[0], 1)

    @property
    def dtype(self) -> np.dtype:
        return self.c.dtype

    def _dense(self):
        return self.c[:, None].copy()

    def _matvec(self, v):
        # v has shape (1,) or (1, k)
        return self.c * v[0] if v.ndim == 1 else self.c[:, None] * v

    def _rmatvec(self, u):
        return np.atleast_1d(u @ self.c)[..., None] if u.ndim == 2 else np.array([u @ self.c])

    def _compose(self, other):
        if isinstance(other, Row):
            return Dense(np.outer(self.c, other.r))
        return super()._compose(other)

    @property
    def T(self) -> "Row":
        return Row(self.c)


class Row(Jacobian):
    """A 1 x n Jacobian ∂y/∂x of a scalar with respect to a vector: a gradient (§4.4).

    ``∇ sum(x) = 1ᵀ`` and ``∂(w·x)/∂w = xᵀ`` are Rows.

    Parameters
    ----------
    r : array_like, shape (n,)
        The gradient ∂y/∂x_j.
    """

    def __init__(self, r: npt.ArrayLike) -> None:
        self.r = _vector(r, "r")
        self.shape = (1, self.r.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.r.dtype

    def _dense(self):
        return self.r[None, :].copy()

    def _matvec(self, v):
        return np.array([self.r @ v]) if v.ndim == 1 else (self.r @ v)[None, :]

    def _rmatvec(self, u):
        # u has shape (1,) or (k, 1)
        return self.r * u[0] if u.ndim == 1 else u * self.r

    def _compose(self, other):
        if isinstance(other, Diagonal):
            return Row(self.r * other.d)
        if isinstance(other, Column):
            return Dense(np.array([[self.r @ other.c]]))
        if isinstance(other, RowScaled):
            return Row((self.r * other.s) @ other.X)
        if isinstance(other, Dense):
            return Row(self.r @ other.M)
        return super()._compose(other)

    @property
    def T(self) -> "Column":
        return Column(self.r)


class RowScaled(Jacobian):
    """``diag(s) X``: an N x n matrix whose row i is ``s_i x_i`` (paper §5, over a batch).

    The Jacobian of the batched neuron activation ``max(0, Xw + b)`` with respect to ``w``
    is ``diag(mask) X``. The object keeps ``s`` and a reference to ``X``; it never copies
    ``X``. ``J @ v`` (length n) costs one pass over ``X``, and so does ``u @ J`` (length N).

    Parameters
    ----------
    s : array_like, shape (N,)
        The row scales (for the neuron, the 0/1 activity mask).
    X : array_like, shape (N, n)
        The matrix whose rows are scaled; referenced, not copied.
    """

    def __init__(self, s: npt.ArrayLike, X: npt.ArrayLike) -> None:
        self.s = _vector(s, "s")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self.s.shape[0]:
            raise ValueError(
                f"X must be 2-D with {self.s.shape[0]} rows to match s, got shape {X.shape}"
            )
        self.X = X
        self.shape = X.shape

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(self.s.dtype, self.X.dtype)

    def _dense(self):
        return self.s[:, None] * self.X

    def _matvec(self, v):
        return self.s * (self.X @ v) if v.ndim == 1 else self.s[:, None] * (self.X @ v)

    def _rmatvec(self, u):
        return (u * self.s) @ self.X

    def _compose(self, other):
        if isinstance(other, Diagonal):
            # diag(s) X diag(d): scale X's columns, which needs a new matrix of X's size
            return RowScaled(self.s, self.X * other.d)
        return super()._compose(other)


class Dense(Jacobian):
    """The fallback: a Jacobian with no structure, stored as an m x n array.

    Parameters
    ----------
    M : array_like, shape (m, n)
    """

    def __init__(self, M: npt.ArrayLike) -> None:
        M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        self.M = M
        self.shape = M.shape

    @property
    def dtype(self) -> np.dtype:
        return self.M.dtype

    def _dense(self):
        return self.M

    def _matvec(self, v):
        return self.M @ v

    def _rmatvec(self, u):
        return u @ self.M

    @property
    def T(self) -> "Dense":
        return Dense(self.M.T)


class _Transposed(Jacobian):
    """The transpose of a structured Jacobian, sharing its storage."""

    def __init__(self, J: Jacobian) -> None:
        self.J = J
        self.shape = (J.shape[1], J.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.J.dtype

    def _dense(self):
        return self.J._dense().T

    def _matvec(self, v):
        # (Jᵀ v) = (vᵀ J)ᵀ
        return self.J._rmatvec(v) if v.ndim == 1 else self.J._rmatvec(v.T).T

    def _rmatvec(self, u):
        return self.J._matvec(u) if u.ndim == 1 else self.J._matvec(u.T).T

    @property
    def T(self) -> Jacobian:
        return self.J


class LayerJacobian(Jacobian):
    """The Jacobian of a ReLU layer's activation ``A = max(0, X Wᵀ + b)`` over a batch,
    stored as its per-sample structure (never as the dense stacked matrix).

    Outputs are ``A.ravel()`` (N m entries, sample-major); one object per input:

    * ``wrt="W"``: inputs ``W.ravel()`` (m n). Sample i's block (m x m n) is
      ``diag(M_i) ⊗ x_iᵀ``: row k holds ``M_ik x_iᵀ`` in neuron k's n columns.
    * ``wrt="b"``: inputs ``b`` (m). Sample i's block is ``diag(M_i)``.
    * ``wrt="X"``: inputs ``X.ravel()`` (N n). Block-diagonal over samples, sample i's
      block (m x n) is ``diag(M_i) W``.

    ``M`` is the (N, m) ReLU mask (1 where the pre-activation is > 0, 0 where it is <= 0:
    ReLU'(0) = 0). ``J @ v`` and ``u @ J`` cost a matrix product with X or W, never the
    dense matrix; ``block(i)`` gives sample i's dense block; ``todense()`` builds it all.

    Parameters
    ----------
    mask : array_like, shape (N, m)
    M : array_like or None
        ``X`` (N, n) for ``wrt="W"``, ``W`` (m, n) for ``wrt="X"``, None for ``wrt="b"``.
    wrt : {"W", "b", "X"}
    """

    def __init__(self, mask: npt.ArrayLike, M: Optional[npt.ArrayLike], wrt: str) -> None:
        self.mask = np.asarray(mask)
        if self.mask.ndim != 2:
            raise ValueError(f"mask must be 2-D (N, m), got shape {self.mask.shape}")
        if wrt not in ("W", "b", "X"):
            raise ValueError(f"wrt must be 'W', 'b' or 'X', got {wrt!r}")
        N, m = self.mask.shape
        self.wrt = wrt
        self.M = None if M is None else np.asarray(M)
        if wrt == "W":
            if self.M is None or self.M.ndim != 2 or self.M.shape[0] != N:
                raise ValueError(f"wrt='W' needs X of shape (N, n) with N = {N}")
            self.shape = (N * m, m * self.M.shape[1])
        elif wrt == "b":
            self.shape = (N * m, m)
        else:
            if self.M is None or self.M.ndim != 2 or self.M.shape[0] != m:
                raise ValueError(f"wrt='X' needs W of shape (m, n) with m = {m}")
            self.shape = (N * m, N * self.M.shape[1])

    @property
    def dtype(self) -> np.dtype:
        if self.M is None:
            return self.mask.dtype
        return np.result_type(self.mask.dtype, self.M.dtype)

    def block(self, i: int) -> np.ndarray:
        """Sample i's dense Jacobian: (m, m n), (m, m) or (m, n) for W, b, X."""
        Mi = self.mask[i]
        if self.M is None:  # wrt == "b"
            return np.diag(Mi)
        if self.wrt == "W":
            return np.kron(np.diag(Mi), self.M[i][None, :])
        return Mi[:, None] * self.M

    def _dense(self):
        N, m = self.mask.shape
        out = np.zeros(self.shape, dtype=self.dtype)
        n = self.M.shape[1] if self.M is not None else 0
        for i in range(N):
            rows = slice(i * m, (i + 1) * m)
            if self.wrt == "X":
                out[rows, i * n:(i + 1) * n] = self.block(i)
            else:
                out[rows] = self.block(i)
        return out

    def _matvec(self, v):
        N, m = self.mask.shape
        if v.ndim == 2:
            return np.stack([self._matvec(v[:, j]) for j in range(v.shape[1])], axis=1)
        if self.wrt == "W":
            n = self.M.shape[1]
            return (self.mask * (self.M @ v.reshape(m, n).T)).reshape(-1)
        if self.wrt == "b":
            return (self.mask * v[None, :]).reshape(-1)
        n = self.M.shape[1]
        return (self.mask * (v.reshape(N, n) @ self.M.T)).reshape(-1)

    def _rmatvec(self, u):
        N, m = self.mask.shape
        if u.ndim == 2:
            return np.stack([self._rmatvec(r) for r in u])
        c = u.reshape(N, m) * self.mask
        if self.wrt == "W":
            return (c.T @ self.M).reshape(-1)
        if self.wrt == "b":
            return c.sum(axis=0)
        return (c @ self.M).reshape(-1)
