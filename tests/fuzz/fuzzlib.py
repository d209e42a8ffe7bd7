"""Shared machinery of the fuzz suite: argument strategies, NumPy references, the oracle.

A hypothesis example draws a *description* of each argument (kind, dtype, layout, value
regime, read-only flag, a seed for the values) and the arrays are then built from that
description with a NumPy generator. Hypothesis shrinks the description (smaller lengths,
plainer dtypes and layouts), and building a 10 000-element array costs one NumPy call
instead of 10 000 draws.

Each call is judged by an oracle written here, independently of ``fastjac/_validate.py``:
either it must succeed and match the reference (NaN where the reference is NaN, the same
infinities, finite values within a few ulps of the dtype, plus a summation allowance for
reductions and cancellation), or it must raise ``TypeError``/``ValueError`` whose message
names one of the offending arguments.

References are the NumPy expressions of the paper's rules, evaluated in float64 on the
operands as the kernels see them (cast to the result dtype first). Transcendental stages
use Python's ``math`` (the C library the kernels call too) so a later stage of a chain is
not fed a one-ulp difference that it could amplify (``sin(exp(700))``).
"""

import math
import operator

import numpy as np
from hypothesis import strategies as st

import fastjac as fj

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
TILE = 256
BLOCK = 4096

# Lengths: the edges (0, 1), and both sides of the tile and block boundaries.
EDGE_LENGTHS = [0, 1, 2, 3, 4, 5, 7, 255, 256, 257, 511, 513, 4095, 4096, 4097,
                2 * BLOCK - 1, 2 * BLOCK + 1, 3 * BLOCK + TILE + 3]
REAL_DTYPES = ["f8", "f4", "f2", ">f8", ">f4", "i8", "i4", "i2", "u1", "u8", "?"]
BAD_DTYPES = ["c16", "c8", "O", "U3", "S2", "M8[s]", "m8[s]", "g"]
LAYOUTS = ["C", "C", "F", "strided", "negative", "unaligned"]
REGIMES = ["unit", "unit", "pos", "wide", "special", "int"]
KINDS = ["array", "array", "array", "array", "list", "pyscalar", "npscalar", "zerod"]

VALID_N_THREADS = [None, None, None, 1, 2, 3, 10**6]
BAD_N_THREADS = [0, -1, 1.5, True, "2", np.float64(2.0)]

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                     1.7976931348623157e308, -1.7976931348623157e308, 1.0, -1.0, 0.5, 700.0,
                     -745.0, 1e-8, 3.4028235e38, 1.2e-38, 1.4e-45, 88.7, 1e154, 3e-155])


# --------------------------------------------------------------------------- descriptions
@st.composite
def shapes(draw):
    """A shared element-wise shape: usually 1-D, sometimes 2-D/3-D, or () (a scalar)."""
    # One draw in three is an edge length (several thousand elements); the rest are short.
    n = draw(st.one_of(st.integers(0, 40), st.integers(0, 40), st.sampled_from(EDGE_LENGTHS)))
    form = draw(st.sampled_from(["1d"] * 6 + ["2d", "3d", "0d"]))
    if form == "1d":
        return (n,)
    if form == "0d":
        return ()
    b = draw(st.sampled_from([1, 2, 3, 7, 64]))
    if form == "2d":
        return (max(n // b, 0), b)
    return (max(n // (2 * b), 0), 2, b)


@st.composite
def operand_descriptions(draw, dtypes=REAL_DTYPES):
    return dict(
        kind=draw(st.sampled_from(KINDS)),
        dtype=draw(st.sampled_from(dtypes)),
        layout=draw(st.sampled_from(LAYOUTS)),
        regime=draw(st.sampled_from(REGIMES)),
        readonly=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# --------------------------------------------------------------------------- building
def _values(regime, size, dtype, rng):
    """float64 values of a regime; integer/bool dtypes get in-range integers."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(size) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if regime == "special":
            picks = np.array([info.min, info.max, 0, 1, info.max // 2], dtype=object)
            return picks[rng.integers(0, len(picks), size)].astype(dt)
        lo, hi = max(int(info.min), -50), min(int(info.max), 50)
        return rng.integers(lo, hi + 1, size).astype(dt)
    if regime == "unit":
        v = rng.uniform(-3, 3, size)
    elif regime == "pos":
        v = rng.uniform(0.1, 5, size)
    elif regime == "wide":
        v = rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(-330, 308.2, size)
    elif regime == "int":
        v = rng.integers(-4, 5, size).astype(np.float64)  # exact ties and zeros
    else:
        v = rng.uniform(-3, 3, size)
        mask = rng.random(size) < 0.5
        v[mask] = SPECIALS[rng.integers(0, len(SPECIALS), int(mask.sum()))]
    with np.errstate(all="ignore"):
        return v.astype(dt)


def build(desc, shape):
    """The Python object a caller would pass, from a description and a target shape."""
    rng = np.random.default_rng(desc["seed"])
    dt = np.dtype(desc["dtype"])
    kind = desc["kind"]
    if shape == () and kind in ("array", "list"):
        kind = "zerod"
    if kind == "list" and 0 in shape[:-1]:
        kind = "array"  # [] cannot say (0, 3)
    if kind in ("pyscalar", "npscalar", "zerod"):
        shape = ()
    size = math.prod(shape)
    if dt.kind in "OUSMmc" or dt.itemsize > 8:
        return _bad_dtype_object(dt, shape, rng)
    vals = _values(desc["regime"], size, dt, rng).reshape(shape)
    if kind == "pyscalar":
        return vals[()].item() if dt.kind != "f" else float(vals[()])
    if kind == "npscalar":
        return vals[()]
    if kind == "list":
        return vals.tolist()
    a = _layout(vals, desc["layout"]) if kind == "array" else np.array(vals)
    if desc["readonly"]:
        a.flags.writeable = False
    return a


def _bad_dtype_object(dt, shape, rng):
    size = math.prod(shape)
    if dt.kind == "O":
        a = np.empty(size, dtype=object)
        a[:] = list(rng.uniform(-1, 1, size))
    elif dt.kind in "US":
        a = np.array(["1.5"] * size, dtype=dt)
    elif dt.kind in "Mm":
        a = np.arange(size).astype(dt)
    elif dt.kind == "c":
        a = (rng.uniform(-1, 1, size) + 1j).astype(dt)
    else:
        a = rng.uniform(-1, 1, size).astype(dt)
    return a.reshape(shape)


def _layout(vals, layout):
    """Same values, stored with the given layout."""
    dt = vals.dtype
    if vals.ndim == 0:
        return np.array(vals)
    if layout == "F":
        return np.asfortranarray(vals)
    if layout == "strided":
        base = np.zeros(vals.shape[:-1] + (2 * vals.shape[-1] + 1,), dtype=dt)
        a = base[..., 1::2]
        a[...] = vals
        return a
    if layout == "negative":
        flip = (slice(None, None, -1),) * vals.ndim
        return np.ascontiguousarray(vals[flip])[flip]
    if layout == "unaligned" and dt.itemsize > 1:
        raw = np.zeros(vals.nbytes + 1, dtype=np.uint8)
        a = np.frombuffer(raw.data, dtype=dt, count=vals.size, offset=1).reshape(vals.shape)
        a[...] = vals
        return a
    return np.array(vals, order="C")


# --------------------------------------------------------------------------- oracle: types
def is_bad(value):
    """The reason a value is not a real-number operand (or None when it is)."""
    if isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, complex):
        return "complex"
    try:
        a = np.asarray(value)
    except (ValueError, TypeError):
        return "not an array"
    if a.dtype.kind not in "fiub" or a.dtype.itemsize > 8 and a.dtype.kind == "f":
        return str(a.dtype)
    return None


def result_dtype(*values):
    """The spec: NumPy's result_type with Python scalars weak; float32 for <= 32-bit
    floats, float64 for everything else (integers and bools included)."""
    parts = []
    for v in values:
        if v is None:
            continue
        parts.append(v if isinstance(v, (bool, int, float)) else np.asarray(v).dtype)
    if not parts:
        return F64
    r = np.result_type(*parts)
    return F32 if r.kind == "f" and r.itemsize <= 4 else F64


def shape_of(value):
    return np.shape(value)


def as_ref(value, dt):
    """float64 copy of an operand exactly as the kernel sees it (cast to dt first)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        value = float(value)
    with np.errstate(all="ignore"):
        return np.array(value, dtype=dt).astype(F64).reshape(-1)


def uncopied(value, dt):
    """True when the kernel reads ``value``'s own memory (so out= may alias it)."""
    return (type(value) is np.ndarray and value.dtype == dt and value.dtype.isnative
            and value.flags.c_contiguous and value.flags.aligned)


# --------------------------------------------------------------------------- references
def _pyfunc(f):
    return np.frompyfunc(f, 1, 1)


def _exp(v):
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _log(v):
    if v > 0 or v != v:
        return math.log(v)
    return -math.inf if v == 0 else math.nan


def _sin_or_cos(f):
    def g(v):
        return math.nan if math.isinf(v) else f(v)
    return g


_EXP, _LOG = _pyfunc(_exp), _pyfunc(_log)
_SIN, _COS = _pyfunc(_sin_or_cos(math.sin)), _pyfunc(_sin_or_cos(math.cos))
_TANH = _pyfunc(math.tanh)


def _f(ufunc, v):
    return ufunc(v).astype(F64) if v.size else v.copy()


def _sigmoid(v):
    e = _f(_EXP, -np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e)), e / (1 + e) ** 2


def _sech2(v):
    a = np.abs(v)
    small = 1 / np.cosh(np.minimum(a, 20.0)) ** 2
    q = _f(_EXP, -2 * a)
    return np.where(a < 20, small, 4 * q / ((1 + q) * (1 + q)))


def _relu_like(v, pos, nonpos):
    return np.where(v > 0, pos, np.where(v <= 0, nonpos, v))


# name -> (value, derivative) on float64 arrays
UNARY_REF = {
    "identity": (lambda v: v, lambda v: np.ones_like(v)),
    "neg": (lambda v: -v, lambda v: -np.ones_like(v)),
    "square": (lambda v: v * v, lambda v: 2 * v),
    "sqrt": (np.sqrt, lambda v: 0.5 / np.sqrt(v)),
    "exp": (lambda v: _f(_EXP, v), lambda v: _f(_EXP, v)),
    "log": (lambda v: _f(_LOG, v), lambda v: 1 / v),
    "sin": (lambda v: _f(_SIN, v), lambda v: _f(_COS, v)),
    "cos": (lambda v: _f(_COS, v), lambda v: -_f(_SIN, v)),
    "tanh": (lambda v: _f(_TANH, v), _sech2),
    "sigmoid": (lambda v: _sigmoid(v)[0], lambda v: _sigmoid(v)[1]),
    "relu": (lambda v: _relu_like(v, v, 0.0), lambda v: _relu_like(v, 1.0, 0.0)),
    "abs": (np.abs, np.sign),
    "reciprocal": (lambda v: 1 / v, lambda v: -((1 / v) ** 2)),
}


def chain_ref(names, v):
    """(h(v), h'(v)) for ``fj.chain(*names)``: the last name is applied first; the
    derivative is the product of the stage derivatives in application order (§4.5.3)."""
    d = np.ones_like(v)
    with np.errstate(all="ignore"):
        for name in reversed(names):
            val, der = UNARY_REF[name]
            d = d / v if name == "log" else d * der(v)  # (log u)' = u'/u, as written
            v = val(v)
    return v, d


def binary_ref(op, a, da, b, db):
    """(y, ∂y/∂w, ∂y/∂x) of y = a ○ b given a = f(w), da = f'(w), b = g(x), db = g'(x)."""
    with np.errstate(all="ignore"):
        if op == "add":
            return a + b, da, db
        if op == "sub":
            return a - b, da, -db
        if op == "mul":
            return a * b, da * b, db * a
        if op == "div":
            y = a / b
            return y, da / b, -(y / b) * db
        cmp_first = operator.ge if op == "maximum" else operator.le
        cmp_second = operator.lt if op == "maximum" else operator.gt
        first, second = cmp_first(a, b), cmp_second(a, b)
        nan = ~(first | second)
        y = np.where(first, a, np.where(second, b, np.nan))
        pa = np.where(first, da, np.where(second, 0.0, np.nan))
        pb = np.where(first, 0.0, np.where(second, db, np.nan))
        return y, np.where(nan, np.nan, pa), np.where(nan, np.nan, pb)


def exact_sum(terms):
    """(sum, tolerance) of float64 terms the way an exact sum would give them; tolerance is
    inf when the exact sum is not representable through double partial sums."""
    terms = np.asarray(terms, dtype=F64).reshape(-1)
    if terms.size == 0:
        return 0.0, 0.0
    if np.isnan(terms).any() or (np.isposinf(terms).any() and np.isneginf(terms).any()):
        return math.nan, 0.0
    if np.isinf(terms).any():
        return float(terms[np.isinf(terms)][0]), 0.0
    with np.errstate(all="ignore"):
        scale = float(np.sum(np.abs(terms)))
    try:
        total = math.fsum(terms)
    except OverflowError:
        return math.inf, math.inf
    return total, (terms.size + 4) * np.finfo(F64).eps * scale


# --------------------------------------------------------------------------- comparison
RTOL = {F64: 64 * np.finfo(F64).eps, F32: 2.5 * np.finfo(F32).eps}


def check_close(got, ref, dt, what, scale=None, extra_atol=0.0):
    """Assert ``got`` (of dtype dt) matches the float64 reference rounded to dt."""
    got = np.asarray(got)
    assert got.dtype == dt, f"{what}: dtype {got.dtype}, expected {dt}"
    g = got.astype(F64).reshape(-1)
    with np.errstate(all="ignore"):
        r = np.asarray(ref, dtype=F64).astype(dt).astype(F64).reshape(-1)
    assert g.shape == r.shape, f"{what}: {g.size} values, expected {r.size}"
    gn, rn = np.isnan(g), np.isnan(r)
    bad = gn != rn
    both = ~gn & ~rn
    rtol = RTOL[dt]
    tiny = np.finfo(dt).tiny
    with np.errstate(all="ignore"):
        tol = rtol * np.abs(r) + 4 * tiny + extra_atol
        if scale is not None:
            tol = tol + rtol * np.abs(np.asarray(scale, dtype=F64).reshape(-1))
        extra = np.broadcast_to(np.asarray(extra_atol, dtype=F64), r.shape)
        if scale is not None:
            extra = extra + np.abs(np.asarray(scale, dtype=F64).reshape(-1))
        inf = both & (np.isinf(g) | np.isinf(r))
        finite = both & ~inf
        # Infinities must match exactly (whatever the tolerance). For finite values a
        # tolerance that is NaN or infinite would accept anything: the reference cannot
        # judge the entry, and the oracle says so instead of passing it (issue 18).
        blind = finite & ~(np.isfinite(extra) & np.isfinite(tol))
        if blind.any():
            i = np.flatnonzero(blind)[:5]
            raise AssertionError(
                f"{what} ({dt}): the tolerance is not finite at {int(blind.sum())} entries, "
                f"first at {i.tolist()} (got {g[i].tolist()}, reference {r[i].tolist()}, "
                f"tolerance {tol[i].tolist()}): this reference cannot judge them"
            )
        bad |= inf & (g != r)
        bad |= finite & ~(np.abs(g - r) <= tol)
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(
            f"{what} ({dt}): {int(bad.sum())} mismatches, first at {i.tolist()}: "
            f"got {g[i].tolist()}, expected {r[i].tolist()}"
        )


def check_error(exc, names):
    """The exception is TypeError/ValueError and its message names an offending argument."""
    assert isinstance(exc, (TypeError, ValueError)), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert any(n in msg for n in names), f"message {msg!r} names none of {sorted(names)}"


# --------------------------------------------------------------------------- out= arguments
OUT_CHOICES = ["none", "none", "c", "strided", "alias", "wrong_shape", "wrong_dtype",
               "readonly", "list", "overlap"]
OUT_FAULTS = {"wrong_shape", "wrong_dtype", "readonly", "list", "overlap"}


def make_out(choice, shape, dt, inputs):
    """An out= array for ``choice`` (see OUT_CHOICES), or None.

    ``inputs`` maps names to the objects passed. Returns ``(out, fault, aliased_name)``;
    ``fault`` is False when a requested fault cannot be built here (the call is valid).
    For "overlap", an eligible input is replaced in ``inputs`` by a view of a buffer
    that the returned ``out`` overlaps by all but one element.
    """
    if choice == "none":
        return None, False, None
    if choice == "c":
        return np.full(shape, np.nan, dtype=dt), False, None
    if choice == "strided":
        if shape == ():
            return np.full(shape, np.nan, dtype=dt), False, None
        base = np.full(shape[:-1] + (2 * shape[-1],), np.nan, dtype=dt)
        return base[..., ::2], False, None
    if choice == "alias":
        for name, v in inputs.items():
            if uncopied(v, dt) and v.shape == shape and v.flags.writeable:
                return v, False, name
        return np.full(shape, np.nan, dtype=dt), False, None
    if choice == "wrong_shape":
        bad = shape + (1,) if shape else (2,)
        return np.empty(bad, dtype=dt), True, None
    if choice == "wrong_dtype":
        return np.empty(shape, dtype=F32 if dt == F64 else F64), True, None
    if choice == "readonly":
        o = np.empty(shape, dtype=dt)
        o.flags.writeable = False
        return o, True, None
    if choice == "list":
        return np.zeros(shape).tolist() if shape else [0.0], True, None
    if choice == "overlap":
        for name, v in inputs.items():
            if uncopied(v, dt) and v.ndim == 1 and v.shape == shape and v.size >= 2:
                base = np.empty(v.size + 1, dtype=dt)
                base[:-1] = v
                inputs[name] = base[:-1]
                return base[1:], True, None
        return None, False, None
    raise AssertionError(choice)


def snapshot(objs):
    """Copies of every array argument, to check later that none was written."""
    return {k: np.array(v, copy=True) for k, v in objs.items() if isinstance(v, np.ndarray)}


def assert_unwritten(objs, snap, skip=()):
    for k, before in snap.items():
        if k in skip:
            continue
        now = objs[k]
        assert now.shape == before.shape and now.tobytes() == before.tobytes(), (
            f"input {k} was written"
        )


UNARY_NAMES = sorted(UNARY_REF)
BINARY_NAMES = ["add", "sub", "mul", "div", "maximum", "minimum"]


def unary_object(names):
    return fj.chain(*(fj.UNARY[n] for n in names)) if len(names) != 1 else fj.UNARY[names[0]]
