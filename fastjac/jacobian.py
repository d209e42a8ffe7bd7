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

import numpy as np

__all__ = ["Jacobian", "Diagonal", "Column", "Row", "RowScaled", "Dense"]

_LAYOUTS = ("numerator", "denominator")


def _vector(v, name):
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be real, got dtype {a.dtype}")
    return a


def _check_layout(layout):
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'numerator' or 'denominator', got {layout!r}")


class Jacobian:
    """Base class: a linear map stored in structured form (numerator layout)."""

    __array_priority__ = 1000  # make ``ndarray @ J`` defer to ``J.__rmatmul__``

    shape = (0, 0)

    @property
    def dtype(self):
        raise NotImplementedError

    def todense(self, layout="numerator"):
        """The full matrix; ``layout="denominator"`` gives its transpose."""
        _check_layout(layout)
        dense = self._dense()
        return dense if layout == "numerator" else dense.T.copy()

    def __array__(self, dtype=None, copy=None):
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

    def __matmul__(self, other):
        if isinstance(other, Jacobian):
            if self.shape[1] != other.shape[0]:
                raise ValueError(
                    f"cannot compose Jacobians of shapes {self.shape} and {other.shape}"
                )
            return self._compose(other)
        return self._matvec(self._check_right(other))

    def __rmatmul__(self, other):
        return self._rmatvec(self._check_left(other))

    def _compose(self, other):
        # Generic fallback: J1 @ J2 through J2's dense form is avoided where a structured
        # rule exists (subclasses override); this builds only the m x k result.
        return Dense(self._matvec(other._dense()))

    @property
    def T(self):
        return _Transposed(self)

    def __repr__(self):
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class Diagonal(Jacobian):
    """``diag(d)``: the n x n Jacobian of an element-wise map (paper §4.2).

    Parameters
    ----------
    d : array_like, shape (n,)
        The diagonal ∂y_i/∂x_i.
    """

    def __init__(self, d):
        self.d = _vector(d, "d")
        n = self.d.shape[0]
        self.shape = (n, n)

    @property
    def dtype(self):
        return self.d.dtype

    def diagonal(self):
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
    def T(self):
        return self


class Column(Jacobian):
    """An m x 1 Jacobian ∂y/∂z of a vector with respect to a scalar (paper §4.3).

    ``∂(x + z)/∂z = 1`` and ``∂(x z)/∂z = x`` are Columns.
    """

    def __init__(self, c):
        self.c = _vector(c, "c")
        self.shape = (self.c.shape[0], 1)

    @property
    def dtype(self):
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
    def T(self):
        return Row(self.c)


class Row(Jacobian):
    """A 1 x n Jacobian ∂y/∂x of a scalar with respect to a vector: a gradient (§4.4).

    ``∇ sum(x) = 1ᵀ`` and ``∂(w·x)/∂w = xᵀ`` are Rows.
    """

    def __init__(self, r):
        self.r = _vector(r, "r")
        self.shape = (1, self.r.shape[0])

    @property
    def dtype(self):
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
    def T(self):
        return Column(self.r)


class RowScaled(Jacobian):
    """``diag(s) X``: an N x n matrix whose row i is ``s_i x_i`` (paper §5, over a batch).

    The Jacobian of the batched neuron activation ``max(0, Xw + b)`` with respect to ``w``
    is ``diag(mask) X``. The object keeps ``s`` and a reference to ``X``; it never copies
    ``X``. ``J @ v`` (length n) costs one pass over ``X``, and so does ``u @ J`` (length N).
    """

    def __init__(self, s, X):
        self.s = _vector(s, "s")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self.s.shape[0]:
            raise ValueError(
                f"X must be 2-D with {self.s.shape[0]} rows to match s, got shape {X.shape}"
            )
        self.X = X
        self.shape = X.shape

    @property
    def dtype(self):
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
    """The fallback: a Jacobian with no structure, stored as an m x n array."""

    def __init__(self, M):
        M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        self.M = M
        self.shape = M.shape

    @property
    def dtype(self):
        return self.M.dtype

    def _dense(self):
        return self.M

    def _matvec(self, v):
        return self.M @ v

    def _rmatvec(self, u):
        return u @ self.M

    @property
    def T(self):
        return Dense(self.M.T)


class _Transposed(Jacobian):
    """The transpose of a structured Jacobian, sharing its storage."""

    def __init__(self, J):
        self.J = J
        self.shape = (J.shape[1], J.shape[0])

    @property
    def dtype(self):
        return self.J.dtype

    def _dense(self):
        return self.J._dense().T

    def _matvec(self, v):
        # (Jᵀ v) = (vᵀ J)ᵀ
        return self.J._rmatvec(v) if v.ndim == 1 else self.J._rmatvec(v.T).T

    def _rmatvec(self, u):
        return self.J._matvec(u) if u.ndim == 1 else self.J._matvec(u.T).T

    @property
    def T(self):
        return self.J
