"""Gradients and training on Dask arrays.

The compiled kernels run inside the Dask workers, one call per chunk; only small arrays of
partial sums travel back, and they are combined in a fixed order.

* :func:`loss_grad` — the ReLU neuron's MSE loss and its gradient (paper §6) for a data set
  held as a ``dask.array`` chunked by rows. Each row chunk gives the unscaled sums
  ``(Σ r_i², Σ e_i, Σ e_i x_i)`` from :func:`fastjac.neuron.loss_grad_sums`; the sums are
  added in a fixed tree in block order and scaled by ``1/N`` once, at the end.
* :func:`fit` — gradient descent where each step is one distributed :func:`loss_grad`:
  full batch, or mini-batches made of whole chunks drawn in a seeded order.
* :func:`apply`, :func:`jvp`, :func:`vjp` — the element-wise operations of
  :mod:`fastjac.ops` on Dask arrays through ``map_blocks``, with the same op objects.

Scheduling: everything works with the default threaded scheduler (the kernels release the
GIL, so chunks run in parallel on every core) and with a ``distributed.Client`` (whatever
``dask.compute`` would use). Each chunk's kernel runs with ``n_threads=1`` by default: the
parallelism comes from Dask.

Reproducibility: for a fixed chunking the results are bitwise identical from run to run
and for every scheduler and number of workers or threads: each chunk's sums are computed
by the same kernel (bitwise independent of ``n_threads``), and the partial sums are added
in a tree whose shape depends only on the number of chunks. A different chunking adds in
a different order, so results then agree to rounding only.

This module needs ``dask[array]`` (``pip install "fastjac[dask]"``); ``distributed`` only if
you use a ``Client``.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import fastjac as fj
>>> import fastjac.dask as fjd
>>> rng = np.random.default_rng(0)
>>> X_np = rng.standard_normal((10_000, 4))
>>> y_np = np.maximum(X_np @ np.array([1.0, -1.0, 0.5, 0.0]) + 0.2, 0)
>>> X = da.from_array(X_np, chunks=(2_500, 4))    # four row chunks
>>> y = da.from_array(y_np, chunks=2_500)
>>> C, gw, gb = fjd.loss_grad(X, y, np.full(4, 0.1), 0.0)     # chunk by chunk
>>> round(C, 4), gw.round(4), round(gb, 4)
(1.2901, array([-0.8113,  0.4397, -0.4839, -0.1995]), -0.6727)
>>> result = fjd.fit(X, y, lr=0.1, epochs=200)                 # a FitResult
>>> result.w.round(2), round(result.b, 2)
(array([ 1. , -1. ,  0.5,  0. ]), 0.2)
>>> gz, gx = fjd.vjp(fj.mul, 2.0, X, X)      # gz: 0-d Dask array, gx: like X, lazy
>>> gx.shape, round(float(gz.compute()), 4)
((10000, 4), 40149.1851)
"""

import math
import numbers

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "fastjac.dask needs dask: pip install 'fastjac[dask]' (or 'dask[array]')"
    ) from exc

from . import _validate as V
from .neuron import FitResult
from . import _display
from .neuron import _diverged  # the same errors and messages as neuron.fit
from .neuron import loss_grad_sums as _in_memory_sums
from .ops import BinaryOp, UnaryOp

__all__ = ["loss_grad", "loss_grad_sums", "fit", "apply", "jvp", "vjp"]


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------

def _dtype_probe(a):
    """A 0-d stand-in with ``a``'s dtype, so dtype checks never compute a Dask array."""
    if isinstance(a, da.Array):
        return np.empty((), dtype=a.dtype)
    return a


def _data(X, y):
    """``X`` as a Dask array (N, n) with one column chunk, ``y`` (N,) chunked like its rows.

    NumPy inputs are wrapped with ``da.asarray`` (automatic chunks). A column-chunked ``X``
    is rechunked to a single column chunk: the kernel needs whole rows.
    """
    if not isinstance(X, da.Array):
        X = da.asarray(V._asarray(X, "X"))
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, n), got shape {X.shape}")
    if any(math.isnan(s) for s in X.shape):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
    if not isinstance(y, da.Array):
        y = V._asarray(y, "y")
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"y must have shape (N,) = ({X.shape[0]},) to match X.shape={X.shape}; "
            f"got y.shape={y.shape}"
        )
    for name, a in (("X", X), ("y", y)):
        V.result_dtype((name, _dtype_probe(a)))  # TypeError for complex/object/text
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if isinstance(y, da.Array):
        if y.chunks[0] != X.chunks[0]:
            y = y.rechunk((X.chunks[0],))
    else:
        y = da.from_array(y, chunks=(X.chunks[0],))
    return X, y


def _params(w, b, n, dt):
    wf, sw = V.operand(w, "w", dt)
    if sw != (n,):
        raise ValueError(f"w must have shape (n,) = ({n},) to match X's columns; got {sw}")
    return wf, V.real_scalar(b, "b")


# ---------------------------------------------------------------------------------------
# The ReLU neuron: loss and gradient sums per chunk, a fixed tree
# ---------------------------------------------------------------------------------------

def _chunk_sums(X, y, w, b, n_threads):
    """Task body: ``[Σ r², Σ e, Σ e x...]`` of one row chunk, as a float64 vector."""
    sse, gw_sum, gb_sum = _in_memory_sums(X, y, w, b, n_threads=n_threads)
    out = np.empty(2 + w.shape[0], dtype=np.float64)
    out[0] = sse
    out[1] = gb_sum
    out[2:] = gw_sum
    return out


# Partial-sum vectors added by one task of the reduction tree.
FAN_IN = 8


def _add_in_order(*parts):
    """Task body: ``parts[0] + parts[1] + ...``, left to right."""
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


class _Problem:
    """A validated data set: ``X`` (N, n) in row chunks and ``y`` chunked like its rows.

    :meth:`sums` builds the graph of one reduction directly (one task per chunk, then a
    tree of ``_add_in_order`` tasks); its keys come from one token of all the inputs, so
    a training loop pays microseconds, not milliseconds, per chunk and step to build it.
    """

    def __init__(self, X, y, w):
        X, y = _data(X, y)
        self.X, self.y = X, y
        self.N, self.n = X.shape
        self.dtype = V.result_dtype(("X", _dtype_probe(X)), ("y", _dtype_probe(y)), ("w", w))
        self.rows = X.chunks[0]
        self.x_keys = [row[0] for row in X.__dask_keys__()]
        self.y_keys = y.__dask_keys__()

    def need_rows(self):
        if self.N == 0:
            raise ValueError("X has no rows; the loss is a mean over rows")

    def sums(self, blocks, w, b, n_threads, finish=None, *finish_args):
        """Delayed ``[Σ r², Σ e, Σ e x...]`` over the given row blocks, or
        ``finish(sums, *finish_args)``.

        Blocks without rows are left out. The partial sums are added in the order of
        ``blocks``, ``FAN_IN`` at a time, level by level: the tree's shape depends only on
        the number of blocks, so the rounding is the same on every run and scheduler.
        """
        blocks = [int(i) for i in blocks if self.rows[i]]
        name = "fastjac-neuron-sums-" + dask.base.tokenize(
            self.X.name, self.y.name, blocks, w, b, n_threads, finish, finish_args)
        layer, level = {}, []
        for j, i in enumerate(blocks):
            level.append((name, 0, j))
            layer[level[-1]] = (_chunk_sums, self.x_keys[i], self.y_keys[i], w, b, n_threads)
        if not level:
            level.append((name, 0, 0))
            layer[level[0]] = (np.zeros, 2 + self.n)
        depth = 0
        while len(level) > 1:
            depth += 1
            groups = [level[k:k + FAN_IN] for k in range(0, len(level), FAN_IN)]
            level = []
            for j, group in enumerate(groups):
                if len(group) == 1:
                    level.append(group[0])
                else:
                    level.append((name, depth, j))
                    layer[level[-1]] = (_add_in_order, *group)
        key = level[0]
        if finish is not None:
            key = (name, "result")
            layer[key] = (finish, level[0], *finish_args)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=[self.X, self.y])
        return Delayed(key, graph, layer=name)


def _split(total, dtype):
    return float(total[0]), total[2:].astype(dtype), float(total[1])


def _scale(total, N, dtype):
    sse, gw_sum, gb_sum = _split(total, np.float64)
    s = 2.0 / N
    return sse / N, (s * gw_sum).astype(dtype), s * gb_sum


def _n_threads(n_threads):
    return V.positive_int(n_threads, "n_threads")


def loss_grad_sums(X, y, w, b, n_threads=1, compute=True):
    """Unscaled sums of the ReLU neuron's loss and gradient over a Dask data set.

    The distributed twin of :func:`fastjac.neuron.loss_grad_sums` (N == 0 gives zeros).

    Parameters
    ----------
    X : dask.array.Array or array_like, shape (N, n)
        Inputs, one per row, chunked by rows (columns are rechunked to one chunk).
    y : dask.array.Array or array_like, shape (N,)
        Targets; rechunked to ``X``'s row chunks when they differ.
    w : array_like, shape (n,)
        Weights (a NumPy array; sent to every chunk).
    b : float
        Bias.
    n_threads : int, default 1
        Threads of each chunk's kernel (Dask provides the parallelism across
        chunks).
    compute : bool, default True
        With False, return a ``dask.delayed`` object that computes to the same tuple.

    Returns
    -------
    sse : float
        ``Σ_i r_i²`` with ``r_i = y_i − max(0, w·x_i + b)``.
    gw_sum : ndarray, shape (n,)
        ``Σ_active e_i x_i`` with ``e_i = w·x_i + b − y_i`` (active: ``w·x_i + b > 0``).
    gb_sum : float
        ``Σ_active e_i``.
    """
    nt = _n_threads(n_threads)
    prob = _Problem(X, y, w)
    wf, bf = _params(w, b, prob.n, prob.dtype)
    result = prob.sums(range(len(prob.rows)), wf, bf, nt, _split, prob.dtype)
    return dask.compute(result)[0] if compute else result


def loss_grad(X, y, w, b, n_threads=1, compute=True):
    """The ReLU neuron's loss and gradient (paper §6) over a Dask data set.

    The distributed twin of :func:`fastjac.neuron.loss_grad`: every row chunk's sums come
    from the compiled kernel inside a worker, the sums are added in a fixed tree (block
    order, ``FAN_IN`` vectors per task), and the totals are scaled once at the end::

        C = Σ r_i² / N,  ∂C/∂w = (2/N) Σ_active e_i x_i,  ∂C/∂b = (2/N) Σ_active e_i

    The result equals the in-memory one to rounding, and is bitwise the same on every run
    for a fixed chunking. ``X`` is never collected: workers hold the few chunks they are
    working on (and whatever was persisted), and only vectors of ``n + 2`` sums travel.

    Parameters
    ----------
    X, y, w, b, n_threads, compute
        As for :func:`loss_grad_sums`.

    Returns
    -------
    C : float
        The mean squared error.
    gw : ndarray, shape (n,)
        ∂C/∂w, with the result dtype of ``X``, ``y`` and ``w``.
    gb : float
        ∂C/∂b.
    """
    nt = _n_threads(n_threads)
    prob = _Problem(X, y, w)
    prob.need_rows()
    wf, bf = _params(w, b, prob.n, prob.dtype)
    result = prob.sums(range(len(prob.rows)), wf, bf, nt, _scale, prob.N, prob.dtype)
    return dask.compute(result)[0] if compute else result


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------

def _batches(rows, batch_size, order):
    """Row blocks of one epoch, in batches of whole chunks.

    ``order`` is the sequence of chunk indices to visit; a batch closes as soon as it
    holds at least ``batch_size`` rows (a batch is never split inside a chunk, and a chunk
    larger than ``batch_size`` is a batch on its own). ``batch_size=None``: one batch of
    every chunk. Chunks without rows are left out.
    """
    if batch_size is None:
        return [[int(i) for i in order if rows[i]]]
    batches, current, count = [], [], 0
    for i in order:
        if not rows[i]:
            continue
        current.append(int(i))
        count += rows[i]
        if count >= batch_size:
            batches.append(current)
            current, count = [], 0
    if current:
        batches.append(current)
    return batches


def fit(X, y, lr, epochs, batch_size=None, w0=None, b0=0.0, seed=0, shuffle=True,
        callback=None, progress=False, n_threads=1):
    """Train the ReLU neuron by gradient descent on a Dask data set (paper §6).

    The distributed twin of :func:`fastjac.neuron.fit`, with the same arguments, defaults,
    result and errors. Each step is one distributed :func:`loss_grad` over its rows
    (scaled by 2/B for a batch of B rows) and updates::

        w <- w - lr ∂C/∂w,      b <- b - lr ∂C/∂b        (paper §6.1, §6.2)

    With ``batch_size=None`` (or >= N) a step is the whole data set, one step per epoch:
    the same iterates as :func:`fastjac.neuron.fit` to rounding. Otherwise mini-batches
    are made of whole row chunks: each epoch visits the chunks in the order
    ``rng.permutation(number of chunks)`` (in order with ``shuffle=False``) and closes a
    batch as soon as it holds at least ``batch_size`` rows. Sampling chunks, not rows,
    keeps every step a set of independent chunk tasks; rows inside a chunk are never
    shuffled, so choose chunks of about ``batch_size`` rows or fewer.

    Each epoch reads ``X`` once; when ``X`` is computed (loaded or generated) and fits in
    the cluster's memory, ``X = X.persist()`` first saves recomputing it every epoch.
    NumPy inputs are wrapped (automatic chunks) and persisted once.
    Parameters are kept in float64 on the client; for a fixed chunking the result is
    bitwise the same on every run, scheduler and worker count.

    Parameters
    ----------
    X : dask.array.Array or array_like, shape (N, n)
        Chunked by rows (columns are rechunked to one chunk).
    y : dask.array.Array or array_like, shape (N,)
    lr : float
        Learning rate, finite and > 0.
    epochs : int
        Number of epochs, >= 1.
    batch_size : int, optional
        Minimum rows per step (whole chunks); ``None`` for full batch.
    w0 : array_like, shape (n,), optional
        Initial weights; ``None`` draws them from N(0, 1/n) with
        ``rng = np.random.default_rng(seed)`` (before any permutation), as
        :func:`fastjac.neuron.fit` does.
    b0 : float, default 0.0
        Initial bias.
    seed : int or None, default 0
        Seed of the initial weights and of the chunk order.
    shuffle : bool, default True
        Shuffle the chunk order every epoch (mini-batches only).
    callback : callable, optional
        ``callback(epoch, loss, w, b)`` after every epoch (``w`` a copy); returning
        ``True`` stops training after that epoch.
    progress : bool, default False
        Show a tqdm progress bar (needs the optional ``tqdm``).
    n_threads : int, default 1
        Threads of each chunk's kernel (Dask runs the chunks in parallel).

    Returns
    -------
    FitResult
        :class:`fastjac.neuron.FitResult` ``(w, b, losses)``: ``w`` in the computation
        dtype, ``losses[e]`` the mean over the N rows of the squared residual, each row
        evaluated with the parameters of its batch's step (for full batches: the loss
        before the epoch's update).

    Raises
    ------
    FloatingPointError
        When the loss or the parameters stop being finite (the learning rate diverged);
        it has ``epoch`` and ``losses`` attributes, as in :func:`fastjac.neuron.fit`.
    ValueError
        Non-finite loss at the initial parameters, no rows, bad shapes, ``lr <= 0``,
        ``epochs < 1``.
    """
    lr = V.real_scalar(lr, "lr")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    epochs = V.positive_int(epochs, "epochs")
    batch_size = V.positive_int(batch_size, "batch_size", allow_none=True)
    b = V.real_scalar(b0, "b0")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    nt = _n_threads(n_threads)
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"seed cannot seed numpy.random.default_rng: {exc}") from None
    if w0 is not None:
        w0 = V._asarray(w0, "w0")
    wrap_X, wrap_y = not isinstance(X, da.Array), not isinstance(y, da.Array)
    if wrap_X or wrap_y:
        # NumPy data is wrapped and persisted once, so that a distributed Client receives
        # it once rather than inside every step's graph. A Dask X stays as it is (it may
        # be larger than memory).
        X, y = _data(X, y)
        X = X.persist() if wrap_X else X
        y = y.persist() if wrap_y else y
    prob = _Problem(X, y, w0)
    prob.need_rows()
    if w0 is None:
        w = rng.normal(0.0, 1.0 / math.sqrt(max(prob.n, 1)), size=prob.n)
    else:
        w = _params(w0, 0.0, prob.n, V.F64)[0].copy()
        if not np.isfinite(w).all():
            raise ValueError("w0 must be finite")
    if batch_size is not None and batch_size >= prob.N:
        batch_size = None
    shuffled = bool(shuffle) and batch_size is not None
    blocks = np.arange(len(prob.rows))
    losses = np.empty(epochs, dtype=np.float64)
    bar = None
    if progress:
        tqdm = _display.load_tqdm(required_by="fit(progress=True)")
        bar = _display.Progress(epochs, desc="fit", tqdm=tqdm)
    done = 0
    try:
        for epoch in range(epochs):
            order = rng.permutation(blocks) if shuffled else blocks
            sse = 0.0
            for step, batch in enumerate(_batches(prob.rows, batch_size, order)):
                # The kernel runs in the data's dtype; the parameters stay in float64.
                total = dask.compute(prob.sums(batch, w.astype(prob.dtype), b, nt))[0]
                if not math.isfinite(total[0]):
                    _diverged(epoch, step, lr, losses)
                sse += total[0]
                step_lr = lr * (2.0 / sum(prob.rows[i] for i in batch))
                w -= step_lr * total[2:]
                b -= step_lr * total[1]
            losses[epoch] = sse / prob.N
            done = epoch + 1
            if not (math.isfinite(losses[epoch]) and math.isfinite(b) and np.isfinite(w).all()):
                _diverged(epoch, -1, lr, losses)
            if bar is not None:
                bar.update(float(losses[epoch]))
            if callback is not None and callback(epoch, float(losses[epoch]),
                                                 w.astype(prob.dtype), float(b)):
                break
    finally:
        if bar is not None:
            bar.close()
    return FitResult(w.astype(prob.dtype), float(b), losses[:done].copy())


# ---------------------------------------------------------------------------------------
# Element-wise operations through map_blocks
# ---------------------------------------------------------------------------------------

def _is_scalar(value):
    return isinstance(value, (numbers.Number, np.generic)) or np.ndim(value) == 0


def _aligned(block):
    # Blocks unpickled from out-of-band buffers (distributed) can be misaligned, and the
    # element-wise kernels refuse misaligned buffers (ValueError "x is not aligned");
    # a copy is aligned.
    if isinstance(block, np.ndarray) and not block.flags.aligned:
        return block.copy()
    return block


def _blocks_call(method, op, *blocks, n_threads):
    """Task body: one op method on one block (scalars arrive unchanged)."""
    return getattr(op, method)(*map(_aligned, blocks), n_threads=n_threads)


def _pick(pair, k):
    return pair[k]


def _pick_partial(pair, k, ndim):
    """A scalar operand's per-block gradient, as a (1, ..., 1) float64 block."""
    return np.full((1,) * ndim, pair[k], dtype=np.float64)


class _Operands:
    """Checked operands of one element-wise call: shapes, dtype, common chunks.

    Array operands (Dask arrays, or array_likes with ``ndim > 0``) must all have one
    shape; they are given the chunks of the first Dask array (NumPy operands wrapped,
    other Dask arrays rechunked). Scalars (Python or NumPy numbers, 0-d arrays, 0-d Dask
    arrays) are expanded (paper §4.3). ``None`` is a zero tangent and is passed on as is.
    """

    def __init__(self, named, tangent_of=None):
        probes = [(k, _dtype_probe(v)) for k, v in named if v is not None]
        self.dtype = V.result_dtype(*probes)
        shapes = {}
        for name, value in named:
            if value is not None and not _is_scalar(value):
                shapes[name] = tuple(np.shape(value)) if not isinstance(value, da.Array) \
                    else value.shape
        self.shape = ()
        if shapes:
            first = next(iter(shapes))
            self.shape = shapes[first]
            for name, s in shapes.items():
                V.same_shape(self.shape, first, s, name)
        # A tangent has the shape of its primal: a scalar tangent for a scalar operand.
        values = dict(named)
        for tangent, primal in (tangent_of or {}).items():
            t = values.get(tangent)
            if t is not None and _is_scalar(t) != _is_scalar(values[primal]):
                V.same_shape(np.shape(values[primal]), primal, np.shape(t), tangent)
        chunks = next((v.chunks for _, v in named if isinstance(v, da.Array) and v.ndim),
                      "auto")
        self.values = []
        for name, value in named:
            if value is not None and not _is_scalar(value):
                if not isinstance(value, da.Array):
                    value = da.from_array(V._asarray(value, name), chunks=chunks)
                elif value.chunks != chunks:
                    value = value.rechunk(chunks)
            self.values.append(value)
        self.is_scalar = [v is None or _is_scalar(v) for v in self.values]
        self.lazy = any(isinstance(v, da.Array) and v.ndim for v in self.values)

    def map(self, method, op, n_threads, dtype=None):
        """``map_blocks`` of ``op.method`` over the operands; one task per block."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        return da.map_blocks(
            _blocks_call, method, op, *self.values, n_threads=n_threads, dtype=dtype,
            meta=np.empty((0,) * len(self.shape), dtype=dtype),
        )


def _check_op(op, kinds):
    if not isinstance(op, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"op must be a fastjac {names} (e.g. fastjac.exp, fastjac.mul), "
                        f"got {type(op).__name__}")


def _arity(op, args, unary, binary, what):
    n = unary if isinstance(op, UnaryOp) else binary
    if len(args) != len(n):
        raise TypeError(f"{what}({op.name}, ...) takes {len(n)} arrays ({', '.join(n)}), "
                        f"got {len(args)}")
    return list(zip(n, args))


def apply(op, *args, n_threads=1):
    """The value of an element-wise op on Dask arrays: ``op(x)`` or ``op(w, x)``.

    ``op`` is a :class:`~fastjac.ops.UnaryOp` or :class:`~fastjac.ops.BinaryOp` (e.g.
    ``fastjac.exp``, ``fastjac.mul``, a :func:`~fastjac.chain` or
    :func:`~fastjac.elementwise`); each block runs the compiled kernel. Returns a lazy
    ``dask.array.Array`` (or the in-memory result when no operand is a Dask array or an
    array).
    """
    _check_op(op, (UnaryOp, BinaryOp))
    ops = _Operands(_arity(op, args, ("x",), ("w", "x"), "apply"))
    if not ops.lazy:
        return op(*ops.values, n_threads=n_threads)
    return ops.map("__call__", op, _n_threads(n_threads))


def jvp(op, *args, n_threads=1):
    """Forward mode on Dask arrays: ``jvp(op, x, dx)`` or ``jvp(op, w, x, dw, dx)``.

    ``h'(x) ⊗ dx`` for a unary op and ``J_w dw + J_x dx`` for a binary one (paper §4.2), one
    fused kernel call per block. Tangents have their primal's shape (a scalar tangent for a
    scalar operand, §4.3); ``None`` is a zero tangent. Returns a lazy ``dask.array.Array``.
    """
    _check_op(op, (UnaryOp, BinaryOp))
    named = _arity(op, args, ("x", "dx"), ("w", "x", "dw", "dx"), "jvp")
    if isinstance(op, UnaryOp) and args[1] is None:
        raise TypeError("dx must be an array or a number, not None")
    ops = _Operands(named, tangent_of={"dw": "w", "dx": "x"})
    if not ops.lazy:
        return op.jvp(*ops.values, n_threads=n_threads)
    return ops.map("jvp", op, _n_threads(n_threads))


def vjp(op, *args, n_threads=1):
    """Reverse mode on Dask arrays: ``vjp(op, x, gy)`` or ``vjp(op, w, x, gy)``.

    A unary op gives ``gy ⊗ h'(x)`` as a lazy ``dask.array.Array``. A binary op gives the
    pair ``(gw, gx)`` from one fused kernel call per block: an array operand's gradient is
    a Dask array of its shape; a scalar operand's gradient (paper §4.3,
    ``Σ_i gy_i ∂y_i/∂z``) is a 0-d Dask array, the per-block sums added in a fixed tree
    (bitwise reproducible for a fixed chunking; each block's sum is rounded to the result
    dtype before the tree adds it in double).
    """
    _check_op(op, (UnaryOp, BinaryOp))
    named = _arity(op, args, ("x", "gy"), ("w", "x", "gy"), "vjp")
    if args[-1] is None:
        raise TypeError("gy must be an array or a number, not None")
    ops = _Operands(named)
    if all(ops.is_scalar[:-1]) and not ops.is_scalar[-1]:
        raise ValueError(f"gy must have the shape of y, which is () for scalar operands; "
                         f"got gy.shape={ops.shape}")
    if not ops.lazy:
        return op.vjp(*ops.values, n_threads=n_threads)
    nt = _n_threads(n_threads)
    if isinstance(op, UnaryOp):
        return ops.map("vjp", op, nt)
    # One kernel call per block gives both gradients: blocks of (gw, gx) tuples, then one
    # cheap task per output block picks its half.
    pairs = ops.map("vjp", op, nt, dtype=object)
    ndim = len(ops.shape)
    dt = ops.dtype
    grads = []
    for k in range(2):
        if ops.is_scalar[k]:
            partial = pairs.map_blocks(
                _pick_partial, k, ndim, chunks=tuple((1,) * len(c) for c in pairs.chunks),
                dtype=np.float64, meta=np.empty((0,) * ndim, dtype=np.float64),
            )
            grads.append(partial.sum(split_every=2).astype(dt))
        else:
            grads.append(pairs.map_blocks(_pick, k, dtype=dt,
                                          meta=np.empty((0,) * ndim, dtype=dt)))
    return tuple(grads)
