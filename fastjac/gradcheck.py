"""Finite-difference validation of gradients, JVPs, VJPs and diagonal Jacobians.

Usable on fastjac's own kernels (:func:`selfcheck`, ``fastjac check``, validation mode) and
on anyone's functions (:func:`check_grad`, :func:`check_jvp`, :func:`check_vjp`,
:func:`check_diagonal` and their ``assert_*`` twins).

Method
------
Every numeric derivative is a derivative along a line ``s -> f(x + s v)`` (a coordinate
axis, or a tangent direction), estimated with central differences at three steps::

    D(t) = (f(x + t v) - f(x - t v)) / (2 t),      t = h, h/2, h/4

*Step.* For a coordinate ``x_i`` the step is ``h_i = eps**(1/3) * max(1, |x_i|)``, signed
like ``x_i`` (``eps`` is the machine epsilon of the dtype the differences are computed in),
and is then replaced by ``(x_i + h_i) - x_i`` so that the step really taken is the step
divided by. Along a direction ``t`` the step is the largest ``s`` that moves no coordinate
by more than its own coordinate step.

*Estimate and error bound.* The reported numeric derivative is the Richardson extrapolation
``(4 D(h/2) - D(h)) / 3``, whose truncation error is O(h^4). Its error is bounded per entry
by three terms, none of them a tuned constant:

* truncation: ``|D(h) - D(h/2)|``, the Richardson estimate of the O(h^2) error of the
  central difference (three times the error of ``D(h/2)``, and far more than the error of
  the extrapolated value: deliberately conservative);
* rounding of the difference quotient: ``3 * rho * F / h`` where ``F`` is the largest
  ``|f|`` seen on the line and ``rho = ulps * eps`` the relative accuracy assumed for one
  evaluation of ``f`` (``ulps=8`` by default);
* rounding of the *analytic* value, computed in its own dtype:
  ``rho_a * (|a| + q |f''| + F / q)``, with ``q`` the scale of the input
  (``max(1, |x_i|)``) and ``f''`` the second difference along the line: the last term
  covers cancellation inside a derivative formula (``1 - tanh(x)**2``), the middle one
  the propagation of input rounding through the derivative.

An entry passes when ``|analytic - numeric| <= bound``. ``rtol``/``atol``, when given,
loosen the bound to ``max(bound, atol + rtol * |numeric|)``.

*float32.* A float32 function is differentiated in float64 when it can be: by default
(``reference="auto"``) ``f`` is re-run on the float64 copy of its float32 inputs, and
the re-run is used when it returns float64 values that agree with the float32 run; or
the caller passes ``reference=f64_version_of_f``. The analytic value stays the float32
one, so the report separates the finite-difference error (``max_fd_bound``, float64
level, tiny) from the float32 rounding of the analytic value (``max_round_bound``).
With ``reference=False`` (or when the re-run is not possible) the differences are taken
in float32 and the bound grows accordingly.

*Kinks.* Along a smooth line the even part ``(f(x+t) + f(x-t))/2 - f(x)`` is a series in
``t^2`` and ``D(t)`` a series in ``t^2``; with three steps each has one redundant
combination that must be a small correction to the leading Richardson difference
(``g(h) - 20 g(h/2) + 64 g(h/4)`` against ``g(h) - 4 g(h/2)``, and
``D(h) - 5 D(h/2) + 4 D(h/4)`` against ``D(h) - D(h/2)``). A kink within a step (ReLU or
abs at 0, a max/min tie, a ReLU neuron with ``w.x + b ~ 0``) puts an odd power of
``|t|`` into these series and breaks the relation by far more than the rounding noise;
such entries are reported in ``report.kinks`` and not counted as failures. Callers can
also name kinks themselves with ``kinks=`` (a mask or a callable returning one).

*Validation mode.* Inside ``with fastjac.validating():`` (or with ``FASTJAC_VALIDATE=1``)
every public gradient method of fastjac cross-checks its own result with the checks
above and raises :class:`GradCheckError` on a mismatch. The methods call, behind the
cheap flag ``fastjac._config.VALIDATE``, one of :func:`_cross_check_unary`,
:func:`_cross_check_binary`, :func:`_cross_check_neuron` or the generic
:func:`_cross_check`. An element-wise derivative costs about 13 evaluations of the
value function, a JVP 8, a VJP 13.

Functions here are pure Python and NumPy; they never need the compiled kernels.
"""

import dataclasses
import math
from typing import Any, List, Optional

import numpy as np

from . import _config

__all__ = [
    "GradCheckError",
    "GradCheckReport",
    "Entry",
    "check_grad",
    "check_jvp",
    "check_vjp",
    "check_diagonal",
    "assert_grad",
    "assert_jvp",
    "assert_vjp",
    "assert_diagonal",
    "SelfCheckReport",
    "SelfCheckRow",
    "selfcheck",
    "main_check",
    "validating",
    "is_validating",
]

validating = _config.validating
is_validating = _config.is_validating

_LEVELS = (1.0, 0.5, 0.25)
DEFAULT_ULPS = 8
_N_WORST = 5
F64 = np.dtype(np.float64)


class GradCheckError(AssertionError):
    """A derivative disagrees with finite differences (raised by ``assert_*`` and by
    validation mode); the message is the report's table."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """One compared entry: where, the two values, and how far apart they may be."""

    index: Any
    x: float
    analytic: float
    numeric: float
    abs_err: float
    rel_err: float
    bound: float

    @property
    def ok(self):
        return bool(self.abs_err <= self.bound)


def _fmt(v, width=11):
    if v is None:
        return "-".rjust(width)
    if isinstance(v, (float, np.floating)):
        return f"{float(v):{width}.3e}"
    return str(v).rjust(width)


def _fmt_index(index):
    if isinstance(index, tuple) and len(index) == 1:
        index = index[0]
    return str(index)


@dataclasses.dataclass
class GradCheckReport:
    """Result of a finite-difference check; truthy when it passed.

    Attributes
    ----------
    name : str
        What was checked (``"check_grad"`` or the caller's name).
    passed : bool
        No compared entry exceeded its bound and no structural problem was found.
    max_abs_err, max_rel_err : float
        Largest ``|analytic - numeric|`` and largest relative error
        ``|analytic - numeric| / max(|analytic|, |numeric|)`` over compared entries.
    worst : list of Entry
        The entries closest to (or furthest over) their bound, worst first.
    n_evals : int
        Evaluations of the function ``f`` the check used.
    kinks : list
        Indices of entries within a step of a kink (found or given): not compared.
    n_checked : int
        Entries compared.
    dtype : str
        dtype of the analytic values.
    reference : str
        How the finite differences were computed: ``"none"`` (in the function's own
        dtype), ``"float64 re-run"`` or ``"reference callable"``.
    max_fd_bound : float
        Largest finite-difference part of a bound (truncation + rounding of ``f``).
    max_round_bound : float
        Largest allowance for rounding in the analytic value.
    max_ratio : float
        Largest ``abs_err / bound`` (> 1 means failed).
    rel_bound : float
        The bound of the entry with the largest relative error, relative to its
        magnitude: the number to read beside ``max_rel_err``.
    fd_rel_err, round_rel_err : float or None
        Measured apart when a float32 check ran with a float64 reference and the analytic
        function also accepts float64 inputs: ``fd_rel_err`` is the largest relative
        difference between the float64 analytic values and the finite differences (the
        mathematics, up to finite-difference error); ``round_rel_err`` the largest
        relative difference between the checked (float32) analytic values and the
        float64 ones (rounding). None otherwise.
    problems : list of str
        Loud structural failures: a function that is not diagonal, NaN in an analytic
        value where ``f`` is finite, shapes that do not match.
    nonfinite : list
        Entries where ``f`` was not finite on the step (outside its domain): not compared.
    notes : list of str
        Remarks (coordinates sampled, reference not usable, ...).
    """

    name: str
    passed: bool
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    worst: List[Entry] = dataclasses.field(default_factory=list)
    n_evals: int = 0
    kinks: list = dataclasses.field(default_factory=list)
    n_checked: int = 0
    dtype: str = ""
    reference: str = "none"
    max_fd_bound: float = 0.0
    max_round_bound: float = 0.0
    max_ratio: float = 0.0
    rel_bound: float = 0.0
    fd_rel_err: Optional[float] = None
    round_rel_err: Optional[float] = None
    problems: List[str] = dataclasses.field(default_factory=list)
    nonfinite: list = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)

    def __bool__(self):
        return bool(self.passed)


    def __str__(self):
        status = "PASSED" if self.passed else "FAILED"
        head = (
            f"{self.name}: {status}  ({self.n_checked} entries compared, "
            f"{len(self.kinks)} at kinks, {self.n_evals} evaluations of f, dtype "
            f"{self.dtype or '?'}, differences: {self.reference})"
        )
        lines = [head]
        for p in self.problems:
            lines.append(f"  !! {p}")
        lines.append(
            f"  max abs err {self.max_abs_err:.3e}   max rel err {self.max_rel_err:.3e}   "
            f"max err/bound {self.max_ratio:.3g}"
        )
        lines.append(
            f"  bound = finite-difference error (max {self.max_fd_bound:.2e}) "
            f"+ analytic rounding (max {self.max_round_bound:.2e})"
        )
        if self.worst:
            cols = ("index", "x", "analytic", "numeric", "abs err", "rel err", "bound", "")
            widths = (14, 11, 11, 11, 11, 11, 11, 4)
            lines.append("  " + " ".join(c.rjust(w) for c, w in zip(cols, widths)))
            for e in self.worst:
                cells = (
                    _fmt_index(e.index).rjust(14),
                    _fmt(e.x),
                    _fmt(e.analytic),
                    _fmt(e.numeric),
                    _fmt(e.abs_err),
                    _fmt(e.rel_err),
                    _fmt(e.bound),
                    "ok" if e.ok else "FAIL",
                )
                lines.append("  " + " ".join(c.rjust(w) for c, w in zip(cells, widths)))
        if self.kinks:
            shown = ", ".join(_fmt_index(k) for k in self.kinks[:8])
            more = f", ... ({len(self.kinks)} in all)" if len(self.kinks) > 8 else ""
            lines.append(f"  kinks (not compared): {shown}{more}")
        if self.nonfinite:
            shown = ", ".join(_fmt_index(k) for k in self.nonfinite[:8])
            lines.append(f"  f not finite on the step (not compared): {shown}")
        if self.fd_rel_err is not None:
            lines.append(
                f"  measured apart: float64 analytic vs finite differences, max rel err "
                f"{self.fd_rel_err:.2e}"
            )
            lines.append(
                f"                  {self.dtype} vs float64 analytic (rounding), max rel err "
                f"{self.round_rel_err:.2e}"
            )
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


# --------------------------------------------------------------------------------------
# Arguments and evaluation
# --------------------------------------------------------------------------------------


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


class _Args:
    """A tuple of primals (arrays or Python scalars), kept flat."""

    def __init__(self, primals):
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
            self.flat.append(a.astype(_float_dtype(a.dtype), copy=True).reshape(-1))
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
        self.f = f
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
                elif not _agree(y64, y_user, _eps(y_user.dtype)):
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


def _finish(
    name,
    indices,
    xs,
    analytic,
    numeric,
    bound,
    fd_bound,
    round_bound,
    kink,
    finite,
    rtol,
    atol,
    n_evals,
    dtype,
    reference,
    problems=(),
    notes=(),
    kink_indices=(),
):
    """Compare, pick the worst entries and build the report."""
    analytic = np.asarray(analytic, dtype=F64).reshape(-1)
    numeric = np.asarray(numeric, dtype=F64).reshape(-1)
    bound = np.asarray(bound, dtype=F64).reshape(-1)
    if rtol is not None or atol is not None:
        user = (0.0 if atol is None else float(atol)) + (0.0 if rtol is None else float(rtol)) * (
            np.abs(numeric)
        )
        bound = np.maximum(bound, user)
    problems = list(problems)
    # Below the smallest normal number values carry an absolute error of a subnormal
    # step: sigmoid'(-745) = 5e-324 differs from its difference quotient (0) by exactly
    # that, and a zero bound would call it a failure.
    try:
        tiny = float(np.finfo(np.dtype(dtype)).tiny)
    except (TypeError, ValueError):
        tiny = float(np.finfo(F64).tiny)
    bound = np.maximum(bound, 4 * tiny)
    # An entry whose error bound is NaN (x within a step of overflow: the differences
    # overflow) cannot be judged: report it apart instead of failing a correct gradient.
    unbounded = finite & ~kink & np.isnan(bound)
    compared = finite & ~kink & ~unbounded
    if unbounded.any():
        notes = list(notes) + [
            f"{int(unbounded.sum())} entries not compared: their finite-difference error "
            "bound is not finite (x within a step of overflow)"
        ]
    with np.errstate(all="ignore"):
        err = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        rel = np.where(scale > 0, err / scale, 0.0)
        ratio = np.where(bound > 0, err / bound, np.where(err > 0, np.inf, 0.0))
    bad_analytic = compared & ~np.isfinite(analytic)
    if bad_analytic.any():
        problems.append(
            f"{int(bad_analytic.sum())} analytic value(s) are NaN/inf where f is finite"
        )
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    idx = np.flatnonzero(compared)
    order = idx[np.argsort(-ratio[idx], kind="stable")][:_N_WORST]
    worst = [
        Entry(
            index=indices(int(i)),
            x=None if xs is None else float(xs[i]),
            analytic=float(analytic[i]),
            numeric=float(numeric[i]),
            abs_err=float(err[i]),
            rel_err=float(rel[i]),
            bound=float(bound[i]),
        )
        for i in order
    ]
    notes = list(notes)
    if idx.size == 0 and analytic.size:
        notes.append("nothing was compared: every entry is at a kink or outside f's domain")
    n_fail = int(np.sum(ratio[idx] > 1.0))
    passed = n_fail == 0 and not problems
    if n_fail:
        problems.insert(0, f"{n_fail} of {idx.size} entries exceed their bound")

    rel_bound = 0.0
    if idx.size:
        i = idx[int(np.nanargmax(rel[idx]))] if np.any(np.isfinite(rel[idx])) else idx[0]
        rel_bound = float(bound[i] / scale[i]) if scale[i] > 0 else float(bound[i])

    def _max(a):
        a = a[idx]
        return float(np.nanmax(a)) if a.size else 0.0

    return GradCheckReport(
        name=name,
        passed=passed,
        max_abs_err=_max(err),
        max_rel_err=_max(rel),
        worst=worst,
        n_evals=int(n_evals),
        kinks=list(kink_indices) + [indices(int(i)) for i in np.flatnonzero(kink & finite)],
        n_checked=int(idx.size),
        dtype=str(dtype),
        reference=reference,
        max_fd_bound=_max(np.asarray(fd_bound, dtype=F64).reshape(-1)) if idx.size else 0.0,
        max_round_bound=_max(np.asarray(round_bound, dtype=F64).reshape(-1))
        if idx.size
        else 0.0,
        max_ratio=float(np.max(ratio[idx])) if idx.size else 0.0,
        rel_bound=rel_bound,
        problems=problems,
        nonfinite=[indices(int(i)) for i in np.flatnonzero(~finite)],
        notes=list(notes),
    )


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


# --------------------------------------------------------------------------------------
# Public checks
# --------------------------------------------------------------------------------------


def check_grad(
    f,
    grad,
    x,
    eps=None,
    rtol=None,
    atol=None,
    *,
    reference="auto",
    kinks=None,
    coords=None,
    n_probes=2,
    seed=0,
    ulps=DEFAULT_ULPS,
    f_scale=None,
    name="check_grad",
):
    """Check the gradient of a scalar function with central finite differences.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, a scalar function of an array ``x`` (any shape).
    grad : callable or array_like
        ``grad(x)`` returning an array of ``x``'s shape (the gradient, paper §3/§4.4),
        or that array itself.
    x : array_like
        The point. Integer and bool inputs are differentiated in float64; float32 in
        float64 too when ``f`` computes in float64 on float64 inputs (see
        ``reference``), else in float32.
    eps : float, optional
        Relative step ``h_i = eps * max(1, |x_i|)``; default ``finfo(dtype).eps**(1/3)``
        of the dtype the differences are computed in.
    rtol, atol : float, optional
        Loosen the per-entry bound to ``max(bound, atol + rtol * |numeric|)``.
    reference : "auto", False or callable, default "auto"
        How a float32 ``f`` is differentiated: ``"auto"`` re-runs ``f`` on float64 inputs
        when it computes in float64; a callable is used as the float64 version of ``f``;
        ``False`` differentiates in float32.
    kinks : bool array, index array or callable, optional
        Coordinates known to sit at (or within a step of) a kink; ``kinks(x)`` may return
        the mask. Added to the kinks found automatically; not compared.
    coords : None, "all", int or array of int, optional
        Coordinates differenced one at a time (6 evaluations each): all of them when
        ``x.size <= 1000`` (``None``), ``"all"``, a random sample of ``coords``
        coordinates, or the given flat indices. ``None`` on a larger ``x`` samples 256.
    n_probes : int, default 2
        Random directional derivatives ``<grad, t>`` also checked: they involve every
        coordinate, including those not sampled.
    seed : int, default 0
        Seed of the sampling and probes.
    ulps : float, default 8
        Assumed accuracy of one evaluation of ``f`` and of ``grad``, in units of the
        dtype's epsilon; the bound scales with it.
    f_scale : float, optional
        Magnitude of the terms ``f`` is computed from: one evaluation is taken to be
        accurate to ``ulps * eps * f_scale``. Default: the largest ``|f(x)|`` over all
        outputs (for :func:`check_diagonal`, each output's own ``|f|``). Raise it when
        ``f`` cancels large terms, e.g. ``f = sum(a) - sum(b)`` with both sums huge.
    name : str
        Name shown in the report.

    Returns
    -------
    GradCheckReport
        Truthy when every compared entry is within its bound.

    Examples
    --------
    >>> import numpy as np
    >>> from fastjac.gradcheck import check_grad
    >>> x = np.linspace(-1, 1, 5)
    >>> bool(check_grad(lambda v: np.sum(np.sin(v) ** 2), lambda v: np.sin(2 * v), x))
    True
    """
    args = _Args((x,))
    ev = _Evaluator(lambda v: _scalar_out(f(v)), args, reference, f_scale, ulps)
    rel = _rel_step(eps, ev.eps)
    rho = ulps * ev.eps
    xw = ev.work[0]
    n = xw.size
    rng = np.random.default_rng(seed)
    notes = list(ev.notes)
    if coords is None:
        coords = "all" if n <= 1000 else 256
    if isinstance(coords, str):
        if coords != "all":
            raise ValueError(f"coords must be None, 'all', an int or indices, got {coords!r}")
        sel = np.arange(n)
    elif np.ndim(coords) == 0:
        k = int(coords)
        sel = np.sort(rng.choice(n, size=min(k, n), replace=False)) if k < n else np.arange(n)
    else:
        sel = np.asarray(coords, dtype=np.intp).reshape(-1)
    if sel.size < n:
        notes.append(f"{sel.size} of {n} coordinates differenced (plus {n_probes} probes)")

    a_user = grad(args.pack(args.flat)[0]) if callable(grad) else grad
    a = _analytic_array(a_user, n, "grad(x)").reshape(-1)
    rho_a = ulps * max(_eps(a.dtype) if a.dtype.kind == "f" else 0.0, _in_eps(args.dtypes[0]))
    a64 = a.astype(F64)

    steps = _coord_steps(xw, rel)
    m = sel.size
    fp = np.empty((3, m))
    fm = np.empty((3, m))
    hs = np.empty((3, m))
    for c, j in enumerate(sel):
        for k, (xp, xm, h) in enumerate(steps):
            v = xw.copy()
            v[j] = xp[j]
            fp[k, c] = ev([v])[0]
            v[j] = xm[j]
            fm[k, c] = ev([v])[0]
            hs[k, c] = h[j]
    q = np.maximum(1.0, np.abs(xw[sel].astype(F64)))
    line = _line_stats(
        fp, fm, ev.y0[0], hs, rho, extra_F=lambda D: q * np.abs(D[0]), F_floor=ev.f_scale
    )
    rb = _round_allow(a64[sel], line.f2, line.F, q, rho_a)
    bound = line.fd_bound + rb
    kink = line.kink | _kink_mask(kinks, n, args.pack(args.flat)[0])[sel]

    # directional probes: <grad, t> against the derivative along t
    p_an, p_num, p_bound, p_fd, p_rb, p_kink, p_fin = [], [], [], [], [], [], []
    for _ in range(int(n_probes) if n > 1 else 0):
        t = rng.standard_normal(n) * np.maximum(1.0, np.abs(xw.astype(F64)))
        res = _direction(ev, [t], rel)
        if res is None:
            continue
        pl, s, t_eff, qd, ts = res
        an = float(np.dot(a64, ts[0]))
        corr = [float(np.dot(a64, te[0] - ts[0])) for te in t_eff]
        num = float(pl.numeric[0]) - (4.0 * corr[1] - corr[0]) / 3.0
        rbp = float(
            rho_a * (np.dot(np.abs(a64), np.abs(ts[0])) + qd * abs(pl.f2[0]) + pl.F[0] / qd)
        )
        p_an.append(an)
        p_num.append(num)
        p_fd.append(float(pl.fd_bound[0]))
        p_rb.append(rbp)
        p_bound.append(float(pl.fd_bound[0]) + rbp)
        p_kink.append(bool(pl.kink[0]))
        p_fin.append(bool(pl.finite[0]))
    npr = len(p_an)

    def index(i):
        if i < m:
            return args.index(0, int(sel[i]))
        return f"probe {i - m}"

    xs = np.concatenate([xw[sel].astype(F64), np.full(npr, np.nan)])
    report = _finish(
        name,
        index,
        xs,
        np.concatenate([a64[sel], p_an]),
        np.concatenate([line.numeric, p_num]),
        np.concatenate([bound, p_bound]),
        np.concatenate([line.fd_bound, p_fd]),
        np.concatenate([rb, p_rb]),
        np.concatenate([kink, np.asarray(p_kink, dtype=bool)]),
        np.concatenate([line.finite, np.asarray(p_fin, dtype=bool)]),
        rtol,
        atol,
        ev.n_evals,
        a.dtype,
        ev.reference,
        notes=notes,
    )
    for e in report.worst:
        if isinstance(e.index, str):
            object.__setattr__(e, "x", None)
    if _want_split(ev, grad, a):
        x64 = args.pack(ev.work)[0]
        _split_errors(
            report,
            lambda: np.asarray(grad(x64)).reshape(-1)[sel],
            a64[sel],
            line.numeric,
            line.finite & ~kink,
        )
    return report


def _scalar_out(v):
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError(f"f must return a scalar, got shape {a.shape}")
    return a.reshape(())


def check_diagonal(
    f,
    derivative,
    x,
    eps=None,
    rtol=None,
    atol=None,
    *,
    reference="auto",
    kinks=None,
    n_probes=3,
    seed=0,
    ulps=DEFAULT_ULPS,
    f_scale=None,
    name="check_diagonal",
):
    """Check the derivative of an element-wise function from O(1) evaluations.

    For ``y = f(x)`` with ``y_i`` depending on ``x_i`` only (a diagonal Jacobian, paper
    §4.2), every coordinate is perturbed at once by its own step, so all ``n`` diagonal
    entries come from 7 evaluations of ``f``. The claim itself is then probed: some
    coordinates are perturbed (alternate ones, one half, random subsets and their
    complements) and every output whose own input did not move must not change. A
    function that couples coordinates fails loudly with a "not diagonal" problem.

    Parameters
    ----------
    f : callable
        ``f(x) -> y`` with ``y.shape == x.shape``.
    derivative : callable or array_like
        ``derivative(x)``: the diagonal ``∂y_i/∂x_i``, shape of ``x``; or that array.
    x : array_like
        The point, any shape (treated as flat).
    eps, rtol, atol, reference, kinks, seed, ulps, f_scale, name
        As in :func:`check_grad`; ``kinks`` masks entries of ``x``.
    n_probes : int, default 3
        Random partitions used to probe diagonality (two evaluations each), on top of the
        alternate-coordinates and half/half partitions.

    Returns
    -------
    GradCheckReport
        ``n_evals`` is ``7 + 2 * (n_probes + 2)`` whatever the size of ``x``.
    """
    args = _Args((x,))
    ev = _Evaluator(f, args, reference, f_scale, ulps)
    xw = ev.work[0]
    n = xw.size
    if ev.y0.size != n:
        raise ValueError(
            f"check_diagonal needs f(x) of x's size; f returned {ev.out_shape} "
            f"for x of shape {args.shapes[0]}"
        )
    rel = _rel_step(eps, ev.eps)
    rho = ulps * ev.eps
    a_user = derivative(args.pack(args.flat)[0]) if callable(derivative) else derivative
    a = _analytic_array(a_user, n, "derivative(x)").reshape(-1)
    rho_a = ulps * max(_eps(a.dtype) if a.dtype.kind == "f" else 0.0, _in_eps(args.dtypes[0]))
    steps = _coord_steps(xw, rel)
    fp = np.stack([ev([xp]) for xp, _, _ in steps])
    fm = np.stack([ev([xm]) for _, xm, _ in steps])
    hs = [h for _, _, h in steps]
    q = np.maximum(1.0, np.abs(xw.astype(F64)))
    line = _line_stats(
        fp,
        fm,
        ev.y0,
        hs,
        rho,
        extra_F=lambda D: q * np.abs(D[0]),
        F_floor=0.0 if f_scale is None else ev.f_scale,
    )
    a64 = a.astype(F64)
    rb = _round_allow(a64, line.f2, line.F, q, rho_a)
    kink = line.kink | _kink_mask(kinks, n, args.pack(args.flat)[0])

    problems = _diagonal_probes(ev, xw, steps[0][0], rho, n_probes, seed) if n > 1 else []
    report = _finish(
        name,
        lambda i: args.index(0, i),
        xw.astype(F64),
        a64,
        line.numeric,
        line.fd_bound + rb,
        line.fd_bound,
        rb,
        kink,
        line.finite,
        rtol,
        atol,
        ev.n_evals,
        a.dtype,
        ev.reference,
        problems=problems,
        notes=ev.notes,
    )
    if _want_split(ev, derivative, a):
        x64 = args.pack(ev.work)[0]
        _split_errors(report, lambda: derivative(x64), a64, line.numeric, line.finite & ~kink)
    return report


def _diagonal_probes(ev, xw, xp, rho, n_probes, seed):
    """Perturb subsets of coordinates; outputs outside the subset must not move."""
    n = xw.size
    rng = np.random.default_rng(seed + 1)
    idx = np.arange(n)
    parts = [idx % 2 == 0, idx < n // 2]
    parts += [rng.random(n) < 0.5 for _ in range(int(n_probes))]
    y0 = ev.y0
    h = np.abs(xp.astype(F64) - xw.astype(F64))
    worst = None  # (coupling, i, delta, moved)
    count = 0
    for part in parts:
        for moved in (part, ~part):
            if not moved.any() or moved.all():
                continue
            v = np.where(moved, xp, xw).astype(xw.dtype)
            y = ev([v])
            still = ~moved
            with np.errstate(all="ignore"):
                delta = np.abs(y - y0)
                scale = np.maximum(np.abs(y), np.abs(y0))
                over = still & np.isfinite(y0) & (delta > 4.0 * rho * scale)
                over |= still & (np.isfinite(y0) != np.isfinite(y))
            if over.any():
                count += int(over.sum())
                hmax = float(np.max(h[moved]))
                i = int(np.flatnonzero(over)[np.argmax(delta[over])])
                coupling = float(delta[i] / hmax) if hmax > 0 else float("inf")
                if worst is None or coupling > worst[0]:
                    worst = (coupling, i, float(delta[i]), int(moved.sum()))
    if worst is None:
        return []
    coupling, i, delta, n_moved = worst
    return [
        f"NOT DIAGONAL: output {i} changed by {delta:.3e} when only {n_moved} other "
        f"inputs were perturbed (coupling ~ {coupling:.3e}; {count} such outputs in all) - "
        "f couples coordinates, its Jacobian is not diagonal"
    ]


def check_jvp(
    f,
    jvp,
    primals,
    tangents,
    eps=None,
    rtol=None,
    atol=None,
    *,
    reference="auto",
    kinks=None,
    ulps=DEFAULT_ULPS,
    f_scale=None,
    name="check_jvp",
):
    """Check a Jacobian-vector product (forward mode) with a directional difference.

    Parameters
    ----------
    f : callable
        ``f(*primals) -> y`` (an array or scalar).
    jvp : callable or array_like
        ``jvp(primals, tangents) -> dy``, the directional derivative ``J t`` with ``y``'s
        shape (a tuple/array pair, as in ``jax.jvp``); or ``dy`` itself.
    primals : tuple of array_like
        The point; a single array is taken as a 1-tuple. Python floats stay scalars.
    tangents : tuple of array_like
        One tangent per primal, of its shape.
    eps, rtol, atol, reference, ulps, f_scale, name
        As in :func:`check_grad`. The step along ``t`` is the largest that moves no
        coordinate by more than its own coordinate step.
    kinks : bool array or callable, optional
        Output entries known to sit at a kink along ``t`` (``kinks(*primals)``).

    Returns
    -------
    GradCheckReport
        One entry per output element; ``n_evals`` is 7 (8 with a float64 re-run).
    """
    primals = _as_tuple(primals)
    tangents = _as_tuple(tangents)
    if len(tangents) != len(primals):
        raise ValueError(f"got {len(tangents)} tangents for {len(primals)} primals")
    args = _Args(primals)
    for i, t in enumerate(tangents):
        if np.size(t) != args.sizes[i]:
            raise ValueError(
                f"tangent {i} has shape {np.shape(t)}, primal {i} has shape {args.shapes[i]}"
            )
    ev = _Evaluator(f, args, reference, f_scale, ulps)
    rel = _rel_step(eps, ev.eps)
    m = ev.y0.size
    a_user = jvp(args.pack(args.flat), tangents) if callable(jvp) else jvp
    a = _analytic_array(a_user, m, "jvp(primals, tangents)").reshape(-1)
    rho_a = ulps * max(_eps(a.dtype) if a.dtype.kind == "f" else 0.0, *map(_in_eps, args.dtypes))
    a64 = a.astype(F64)
    res = _direction(ev, tangents, rel)
    if res is None:  # zero tangent: the JVP must be zero
        numeric = np.zeros(m)
        fd = np.zeros(m)
        rb = rho_a * np.abs(a64)
        finite = np.ones(m, dtype=bool)
        kink = np.zeros(m, dtype=bool)
    else:
        line, s, t_eff, q, ts = res
        numeric = line.numeric
        if callable(jvp):
            # The perturbed points were rounded: remove J (t_eff - t) from each level.
            dev = max(
                float(np.max(np.abs(te - t), initial=0.0))
                for lvl in t_eff
                for te, t in zip(lvl, ts)
            )
            if dev > 0:
                corr = []
                for lvl in t_eff:
                    dt = tuple(
                        _shape_like(te - t, args, i, a.dtype)
                        for i, (te, t) in enumerate(zip(lvl, ts))
                    )
                    corr.append(np.asarray(jvp(args.pack(args.flat), dt), dtype=F64).reshape(-1))
                numeric = numeric - (4.0 * corr[1] - corr[0]) / 3.0
        fd = line.fd_bound
        rb = _round_allow(a64, line.f2, line.F, q, rho_a)
        finite = line.finite
        kink = line.kink
    kink = kink | _kink_mask(kinks, m, *args.pack(args.flat))
    out_shape = ev.out_shape
    report = _finish(
        name,
        lambda i: _out_index(i, out_shape),
        None,
        a64,
        numeric,
        fd + rb,
        fd,
        rb,
        kink,
        finite,
        rtol,
        atol,
        ev.n_evals,
        a.dtype,
        ev.reference,
        notes=ev.notes,
    )
    if res is not None and _want_split(ev, jvp, a):
        p64 = args.pack(ev.work)
        t64 = tuple(
            float(t) if args.scalar[i] else np.asarray(t, dtype=F64)
            for i, t in enumerate(tangents)
        )
        _split_errors(report, lambda: jvp(p64, t64), a64, numeric, finite & ~kink)
    return report


def _shape_like(v, args, i, dtype):
    if args.scalar[i]:
        return float(v[0])
    dt = dtype if np.dtype(dtype).kind == "f" else F64
    return np.asarray(v, dtype=dt).reshape(args.shapes[i])


def _out_index(i, shape):
    if len(shape) <= 1:
        return int(i)
    return tuple(int(k) for k in np.unravel_index(i, shape))


def check_vjp(
    f,
    vjp,
    primals,
    cotangent=None,
    eps=None,
    rtol=None,
    atol=None,
    *,
    reference="auto",
    kinks=None,
    n_probes=3,
    full="auto",
    max_full=64,
    seed=0,
    ulps=DEFAULT_ULPS,
    f_scale=None,
    name="check_vjp",
):
    """Check a vector-Jacobian product (reverse mode).

    Two checks, both against central differences of ``f``:

    * the dot-product identity ``<ct, J t> == <vjp(ct), t>`` on ``n_probes`` random
      tangents ``t`` (6 evaluations each, any size). Outputs at a kink along ``t`` are
      removed from ``ct`` (``vjp`` is called again with them zeroed);
    * for small inputs (``full=True``, or ``"auto"`` with at most ``max_full`` input
      entries) every column of ``J`` by coordinate differences, compared entry by entry
      as ``ct @ J`` against ``vjp(ct)``.

    Parameters
    ----------
    f : callable
        ``f(*primals) -> y``.
    vjp : callable or tuple
        ``vjp(primals, cotangent) -> tuple`` of input cotangents, one per primal, of its
        shape (a Python-float primal gets a scalar: the sum of §4.3). With one primal a
        bare array is accepted. A precomputed tuple (for the given ``cotangent``) is
        accepted too; probes that cross a kink are then skipped.
    primals : tuple of array_like
        The point (a single array is a 1-tuple).
    cotangent : array_like, optional
        ``ct`` of ``y``'s shape; random normal by default.
    eps, rtol, atol, reference, ulps, f_scale, name
        As in :func:`check_grad`.
    kinks : bool array or callable, optional
        Output entries known to sit at a kink (``kinks(*primals)``): removed from ``ct``.
    n_probes, full, max_full, seed
        See above.

    Returns
    -------
    GradCheckReport
        Entries ``"probe k"`` for the identity and ``(arg, index)`` for full columns.
    """
    primals = _as_tuple(primals)
    args = _Args(primals)
    ev = _Evaluator(f, args, reference, f_scale, ulps)
    rel = _rel_step(eps, ev.eps)
    rho = ulps * ev.eps
    m = ev.y0.size
    rng = np.random.default_rng(seed)
    out_shape = ev.out_shape
    if cotangent is None:
        ct = rng.standard_normal(m)
    else:
        ct = np.asarray(cotangent, dtype=F64).reshape(-1)
        if ct.size != m:
            raise ValueError(f"cotangent has shape {np.shape(cotangent)}, f returns {out_shape}")
    user_kink = _kink_mask(kinks, m, *args.pack(args.flat))
    ct = np.where(user_kink, 0.0, ct)
    out_dtype = np.asarray(ev.y_user).dtype if ev.out_dtype.kind != "f" else ev.out_dtype

    def call_vjp(c):
        cc = np.asarray(c, dtype=out_dtype if out_dtype.kind == "f" else F64)
        cc = cc.reshape(out_shape) if out_shape else cc.reshape(())
        r = vjp(args.pack(args.flat), cc) if callable(vjp) else vjp
        r = r if isinstance(r, (tuple, list)) else (r,)
        if len(r) != len(args):
            raise ValueError(f"vjp returned {len(r)} cotangents for {len(args)} primals")
        parts = []
        for i, ri in enumerate(r):
            ri = np.asarray(ri)
            if ri.size != args.sizes[i]:
                raise ValueError(
                    f"vjp cotangent {i} has shape {ri.shape}, primal {i} has "
                    f"shape {args.shapes[i]}"
                )
            parts.append(ri)
        return parts

    base = call_vjp(ct)
    rho_a = ulps * max(
        [_eps(p.dtype) if p.dtype.kind == "f" else 0.0 for p in base]
        + [_in_eps(d) for d in args.dtypes]
    )
    base64 = [p.astype(F64).reshape(-1) for p in base]

    cols = {k: [] for k in ("index", "a", "num", "fd", "rb", "kink", "fin")}
    n_in = sum(args.sizes)
    do_full = full is True or (full == "auto" and n_in <= max_full)
    if do_full:
        for ai, w in enumerate(ev.work):
            steps = _coord_steps(w, rel)
            for j in range(w.size):
                fp = np.empty((3, m))
                fm = np.empty((3, m))
                hs = []
                for k, (xp, xm, h) in enumerate(steps):
                    v = [u.copy() for u in ev.work]
                    v[ai][j] = xp[j]
                    fp[k] = ev(v)
                    v[ai][j] = xm[j]
                    fm[k] = ev(v)
                    hs.append(h[j])
                qj = max(1.0, abs(float(w[j])))
                col = _line_stats(
                    fp,
                    fm,
                    ev.y0,
                    hs,
                    rho,
                    extra_F=lambda D: qj * np.abs(D[0]),
                    F_floor=ev.f_scale,
                )
                use = ct != 0
                kink_j = bool(np.any(col.kink & use))
                fin_j = bool(np.all(col.finite | ~use))
                with np.errstate(all="ignore"):
                    num = float(np.dot(ct[use], col.numeric[use]))
                    fd = float(np.dot(np.abs(ct[use]), col.fd_bound[use]))
                    a_j = float(base64[ai][j])
                    rbj = rho_a * (
                        np.dot(np.abs(ct[use]), np.abs(col.numeric[use]))
                        + abs(a_j)
                        + np.dot(np.abs(ct[use]), qj * np.abs(col.f2[use]) + col.F[use] / qj)
                    )
                cols["index"].append(args.index(ai, j))
                cols["a"].append(a_j)
                cols["num"].append(num)
                cols["fd"].append(fd)
                cols["rb"].append(float(rbj) if np.isfinite(rbj) else 0.0)
                cols["kink"].append(kink_j)
                cols["fin"].append(fin_j)

    for p in range(int(n_probes)):
        ts = [
            rng.standard_normal(w.size) * np.maximum(1.0, np.abs(w.astype(F64)))
            for w in ev.work
        ]
        res = _direction(ev, ts, rel)
        if res is None:
            continue
        line, s, t_eff, q, ts = res
        use = (ct != 0) & ~line.kink
        kinked = bool(np.any(line.kink & (ct != 0)))
        ctp = np.where(use, ct, 0.0)
        if not use.any():
            cols["index"].append(f"probe {p}")
            for k, v in (("a", 0.0), ("num", 0.0), ("fd", 0.0), ("rb", 0.0)):
                cols[k].append(v)
            cols["kink"].append(kinked)
            cols["fin"].append(bool(np.all(line.finite)))
            continue
        if kinked and not callable(vjp):  # a precomputed VJP cannot be re-run on ct'
            cols["index"].append(f"probe {p}")
            for k in ("a", "num", "fd", "rb"):
                cols[k].append(0.0)
            cols["kink"].append(True)
            cols["fin"].append(bool(np.all(line.finite)))
            continue
        parts = base64 if not kinked else [c.astype(F64).reshape(-1) for c in call_vjp(ctp)]
        an = _dot_tangent(parts, ts)
        corr = [_dot_tangent(parts, [te - t for te, t in zip(lvl, ts)]) for lvl in t_eff]
        with np.errstate(all="ignore"):
            num = float(np.dot(ctp[use], line.numeric[use])) - (4.0 * corr[1] - corr[0]) / 3.0
            fd = float(np.dot(np.abs(ctp[use]), line.fd_bound[use]))
            rbp = rho_a * (
                sum(float(np.dot(np.abs(c), np.abs(t))) for c, t in zip(parts, ts))
                + float(np.dot(np.abs(ctp[use]), q * np.abs(line.f2[use]) + line.F[use] / q))
            )
        cols["index"].append(f"probe {p}")
        cols["a"].append(an)
        cols["num"].append(num)
        cols["fd"].append(fd)
        cols["rb"].append(rbp if np.isfinite(rbp) else 0.0)
        cols["kink"].append(False)
        cols["fin"].append(bool(np.all(line.finite | ~use)))
        if kinked:
            cols.setdefault("kinked_probes", []).append(p)

    notes = list(ev.notes)
    kp = cols.pop("kinked_probes", [])
    if kp:
        notes.append(f"probes {kp}: outputs at a kink along t were left out of ct")
    fd = np.asarray(cols["fd"], dtype=F64)
    rb = np.asarray(cols["rb"], dtype=F64)
    names = cols["index"]
    report = _finish(
        name,
        lambda i: names[i],
        None,
        cols["a"],
        cols["num"],
        fd + rb,
        fd,
        rb,
        np.asarray(cols["kink"], dtype=bool),
        np.asarray(cols["fin"], dtype=bool),
        rtol,
        atol,
        ev.n_evals,
        base[0].dtype if base else "",
        ev.reference,
        notes=notes,
        kink_indices=[_out_index(i, out_shape) for i in np.flatnonzero(user_kink)],
    )
    return report


# --------------------------------------------------------------------------------------
# assert_* variants
# --------------------------------------------------------------------------------------


def _raise_unless(report):
    if not report.passed:
        raise GradCheckError(str(report), report)
    return report


def assert_grad(f, grad, x, **kwargs):
    """:func:`check_grad`, raising :class:`GradCheckError` (an ``AssertionError``) with
    the report's table when it fails; returns the report otherwise."""
    return _raise_unless(check_grad(f, grad, x, **kwargs))


def assert_jvp(f, jvp, primals, tangents, **kwargs):
    """:func:`check_jvp`, raising :class:`GradCheckError` with the report when it fails."""
    return _raise_unless(check_jvp(f, jvp, primals, tangents, **kwargs))


def assert_vjp(f, vjp, primals, cotangent=None, **kwargs):
    """:func:`check_vjp`, raising :class:`GradCheckError` with the report when it fails."""
    return _raise_unless(check_vjp(f, vjp, primals, cotangent, **kwargs))


def assert_diagonal(f, derivative, x, **kwargs):
    """:func:`check_diagonal`, raising :class:`GradCheckError` with the report when it
    fails (including when ``f`` is not element-wise)."""
    return _raise_unless(check_diagonal(f, derivative, x, **kwargs))


# --------------------------------------------------------------------------------------
# Validation mode: the hooks the library's gradient methods call
# --------------------------------------------------------------------------------------


def _validated(name, make_report):
    """Run ``make_report`` with validation off (no recursion); raise on failure."""
    with _config.validating(False):
        report = make_report()
    if not report.passed:
        raise GradCheckError(
            f"fastjac validation mode: {name} disagrees with finite differences\n{report}",
            report,
        )
    return report


def _cross_check(fn_value, kind, primals, direction, result, name="gradient"):
    """Cross-check one gradient result against finite differences of its value function.

    The hook behind validation mode (``fastjac.validating()`` / ``FASTJAC_VALIDATE=1``).
    Callers guard it with the cheap flag::

        if _config.VALIDATE:
            gradcheck._cross_check(fn_value, "vjp", (w, b), 1.0, (gw, gb), "loss_grad")

    Parameters
    ----------
    fn_value : callable
        ``fn_value(*primals) -> y``: the value function whose derivative ``result`` is.
    kind : {"derivative", "jvp", "vjp", "grad"}
        ``"derivative"``: ``result`` is the diagonal of an element-wise ``fn_value`` of one
        primal (``direction`` unused). ``"jvp"``: ``result = J @ direction`` with
        ``direction`` a tuple of tangents. ``"vjp"``: ``result`` is the tuple of input
        cotangents for the output cotangent ``direction``. ``"grad"``: ``result`` is the
        tuple of gradients of a scalar ``fn_value`` (a VJP with cotangent 1).
    primals : tuple
        The point (a single array is a 1-tuple).
    direction : tuple, array or None
        Tangents (``"jvp"``) or the cotangent (``"vjp"``).
    result : array or tuple
        What the gradient method computed.
    name : str
        Shown in the error.

    Returns
    -------
    GradCheckReport or None
        None when validation is off in this thread/task, or when ``result`` overwrote
        one of the inputs (an in-place ``out=`` call: nothing left to difference).

    Raises
    ------
    GradCheckError
        When ``result`` disagrees with finite differences (kinks are not failures).
    """
    if not _config.is_validating():
        return None
    primals = _as_tuple(primals)
    if _overwrote_input(primals + _as_tuple(direction), result):
        return None
    if kind == "derivative":
        return _validated(
            name, lambda: check_diagonal(fn_value, result, primals[0], n_probes=1, name=name)
        )
    if kind == "jvp":
        return _validated(
            name, lambda: check_jvp(fn_value, result, primals, _as_tuple(direction), name=name)
        )
    if kind in ("vjp", "grad"):
        ct = 1.0 if kind == "grad" else direction
        res = result if isinstance(result, (tuple, list)) else (result,)
        return _validated(
            name,
            lambda: check_vjp(fn_value, tuple(res), primals, ct, n_probes=2, full=False, name=name),
        )
    raise ValueError(f"kind must be 'derivative', 'jvp', 'vjp' or 'grad', got {kind!r}")


def _overwrote_input(args, result):
    """True when an ``out=`` result is one of the inputs (an in-place call): the inputs
    the hook would difference are gone, so such a call is not cross-checked."""
    results = result if isinstance(result, (tuple, list)) else (result,)
    for r in results:
        if not isinstance(r, np.ndarray):
            continue
        for a in args:
            if isinstance(a, np.ndarray) and np.shares_memory(r, a):
                return True
    return False


def _op_name(op, method):
    return f"{getattr(op, 'name', type(op).__name__)}.{method}"


def _cross_check_unary(op, method, args, result):
    """Validation hook of an element-wise unary op ``y = h(x)``.

    ``method`` and ``args``: ``"derivative"``/``"sum_grad"`` ``(x,)``, ``"jacobian"``
    ``(x,)`` (``result`` a ``Diagonal``), ``"jvp"`` ``(x, dx)``, ``"vjp"`` ``(x, gy)``,
    ``"value_and_vjp"`` ``(x, gy)`` (``result`` the pair). The Jacobian is diagonal, so
    a VJP is checked entry by entry as the JVP along ``gy``.
    """
    if not _config.is_validating() or _overwrote_input(args, result):
        return None
    name = _op_name(op, method)
    x = args[0]
    if method in ("derivative", "sum_grad", "jacobian"):
        d = result.d.reshape(np.shape(x)) if method == "jacobian" else result
        return _validated(name, lambda: check_diagonal(op, d, x, n_probes=1, name=name))
    if method in ("jvp", "vjp", "value_and_vjp"):
        r = result[1] if method == "value_and_vjp" else result
        return _validated(name, lambda: check_jvp(op, r, (x,), (args[1],), name=name))
    raise ValueError(f"unknown unary method {method!r}")


def _zero_tangent(v):
    return 0.0 if np.ndim(v) == 0 and not isinstance(v, np.ndarray) else np.zeros(np.shape(v))


def _cross_check_binary(op, method, args, result):
    """Validation hook of an element-wise binary op ``y = f(w) ○ g(x)``.

    ``method`` and ``args``: ``"jvp"`` ``(w, x, dw, dx)`` (a None tangent is zero),
    ``"vjp"`` ``(w, x, gy)``, ``"sum_grad"`` ``(w, x)``, ``"jacobian"`` ``(w, x)``
    (``result`` the pair of ``Diagonal``/``Column``). An array operand's cotangent is
    checked entry by entry (``gw = J_w gy`` since ``J_w`` is diagonal); a scalar
    operand's (the §4.3 sum) through the dot-product identity.
    """
    if not _config.is_validating() or _overwrote_input(args, result):
        return None
    name = _op_name(op, method)
    w, x = args[0], args[1]
    if method == "jvp":
        dw = args[2] if args[2] is not None else _zero_tangent(w)
        dx = args[3] if args[3] is not None else _zero_tangent(x)
        return _validated(name, lambda: check_jvp(op, result, (w, x), (dw, dx), name=name))
    if method == "jacobian":
        reports = []
        for k, (J, operand) in enumerate(zip(result, (w, x))):
            tan = [_zero_tangent(w), _zero_tangent(x)]
            scalar = np.ndim(operand) == 0
            tan[k] = 1.0 if scalar else np.ones(np.shape(operand))
            vals = J.c if scalar else J.d
            nm = f"{name}[{'wx'[k]}]"
            reports.append(
                _validated(
                    nm, lambda: check_jvp(op, vals, (w, x), tuple(tan), name=nm)  # noqa: B023
                )
            )
        return reports
    if method in ("vjp", "sum_grad"):
        shape = np.broadcast_shapes(np.shape(w), np.shape(x))
        gy = args[2] if method == "vjp" else np.ones(shape)
        reports = []
        for k, operand in enumerate((w, x)):
            nm = f"{name}[{'wx'[k]}]"
            other = (w, x)[1 - k]

            def fk(v, k=k, other=other):
                return op(v, other) if k == 0 else op(other, v)

            if np.ndim(operand) == 0:
                rep = lambda: check_vjp(  # noqa: E731
                    fk, (result[k],), (operand,), gy, n_probes=2, full=False, name=nm
                )
            else:
                gyk = np.broadcast_to(np.asarray(gy), shape)
                rep = lambda: check_jvp(fk, result[k], (operand,), (gyk,), name=nm)  # noqa: E731
            reports.append(_validated(nm, rep))
        return reports
    raise ValueError(f"unknown binary method {method!r}")


# --------------------------------------------------------------------------------------
# selfcheck: every kernel of the library against finite differences
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SelfCheckRow:
    """One line of :func:`selfcheck`: an operation/method in one dtype."""

    op: str
    dtype: str
    max_rel_err: float
    bound: float
    status: str  # "passed", "FAILED", "skipped" or "error"
    kinks: int = 0
    detail: str = ""
    report: Optional[GradCheckReport] = None

    @property
    def ok(self):
        return self.status in ("passed", "skipped")


@dataclasses.dataclass
class SelfCheckReport:
    """All rows of :func:`selfcheck`; truthy when nothing failed (skips are not failures).

    ``str(report)`` is the table that ``fastjac check`` prints.
    """

    rows: List[SelfCheckRow]

    @property
    def passed(self):
        return all(r.ok for r in self.rows)

    def __bool__(self):
        return self.passed

    @property
    def failures(self):
        return [r for r in self.rows if not r.ok]

    def __str__(self):
        w = max([len("op")] + [len(r.op) for r in self.rows])
        head = f"{'op':<{w}}  {'dtype':<7}  {'max rel err':>11}  {'bound':>9}  status"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            if r.status == "skipped":
                err = bnd = "-"
            else:
                err = f"{r.max_rel_err:.2e}"
                bnd = f"{r.bound:.1e}"
            status = r.status
            if r.kinks:
                status += f" ({r.kinks} kinks)"
            if r.detail:
                status += f"  [{r.detail}]"
            lines.append(f"{r.op:<{w}}  {r.dtype:<7}  {err:>11}  {bnd:>9}  {status}")
        n = {s: sum(r.status == s for r in self.rows) for s in ("passed", "FAILED", "error")}
        n_skip = sum(r.status == "skipped" for r in self.rows)
        lines.append("-" * len(head))
        lines.append(
            f"{'ALL PASSED' if self.passed else 'FAILURES'}: {n['passed']} passed, "
            f"{n['FAILED']} failed, {n['error']} errors, {n_skip} skipped"
        )
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


class _Skip(Exception):
    pass


def _need(obj, *path):
    """``obj.a.b...`` or raise _Skip naming what is missing."""
    for name in path:
        if not hasattr(obj, name):
            raise _Skip(f"{'.'.join(path)} not available")
        obj = getattr(obj, name)
    return obj


_POSITIVE = ("log", "sqrt", "reciprocal")
_KINKED = ("relu", "abs")


def _unary_point(name, n, dtype, rng):
    if name in _POSITIVE:
        x = rng.uniform(0.5, 3.0, n)
    else:
        x = rng.uniform(-2.0, 2.0, n)
        if name in _KINKED:
            # away from the kink, plus one point exactly on it (reported as a kink)
            x = np.sign(x) * (0.1 + np.abs(x))
            x[0] = 0.0
    return x.astype(dtype)


def _selfcheck_cases(dtype, rng, n=24):
    """Yield ``(label, thunk)``; each thunk returns a GradCheckReport or raises _Skip."""
    import importlib

    try:
        ops = importlib.import_module("fastjac.ops")
    except ImportError as exc:
        msg = f"fastjac.ops not importable ({exc})"

        def skip(msg=msg):
            raise _Skip(msg)

        yield "ops", skip
        return
    dt = np.dtype(dtype)
    unary = getattr(ops, "UNARY", {})
    binary = getattr(ops, "BINARY", {})
    for name in sorted(unary):
        op = unary[name]
        x = _unary_point(name, n, dt, rng)
        t = rng.standard_normal(n).astype(dt)
        yield f"{name}.derivative", lambda op=op, x=x: check_diagonal(
            op, _need(op, "derivative")(x), x, name=f"{op.name}.derivative"
        )
        yield f"{name}.jvp", lambda op=op, x=x, t=t: check_jvp(
            op, lambda p, tt: _need(op, "jvp")(p[0], tt[0]), (x,), (t,), name=f"{op.name}.jvp"
        )
        yield f"{name}.vjp", lambda op=op, x=x: check_vjp(
            op, lambda p, c: (_need(op, "vjp")(p[0], c),), (x,), seed=1, name=f"{op.name}.vjp"
        )
    for name in sorted(binary):
        op = binary[name]
        yield from _binary_cases(op, name, dt, rng, n)
    if hasattr(ops, "elementwise") and "mul" in binary and "exp" in unary and "sin" in unary:
        fused = ops.elementwise(binary["mul"], f=unary["exp"], g=unary["sin"])
        yield from _binary_cases(fused, "elementwise(mul, f=exp, g=sin)", dt, rng, n)
    else:
        yield "elementwise(mul, f=exp, g=sin)", _skipper("fastjac.elementwise not available")
    if hasattr(ops, "chain") and "sin" in unary and "square" in unary:
        h = ops.chain(unary["sin"], unary["square"])
        x = rng.uniform(-1.5, 1.5, n).astype(dt)
        label = "chain(sin, square)"
        yield f"{label}.derivative", lambda h=h, x=x: check_diagonal(
            h, h.derivative(x), x, name=f"{label}.derivative"
        )
        yield f"{label}.vjp", lambda h=h, x=x: check_vjp(
            h, lambda p, c: (h.vjp(p[0], c),), (x,), seed=2, name=f"{label}.vjp"
        )
    else:
        yield "chain(sin, square)", _skipper("fastjac.chain not available")
    dot = getattr(ops, "dot", None)
    if dot is not None:
        w = rng.standard_normal(n).astype(dt)
        x = rng.standard_normal(n).astype(dt)
        yield "dot.grad", lambda: check_vjp(
            dot, _need(dot, "grad")(w, x), (w, x), 1.0, name="dot.grad"
        )
        dw = rng.standard_normal(n).astype(dt)
        dx = rng.standard_normal(n).astype(dt)
        yield "dot.jvp", lambda: check_jvp(
            dot, lambda p, tt: _need(dot, "jvp")(p[0], p[1], tt[0], tt[1]), (w, x), (dw, dx),
            name="dot.jvp",
        )
    else:
        yield "dot.grad", _skipper("fastjac.dot not available")
    yield from _neuron_cases(dt, rng)
    yield from _fuse_cases(dt, rng, n)


# ---- fj.fuse cases (issue 14; owned by the fuse module) ----------------------------------
def _fuse_cases(dt, rng, n):
    """Fused expressions: the paper's x + x² (§4.5.2), the issue's exp(w)·sin(x) + w/x
    with array and scalar inputs, and a three-input DAG with shared subexpressions."""
    import importlib

    try:
        fz = importlib.import_module("fastjac.fuse")
        ops = importlib.import_module("fastjac.ops")
    except ImportError as exc:
        yield "fuse", _skipper(f"fastjac.fuse not importable ({exc})")
        return
    U, B = ops.UNARY, ops.BINARY
    paper = fz.fuse(lambda x: x + x ** 2)
    issue = fz.fuse(lambda w, x: U["exp"](w) * U["sin"](x) + w / x)
    three = fz.fuse(lambda a, b, c: U["tanh"](a) * b + B["maximum"](a * b, c) * c
                    - U["sqrt"](b * b + 1.0))
    x = rng.uniform(-2.0, 2.0, n).astype(dt)
    w = rng.uniform(-2.0, 2.0, n).astype(dt)
    xd = (np.sign(x) * (0.5 + np.abs(x))).astype(dt)
    c3 = rng.uniform(-2.0, 2.0, n)
    c3 = np.where(np.abs(c3 - w * x) < 0.1, c3 + 0.3, c3).astype(dt)
    t = rng.standard_normal(n).astype(dt)
    s = float(rng.uniform(0.5, 1.5))
    yield "fuse(x + x**2).derivative", lambda: check_diagonal(
        paper, paper.derivative(x), x, name="fuse(x + x**2).derivative")
    label = "fuse(exp(w)*sin(x) + w/x)"
    yield f"{label}.vjp", lambda: check_vjp(
        issue, issue.vjp, (w, xd), seed=5, name=f"{label}.vjp")
    yield f"{label}.vjp[scalar w]", lambda: check_vjp(
        issue, issue.vjp, (s, xd), seed=6, name=f"{label}.vjp[scalar w]")
    yield f"{label}.jvp", lambda: check_jvp(
        issue, lambda p, tt: issue.jvp(*p, *tt), (w, xd), (t, t[::-1].copy()),
        name=f"{label}.jvp")
    yield "fuse(3 inputs).vjp", lambda: check_vjp(
        three, three.vjp, (w, x, c3), seed=7, name="fuse(3 inputs).vjp")
# ---- end of fj.fuse cases ------------------------------------------------------------------


def _skipper(msg):
    def skip():
        raise _Skip(msg)

    return skip


def _binary_cases(op, label, dt, rng, n):
    w = rng.uniform(-2.0, 2.0, n)
    x = rng.uniform(-2.0, 2.0, n)
    if "div" in label:
        x = np.sign(x) * (0.5 + np.abs(x))
    if label in ("maximum", "minimum"):
        x = np.where(np.abs(w - x) < 0.1, x + 0.3, x)
        x[0] = w[0]  # one tie: a kink, reported apart
    w = w.astype(dt)
    x = x.astype(dt)
    dw = rng.standard_normal(n).astype(dt)
    dx = rng.standard_normal(n).astype(dt)
    s = float(rng.uniform(0.5, 1.5))  # a Python-float operand: scalar expansion (§4.3)

    def jvp():
        f = _need(op, "jvp")
        return check_jvp(
            op, lambda p, t: f(p[0], p[1], t[0], t[1]), (w, x), (dw, dx), name=f"{label}.jvp"
        )

    def vjp():
        f = _need(op, "vjp")
        return check_vjp(op, lambda p, c: f(p[0], p[1], c), (w, x), seed=3, name=f"{label}.vjp")

    def vjp_scalar_w():
        f = _need(op, "vjp")
        return check_vjp(
            op, lambda p, c: f(p[0], p[1], c), (s, x), seed=4, name=f"{label}.vjp[scalar w]"
        )

    def vjp_scalar_x():
        f = _need(op, "vjp")
        xs = s if "div" not in label else s + 0.5
        return check_vjp(
            op, lambda p, c: f(p[0], p[1], c), (w, xs), seed=5, name=f"{label}.vjp[scalar x]"
        )

    def sum_grad():
        f = _need(op, "sum_grad")
        return check_vjp(
            lambda a, b: np.sum(np.asarray(op(a, b), dtype=F64)),
            f(w, x),
            (w, x),
            1.0,
            name=f"{label}.sum_grad",
        )

    yield f"{label}.jvp", jvp
    yield f"{label}.vjp", vjp
    yield f"{label}.vjp[scalar w]", vjp_scalar_w
    yield f"{label}.vjp[scalar x]", vjp_scalar_x
    yield f"{label}.sum_grad", sum_grad


def _neuron_cases(dt, rng, N=40, n=5):
    import importlib

    try:
        neuron = importlib.import_module("fastjac.neuron")
    except ImportError:
        yield "neuron", _skipper("fastjac.neuron not available yet")
        return
    X = rng.standard_normal((N, n)).astype(dt)
    y = rng.standard_normal(N).astype(dt)
    w = rng.standard_normal(n).astype(dt)
    b = float(rng.uniform(-0.3, 0.3))

    def act_jac():
        act = _need(neuron, "activation")
        Jw, Jb = _need(neuron, "activation_jacobian")(X, w, b)
        v = rng.standard_normal(n).astype(dt)
        db = float(rng.standard_normal())
        an = np.asarray(Jw @ v, dtype=F64) + np.asarray(Jb @ np.array([db]), dtype=F64)
        return check_jvp(
            lambda ww, bb: act(X, ww, bb), an, (w, b), (v, db), name="neuron.activation_jacobian"
        )

    def loss_grad():
        loss = _need(neuron, "loss")
        lg = _need(neuron, "loss_grad")
        # (gw, gb) against the loss's differences in w (float32: on the float64 re-run,
        # X and y held fixed) and b (a Python float: the scalar gradient of §6.2)
        return check_vjp(
            lambda ww, bb: loss(X, y, ww, bb),
            lambda p, ct: tuple(float(ct) * np.asarray(g, dtype=F64) for g in lg(X, y, *p)[1:3]),
            (w, b),
            1.0,
            seed=6,
            name="neuron.loss_grad",
        )

    yield "neuron.activation_jacobian", act_jac
    yield "neuron.loss_grad", loss_grad


def selfcheck(dtypes=("float64", "float32"), seed=0):
    """Validate every kernel of the library against central finite differences.

    Runs :func:`check_diagonal`, :func:`check_jvp`, :func:`check_vjp` and
    :func:`check_grad` on each unary function (``derivative``, ``jvp``, ``vjp``), each
    binary operator (``jvp``, ``vjp`` with array and scalar operands, ``sum_grad``), a
    fused ``elementwise`` op, a ``chain``, ``dot`` and the ReLU neuron, at random points
    away from kinks and poles (positive inputs for log, sqrt and reciprocal) plus one
    point exactly on each kink (ReLU and abs at 0, a max/min tie), which must be
    reported as a kink. Parts of the library that do not exist (yet) appear as
    "skipped" rows.

    Parameters
    ----------
    dtypes : sequence of str, default ("float64", "float32")
        Input dtypes to check; float32 kernels are compared with the float64 run of the
        same operation.
    seed : int, default 0
        Seed of the random points.

    Returns
    -------
    SelfCheckReport
        Rows of (op, dtype, max rel err, bound, status); truthy when nothing failed.
    """
    rows = []
    for dtype in dtypes:
        dt = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        for label, thunk in _selfcheck_cases(dt, rng):
            try:
                with _config.validating(False):
                    rep = thunk()
            except _Skip as exc:
                rows.append(SelfCheckRow(label, dt.name, 0.0, 0.0, "skipped", detail=str(exc)))
                continue
            except Exception as exc:  # a crash is a failure, shown in the table
                rows.append(
                    SelfCheckRow(
                        label, dt.name, float("nan"), 0.0, "error",
                        detail=f"{type(exc).__name__}: {exc}"[:120],
                    )
                )
                continue
            detail = "; ".join(p for p in rep.problems[1:] if p)[:120] if not rep.passed else ""
            rows.append(
                SelfCheckRow(
                    label,
                    dt.name,
                    rep.max_rel_err,
                    rep.rel_bound,
                    "passed" if rep.passed else "FAILED",
                    kinks=len(rep.kinks),
                    detail=detail,
                    report=rep,
                )
            )
    return SelfCheckReport(rows)


def main_check(argv=None):
    """``fastjac check``: print the :func:`selfcheck` table; 0 when all passed, else 1.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments after ``check`` (default ``sys.argv[1:]``):
        ``--dtype {float64,float32}`` (repeatable), ``--seed N``, ``-v`` (print the full
        report of every failing row).

    Returns
    -------
    int
        The process exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="fastjac check",
        description="Validate every fastjac kernel against central finite differences.",
    )
    parser.add_argument(
        "--dtype", action="append", choices=("float64", "float32"),
        help="dtype to check (repeatable; default both)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random points")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failing reports")
    opts = parser.parse_args(argv)
    report = selfcheck(dtypes=tuple(opts.dtype or ("float64", "float32")), seed=opts.seed)
    print(report)
    if opts.verbose:
        for row in report.failures:
            if row.report is not None:
                print()
                print(row.report)
    return 0 if report.passed else 1


def _cross_check_neuron(method, args, result, seed=0):
    """Validation hook of the ReLU neuron (paper §5, §6), for ``fastjac.neuron``.

    ``method`` and ``args``:

    * ``"activation_jacobian"``, ``(X, w, b)``, ``result = (Jw, Jb)``: ``Jw @ v + Jb db``
      against the derivative of ``activation(X, w, b)`` along a random ``(v, db)``;
    * ``"loss_grad"``, ``(X, y, w, b)``, ``result = (C, gw, gb)`` or ``(C, gw, gb, gX)``:
      ``C`` against ``loss(X, y, w, b)`` and the gradients that are not None against the
      loss's finite differences (dot-product identity on random directions, the other
      arguments held fixed). Samples with ``w·x_i + b`` within a step of 0 sit on a
      kink of the (scalar) loss along every direction: they are left out, and the rest
      is checked against the gradient minus their §6 terms.

    ``y`` (and ``X`` unless ``gX`` is given) is held fixed. Uses
    ``fastjac.neuron.activation`` / ``loss`` as the value functions, imported when
    first needed. A call whose ``out=`` overwrote an input is not checked.
    """
    if not _config.is_validating() or _overwrote_input(args, tuple(result)):
        return None
    if not all(np.isfinite(np.asarray(a, dtype=F64)).all() for a in args):
        return None  # NaN/inf inputs: finite differences have nothing to compare
    import importlib

    neuron = importlib.import_module("fastjac.neuron")
    name = f"neuron.{method}"
    if method == "activation_jacobian":
        X, w, b = args
        Jw, Jb = result
        rng = np.random.default_rng(seed)
        v = rng.standard_normal(np.shape(w))
        db = float(rng.standard_normal())
        an = np.asarray(Jw @ v, dtype=F64) + np.asarray(Jb @ np.array([db]), dtype=F64)
        return _validated(
            name,
            lambda: check_jvp(
                lambda ww, bb: neuron.activation(X, ww, bb), an, (w, float(b)), (v, db),
                name=name,
            ),
        )
    if method == "loss_grad":
        X, y, w, b = args
        C = result[0]
        grads = {"w": result[1], "b": result[2], "X": result[3] if len(result) > 3 else None}
        names = [k for k in ("w", "b", "X") if grads[k] is not None]
        # The loss is one number, so a sample within a step of its kink (w·x_i + b ≈ 0)
        # would make every probe direction a kink. Such samples are left out: the check
        # runs on the loss of the others, (|S|/N) loss(X_S, y_S, w, b), against the
        # gradient minus the left-out samples' own §6 terms (computed here in double).
        X64 = np.asarray(X, dtype=F64)
        y64 = np.asarray(y, dtype=F64)
        w64 = np.asarray(w, dtype=F64)
        N = y64.size
        with np.errstate(all="ignore"):
            try:  # steps are float64 ones when the loss runs in float64 (the reference)
                ref64 = np.asarray(neuron.loss(X64, y64, w64, float(b))).dtype == F64
            except Exception:
                ref64 = False
            dt = np.result_type(np.asarray(X).dtype, np.asarray(w).dtype)
            h = 4.0 * _eps(F64 if ref64 else dt) ** (1 / 3)
            z = X64 @ w64 + float(b)
            size = np.abs(X64) @ np.abs(w64) + abs(float(b))
            reach = np.abs(X64) @ np.maximum(1.0, np.abs(w64)) + max(1.0, abs(float(b)))
            if "X" in names:
                reach = reach + np.maximum(1.0, np.abs(X64)) @ np.abs(w64)
            near = np.abs(z) <= h * reach
            # samples whose side of the kink depends on the rounding of w·x_i + b: the
            # kernel may have taken either branch, both are tried
            unsure = np.flatnonzero(near & (np.abs(z) <= 64 * _eps(F64) * size))
        keep = ~near
        notes = []
        if near.any():
            notes.append(
                f"{int(near.sum())} of {N} samples within a step of the ReLU kink "
                "(w·x_i + b ~ 0) were left out of the gradient check"
            )
        X_S = X[keep] if isinstance(X, np.ndarray) else X64[keep]
        y_S = y[keep] if isinstance(y, np.ndarray) else y64[keep]
        point = {"X": X_S, "w": w, "b": float(b)}
        frac = float(keep.sum()) / N if N else 0.0
        if not keep.any() or unsure.size > 4:
            if names:
                notes.append("gradient not checked: too many samples on the kink")
            names = []

        def value(*vals):
            at = dict(point, **dict(zip(names, vals)))
            return frac * neuron.loss(at["X"], y_S, at["w"], at["b"])

        def adjusted(active):
            e_near = np.where(near & active, z - y64, 0.0) * (2.0 / N)
            return {
                "w": None if grads["w"] is None else np.asarray(grads["w"]) - e_near @ X64,
                "b": None if grads["b"] is None else float(grads["b"]) - float(np.sum(e_near)),
                "X": None if grads["X"] is None else np.asarray(grads["X"])[keep],
            }

        def make():
            with np.errstate(all="ignore"):
                C_ref = float(neuron.loss(X, y, w, b))
            rep = GradCheckReport(name=name, passed=True)
            if names:
                for k in range(2 ** unsure.size):
                    active = z > 0
                    for bit, i in enumerate(unsure):
                        active[i] = bool(k >> bit & 1)
                    adj = adjusted(active)
                    r = check_vjp(
                        value,
                        tuple(adj[n] for n in names),
                        tuple(point[n] for n in names),
                        1.0,
                        n_probes=3,
                        full=False,
                        seed=seed,
                        name=name,
                    )
                    if k == 0 or r.passed:
                        rep = r
                    if r.passed:
                        break
            rep.notes.extend(notes)
            eps = _eps(np.asarray(C).dtype)
            tol = DEFAULT_ULPS * eps * max(1.0, abs(C_ref)) * max(1, int(np.size(y))) ** 0.5
            if not abs(float(C) - C_ref) <= tol:
                rep.passed = False
                rep.problems.append(f"loss value {float(C)!r} != loss(X, y, w, b) = {C_ref!r}")
            return rep

        return _validated(name, make)
    raise ValueError(f"unknown neuron method {method!r}")
