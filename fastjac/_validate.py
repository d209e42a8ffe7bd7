"""Every input check of fastjac, and nothing else.

The compiled kernels run with bounds checks off, so nothing reaches them before this module
has checked its dtype, shape, layout and (for outputs) writeability and overlap. Each check
raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape or value)
with a message that names the offending argument.

Conventions:

* float32 and float64 compute in their own precision; integer and bool inputs compute in
  float64; float16 computes in float32; complex, object, string and extended-precision
  inputs are rejected.
* The result dtype is ``numpy.result_type`` of the inputs, with Python scalars "weak" as in
  NumPy 2 (``float32_array * 2.0`` stays float32).
* Kernels see flat C-contiguous buffers; any input layout is accepted (copied only when it
  must be), and inputs are never written.
"""

import numbers
import os

from fastjac._kernels import pool as _pool
# Every output array fastjac allocates comes from here (large ones reuse freed output
# memory: see fastjac/_kernels/outputs.pyx).
from fastjac._kernels.outputs import empty as new_output

import numpy as np

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
_PY_SCALARS = (bool, int, float)


# The CPUs this process may run on (its affinity mask), as fastjac's thread pool counts them.
CPU_COUNT = _pool.cpu_count()


def _bad_dtype(name, dtype):
    return TypeError(
        f"{name} has dtype {dtype}; fastjac computes on real numbers only "
        "(float32/float64, or integers/bools which compute in float64)"
    )


def _asarray(value, name):
    """``np.asarray`` that names the argument when NumPy cannot make an array of it.

    A masked array is refused (its mask would be silently dropped), and a Python ``int``
    too large for int64/uint64 becomes a float, as NumPy does for a weak scalar.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray; fastjac would ignore its mask: pass "
            f"{name}.filled(...) or {name}.compressed() instead"
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} cannot be converted to a numeric array: {exc}") from None
    if arr.dtype.kind == "O" and type(value) is int:
        try:
            arr = np.asarray(float(value))
        except OverflowError:
            raise ValueError(f"{name} is an integer too large for a float64") from None
    return arr


def _check_kind(dtype, name):
    kind = dtype.kind
    if kind not in "fiub" or (kind == "f" and dtype.itemsize > 8):
        raise _bad_dtype(name, dtype)


def result_dtype(*named):
    """Return the float dtype the kernels compute in, for ``(name, value)`` pairs.

    ``None`` values are skipped. Python ``bool``/``int``/``float`` take part as weak
    scalars (they do not widen an array's dtype); anything complex, object or text raises
    ``TypeError`` naming the argument.
    """
    parts = []
    common = None  # the one float32/float64 dtype of every array seen so far, if any
    mixed = False
    for name, value in named:
        if value is None:
            continue
        tv = type(value)
        if tv is float or tv is int or tv is bool:
            parts.append(value)
            continue
        if tv is np.ndarray or isinstance(value, np.generic):
            dtype = value.dtype
        elif isinstance(value, complex):
            raise _bad_dtype(name, np.dtype(complex))
        else:
            dtype = _asarray(value, name).dtype
        _check_kind(dtype, name)
        parts.append(dtype)
        if (dtype is F64 or dtype is F32) and not mixed and (common is None or dtype is common):
            common = dtype
        else:
            mixed = True
            common = None
    if common is not None:
        # Arrays of one float dtype, Python scalars weak: numpy.result_type would return
        # that dtype; skipping it saves most of a small call's overhead.
        return common
    if not parts:
        return F64
    try:
        dtype = np.result_type(*parts)
    except (OverflowError, TypeError) as exc:
        names = ", ".join(n for n, v in named if v is not None)
        raise TypeError(f"cannot find a common float dtype for {names}: {exc}") from None
    # Always a native-byte-order dtype: the kernels read raw memory, so a byte-swapped
    # dtype ('>f8' on a little-endian machine) must never reach them uncopied.
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return F32
    return F64


def operand(value, name, dtype):
    """Return ``(flat, shape)``: ``value`` as a 1-D C-contiguous array of ``dtype``.

    ``shape`` is the shape the caller gave (``()`` for a scalar). No copy is made when the
    input already is a contiguous array of the right dtype; a read-only input stays
    read-only (kernels take ``const`` buffers and never write inputs).
    """
    if type(value) is np.ndarray:
        arr = value
    else:
        arr = _asarray(value, name)
    if arr.dtype is not dtype:
        _check_kind(arr.dtype, name)
    if arr.dtype != dtype or not arr.flags.c_contiguous or not arr.flags.aligned:
        # np.array copies; np.ascontiguousarray would keep a misaligned buffer as it is.
        flat = np.array(arr, dtype=dtype, order="C").reshape(-1)
    elif arr.ndim == 1:
        flat = arr
    else:
        flat = arr.reshape(-1)
    return flat, arr.shape


def same_shape(shape_a, name_a, shape_b, name_b):
    """Raise ``ValueError`` unless two shapes are equal."""
    if shape_a != shape_b:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {name_a}.shape={shape_a} "
            f"and {name_b}.shape={shape_b}"
        )


def elementwise_shape(shape_w, name_w, shape_x, name_x):
    """Shape of ``w ○ x`` under scalar expansion (paper §4.3); no other broadcasting."""
    if shape_w == shape_x:
        return shape_w
    if shape_w == ():
        return shape_x
    if shape_x == ():
        return shape_w
    raise ValueError(
        f"{name_w} and {name_x} must have the same shape, or one of them must be a scalar "
        f"(scalar expansion, paper §4.3); got {name_w}.shape={shape_w} and "
        f"{name_x}.shape={shape_x}"
    )


def _start(a):
    return a.__array_interface__["data"][0]


def output(out, name, shape, dtype, inputs=(), others=()):
    """Check a user-supplied ``out=`` array and return ``(kernel_buffer, out)``.

    ``out`` must be a writeable ``numpy.ndarray`` of exactly ``shape`` and ``dtype``. The
    kernel buffer is a flat C-contiguous view of ``out`` when ``out`` is C-contiguous, or
    a fresh array to be copied into ``out`` afterwards (``finish``). ``inputs`` are the flat
    buffers the kernel reads: ``out`` may be one of them exactly (element-wise kernels
    load a tile of every input before they store it), but a partial overlap raises
    ``ValueError``. ``others`` are the other outputs of the same call, which ``out`` must
    not overlap at all. With ``out=None`` a fresh buffer is allocated.
    """
    if out is None:
        buf = new_output(shape, dtype)
        return buf.reshape(-1), buf
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {out.dtype}, expected {dtype} (the result dtype of the inputs)"
        )
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    for other_name, other in others:
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"{name} overlaps {other_name}; outputs must not share memory")
    if not out.flags.c_contiguous or not out.flags.aligned:
        return new_output(out.size, dtype), out
    buf = out.reshape(-1)
    for in_name, arr in inputs:
        if arr is None or arr.size == 0 or not np.may_share_memory(buf, arr):
            continue
        if not (arr.size == buf.size and arr.dtype == buf.dtype and _start(arr) == _start(buf)):
            raise ValueError(
                f"{name} partially overlaps the input {in_name}; the kernel can run in place "
                "only when out is exactly that input"
            )
    return buf, out


def finish(buf, out):
    """Copy a kernel buffer into ``out`` when ``output`` had to use a temporary.

    ``output`` returns a temporary exactly when ``out`` is not C-contiguous or not aligned
    (otherwise the buffer is a flat view of ``out``), so those flags decide without a
    memory-overlap test.
    """
    flags = out.flags
    if out.size and not (flags.c_contiguous and flags.aligned):
        out[...] = buf.reshape(out.shape)
    return out


def n_threads(value, work, threshold):
    """Check ``n_threads`` and resolve it with the thread pool's one rule
    (``fastjac._kernels.pool.resolve``, the same C function the kernels' fast paths use):
    ``work`` below the kernel family's ``threshold`` runs serially; otherwise None means
    every thread of the cap (``FASTJAC_NUM_THREADS``, else the CPU count) and an int is an
    upper bound, clamped to the cap."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"n_threads must be a positive integer or None, got {value!r}")
        if value < 1:
            raise ValueError(f"n_threads must be a positive integer or None, got {value}")
        value = int(value)
    return _pool.resolve(value, work, threshold)


def real_scalar(value, name, allow_inf=False):
    """A finite (or, with ``allow_inf``, any non-NaN) real Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return real_scalar(value[()], name, allow_inf)
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    f = float(value)
    if f != f or (not allow_inf and f in (float("inf"), float("-inf"))):
        raise ValueError(f"{name} must be finite, got {f}")
    return f


def positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


# -- batched linear models: X (N, n), y (N,), w (n,) -----------------------------------------


def fast_batch(X, y, w):
    """``(dtype, N, n)`` when a batch needs no conversion and no further check, else ``None``.

    That is: ``X`` (N, n), ``y`` (N,) (or ``None``) and ``w`` (n,) are C-contiguous
    ``numpy.ndarray`` objects of one dtype, float32 or float64. This is the fast path of
    the public functions (a training loop calls them with such arrays on every step), so
    it only reads attributes and creates nothing. ``None`` sends the caller through the
    full checks (``result_dtype``, ``matrix``, ``vector``, ``batch_shapes``), which also
    produce the error messages.
    """
    if type(X) is not np.ndarray or type(w) is not np.ndarray:
        return None
    dtype = X.dtype
    if (dtype is not F64 and dtype is not F32) or w.dtype is not dtype:
        return None
    if X.ndim != 2 or w.ndim != 1:
        return None
    N, n = X.shape
    if w.shape[0] != n or not (X.flags.c_contiguous and X.flags.aligned
                               and w.flags.c_contiguous and w.flags.aligned):
        return None
    if y is not None and (type(y) is not np.ndarray or y.dtype is not dtype or y.ndim != 1
                          or y.shape[0] != N or not y.flags.c_contiguous
                          or not y.flags.aligned):
        return None
    return dtype, N, n


def fast_output(out, shape, dtype):
    """True when ``out`` can be written by a kernel as it is: a writeable C-contiguous
    ``numpy.ndarray`` of exactly ``shape`` and ``dtype`` (the training-loop fast path; any
    other ``out`` goes through ``output``, which checks it and explains what is wrong)."""
    if type(out) is not np.ndarray or out.dtype is not dtype or out.shape != shape:
        return False
    flags = out.flags
    return flags.c_contiguous and flags.writeable and flags.aligned


def matrix(value, name, dtype):
    """``value`` as a 2-D C-contiguous array of ``dtype``, copied only when it must be.

    A Fortran-ordered or otherwise strided array, or one of another dtype, is copied once;
    a C-contiguous array of ``dtype`` (read-only or not) is returned as it is.
    """
    arr = value if type(value) is np.ndarray else _asarray(value, name)
    if arr.dtype != dtype:
        _check_kind(arr.dtype, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, n), got shape {arr.shape}")
    if arr.dtype != dtype or not arr.flags.c_contiguous or not arr.flags.aligned:
        arr = np.array(arr, dtype=dtype, order="C")  # a copy, aligned
    return arr


def vector(value, name, dtype):
    """``value`` as a 1-D C-contiguous array of ``dtype``, copied only when it must be."""
    arr = value if type(value) is np.ndarray else _asarray(value, name)
    if arr.dtype != dtype:
        _check_kind(arr.dtype, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype != dtype or not arr.flags.c_contiguous or not arr.flags.aligned:
        arr = np.array(arr, dtype=dtype, order="C")  # a copy, aligned
    return arr


def batch_shapes(X, y, w, names=("X", "y", "w")):
    """Check the shapes of a batch ``X`` (N, n), targets ``y`` (N,), weights ``w`` (n,).

    ``y`` may be ``None`` (no targets). Returns ``(N, n)``; raises ``ValueError`` naming
    the arguments and their shapes.
    """
    nx, ny, nw = names
    if X.ndim != 2:
        raise ValueError(f"{nx} must be a 2-D array (N, n), got shape {X.shape}")
    N, n = X.shape
    if w.shape != (n,):
        raise ValueError(
            f"{nw} must have shape (n,) = ({n},) to match {nx}.shape={X.shape}, "
            f"got {nw}.shape={w.shape}"
        )
    if y is not None and y.shape != (N,):
        raise ValueError(
            f"{ny} must have shape (N,) = ({N},) to match {nx}.shape={X.shape}, "
            f"got {ny}.shape={y.shape}"
        )
    return N, n


def real_number(value, name):
    """Any real number (NaN and inf included) as a Python float; bools, complex and
    non-numbers raise ``TypeError`` naming the argument."""
    if type(value) is float:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if (
        isinstance(value, (bool, np.bool_, complex, np.complexfloating))
        or not isinstance(value, (numbers.Real, np.number))
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def positive_number(value, name):
    """A finite real number > 0 as a Python float (a learning rate, a step)."""
    f = real_scalar(value, name)
    if not f > 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {f}")
    return f


def subset(value, name, allowed):
    """A selection of names from ``allowed``: one string or an iterable of strings.

    Returns a ``frozenset``; an unknown name raises ``ValueError`` listing the allowed ones,
    anything that is not strings raises ``TypeError``.
    """
    items = (value,) if isinstance(value, str) else value
    try:
        chosen = frozenset(items)
    except TypeError:
        raise TypeError(
            f"{name} must be a string or an iterable of strings from {sorted(allowed)}, "
            f"got {value!r}"
        ) from None
    for item in chosen:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, got {item!r}")
        if item not in allowed:
            raise ValueError(f"{name} may only contain {sorted(allowed)}, got {item!r}")
    return chosen


def callable_or_none(value, name):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    return value
