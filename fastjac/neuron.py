"""The ReLU neuron over a batch, and its training loop (paper §5 and §6).

A batch is ``X`` of shape (N, n), one sample x_i per row, with targets ``y`` of shape (N,);
the neuron has weights ``w`` of shape (n,) and a bias ``b`` (a real scalar). With
z_i = w·x_i + b:

* activation: ``max(0, z)``, shape (N,) (§5);
* loss: C = (1/N) Σ_i (y_i - max(0, z_i))² (§6);
* gradient (§6.1, §6.2), with the error e_i = z_i - y_i and the sums over the *active*
  samples only (z_i > 0):

      ∂C/∂w = (2/N) Σ_active e_i x_iᵀ,      ∂C/∂b = (2/N) Σ_active e_i.

  Inactive samples add nothing to the gradient but still add y_i² to C.

ReLU'(0) = 0 (the paper's z <= 0 branch): a sample with z_i == 0 exactly is inactive.

Conventions shared by every function here:

* dtypes: the computation dtype is ``numpy.result_type`` of ``X``, ``y`` and ``w``
  (float32 or float64; integer and bool inputs compute in float64; ``b`` never changes
  it). All sums accumulate in double, also for float32 data. Returned arrays have the
  computation dtype; returned scalars (C, ∂C/∂b) are Python floats computed in double.
* layouts: any layout is accepted. The kernels read C-contiguous rows, so an ``X`` that is
  not C-contiguous (Fortran order, a column slice, a transposed view), or not of the
  computation dtype, is copied once per call; a C-contiguous one (read-only included) is
  read in place. Inputs are never written.
* threads: below about 2**18 elements of ``X`` a call runs serially; above, ``None`` uses
  every core (the cap ``FASTJAC_NUM_THREADS``) of fastjac's caller-runs thread pool, and a
  given ``n_threads`` is an upper bound; no helper is used for less than 2**15 elements of
  work. Results are bitwise identical for every ``n_threads`` (rows are split into fixed
  blocks whose partial sums are merged in block order).
* special values: NaN and inf propagate as in the NumPy expression
  ``z = X@w + b; r = np.maximum(z, 0) - y; c = 2/N*r*(z > 0); gw = c@X``. A NaN z is
  neither active nor inactive: it makes C, ∂C/∂w and ∂C/∂b NaN. ``b`` may be NaN or inf
  (it propagates the same way).
"""

from typing import NamedTuple

import numpy as np

from fastjac import _config, _display, _validation
from fastjac import _validate as _v
from fastjac._kernels import neuron as _k
from fastjac.jacobian import Column, RowScaled

__all__ = [
    "FitResult",
    "activation",
    "activation_jacobian",
    "fit",
    "loss",
    "loss_grad",
    "loss_grad_sums",
]

# Below this many elements of X one thread is faster than waking a helper thread: measured
# on a 2-core machine, where two threads beat one from about 2e5 elements (n = 100) up.
_THREAD_THRESHOLD = 1 << 18

_WRT_NAMES = frozenset(("w", "b", "X"))
_DEFAULT_WRT = ("w", "b")

_F64 = np.dtype(np.float64)
_LOSS_GRAD_SUMS = {np.dtype(np.float64): _k.loss_grad_sums_f64,
                   np.dtype(np.float32): _k.loss_grad_sums_f32}
_FORWARD = {np.dtype(np.float64): _k.forward_f64, np.dtype(np.float32): _k.forward_f32}
_FIT = {np.dtype(np.float64): _k.fit_f64, np.dtype(np.float32): _k.fit_f32}

# Row orders drawn ahead for the in-kernel epoch loop: at most this many indices at once.
_ORDER_BUDGET = 1 << 20


def _batch(X, y, w, b, w_name="w", targets=True):
    """Checked ``(X, y, w, b, dtype, N, n)``: contiguous arrays of one float dtype.
    ``targets=False``: a batch without ``y`` (the activation); otherwise ``y`` is required
    (``None`` is refused: the kernels would read it as zeros)."""
    if y is None and targets:
        raise TypeError("y must be an array of shape (N,), got None")
    fast = _v.fast_batch(X, y, w)
    if fast is not None:
        dtype, N, n = fast
    else:
        dtype = _v.result_dtype(("X", X), ("y", y), (w_name, w))
        X = _v.matrix(X, "X", dtype)
        if y is not None:
            y = _v.vector(y, "y", dtype)
        w = _v.vector(w, w_name, dtype)
        N, n = _v.batch_shapes(X, y, w, names=("X", "y", w_name))
    if type(b) is not float:
        b = _v.real_number(b, "b")
    return X, y, w, b, dtype, N, n


def _finish(buf, out):
    """Copy a kernel buffer into ``out`` unless it already is ``out`` or a view of it."""
    if buf is out or buf.base is out:
        return out
    return _v.finish(buf, out)


def _need_rows(N, what):
    if N == 0:
        raise ValueError(
            f"X has no rows (N == 0): {what} is a mean over the samples, (1/N) Σ, and is "
            "undefined for an empty batch (loss_grad_sums returns the sums, which are 0)"
        )


def activation(X, w, b, out=None, n_threads=None):
    """The ReLU neuron's activation over a batch: ``max(0, X @ w + b)`` (paper §5).

    Parameters
    ----------
    X : array_like, shape (N, n)
        One sample per row.
    w : array_like, shape (n,)
        Weights.
    b : float
        Bias (a real scalar; NaN and inf propagate).
    out : numpy.ndarray, shape (N,), optional
        Where to write the result; must have the computation dtype and be writeable.
    n_threads : int, optional
        Threads to use (an upper bound); ``None``: all cores, serial below a measured
        threshold; fastjac's pool makes oversubscription harmless.

    Returns
    -------
    numpy.ndarray, shape (N,)
        ``max(0, w·x_i + b)`` for each row, in ``result_type(X, w)`` (float32 or float64).
        A NaN ``z`` gives NaN, as ``np.maximum`` does. ``N == 0`` gives an empty array.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    >>> fj.neuron.activation(X, np.array([0.5, -0.25]), 0.1)   # max(0, X w + b)
    array([0.1, 0. , 0.1])
    """
    X, _, w, b, dtype, N, n = _batch(X, None, w, b, targets=False)
    buf, out = _v.output(out, "out", (N,), dtype, inputs=(("X", X), ("w", w)))
    nt = _v.n_threads(n_threads, N * n, _THREAD_THRESHOLD)
    _FORWARD[dtype](X, w, b, buf, None, nt)
    return _finish(buf, out)


def activation_jacobian(X, w, b, n_threads=None):
    """Jacobians of the batched activation ``a = max(0, X @ w + b)`` (paper §5).

    Per sample the paper gives ∂a_i/∂w = x_iᵀ if z_i > 0 else 0ᵀ, and ∂a_i/∂b = 1 if
    z_i > 0 else 0. Stacked over the batch (numerator layout, one row per sample):

        ∂a/∂w = diag(mask) X   (N x n),      ∂a/∂b = mask   (N x 1),

    with ``mask_i = 1.0`` where z_i > 0 and ``0.0`` where z_i <= 0 (ReLU'(0) = 0; a NaN z
    gives a NaN mask entry).

    Parameters
    ----------
    X : array_like, shape (N, n)
    w : array_like, shape (n,)
    b : float
    n_threads : int, optional

    Returns
    -------
    Jw : fastjac.jacobian.RowScaled, shape (N, n)
        ``diag(mask) X``. It holds ``mask`` and a reference to ``X`` (the caller's array
        when ``X`` is an ndarray); no N x n array is made.
    Jb : fastjac.jacobian.Column, shape (N, 1)
        ``mask`` as a column.
    """
    X_in = X
    X, _, w, b, dtype, N, n = _batch(X, None, w, b, targets=False)
    mask = _v.new_output(N, dtype)
    nt = _v.n_threads(n_threads, N * n, _THREAD_THRESHOLD)
    _FORWARD[dtype](X, w, b, None, mask, nt)
    res = RowScaled(mask, X_in if isinstance(X_in, np.ndarray) else X), Column(mask)
    if _config.VALIDATE:
        _validation.cross_check_neuron("activation_jacobian", (X_in, w, b), res,
                                       activation=activation, loss=loss)
    return res


def loss(X, y, w, b, n_threads=None):
    """Mean squared error of the ReLU neuron (paper §6).

    ``C = (1/N) Σ_i (y_i - max(0, w·x_i + b))²``, in one pass over ``X``.

    Parameters
    ----------
    X : array_like, shape (N, n)
    y : array_like, shape (N,)
    w : array_like, shape (n,)
    b : float
    n_threads : int, optional

    Returns
    -------
    float
        C, accumulated in double (also for float32 data).

    Raises
    ------
    ValueError
        For ``N == 0`` (the mean over no samples is undefined), or mismatched shapes.
    """
    C = _k.loss_grad_fast(X, y, w, b, None, n_threads, _THREAD_THRESHOLD, False)
    if C is not None:
        return C
    X, y, w, b, dtype, N, n = _batch(X, y, w, b)
    _need_rows(N, "the loss")
    nt = _v.n_threads(n_threads, N * n, _THREAD_THRESHOLD)
    sse, _ = _LOSS_GRAD_SUMS[dtype](X, y, w, b, 0.0, None, 0.0, None, nt)
    return sse / N


def _wrt(wrt):
    if wrt is _DEFAULT_WRT:
        return True, True, False
    chosen = _v.subset(wrt, "wrt", _WRT_NAMES)
    return "w" in chosen, "b" in chosen, "X" in chosen


def loss_grad(X, y, w, b, out=None, n_threads=None, wrt=_DEFAULT_WRT):
    """The loss C and its gradients, fused into ONE pass over ``X`` (paper §6.1, §6.2).

    With z_i = w·x_i + b and, for active samples (z_i > 0), e_i = z_i - y_i::

        C     = (1/N) Σ_i (y_i - max(0, z_i))²
        ∂C/∂w = (2/N) Σ_active e_i x_iᵀ
        ∂C/∂b = (2/N) Σ_active e_i
        ∂C/∂X : (N, n), row i = (2/N) e_i wᵀ if sample i is active, else 0ᵀ

    Each row of ``X`` is read once, and used for its dot product and its share of the
    gradient while it is in cache; apart from the outputs, the extra memory is O(n).
    ∂C/∂X (``wrt`` containing ``"X"``) is what back-propagation into a previous layer
    needs; it is the only N x n array made, and only when asked for.

    Parameters
    ----------
    X : array_like, shape (N, n)
    y : array_like, shape (N,)
    w : array_like, shape (n,)
    b : float
    out : numpy.ndarray or tuple, optional
        Preallocated outputs, so that a training loop allocates no array per step:
        ``gw_out`` (an ndarray of shape (n,)) or a tuple ``(gw_out, gX_out)`` in which
        either may be ``None`` (then it is allocated); ``gX_out`` has shape (N, n). Both
        must have the computation dtype and be writeable; the gradient with respect to b
        is a scalar and is returned as a float, so it needs no output array.
    n_threads : int, optional
        Threads (an upper bound); ``None``: all cores, serial below a measured threshold
        (about 2**18 elements of X); fastjac's pool makes oversubscription harmless.
        Results are bitwise identical for every value.
    wrt : str or iterable of str, default ("w", "b")
        Which gradients to compute, from ``"w"``, ``"b"`` and ``"X"``. Leaving ``"w"`` out
        skips the gradient accumulation (the pass only reads X for the dot products).

    Returns
    -------
    tuple
        ``(C, gw, gb)`` when ``"X"`` is not in ``wrt``, else ``(C, gw, gb, gX)``:

        * ``C`` : float, the loss;
        * ``gw`` : ndarray (n,) in the computation dtype (``gw_out`` when given), or
          ``None`` if ``"w"`` is not in ``wrt``;
        * ``gb`` : float, or ``None`` if ``"b"`` is not in ``wrt``;
        * ``gX`` : ndarray (N, n) (``gX_out`` when given), only with ``"X"`` in ``wrt``.

    Raises
    ------
    ValueError
        ``N == 0`` (see :func:`loss_grad_sums` for sums over a possibly empty chunk),
        mismatched shapes, an unknown ``wrt`` entry, or an ``out`` of the wrong shape,
        read-only, or overlapping another output or partially overlapping an input.
    TypeError
        Non-real inputs, or an ``out`` of the wrong dtype or type.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 3))
    >>> y = np.maximum(X @ np.array([1.0, -2.0, 0.5]) + 0.1, 0)
    >>> w, b = np.full(3, 0.1), 0.0
    >>> C, gw, gb = fj.neuron.loss_grad(X, y, w, b)
    >>> round(C, 4), gw.round(4), round(gb, 4)
    (2.4166, array([-0.7297,  0.6383, -0.6469]), -0.7097)

    A training step that allocates no array:

    >>> gw = np.empty_like(w)
    >>> for _ in range(100):
    ...     C, _, gb = fj.neuron.loss_grad(X, y, w, b, out=gw)
    ...     w -= 0.1 * gw
    ...     b -= 0.1 * gb
    >>> round(fj.neuron.loss(X, y, w, b), 4)
    0.0018
    """
    res = None
    if wrt is _DEFAULT_WRT:
        # the training-loop fast path: plain arrays checked and read in one C call
        res = _k.loss_grad_fast(X, y, w, b, out, n_threads, _THREAD_THRESHOLD)
    if res is None:
        X, y, w, b, res = _loss_grad(X, y, w, b, out, n_threads, wrt)
    if _config.VALIDATE:
        _validation.cross_check_neuron("loss_grad", (X, y, w, b), res,
                                       activation=activation, loss=loss)
    return res


def _loss_grad(X, y, w, b, out, n_threads, wrt):
    """The general path of :func:`loss_grad`: every check, conversion and error message.
    Returns the converted ``(X, y, w, b)`` and the result."""
    X, y, w, b, dtype, N, n = _batch(X, y, w, b)
    if N == 0:
        _need_rows(N, "the loss")
    if wrt is _DEFAULT_WRT:
        want_w = want_b = True
        want_X = False
    else:
        want_w, want_b, want_X = _wrt(wrt)
    if out is None:
        gw_out = gX_out = None
    elif isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(
                f"out must be an ndarray or a tuple (gw_out, gX_out), got {len(out)} items"
            )
        gw_out, gX_out = out
    else:
        gw_out, gX_out = out, None
    if gw_out is not None and not want_w:
        raise ValueError("out holds gw_out, but 'w' is not in wrt")
    if gX_out is not None and not want_X:
        raise ValueError("out holds gX_out, but 'X' is not in wrt")
    inputs = (("X", X), ("y", y), ("w", w))
    gw_buf = gX_buf = None
    if want_X:
        gX_buf, gX_out = _v.output(gX_out, "gX_out", (N, n), dtype, inputs=inputs,
                                   others=(("gw_out", gw_out),))
        gX_buf = gX_buf.reshape(N, n)
    if want_w:
        if gX_out is None and _v.fast_output(gw_out, (n,), dtype):
            # the training-loop fast path: the kernel writes gw after its last read of
            # any input, so even an out that overlaps an input is safe
            gw_buf = gw_out
        else:
            gw_buf, gw_out = _v.output(gw_out, "gw_out", (n,), dtype, inputs=inputs,
                                       others=(("gX_out", gX_out),))
    work = N * n
    nt = _v.n_threads(n_threads, work, _THREAD_THRESHOLD)
    scale = 2.0 / N
    sse, gb_sum = _LOSS_GRAD_SUMS[dtype](X, y, w, b, scale, gw_buf, scale, gX_buf, nt)
    gw = _finish(gw_buf, gw_out) if want_w else None
    gb = scale * gb_sum if want_b else None
    res = (sse / N, gw, gb, _finish(gX_buf, gX_out)) if want_X else (sse / N, gw, gb)
    return X, y, w, b, res


def loss_grad_sums(X, y, w, b, n_threads=None):
    """The unscaled sums behind :func:`loss_grad`, for reductions over chunks of a batch.

    A distributed caller computes these per chunk of rows, adds them up, and scales once
    by the total N: C = sse / N, ∂C/∂w = (2/N) gw_sum, ∂C/∂b = (2/N) gb_sum (paper §6).

    Parameters
    ----------
    X : array_like, shape (N, n)
        A chunk of rows; N == 0 is allowed (all sums are 0).
    y : array_like, shape (N,)
    w : array_like, shape (n,)
    b : float
    n_threads : int, optional

    Returns
    -------
    sse : float
        Σ_i (y_i - max(0, z_i))².
    gw_sum : ndarray, shape (n,)
        Σ_active e_i x_i, in the computation dtype (accumulated in double).
    gb_sum : float
        Σ_active e_i.
    """
    X, y, w, b, dtype, N, n = _batch(X, y, w, b)
    gw = _v.new_output(n, dtype)
    nt = _v.n_threads(n_threads, N * n, _THREAD_THRESHOLD)
    sse, gb_sum = _LOSS_GRAD_SUMS[dtype](X, y, w, b, 1.0, gw, 0.0, None, nt)
    return sse, gw, gb_sum


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes
    ----------
    w : ndarray, shape (n,)
        Trained weights, in the computation dtype.
    b : float
        Trained bias.
    losses : ndarray of float64, shape (epochs run,)
        ``losses[e]``: the mean over the N samples of the squared residual of each sample,
        evaluated with the parameters in force when its batch was used, before that
        batch's update. With full batches this is exactly C(w, b) at the start of epoch e.
    """

    w: np.ndarray
    b: float
    losses: np.ndarray


def fit(X, y, lr, epochs, batch_size=None, w0=None, b0=0.0, seed=0, shuffle=True,
        callback=None, progress=False, n_threads=None):
    """Train the ReLU neuron by gradient descent on the MSE loss (paper §6).

    Each step takes a batch of B rows and updates, with the gradients of §6.1 and §6.2
    over that batch (so scaled by 2/B)::

        w <- w - lr ∂C/∂w,      b <- b - lr ∂C/∂b.

    An epoch is one sweep over the N rows in batches of ``batch_size`` (the last one may
    be smaller). With ``shuffle=True`` and ``batch_size < N``, each epoch visits the rows
    in the order ``rng.permutation(N)``, drawn once per epoch from
    ``rng = np.random.default_rng(seed)``; full-batch training draws nothing. The rows
    are read in place through the permutation (X is not copied or reordered).

    The epoch loop runs in compiled code with the GIL released, with no Python per step.
    Python only draws the permutations (for a run of epochs at once, up to 2**20 indices),
    and a ``callback`` or ``progress=True`` makes the loop return to Python once per
    epoch; results are bitwise the same either way. Parameters are kept in float64
    throughout (also for float32 data) and rounded to the computation dtype at the end.

    Parameters
    ----------
    X : array_like, shape (N, n)
    y : array_like, shape (N,)
    lr : float
        Learning rate, finite and > 0.
    epochs : int
        Number of epochs, >= 1.
    batch_size : int, optional
        Rows per step; ``None`` (or anything >= N) means full batch, one step per epoch.
    w0 : array_like, shape (n,), optional
        Initial weights. ``None`` draws them from N(0, 1/n) with the same ``rng`` (before
        any permutation): zeros would leave every sample at z = b0 and, with b0 <= 0,
        inactive with a zero gradient (ReLU'(0) = 0), so training would never start.
    b0 : float, default 0.0
        Initial bias (finite).
    seed : int or None, default 0
        Seed of ``np.random.default_rng`` (initial weights and permutations).
    shuffle : bool, default True
    callback : callable, optional
        ``callback(epoch, loss, w, b)`` after every epoch, with ``w`` a copy of the
        current weights; returning ``True`` stops training after that epoch.
    progress : bool, default False
        Show a tqdm progress bar with the current loss (needs the optional ``tqdm``).
    n_threads : int, optional
        Threads per step, chosen from B * n when ``None``.

    Returns
    -------
    FitResult
        ``(w, b, losses)``; ``losses[e]`` is the epoch's loss as defined in
        :class:`FitResult` (for full batches, the loss before the epoch's update).

    Raises
    ------
    FloatingPointError
        When the loss or the parameters stop being finite: the learning rate diverged.
        The message names the epoch; the exception has ``epoch`` and ``losses`` (the
        finite losses so far) attributes. The caller's X, y and w0 are never written.
    ValueError
        Non-finite loss at the initial parameters (NaN/inf in X, y, w0), N == 0, bad
        shapes, lr <= 0 or NaN, epochs < 1.
    ImportError
        ``progress=True`` without tqdm installed.

    Examples
    --------
    >>> import numpy as np
    >>> import fastjac as fj
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 3))
    >>> y = np.maximum(X @ np.array([1.0, -2.0, 0.5]) + 0.1, 0)   # a planted neuron
    >>> result = fj.neuron.fit(X, y, lr=0.1, epochs=500)
    >>> result.w.round(3), round(result.b, 3)
    (array([ 1. , -2. ,  0.5]), 0.1)
    >>> bool(result.losses[-1] < 1e-10 < result.losses[0])
    True
    """
    lr = _v.positive_number(lr, "lr")
    epochs = _v.positive_int(epochs, "epochs")
    batch_size = _v.positive_int(batch_size, "batch_size", allow_none=True)
    b = _v.real_scalar(b0, "b0")
    callback = _v.callable_or_none(callback, "callback")
    tqdm = _display.load_tqdm(required_by="fit(progress=True)") if progress else None
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"seed cannot seed numpy.random.default_rng: {exc}") from None

    if w0 is None:
        dtype = _v.result_dtype(("X", X), ("y", y))
        X = _v.matrix(X, "X", dtype)
        y = _v.vector(y, "y", dtype)
        N, n = _v.batch_shapes(X, y, np.empty(X.shape[1]))
        w = rng.normal(0.0, 1.0 / np.sqrt(max(n, 1)), size=n)
    else:
        X, y, w0, _, dtype, N, n = _batch(X, y, w0, 0.0, w_name="w0")
        w = np.array(w0, dtype=np.float64)  # a copy: w0 is never written
        if not np.isfinite(w).all():
            raise ValueError("w0 must be finite")
    _need_rows(N, "the loss")

    B = N if batch_size is None or batch_size >= N else batch_size
    shuffled = bool(shuffle) and B < N
    per_epoch = callback is not None or tqdm is not None
    if per_epoch:
        chunk = 1  # epochs per kernel call
    elif shuffled:
        chunk = max(1, min(epochs, _ORDER_BUDGET // N))
    else:
        chunk = epochs
    orders = np.empty((chunk, N), dtype=np.intp) if shuffled else None
    losses = np.empty(epochs, dtype=np.float64)
    nt = _v.n_threads(n_threads, B * n, _THREAD_THRESHOLD)
    kernel = _FIT[dtype]
    bar = _display.Progress(epochs, desc="fit", tqdm=tqdm) if tqdm is not None else None
    done = 0
    try:
        while done < epochs:
            count = min(chunk, epochs - done)
            if shuffled:
                for e in range(count):
                    orders[e] = rng.permutation(N)
            b, bad_epoch, bad_step = kernel(
                X, y, w, b, lr, count, B, orders[:count] if shuffled else None,
                losses[done:done + count], nt,
            )
            if bad_epoch >= 0:
                _diverged(done + bad_epoch, bad_step, lr, losses)
            stop = False
            for e in range(done, done + count):
                if bar is not None:
                    bar.update(float(losses[e]))
                if callback is not None and callback(e, float(losses[e]),
                                                     w.astype(dtype), float(b)):
                    stop = True
            done += count
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    w_out = _weights_in(w, dtype, "w", done, lr, losses)
    return FitResult(w_out, float(b), losses[:done].copy())


def _weights_in(w, dtype, name, done, lr, losses):
    """The trained weights (kept in double) cast to the result ``dtype``; finite in double
    (the kernel's check) but beyond float32 is still a divergence, raised as fit does."""
    with np.errstate(over="ignore"):
        w_out = w.astype(dtype)
    if not np.isfinite(w_out).all():
        err = FloatingPointError(
            f"fit diverged: after {done} epochs the weights (largest |{name}| = "
            f"{np.abs(w).max():.3g}) overflow {dtype}; the learning rate lr={lr:g} is too "
            "large for this data (lower it, or scale X)"
        )
        err.epoch = done
        err.losses = losses[:done].copy()
        raise err
    return w_out


def _diverged(epoch, step, lr, losses):
    if epoch == 0 and step == 0:
        raise ValueError(
            "the loss is not finite at the initial parameters: X, y, w0 or b0 holds NaN "
            "or inf, or the squared residuals overflow"
        )
    where = f"epoch {epoch}" + (f", step {step}" if step >= 0 else "")
    err = FloatingPointError(
        f"fit diverged at {where}: the loss or the parameters became NaN/inf; the "
        f"learning rate lr={lr:g} is too large for this data (lower it, or scale X)"
    )
    err.epoch = epoch
    err.losses = losses[:epoch].copy()
    raise err
