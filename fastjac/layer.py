"""A layer of m ReLU neurons over a batch, its MSE loss and its training loop.

"Neural networks consist of many of these units organized into multiple collections of
neurons called layers. The activation of one layer's units is the input to the next
layer's units." (Parr & Howard, §5.) The layer is in the paper's numerator layout: ``W``
has shape (m, n), one row per neuron, each row the paper's ``w``; ``b`` has shape (m,).
For a batch ``X`` (N, n), one sample per row:

* activation: ``A = max(0, X Wᵀ + b)``, shape (N, m) (row i is ``max(0, W x_i + b)``);
* loss: ``C = (1/N) Σ_i ||y_i - a_i||²`` with targets ``Y`` (N, m);
* gradients: with ``Z = X Wᵀ + b``, the error ``E = Z - Y`` and the mask ``M = (Z > 0)``
  (ReLU'(0) = 0, the paper's z <= 0 branch), ``c = E ⊗ M`` and

      ∂C/∂W = (2/N) cᵀ X   (m, n),   ∂C/∂b = (2/N) Σ_i c_i   (m,),   ∂C/∂X = (2/N) c W.

  Row k of ∂C/∂W is neuron k's §6.1 gradient, entry k of ∂C/∂b its §6.2 derivative.

With m = 1 every function is :mod:`fastjac.neuron` (``W = w[None, :]``, ``b = [b]``,
``Y = y[:, None]``): it runs the neuron's kernels, so the results are the same bits.

Conventions (the neuron's):

* dtypes: the computation dtype is ``numpy.result_type`` of the data arrays (``X``, ``Y``,
  ``W``, and ``A``, ``G`` for :func:`activation_vjp`): float32 or float64; integers and
  bools compute in float64. ``b`` is kept in float64 and never changes the dtype (as the
  neuron's scalar bias). Returned arrays have the computation dtype; the loss is a Python
  float computed in double.
* layouts: any layout is accepted; inputs that are not C-contiguous or not of the
  computation dtype are copied once per call; inputs are never written.
* kernels: when ``m n <= ONEPASS_MAX[dtype]`` one pass over ``X`` reads each row once and gives
  the m dot products, masks, loss terms and gradient rows, with every sum in double; the
  results are bitwise identical for every ``n_threads`` (fixed blocks merged in block
  order). Larger layers send the two matrix products (``X Wᵀ`` and ``cᵀ X``, plus ``c W``
  for ∂C/∂X) to BLAS and fuse everything between them (bias, ReLU, residual, mask, loss,
  bias gradient) into one pass; the products are computed by BLAS in the computation
  dtype. Where NumPy's BLAS is OpenBLAS and the pool may use two threads, fixed row blocks
  run on fastjac's pool, each with one-thread GEMM calls (``_kernels/fj_layer_blas.h``;
  OpenBLAS's process-wide thread count is 1 during the call), and the partial ∂C/∂W are
  added in block order: bitwise the same for every ``n_threads``. Elsewhere the products
  go through ``numpy.matmul`` into preallocated buffers, and whether they are the same
  bits for another BLAS thread count is BLAS's business (OpenBLAS and MKL do not promise
  it; MKL's CNR mode does); the fused pass itself is deterministic.
* threads: ``n_threads`` follows fastjac's one rule (``docs/guide/threads.rst``): work
  below ``N m n = 2**18`` multiply-adds runs serially on the calling thread; above it
  ``None`` means every thread of fastjac's pool (the CPUs, or ``FASTJAC_NUM_THREADS``)
  and an int is an upper bound. The pool's caller never waits for a busy core, so
  ``None`` is safe next to BLAS. On the blocked BLAS path it bounds the products'
  threads too; through ``numpy.matmul`` it does not set BLAS's own threads.
* special values: NaN and inf propagate as in the NumPy expression
  ``Z = X @ W.T + b; c = (Z - Y) * (Z > 0); gW = 2/N * c.T @ X``.
"""

from typing import NamedTuple

import numpy as np

from fastjac import _config, _display
from fastjac import _validate as _v
from fastjac import neuron as _neuron
from fastjac._kernels import layer as _k
from fastjac._kernels import neuron as _nk
from fastjac.jacobian import LayerJacobian

__all__ = [
    "FitResult",
    "activation",
    "activation_jacobian",
    "activation_vjp",
    "fit",
    "loss",
    "loss_grad",
]

# One pass over X while m * n is at most this (per dtype); BLAS above. Measured on a
# 2-core AMD EPYC (Zen 4, AVX-512, OpenBLAS through NumPy), see docs/guide/layer.rst
# ("Two kernels"): the one-pass loop computes in double, so float32 data meets BLAS's
# float32 products (twice the SIMD width) earlier than float64 data meets its float64 ones.
# float32 moved from 2^11 to 2^10 after the two-thread measurements in that section.
ONEPASS_MAX = {np.dtype(np.float64): 1 << 14, np.dtype(np.float32): 1 << 10}

# Below this much work (N * m * n multiply-adds) a call runs serially on the calling thread
# (the pool's one rule, fastjac._validate.n_threads / pool.fast_threads, with this threshold).
_THREAD_THRESHOLD = 1 << 18

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_ONEPASS = {np.dtype(np.float64): _k.onepass_f64, np.dtype(np.float32): _k.onepass_f32}
_BETWEEN = {np.dtype(np.float64): _k.between_f64, np.dtype(np.float32): _k.between_f32}
_FIT = {np.dtype(np.float64): _k.fit_f64, np.dtype(np.float32): _k.fit_f32}
_BLAS = {np.dtype(np.float64): _k.blas_f64, np.dtype(np.float32): _k.blas_f32}
_LOSS_WRT = frozenset(("W", "b", "X"))
_DEFAULT_LOSS_WRT = ("W", "b")
_VJP_WRT = frozenset(("X", "W", "b"))
_DEFAULT_VJP_WRT = ("X", "W", "b")


# -- checks --------------------------------------------------------------------------------


def _layer(X, W, b, dtype=None, extra=(), bias=True):
    """Checked ``(X, W, b, dtype, N, n, m)``; ``extra`` are ``(name, value)`` data arrays
    that take part in the dtype (returned converted, in order, after the tuple). ``bias``
    False: the function takes no ``b`` (``activation_vjp``), and ``b`` stays None."""
    if dtype is None:
        dtype = _v.result_dtype(("X", X), ("W", W), *extra)
    X = _v.matrix(X, "X", dtype)
    W = _v.matrix(W, "W", dtype)
    N, n = X.shape
    m = W.shape[0]
    if W.shape[1] != n:
        raise ValueError(
            f"W must have shape (m, n) with n = {n} to match X.shape={X.shape}, "
            f"got W.shape={W.shape}"
        )
    if bias:
        b = _bias(b, m, W.shape)
    rest = []
    for name, value in extra:
        if value is None:  # the kernels would read a NULL buffer
            raise TypeError(f"{name} must be an array of shape (N, m) = ({N}, {m}), got None")
        arr = _v.matrix(value, name, dtype)
        if arr.shape != (N, m):
            raise ValueError(
                f"{name} must have shape (N, m) = ({N}, {m}) to match X.shape={X.shape} "
                f"and W.shape={W.shape}, got {name}.shape={arr.shape}"
            )
        rest.append(arr)
    return (X, W, b, dtype, N, n, m, *rest)


def _bias(b, m, W_shape):
    if b is None:  # DESIGN.md: b is (m,); a zero bias is np.zeros(m), as fj.neuron's is 0.0
        raise TypeError(f"b must be an array of shape (m,) = ({m},), got None")
    if type(b) is np.ndarray and b.dtype is _F64 and b.flags.c_contiguous and b.ndim == 1:
        arr = b
    else:
        arr = _v.vector(b, "b", _F64)
    if arr.shape != (m,):
        raise ValueError(
            f"b must have shape (m,) = ({m},) to match W.shape={W_shape}, got b.shape={arr.shape}"
        )
    return arr


def _need_rows(N, what):
    if N == 0:
        raise ValueError(
            f"X has no rows (N == 0): {what} is a mean over the samples, (1/N) Σ, and is "
            "undefined for an empty batch"
        )


def _threads(n_threads, work):
    return _v.n_threads(n_threads, work, _THREAD_THRESHOLD)


def _onepass(m, n, dtype):
    return m * n <= ONEPASS_MAX[dtype]


def _finish(buf, out):
    if out is None or buf is out:
        return buf
    return _v.finish(buf.reshape(-1), out)


def _out_buffer(out, name, shape, dtype, inputs, others=()):
    """A C-contiguous kernel buffer of ``shape`` and the user's ``out`` (or None)."""
    if out is None:
        return _v.new_output(shape, dtype), None
    buf, out = _v.output(out, name, shape, dtype, inputs=(), others=others)
    for in_name, arr in inputs:
        if arr is not None and arr.size and np.may_share_memory(out, arr):
            raise ValueError(f"{name} overlaps the input {in_name}; outputs must not "
                             "share memory with inputs here")
    return buf.reshape(shape), out


# -- activation --------------------------------------------------------------------------


def activation(X, W, b, out=None, n_threads=None):
    """The layer's activation ``A = max(0, X Wᵀ + b)`` (paper §5, m neurons at once).

    Parameters
    ----------
    X : array_like, shape (N, n)
        One sample per row.
    W : array_like, shape (m, n)
        One row per neuron (numerator layout).
    b : array_like, shape (m,)
        Biases (kept in float64; NaN and inf propagate). ``None`` raises ``TypeError``
        (a zero bias is ``np.zeros(m)``), here and in :func:`loss` and :func:`loss_grad`.
    out : numpy.ndarray, shape (N, m), optional
        Where to write the result (computation dtype, writeable, not overlapping an input).
    n_threads : int, optional
        At most this many threads (``None``: every thread of fastjac's pool); serial below
        2**18 multiply-adds. The result is the same bits for every value.

    Returns
    -------
    numpy.ndarray, shape (N, m)
        ``A[i, k] = max(0, W_k·x_i + b_k)``; a NaN pre-activation gives NaN, as
        ``np.maximum`` does.
    """
    X, W, b, dtype, N, n, m = _layer(X, W, b)
    buf, out = _out_buffer(out, "out", (N, m), dtype, (("X", X), ("W", W)))
    nt = _threads(n_threads, N * n * m)
    if N == 0:
        return _finish(buf, out)
    if m == 1:
        _nk.forward_f64(X, W.reshape(n), float(b[0]), buf.reshape(N), None, nt) \
            if dtype is _F64 else \
            _nk.forward_f32(X, W.reshape(n), float(b[0]), buf.reshape(N), None, nt)
    elif _onepass(m, n, dtype):
        _ONEPASS[dtype](_k.MODE_ACT, X, None, None, None, W, b, buf, 0.0, None, 0.0, None,
                        0.0, None, nt)
    elif _BLAS[dtype](_k.MODE_ACT, X, None, None, None, W, b, buf, 0.0, 0.0, None, None, None,
                      nt) is None:
        with np.errstate(invalid="ignore", over="ignore"):
            np.matmul(X, W.T, out=buf)
        _BETWEEN[dtype](_k.MODE_ACT, buf, None, None, b, 0.0, 0.0, None, nt)
    return _finish(buf, out)


def activation_jacobian(X, W, b, n_threads=None):
    """Structured Jacobians of the layer's activation ``A = max(0, X Wᵀ + b)`` (paper §5).

    For sample i, with the mask ``M_i = (W x_i + b > 0)`` (ReLU'(0) = 0), the paper's
    per-neuron rules give, in numerator layout:

    * ∂a_i/∂W (m x mn): row k is ``M_ik`` times x_iᵀ placed in neuron k's columns,
      ``diag(M_i) ⊗ x_iᵀ``;
    * ∂a_i/∂b (m x m): ``diag(M_i)``;
    * ∂a_i/∂x_i (m x n): ``diag(M_i) W``.

    Stacked over the batch (outputs ``A.ravel()``, inputs ``W.ravel()``, ``b``,
    ``X.ravel()``) these are the three :class:`fastjac.jacobian.LayerJacobian` objects
    returned. Each holds the (N, m) mask and references X or W; none builds its dense
    (N m) x (m n), (N m) x m or (N m) x (N n) matrix unless ``todense()`` is called.
    ``J.block(i)`` is sample i's dense Jacobian.

    Returns
    -------
    JW, Jb, JX : LayerJacobian
        The Jacobians of ``A.ravel()`` with respect to ``W.ravel()``, ``b`` and
        ``X.ravel()``.
    """
    X_in = X
    X, W, b, dtype, N, n, m = _layer(X, W, b)
    nt = _threads(n_threads, N * n * m)
    A = _v.new_output((N, m), dtype)
    if N:
        if _onepass(m, n, dtype):
            _ONEPASS[dtype](_k.MODE_ACT, X, None, None, None, W, b, A, 0.0, None, 0.0, None,
                            0.0, None, nt)
        else:
            np.matmul(X, W.T, out=A)
            _BETWEEN[dtype](_k.MODE_ACT, A, None, None, b, 0.0, 0.0, None, nt)
    # the mask from the pre-activation's sign: A > 0 exactly where z > 0; NaN stays NaN
    mask = np.where(np.isnan(A), A, (A > 0).astype(dtype))
    Xr = X_in if isinstance(X_in, np.ndarray) and X_in.shape == X.shape else X
    return (LayerJacobian(mask, Xr, "W"), LayerJacobian(mask, None, "b"),
            LayerJacobian(mask, W, "X"))


def _wrt_list(wrt, allowed, name="wrt"):
    if isinstance(wrt, str):
        _v.subset(wrt, name, allowed)
        return [wrt], True
    try:
        items = list(wrt)
    except TypeError:
        raise TypeError(f"{name} must be a string or an iterable of strings from "
                        f"{sorted(allowed)}, got {wrt!r}") from None
    _v.subset(items, name, allowed)
    if len(set(items)) != len(items):
        raise ValueError(f"{name} names an argument twice: {items}")
    return items, False


def activation_vjp(X, W, A, G, wrt=_DEFAULT_VJP_WRT, out=None, n_threads=None):
    """Back-propagate ``G`` (N, m) through ``A = max(0, X Wᵀ + b)`` (reverse mode, §5).

    The mask is ``A > 0`` (ReLU'(0) = 0: a zero activation passes no gradient), and with
    ``c = G ⊗ (A > 0)``::

        ∂/∂X = c W  (N, n),     ∂/∂W = cᵀ X  (m, n),     ∂/∂b = Σ_i c_i  (m,).

    ``b`` is not needed: ``A`` carries the mask.

    Parameters
    ----------
    X : array_like, shape (N, n)
    W : array_like, shape (m, n)
    A : array_like, shape (N, m)
        The activation (from :func:`activation`).
    G : array_like, shape (N, m)
        The cotangent, ∂(something)/∂A.
    wrt : str or sequence of str, default ("X", "W", "b")
        Which gradients, in which order. A single string returns a single array.
    out : ndarray or tuple, optional
        Output arrays in the order of ``wrt`` (a single array for a single string); an
        entry may be None.
    n_threads : int, optional
        As in :func:`activation` (the pool's rule).

    Returns
    -------
    tuple of ndarray or ndarray
        The gradients in ``wrt`` order, in the computation dtype (b's too); one array
        when ``wrt`` is a string.
    """
    names, single = _wrt_list(wrt, _VJP_WRT)
    X, W, _, dtype, N, n, m, A, G = _layer(X, W, None, extra=(("A", A), ("G", G)), bias=False)
    if out is None:
        outs = [None] * len(names)
    elif single:
        outs = [out]
    else:
        if not isinstance(out, tuple) or len(out) != len(names):
            raise ValueError(f"out must be a tuple of {len(names)} arrays (or None) in the "
                             f"order of wrt={tuple(names)}")
        outs = list(out)
    shapes = {"X": (N, n), "W": (m, n), "b": (m,)}
    inputs = (("X", X), ("W", W), ("A", A), ("G", G))
    bufs = {}
    users = {}
    for name, o in zip(names, outs):
        others = tuple((f"out for {k}", users[k]) for k in users if users[k] is not None)
        bufs[name], users[name] = _out_buffer(o, f"out for {name!r}", shapes[name], dtype,
                                              inputs, others)
    nt = _threads(n_threads, N * n * m)
    gW, gb, gX = bufs.get("W"), bufs.get("b"), bufs.get("X")
    if N == 0:
        if gW is not None:
            gW[...] = 0
        if gb is not None:
            gb[...] = 0
    elif _onepass(m, n, dtype):
        _ONEPASS[dtype](_k.MODE_VJP, X, None, A, G, W, None, None, 1.0, gW, 1.0, gb, 1.0,
                        gX, nt)
    elif _BLAS[dtype](_k.MODE_VJP, X, None, A, G, W, None, np.empty((N, m), dtype=dtype),
                      1.0, 1.0, gW, gb, gX, nt) is None:
        C = np.array(G, dtype=dtype, order="C")
        _BETWEEN[dtype](_k.MODE_VJP, C, None, A, None, 1.0, 1.0, gb, nt)
        with np.errstate(invalid="ignore", over="ignore"):
            if gW is not None:
                np.matmul(C.T, X, out=gW)
            if gX is not None:
                np.matmul(C, W, out=gX)
    res = tuple(_finish(bufs[k], users[k]) for k in names)
    return res[0] if single else res


# -- loss ------------------------------------------------------------------------------------


def loss(X, Y, W, b, n_threads=None):
    """Mean squared error of the layer: ``C = (1/N) Σ_i ||y_i - max(0, W x_i + b)||²``.

    Parameters
    ----------
    X : array_like, shape (N, n)
    Y : array_like, shape (N, m)
    W : array_like, shape (m, n)
    b : array_like, shape (m,)
    n_threads : int, optional
        As in :func:`activation` (the pool's rule).

    Returns
    -------
    float
        C, accumulated in double.
    """
    C = _k.loss_grad_fast(X, Y, W, b, None, n_threads, ONEPASS_MAX[_F64],
                          ONEPASS_MAX[_F32], _THREAD_THRESHOLD, False)
    if C is not None:
        return C
    return _loss_grad(X, Y, W, b, frozenset(), None, n_threads)[0]


def _loss_wrt(wrt):
    if wrt is _DEFAULT_LOSS_WRT:
        return frozenset(("W", "b"))
    return _v.subset(wrt, "wrt", _LOSS_WRT)


def loss_grad(X, Y, W, b, wrt=_DEFAULT_LOSS_WRT, out=None, n_threads=None):
    """The loss C and its gradients with respect to W, b (and X), fused (paper §6, per
    neuron).

    With ``Z = X Wᵀ + b``, ``c = (Z - Y) ⊗ (Z > 0)`` (inactive entries contribute nothing;
    ReLU'(0) = 0)::

        C     = (1/N) Σ_ik (Y_ik - max(0, Z_ik))²
        ∂C/∂W = (2/N) cᵀ X      (m, n): row k is neuron k's §6.1 gradient
        ∂C/∂b = (2/N) Σ_i c_i   (m,)
        ∂C/∂X = (2/N) c W       (N, n): what back-propagation into a previous layer needs

    Parameters
    ----------
    X : array_like, shape (N, n)
    Y : array_like, shape (N, m)
    W : array_like, shape (m, n)
    b : array_like, shape (m,)
    wrt : str or iterable of str, default ("W", "b")
        Gradients to compute, from ``"W"``, ``"b"``, ``"X"``.
    out : ndarray or tuple, optional
        ``gW_out``, or a tuple ``(gW_out, gb_out)`` or ``(gW_out, gb_out, gX_out)``; any
        entry may be None (then it is allocated). Each must have the computation dtype,
        its gradient's shape, be writeable and not overlap another output.
    n_threads : int, optional
        At most this many threads (``None``: every thread of fastjac's pool); serial below
        2**18 multiply-adds. On the one-pass path results are bitwise identical for every
        value.

    Returns
    -------
    tuple
        ``(C, gW, gb)``, or ``(C, gW, gb, gX)`` when ``"X"`` is in ``wrt``; a gradient not
        in ``wrt`` is None. ``C`` is a float.

    Raises
    ------
    ValueError
        ``N == 0``, mismatched shapes (the message names the arguments and shapes), an
        unknown ``wrt`` entry, an ``out`` of the wrong shape, read-only or overlapping.
    TypeError
        Non-real inputs, an ``out`` of the wrong dtype.
    """
    res = None
    if wrt is _DEFAULT_LOSS_WRT and (out is None or type(out) is tuple):
        res = _k.loss_grad_fast(X, Y, W, b, out, n_threads, ONEPASS_MAX[_F64],
                                ONEPASS_MAX[_F32], _THREAD_THRESHOLD)
    if res is None:
        res = _loss_grad(X, Y, W, b, _loss_wrt(wrt), out, n_threads)
        if "X" not in _loss_wrt(wrt):
            res = res[:3]
    if _config.VALIDATE:
        _validate_loss_grad(X, Y, W, b, res)
    return res


def _validate_loss_grad(X, Y, W, b, res):
    """Under ``fj.validating()``: check gW and gb against central differences."""
    from fastjac import gradcheck

    X, W, b, dtype, N, n, m, Y = _layer(X, W, b, extra=(("Y", Y),))
    if res[1] is not None:
        gradcheck.assert_grad(lambda v: loss(X, Y, v.reshape(m, n), b),
                              lambda v: np.asarray(res[1], dtype=np.float64).reshape(-1),
                              W.astype(np.float64).reshape(-1))
    if res[2] is not None:
        gradcheck.assert_grad(lambda v: loss(X, Y, W, v), lambda v: np.asarray(res[2]),
                              np.array(b, dtype=np.float64))


def _loss_grad(X, Y, W, b, chosen, out, n_threads):
    X, W, b, dtype, N, n, m, Y = _layer(X, W, b, extra=(("Y", Y),))
    _need_rows(N, "the loss")
    want_W, want_b, want_X = "W" in chosen, "b" in chosen, "X" in chosen
    gW_out = gb_out = gX_out = None
    if out is not None:
        if isinstance(out, np.ndarray):
            gW_out = out
        elif isinstance(out, tuple) and len(out) in (2, 3):
            gW_out, gb_out = out[:2]
            gX_out = out[2] if len(out) == 3 else None
        else:
            raise ValueError("out must be an ndarray (gW_out) or a tuple (gW_out, gb_out) or "
                             "(gW_out, gb_out, gX_out)")
    for o, flag, label in ((gW_out, want_W, "W"), (gb_out, want_b, "b"), (gX_out, want_X, "X")):
        if o is not None and not flag:
            raise ValueError(f"out holds an array for {label!r}, but {label!r} is not in wrt")
    inputs = (("X", X), ("Y", Y), ("W", W), ("b", b))
    gW = gb = gX = None
    taken = []
    if want_W:
        gW, gW_out = _out_buffer(gW_out, "gW_out", (m, n), dtype, inputs)
        taken.append(("gW_out", gW_out))
    if want_b:
        gb, gb_out = _out_buffer(gb_out, "gb_out", (m,), dtype, inputs, tuple(taken))
        taken.append(("gb_out", gb_out))
    if want_X:
        gX, gX_out = _out_buffer(gX_out, "gX_out", (N, n), dtype, inputs, tuple(taken))
    nt = _threads(n_threads, N * n * m)
    scale = 2.0 / N
    if m == 1:
        # one neuron is the neuron: its kernel, its arithmetic
        gw1 = gW.reshape(n) if gW is not None else None
        sse, gb_sum = _neuron._LOSS_GRAD_SUMS[dtype](
            X, Y.reshape(N), W.reshape(n), float(b[0]), scale, gw1, scale, gX, nt)
        if gb is not None:
            gb[0] = scale * gb_sum
    elif _onepass(m, n, dtype):
        sse = _ONEPASS[dtype](_k.MODE_LOSS, X, Y, None, None, W, b, None, scale, gW, scale,
                              gb, scale, gX, nt)
    else:
        sse = _BLAS[dtype](_k.MODE_LOSS, X, Y, None, None, W, b, np.empty((N, m), dtype=dtype),
                           scale, scale, gW, gb, gX, nt)
    if sse is None:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf propagate silently
            Z = np.matmul(X, W.T)
            sse = _BETWEEN[dtype](_k.MODE_LOSS, Z, Y, None, b, scale, scale, gb, nt)
            # Z now holds (2/N) c
            if gW is not None:
                np.matmul(Z.T, X, out=gW)
            if gX is not None:
                np.matmul(Z, W, out=gX)
    C = sse / N
    gW = _finish(gW, gW_out) if want_W else None
    gb = _finish(gb, gb_out) if want_b else None
    if want_X:
        return C, gW, gb, _finish(gX, gX_out)
    return C, gW, gb


# -- training ----------------------------------------------------------------------------------


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes
    ----------
    W : ndarray, shape (m, n)
        Trained weights, in the computation dtype.
    b : ndarray of float64, shape (m,)
        Trained biases.
    losses : ndarray of float64, shape (epochs run,)
        ``losses[e]``: the epoch's loss (for full batches, C(W, b) before the epoch's
        update), as :class:`fastjac.neuron.FitResult` defines it.
    """

    W: np.ndarray
    b: np.ndarray
    losses: np.ndarray


def fit(X, Y, lr, epochs, batch_size=None, W0=None, b0=None, seed=0, shuffle=True,
        callback=None, progress=False, n_threads=None):
    """Train the layer by gradient descent on the MSE loss (paper §6, m neurons at once).

    Each step takes a batch of B rows and updates ``W <- W - lr ∂C/∂W``,
    ``b <- b - lr ∂C/∂b`` with the gradients over that batch (scaled by 2/B). Epochs,
    batches, shuffling (``rng.permutation(N)`` per epoch from
    ``rng = np.random.default_rng(seed)``), the callback, the progress bar and the
    divergence error are those of :func:`fastjac.neuron.fit`; with m = 1 this *is*
    ``fastjac.neuron.fit``. Parameters are kept in float64 and rounded to the computation
    dtype at the end. For one-pass shapes the whole epoch loop runs in compiled code.

    Parameters
    ----------
    X : array_like, shape (N, n)
    Y : array_like, shape (N, m)
    lr : float
        Learning rate, finite and > 0.
    epochs : int
    batch_size : int, optional
        ``None`` (or >= N): full batch.
    W0 : array_like, shape (m, n), optional
        Initial weights; ``None`` draws them from N(0, 1/n) with ``rng`` (before any
        permutation). ``m`` is taken from ``Y.shape[1]``.
    b0 : array_like, shape (m,), optional
        Initial biases (finite); ``None`` means zeros.
    seed : int or None, default 0
    shuffle : bool, default True
    callback : callable, optional
        ``callback(epoch, loss, W, b)`` after every epoch (copies); ``True`` stops.
    progress : bool, default False
        A tqdm progress bar (needs the optional ``tqdm``).
    n_threads : int, optional
        As in :func:`activation` (the pool's rule).

    Returns
    -------
    FitResult
        ``(W, b, losses)``.

    Raises
    ------
    FloatingPointError
        The loss or the parameters stopped being finite (the learning rate diverged); the
        message names the epoch; ``epoch`` and ``losses`` attributes as for the neuron.
    ValueError
        Non-finite loss at the initial parameters, N == 0, bad shapes, lr <= 0, epochs < 1.
    """
    lr = _v.positive_number(lr, "lr")
    epochs = _v.positive_int(epochs, "epochs")
    batch_size = _v.positive_int(batch_size, "batch_size", allow_none=True)
    callback = _v.callable_or_none(callback, "callback")
    dtype = _v.result_dtype(("X", X), ("Y", Y), ("W0", W0))
    X = _v.matrix(X, "X", dtype)
    Y = _v.matrix(Y, "Y", dtype)
    N, n = X.shape
    if Y.shape[0] != N:
        raise ValueError(f"Y must have shape (N, m) with N = {N} to match X.shape={X.shape}, "
                         f"got Y.shape={Y.shape}")
    m = Y.shape[1]
    if m == 0:
        raise ValueError(f"Y must have at least one column (one per neuron), got {Y.shape}")
    if W0 is not None:
        W0 = _v.matrix(W0, "W0", dtype)
        if W0.shape != (m, n):
            raise ValueError(f"W0 must have shape (m, n) = ({m}, {n}) to match X.shape="
                             f"{X.shape} and Y.shape={Y.shape}, got W0.shape={W0.shape}")
        if not np.isfinite(W0).all():
            raise ValueError("W0 must be finite")
    if b0 is None:
        b = np.zeros(m)
    else:
        b = np.array(_v.vector(b0, "b0", _F64), dtype=np.float64)
        if b.shape != (m,):
            raise ValueError(f"b0 must have shape (m,) = ({m},) to match Y.shape={Y.shape}, "
                             f"got b0.shape={b.shape}")
        if not np.isfinite(b).all():
            raise ValueError("b0 must be finite")
    if m == 1:
        res = _neuron.fit(X, Y.reshape(N), lr, epochs, batch_size=batch_size,
                          w0=None if W0 is None else W0.reshape(n), b0=float(b[0]),
                          seed=seed, shuffle=shuffle,
                          callback=None if callback is None else
                          (lambda e, c, w, bb: callback(e, c, w[None, :],
                                                        np.array([bb]))),
                          progress=progress, n_threads=n_threads)
        return FitResult(res.w[None, :], np.array([res.b]), res.losses)
    tqdm = _display.load_tqdm(required_by="fit(progress=True)") if progress else None
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"seed cannot seed numpy.random.default_rng: {exc}") from None
    if W0 is None:
        W = rng.normal(0.0, 1.0 / np.sqrt(max(n, 1)), size=(m, n))
    else:
        W = np.array(W0, dtype=np.float64)
    _need_rows(N, "the loss")
    B = N if batch_size is None or batch_size >= N else batch_size
    shuffled = bool(shuffle) and B < N
    per_epoch = callback is not None or tqdm is not None
    if per_epoch:
        chunk = 1
    elif shuffled:
        chunk = max(1, min(epochs, _neuron._ORDER_BUDGET // N))
    else:
        chunk = epochs
    orders = np.empty((chunk, N), dtype=np.intp) if shuffled else None
    losses = np.empty(epochs, dtype=np.float64)
    nt = _threads(n_threads, B * n * m)
    bar = _display.Progress(epochs, desc="fit", tqdm=tqdm) if tqdm is not None else None
    onepass = _onepass(m, n, dtype)
    done = 0
    try:
        while done < epochs:
            count = min(chunk, epochs - done)
            if shuffled:
                for e in range(count):
                    orders[e] = rng.permutation(N)
            if onepass:
                bad_epoch, bad_step = _FIT[dtype](
                    X, Y, W, b, lr, count, B, orders[:count] if shuffled else None,
                    losses[done:done + count], nt)
            else:
                bad_epoch, bad_step = _fit_blas(X, Y, W, b, lr, count, B,
                                                orders[:count] if shuffled else None,
                                                losses[done:done + count], nt, dtype)
            if bad_epoch >= 0:
                _neuron._diverged(done + bad_epoch, bad_step, lr, losses)
            stop = False
            for e in range(done, done + count):
                if bar is not None:
                    bar.update(float(losses[e]))
                if callback is not None and callback(e, float(losses[e]), W.astype(dtype),
                                                     b.copy()):
                    stop = True
            done += count
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    W_out = _neuron._weights_in(W, dtype, "W", done, lr, losses)
    return FitResult(W_out, b, losses[:done].copy())


def _fit_blas(X, Y, W, b, lr, epochs, B, orders, losses, nt, dtype):
    """The epoch loop for layers too wide for the one-pass loop: each step is the BLAS
    path of :func:`loss_grad` (W kept in float64, rounded to the data dtype per step)."""
    N = X.shape[0]
    for ep in range(epochs):
        sse = 0.0
        for step, s0 in enumerate(range(0, N, B)):
            rows = orders[ep, s0:s0 + B] if orders is not None else slice(s0, s0 + B)
            Xb, Yb = X[rows], Y[rows]
            Wd = W.astype(dtype)
            Z = np.matmul(Xb, Wd.T)
            scale = 2.0 / Xb.shape[0]
            s = _BETWEEN[dtype](_k.MODE_LOSS, Z, Yb, None, b, scale, scale, None, nt)
            gb = Z.sum(axis=0, dtype=np.float64)  # Z holds (2/B) c
            if not np.isfinite(s):
                return ep, step
            sse += s
            W -= lr * np.matmul(Z.T, Xb).astype(np.float64)
            b -= lr * gb
        losses[ep] = sse / N
        if not (np.isfinite(losses[ep]) and np.isfinite(W).all() and np.isfinite(b).all()):
            return ep, -1
    return -1, -1
