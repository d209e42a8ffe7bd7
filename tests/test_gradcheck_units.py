"""Unit tests of the referee's parts: the report (fastjac._report), the finite-difference
engine (fastjac._fd) and the validation hooks, value by value.

The public checks are tested end to end in test_gradcheck.py and test_referee.py; these
tests pin each formula and each threshold of the parts directly, with inputs built so that
a changed constant or comparison gives a different value (they were written against the
survivors of the mutation run of gradcheck, ``python -m fastjac._dev.mutate gradcheck``).
Equivalent mutants (no input can tell them apart) are listed in comments next to the
test of the function they live in.
"""

import math

import numpy as np
import pytest

from fastjac import _fd
from fastjac._report import Entry, GradCheckReport, _finish, _fmt, _fmt_index

F64 = np.float64
TINY32 = float(np.finfo(np.float32).tiny)
TINY64 = float(np.finfo(np.float64).tiny)

# ---------------------------------------------------------------------------------------
# _report
# ---------------------------------------------------------------------------------------


def _full_report(**kw):
    fields = dict(
        name="chk", passed=False, max_abs_err=1.5e-3, max_rel_err=2.5e-4,
        worst=[
            Entry(index=(3,), x=0.5, analytic=1.0, numeric=1.25, abs_err=0.25, rel_err=0.2,
                  bound=0.125),
            Entry(index=(1, 2), x=None, analytic=-2.0, numeric=-2.0, abs_err=0.0,
                  rel_err=0.0, bound=1e-9),
        ],
        n_evals=7, kinks=list(range(10)), n_checked=4, dtype="float32",
        reference="float64 re-run", max_fd_bound=1e-8, max_round_bound=2e-7, max_ratio=2.0,
        rel_bound=3e-7, fd_rel_err=1e-10, round_rel_err=5e-8, problems=["p one"],
        nonfinite=[5, (6,)] + list(range(100, 110)), notes=["n one", "n two"],
    )
    fields.update(kw)
    return GradCheckReport(**fields)


FULL_TEXT = """\
chk: FAILED  (4 entries compared, 10 at kinks, 7 evaluations of f, dtype float32, differences: float64 re-run)
  !! p one
  max abs err 1.500e-03   max rel err 2.500e-04   max err/bound 2
  bound = finite-difference error (max 1.00e-08) + analytic rounding (max 2.00e-07)
           index           x    analytic     numeric     abs err     rel err       bound     
               3   5.000e-01   1.000e+00   1.250e+00   2.500e-01   2.000e-01   1.250e-01 FAIL
          (1, 2)           -  -2.000e+00  -2.000e+00   0.000e+00   0.000e+00   1.000e-09   ok
  kinks (not compared): 0, 1, 2, 3, 4, 5, 6, 7, ... (10 in all)
  f not finite on the step (not compared): 5, 6, 100, 101, 102, 103, 104, 105
  measured apart: float64 analytic vs finite differences, max rel err 1.00e-10
                  float32 vs float64 analytic (rounding), max rel err 5.00e-08
  note: n one
  note: n two"""


def test_report_text_every_line():
    r = _full_report()
    assert str(r) == FULL_TEXT
    assert not r
    printed = []

    class P:
        def text(self, s):
            printed.append(s)

    r._repr_pretty_(P(), False)
    assert printed == [FULL_TEXT]


def test_report_text_minimal_and_edges():
    r = GradCheckReport(name="x", passed=True)
    assert r
    assert str(r) == (
        "x: PASSED  (0 entries compared, 0 at kinks, 0 evaluations of f, dtype ?, "
        "differences: none)\n"
        "  max abs err 0.000e+00   max rel err 0.000e+00   max err/bound 0\n"
        "  bound = finite-difference error (max 0.00e+00) + analytic rounding (max 0.00e+00)"
    )
    # exactly 8 kinks: all shown, no "in all"; 9: the ninth is left out
    text8 = str(GradCheckReport(name="x", passed=True, kinks=list(range(8))))
    assert text8.endswith("  kinks (not compared): 0, 1, 2, 3, 4, 5, 6, 7")
    text9 = str(GradCheckReport(name="x", passed=True, kinks=list(range(9))))
    assert text9.endswith("  kinks (not compared): 0, 1, 2, 3, 4, 5, 6, 7, ... (9 in all)")


def test_entry_ok_and_formatting_helpers():
    e = dict(index=0, x=None, analytic=1.0, numeric=1.0, rel_err=0.0)
    assert Entry(abs_err=0.5, bound=0.5, **e).ok is True  # equal to the bound passes
    assert Entry(abs_err=np.nextafter(0.5, 1), bound=0.5, **e).ok is False
    assert _fmt(None) == "          -" and _fmt(None, 3) == "  -"
    assert _fmt(np.float32(0.5)) == "  5.000e-01" and _fmt(2.0, 9) == "2.000e+00"
    assert _fmt(7) == "          7" and _fmt("ab", 4) == "  ab"
    assert _fmt_index((4,)) == "4" and _fmt_index((4, 5)) == "(4, 5)" and _fmt_index(3) == "3"


def _fin(analytic, numeric, bound, *, kink=None, finite=None, rtol=None, atol=None,
         dtype="float64", fd=None, rb=None, **kw):
    n = len(analytic)
    return _finish(
        "t", lambda i: ("i", i), np.arange(n, dtype=F64), analytic, numeric, bound,
        np.zeros(n) if fd is None else fd, np.zeros(n) if rb is None else rb,
        np.zeros(n, bool) if kink is None else np.asarray(kink),
        np.ones(n, bool) if finite is None else np.asarray(finite),
        rtol, atol, 13, dtype, "none", **kw,
    )


def test_finish_fields():
    a = [1.0, 2.0, -4.0, 0.0, 5.0, 6.0, 7.0, 8.0]
    num = [1.0, 2.5, -4.0, 0.0, 5.0, 6.5, 7.0, 8.0]
    bound = [0.1, 1.0, 0.1, 0.1, 0.1, 0.25, 0.1, 0.1]
    fd = [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0]
    rb = [0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0]
    kink = [False] * 6 + [True, False]
    finite = [True] * 7 + [False]
    r = _fin(a, num, bound, kink=kink, finite=finite, fd=fd, rb=rb,
             problems=("given",), notes=("n0",), kink_indices=[(9,)])
    assert not r.passed and not r
    # entry 5: error 0.5 over a bound 0.25, ratio 2; entry 1: ratio 0.5
    assert r.problems == ["1 of 6 entries exceed their bound", "given"]
    assert r.n_checked == 6 and r.n_evals == 13 and r.dtype == "float64" and r.name == "t"
    assert r.reference == "none"
    assert r.max_abs_err == 0.5 and r.max_rel_err == 0.5 / 2.5
    assert r.max_ratio == 2.0
    assert r.max_fd_bound == 0.5 and r.max_round_bound == 0.75  # 6 and 7 not compared
    assert r.rel_bound == 1.0 / 2.5  # bound of the entry of largest rel err, over its scale
    assert [e.index for e in r.worst] == [("i", 5), ("i", 1), ("i", 0), ("i", 2), ("i", 3)]
    w = r.worst[0]
    assert (w.x, w.analytic, w.numeric, w.abs_err, w.rel_err, w.bound) == (
        5.0, 6.0, 6.5, 0.5, 0.5 / 6.5, 0.25)
    assert r.worst[1].ok and not w.ok
    assert r.kinks == [(9,), ("i", 6)]
    assert r.nonfinite == [("i", 7)]
    assert r.notes == ["n0"]
    # xs None: Entry.x is None
    r2 = _finish("t", int, None, [1.0], [1.0], [1.0], [0.0], [0.0], np.array([False]),
                 np.array([True]),
                 None, None, 1, "float64", "none")
    assert r2.worst[0].x is None and r2.passed and r2.problems == []


def test_finish_rtol_atol():
    a, num, b = [1.0, 10.0], [1.5, 12.0], [0.0, 0.0]
    assert not _fin(a, num, b, atol=1.0)  # 2.0 > 1
    assert _fin(a, num, b, atol=2.0)
    r = _fin(a, num, b, rtol=0.25)  # 0.25 * 12 = 3 >= 2, but 0.25 * 1.5 < 0.5
    assert not r.passed and r.problems[0] == "1 of 2 entries exceed their bound"
    assert r.worst[0].index == ("i", 0) and r.worst[1].bound == 3.0
    assert _fin(a, num, b, rtol=1 / 3)
    r = _fin(a, num, b, rtol=0.1, atol=0.4)  # 0.4 + 0.15 >= 0.5, 0.4 + 1.2 < 2
    assert not r.passed and r.worst[0].index == ("i", 1) and r.worst[0].bound == 0.4 + 1.2
    assert _fin(a, num, b, rtol=0.1, atol=0.8)
    # the user's tolerance never tightens the computed bound
    assert _fin(a, num, [0.5, 2.0], rtol=0.0, atol=0.0)


def test_finish_subnormal_floor():
    # bound floor 4 * tiny of the analytic dtype: 4 tiny passes, 4.5 tiny fails
    for dtype, tiny in (("float32", TINY32), ("float64", TINY64), ("int64", TINY64),
                        ("", TINY64)):
        assert _fin([4 * tiny], [0.0], [0.0], dtype=dtype), dtype
        assert not _fin([4.5 * tiny], [0.0], [0.0], dtype=dtype), dtype
    r = _fin([4 * TINY64], [0.0], [0.0])
    assert r.worst[0].bound == 4 * TINY64 and r.max_ratio == 1.0


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_finish_unbounded_nan_analytic_and_nothing_compared():
    r = _fin([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [np.nan, 0.1, np.nan], notes=("first",))
    assert r.passed and r.n_checked == 1
    assert r.notes == ["first", "2 entries not compared: their finite-difference error "
                       "bound is not finite (x within a step of overflow)"]
    # a NaN bound at a kink or off the domain is not "unbounded"
    r = _fin([1.0, 2.0], [1.0, 2.0], [np.nan, np.nan], kink=[True, False], finite=[True, False])
    assert r.passed and r.n_checked == 0 and not any("overflow" in n for n in r.notes)
    assert r.notes == ["nothing was compared: every entry is at a kink or outside f's domain"]
    assert (r.max_abs_err, r.max_rel_err, r.max_fd_bound, r.max_round_bound,
            r.max_ratio, r.rel_bound, r.worst) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, [])
    # nothing to compare because there is nothing: no note
    r = _fin([], [], [])
    assert r.passed and r.notes == []
    # NaN analytic where f is finite: a failure and a problem
    r = _fin([np.nan, 1.0, np.inf], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1])
    assert not r.passed
    assert r.problems == ["2 of 3 entries exceed their bound",
                          "2 analytic value(s) are NaN/inf where f is finite"]
    assert r.max_ratio == math.inf and r.worst[0].index == ("i", 0)
    # a NaN analytic value has a NaN scale: its rel err counts as 0
    r = _fin([np.nan, 3.0], [2.0, 4.0], [0.5, 0.5])
    assert r.max_rel_err == 0.25 and r.rel_bound == 0.5 / 4.0
    # rel err NaN (inf - inf) beside a finite one: the finite one names rel_bound; all
    # NaN: no error (nanargmax would raise), the first entry's bound over an inf scale
    with np.errstate(invalid="ignore"):
        r = _fin([np.inf, 3.0], [np.inf, 4.0], [0.5, 0.5])
        assert r.rel_bound == 0.5 / 4.0
        r = _fin([np.inf, -np.inf], [np.inf, -np.inf], [0.5, 0.25])
    assert r.rel_bound == 0.0
    # largest rel err at a zero scale: the bound itself
    r = _fin([0.0, 1.0], [0.0, 1.0], [0.5, 0.25])
    assert r.max_rel_err == 0.0 and r.rel_bound == 0.5


def test_finish_keeps_the_five_worst_in_order():
    n = 7
    a = np.ones(n)
    num = 1.0 + np.array([0.1, 0.7, 0.3, 0.3, 0.6, 0.2, 0.5])
    r = _fin(a, num, np.ones(n))
    assert [e.index[1] for e in r.worst] == [1, 4, 6, 2, 3]  # ties keep their order
    assert r.passed and r.max_ratio == pytest.approx(0.7)
