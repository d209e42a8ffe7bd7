"""What a finite-difference check found: :class:`GradCheckReport` and its entries.

:func:`_finish` compares analytic values with numeric ones against their bounds, picks the
worst entries and builds the report; ``str(report)`` is the table a failing check shows.
The public checks that produce reports are in :mod:`fastjac.gradcheck`, which re-exports
these classes.
"""

import dataclasses
from typing import Any, List, Optional

import numpy as np

from ._fd import F64

__all__ = ["GradCheckError", "GradCheckReport", "Entry"]

_N_WORST = 5


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
