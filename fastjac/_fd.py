"""The finite-difference engine behind :mod:`fastjac.gradcheck`.

Arguments are kept flat (:class:`_Args`), the function is evaluated in the working
precision (:class:`_Evaluator`), steps are chosen per coordinate (:func:`_coord_steps`) or
along a direction (:func:`_direction`), and :func:`_line_stats` turns the evaluations on a
line into an estimate, an error bound and a kink test. The public checks are in
:mod:`fastjac.gradcheck`, their reports in :mod:`fastjac._report`.

The method (steps, the Richardson estimate, the error bound, the kink test) is described
in the docstring of :mod:`fastjac.gradcheck`.

Everything here is pure Python and NumPy; it never needs the compiled kernels.
"""

import dataclasses
import math

import numpy as np

_LEVELS = (1.0, 0.5, 0.25)
DEFAULT_ULPS = 8
F64 = np.dtype(np.float64)


def _eps(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float(np.finfo(dtype).eps)
    return float(np.finfo(np.float64).eps)


def _in_eps(dtype):
    """Rounding unit of a computation on inputs of ``dtype``: float16 inputs are computed
    in (at least) float32, by fastjac as by NumPy's float16 loops, so an analytic result is
    not allowed float16's error just because its input was float16."""
    return min(_eps(dtype), float(np.finfo(np.float32).eps))


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    if dtype.kind in "iub":
        return F64
    raise TypeError(f"finite differences need real inputs, got dtype {dtype}")


def _require_finite(flat, shape, name):
    """Refuse NaN and inf in an input of a check (a primal, tangent or cotangent).

    A step from an infinite coordinate is ``inf - inf``, and a difference quotient through
    one is NaN: there is nothing a finite difference could compare there. ``flat`` is the
    input flattened (any real dtype), ``shape`` its shape, for the index in the message.
    """
    bad = ~np.isfinite(flat)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        idx = tuple(int(i) for i in np.unravel_index(j, shape)) if shape else ()
        where = "" if not shape else f" at index {idx if len(idx) != 1 else idx[0]}"
        raise ValueError(
            f"{name} is not finite{where}: {flat[j]} ({int(bad.sum())} of {flat.size} "
            "entries are NaN or inf); finite differences need finite inputs"
        )


def _count(value, name):
    """A count argument (``n_probes``, an int ``coords``): an int >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value}")
    return int(value)


class _Args:
    """A tuple of primals (arrays or Python scalars), kept flat."""

    def __init__(self, primals):
        if len(primals) == 0:
            raise ValueError("primals is empty: give at least one array or scalar")
        self.scalar = []
        self.shapes = []
        self.flat = []
        for i, p in enumerate(primals):
            name = "x" if len(primals) == 1 else f"primals[{i}]"
            is_scalar = isinstance(p, (int, float)) and not isinstance(p, bool)
            try:
                a = np.asarray(p)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name} cannot be converted to a numeric array: {exc}") from None
            if a.dtype.kind not in "fiub":
                raise TypeError(
                    f"{name}: finite differences need real inputs, got dtype {a.dtype}"
                )
            self.scalar.append(is_scalar)
            self.shapes.append(a.shape)
            flat = a.astype(_float_dtype(a.dtype), copy=True).reshape(-1)
            _require_finite(flat, a.shape, name)
            self.flat.append(flat)
        self.sizes = [f.size for f in self.flat]
        self.dtypes = [f.dtype for f in self.flat]

    def __len__(self):
        return len(self.flat)

    def pack(self, flats):
        out = []
        for f, shape, is_scalar in zip(flats, self.shapes, self.scalar):
            out.append(float(f[0]) if is_scalar else f.reshape(shape))
        return tuple(out)

    def as_dtype(self, dtype):
        return [f.astype(dtype) for f in self.flat]

    def index(self, arg, j):
        """A readable index of flat entry ``j`` of argument ``arg``."""
        shape = self.shapes[arg]
        idx = tuple(int(i) for i in np.unravel_index(j, shape)) if shape else ()
        if len(self) == 1:
            return idx if len(idx) != 1 else idx[0]
        return (arg,) + idx


class _Evaluator:
    """Calls ``f`` on flat primals in the working precision and counts the calls."""

    def __init__(self, f, args, reference="auto", f_scale=None, ulps=DEFAULT_ULPS):
        self.ulps = ulps
        self.args = args
        self.n_evals = 0
        self.notes = []
        y_user = np.asarray(f(*args.pack(args.flat)))
        self.n_evals += 1
        if y_user.dtype.kind not in "fiub":
            raise TypeError(f"f must return real values, got dtype {y_user.dtype}")
        self.out_shape = y_user.shape
        self.out_dtype = y_user.dtype
        low = any(d.itemsize < 8 for d in args.dtypes) or (
            y_user.dtype.kind == "f" and y_user.dtype.itemsize < 8
        )
        self.fun = f
        self.work = list(args.flat)
        self.reference = "none"
        y0 = y_user
        if callable(reference):
            self.fun = reference
            self.work = args.as_dtype(F64)
            y0 = np.asarray(reference(*args.pack(self.work)))
            self.n_evals += 1
            if y0.shape != y_user.shape:
                raise ValueError(
                    f"reference returned shape {y0.shape}, f returned {y_user.shape}"
                )
            self.reference = "reference callable"
        elif reference not in (False, None, "none") and low:
            y64 = None
            try:
                y64 = np.asarray(f(*args.pack(args.as_dtype(F64))))
                self.n_evals += 1
            except Exception as exc:  # the function may insist on float32
                self.notes.append(f"float64 re-run of f not possible ({type(exc).__name__})")
            if y64 is not None:
                if y64.dtype != F64 or y64.shape != y_user.shape:
                    self.notes.append("f does not compute in float64; differences in float32")
                elif not _agree(y64, y_user, max([_eps(y_user.dtype)]
                                                   + [_eps(d) for d in args.dtypes])):
                    # the float32 run is as precise as its lowest-precision part: a
                    # float32 computation returned as float64 (a sum in float64, a
                    # Python float) agrees to float32's accuracy, not float64's
                    self.notes.append(
                        "float64 re-run of f disagrees with the float32 run; "
                        "differences in float32"
                    )
                else:
                    self.fun = f
                    self.work = args.as_dtype(F64)
                    self.reference = "float64 re-run"
                    y0 = y64
        self.y_user = np.asarray(y_user, dtype=F64).reshape(-1)
        self.y0 = np.asarray(y0, dtype=F64).reshape(-1)
        in_eps = max((_eps(w.dtype) for w in self.work), default=_eps(F64))
        self.eps = max(in_eps, _eps(np.asarray(y0).dtype))
        if f_scale is None:
            fin = self.y0[np.isfinite(self.y0)]
            f_scale = float(np.max(np.abs(fin))) if fin.size else 0.0
        self.f_scale = float(f_scale)

    def __call__(self, flats):
        self.n_evals += 1
        with np.errstate(all="ignore"):  # perturbed points may leave f's domain: reported
            y = np.asarray(self.fun(*self.args.pack(flats)))
        if y.shape != self.out_shape:
            raise ValueError(
                f"f returned shape {y.shape} at a perturbed point, {self.out_shape} at x"
            )
        return np.asarray(y, dtype=F64).reshape(-1)


def _agree(y64, y32, eps32):
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.asarray(y64, dtype=F64)
        b = np.asarray(y32, dtype=F64)
        both = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            return False
        if not both.any():
            return True
        scale = np.max(np.abs(a[both]))
        tol = math.sqrt(eps32) * (np.abs(a[both]) + scale)
        return bool(np.all(np.abs(a[both] - b[both]) <= tol))


def _rel_step(eps, dtype_eps):
    return dtype_eps ** (1.0 / 3.0) if eps is None else float(eps)


def _coord_steps(x, rel):
    """Exact signed steps for each level, for every coordinate of the flat array ``x``.

    Returns a list over levels of ``(x_plus, x_minus, h)`` with ``h = x_plus - x``
    (exactly representable: the step divided by is the step taken).
    """
    x = np.asarray(x)
    with np.errstate(invalid="ignore", over="ignore"):
        base = rel * np.maximum(1.0, np.abs(x.astype(F64)))
        base = np.where(x < 0, -base, base)
        out = []
        for level in _LEVELS:
            xp = (x + (level * base).astype(x.dtype)).astype(x.dtype)
            h = (xp - x).astype(x.dtype)
            xm = (x - h).astype(x.dtype)
            out.append((xp, xm, h.astype(F64)))
    return out


@dataclasses.dataclass
class _Line:
    numeric: np.ndarray
    fd_bound: np.ndarray
    f2: np.ndarray
    F: np.ndarray
    kink: np.ndarray
    finite: np.ndarray
    D: np.ndarray


def _line_stats(fp, fm, f0, h, rho, extra_F=None, F_floor=0.0):
    """Richardson estimate, error bound and kink test from evaluations on a line.

    ``fp``/``fm`` have shape ``(3, ...)`` (levels h, h/2, h/4), ``f0`` and ``h[k]`` are
    broadcastable to ``...``; ``rho`` is the relative accuracy of one evaluation.
    """
    fp = np.asarray(fp, dtype=F64)
    fm = np.asarray(fm, dtype=F64)
    f0 = np.asarray(f0, dtype=F64)
    h = [np.asarray(hk, dtype=F64) for hk in h]
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(fp), axis=0) & np.all(np.isfinite(fm), axis=0)
        finite = finite & np.isfinite(f0)
        D = np.stack([(fp[k] - fm[k]) / (2.0 * h[k]) for k in range(3)])
        g = 0.5 * (fp + fm) - f0
        F = np.maximum(np.maximum(np.abs(fp).max(axis=0), np.abs(fm).max(axis=0)), np.abs(f0))
        ah = np.abs(h[0])
        if extra_F is not None:
            F = np.maximum(F, extra_F(D))
        F = np.maximum(F, F_floor)
        B1 = D[0] - D[1]
        B2 = D[1] - D[2]
        numeric = D[1] + (D[1] - D[0]) / 3.0
        r_odd = np.abs(B1 - 4.0 * B2)
        r_even = np.abs(g[0] - 20.0 * g[1] + 64.0 * g[2])
        # truncation + rounding, plus the two smoothness residuals: tiny (O(h^4)) on a
        # smooth line, they make room for a kink too small to tell from rounding noise
        fd_bound = np.abs(B1) + 3.0 * rho * F / ah + r_odd + r_even / ah
        lead_even = np.abs(g[0] - 4.0 * g[1])
        kink = (r_odd > 27.0 * rho * F / ah + np.abs(B1)) | (
            r_even > 170.0 * rho * F + lead_even
        )
        f2 = 8.0 * g[1] / (ah * ah)
    kink = kink & finite
    return _Line(numeric, fd_bound, f2, F, kink, finite, D)


def _analytic_array(value, size, what):
    a = np.asarray(value)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be real, got dtype {a.dtype}")
    if a.size != size:
        raise ValueError(f"{what} has {a.size} entries, expected {size}")
    return a


def _round_allow(a, f2, F, q, rho_a):
    with np.errstate(all="ignore"):
        r = rho_a * (np.abs(a) + q * np.abs(f2) + F / q)
    return np.where(np.isfinite(r), r, 0.0)


def _kink_mask(kinks, size, *call_args):
    if kinks is None:
        return np.zeros(size, dtype=bool)
    m = kinks(*call_args) if callable(kinks) else kinks
    m = np.asarray(m)
    if m.dtype == bool:
        if m.size != size:
            raise ValueError(f"kinks mask has {m.size} entries, expected {size}")
        return m.reshape(-1).copy()
    out = np.zeros(size, dtype=bool)
    out[m.reshape(-1).astype(np.intp)] = True
    return out


def _split_errors(report, call64, a_user, numeric, mask):
    """With a float64 reference, run the analytic function in float64 as well, so that
    finite-difference error and rounding error are measured apart (see the report)."""
    try:
        with np.errstate(all="ignore"):
            a_ref = np.asarray(call64())
    except Exception:  # the analytic function may insist on its own dtype
        return report
    if a_ref.dtype != F64 or a_ref.size != a_user.size:
        return report
    a_ref = a_ref.reshape(-1)
    m = mask & np.isfinite(a_ref) & np.isfinite(a_user) & np.isfinite(numeric)
    if not m.any():
        return report

    def rel(a, b):
        scale = np.maximum(np.abs(a), np.abs(b))
        err = np.abs(a - b)
        return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), 0.0)))

    report.fd_rel_err = rel(a_ref[m], numeric[m])
    report.round_rel_err = rel(a_user[m], a_ref[m])
    return report


def _want_split(ev, analytic, a):
    return ev.reference != "none" and callable(analytic) and a.dtype != F64


def _as_tuple(p):
    if isinstance(p, tuple):
        return p
    if isinstance(p, list):
        return tuple(p)
    return (p,)


# --------------------------------------------------------------------------------------
# Lines along a direction (shared by check_jvp, check_vjp and check_grad's probes)
# --------------------------------------------------------------------------------------


def _direction(ev, tangents, rel):
    """Evaluate ``f`` on the line through the primals along ``tangents``.

    Returns ``(line, s, t_eff, q, ts)`` or ``None`` when the tangent is zero: the line's
    statistics, the step ``s`` along ``t``, the tangents ``t_eff[k]`` actually applied
    at each level (the perturbed points are rounded), the input scale ``q`` in units of
    ``t`` and the tangents as flat float64 arrays.
    """
    work = ev.work
    ts = [np.asarray(t, dtype=F64).reshape(-1) for t in tangents]
    ratios = []
    for w, t in zip(work, ts):
        nz = t != 0
        if nz.any():
            ratios.append(np.min(np.maximum(1.0, np.abs(w[nz].astype(F64))) / np.abs(t[nz])))
    if not ratios:
        return None
    s = rel * float(min(ratios))
    tmax = max(float(np.max(np.abs(t))) if t.size else 0.0 for t in ts)
    pmax = max(float(np.max(np.abs(w))) if w.size else 0.0 for w in work)
    q = max(1.0, pmax) / tmax
    fp, fm, t_eff, steps = [], [], [], []
    for level in _LEVELS:
        step = level * s
        xp = [(w + (step * t).astype(w.dtype)).astype(w.dtype) for w, t in zip(work, ts)]
        xm = [(w - (step * t).astype(w.dtype)).astype(w.dtype) for w, t in zip(work, ts)]
        t_eff.append([(a.astype(F64) - b.astype(F64)) / (2.0 * step) for a, b in zip(xp, xm)])
        fp.append(ev(xp))
        fm.append(ev(xm))
        steps.append(step)
    rho = ev.ulps * ev.eps
    line = _line_stats(
        np.stack(fp),
        np.stack(fm),
        ev.y0,
        steps,
        rho,
        extra_F=lambda D: np.abs(D[0]) * q,
        F_floor=ev.f_scale,
    )
    return line, s, t_eff, q, ts


def _dot_tangent(parts, ts):
    return float(sum(np.dot(np.asarray(a, dtype=F64).reshape(-1), t) for a, t in zip(parts, ts)))
