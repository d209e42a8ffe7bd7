"""Element-wise operations and their derivatives (paper §2, §4.2–§4.5).

Every operation here has a diagonal Jacobian (or, under scalar expansion, a column), so
each product with it is one pass over memory and no n x n matrix is ever built:

* :class:`UnaryOp` — ``y = h(x)`` for the unary functions of the paper's §2 table and any
  chain of them (§4.5.3): value, ``derivative`` (the Jacobian's diagonal), ``jacobian``
  (a :class:`~fastjac.jacobian.Diagonal`), ``jvp`` and ``vjp``.
* :class:`BinaryOp` — ``y = f(w) ○ g(x)`` (§4.2), including scalar expansion of either
  operand (§4.3): value, ``jacobian``, ``jvp``, ``vjp`` and ``sum_grad`` (§4.4).
* :data:`dot` and :data:`sum` — the reductions of §4.4.

Conventions: ReLU'(0) = 0 (the paper's z <= 0 branch) and abs'(0) = 0; for ``maximum`` and
``minimum`` a tie sends the whole gradient to the first operand; NaN in an input gives NaN
in every output that depends on it.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _config
from . import _optable
from . import _validate as V
from . import _validation
from ._kernels import elementwise as _K
from .jacobian import Column, Diagonal, Row

__all__ = [
    "UnaryOp", "BinaryOp", "chain", "elementwise", "dot", "sum", "UNARY", "BINARY",
    "set_precision", "get_precision",
]

# What the element-wise methods return: an array shaped like the inputs, or a NumPy scalar
# when every input is a scalar (like a ufunc).
Result = Union[np.ndarray, np.floating]
# ``out=`` of the two-output methods: None, or a pair whose entries may be None.
OutPair = Optional[Sequence[Optional[np.ndarray]]]


# Work below which a call with n_threads=None runs serially. One unit is about one simple
# element operation with its memory traffic (~0.4 ns on a 2.5 GHz Xeon); the threshold is
# ~100 µs of single-thread work, where waking a helper of fastjac's thread pool (a few µs)
# costs under 5%. Measured on 2 vCPUs when the second core was idle: 2 threads ran exp.vjp
# and mul.vjp at n = 65536 (0.14 ms and 0.11 ms) 1.96x and 2.03x faster. Above it the
# pool's caller runs blocks itself and never waits for a helper that has not started, so
# a busy machine costs at most the one-thread time plus a block (docs/guide/threads.rst).
# Each function weighs what it costs per element relative to a multiply (fastjac's
# vectorised exp, sin, cos; libm's tanh and log are slower).
PARALLEL_THRESHOLD = 1 << 18
_WEIGHT = _optable.WEIGHT  # per unary code, from the op table (fastjac/_optable.py)


_MODES = {"strict": -1, "accurate": 0, "fast": 1}


def set_precision(mode):
    """Choose how the kernels evaluate exp, log, sin, cos, tanh and sigmoid.

    ``"accurate"`` (the default)
        exp, log, sin, cos, tanh, sigmoid and the derivatives of tanh and sigmoid run
        fastjac's own vectorised routines (AVX-512/AVX2 chosen at run time, the same bits on
        every path), every one within one ulp in float64 and float32 (measured maxima in
        docs/guide/precision.rst: 0.57 ulp exp, 0.78 sin/cos, 0.83 log, 0.56 tanh and
        sigmoid, over 1e7 points).
    ``"strict"``
        every transcendental calls the C library (glibc's results bit for bit; several
        times slower; tanh is glibc's, ~2 ulp).
    ``"fast"``
        sin, cos, tanh and log call glibc's vector library libmvec: faster still, but with
        measured errors up to ~3.5 ulp (sin, cos), ~1.5 ulp (log) and ~1.2 (AVX-512) / ~2.1
        (AVX2) ulp (tanh). Where libmvec was not available at build time or the CPU lacks
        AVX2, "fast" is the same as "accurate".

    The derivatives of tanh and sigmoid come from ``exp(-|x|)`` without cancellation in every
    mode. Results are bitwise identical for every ``n_threads`` in every mode. The
    environment variable ``FASTJAC_PRECISION`` (or the switch ``FASTJAC_FAST_MATH=1`` for
    "fast"; ``0``/``off`` leaves the default) selects the mode at import. Returns the previous mode, so
    ``old = set_precision("fast"); ...; set_precision(old)`` restores it.
    """
    if mode not in _MODES:
        raise ValueError(f"precision must be 'accurate', 'strict' or 'fast', got {mode!r}")
    old = get_precision()
    _K.set_math_mode(_MODES[mode])
    return old


def get_precision():
    """The current precision mode: ``"accurate"``, ``"strict"`` or ``"fast"``."""
    return {v: k for k, v in _MODES.items()}[_K.get_math_mode()]


def _init_precision():
    mode = _config.env_choice("FASTJAC_PRECISION", tuple(_MODES))
    if mode is None and _config.env_flag("FASTJAC_FAST_MATH"):
        mode = "fast"
    if mode is not None:
        set_precision(mode)


_init_precision()


def _work(n, codes):
    return n * (1 + builtins.sum(_WEIGHT.get(c, 0) for c in codes))


def _as_result(res, shape):
    """A 0-d result (all-scalar inputs) is returned as a NumPy scalar, like a ufunc."""
    return res[()] if shape == () else res


def _traced_method(name):
    return TypeError(
        f"fj.fuse: only the value of {name} (without out=) can be used inside a fused "
        "function; its derivatives come from the fused function's own jvp / vjp / jacobian")


def _out_pair(out, names):
    if out is None:
        return None, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"out must be None or a pair ({names[0]}, {names[1]}) of arrays or None")
    return out[0], out[1]


class UnaryOp:
    """An element-wise unary function ``y_i = h(x_i)`` with its derivative.

    Instances are the module-level functions ``fastjac.exp``, ``fastjac.relu``, ... and
    the chains built by :func:`chain`. Calling one gives the value; its Jacobian is
    ``diag(h'(x))`` (paper §4.2), so ``jvp`` and ``vjp`` are the same product
    ``h'(x) ⊗ v``, computed in one pass without forming the matrix.

    Every method accepts arrays of any shape (treated element by element), Python or NumPy
    scalars, and any memory layout. float32 computes in float32 (with double arithmetic
    inside), float64 in float64, integers and bools in float64.

    Notes
    -----
    Arguments every method takes:

    * ``out`` (numpy.ndarray, optional): where to write the result, with its shape and
      dtype, writeable. It may be one of the inputs (the kernels run in place).
    * ``n_threads`` (int, optional): an upper bound on the threads to use. ``None``: all
      cores, serial below a measured threshold; fastjac's pool makes oversubscription
      harmless. Results are bitwise identical for every value.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> x = np.array([-1.0, 0.0, 2.0])
    >>> fj.relu(x)
    array([0., 0., 2.])
    >>> fj.relu.derivative(x)                 # ReLU'(0) = 0, the paper's choice
    array([0., 0., 1.])
    >>> fj.tanh.vjp(x, np.ones(3)).round(4)   # gy ⊗ (1 - tanh(x)²)
    array([0.42  , 1.    , 0.0707])
    >>> fj.tanh.jacobian(x)                   # diagonal, stored as a vector
    Diagonal(shape=(3, 3), dtype=float64)
    """

    def __init__(self, name: str, codes: bytes, doc: Optional[str] = None) -> None:
        self.name = name
        self._codes = bytes(codes)
        self._work_per_element = _work(1, self._codes)
        if doc:
            self.__doc__ = doc

    def __repr__(self) -> str:
        return f"<fastjac.UnaryOp {self.name}>"

    # Every public method first offers the call to the kernel's fast path,
    #     _K.unary_fast(self._codes, x, t, value, out, n_threads, self._work_per_element,
    #                   PARALLEL_THRESHOLD)
    # written out in the method itself (a Python frame less: ~70 ns of a ~350 ns call at
    # n = 10), positional (keywords cost more). Float arrays of ndim >= 1 (with out= and
    # n_threads= too) are checked and run in that one C call; when it answers None (anything
    # else, including every invalid call, and a None tangent, which is never offered to
    # it), the method calls _run: the general path, which validates and raises.
    def _run(self, x, t, t_name, out, n_threads, value):
        if t is None and t_name is not None:
            # Not "ones": BinaryOp.jvp reads a None tangent as zero, so refuse to guess.
            raise TypeError(f"{t_name} must be an array or a number, not None")
        if getattr(x, "_fj_traced", False) or getattr(t, "_fj_traced", False):
            if value and t is None and out is None:  # inside a function traced by fj.fuse
                return getattr(x, "_fj_unary")(self)
            raise _traced_method(self.name)
        dt = V.result_dtype(("x", x), (t_name, t))
        xf, shape = V.operand(x, "x", dt)
        tf = None
        if t is not None:
            tf, tshape = V.operand(t, t_name, dt)
            V.same_shape(shape, "x", tshape, t_name)
        buf, res = V.output(out, "out", shape, dt, inputs=(("x", xf), (t_name, tf)))
        nt = V.n_threads(n_threads, xf.shape[0] * self._work_per_element, PARALLEL_THRESHOLD)
        if value:
            _K.unary(self._codes, xf, y_out=buf, n_threads=nt)
        else:
            _K.unary(self._codes, xf, t=tf, d_out=buf, n_threads=nt)
        V.finish(buf, res)
        return res if out is not None else _as_result(res, shape)

    def __call__(self, x: npt.ArrayLike, out: Optional[np.ndarray] = None,
                 n_threads: Optional[int] = None) -> Result:
        """The value ``h(x)``, element by element (like a NumPy ufunc).

        Parameters
        ----------
        x : array_like
            Any shape; a Python or NumPy scalar gives a NumPy scalar.
        out, n_threads
            See :class:`UnaryOp`.

        Returns
        -------
        numpy.ndarray or numpy.floating
            ``h(x)`` with the shape of ``x``, float32 for float32 input, else float64.
        """
        res = _K.unary_fast(self._codes, x, None, True, out, n_threads,
                            self._work_per_element, PARALLEL_THRESHOLD)
        if res is None:
            res = self._run(x, None, None, out, n_threads, True)
        return res

    def derivative(self, x: npt.ArrayLike, out: Optional[np.ndarray] = None,
                   n_threads: Optional[int] = None) -> Result:
        """``h'(x)``: the diagonal of the Jacobian ∂y/∂x (paper §4.2), shape of ``x``.

        For a chain this is the product of the stage derivatives (vector chain rule with
        diagonal factors, §4.5.3). It is also the gradient of ``sum(h(x))`` (§4.4).

        Parameters
        ----------
        x : array_like
        out, n_threads
            See :class:`UnaryOp`.

        Returns
        -------
        numpy.ndarray or numpy.floating
            ``h'(x)`` with the shape of ``x`` (ReLU'(0) = 0, abs'(0) = 0).
        """
        res = _K.unary_fast(self._codes, x, None, False, out, n_threads,
                            self._work_per_element, PARALLEL_THRESHOLD)
        if res is None:
            res = self._run(x, None, None, out, n_threads, False)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_unary(self, "derivative", (x,), res)
        return res

    sum_grad = derivative

    def jacobian(self, x: npt.ArrayLike, n_threads: Optional[int] = None) -> Diagonal:
        """The Jacobian ∂h(x)/∂x as a :class:`~fastjac.jacobian.Diagonal` (never n x n).

        Parameters
        ----------
        x : array_like
            Flattened: the Jacobian of an N-D input is that of its ravel.
        n_threads : int, optional

        Returns
        -------
        Diagonal
            ``diag(h'(x))``, n x n in numerator layout, storing only the n-vector.
        """
        return Diagonal(np.reshape(self.derivative(x, n_threads=n_threads), -1))

    def jvp(self, x: npt.ArrayLike, dx: npt.ArrayLike, out: Optional[np.ndarray] = None,
            n_threads: Optional[int] = None) -> Result:
        """Forward mode: ``J dx = h'(x) ⊗ dx`` in one pass; ``dx`` has the shape of ``x``.

        Parameters
        ----------
        x : array_like
            The point.
        dx : array_like
            The tangent, shape of ``x``.
        out, n_threads
            See :class:`UnaryOp`.

        Returns
        -------
        numpy.ndarray or numpy.floating
            ``h'(x) ⊗ dx``, shape of ``x``.
        """
        res = None if dx is None else _K.unary_fast(
            self._codes, x, dx, False, out, n_threads, self._work_per_element,
            PARALLEL_THRESHOLD)
        if res is None:
            res = self._run(x, dx, "dx", out, n_threads, False)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_unary(self, "jvp", (x, dx), res)
        return res

    def vjp(self, x: npt.ArrayLike, gy: npt.ArrayLike, out: Optional[np.ndarray] = None,
            n_threads: Optional[int] = None) -> Result:
        """Reverse mode: ``gyᵀ J = gy ⊗ h'(x)`` in one pass; ``gy`` has the shape of ``x``.

        Parameters
        ----------
        x : array_like
            The point.
        gy : array_like
            The cotangent ∂L/∂y, shape of ``x``.
        out, n_threads
            See :class:`UnaryOp`.

        Returns
        -------
        numpy.ndarray or numpy.floating
            ∂L/∂x = ``gy ⊗ h'(x)``, shape of ``x``.
        """
        res = None if gy is None else _K.unary_fast(
            self._codes, x, gy, False, out, n_threads, self._work_per_element,
            PARALLEL_THRESHOLD)
        if res is None:
            res = self._run(x, gy, "gy", out, n_threads, False)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_unary(self, "vjp", (x, gy), res)
        return res

    def value_and_vjp(self, x: npt.ArrayLike, gy: npt.ArrayLike, out: OutPair = None,
                      n_threads: Optional[int] = None) -> Tuple[Result, Result]:
        """``(h(x), gy ⊗ h'(x))`` from one pass over memory. ``out`` is a pair or None.

        Parameters
        ----------
        x, gy : array_like
            The point and the cotangent (same shape).
        out : pair of (numpy.ndarray or None), optional
            Outputs for the value and the gradient.
        n_threads : int, optional

        Returns
        -------
        (y, gx) : tuple
            ``h(x)`` and ``gy ⊗ h'(x)``, each with the shape of ``x``.
        """
        out_y, out_g = _out_pair(out, ("y", "gx"))
        if gy is None:
            raise TypeError("gy must be an array or a number, not None")
        dt = V.result_dtype(("x", x), ("gy", gy))
        xf, shape = V.operand(x, "x", dt)
        gf, gshape = V.operand(gy, "gy", dt)
        V.same_shape(shape, "x", gshape, "gy")
        inputs = (("x", xf), ("gy", gf))
        ybuf, y = V.output(out_y, "out[0]", shape, dt, inputs, others=(("out[1]", out_g),))
        gbuf, g = V.output(out_g, "out[1]", shape, dt, inputs)
        nt = V.n_threads(n_threads, xf.shape[0] * self._work_per_element, PARALLEL_THRESHOLD)
        _K.unary(self._codes, xf, t=gf, y_out=ybuf, d_out=gbuf, n_threads=nt)
        V.finish(ybuf, y)
        V.finish(gbuf, g)
        # An out entry left None is a fresh result: a scalar for scalar input, like out=None.
        res = (y if out_y is not None else _as_result(y, shape),
               g if out_g is not None else _as_result(g, shape))
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_unary(self, "value_and_vjp", (x, gy), res)
        return res


def chain(*functions: UnaryOp) -> UnaryOp:
    """Compose element-wise functions: ``chain(f1, f2, ..., fk)(x) = f1(f2(...fk(x)))``.

    The result is again a :class:`UnaryOp` whose Jacobian is diagonal,
    ``diag(f1'(u1) f2'(u2) ... fk'(x))`` (vector chain rule, paper §4.5.3), and whose value,
    JVP and VJP are computed in one pass over memory.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> h = fj.chain(fj.sin, fj.square)    # h(x) = sin(x**2), h'(x) = 2x cos(x**2)  (§4.5.1)
    >>> x = np.array([0.0, 0.5, 1.0])
    >>> h.derivative(x).round(4)
    array([0.    , 0.9689, 1.0806])
    >>> (2 * x * np.cos(x**2)).round(4)
    array([0.    , 0.9689, 1.0806])
    """
    if not functions:
        raise TypeError("chain() needs at least one function")
    codes = b""
    for i, f in enumerate(functions):
        if not isinstance(f, UnaryOp):
            raise TypeError(
                f"chain() argument {i} must be a fastjac unary function, got {type(f).__name__}"
            )
        codes = f._codes + codes  # the last function is applied first
    name = "∘".join(f.name for f in functions)
    return UnaryOp(name, codes)


class BinaryOp:
    """An element-wise binary operator ``y_i = f(w_i) ○ g(x_i)`` (paper §4.2).

    ``w`` and ``x`` have the same shape, or one of them is a scalar (a Python number or a
    0-d array), which is expanded (§4.3): ``x + z`` is ``x + 1z``. The Jacobians are
    diagonal, ``diag(∂y_i/∂w_i)`` and ``diag(∂y_i/∂x_i)``; the Jacobian with respect to a
    scalar operand is a column, and a scalar operand's gradient is a scalar (the sum of
    its column weighted by the cotangent).

    Every method takes ``out=None`` (where to write the result) and ``n_threads=None``
    (an upper bound; ``None``: all cores, serial below a measured threshold; fastjac's pool
    makes oversubscription harmless; results are bitwise identical for every value). float32 operands compute in float32 (double
    arithmetic inside), float64 in float64, integers and bools in float64.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> w, x = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    >>> fj.mul.vjp(w, x, np.ones(3))          # (diag(x) gy, diag(w) gy)
    (array([4., 5., 6.]), array([1., 2., 3.]))
    >>> gw, gz = fj.mul.vjp(w, 2.0, np.ones(3))   # a scalar operand (§4.3)
    >>> gw, float(gz)                         # gz = Σ gy_i w_i
    (array([2., 2., 2.]), 6.0)
    >>> fj.mul.jacobian(w, 2.0)
    (Diagonal(shape=(3, 3), dtype=float64), Column(shape=(3, 1), dtype=float64))
    """

    def __init__(self, name: str, op: int, fcodes: bytes = b"", gcodes: bytes = b"",
                 doc: Optional[str] = None) -> None:
        self.name = name
        self._op = op
        self._fcodes = bytes(fcodes)
        self._gcodes = bytes(gcodes)
        self._work_per_element = 1 + _work(1, self._fcodes) + _work(1, self._gcodes)
        if doc:
            self.__doc__ = doc

    def __repr__(self) -> str:
        return f"<fastjac.BinaryOp {self.name}>"

    def _prepare(self, w, x, extra):
        for v in (w, x) + tuple(e[1] for e in extra):
            if getattr(v, "_fj_traced", False):
                raise _traced_method(self.name)
        dt = V.result_dtype(("w", w), ("x", x), *extra)
        wf, sw = V.operand(w, "w", dt)
        xf, sx = V.operand(x, "x", dt)
        shape = V.elementwise_shape(sw, "w", sx, "x")
        n = math.prod(shape)
        return dt, wf, sw, xf, sx, shape, n, (sw == () and shape != ()), (sx == () and shape != ())

    def _threads(self, n_threads, n):
        return V.n_threads(n_threads, n * self._work_per_element, PARALLEL_THRESHOLD)

    def __call__(self, w: npt.ArrayLike, x: npt.ArrayLike, out: Optional[np.ndarray] = None,
                 n_threads: Optional[int] = None) -> Result:
        """The value ``f(w) ○ g(x)``, element by element.

        Parameters
        ----------
        w, x : array_like
            Same shape, or either one a scalar (expanded, §4.3).
        out : numpy.ndarray, optional
        n_threads : int, optional

        Returns
        -------
        numpy.ndarray or numpy.floating
            The common shape of ``w`` and ``x``.
        """
        res: Any = _K.binary_fast(self._op, self._fcodes, self._gcodes, w, x, None, True,
                                  out, n_threads, self._work_per_element, PARALLEL_THRESHOLD)
        if res is not None:
            return res
        if getattr(w, "_fj_traced", False) or getattr(x, "_fj_traced", False):
            if out is not None:  # inside a function being traced by fj.fuse
                raise TypeError(f"{self.name}: out= is not supported inside fj.fuse")
            traced = w if getattr(w, "_fj_traced", False) else x
            return getattr(traced, "_fj_binary")(self, w, x)
        dt, wf, sw, xf, sx, shape, n, ws, xs = self._prepare(w, x, ())
        buf, res = V.output(out, "out", shape, dt, inputs=(("w", wf), ("x", xf)))
        _K.binary(self._op, self._fcodes, self._gcodes, n, wf, xf, w_scalar=ws, x_scalar=xs,
                  y_out=buf, n_threads=self._threads(n_threads, n))
        V.finish(buf, res)
        return res if out is not None else _as_result(res, shape)

    def jvp(self, w: npt.ArrayLike, x: npt.ArrayLike, dw: Optional[npt.ArrayLike],
            dx: Optional[npt.ArrayLike], out: Optional[np.ndarray] = None,
            n_threads: Optional[int] = None) -> Result:
        """Forward mode: ``dy = J_w dw + J_x dx`` in one fused pass (paper §4.2).

        ``dw`` has the shape of ``w`` and ``dx`` the shape of ``x`` (a scalar tangent for a
        scalar operand, §4.3); ``None`` means a zero tangent. Summing the two paths is the
        total-derivative chain rule (§4.5.2).

        Returns
        -------
        numpy.ndarray or numpy.floating
            ``dy``, with the common shape of ``w`` and ``x``.
        """
        dt, wf, sw, xf, sx, shape, n, ws, xs = self._prepare(w, x, (("dw", dw), ("dx", dx)))
        dwf = dxf = None
        if dw is not None:
            dwf, sdw = V.operand(dw, "dw", dt)
            V.same_shape(sw, "w", sdw, "dw")
        if dx is not None:
            dxf, sdx = V.operand(dx, "dx", dt)
            V.same_shape(sx, "x", sdx, "dx")
        inputs = (("w", wf), ("x", xf), ("dw", dwf), ("dx", dxf))
        buf, res = V.output(out, "out", shape, dt, inputs=inputs)
        _K.binary(self._op, self._fcodes, self._gcodes, n, wf, xf, w_scalar=ws, x_scalar=xs,
                  dw=dwf, dx=dxf, jvp_out=buf, n_threads=self._threads(n_threads, n))
        V.finish(buf, res)
        res = res if out is not None else _as_result(res, shape)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_binary(self, "jvp", (w, x, dw, dx), res)
        return res

    # The methods first offer the call to the kernel's fast path, written out in each
    # (a Python frame less per call, as in UnaryOp):
    #     _K.binary_fast(self._op, self._fcodes, self._gcodes, w, x, gy, value, out,
    #                    n_threads, self._work_per_element, PARALLEL_THRESHOLD)
    # Float arrays of one shape, or one of them and a Python scalar, run in that one C
    # call; None means the general path handles the call (and raises for anything invalid).

    def _reverse(self, w, x, gy, out, n_threads):
        # the general path of vjp and sum_grad (gy None: ones), after the fast path declined
        extra = (("gy", gy),) if gy is not None else ()
        dt, wf, sw, xf, sx, shape, n, ws, xs = self._prepare(w, x, extra)
        gf = None
        if gy is not None:
            gf, sg = V.operand(gy, "gy", dt)
            V.same_shape(shape, "y", sg, "gy")
        out_w, out_x = given_w, given_x = _out_pair(out, ("gw", "gx"))
        inputs = (("w", wf), ("x", xf), ("gy", gf))
        wbuf = xbuf = None
        if ws:
            self._check_scalar_out(out_w, "out[0]", dt)
        else:
            wbuf, out_w = V.output(out_w, "out[0]", sw, dt, inputs, others=(("out[1]", out_x),))
        if xs:
            self._check_scalar_out(out_x, "out[1]", dt)
        else:
            xbuf, out_x = V.output(out_x, "out[1]", sx, dt, inputs, others=(("out[0]", out_w),))
        sums = _K.binary(self._op, self._fcodes, self._gcodes, n, wf, xf, w_scalar=ws,
                         x_scalar=xs, gy=gf, gw_out=wbuf, gx_out=xbuf,
                         want_scalar_grads=True, n_threads=self._threads(n_threads, n))
        gw = self._finish_grad(ws, sums[0], wbuf, out_w, dt)
        gx = self._finish_grad(xs, sums[1], xbuf, out_x, dt)
        return (gw if given_w is not None else _as_result(gw, sw),
                gx if given_x is not None else _as_result(gx, sx))

    @staticmethod
    def _check_scalar_out(o, name, dt):
        if o is not None:
            V.output(o, name, (), dt)

    @staticmethod
    def _finish_grad(is_scalar, total, buf, out, dt):
        if is_scalar:
            if out is not None:
                out[()] = total
                return out
            return dt.type(total)
        V.finish(buf, out)
        return out

    def vjp(self, w: npt.ArrayLike, x: npt.ArrayLike, gy: npt.ArrayLike,
            out: OutPair = None, n_threads: Optional[int] = None) -> Tuple[Result, Result]:
        """Reverse mode: ``(gw, gx) = (gyᵀ J_w, gyᵀ J_x)`` in one fused pass (paper §4.2).

        ``gy`` has the shape of the output. A scalar operand's gradient is the scalar
        ``Σ_i gy_i ∂y_i/∂z`` (§4.3), accumulated in double without allocating a ones
        vector. ``out`` is None or a pair ``(gw_out, gx_out)`` (entries may be None).

        Returns
        -------
        (gw, gx) : tuple
            ∂L/∂w with the shape of ``w`` and ∂L/∂x with the shape of ``x``.
        """
        if gy is None:
            raise TypeError("gy must be an array or a number, not None (see sum_grad)")
        res: Any = _K.binary_fast(self._op, self._fcodes, self._gcodes, w, x, gy, False,
                                  out, n_threads, self._work_per_element, PARALLEL_THRESHOLD)
        if res is None:
            res = self._reverse(w, x, gy, out, n_threads)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_binary(self, "vjp", (w, x, gy), res)
        return res

    def sum_grad(self, w: npt.ArrayLike, x: npt.ArrayLike, out: OutPair = None,
                 n_threads: Optional[int] = None) -> Tuple[Result, Result]:
        """Gradient of ``sum(f(w) ○ g(x))`` with respect to ``w`` and ``x`` (paper §4.4).

        The same as ``vjp`` with ``gy = 1``, without allocating the ones vector. For
        ``y = sum(x z)``: ``∇_x y = z 1ᵀ`` and ``∇_z y = sum(x)``.
        """
        res: Any = _K.binary_fast(self._op, self._fcodes, self._gcodes, w, x, None, False,
                                  out, n_threads, self._work_per_element, PARALLEL_THRESHOLD)
        if res is None:
            res = self._reverse(w, x, None, out, n_threads)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_binary(self, "sum_grad", (w, x), res)
        return res

    def jacobian(self, w: npt.ArrayLike, x: npt.ArrayLike,
                 n_threads: Optional[int] = None) -> Tuple[Union[Diagonal, Column],
                                                           Union[Diagonal, Column]]:
        """``(J_w, J_x)``: :class:`Diagonal` for array operands, :class:`Column` for a
        scalar operand (paper §4.2, §4.3). Only n-vectors are allocated.

        Returns
        -------
        (J_w, J_x) : tuple of Diagonal or Column
            Numerator layout: n x n diagonals, or an n x 1 column for a scalar operand.
        """
        dt, wf, sw, xf, sx, shape, n, ws, xs = self._prepare(w, x, ())
        # Per-element partials: expand a scalar operand to a vector for this one call.
        wv = np.full(n, wf[0], dtype=dt) if ws else wf
        xv = np.full(n, xf[0], dtype=dt) if xs else xf
        dw = V.new_output(n, dt)
        dx = V.new_output(n, dt)
        _K.binary(self._op, self._fcodes, self._gcodes, n, wv, xv, gw_out=dw, gx_out=dx,
                  n_threads=self._threads(n_threads, n))
        res = (Column(dw) if ws else Diagonal(dw)), (Column(dx) if xs else Diagonal(dx))
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check_binary(self, "jacobian", (w, x), res)
        return res


def elementwise(op: BinaryOp, f: Optional[UnaryOp] = None,
                g: Optional[UnaryOp] = None) -> BinaryOp:
    """The general element-wise form ``y = f(w) ○ g(x)`` (paper §4.2), fused.

    Parameters
    ----------
    op : BinaryOp
        The operator ○, e.g. ``fastjac.mul``.
    f, g : UnaryOp, optional
        Element-wise functions applied to ``w`` and ``x`` first (identity when omitted);
        chains are allowed.

    Returns
    -------
    BinaryOp
        With the same methods as ``op``; value, JVP and VJP each take one pass over memory.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)    # y = exp(w) ⊗ sin(x)
    >>> w, x = np.array([0.0, 1.0]), np.array([0.5, 2.0])
    >>> gw, gx = op.vjp(w, x, np.ones(2))        # exp(w)⊗sin(x), exp(w)⊗cos(x)
    >>> gw.round(4), gx.round(4)
    (array([0.4794, 2.4717]), array([ 0.8776, -1.1312]))
    """
    if not isinstance(op, BinaryOp):
        raise TypeError(f"op must be a fastjac binary operator, got {type(op).__name__}")
    for name, fn in (("f", f), ("g", g)):
        if fn is not None and not isinstance(fn, UnaryOp):
            raise TypeError(f"{name} must be a fastjac unary function, got {type(fn).__name__}")
    fc = (f._codes if f is not None else b"") + op._fcodes
    gc = (g._codes if g is not None else b"") + op._gcodes
    fname = f"{f.name}(w)" if f is not None else "w"
    gname = f"{g.name}(x)" if g is not None else "x"
    return BinaryOp(f"{op.name}[{fname}, {gname}]", op._op, fc, gc)


class _Dot:
    """The dot product ``y = w·x = sum(w ⊗ x) = wᵀx`` and its gradients (paper §4.4, §5).

    ``dot(w, x)`` is accumulated in double. ``dot.grad(w, x)`` returns ``(x, w)``:
    ∂(w·x)/∂w = xᵀ and ∂(w·x)/∂x = wᵀ, as new 1-D arrays (the rows of numerator layout).

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> w, x = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.5, 1.0])
    >>> float(fj.dot(w, x))
    4.0
    >>> fj.dot.grad(w, x)                     # (∂y/∂w, ∂y/∂x) = (x, w)
    (array([0. , 0.5, 1. ]), array([1., 2., 3.]))
    """

    name = "dot"

    def _prepare(self, w, x, extra=()):
        dt = V.result_dtype(("w", w), ("x", x), *extra)
        wf, sw = V.operand(w, "w", dt)
        xf, sx = V.operand(x, "x", dt)
        if len(sw) != 1:
            raise ValueError(f"w must be a 1-D vector, got shape {sw}")
        V.same_shape(sw, "w", sx, "x")
        return dt, wf, xf

    def __call__(self, w: npt.ArrayLike, x: npt.ArrayLike,
                 n_threads: Optional[int] = None) -> np.floating:
        """``w·x`` as a NumPy scalar of the result dtype, accumulated in double."""
        res = _K.reduce_fast(w, x, n_threads, 2, PARALLEL_THRESHOLD)
        if res is not None:
            return res
        dt, wf, xf = self._prepare(w, x)
        return dt.type(_K.reduce(wf, xf, V.n_threads(n_threads, 2 * wf.size, PARALLEL_THRESHOLD)))

    def grad(self, w: npt.ArrayLike, x: npt.ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        """``(∂y/∂w, ∂y/∂x) = (x, w)`` as arrays of the result dtype (copies)."""
        dt, wf, xf = self._prepare(w, x)
        res = xf.copy(), wf.copy()
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check(self, "grad", (w, x), None, res, "dot.grad")
        return res

    def jacobian(self, w: npt.ArrayLike, x: npt.ArrayLike) -> Tuple[Row, Row]:
        """``(Row(x), Row(w))``: the 1 x n Jacobians of numerator layout."""
        gw, gx = self.grad(w, x)
        return Row(gw), Row(gx)

    def jvp(self, w: npt.ArrayLike, x: npt.ArrayLike, dw: Optional[npt.ArrayLike],
            dx: Optional[npt.ArrayLike], n_threads: Optional[int] = None) -> np.floating:
        """``dy = x·dw + w·dx`` (a zero tangent may be None)."""
        dt, wf, xf = self._prepare(w, x, (("dw", dw), ("dx", dx)))
        nt = V.n_threads(n_threads, 2 * wf.size, PARALLEL_THRESHOLD)
        total = 0.0
        for name, tan, other in (("dw", dw, xf), ("dx", dx, wf)):
            if tan is not None:
                tf, st = V.operand(tan, name, dt)
                V.same_shape(st, name, other.shape, "w")
                total += _K.reduce(other, tf, nt)
        res = dt.type(total)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            zero = _validation.zero_tangent
            tangents = (zero(w) if dw is None else dw, zero(x) if dx is None else dx)
            _validation.cross_check(self, "jvp", (w, x), tangents, res, "dot.jvp")
        return res

    def vjp(self, w: npt.ArrayLike, x: npt.ArrayLike,
            gy: float) -> Tuple[np.ndarray, np.ndarray]:
        """``(gy x, gy w)`` for a scalar cotangent ``gy``."""
        dt, wf, xf = self._prepare(w, x)
        g = V.real_scalar(gy, "gy", allow_inf=True)
        res = (xf * dt.type(g)), (wf * dt.type(g))
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check(self, "vjp", (w, x), gy, res, "dot.vjp")
        return res


class _Sum:
    """The sum reduction ``y = sum(x)`` (paper §4.4): ``∇_x y = 1ᵀ``.

    ``sum(x)`` is accumulated in double in a fixed order (bitwise the same for every
    ``n_threads``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> x = np.array([0.0, 0.5, 1.0])
    >>> float(fj.sum(x))
    1.5
    >>> fj.sum.grad(x)                        # the row 1ᵀ
    array([1., 1., 1.])
    >>> fj.sum.jacobian(x)
    Row(shape=(1, 3), dtype=float64)
    """

    name = "sum"

    def __call__(self, x: npt.ArrayLike, n_threads: Optional[int] = None) -> np.floating:
        """``sum(x)`` as a NumPy scalar of the result dtype, accumulated in double."""
        res = _K.reduce_fast(x, None, n_threads, 1, PARALLEL_THRESHOLD)
        if res is not None:
            return res
        dt = V.result_dtype(("x", x))
        xf, _ = V.operand(x, "x", dt)
        return dt.type(_K.reduce(xf, None, V.n_threads(n_threads, xf.size, PARALLEL_THRESHOLD)))

    def grad(self, x: npt.ArrayLike) -> np.ndarray:
        """``1`` with the shape of ``x`` (the row 1ᵀ of §4.4)."""
        dt = V.result_dtype(("x", x))
        res = np.ones(np.shape(x), dtype=dt)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check(self, "grad", (x,), None, (res,), "sum.grad")
        return res

    def jacobian(self, x: npt.ArrayLike) -> Row:
        """``Row(1)``: the 1 x n Jacobian."""
        return Row(np.reshape(self.grad(x), -1))

    def jvp(self, x: npt.ArrayLike, dx: npt.ArrayLike,
            n_threads: Optional[int] = None) -> np.floating:
        """``dy = 1ᵀ dx = sum(dx)``."""
        dt = V.result_dtype(("x", x), ("dx", dx))
        xf, sx = V.operand(x, "x", dt)
        tf, st = V.operand(dx, "dx", dt)
        V.same_shape(sx, "x", st, "dx")
        res = dt.type(_K.reduce(tf, None, V.n_threads(n_threads, tf.size, PARALLEL_THRESHOLD)))
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check(self, "jvp", (x,), (dx,), res, "sum.jvp")
        return res

    def vjp(self, x: npt.ArrayLike, gy: float) -> np.ndarray:
        """``gy 1ᵀ`` for a scalar cotangent ``gy``."""
        dt = V.result_dtype(("x", x))
        g = V.real_scalar(gy, "gy", allow_inf=True)
        res = np.full(np.shape(x), g, dtype=dt)
        if _config.VALIDATE:  # validation mode: cross-check with finite differences
            _validation.cross_check(self, "vjp", (x,), gy, (res,), "sum.vjp")
        return res


dot = _Dot()
sum = _Sum()  # noqa: A001 - mirrors numpy.sum; fastjac.sum is the §4.4 reduction

# The op table (fastjac/_optable.py) is the one source of names, codes, weights and
# formulas; the kernel's enums must agree with it.
_optable.check_kernel_codes("fastjac._kernels.elementwise", _K.UNARY_CODES,
                            {op.name: op.code for op in _optable.PUBLIC_UNARY})
_optable.check_kernel_codes("fastjac._kernels.elementwise", _K.BINARY_CODES,
                            _optable.BINARY_CODES)
_UNARY_DOCS = {op.name: (op.value, op.deriv) for op in _optable.PUBLIC_UNARY}
_U = _optable.UNARY_CODES
UNARY: dict[str, UnaryOp] = {}
for _name, (_f, _d) in _UNARY_DOCS.items():
    UNARY[_name] = UnaryOp(
        _name,
        bytes([_U[_name]]),
        doc=f"Element-wise ``{_name}``: y = {_f}, dy/dx = {_d}.\n\n" + (UnaryOp.__doc__ or ""),
    )

_BINARY_DOCS = {op.name: (op.value, op.deriv, op.deriv_x) for op in _optable.BINARY_OPS}
_B = _optable.BINARY_CODES
BINARY: dict[str, BinaryOp] = {}
for _name, (_f, _jw, _jx) in _BINARY_DOCS.items():
    BINARY[_name] = BinaryOp(
        _name,
        _B[_name],
        doc=f"Element-wise ``{_name}``: y = {_f}; ∂y/∂w = {_jw}, ∂y/∂x = {_jx} (paper §4.2)."
        "\n\n" + (BinaryOp.__doc__ or ""),
    )
del _name, _f, _d, _jw, _jx
