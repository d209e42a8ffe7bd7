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
import warnings

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


# Equivalent mutants of _finish: ``np.asarray`` of ``analytic``, ``numeric``, ``bound``,
# ``fd_bound`` or ``round_bound`` with ``dtype=None`` or none, or ``reshape(None)`` or
# ``reshape(-2)`` for ``reshape(-1)``: every caller passes a flat float64 array or a list of
# Python floats (and the largest of float32 or float64 values is the same number either way).
# ``if (idx.size) or True`` for ``if idx.size`` in ``max_fd_bound`` and ``max_round_bound``:
# ``_max`` of an empty selection is 0.0 already. In ``ratio``: ``bound >= 0`` for
# ``bound > 0``, and in the branch for a bound that is not positive ``err >= 0``,
# ``err > 1`` or ``None`` for ``err > 0`` and ``1.0`` for ``0.0``: after the floor
# ``4 * tiny`` every bound is positive or NaN, and a NaN bound's entry is not compared
# (``ratio`` is read only at compared entries).
# ``argsort(kind="STABLE")``: NumPy reads a sort kind by its first letter in either case.
# Of _Args.__init__: ``reshape(-2)`` for ``reshape(-1)``.


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
    # the only compared entry has a NaN rel err: its own bound over its (inf) scale
    with np.errstate(invalid="ignore"):
        r = _fin([np.inf], [np.inf], [0.5])
    assert r.rel_bound == 0.0 and r.n_checked == 1


def test_finish_keeps_the_five_worst_in_order():
    n = 7
    a = np.ones(n)
    num = 1.0 + np.array([0.1, 0.7, 0.3, 0.3, 0.6, 0.2, 0.5])
    r = _fin(a, num, np.ones(n))
    assert [e.index[1] for e in r.worst] == [1, 4, 6, 2, 3]  # ties keep their order
    assert r.passed and r.max_ratio == pytest.approx(0.7)


def test_finish_magnitudes_below_one_reference_and_no_warnings():
    # relative errors and the relative bound are measured below magnitude 1 too
    r = _fin([0.5], [0.25], [0.5])
    assert r.max_rel_err == 0.5 and r.rel_bound == 1.0
    r = _finish("t", int, None, [1.0], [1.0], [1.0], [0.0], [0.0], np.array([False]),
                np.array([True]), None, None, 1, "float64", "float64 re-run")
    assert r.reference == "float64 re-run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 0 / 0 in the relative error and the ratio, quietly 0
        r = _fin([0.0, 1.0], [0.0, 1.0], [0.1, 0.1])
        assert r.passed and r.max_rel_err == 0.0 and r.max_ratio == 0.0
        # an integer dtype takes float64's floor without asking NumPy's finfo for None
        # (a DeprecationWarning, to be an error)
        assert _fin([4 * TINY64], [0.0], [0.0], dtype="int64")


# ---------------------------------------------------------------------------------------
# _fd: the finite-difference engine
# ---------------------------------------------------------------------------------------


# Equivalent mutant of _float_dtype: ``kind in "XXiubXX"`` (``X`` is no dtype kind, and a
# kind is one character).


def test_eps_and_dtypes():
    assert _fd._eps(np.float64) == 2.0**-52 and _fd._eps(np.float32) == 2.0**-23
    assert _fd._eps(np.float16) == 2.0**-10 and _fd._eps(np.int32) == 2.0**-52
    assert _fd._eps("bool") == 2.0**-52
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # np.finfo(None) warns (DeprecationWarning)
        assert _fd._eps(np.int32) == 2.0**-52
    assert _fd._in_eps(np.float16) == 2.0**-23 and _fd._in_eps(np.float32) == 2.0**-23
    assert _fd._in_eps(np.float64) == 2.0**-52
    assert _fd._float_dtype(np.float16) == np.float16
    assert _fd._float_dtype(np.uint8) == F64 and _fd._float_dtype(bool) == F64
    assert _fd._float_dtype(np.int64) == F64
    with pytest.raises(TypeError, match=r"^finite differences need real inputs, got dtype "
                                        r"complex128$"):
        _fd._float_dtype(np.complex128)
    assert _fd._rel_step(None, 0.125) == 0.5 and _fd._rel_step(3, 0.125) == 3.0
    assert type(_fd._rel_step(3, 0.125)) is float
    assert _fd.DEFAULT_ULPS == 8 and _fd._LEVELS == (1.0, 0.5, 0.25)


# Equivalent mutant of _Args.as_dtype: ``f.astype(None)`` for ``f.astype(dtype)``: every
# caller asks for float64 (``as_dtype(F64)``), and None means float64.


# Equivalent mutants of _Args.__init__: ``kind not in "XXfiubXX"`` (``X`` is no dtype
# kind); ``astype(...)`` without ``copy=True`` (astype copies by default).


def test_no_primals_is_a_clear_error():
    from fastjac.gradcheck import check_jvp, check_vjp
    msg = r"^primals is empty: give at least one array or scalar$"
    with pytest.raises(ValueError, match=msg):
        check_jvp(lambda: np.ones(2), np.zeros(2), (), ())
    with pytest.raises(ValueError, match=msg):
        check_vjp(lambda: np.ones(2), lambda p, c: (), ())


def test_args_flat_pack_and_index():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = _fd._Args((x, 2.5, True, [1, 2], np.float32(3.0)))
    assert len(a) == 5
    assert a.scalar == [False, True, False, False, False]  # bools, float32 scalars are not
    assert a.shapes == [(2, 3), (), (), (2,), ()]
    assert a.sizes == [6, 1, 1, 2, 1]
    assert a.dtypes == [np.float32, F64, F64, F64, np.float32]
    assert _fd._Args((np.float64(2.0), 3)).scalar == [True, True]  # float subclass, int
    assert a.flat[0].base is not x and np.shares_memory(a.flat[0], x) is False
    p = a.pack(a.flat)
    assert p[0].shape == (2, 3) and p[0].dtype == np.float32 and p[1] == 2.5
    assert type(p[1]) is float and p[2].shape == () and p[3].shape == (2,)
    assert [f.dtype for f in a.as_dtype(F64)] == [F64] * 5
    assert [f.dtype for f in a.as_dtype(np.float32)] == [np.float32] * 5
    assert a.flat[4].shape == (1,)
    assert a.index(0, 4) == (0, 1, 1) and a.index(1, 0) == (1,) and a.index(3, 1) == (3, 1)
    one = _fd._Args((x,))
    assert one.index(0, 4) == (1, 1)
    assert _fd._Args((np.arange(3.0),)).index(0, 2) == 2
    assert _fd._Args((1.5,)).index(0, 0) == ()
    with pytest.raises(TypeError, match=r"^x: finite differences need real inputs, got "
                                        r"dtype complex128$"):
        _fd._Args((np.ones(2, complex),))
    with pytest.raises(TypeError, match=r"^primals\[1\]: finite differences need real"):
        _fd._Args((1.0, np.array(["a"])))
    with pytest.raises(TypeError, match=r"^x cannot be converted to a numeric array: "):
        _fd._Args(([[1.0], [1.0, 2.0]],))
    with pytest.raises(TypeError, match=r"^primals\[0\] cannot be converted"):
        _fd._Args(([[1.0], [1.0, 2.0]], 1.0))


# Equivalent mutants of _agree: ``np.errstate(invalid=None)`` or ``invalid=`` dropped:
# only finite values are subtracted and summed there, which can overflow but never give
# an invalid operation; ``both = isfinite(a) | isfinite(b)`` for ``&``: the line before
# returned unless the two finiteness masks are equal, so | and & give the same mask; the
# dtype of np.asarray: see test_referee.py.


def test_agree():
    eps32 = 2.0**-23
    tol = math.sqrt(eps32)
    z = np.zeros(3)
    assert _fd._agree(z, z.astype(np.float32), eps32)  # all zero: tolerance 0, equal
    a = np.array([1.0, -2.0, 0.0])
    # tolerance sqrt(eps) (|a_i| + max|a|): at entry 0, 3 * sqrt(eps)
    assert _fd._agree(a, a + [3 * tol, 0, 0], eps32)
    assert not _fd._agree(a, a + [3.0001 * tol, 0, 0], eps32)
    assert _fd._agree(a, a + [0, 0, 2 * tol], eps32)
    assert not _fd._agree(a, a + [0, 0, 2.0001 * tol], eps32)
    assert _fd._agree(a, a - [0, 4 * tol, 0], eps32)
    assert not _fd._agree(a, a - [0, 4.0001 * tol, 0], eps32)
    # finiteness must match; NaN/inf entries are not compared otherwise
    assert not _fd._agree([1.0, np.inf], [1.0, 1.0], eps32)
    assert not _fd._agree([1.0, 1.0], [1.0, np.nan], eps32)
    assert _fd._agree([1.0, np.inf, 50.0], [1.0, -np.inf, 50.0], eps32)
    assert _fd._agree([np.nan], [np.inf], eps32)  # nothing finite to compare
    assert _fd._agree([np.nan, 1.0], [np.nan, 1.0 + 2 * tol], eps32)
    assert not _fd._agree([np.nan, 1.0], [np.nan, 1.0 + 2.001 * tol], eps32)
    assert type(_fd._agree(a, a, eps32)) is bool
    # near overflow the differences overflow: no FloatingPointError in a caller's errstate
    with np.errstate(all="raise"):
        assert type(_fd._agree([1e308, 1.0], [-1e308, 1.0], eps32)) is bool


def test_coord_steps_are_exact_and_signed():
    rel = 2.0**-6
    x = np.array([0.0, -3.0, 2.5, 1e-3, -0.5, 100.0])
    out = _fd._coord_steps(x, rel)
    assert len(out) == 3
    for level, (xp, xm, h) in zip((1.0, 0.5, 0.25), out):
        assert xp.dtype == x.dtype and xm.dtype == x.dtype and h.dtype == F64
        np.testing.assert_array_equal(h, xp - x)
        np.testing.assert_array_equal(xm, x - h)
        want = level * rel * np.maximum(1.0, np.abs(x)) * np.where(x < 0, -1.0, 1.0)
        np.testing.assert_allclose(h, want, rtol=1e-12)
    assert out[0][2][0] == rel  # x = 0 steps up, by rel * 1
    # float32: the step is taken (and exact) in float32
    x32 = np.array([0.1, -3.0, 7.0], dtype=np.float32)
    for level, (xp, xm, h) in zip((1.0, 0.5, 0.25), _fd._coord_steps(x32, 1e-3)):
        assert xp.dtype == np.float32 and xm.dtype == np.float32
        np.testing.assert_array_equal(h, xp.astype(F64) - x32.astype(F64))
        np.testing.assert_array_equal(xm.astype(F64), x32.astype(F64) - h)
        want = level * 1e-3 * np.maximum(1.0, np.abs(x32.astype(F64))) * [1, -1, 1]
        np.testing.assert_allclose(h, want, rtol=5e-4)
    # non-finite x: no warning, NaN steps
    with np.errstate(all="raise"):
        xp, xm, h = _fd._coord_steps(np.array([np.inf, 1.0]), rel)[0]
    assert np.isnan(h[0]) and h[1] == rel
    # a float32 x within a step of float32's maximum: the step overflows quietly
    big = np.float32(3.4e38)
    with np.errstate(all="raise"):
        xp, xm, h = _fd._coord_steps(np.array([big, 1.0], dtype=np.float32), 1e-2)[0]
    assert xp[0] == np.inf and h[1] == np.float32(1.0 + 1e-2) - 1.0
    # the step is rounded to x's dtype, then added (two roundings): x = 0.75 + 2**-24 in
    # float32 has an odd last bit, a step just below half its spacing rounds to 2**-25,
    # and x + 2**-25 is a tie that goes to even, 0.75 + 2**-23
    w = np.array([0.75 + 2.0 ** -24], dtype=np.float32)
    xp, xm, h = _fd._coord_steps(w, 2.0 ** -25 - 2.0 ** -51)[0]
    assert float(xp[0]) == 0.75 + 2.0 ** -23 and h[0] == 2.0 ** -24


# Equivalent mutants of _coord_steps: ``astype(None)`` for ``astype(float64)`` (the scale
# of the step, ``h``); ``h = (xp - x).astype(None)`` (float64) for x's dtype: ``xp - x``
# is exact, so ``x - h`` rounds the same exact value to x's dtype either way.


def _line_reference(fp, fm, f0, h, rho, extra_F=None, F_floor=0.0):
    """The formulas of gradcheck's docstring, written out."""
    D = [(fp[k] - fm[k]) / (2 * h[k]) for k in range(3)]
    g = [(fp[k] + fm[k]) / 2 - f0 for k in range(3)]
    F = np.max(np.abs(np.concatenate([fp, fm, np.broadcast_to(f0, fp[:1].shape)])), axis=0)
    if extra_F is not None:
        F = np.maximum(F, extra_F(np.stack(D)))
    F = np.maximum(F, F_floor)
    ah = np.abs(h[0])
    numeric = (4 * D[1] - D[0]) / 3
    r_odd = np.abs(D[0] - 5 * D[1] + 4 * D[2])
    r_even = np.abs(g[0] - 20 * g[1] + 64 * g[2])
    bound = np.abs(D[0] - D[1]) + 3 * rho * F / ah + r_odd + r_even / ah
    kink = (r_odd > 27 * rho * F / ah + np.abs(D[0] - D[1])) | (
        r_even > 170 * rho * F + np.abs(g[0] - 4 * g[1]))
    return dict(numeric=numeric, fd_bound=bound, f2=8 * g[1] / ah**2, F=F, kink=kink, D=D)


@pytest.mark.parametrize("extra", [False, True])
def test_line_stats_formulas(extra):
    rng = np.random.default_rng(5)
    m = 200
    h0 = rng.uniform(0.01, 2, m) * rng.choice([-1, 1], m)
    h = [h0, h0 / 2, h0 / 4]
    f0 = rng.standard_normal(m)
    slope, curv = rng.standard_normal(m), rng.standard_normal(m)
    # smooth lines plus noise of varied size, some far above the kink thresholds
    noise = rng.standard_normal((2, 3, m)) * 10.0 ** rng.uniform(-16, -1, m)
    fp = np.stack([f0 + slope * hk + curv * hk**2 for hk in h]) + noise[0]
    fm = np.stack([f0 - slope * hk + curv * hk**2 for hk in h]) + noise[1]
    rho = 1e-10
    q = rng.uniform(1, 4, m)
    extra_F = (lambda D: q * np.abs(D[0])) if extra else None
    floor = 0.5 if extra else 0.0
    got = _fd._line_stats(fp, fm, f0, h, rho, extra_F=extra_F, F_floor=floor)
    want = _line_reference(fp, fm, f0, h, rho, extra_F, floor)
    np.testing.assert_allclose(got.numeric, want["numeric"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.fd_bound, want["fd_bound"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(got.f2, want["f2"], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got.F, want["F"])
    np.testing.assert_allclose(got.D, want["D"], rtol=1e-12)
    np.testing.assert_array_equal(got.kink, want["kink"])
    assert 20 < got.kink.sum() < m - 20
    assert got.finite.all()


def _odd_line(a, b=8.0):
    # h = 2, 1, 1/2: D = (b, 0, 2a), so B1 = b, r_odd = |b + 8 a|; g = 0
    fp = np.array([[2 * b], [0.0], [a]])
    return fp, -fp


def _even_line(c2, c0=12.0, c1=1.0):
    # D = 0; g = (c0, c1, c2): r_even = |c0 - 20 c1 + 64 c2|, lead |c0 - 4 c1|
    fp = np.array([[c0], [c1], [c2]])
    return fp, fp.copy()


def test_line_stats_kink_thresholds_exactly():
    h = [np.array([2.0]), np.array([1.0]), np.array([0.5])]
    rho, floor = 1.0 / 16, 256.0  # F = 256: odd threshold 27 rho F / 2 + |B1| = 216 + 8
    st = lambda fp, fm: _fd._line_stats(fp, fm, 0.0, h, rho, F_floor=floor)  # noqa: E731
    at = st(*_odd_line(27.0))  # r_odd = 224: on the threshold, not above
    assert at.F[0] == 256.0 and not at.kink[0]
    assert at.fd_bound[0] == 8.0 + 3 * rho * 256 / 2 + 224.0
    assert at.numeric[0] == -8.0 / 3 and at.f2[0] == 0.0
    assert st(*_odd_line(27.125)).kink[0]
    assert not st(*_odd_line(-27.0, b=0.0)).kink[0] and st(*_odd_line(-27.125, b=0.0)).kink[0]
    # even part: threshold 170 rho F + lead = 2720 + 8
    at = st(*_even_line(42.75))  # r_even = 2728
    assert not at.kink[0]
    assert at.fd_bound[0] == 3 * rho * 256 / 2 + 2728.0 / 2
    assert at.f2[0] == 8.0 * 1.0 / 4.0 and at.numeric[0] == 0.0
    assert st(*_even_line(43.0)).kink[0]
    # a kink is only reported where every value is finite
    fp, fm = _odd_line(100.0)
    assert st(fp, fm).kink[0]
    for arr in (fp, fm):
        bad = arr.copy()
        bad[1, 0] = np.inf
        r = st(bad, fm) if arr is fp else st(fp, bad)
        assert not r.kink[0] and not r.finite[0]
    r = _fd._line_stats(fp, fm, np.inf, h, rho, F_floor=floor)
    assert not r.kink[0] and not r.finite[0]
    # finiteness is per entry (a line through one entry's inf leaves the others alone),
    # and inf/NaN values warn of nothing
    fp2 = np.stack([np.r_[fp[k], 1.0 + 0.5 * h[k]] for k in range(3)])
    fm2 = np.stack([np.r_[fm[k], 1.0 - 0.5 * h[k]] for k in range(3)])
    fp2[1, 0] = np.inf
    fm2[2, 0] = -np.inf
    h2 = [np.r_[hk, hk] for hk in h]
    with np.errstate(all="raise"):
        r = _fd._line_stats(fp2, fm2, np.array([0.0, 1.0]), h2, rho, F_floor=floor)
    assert r.finite.tolist() == [False, True] and r.numeric[1] == 0.5


def test_round_allow():
    a = np.array([2.0, -1.0, np.nan, 1.0])
    f2 = np.array([0.5, -4.0, 1.0, np.inf])
    F = np.array([3.0, 1.0, 1.0, 1.0])
    q = np.array([2.0, 1.0, 1.0, 1.0])
    r = _fd._round_allow(a, f2, F, q, 0.25)
    np.testing.assert_array_equal(r, [0.25 * (2.0 + 1.0 + 1.5), 0.25 * 6.0, 0.0, 0.0])
    with np.errstate(all="raise"):  # overflow: no allowance (0), and no error
        r = _fd._round_allow(np.array([1e308]), np.array([0.0]), np.array([1e308]),
                             np.array([1.0]), 1.0)
    assert r.tolist() == [0.0]


# Equivalent mutants of _kink_mask: ``reshape(-2)`` for ``reshape(-1)`` (any negative size
# means "the rest"); the indices not flattened (``reshape(None)``): NumPy's fancy
# assignment ``out[idx] = True`` sets the same entries for an index array of any shape.


def test_analytic_array_and_kink_mask():
    v = _fd._analytic_array([1, 2], 2, "grad(x)")
    assert v.tolist() == [1, 2]
    with pytest.raises(TypeError, match=r"^grad\(x\) must be real, got dtype complex128$"):
        _fd._analytic_array(np.ones(2, complex), 2, "grad(x)")
    with pytest.raises(ValueError, match=r"^d has 3 entries, expected 2$"):
        _fd._analytic_array(np.ones(3), 2, "d")
    assert _fd._kink_mask(None, 3).tolist() == [False] * 3
    assert _fd._kink_mask(None, 3).dtype == bool
    mask = np.array([[True], [False]])
    got = _fd._kink_mask(mask, 2)
    assert got.tolist() == [True, False]
    got[1] = True
    assert mask.tolist() == [[True], [False]]  # a copy
    assert _fd._kink_mask([2, 0], 4).tolist() == [True, False, True, False]
    assert _fd._kink_mask(np.array([[1]]), 3).tolist() == [False, True, False]
    seen = []
    fn = lambda *a: seen.append(a) or np.array([False, True])  # noqa: E731
    assert _fd._kink_mask(fn, 2, "x", "y").tolist() == [False, True]
    assert seen == [("x", "y")]
    with pytest.raises(ValueError, match=r"^kinks mask has 3 entries, expected 2$"):
        _fd._kink_mask(np.ones(3, bool), 2)


# Equivalent mutants of _split_errors: ``a_ref.reshape(-2)`` for ``reshape(-1)`` (NumPy
# 2.x takes any negative size as "the rest", without a warning); in its ``rel``,
# ``np.where(scale >= 0, ...)`` for ``scale > 0`` and a divisor of 2.0 instead of 1.0
# where ``scale == 0``: a zero scale means both values are 0, so the error there is 0
# whatever it is divided by, and dividing 0 by 1 or 2 warns of nothing.


def test_split_errors_and_small_helpers():
    rep = lambda: GradCheckReport(name="t", passed=True)  # noqa: E731
    a_user = np.array([1.0, 2.0, 0.0, 5.0], dtype=np.float32).astype(F64)
    a_ref = np.array([1.0, 2.5, 0.0, 9.0])
    num = np.array([1.5, 2.5, 0.0, 1.0])
    mask = np.array([True, True, True, False])
    r = _fd._split_errors(rep(), lambda: a_ref, a_user, num, mask)
    assert r.fd_rel_err == 0.5 / 1.5 and r.round_rel_err == 0.5 / 2.5
    r = _fd._split_errors(rep(), lambda: a_ref.reshape(2, 2), a_user, num, mask)
    assert r.fd_rel_err == 0.5 / 1.5
    # relative to scales below 1 as well; a zero pair is 0 and warns of nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = _fd._split_errors(rep(), lambda: a_ref / 8, a_user / 8, num / 8, mask)
    assert r.fd_rel_err == 0.5 / 1.5 and r.round_rel_err == 0.5 / 2.5
    # non-finite values are left out
    r = _fd._split_errors(rep(), lambda: np.array([1.0, np.nan, 0.0, 9.0]), a_user, num,
                          mask)
    assert r.fd_rel_err == 0.5 / 1.5 and r.round_rel_err == 0.0
    r = _fd._split_errors(rep(), lambda: a_ref, a_user, np.array([np.inf, 2.5, 0, 1]), mask)
    assert r.fd_rel_err == 0.0 and r.round_rel_err == 0.5 / 2.5
    r = _fd._split_errors(rep(), lambda: a_ref, np.array([np.inf, 2.0, 0, 1]), num, mask)
    assert r.fd_rel_err == 0.0 and r.round_rel_err == 0.5 / 2.5

    def boom():
        raise TypeError("float32 only")

    for call in (boom, lambda: a_ref.astype(np.float32), lambda: a_ref[:3]):
        r = _fd._split_errors(rep(), call, a_user, num, mask)
        assert r.fd_rel_err is None and r.round_rel_err is None
    r = _fd._split_errors(rep(), lambda: a_ref, a_user, num, np.zeros(4, bool))
    assert r.fd_rel_err is None
    # floating-point warnings of the float64 analytic run are silenced, even where the
    # caller made them errors: a -inf entry is left out, the rest is measured
    with np.errstate(all="raise"):
        r = _fd._split_errors(rep(), lambda: np.log(a_ref * [1, 1, 0, 1]), a_user,
                              np.log(num * [1, 1, 0, 1] + [0, 0, 1, 0]), mask)
    assert r.fd_rel_err == 1.0 and r.round_rel_err == 1.0  # entries 0 and 1 measured

    class Ev:
        reference = "float64 re-run"

    f32, f64 = np.zeros(1, np.float32), np.zeros(1)
    assert _fd._want_split(Ev, abs, f32) and not _fd._want_split(Ev, abs, f64)
    assert not _fd._want_split(Ev, f32, f32)
    Ev.reference = "none"
    assert not _fd._want_split(Ev, abs, f32)
    assert _fd._as_tuple((1, 2)) == (1, 2) and _fd._as_tuple([1, 2]) == (1, 2)
    assert _fd._as_tuple(np.ones(2))[0].shape == (2,) and len(_fd._as_tuple(3.0)) == 1
    assert _fd._dot_tangent([[1.0, 2.0], [3.0]], [np.array([1.0, 1.0]), np.array([2.0])]) \
        == 9.0
    assert type(_fd._dot_tangent([[1.0]], [np.array([1.0])])) is float


# ---------------------------------------------------------------------------------------
# _validation: the hooks of validation mode, called directly with right and wrong results
# ---------------------------------------------------------------------------------------


def _hooks():
    from fastjac import _validation, ops
    from fastjac.gradcheck import GradCheckError, validating
    return _validation, ops, GradCheckError, validating


def _raises_named(name):
    _, _, GradCheckError, _ = _hooks()
    return pytest.raises(
        GradCheckError,
        match=rf"^fastjac validation mode: {name} disagrees with finite differences\n"
              rf"{name}: FAILED")


# Equivalent mutants of the hooks:
# - cross_check_unary, "jacobian": ``result.d.reshape(None)`` for ``.reshape(np.shape(x))``:
#   check_diagonal takes the analytic values flat (``.reshape(-1)``), whatever their shape;
# - cross_check_binary, "jacobian": ``np.ones(())`` instead of ``1.0`` as a scalar
#   operand's tangent: check_jvp flattens every tangent (``np.asarray(t).reshape(-1)``) and
#   the analytic value is an array, so both give the same line and the same report.


def test_unary_hook_each_method():
    from fastjac.jacobian import Diagonal
    V, ops, _, validating = _hooks()
    op = ops.UNARY["exp"]
    x = np.linspace(-1, 1, 9).reshape(3, 3)
    gy = np.cos(3 * x)
    d = np.exp(x)
    right = {"derivative": ((x,), d), "sum_grad": ((x,), d),
             "jacobian": ((x,), Diagonal(d.reshape(-1))), "jvp": ((x, gy), d * gy),
             "vjp": ((x, gy), d * gy), "value_and_vjp": ((x, gy), (d, d * gy))}
    evals = {"derivative": 7 + 2 * 3, "sum_grad": 13, "jacobian": 13, "jvp": 7, "vjp": 7,
             "value_and_vjp": 7}
    with validating():
        for method, (args, res) in right.items():
            r = V.cross_check_unary(op, method, args, res)
            assert r.passed and r.name == f"exp.{method}" and r.n_checked == 9, method
            assert r.n_evals == evals[method], (method, r.n_evals)
        wrong = {"derivative": d * (1 + 1e-6), "sum_grad": d[::-1],
                 "jacobian": Diagonal(d.reshape(-1) * 1.001), "jvp": d,
                 "vjp": d * gy[::-1], "value_and_vjp": (d * gy, d)}
        for method, res in wrong.items():
            with _raises_named(rf"exp\.{method}"):
                V.cross_check_unary(op, method, right[method][0], res)
        with pytest.raises(ValueError, match=r"^unknown unary method 'hessian'$"):
            V.cross_check_unary(op, "hessian", (x,), d)
        # an in-place result (out= one of the inputs) is not checked
        assert V.cross_check_unary(op, "vjp", (x, gy), gy) is None
    with validating(False):
        assert V.cross_check_unary(op, "derivative", (x,), d * 2) is None


def test_binary_hook_each_method():
    from fastjac.jacobian import Column, Diagonal
    V, ops, _, validating = _hooks()
    op = ops.BINARY["mul"]
    w = np.linspace(-1, 1, 7)
    x = np.linspace(0.5, 2, 7)
    dw, dx, gy = np.sin(w), np.cos(x), np.linspace(2, 3, 7)
    s = 0.75
    with validating():
        r = V.cross_check_binary(op, "jvp", (w, x, dw, dx), dw * x + w * dx)
        assert r.passed and r.name == "mul.jvp" and r.n_evals == 7 and r.n_checked == 7
        assert V.cross_check_binary(op, "jvp", (w, x, None, dx), w * dx)
        assert V.cross_check_binary(op, "jvp", (w, x, dw, None), dw * x)
        assert V.cross_check_binary(op, "jvp", (s, x, None, dx), s * dx)
        assert V.cross_check_binary(op, "jvp", (s, x, 2.0, None), 2.0 * x)
        with _raises_named(r"mul\.jvp"):
            V.cross_check_binary(op, "jvp", (w, x, None, dx), dw * x + w * dx)
        with _raises_named(r"mul\.jvp"):
            V.cross_check_binary(op, "jvp", (w, x, dw, None), w * dx + dw * x)

        reps = V.cross_check_binary(op, "jacobian", (w, x), (Diagonal(x), Diagonal(w)))
        assert [(r.name, r.passed, r.n_checked) for r in reps] == [
            ("mul.jacobian[w]", True, 7), ("mul.jacobian[x]", True, 7)]
        reps = V.cross_check_binary(op, "jacobian", (s, x), (Column(x), Diagonal(np.full(7, s))))
        assert [(r.name, r.passed) for r in reps] == [
            ("mul.jacobian[w]", True), ("mul.jacobian[x]", True)]
        reps = V.cross_check_binary(op, "jacobian", (w, s), (Diagonal(np.full(7, s)), Column(w)))
        assert all(reps) and len(reps) == 2
        with _raises_named(r"mul\.jacobian\[x\]"):
            V.cross_check_binary(op, "jacobian", (w, x), (Diagonal(x), Diagonal(x)))
        with _raises_named(r"mul\.jacobian\[w\]"):
            V.cross_check_binary(op, "jacobian", (s, x),
                                 (Column(x * 1.01), Diagonal(np.full(7, s))))

        for method, g in (("vjp", gy), ("sum_grad", np.ones(7))):
            args = (w, x, gy) if method == "vjp" else (w, x)
            reps = V.cross_check_binary(op, method, args, (g * x, g * w))
            assert [(r.name, r.passed, r.n_checked, r.n_evals) for r in reps] == [
                (f"mul.{method}[w]", True, 7, 7), (f"mul.{method}[x]", True, 7, 7)]
            with _raises_named(rf"mul\.{method}\[w\]"):
                V.cross_check_binary(op, method, args, (g * w, g * w))
            with _raises_named(rf"mul\.{method}\[x\]"):
                V.cross_check_binary(op, method, args, (g * x, g * x))
            # a scalar operand: the §4.3 sum, through the dot-product identity
            args_s = (s, x, gy) if method == "vjp" else (s, x)
            reps = V.cross_check_binary(op, method, args_s, (float(np.sum(g * x)), g * s))
            assert [(r.name, r.passed) for r in reps] == [
                (f"mul.{method}[w]", True), (f"mul.{method}[x]", True)]
            assert reps[0].n_evals == 1 + 2 * 6 and reps[0].n_checked == 2  # two probes
            with _raises_named(rf"mul\.{method}\[w\]"):
                V.cross_check_binary(op, method, args_s, (float(np.sum(g)), g * s))
            args_s = (w, s, gy) if method == "vjp" else (w, s)
            assert all(V.cross_check_binary(op, method, args_s, (g * s, float(np.sum(g * w)))))
            with _raises_named(rf"mul\.{method}\[x\]"):
                V.cross_check_binary(op, method, args_s, (g * s, float(np.sum(g * x))))
        with pytest.raises(ValueError, match=r"^unknown binary method 'hvp'$"):
            V.cross_check_binary(op, "hvp", (w, x), None)
        assert V.cross_check_binary(op, "vjp", (w, x, gy), (gy, x)) is None  # in place
    with validating(False):
        assert V.cross_check_binary(op, "vjp", (w, x, gy), (gy * 0, gy * 0)) is None


def test_generic_hook_and_helpers():
    V, ops, GradCheckError, validating = _hooks()
    x = np.linspace(-1, 1, 6)
    with validating():
        r = V.cross_check(np.sin, "derivative", (x,), None, np.cos(x), name="d")
        assert r.passed and r.name == "d" and r.n_evals == 13 and r.n_checked == 6
        r = V.cross_check(np.sin, "jvp", x, np.ones(6), np.cos(x))
        assert r.passed and r.name == "gradient" and r.n_evals == 7
        r = V.cross_check(np.sin, "vjp", (x,), 2 * x, np.cos(x) * 2 * x, name="v")
        assert r.passed and r.n_evals == 13 and r.n_checked == 2 and r.name == "v"
        r = V.cross_check(lambda v: np.sum(v ** 2), "grad", (x,), "ignored", 2 * x)
        assert r.passed and r.n_checked == 2 and r.name == "gradient"
        for kind, res in (("derivative", np.cos(x) * 1.01), ("jvp", np.sin(x)),
                          ("vjp", (np.cos(x) * x,)), ("grad", -np.cos(x))):
            d = np.ones(6) if kind == "jvp" else (2 * x if kind == "vjp" else None)
            f = np.sin if kind != "grad" else (lambda v: np.sum(np.sin(v)))
            with pytest.raises(GradCheckError, match=rf"^fastjac validation mode: g {kind} "):
                V.cross_check(f, kind, (x,), d, res, name=f"g {kind}")
        with pytest.raises(ValueError, match=r"^kind must be 'derivative', 'jvp', 'vjp' or "
                                             r"'grad', got 'hvp'$"):
            V.cross_check(np.sin, "hvp", (x,), None, x.copy())
        assert V.cross_check(np.sin, "vjp", (x,), x, (x,)) is None  # in place
        gy = x + 2.0
        assert V.cross_check(np.sin, "vjp", (x,), gy, (gy,)) is None  # into the cotangent
        assert V.cross_check(np.sin, "jvp", (x,), (x,), [3.0, x[1:]]) is None  # a view
    with validating(False):
        assert V.cross_check(np.sin, "derivative", (x,), None, x) is None
    assert V._overwrote_input((x, 2.0), (np.ones(6), 3.0)) is False
    assert V._overwrote_input((x,), x[::2]) is True
    assert V._overwrote_input((list(x),), np.asarray(x)) is False
    assert V._op_name(ops.UNARY["exp"], "vjp") == "exp.vjp"
    assert V._op_name(object(), "jvp") == "object.jvp"
    assert V.zero_tangent(2.0) == 0.0 and type(V.zero_tangent(2.0)) is float
    z = V.zero_tangent(np.array(2.0))
    assert isinstance(z, np.ndarray) and z.shape == ()
    assert V.zero_tangent(np.ones((2, 3))).tolist() == [[0.0] * 3] * 2
    assert V.zero_tangent([1.0, 2.0]).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------
# _fd._Evaluator, _fd._direction and gradcheck._diagonal_probes
# ---------------------------------------------------------------------------------------


def _ev(f, *primals, **kw):
    return _fd._Evaluator(f, _fd._Args(primals), **kw)


# Equivalent mutants of _Evaluator: ``reference="XXautoXX"`` or ``"AUTO"`` as the default
# (every value but a callable and False/None/"none" means "auto"); ``n_evals = 1``
# for ``n_evals += 1`` after the first call (it starts at 0); ``kind not in "XXfiubXX"``
# (``X`` is no dtype kind); ``args.as_dtype(None)`` (float64) for the reference's and the
# re-run's work arrays; ``in_eps``'s default for no work arrays (None, ``_eps(None)`` or
# none): ``_Args`` refuses empty primals, so there is always one; ``y_user`` kept in f's
# shape (``reshape(None)``): it is read only for its dtype (check_vjp's cotangent dtype);
# ``reshape(-2)`` of ``y_user`` or ``y0``; in ``__call__``, ``reshape(-2)`` for
# ``reshape(-1)``.
# Of _line_stats: ``F_floor=1.0`` as the default (every caller passes F_floor);
# ``np.asarray`` of ``fp``, ``fm``, ``f0`` or the steps ``h`` without ``dtype=float64``
# (or with None): every caller passes float64 values (``np.empty`` or stacked
# evaluations, float64 by ``__call__``; ``ev.y0``; steps made float64 or Python floats).


def test_evaluator_reference_modes():
    x32 = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    ev = _ev(np.sin, x32.astype(F64))
    assert (ev.n_evals, ev.reference, ev.eps, ev.notes) == (1, "none", 2.0**-52, [])
    assert ev.out_shape == (3,) and ev.out_dtype == F64 and ev.fun is np.sin
    ev = _ev(np.sin, x32)  # float32: re-run in float64 and used
    assert (ev.n_evals, ev.reference, ev.eps, ev.notes) == (2, "float64 re-run", 2.0**-52, [])
    assert ev.work[0].dtype == F64 and ev.y_user.dtype == F64
    np.testing.assert_array_equal(ev.y0, np.sin(x32.astype(F64)))
    np.testing.assert_array_equal(ev.y_user, np.sin(x32).astype(F64))
    assert ev.out_dtype == np.float32
    for ref in (False, None, "none"):
        ev = _ev(np.sin, x32, reference=ref)
        assert (ev.n_evals, ev.reference, ev.eps) == (1, "none", 2.0**-23)
        assert ev.work[0].dtype == np.float32
        # f's values at x are kept flat in float64, like every evaluation
        assert ev.y0.dtype == F64 and ev.y0.tolist() == np.sin(x32).tolist()
    # float64 input, float32 output: "low" too; the re-run also returns float32
    f32out = lambda v: np.sin(v).astype(np.float32)  # noqa: E731
    ev = _ev(f32out, x32.astype(F64))
    assert ev.n_evals == 2 and ev.reference == "none" and ev.eps == 2.0**-23
    assert ev.notes == ["f does not compute in float64; differences in float32"]
    shape_changes = lambda v: np.sin(v) if v.dtype == np.float32 else np.sin(v)[:2]  # noqa: E731
    assert _ev(shape_changes, x32).notes == [
        "f does not compute in float64; differences in float32"]

    def only32(v):
        if v.dtype != np.float32:
            raise TypeError("float32 only")
        return np.sin(v)

    ev = _ev(only32, x32)
    assert ev.notes == ["float64 re-run of f not possible (TypeError)"]
    assert ev.n_evals == 1 and ev.reference == "none" and ev.fun is only32
    ev = _ev(lambda v: np.sin(v) * (1.0 if v.dtype == np.float32 else 2.0), x32)
    assert ev.notes == ["float64 re-run of f disagrees with the float32 run; differences "
                        "in float32"]
    assert ev.reference == "none" and ev.work[0].dtype == np.float32
    # a float16 result of float32 inputs agrees with the float64 re-run to float16's
    # accuracy (the run is as precise as its lowest-precision part, here the output), not
    # float32's: sin(10 x) computed in float16 is ~1e-3 off
    def f16(v):
        return np.sin(10 * (v.astype(np.float16) if v.dtype == np.float32 else v))

    xf = np.array([0.55, -0.92, -1.84], dtype=np.float32)
    assert np.max(np.abs(f16(xf) - f16(xf.astype(F64)))) > 1e-3
    ev = _ev(f16, xf)
    assert ev.reference == "float64 re-run" and ev.notes == [] and ev.out_dtype == np.float16
    # a reference callable, also for float64 inputs
    ref = lambda v: np.sin(v.astype(F64))  # noqa: E731
    ev = _ev(np.sin, x32, reference=ref)
    assert (ev.n_evals, ev.reference, ev.eps) == (2, "reference callable", 2.0**-52)
    assert ev.fun is ref and ev.work[0].dtype == F64
    np.testing.assert_array_equal(ev.y0, np.sin(x32.astype(F64)))
    with pytest.raises(ValueError, match=r"^reference returned shape \(2,\), f returned "
                                         r"\(3,\)$"):
        _ev(np.sin, x32, reference=lambda v: np.sin(v)[:2])
    with pytest.raises(TypeError, match=r"^f must return real values, got dtype complex64$"):
        _ev(lambda v: v + np.complex64(1j), x32)
    # integer input: float64 work, no re-run needed
    ev = _ev(lambda v: v * 2.0, np.arange(3))
    assert ev.work[0].dtype == F64 and ev.reference == "none" and ev.n_evals == 1


def test_evaluator_scale_and_calls():
    ev = _ev(lambda v: v * [1.0, -3.0, np.inf], np.ones(3))
    assert ev.f_scale == 3.0 and type(ev.f_scale) is float
    ev = _ev(lambda v: v * np.nan, np.ones(2))
    assert ev.f_scale == 0.0
    ev = _ev(np.sin, np.ones(2), f_scale=7)
    assert ev.f_scale == 7.0 and type(ev.f_scale) is float
    assert ev.ulps == _fd.DEFAULT_ULPS and _ev(np.sin, np.ones(2), ulps=3).ulps == 3
    ev = _ev(np.log, np.ones((2, 2)))
    with np.errstate(all="raise"):  # a perturbed point outside the domain: NaN, no error
        y = ev([np.array([-1.0, 1.0, 1.0, 1.0])])
    assert y.shape == (4,) and np.isnan(y[0]) and y.dtype == F64 and ev.n_evals == 2
    # every evaluation is returned flat in float64, whatever f's dtype
    ev = _ev(lambda v: np.sin(v).astype(np.float32), np.ones((2, 2)), reference=False)
    y = ev([np.full(4, 0.5)])
    assert y.dtype == F64 and y.shape == (4,) and y[0] == np.float32(np.sin(0.5))
    assert _ev(lambda v: v > 0, np.ones(3))([np.array([1.0, -1.0, 2.0])]).tolist() == [1, 0, 1]
    ev = _ev(lambda v: v[: 2 if v[0] == 1 else 1], np.ones(3))
    with pytest.raises(ValueError, match=r"^f returned shape \(1,\) at a perturbed point, "
                                         r"\(2,\) at x$"):
        ev([np.array([2.0, 1.0, 1.0])])


def test_direction_step_scale_and_estimate():
    c = np.array([1.0, -2.0, 0.5, 3.0])
    x = np.array([0.25, -4.0, 2.0, 0.0])
    ev = _ev(lambda v: np.array([c @ v, 2.0]), x)
    t = np.array([0.5, 2.0, 0.0, -1.0])
    rel = 2.0**-10
    line, s, t_eff, q, ts = _fd._direction(ev, [t], rel)
    # largest step moving no coordinate by more than its own: min(max(1,|x|)/|t|) = 1
    assert s == rel * min(1 / 0.5, 4 / 2.0, 1 / 1.0) and ev.n_evals == 1 + 6
    assert q == max(1.0, 4.0) / 2.0
    np.testing.assert_array_equal(ts[0], t)
    assert len(t_eff) == 3 and all(np.allclose(te[0], t, rtol=1e-12) for te in t_eff)
    np.testing.assert_allclose(line.numeric, [c @ t, 0.0], atol=1e-12)
    assert ev.f_scale == 9.25 and line.F[1] == 9.25  # the floor: largest |f(x)|
    assert line.F[0] == pytest.approx(abs(c @ t) * q, rel=1e-12)  # |D(h)| * q
    assert _fd._direction(ev, [np.zeros(4)], rel) is None and ev.n_evals == 7
    # two primals, one tangent zero; float32 work: steps rounded to float32 (t_eff != t)
    ev2 = _ev(lambda a, b: a * b, np.array([3.0], np.float32), np.array([0.7], np.float32),
              reference=False)
    line, s, t_eff, q, ts = _fd._direction(ev2, [np.array([0.0]), np.array([0.1])], 0.01)
    assert s == 0.01 * (1.0 / 0.1) and q == 3.0 / 0.1
    assert t_eff[0][0][0] == 0.0 and t_eff[0][1][0] != 0.1
    h = [lvl * s for lvl in (1.0, 0.5, 0.25)]
    for k, te in enumerate(t_eff):
        xp = np.float32(np.float32(0.7) + np.float32(h[k] * 0.1))
        xm = np.float32(np.float32(0.7) - np.float32(h[k] * 0.1))
        assert te[1][0] == (float(xp) - float(xm)) / (2 * h[k])
    # F of the line: at least |D(h)| * q and the function's own scale
    fmax = float(np.float32(3.0) * np.float32(0.7 + h[0] * 0.1))
    assert line.F[0] == max(abs(line.D[0][0]) * q, ev2.f_scale, fmax)


class _FakeEv:
    """Returns y0 moved by ``bump`` on the outputs whose input did not move."""

    def __init__(self, y0, xw, bump):
        self.y0, self.xw, self.bump, self.calls = np.asarray(y0, F64), xw, bump, 0

    def __call__(self, flats):
        self.calls += 1
        moved = flats[0] != self.xw
        return np.where(moved, self.y0 + 1.0, self.y0 + self.bump(moved))


def test_diagonal_probes_threshold_and_message():
    from fastjac.gradcheck import _diagonal_probes
    xw, xp = np.zeros(4), np.full(4, 0.5)
    rho = 1.0 / 64  # outputs may move by 4 rho |y| = 1/16 of their size
    at = _FakeEv(np.ones(4), xw, lambda moved: -0.0625)
    assert _diagonal_probes(at, xw, xp, rho, 0, 0) == [] and at.calls == 4
    over = _FakeEv(np.ones(4), xw, lambda moved: np.where(np.arange(4) == 3, -0.07, -0.0626))
    msg = _diagonal_probes(over, xw, xp, rho, 0, 0)
    assert msg == [
        "NOT DIAGONAL: output 3 changed by 7.000e-02 when only 2 other inputs were "
        "perturbed (coupling ~ 1.400e-01; 8 such outputs in all) - f couples coordinates, "
        "its Jacobian is not diagonal"]
    # ties: the first worst output is reported
    tie = _FakeEv(np.ones(4), xw, lambda moved: -0.0626)
    assert _diagonal_probes(tie, xw, xp, rho, 0, 0)[0].startswith(
        "NOT DIAGONAL: output 1 changed by 6.260e-02 when only 2 other")
    # the threshold scales with max(|y|, |y0|): y0 = -2 moving to -2.125 stays within
    assert _diagonal_probes(_FakeEv(np.full(4, -2.0), xw, lambda m: -0.125), xw, xp, rho,
                            0, 0) == []
    assert _diagonal_probes(_FakeEv(np.full(4, -2.0), xw, lambda m: -0.1329), xw, xp, rho,
                            0, 0) == []
    assert _diagonal_probes(_FakeEv(np.full(4, -2.0), xw, lambda m: -0.1337), xw, xp, rho,
                            0, 0) != []
    # an output that becomes non-finite (or finite) is a coupling; NaN staying NaN is not
    y0 = np.array([1.0, np.nan, 1.0, 1.0])
    assert _diagonal_probes(_FakeEv(y0, xw, lambda m: 0.0), xw, xp, rho, 0, 0) == []
    inf = _FakeEv(np.ones(4), xw, lambda m: np.where(np.arange(4) == 2, np.inf, 0.0))
    assert "output 2 changed by inf" in _diagonal_probes(inf, xw, xp, rho, 0, 0)[0]
    y0 = np.array([1.0, 1.0, np.inf, 1.0])
    back = _FakeEv(y0, xw, lambda m: 0.0)
    back.y0 = np.array([1.0, 1.0, 5.0, 1.0])  # what f returns; the check's y0 has inf
    back_probe = lambda ev: _diagonal_probes(ev, xw, xp, rho, 0, 0)  # noqa: E731

    class Y0:
        def __init__(self):
            self.y0 = y0

        def __call__(self, flats):
            return back(flats)

    assert "output 2 changed by inf" in back_probe(Y0())[0]
    assert "2 such outputs" in back_probe(Y0())[0]
    # no step at all: coupling infinite
    xp0 = np.where(np.arange(4) % 2 == 0, 1e-300, 0.0)
    assert "(coupling ~ " in _diagonal_probes(_FakeEv(np.ones(4), xw, lambda m: -0.5), xw,
                                              xp0, rho, 0, 0)[0]
    # n_probes random partitions on top of the two fixed ones; empty/full ones skipped
    ev = _FakeEv(np.ones(6), np.zeros(6), lambda m: 0.0)
    assert _diagonal_probes(ev, np.zeros(6), np.ones(6), rho, 3, 0) == [] and ev.calls == 10
    ev = _FakeEv(np.ones(1), np.zeros(1), lambda m: 0.0)
    assert _diagonal_probes(ev, np.zeros(1), np.ones(1), rho, 3, 0) == [] and ev.calls == 0


# ---------------------------------------------------------------------------------------
# _selfcheck: how selfcheck turns the cases' outcomes into rows
# ---------------------------------------------------------------------------------------


def test_selfcheck_rows_from_each_outcome(monkeypatch):
    from fastjac import _config, _selfcheck
    from fastjac.gradcheck import validating

    seen = []
    failing = GradCheckReport(name="f", passed=False, max_rel_err=0.5, rel_bound=1e-9,
                              kinks=[1, 2], problems=["1 of 3 entries exceed their bound",
                                                      "", "x" * 200, "second"])
    good = GradCheckReport(name="g", passed=True, max_rel_err=1e-12, rel_bound=2e-9,
                           kinks=[(0,)], n_checked=5)
    empty = GradCheckReport(name="e", passed=True, n_checked=0, kinks=[0, 1, 2])

    def cases(dt, rng):
        seen.append((dt, rng.random(), _config.is_validating()))

        def boom():
            seen.append(("in thunk", _config.is_validating()))
            raise ValueError("y" * 300)

        yield "boom", boom
        yield "fails", lambda: failing
        yield "good", lambda: good
        yield "empty", lambda: empty

    monkeypatch.setattr(_selfcheck, "_selfcheck_cases", cases)
    with validating():
        rep = _selfcheck.selfcheck(seed=7)
    first = np.random.default_rng(7).random()
    assert [s for s in seen if s[0] != "in thunk"] == [
        (np.dtype("float64"), first, True), (np.dtype("float32"), first, True)]
    assert ("in thunk", False) in seen  # the checks themselves run unvalidated
    rows = rep.rows
    assert [(r.op, r.dtype, r.status) for r in rows[:4]] == [
        ("boom", "float64", "error"), ("fails", "float64", "FAILED"),
        ("good", "float64", "passed"), ("empty", "float64", "skipped")]
    assert [r.dtype for r in rows[4:]] == ["float32"] * 4
    boom, fails, ok, skip = rows[:4]
    assert math.isnan(boom.max_rel_err) and boom.bound == 0.0 and boom.kinks == 0
    assert boom.detail == ("ValueError: " + "y" * 300)[:120] and boom.report is None
    assert (fails.max_rel_err, fails.bound, fails.kinks) == (0.5, 1e-9, 2)
    assert fails.detail == ("x" * 200 + "; second")[:120] and fails.report is failing
    assert (ok.max_rel_err, ok.bound, ok.kinks, ok.detail) == (1e-12, 2e-9, 1, "")
    assert ok.report is good
    assert (skip.detail, skip.kinks) == ("nothing compared", 3)
    assert not rep and [r.op for r in rep.failures] == ["boom", "fails"] * 2
    assert (rep.count("passed"), rep.count("FAILED"), rep.count("error"),
            rep.count("skipped")) == (2, 2, 2, 2)
    assert [r.ok for r in rows[:4]] == [False, False, True, True]
    assert str(rep).splitlines()[-1] == "FAILURES: 2 passed, 2 failed, 2 errors, 2 skipped"
    one = _selfcheck.selfcheck(dtypes=("float32",))
    assert {r.dtype for r in one.rows} == {"float32"} and len(one.rows) == 4
    assert fails.detail.startswith("x") and ";" not in fails.detail


def test_selfcheck_report_verdicts():
    from fastjac._selfcheck import SelfCheckReport, SelfCheckRow
    passed = SelfCheckRow("a", "float64", 0.0, 1e-9, "passed")
    skipped = SelfCheckRow("b", "float64", 0.0, 1e-9, "skipped")
    failed = SelfCheckRow("c", "float64", 0.0, 1e-9, "FAILED")
    assert SelfCheckReport([passed, skipped]).passed is True
    assert SelfCheckReport([skipped]).passed is False and not SelfCheckReport([])
    assert str(SelfCheckReport([skipped])).splitlines()[-1] == (
        "NOTHING CHECKED: 0 passed, 0 failed, 0 errors, 1 skipped")
    assert str(SelfCheckReport([passed, failed])).splitlines()[-1].startswith("FAILURES: ")
    assert str(SelfCheckReport([passed, skipped])).splitlines()[-1] == (
        "ALL PASSED: 1 passed, 0 failed, 0 errors, 1 skipped")
    assert SelfCheckReport([passed, failed]).failures == [failed]
    printed = []

    class P:
        def text(self, s):
            printed.append(s)

    r = SelfCheckReport([passed])
    r._repr_pretty_(P(), False)
    assert printed == [str(r)]


# ---------------------------------------------------------------------------------------
# _validation.cross_check_neuron with NumPy value functions
# ---------------------------------------------------------------------------------------


def _act(X, w, b):
    return np.maximum(np.asarray(X) @ np.asarray(w) + b, 0)


def _loss(X, y, w, b):
    return np.mean((np.asarray(y) - _act(X, w, b)) ** 2)


def _loss_grad(X, y, w, b, active=None, X_grad=False):
    z = X @ w + b
    a = (z > 0) if active is None else active
    e = np.where(a, z - y, 0.0) * (2.0 / len(y))
    C = _loss(X, y, w, b)
    res = (C, e @ X, float(np.sum(e)))
    return res + (np.outer(e, w),) if X_grad else res


def _neuron(method, args, result, loss=_loss):
    from fastjac import _validation
    return _validation.cross_check_neuron(method, args, result, activation=_act, loss=loss)


def _problem(N=30, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, n)), rng.standard_normal(N), rng.standard_normal(n), 0.2)


def test_neuron_hook_samples_near_the_kink():
    from fastjac.gradcheck import validating
    X, y, w, b = _problem()
    h = (2.0**-52) ** (1 / 3)  # the hook leaves out |w.x + b| <= 4 h reach

    def reach(X, with_X):
        r = np.abs(X) @ np.maximum(1.0, np.abs(w)) + max(1.0, abs(b))
        return r + np.maximum(1.0, np.abs(X)) @ np.abs(w) if with_X else r

    # move samples 0..3 to |w.x + b| = 3.5, 4.5 h reach, and 3.5, 4.5 h reach with X
    want = [(3.5, False), (-4.5, False), (3.5, True), (-4.5, True)]
    for _ in range(30):  # reach depends on x_i: a few rounds to a fixed point
        for i, (k, with_X) in enumerate(want):
            z = k * h * reach(X, with_X)[i]
            X[i] += (z - (X[i] @ w + b)) * w / (w @ w)
    ratios = [(X[i] @ w + b) / (h * reach(X, wx)[i]) for i, (_, wx) in enumerate(want)]
    assert np.round(ratios, 6).tolist() == [k for k, _ in want]
    with validating():
        r = _neuron("loss_grad", (X, y, w, b), _loss_grad(X, y, w, b))
        assert r.passed and r.name == "neuron.loss_grad" and r.n_checked == 3
        assert r.notes[-1] == ("1 of 30 samples within a step of the ReLU kink (w·x_i + b ~ 0) "
                               "were left out of the gradient check")
        r = _neuron("loss_grad", (X, y, w, b), _loss_grad(X, y, w, b, X_grad=True))
        assert r.passed and r.notes[-1].startswith("3 of 30 samples within a step")
        # the left-out samples' own terms are removed from the gradient that is checked
        C, gw, gb = _loss_grad(X, y, w, b)
        for bad in ((C, gw, gb + 1e-6), (C, gw + [0, 1e-6, 0], gb)):
            with pytest.raises(AssertionError, match="neuron.loss_grad"):
                _neuron("loss_grad", (X, y, w, b), bad)
        # only the gradients given are checked
        r = _neuron("loss_grad", (X, y, w, b), (C, None, gb))
        assert r.passed and r.n_checked == 3
        # lists are accepted like arrays
        assert _neuron("loss_grad", (X.tolist(), y.tolist(), list(w), b), (C, gw, gb))


def test_neuron_hook_float32_steps_when_the_loss_is_float32():
    from fastjac.gradcheck import validating
    X, y, w, b = (a.astype(np.float32) if isinstance(a, np.ndarray) else a
                  for a in _problem(seed=2))
    X64, w64 = X.astype(F64), w.astype(F64)
    reach = np.abs(X64) @ np.maximum(1.0, np.abs(w64)) + max(1.0, abs(b))
    # sample 0 at 1e-3 reach: beyond a float64 step, within a float32 one
    X[0] = (X64[0] + (1e-3 * reach[0] - (X64[0] @ w64 + b)) * w64 / (w64 @ w64)).astype(
        np.float32)
    X64 = X.astype(F64)
    loss32 = lambda *a: np.float32(_loss(*(np.asarray(v, np.float32) for v in a)))  # noqa: E731
    res = _loss_grad(X64, y.astype(F64), w64, b)
    res = (np.float32(res[0]),) + res[1:]
    with validating():
        r = _neuron("loss_grad", (X, y, w, b), res)
        assert not any("samples within a step" in n for n in r.notes)
        r = _neuron("loss_grad", (X, y, w, b), res, loss=loss32)
        assert "of 30 samples within a step" in r.notes[-1]


def test_neuron_hook_unsure_samples_and_the_loss_value():
    from fastjac.gradcheck import validating
    X, y, w, b = _problem()
    b = 0.0
    for k in (4, 5):
        Xk = X.copy()
        Xk[:k] = 0.0  # w.x + b = 0 exactly: the kernel may take either branch
        z = Xk @ w + b
        active = z > 0
        active[[0, 2]] = True  # a kernel that called two of them active
        C, gw, gb = _loss_grad(Xk, y, w, b, active=active)
        with validating():
            r = _neuron("loss_grad", (Xk, y, w, b), (C, gw, gb))
            assert r.passed
            if k == 4:  # every branch pattern is tried: this one passes
                assert r.n_checked == 3 and len(r.notes) == 1
                with pytest.raises(AssertionError):
                    _neuron("loss_grad", (Xk, y, w, b), (C, gw, gb + 1.0))
            else:  # too many: the gradient is not checked at all
                assert r.n_checked == 0 and r.notes == [
                    f"{k} of 30 samples within a step of the ReLU kink (w·x_i + b ~ 0) were "
                    "left out of the gradient check",
                    "gradient not checked: too many samples on the kink"]
                assert _neuron("loss_grad", (Xk, y, w, b), (C, gw, gb + 1.0))
    # the loss value: within 8 ulps * max(1, |C|) * sqrt(N)
    C, gw, gb = _loss_grad(X, y, w, b)
    tol = 8 * 2.0**-52 * max(1.0, abs(C)) * math.sqrt(30)
    with validating():
        assert _neuron("loss_grad", (X, y, w, b), (C + 0.9 * tol, gw, gb))
        bad = float(C + 1.1 * tol)
        with pytest.raises(AssertionError) as info:
            _neuron("loss_grad", (X, y, w, b), (bad, gw, gb))
        rep = info.value.report
        assert not rep.passed
        assert rep.problems[-1] == f"loss value {bad!r} != loss(X, y, w, b) = {float(C)!r}"
        C1 = _loss(X[:1], y[:1], w, 5.0)
        assert _neuron("loss_grad", (X[:1], y[:1], w, 5.0), (C1 + 6e-16, None, None))


KINK_NOTE = ("{} of {} samples within a step of the ReLU kink (w·x_i + b ~ 0) were left out "
             "of the gradient check")


def _far_from_the_kink(X, w, b, rows):
    """Move the given rows of X along w so that |w.x_i + b| >= 1 (far from every step)."""
    X = X.copy()
    for i in rows:
        z = X[i] @ w + b
        target = math.copysign(1.0 + abs(z), z)
        X[i] += (target - z) * w / (w @ w)
    return X


def test_neuron_hook_kink_thresholds_exactly():
    # the hook leaves out |w.x_i + b| <= h reach_i, h = 4 eps^(1/3) (float64 steps), with
    # reach_i = |x_i|.max(1, |w|) + max(1, |b|); a zero row has z = b and reach 1
    from fastjac.gradcheck import validating
    h = 4.0 * np.finfo(F64).eps ** (1 / 3)
    X, y, w, _ = _problem()
    X = _far_from_the_kink(X, w, h, range(1, 30))
    X[0] = 0.0
    with validating():
        # exactly at the threshold: left out (<=)
        r = _neuron("loss_grad", (X, y, w, h), _loss_grad(X, y, w, h))
        assert r.passed and r.notes[-1] == KINK_NOTE.format(1, 30)
        # five samples near the kink but far above rounding: the gradient is still
        # checked (only samples within rounding of 0 try both branches, at most 4)
        X5 = X.copy()
        X5[:5] = 0.0
        bad = _loss_grad(X5, y, w, 0.5 * h)
        r = _neuron("loss_grad", (X5, y, w, 0.5 * h), bad)
        assert r.passed and r.n_checked == 3 and r.notes == [KINK_NOTE.format(5, 30)]
        with pytest.raises(AssertionError, match="neuron.loss_grad"):
            _neuron("loss_grad", (X5, y, w, 0.5 * h), (bad[0], bad[1] + 1e-6, bad[2]))
        # reach uses max(1, |w_j|): with |w_j| < 1 a sample at 2.5 h (reach 2) is kept
        ws = np.array([0.1, 0.3, -0.2])
        bs = 2.5 * h - 0.1
        Xs = _far_from_the_kink(X, ws, bs, range(1, 30))
        Xs[0] = [1.0, 0.0, 0.0]
        r = _neuron("loss_grad", (Xs, y, ws, bs), _loss_grad(Xs, y, ws, bs))
        assert r.passed and not any("ReLU kink" in n for n in r.notes)


def test_neuron_hook_rounding_side_of_the_kink():
    # z_0 = 2^-52 = (1 + 2^-52) * 1 - 1: within rounding of 0 relative to its terms
    # (|x_0|.|w| + |b| = 2), so the kernel may have rounded it to either side; a gradient
    # that took it as inactive passes, as does one that took it as active
    from fastjac.gradcheck import validating
    X, y, _, _ = _problem()
    w = np.array([1.0, 0.3, -0.2])
    X = _far_from_the_kink(X, w, -1.0, range(1, 30))
    X[0] = [1.0 + 2.0 ** -52, 0.0, 0.0]
    assert X[0] @ w - 1.0 == 2.0 ** -52
    inactive = (X @ w - 1.0 > 0)
    inactive[0] = False
    with validating():
        for active in (None, inactive):
            r = _neuron("loss_grad", (X, y, w, -1.0), _loss_grad(X, y, w, -1.0, active))
            assert r.passed and r.notes == [KINK_NOTE.format(1, 30)]


def test_neuron_hook_no_warning_from_its_own_bounds():
    # |x_0| |w| overflows in the hook's bound while w.x_0 + b = 0 does not: no warning
    from fastjac.gradcheck import validating
    X, y, _, _ = _problem()
    w = np.array([1.0, 1.0, 0.5])
    X = _far_from_the_kink(X, w, 0.0, range(1, 30))
    X[0] = [1.5e308, -1.5e308, 0.0]
    with validating(), warnings.catch_warnings():
        warnings.simplefilter("error")
        r = _neuron("loss_grad", (X, y, w, 0.0), _loss_grad(X, y, w, 0.0))
    assert r.passed


@pytest.mark.parametrize("dx, dw, step", [(np.float32, np.float32, np.float32),
                                          (F64, np.float32, F64), (np.float32, F64, F64)])
def test_neuron_hook_steps_of_a_float32_loss(dx, dw, step):
    # a loss that cannot run in float64 (refuses X, y, w all float64): the hook's step is
    # that of the inputs' common dtype, result_type(X, w): a sample at |z| = 1e-3 is
    # left out with float32 steps (h = 4 eps32^(1/3) ~ 0.02) and kept with float64 ones
    from fastjac.gradcheck import validating

    def loss32(X, y, w, b):
        if all(np.asarray(a).dtype == F64 for a in (X, y, w)):
            raise TypeError("this loss runs in float32 only")
        return _loss(X, y, w, b)

    X, y, w, _ = _problem()
    b = 1e-3
    X = _far_from_the_kink(X, w, b, range(1, 30))
    X[0] = 0.0
    X, w, y = X.astype(dx), w.astype(dw), y.astype(np.float32)
    with validating():
        from fastjac import _validation
        r = _validation.cross_check_neuron("loss_grad", (X, y, w, b), _loss_grad(X, y, w, b),
                                           activation=_act, loss=loss32)
    assert r.passed
    left_out = [n for n in r.notes if "ReLU kink" in n]
    assert left_out == ([KINK_NOTE.format(1, 30)] if step is np.float32 else [])


@pytest.mark.parametrize("k, both_ways", [(128, True), (129, False)])
def test_neuron_hook_rounding_bound_is_64_eps_of_the_terms(k, both_ways):
    # z_0 = k eps with |x_0|.|w| + |b| = 2 + k eps: within 64 eps (2 + k eps) of 0 for
    # k <= 128 (both branches tried), beyond it for k = 129 (the sign of z decides)
    from fastjac.gradcheck import GradCheckError, validating
    X, y, _, _ = _problem()
    w = np.array([1.0, 0.3, -0.2])
    X = _far_from_the_kink(X, w, -1.0, range(1, 30))
    X[0] = [1.0 + k * 2.0 ** -52, 0.0, 0.0]
    assert X[0] @ w - 1.0 == k * 2.0 ** -52
    dropped = (X @ w - 1.0 > 0)
    dropped[0] = False  # a gradient that took sample 0 as inactive
    with validating():
        if both_ways:
            assert _neuron("loss_grad", (X, y, w, -1.0), _loss_grad(X, y, w, -1.0, dropped))
        else:
            with pytest.raises(GradCheckError):
                _neuron("loss_grad", (X, y, w, -1.0), _loss_grad(X, y, w, -1.0, dropped))


def test_neuron_hook_value_function_sees_the_callers_arrays():
    # the kept rows are taken from the caller's own arrays (float32 stays float32), so
    # the loss is evaluated as the caller computes it
    from fastjac import _validation
    from fastjac.gradcheck import validating
    X, y, w, b = _problem()
    X, y = X.astype(np.float32), y.astype(np.float32)
    seen = set()

    def loss(X, y, w, b):
        seen.add((np.asarray(X).dtype, np.asarray(y).dtype))
        return _loss(X, y, w, b)

    with validating():
        r = _validation.cross_check_neuron("loss_grad", (X, y, w, b), _loss_grad(X, y, w, b),
                                           activation=_act, loss=loss)
    assert r.passed and r.n_checked == 3
    # the float64 copies serve only to probe the loss's dtype; every other call is float32
    seen.discard((np.dtype(F64), np.dtype(F64)))
    assert seen == {(np.dtype(np.float32), np.dtype(np.float32))}


def test_neuron_hook_seed_and_report():
    from fastjac import _validation
    from fastjac.gradcheck import GradCheckError, validating
    X, y, w, b = _problem()
    res = _loss_grad(X, y, w, b)

    def hook(seed, result=res):
        return _validation.cross_check_neuron("loss_grad", (X, y, w, b), result,
                                              activation=_act, loss=_loss, seed=seed)

    def probes(r):
        return [(e.index, e.analytic) for e in r.worst]

    with validating():
        # the probe directions come from the seed: reproducible, and another seed differs
        assert probes(hook(7)) == probes(hook(7))
        assert probes(hook(7)) != probes(hook(0))
        # only the loss value given: the report still has the hook's name
        r = hook(0, (res[0], None, None))
        assert r.passed and r.name == "neuron.loss_grad" and r.n_checked == 0
        with pytest.raises(GradCheckError) as info:
            hook(0, (res[0] + 1.0, res[1], res[2]))
        assert info.value.report.passed is False


def test_neuron_hook_loss_value_tolerance_exactly():
    # C must be within DEFAULT_ULPS eps max(1, |C_ref|) sqrt(N) of loss(X, y, w, b):
    # accepted at exactly that distance, refused a little beyond it
    from fastjac.gradcheck import GradCheckError, validating
    X, y, w, _ = _problem()
    w, b = w * 0.1, 0.02
    for N in (1, 30):
        Xn, yn = X[:N], y[:N] * 0.1
        C = float(_loss(Xn, yn, w, b))
        assert C < 1.0
        tol = _fd.DEFAULT_ULPS * 2.0 ** -52 * N ** 0.5
        with validating():
            if N == 1:
                assert (C + tol) - C == tol  # exact: the edge itself is accepted
                assert _neuron("loss_grad", (Xn, yn, w, b), (C + tol, None, None)).passed
            with pytest.raises(GradCheckError, match=r"loss value") as info:
                _neuron("loss_grad", (Xn, yn, w, b), (C + 1.3 * tol, None, None))
            assert str(info.value).splitlines()[0] == (
                "fastjac validation mode: neuron.loss_grad disagrees with finite differences")


def test_neuron_hook_overflowing_loss_is_a_failure_not_a_warning():
    from fastjac.gradcheck import GradCheckError, validating
    X, y, w, b = _problem()
    y = y.copy()
    y[0] = 1e200  # (y_0 - a_0)^2 overflows: loss = inf
    with validating(), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GradCheckError, match=r"loss value inf != loss\(X, y, w, b\) = inf"):
            _neuron("loss_grad", (X, y, w, b), (np.inf, None, None))


# Equivalent mutants of cross_check_neuron: ``np.asarray(Jw @ v)`` without
# ``dtype=float64`` (also with ``dtype=None``): the sum with the float64 ``Jb`` term
# promotes it to float64 exactly as the conversion did, so the analytic value is the same.
# Likewise ``np.asarray(Jb @ np.array([db]))`` without ``dtype=float64`` (or with
# ``dtype=None``): ``Jw @ v`` is float64 already, and widening a float32 term exactly
# before the sum or letting the sum promote it gives the same double.
# In its loss_grad branch: ``ref64 = None`` for ``False`` (both falsy); ``_eps(None)`` (the
# float64 eps, as asked); ``names = None`` for ``[]`` (only tested for truth); ``frac``
# for N == 0 (``neuron.loss_grad`` refuses an empty batch before its hook runs);
# ``3 ** unsure.size`` branches (the extra ones repeat earlier sign patterns and the
# first passing or the first report is kept either way); ``active = z >= 0`` (a sample
# with z == 0 is always "unsure", and its sign is then set by the branch); check_vjp's
# ``n_probes=3`` dropped (3 is the default). (``full=None`` for ``full=False`` is no
# longer equivalent: check_vjp refuses a ``full`` other than True, False or "auto".)


def test_neuron_hook_activation_jacobian_and_guards():
    from fastjac.gradcheck import validating
    from fastjac.jacobian import Column, RowScaled
    X, y, w, b = _problem()
    z = X @ w + b
    m = (z > 0).astype(F64)
    with validating():
        r = _neuron("activation_jacobian", (X, w, b), (RowScaled(m, X), Column(m)))
        assert r.passed and r.name == "neuron.activation_jacobian" and r.n_checked == 30
        assert r.n_evals == 7
        # reproducible: the direction is drawn from default_rng(seed), seed 0 by default
        rng = np.random.default_rng(0)
        v, db = rng.standard_normal(3), float(rng.standard_normal())
        want = RowScaled(m, X) @ v + m * db
        assert [e.analytic for e in r.worst] == [float(want[e.index]) for e in r.worst]
        # the error's first line names the method (the report below it names it too)
        first = (r"^fastjac validation mode: neuron\.activation_jacobian disagrees with "
                 r"finite differences\n")
        with pytest.raises(AssertionError, match=first):
            _neuron("activation_jacobian", (X, w, b), (RowScaled(m, X), Column(m * 1.001)))
        with pytest.raises(AssertionError, match=first):
            _neuron("activation_jacobian", (X, w, b), (RowScaled(m, X * 1.001), Column(m)))
        with pytest.raises(ValueError, match=r"^unknown neuron method 'loss'$"):
            _neuron("loss", (X, y, w, b), (1.0,))
        Xn = X.copy()
        Xn[3, 1] = np.nan
        assert _neuron("loss_grad", (Xn, y, w, b), (0.0, w * 0, 0.0)) is None
        assert _neuron("loss_grad", (X, y, w, np.inf), (0.0, w * 0, 0.0)) is None
        # any numeric form of a NaN input (here an object array) is recognised
        Xo = Xn.astype(object)
        assert _neuron("loss_grad", (Xo, y, w, b), (0.0, w * 0, 0.0)) is None
        C, gw, gb = _loss_grad(X, y, w, b)
        assert _neuron("loss_grad", (X, y, w, b), (C, w, gb)) is None  # out= was w itself
    with validating(False):
        assert _neuron("loss_grad", (X, y, w, b), (C + 1, gw, gb)) is None


# ---------------------------------------------------------------------------------------
# gradcheck: the assert_* twins pass their options on and raise with the report
# ---------------------------------------------------------------------------------------


def test_assert_variants_pass_options_and_report():
    from fastjac import gradcheck as G
    x = np.linspace(-1, 1, 5)
    f = lambda v: np.sum(np.sin(v))  # noqa: E731
    r = G.assert_grad(f, np.cos, x, coords=[1, 3], n_probes=0, name="ag")
    assert r.name == "ag" and r.n_checked == 2
    r = G.assert_diagonal(np.sin, np.cos, x, n_probes=0, name="ad")
    assert r.name == "ad" and r.n_evals == 7 + 2 * 2
    r = G.assert_jvp(np.sin, np.cos(x) * x, (x,), (x,), name="aj")
    assert r.name == "aj"
    ct = np.arange(5.0)
    pre = (np.cos(x) * ct,)  # precomputed for this cotangent only
    r = G.assert_vjp(np.sin, pre, (x,), ct, full=False, name="av")
    assert r.name == "av" and r.n_checked == 3
    with pytest.raises(G.GradCheckError):  # the default random cotangent does not match
        G.assert_vjp(np.sin, pre, (x,), full=False)
    with pytest.raises(G.GradCheckError) as info:
        G.assert_grad(f, lambda v: np.cos(v) * 1.01, x)
    assert info.value.report is not None and not info.value.report.passed
    assert str(info.value) == str(info.value.report)
    assert str(info.value).startswith("check_grad: FAILED")


# ---------------------------------------------------------------------------------------
# gradcheck: options and messages of the public checks
# ---------------------------------------------------------------------------------------


def test_check_grad_coordinates_and_probes():
    from fastjac.gradcheck import check_grad
    f = lambda v: np.sum(np.sin(v))  # noqa: E731
    x = np.linspace(0.1, 1, 1001)
    r = check_grad(f, np.cos, x[:1000], n_probes=0)
    assert r.n_checked == 1000 and r.notes == [] and r.n_evals == 1 + 6 * 1000
    r = check_grad(f, np.cos, x, n_probes=1)
    assert r.n_checked == 256 + 1 and r.n_evals == 1 + 6 * 257
    assert r.notes == ["256 of 1001 coordinates differenced (plus 1 probes)"]
    r = check_grad(f, np.cos, x[:10], coords=3, n_probes=0, seed=4)
    picked = np.sort(np.random.default_rng(4).choice(10, size=3, replace=False))
    assert sorted(e.index for e in r.worst) == picked.tolist()
    assert r.notes == ["3 of 10 coordinates differenced (plus 0 probes)"]
    r = check_grad(f, np.cos, x[:10], coords=10, n_probes=0)
    assert r.n_checked == 10 and r.notes == []
    r = check_grad(f, np.cos, x[:10], coords=np.array([[2], [5]]), n_probes=0)
    assert sorted(e.index for e in r.worst) == [2, 5]
    r = check_grad(f, np.cos, x[:10], coords="all", n_probes=3)
    assert r.n_checked == 13 and r.n_evals == 1 + 6 * 13
    probes = [e for e in check_grad(f, np.cos, x[:3], coords=[], n_probes=2).worst]
    assert sorted(e.index for e in probes) == ["probe 0", "probe 1"] and probes[0].x is None
    with pytest.raises(ValueError, match=r"^coords must be None, 'all', an int or indices, "
                                         r"got 'some'$"):
        check_grad(f, np.cos, x[:3], coords="some")
    # one coordinate: no probes (they would repeat the coordinate)
    r = check_grad(f, np.cos, x[:1], n_probes=5)
    assert r.n_checked == 1 and r.n_evals == 7
    with pytest.raises(ValueError, match=r"^f must return a scalar, got shape \(3,\)$"):
        check_grad(np.sin, np.cos, x[:3])
    assert check_grad(lambda v: np.sin(v[:1]), lambda v: np.r_[np.cos(v[:1]), 0, 0], x[:3])


def test_check_grad_probe_catches_an_unsampled_coordinate():
    from fastjac.gradcheck import check_grad
    f = lambda v: np.sum(np.sin(v))  # noqa: E731
    x = np.linspace(-1, 1, 50)
    bad = lambda v: np.cos(v) + (np.arange(v.size) == 49) * 1e-3  # noqa: E731
    r = check_grad(f, bad, x, coords=[0, 1], n_probes=2)
    assert not r and {e.index for e in r.worst if not e.ok} == {"probe 0", "probe 1"}
    r = check_grad(f, np.cos, x, coords=[0, 1], n_probes=2)
    assert r and all(e.x is None for e in r.worst if isinstance(e.index, str))
    assert all(e.x == x[e.index] for e in r.worst if not isinstance(e.index, str))


def test_check_diagonal_and_jvp_messages():
    from fastjac.gradcheck import check_diagonal, check_jvp, check_vjp
    x = np.linspace(-1, 1, 4)
    with pytest.raises(ValueError, match=r"^check_diagonal needs f\(x\) of x's size; f "
                                         r"returned \(2,\) for x of shape \(4,\)$"):
        check_diagonal(lambda v: v[:2], np.ones(4), x)
    with pytest.raises(ValueError, match=r"^got 1 tangents for 2 primals$"):
        check_jvp(np.multiply, np.ones(4), (x, x), (x,))
    with pytest.raises(ValueError, match=r"^tangent 1 has shape \(3,\), primal 1 has shape "
                                         r"\(4,\)$"):
        check_jvp(np.multiply, np.ones(4), (x, x), (x, x[:3]))
    with pytest.raises(ValueError, match=r"^cotangent has shape \(3,\), f returns \(4,\)$"):
        check_vjp(np.sin, (np.cos(x),), (x,), x[:3])
    with pytest.raises(ValueError, match=r"^vjp returned 2 cotangents for 1 primals$"):
        check_vjp(np.sin, lambda p, c: (c, c), (x,))
    with pytest.raises(ValueError, match=r"^vjp cotangent 0 has shape \(3,\), primal 0 has "
                                         r"shape \(4,\)$"):
        check_vjp(np.sin, lambda p, c: c[:3], (x,))
    # one primal: a bare array is accepted from vjp
    assert check_vjp(np.sin, lambda p, c: np.cos(p[0]) * c, (x,))
    assert check_vjp(np.sin, lambda p, c: [np.cos(p[0]) * c], x)


def test_check_diagonal_counts_and_floor():
    from fastjac.gradcheck import check_diagonal
    x = np.linspace(-1, 1, 8)
    for k in (0, 1, 4):
        r = check_diagonal(np.sin, np.cos, x, n_probes=k)
        assert r and r.n_evals == 7 + 2 * (k + 2) and r.n_checked == 8
    r = check_diagonal(np.sin, np.cos, x[:1], n_probes=3)
    assert r.n_evals == 7  # a single entry has nothing to couple with
    # each output's own |f| sets the rounding term, unless f_scale is given
    y = lambda v: np.r_[1e8 * np.sin(v[:1]), np.sin(v[1:])]  # noqa: E731
    d = lambda v: np.r_[1e8 * np.cos(v[:1]), np.cos(v[1:]) * (1 + 1e-7)]  # noqa: E731
    assert not check_diagonal(y, d, x, n_probes=0)
    assert check_diagonal(y, d, x, n_probes=0, f_scale=1e8)
    # kinks given by the caller: not compared
    r = check_diagonal(np.abs, np.sign, np.array([-1.0, 0.0, 2.0]), kinks=[1], n_probes=0)
    assert r and r.kinks == [1] and r.n_checked == 2


def test_check_jvp_zero_tangent_and_rounding_correction():
    from fastjac.gradcheck import check_jvp
    x = np.linspace(0.5, 2, 5)
    z = np.zeros(5)
    r = check_jvp(np.log, z, (x,), (z,))
    assert r and r.n_checked == 5 and r.n_evals == 1 and r.max_fd_bound == 0.0
    assert not check_jvp(np.log, np.full(5, 1e-3), (x,), (z,))
    # its allowance is the analytic value's own rounding, rho_a |a|: a tiny nonzero JVP
    # of a zero tangent is still wrong
    r = check_jvp(np.log, np.array([1e-9, 0, 0, 0, 2.0]), (x,), (z,))
    assert not r and r.max_round_bound == 8 * np.finfo(F64).eps * 2.0
    # steps taken exactly (eps = 2^-10, x and t dyadic): no correction, jvp is called once
    calls = []

    def jvp_once(p, t):
        calls.append(1)
        return np.cos(p[0]) * t[0]

    xe, te = np.array([1.0, 2.0, -3.0]), np.array([0.5, 0.25, -0.125])
    assert check_jvp(np.sin, jvp_once, (xe,), (te,), eps=2.0**-10) and len(calls) == 1
    # an empty primal next to another: the rounded-step correction still runs
    x5 = np.linspace(0.1, 1.0, 5).astype(np.float32)
    e = np.zeros(0, dtype=np.float32)
    r = check_jvp(lambda a, b: np.sin(a) + np.sum(b), lambda p, t: np.cos(p[0]) * t[0],
                  (x5, e), (x5.copy(), e), reference=False)
    assert r and r.n_checked == 5
    # float32 work: the applied tangent differs from t; a callable jvp is corrected for it
    x32 = np.linspace(1, 3, 7).astype(np.float32)
    t32 = np.linspace(-1, 1, 7).astype(np.float32) * 3.7
    f = lambda v: v * v * np.float32(3.0)  # noqa: E731
    jvp = lambda p, t: np.float32(6.0) * p[0] * t[0]  # noqa: E731
    r = check_jvp(f, jvp, (x32,), (t32,), reference=False)
    assert r, str(r)
    r64 = check_jvp(f, jvp(( x32,), (t32,)), (x32,), (t32,), reference=False)
    assert r.max_abs_err < r64.max_abs_err
    # a Python-float primal's tangent stays a float in the correction call
    seen = []

    def jvp_s(p, t):
        seen.append(type(t[1]))
        return 2.0 * p[0] * t[0] * p[1] + p[0] ** 2 * t[1]
    g = lambda a, s: a * a * s  # noqa: E731
    assert check_jvp(g, jvp_s, (x32, 1.5), (t32, 0.25), reference=False)
    assert float in seen and len(seen) >= 3
    # output index: flat for 1-D, a tuple for N-D
    r = check_jvp(np.sin, np.cos(x) * 2, (x.reshape(1, 5),), (np.full((1, 5), 2.0),))
    assert all(isinstance(e.index, tuple) and len(e.index) == 2 for e in r.worst)
    r = check_jvp(np.sin, np.cos(x) * 2, (x,), (np.full(5, 2.0),))
    assert all(type(e.index) is int for e in r.worst)


# ---------------------------------------------------------------------------------------
# _selfcheck: the catalogue's points cover what its docstring promises
# ---------------------------------------------------------------------------------------


def _spy_selfcheck(monkeypatch, dtype):
    """Run selfcheck's cases for one dtype, recording each check's name and primals."""
    from fastjac import _selfcheck
    calls = {}

    def spy(check):
        def run(f, a, primals, *rest, **kw):
            p = primals if isinstance(primals, tuple) else (primals,)
            calls[kw["name"]] = dict(f=f, primals=p, rest=rest, kw=kw)
            return check(f, a, primals, *rest, **kw)
        return run

    for c in ("check_diagonal", "check_jvp", "check_vjp"):
        monkeypatch.setattr(_selfcheck, c, spy(getattr(_selfcheck, c)))
    rep = _selfcheck.selfcheck(dtypes=(dtype,))
    return calls, rep


def _spans(a, lo, hi, frac=0.25):
    """All of ``a`` in [lo, hi], and the points reach both ends (within frac of the span)."""
    a = np.asarray(a, dtype=F64)
    w = (hi - lo) * frac
    return a.min() >= lo and a.max() <= hi and a.min() < lo + w and a.max() > hi - w


# Equivalent mutants of _binary_cases (and the same three of _fuse_cases, for its third
# input c moved off a near-tie with a·b): the max/min points moved off a near-tie with
# ``<= 0.1`` for ``< 0.1`` (a random difference of exactly 0.1 does not occur, and such a
# point is away from the tie either way), or by ``x - 0.3`` or ``x + 1.3`` for ``x + 0.3``
# (a point within 0.1 of the tie then lands 0.2 or more from it all the same: the catalogue
# promises points away from kinks, which the test checks, not where exactly they land).


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_selfcheck_catalogue_points(monkeypatch, dtype):
    from fastjac import ops
    calls, rep = _spy_selfcheck(monkeypatch, dtype)
    assert rep and all(r.status == "passed" for r in rep.rows)
    # each row is labelled with the name its check reports (the label alone names a row
    # whose check raised)
    assert all(r.op == r.report.name for r in rep.rows)
    assert len({r.op for r in rep.rows}) == len(rep.rows)
    rows = {r.op: r for r in rep.rows}
    dt = np.dtype(dtype)
    for name in ops.UNARY:
        x = calls[f"{name}.derivative"]["primals"][0]
        assert x.dtype == dt and x.shape == (24,)
        (x_jvp,), (t,) = calls[f"{name}.jvp"]["primals"], calls[f"{name}.jvp"]["rest"][0]
        assert x_jvp is x and t.dtype == dt and t.shape == (24,)
        assert calls[f"{name}.vjp"]["kw"]["seed"] == 1
        if name in ("log", "sqrt", "reciprocal"):  # positive, away from the pole
            assert _spans(x, 0.5, 3.0), (name, x)
        elif name in ("relu", "abs"):  # one point on the kink, the others 0.1 away
            assert x[0] == 0 and _spans(np.abs(x[1:]), 0.1, 2.1), (name, x)
            assert (x[1:] < 0).any() and (x[1:] > 0).any()
            assert rows[f"{name}.derivative"].kinks == 1, rows[f"{name}.derivative"]
        else:
            assert _spans(x, -2.0, 2.0), (name, x)
    # the scalar operands are drawn from the whole of [0.5, 1.5], a new one for each op
    ss = [calls[f"{name}.vjp[scalar w]"]["primals"][0] for name in ops.BINARY]
    assert _spans(ss, 0.5, 1.5) and len(set(ss)) == len(ss), ss
    for name in ops.BINARY:
        w, x = calls[f"{name}.jvp"]["primals"]
        assert w.dtype == dt and x.dtype == dt and w.shape == x.shape == (24,)
        assert _spans(w, -2.0, 2.0), (name, w)
        if name == "div":
            assert _spans(np.abs(x), 0.5, 2.5) and (x < 0).any() and (x > 0).any()
        elif name in ("maximum", "minimum"):
            assert x[0] == w[0] and np.all(np.abs(w[1:] - x[1:]) >= 0.1 - 1e-6)
            assert rows[f"{name}.jvp"].kinks == 1
        else:
            assert _spans(x, -2.0, 2.0), (name, x)
        s, xs = calls[f"{name}.vjp[scalar w]"]["primals"]
        assert type(s) is float and 0.5 <= s <= 1.5 and xs is x
        w2, s2 = calls[f"{name}.vjp[scalar x]"]["primals"]
        assert w2 is w and s2 == (s + 0.5 if name == "div" else s)
        seeds = [calls[f"{name}.{m}"]["kw"].get("seed") for m in
                 ("vjp", "vjp[scalar w]", "vjp[scalar x]")]
        assert seeds == [3, 4, 5]
        assert calls[f"{name}.sum_grad"]["rest"][0] == 1.0
    w, b = calls["neuron.loss_grad"]["primals"]
    assert w.shape == (5,) and w.dtype == dt and type(b) is float and abs(b) <= 0.3
    assert calls["neuron.loss_grad"]["kw"]["seed"] == 6
    w, b = calls["neuron.activation_jacobian"]["primals"]
    assert w.shape == (5,) and type(b) is float
    x = calls["chain(sin, square).derivative"]["primals"][0]
    assert _spans(x, -1.5, 1.5) and calls["chain(sin, square).vjp"]["kw"]["seed"] == 2
    w, x = calls["dot.grad"]["primals"]
    assert w.shape == x.shape == (24,) and calls["dot.grad"]["rest"][0] == 1.0
    x = calls["fuse(x + x**2).derivative"]["primals"][0]
    assert _spans(x, -2.0, 2.0)
    w, xd = calls["fuse(exp(w)*sin(x) + w/x).vjp"]["primals"]
    assert _spans(np.abs(xd), 0.5, 2.5) and _spans(w, -2.0, 2.0)
    s, xd2 = calls["fuse(exp(w)*sin(x) + w/x).vjp[scalar w]"]["primals"]
    assert type(s) is float and xd2 is xd
    a, b3, c3 = calls["fuse(3 inputs).vjp"]["primals"]
    assert np.all(np.abs(c3.astype(F64) - (a * b3).astype(F64)) >= 0.1 - 1e-6)
    # c is drawn from [-2, 2] like a and b (a point moved off a near-tie by +0.3 may
    # reach 2.3), one value per entry
    assert _spans(c3, -2.0, 2.3) and len(np.unique(c3)) == c3.size, c3
    assert [calls[k]["kw"]["seed"] for k in (
        "fuse(exp(w)*sin(x) + w/x).vjp", "fuse(exp(w)*sin(x) + w/x).vjp[scalar w]",
        "fuse(3 inputs).vjp")] == [5, 6, 7]
    tj = calls["fuse(exp(w)*sin(x) + w/x).jvp"]["rest"][0]
    np.testing.assert_array_equal(tj[1], tj[0][::-1])
    # every row runs in the dtype asked for (its array primals and tangents, and so its op)
    for name, c in calls.items():
        tangents = c["rest"][0] if c["rest"] and isinstance(c["rest"][0], tuple) else ()
        for p in c["primals"] + tangents:
            assert not isinstance(p, np.ndarray) or p.dtype == dt, (name, p.dtype)
    # the composite rows check the functions their labels name
    issue = lambda w, x: np.exp(w) * np.sin(x) + w / x  # noqa: E731
    refs = {"chain(sin, square).derivative": lambda x: np.sin(x ** 2),
            "chain(sin, square).vjp": lambda x: np.sin(x ** 2),
            "dot.grad": np.dot, "dot.jvp": np.dot,
            "fuse(x + x**2).derivative": lambda x: x + x ** 2,
            "fuse(exp(w)*sin(x) + w/x).vjp": issue,
            "fuse(exp(w)*sin(x) + w/x).vjp[scalar w]": issue,
            "fuse(exp(w)*sin(x) + w/x).jvp": issue,
            "fuse(3 inputs).vjp": lambda a, b, c: (np.tanh(a) * b + np.maximum(a * b, c) * c
                                                   - np.sqrt(b * b + 1.0))}
    tol = 64 * np.finfo(dt).eps
    for name, ref in refs.items():
        c = calls[name]
        y = np.asarray(c["f"](*c["primals"]), dtype=F64)
        r = ref(*(np.asarray(p, dtype=F64) for p in c["primals"]))
        np.testing.assert_allclose(y, r, rtol=tol, atol=tol * max(1.0, np.max(np.abs(r))),
                                   err_msg=name)
    # a sum_grad row differences the float64 sum of the op's values (for float32 data
    # too: a float32 sum would round each partial sum to float32)
    sum_ops = dict(ops.BINARY)
    sum_ops["elementwise(mul, f=exp, g=sin)"] = ops.elementwise(
        ops.BINARY["mul"], f=ops.UNARY["exp"], g=ops.UNARY["sin"])
    for name, op in sum_ops.items():
        c = calls[f"{name}.sum_grad"]
        vals = np.asarray(op(*c["primals"]), dtype=F64)
        total = c["f"](*c["primals"])
        assert np.asarray(total).dtype == F64, name
        assert abs(total - math.fsum(vals)) <= 1e-14 * np.sum(np.abs(vals)), name
    # the fused elementwise row checks exp(w) * sin(x), both components in place
    w, x = calls["elementwise(mul, f=exp, g=sin).jvp"]["primals"]
    y = calls["elementwise(mul, f=exp, g=sin).jvp"]["f"](w, x)
    ref = np.exp(w.astype(F64)) * np.sin(x.astype(F64))
    np.testing.assert_allclose(y.astype(F64), ref, rtol=8 * np.finfo(dt).eps, atol=0)


# Equivalent mutants of _neuron_cases: ``lg(...)[1:4]`` for ``[1:3]`` (loss_grad returns
# exactly (C, gw, gb)); ``np.asarray(Jw @ v, dtype=None)`` or ``np.asarray(Jb @ [db],
# dtype=None)`` (or without ``dtype``): both products are float arrays, their conversion to
# float64 is exact and the sum is float64 as soon as one term is, so the analytic JVP has
# the same values; ``np.asarray(g, dtype=None)`` (or without ``dtype``) for the loss
# gradients: ``1.0 * gw`` has the same values in float32, and the analytic rounding
# allowance is float32's either way for float32 data (the inputs' rounding unit bounds it
# from below). Each leaves both dtypes' neuron rows (values, bounds, entries) unchanged.


def _neuron_rows(monkeypatch, dt, seeds, run_checks):
    """Run ``_neuron_cases`` for each seed, recording the data each neuron function gets and
    each check's primals (the checks run only with ``run_checks``)."""
    from fastjac import _selfcheck, neuron
    data, checks = [], []
    for name in ("activation", "activation_jacobian", "loss", "loss_grad"):
        def rec(*a, _f=getattr(neuron, name), _name=name, **k):
            data.append((_name, a))
            return _f(*a, **k)
        monkeypatch.setattr(neuron, name, rec)
    for c in ("check_jvp", "check_vjp"):
        def spy(f, a, primals, *rest, _c=getattr(_selfcheck, c), **kw):
            checks.append(dict(name=kw["name"], primals=primals, rest=rest, kw=kw))
            return _c(f, a, primals, *rest, **kw) if run_checks else None
        monkeypatch.setattr(_selfcheck, c, spy)
    reports = {}
    for s in seeds:
        for label, thunk in _selfcheck._neuron_cases(dt, np.random.default_rng(s)):
            reports[label] = thunk()
    return data, checks, reports


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_selfcheck_neuron_rows(monkeypatch, dtype):
    from fastjac import _reference
    dt = np.dtype(dtype)
    data, checks, reports = _neuron_rows(monkeypatch, dt, [0], run_checks=True)
    assert sorted(reports) == ["neuron.activation_jacobian", "neuron.loss_grad"]
    assert all(r.passed and r.n_checked > 0 for r in reports.values())
    # every neuron function runs on the catalogue's batch: N = 40 samples of n = 5
    # features, X and y in the dtype asked for (float64 data would check the float64
    # kernels in a float32 row)
    assert {name for name, _ in data} == {"activation", "activation_jacobian", "loss",
                                          "loss_grad"}
    for name, a in data:
        assert type(a[0]) is np.ndarray and a[0].shape == (40, 5) and a[0].dtype == dt, name
        if name in ("loss", "loss_grad"):
            y = a[1]
            assert type(y) is np.ndarray and y.shape == (40,) and y.dtype == dt, name
    # the loss_grad row is a VJP with cotangent 1: its analytic entries are the loss
    # gradient itself, (gw_j at index (0, j), gb at (1,)), as NumPy computes it
    (call,) = [c for c in checks if c["name"] == "neuron.loss_grad"]
    assert call["rest"][0] == 1.0
    X, y = (np.asarray(v, dtype=F64) for v in next(a for n, a in data if n == "loss")[:2])
    w, b = call["primals"]
    _, gw, gb = _reference.loss_grad(X, y, np.asarray(w, dtype=F64), b)
    coords = [e for e in reports["neuron.loss_grad"].worst if not isinstance(e.index, str)]
    assert coords
    tol = 1e-12 if dt == F64 else 1e-5
    for e in coords:
        ref = gw[e.index[1]] if e.index[0] == 0 else gb
        assert e.analytic == pytest.approx(ref, rel=tol, abs=tol), e


def test_selfcheck_neuron_bias_range(monkeypatch):
    # b is drawn from the whole of [-0.3, 0.3], a new value for each seed
    _, checks, _ = _neuron_rows(monkeypatch, F64, range(32), run_checks=False)
    bs = [c["primals"][1] for c in checks if c["name"] == "neuron.loss_grad"]
    assert len(bs) == 32 and len(set(bs)) == 32 and all(type(v) is float for v in bs)
    assert _spans(bs, -0.3, 0.3), bs


def test_selfcheck_fused_scalar_range(monkeypatch):
    # the fused row's scalar operand is drawn from the whole of [0.5, 1.5], a new value for
    # each seed (the checks themselves are not run here)
    from fastjac import _selfcheck
    seen = []

    def spy(f, a, primals, *rest, **kw):
        seen.append((kw["name"], primals))

    for c in ("check_diagonal", "check_jvp", "check_vjp"):
        monkeypatch.setattr(_selfcheck, c, spy)
    for s in range(32):
        for _, thunk in _selfcheck._fuse_cases(F64, np.random.default_rng(s), 24):
            thunk()
    ss = [p[0] for name, p in seen if name == "fuse(exp(w)*sin(x) + w/x).vjp[scalar w]"]
    assert len(ss) == 32 and len(set(ss)) == 32 and all(type(v) is float for v in ss)
    assert _spans(ss, 0.5, 1.5), ss


def test_selfcheck_seed_and_failure_detail(monkeypatch):
    from fastjac import _selfcheck
    from fastjac.gradcheck import check_diagonal
    # every dtype's cases draw from a fresh default_rng(seed), seed 0 by default
    first = []

    def record(dt, rng, *a, **k):
        first.append((np.dtype(dt).name, rng.standard_normal()))
        return iter(())

    monkeypatch.setattr(_selfcheck, "_selfcheck_cases", record)
    _selfcheck.selfcheck()
    _selfcheck.selfcheck(dtypes=("float32",), seed=5)
    z0 = np.random.default_rng(0).standard_normal()
    z5 = np.random.default_rng(5).standard_normal()
    assert first == [("float64", z0), ("float32", z0), ("float32", z5)]
    # a failed row's detail: the report's problems after the first (the count of failing
    # entries, shown in the row's own columns), the empty ones left out, joined by "; "
    # and cut at 120 characters
    x = np.linspace(0.1, 1.0, 6)
    long = "z" * 200

    def failing(problems):
        def thunk():
            rep = check_diagonal(np.sin, np.cos(x) * 1.01, x)
            rep.problems = problems
            return rep
        return thunk

    monkeypatch.setattr(_selfcheck, "_selfcheck_cases", lambda dt, rng: iter([
        ("two", failing(["6 of 6 entries exceed their bound", "first", "", "second"])),
        ("long", failing(["6 of 6 entries exceed their bound", "a", long]))]))
    rows = _selfcheck.selfcheck(dtypes=("float64",)).rows
    assert [(r.op, r.status) for r in rows] == [("two", "FAILED"), ("long", "FAILED")]
    assert rows[0].detail == "first; second"
    assert rows[1].detail == ("a; " + long)[:120]


def test_check_jvp_options_reach_the_report():
    from fastjac.gradcheck import check_jvp
    x = np.linspace(-1, 1, 6).astype(np.float32)
    t = np.linspace(0.5, -0.7, 6).astype(np.float32)

    def jvp(p, tt):
        return np.cos(p[0]) * tt[0]

    # float32: the float64 re-run, the analytic dtype, and the error split into its
    # finite-difference and float32-rounding parts
    r = check_jvp(np.sin, jvp, (x,), (t,))
    assert r and (r.dtype, r.reference, r.notes) == ("float32", "float64 re-run", [])
    assert r.fd_rel_err is not None and r.round_rel_err is not None
    assert r.fd_rel_err < 1e-8 < r.round_rel_err < 1e-6
    # a zero tangent has no line to difference, hence no split
    r = check_jvp(np.sin, jvp, (x,), (np.zeros_like(t),))
    assert r and r.fd_rel_err is None and r.round_rel_err is None
    # the evaluator's notes reach the report
    r = check_jvp(lambda v: np.sin(v) * (1.0 if v.dtype == np.float32 else 2.0), jvp, (x,),
                  (t,))
    assert r.notes == ["float64 re-run of f disagrees with the float32 run; differences in "
                       "float32"]
    # kinks (a callable, called with the primals) are reported, not failed
    seen = []

    def at_first(v):
        seen.append(v)
        return v == v[0]

    r = check_jvp(np.abs, lambda p, tt: np.sign(p[0]) * tt[0], (x,), (t,), kinks=at_first)
    assert r and r.kinks == [0] and len(seen) == 1 and np.array_equal(seen[0], x)
    # rtol and atol loosen the bound
    x64, t64 = x.astype(F64), t.astype(F64)
    off = lambda p, tt: jvp(p, tt) * 1.001  # noqa: E731
    assert not check_jvp(np.sin, off, (x64,), (t64,))
    assert check_jvp(np.sin, off, (x64,), (t64,), rtol=1e-2)
    shifted = lambda p, tt: jvp(p, tt) + 1e-3  # noqa: E731
    assert not check_jvp(np.sin, shifted, (x64,), (t64,))
    assert check_jvp(np.sin, shifted, (x64,), (t64,), atol=1e-2)


# The corrections' values combined in the jvp's own dtype (``np.asarray(jvp(...),
# dtype=None)`` or without ``dtype``: ``4 c1 - c0`` rounded to float32 for a float32 jvp)
# are killed by test_check_jvp_corrections_combined_in_float64 below: with power-of-two
# steps and an exact float32 jvp, the corrections themselves carry no rounding.
# Equivalent: ``reshape(-2)`` of a correction (any negative size means "the rest").


def test_check_jvp_corrections_keep_the_analytic_dtype():
    # the correction for rounded steps (float32 differences) calls jvp again with
    # tangents te - t: in the analytic result's dtype, so that a float32-only jvp (a
    # compiled kernel's signature) is called as the caller calls it
    from fastjac.gradcheck import check_jvp
    # (and in the primal's shape, here 3 x 3)
    x = np.linspace(-1.3, 1.7, 9).astype(np.float32).reshape(3, 3)
    t = np.linspace(0.5, -0.7, 9).astype(np.float32).reshape(3, 3)
    seen = []

    def jvp32(p, tt):
        seen.append(tt[0].dtype)
        if p[0].dtype != np.float32 or tt[0].dtype != np.float32:
            raise TypeError("float32 only")
        assert tt[0].shape == (3, 3)
        return np.cos(p[0]) * tt[0]

    r = check_jvp(np.sin, jvp32, (x,), (t,), reference=False)
    assert r.passed and len(seen) >= 3 and set(seen) == {np.dtype(np.float32)}, seen
    # an integer JVP (integer tangents of a linear f, computed exactly in float64 at the
    # float32 points) gets float64 correction tangents:
    # in its own dtype they would truncate to 0, leaving the rounded steps' error
    # (~eps32^(2/3) relative) in the numeric JVP
    ti = np.arange(-4, 5).reshape(3, 3)
    r = check_jvp(lambda v: 3 * v.astype(F64), lambda p, tt: 3 * tt[0], (x,), (ti,),
                  reference=False)
    assert r.passed and r.worst
    for e in r.worst:
        assert e.numeric == pytest.approx(3 * ti[tuple(e.index)], rel=1e-9, abs=1e-9), e
    # an integer JVP has no rounding of its own: its allowance is the inputs' (float32)
    # alone, and an integer JVP off by one is caught
    assert r.max_round_bound < 1e-4
    off = check_jvp(lambda v: 3 * v.astype(F64), lambda p, tt: 3 * tt[0] + 1, (x,), (ti,),
                    reference=False)
    assert not off


# Equivalent mutants of check_grad (and check_jvp): ``reference="XXautoXX"`` or ``"AUTO"``
# for the default ``"auto"`` (the evaluator tells apart only a callable and False/None/"none";
# every other value means "auto"). Of _validated and selfcheck: ``validating(None)`` for
# ``validating(False)`` (the flag is ``bool(enabled)``). Of selfcheck: ``float("NAN")``
# for ``float("nan")`` (float() reads the name in any case).


def _checks():
    from fastjac.gradcheck import check_diagonal, check_grad, check_jvp, check_vjp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    t = np.array([0.5, -0.25, 1.0, 0.75])

    def f(v):
        return np.sin(v) * v

    def d(v):
        return np.sin(v) + v * np.cos(v)

    return {
        "grad": lambda **k: check_grad(lambda v: float(np.sum(f(v))), d, x, **k),
        "jvp": lambda **k: check_jvp(f, d(x) * t, (x,), (t,), **k),
        "vjp": lambda **k: check_vjp(f, (d(x) * t,), (x,), t, **k),
        "diagonal": lambda **k: check_diagonal(f, d, x, **k),
    }


@pytest.mark.parametrize("check", ["grad", "jvp", "vjp", "diagonal"])
def test_check_options_reach_the_steps_and_bounds(check):
    run = _checks()[check]
    r0 = run()
    assert r0.passed

    def numeric(r):
        return [(e.index, e.numeric) for e in r.worst]

    def top(r):
        return max(e.bound for e in r.worst)

    # eps (the relative step), f_scale (the magnitude f's rounding is taken relative to)
    # and ulps (the rounding allowance) each reach the differences or the bound
    assert numeric(run(eps=1e-2)) != numeric(r0)
    assert top(run(f_scale=1e9)) > 100 * top(r0)
    assert top(run(ulps=1e7)) > top(r0)
    # ulps reaches the finite-difference part too (rounding of f: 3 rho F / h), not only
    # the analytic rounding allowance
    assert run(ulps=1e7).max_fd_bound > 1e3 * r0.max_fd_bound
    # the default name is the check's own
    assert r0.name == f"check_{check}"
    if check in ("grad", "vjp"):
        # random probe directions from default_rng(seed), seed 0 by default
        def probes(r):
            return [(e.index, e.analytic) for e in r.worst if isinstance(e.index, str)]
        assert probes(r0) and probes(r0) == probes(run(seed=0))
        assert probes(r0) != probes(run(seed=1))

        # the probes' own bounds take ulps and f_scale too
        def top_probe(r):
            return max(e.bound for e in r.worst if isinstance(e.index, str))
        assert top_probe(run(ulps=1e7)) > top_probe(r0)
        assert top_probe(run(f_scale=1e9)) > 100 * top_probe(r0)


def test_validation_hooks_run_the_referee_with_validation_off():
    # no recursion: the value functions the referee calls run with validation mode off
    from fastjac import _config, _validation
    x = np.array([0.3, -1.2, 0.7, 2.0])
    seen = []

    def value(v):
        seen.append(_config.is_validating())
        return np.sin(v)

    with _config.validating(True):
        assert _validation.cross_check(value, "derivative", (x,), None, np.cos(x), "t").passed
    assert seen and not any(seen)


# Equivalent mutants of check_grad's coordinate choice: ``replace=None`` for
# ``replace=False`` in ``rng.choice`` (tested for truth), and ``reshape(-2)`` of explicit
# coordinates, of the analytic gradient or of its float64 re-run in the error split
# (NumPy 2.x takes any negative size as "the rest").


def test_check_grad_coordinates_and_analytic_forms():
    from fastjac.gradcheck import check_grad
    x = np.array([[0.3, -1.2, 0.7], [2.0, -0.4, 1.1]])

    def f(v):
        return float(np.sum(np.sin(v) * v))

    def g(v):
        return np.sin(v) + v * np.cos(v)

    def entries(r):
        return [(e.index, e.analytic, e.numeric) for e in r.worst]

    r_all = check_grad(f, g, x)
    assert r_all.passed and r_all.n_checked == 6 + 2  # 6 coordinates (2-D x) and 2 probes
    # an int of at least the size differences every coordinate, drawing nothing from the
    # generator: the probes are the same as with "all"
    for k in (6, 10):
        assert entries(check_grad(f, g, x, coords=k)) == entries(r_all)
    r3 = check_grad(f, g, x, coords=3)
    assert r3.n_checked == 3 + 2 and "3 of 6 coordinates differenced (plus 2 probes)" in r3.notes
    # the gradient as an array (not a callable) gives the same report
    assert entries(check_grad(f, g(x), x)) == entries(r_all)
    assert entries(check_grad(f, g(x).tolist(), x)) == entries(r_all)


def test_check_grad_probe_bound_scales_with_ulps():
    # at a stationary point the probe's bound is f's rounding along the line, rho / s with
    # rho = ulps eps: ulps 1e7 (vs 8) must raise it about a million times, not just the
    # analytic-rounding part
    from fastjac.gradcheck import check_grad
    x = np.zeros(4)

    def f(v):
        return float(np.sum(np.cos(v)))

    def g(v):
        return -np.sin(v)

    def top_probe(r):
        return max(e.bound for e in r.worst if isinstance(e.index, str))

    assert top_probe(check_grad(f, g, x, ulps=1e7)) > 1e5 * top_probe(check_grad(f, g, x))


def test_check_grad_analytic_messages_and_its_own_rounding():
    from fastjac.gradcheck import check_grad
    x = np.array([0.3, -1.2, 0.7, 2.0])

    def f(v):
        return float(np.sum(np.sin(v) * v))

    def g(v):
        return np.sin(v) + v * np.cos(v)

    with pytest.raises(ValueError, match=r"^grad\(x\) has 3 entries, expected 4$"):
        check_grad(f, lambda v: g(v)[:3], x)
    with pytest.raises(TypeError, match=r"^grad\(x\) must be real, got dtype complex128$"):
        check_grad(f, g(x) + 0j, x)
    # a float32 gradient of a float64 function is allowed its own rounding (eps32), and
    # is still held to it
    r32 = check_grad(f, g(x).astype(np.float32), x)
    assert r32.passed and r32.max_round_bound > 1e6 * check_grad(f, g(x), x).max_round_bound
    off = (g(x) * (1 + 1e-4)).astype(np.float32)
    assert not check_grad(f, off, x).passed


def test_analytic_size_messages_and_float32_allowance_of_every_check():
    from fastjac.gradcheck import check_diagonal, check_jvp, check_vjp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    t = np.array([0.5, -0.25, 1.0, 0.75])
    d = np.cos(x)
    with pytest.raises(ValueError, match=r"^derivative\(x\) has 3 entries, expected 4$"):
        check_diagonal(np.sin, d[:3], x)
    with pytest.raises(ValueError, match=r"^jvp\(primals, tangents\) has 3 entries, "
                                         r"expected 4$"):
        check_jvp(np.sin, (d * t)[:3], (x,), (t,))
    # a float32 analytic result of a float64 function is allowed its own rounding
    runs = {
        "diagonal": (lambda a: check_diagonal(np.sin, a, x), d),
        "jvp": (lambda a: check_jvp(np.sin, a, (x,), (t,)), d * t),
        "vjp": (lambda a: check_vjp(np.sin, (a,), (x,), t), d * t),
    }
    for name, (run, a) in runs.items():
        r32, r64 = run(a.astype(np.float32)), run(a)
        assert r32.passed, name
        assert r32.max_round_bound > 1e6 * r64.max_round_bound, name


# Equivalent mutant of check_grad's (and check_jvp's) analytic rounding unit:
# ``_eps(a.dtype)`` taken for an integer gradient too (``or True``): that is float64's
# eps, never more than the inputs' own rounding unit, which the max() takes anyway.
# Of check_jvp: ``reshape(-2)`` of the analytic result (NumPy 2.x takes any negative size
# as "the rest").


def test_check_grad_integer_gradient_has_no_rounding_allowance():
    from fastjac.gradcheck import check_grad
    x = np.array([1.0, 2.0, 3.0, 4.0])

    def f(v):
        return float(np.sum(v ** 2)) / 2

    r = check_grad(f, np.array([1, 2, 3, 4]), x)
    assert r.passed and r.max_round_bound < 1e-12
    assert not check_grad(f, np.array([1, 2, 3, 5]), x).passed


# Equivalent mutants in check_grad's (and check_jvp's) body: ``a.astype(None)`` and
# ``xw[sel].astype(None)`` for ``astype(float64)`` (None means float64), and ``hs`` made
# with a fourth row (only rows 0-2, the three levels, are read).
# Of _scalar_out: ``a.reshape(None)`` for ``a.reshape(())`` keeps a size-1 result's
# shape (1,) (or (1, 1)); check_grad reads the values flat (``reshape(-1)``) and
# never uses the output shape, so the report is the same.


def test_check_grad_coordinate_bounds_scale_and_floor():
    from fastjac.gradcheck import check_grad

    def f(v):
        return float(np.sum(1000.0 * v))

    x = np.array([0.0, 2.0, -2.0])
    g = np.full(3, 1000.0)

    def coord_bounds(r):
        return {e.index: e.bound for e in r.worst if not isinstance(e.index, str)}

    # f's magnitude along coordinate j is taken as max(1, |x_j|) |f'|: with steps
    # proportional to max(1, |x_j|) too, the bound of a linear f is the same at 0 and 2
    b = coord_bounds(check_grad(f, g, x, n_probes=0))
    assert 0.9 < b[0] / b[1] < 1.2 and b[1] == b[2]
    # f_scale is a floor of that magnitude for the coordinates too (not only the probes)
    b9 = coord_bounds(check_grad(f, g, x, n_probes=0, f_scale=1e9))
    assert all(b9[j] > 1e5 * b[j] for j in b)
    # a float32 input's rounding unit bounds the analytic rounding, whatever its dtype
    x1 = np.array([0.3, -1.2, 0.7, 2.0])
    h = lambda v: float(np.sum(np.sin(v) * v))  # noqa: E731
    d = np.sin(x1) + x1 * np.cos(x1)
    r32 = check_grad(h, d, x1.astype(np.float32))
    assert r32.max_round_bound > 1e6 * check_grad(h, d, x1).max_round_bound


def test_check_grad_probes_and_kink_callable():
    from fastjac.gradcheck import check_grad

    def f(v):
        return float(np.sum(v ** 2))

    x = np.array([1.0, 10.0])

    def probes(r):
        return [e.analytic for e in r.worst if isinstance(e.index, str)]

    # a probe direction is z_j max(1, |x_j|), z ~ default_rng(seed).standard_normal(n):
    # <e_1, t> / <e_0, t> is 10 z_1 / z_0 here (the common scale of t cancels)
    p0 = probes(check_grad(f, np.array([1.0, 0.0]), x, n_probes=1, coords=[]))
    p1 = probes(check_grad(f, np.array([0.0, 1.0]), x, n_probes=1, coords=[]))
    z = np.random.default_rng(0).standard_normal(2)
    assert p1[0] / p0[0] == pytest.approx(10 * z[1] / z[0], rel=1e-12)
    # two coordinates already get probes (one coordinate does not: they would repeat it)
    assert check_grad(f, 2 * x, x).n_checked == 2 + 2
    # kinks as a callable is called with x
    seen = []

    def kinks(v):
        seen.append(np.array(v))
        return v == 0

    r = check_grad(lambda v: float(np.sum(np.abs(v))), np.sign, np.array([0.0, 1.0, -2.0]),
                   kinks=kinks)
    assert r.passed and r.kinks[0] == 0
    assert len(seen) == 1 and seen[0].tolist() == [0.0, 1.0, -2.0]


# Equivalent mutants of check_grad's probes: ``astype(None)`` (float64) for the scale of
# the direction, and ``break`` for ``continue`` after a zero direction (a standard
# normal direction is never zero, so neither statement runs).


def test_check_grad_probe_corrects_the_rounded_steps():
    # float32 differences (reference=False) of a linear f computed exactly in float64: the
    # points x + s t are rounded to float32, so the steps taken differ from s t; the
    # probe corrects its Richardson estimate by <grad, t_taken - t> per level, which
    # leaves only the float64 rounding of f (about 1e-13 relative here)
    from fastjac.gradcheck import check_grad
    c = np.array([0.7, -1.3, 2.1, 0.4, 1.9])
    x = np.array([0.3, -1.7, 2.9, 0.11, 5.5], dtype=np.float32)

    def f(v):
        return float(np.sum(c * np.asarray(v, dtype=F64)))

    r = check_grad(f, c, x, reference=False, n_probes=3)
    probes = [e for e in r.worst if isinstance(e.index, str)]
    assert r.passed and r.reference == "none" and probes
    assert all(e.rel_err < 1e-9 and np.isfinite(e.bound) for e in probes)


def test_check_grad_probes_only_report_their_bound_parts():
    # with no coordinate differenced, the report's bound parts come from the probes alone
    from fastjac.gradcheck import check_grad
    x = np.array([0.3, -1.7, 2.9])
    r = check_grad(lambda v: float(np.sum(np.sin(v))), np.cos, x, coords=[], n_probes=2)
    assert r.passed and r.n_checked == 2
    assert 1e-12 < r.max_fd_bound < 1e-6 and 1e-17 < r.max_round_bound < 1e-12


def test_check_grad_rounding_allowance_terms():
    # the analytic rounding allowance rho_a (|a| + q |f''| + F / q), term by term, where
    # each can be read off exactly (the module docstring's Method)
    from fastjac.gradcheck import check_grad
    rho_a = 8 * np.finfo(F64).eps
    # a coordinate of sin at 0 with a large step (eps=0.5, h = 0.5): f'' = 0 (sin is odd),
    # |f| <= sin(0.5) on the line, so F is the floor q |D(h)| = sin(0.5) / 0.5 (the
    # difference at the step h itself, not at h/2: sin(0.25) / 0.25 is 3% more)
    r = check_grad(lambda v: float(np.sum(np.sin(v))), np.cos, np.array([0.0]), eps=0.5)
    assert r.passed and r.n_checked == 1
    assert r.max_round_bound == pytest.approx(rho_a * (1 + math.sin(0.5) / 0.5), rel=1e-12,
                                              abs=0)
    # a probe of 1000 + sum(sin) at 0 along t = z (x = 0): q = 1 / max|z|, F = 1000 (to
    # 1e-7; f_scale is 1000 too), f'' ~ 0, so the allowance is rho_a (Σ|t_i| + 1000 max|z|)
    z = np.random.default_rng(0).standard_normal(2)
    r = check_grad(lambda v: 1000.0 + float(np.sum(np.sin(v))), np.cos, np.zeros(2),
                   coords=[], n_probes=1)
    assert r.passed and r.n_checked == 1
    expected = rho_a * (np.sum(np.abs(z)) + 1000.0 * np.max(np.abs(z)))
    assert r.max_round_bound == pytest.approx(expected, rel=1e-6, abs=0)


# ---------------------------------------------------------------------------------------
# check_diagonal: defaults, rounding allowance, partitions and the coupling message
# ---------------------------------------------------------------------------------------

# Equivalent mutants of check_diagonal: ``reference="XXautoXX"`` or ``"AUTO"`` (as for
# check_grad: every value but a callable and False/None/"none" means "auto");
# ``_Evaluator(..., ulps)`` given None or left out (the evaluator reads its ``ulps`` only
# in ``_direction``, which check_diagonal never calls: its lines and probes take ``rho``
# from check_diagonal's own ``ulps``); ``reshape(-2)`` of the analytic diagonal;
# ``_eps(a.dtype)`` taken for an integer derivative too (float64's eps, never above the
# input's rounding unit that max() takes anyway); ``astype(None)`` for
# ``astype(float64)`` (None means float64) of the scale ``q``, of ``a`` and of the x
# values reported; and the diagonality probes run for a single entry (``n > 1`` made
# ``or True`` or ``n >= 1``): with one coordinate every partition moves all or nothing,
# so no partition is evaluated and the report is the same.
# Of _diagonal_probes: ``break`` for ``continue`` when a partition moves all or nothing
# (a part moves nothing exactly when its complement moves everything, so the complement,
# the only statement skipped, would be skipped anyway); ``float("INF")`` for
# ``float("inf")``; ``astype(None)`` in the steps ``h``. Equivalent in practice, not in
# principle: ``rng.random(n) <= 0.5`` for ``< 0.5`` differs only when a draw is exactly
# 0.5, which has probability 2**-53 per draw (no seed that shows it can be found).


def test_check_diagonal_defaults_counts_and_reported_points():
    from fastjac.gradcheck import check_diagonal
    x = np.linspace(-1.3, 1.1, 8)
    r = check_diagonal(np.sin, np.cos, x)
    # n_probes=3 by default: 7 evaluations for the derivative, two per partition
    # (alternate coordinates, halves and 3 random ones)
    assert r.passed and r.n_evals == 7 + 2 * (3 + 2) and r.n_checked == 8
    # each entry reports its own x
    assert r.worst and all(e.x == x[e.index] for e in r.worst)
    # two entries already get the diagonality probes: a coupling is caught
    r2 = check_diagonal(lambda v: v + 0.5 * v[::-1], np.full(2, 1.5), np.array([0.3, 0.6]))
    assert not r2 and r2.problems and r2.problems[0].startswith("NOT DIAGONAL")


def test_check_diagonal_analytic_rounding_unit():
    from fastjac.gradcheck import check_diagonal
    x = np.array([0.5, -1.0, 2.0, 3.0])
    # an integer derivative has no rounding of its own, and is held to that
    r = check_diagonal(lambda v: 3 * v, np.full(4, 3), x)
    assert r.passed and r.max_round_bound < 1e-12
    assert not check_diagonal(lambda v: 3 * v, np.array([3, 3, 3, 4]), x)
    # float32 inputs: the analytic values are allowed the inputs' rounding unit
    # (float32's), even when the derivative itself is float64
    x32 = x.astype(np.float32)
    d = np.cos(x32.astype(F64))
    r32 = check_diagonal(np.sin, d, x32)
    assert r32.passed and r32.max_round_bound > 1e6 * check_diagonal(np.sin, d, x).max_round_bound


@pytest.mark.parametrize("c0, scale", [(0.0, 1.0), (1000.0, 1.0), (0.0, 1e-6)])
def test_check_diagonal_rounding_allowance_terms(c0, scale):
    # rho_a (|a| + q |f''| + F / q) with f = c0 + scale sin at x = 0 and a large step
    # (eps=0.5, h = 0.5): f'' = 0 (the differences are symmetric), q = 1 and
    # F = max(c0 + scale sin(0.5), |D(h)|) with D(h) = scale sin(0.5) / 0.5 (the
    # difference at the step h, not h/2), with no floor of its own (f_scale not given)
    from fastjac.gradcheck import check_diagonal
    rho_a = 8 * np.finfo(F64).eps
    r = check_diagonal(lambda v: c0 + scale * np.sin(v), lambda v: scale * np.cos(v),
                       np.array([0.0]), eps=0.5)
    assert r.passed and r.n_checked == 1
    F = max(c0 + scale * math.sin(0.5), scale * math.sin(0.5) / 0.5)
    assert r.max_round_bound == pytest.approx(rho_a * (scale + F), rel=1e-12, abs=0)


def test_check_diagonal_partitions_are_the_documented_ones():
    # alternate coordinates, the first half (n // 2), then n_probes random subsets
    # default_rng(seed + 1).random(n) < 0.5, each with its complement; a partition that
    # moves all or nothing is skipped
    from fastjac.gradcheck import check_diagonal
    for n, seed, kw in ((7, 5, {"seed": 5}), (9, 0, {}), (6, 2, {"seed": 2, "n_probes": 5})):
        x = np.linspace(-0.9, 0.8, n)
        seen = []

        def f(v):
            seen.append(np.array(v))
            return np.sin(v)

        assert check_diagonal(f, np.cos, x, **kw)
        idx = np.arange(n)
        rng = np.random.default_rng(seed + 1)
        parts = [idx % 2 == 0, idx < n // 2]
        parts += [rng.random(n) < 0.5 for _ in range(kw.get("n_probes", 3))]
        expected = [m for p in parts for m in (p, ~p) if m.any() and not m.all()]
        moved = [v != x for v in seen[7:]]
        assert len(moved) == len(expected), n
        for a, b in zip(moved, expected):
            assert a.tolist() == b.tolist(), n


def test_check_diagonal_coupling_message_exactly():
    from fastjac import _fd
    from fastjac.gradcheck import check_diagonal
    # two entries, output 0 depends on x_1 too; a large step (eps=0.1) so that the
    # coupling x_1**2 differs to the message's 4 digits between +h and -h
    x = np.array([0.3, 0.6])

    def f(v):
        return np.array([np.sin(v[0]) + v[1] ** 2, np.sin(v[1])])

    r = check_diagonal(f, lambda v: np.cos(v), x, eps=0.1, seed=3)
    xp = _fd._coord_steps(x, 0.1)[0][0]
    h = xp[1] - x[1]
    delta = abs(f(np.array([x[0], xp[1]]))[0] - f(x)[0])
    rng = np.random.default_rng(4)
    count = 2 + sum(int(p[0] != p[1]) for p in (rng.random(2) < 0.5 for _ in range(3)))
    assert r.problems[-1:] == [
        f"NOT DIAGONAL: output 0 changed by {delta:.3e} when only 1 other inputs were "
        f"perturbed (coupling ~ {delta / h:.3e}; {count} such outputs in all) - f couples "
        "coordinates, its Jacobian is not diagonal"
    ]
    # the worst coupling over all partitions is reported, not the first one found:
    # output 3 moves by 0.5 h when x_0 moves (alternate coordinates, first), by h when
    # x_0 and x_1 move (first half; x > 0: the steps have the same sign)
    g = lambda v: np.sin(v) + np.r_[0, 0, 0, 0.5 * v[0] + 0.5 * v[1]]  # noqa: E731
    r = check_diagonal(g, np.cos, np.array([0.1, 0.2, 0.3, 0.4]), n_probes=0)
    assert not r and "output 3 changed" in r.problems[-1]
    assert "(coupling ~ 1.000e+00;" in r.problems[-1], r.problems


def test_check_diagonal_coupling_without_a_step_or_at_infinity():
    # an infinite coupling where the moved inputs' step is 0 or not finite, and no
    # warning from the probes' comparisons
    from fastjac.gradcheck import check_diagonal
    calls = []

    def noisy(v):  # not a function of x: its outputs change at every call
        calls.append(1)
        return v + 1e-3 * len(calls)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # eps=1e-300: the steps vanish (x + h == x), the outputs change all the same
        r = check_diagonal(noisy, np.ones(4), np.array([1.0, 2.0, 3.0, 4.0]), eps=1e-300)
        assert not r and "coupling ~ inf;" in r.problems[-1], r.problems
        # an output that is infinite everywhere (inf - inf in the comparisons) is not
        # compared, and the other outputs are
        inf0 = lambda v: np.where(np.arange(v.size) == 0, np.inf, np.sin(v))  # noqa: E731
        r = check_diagonal(inf0, np.cos, np.array([0.5, 0.25, 0.75]))
        assert r.passed and r.nonfinite == [0] and r.n_checked == 2

    # x_0 = the largest double: its step overflows (x_0 + h = inf, h = inf); moving x_0
    # and x_2 turns output 1 infinite and changes output 3: an infinite coupling, without
    # the warning of inf / inf (an input that is not finite is refused: see below)
    def f(v):
        return v + 0.5 * np.roll(v, 1)

    def d(v):
        return np.ones_like(v)

    x = np.array([np.finfo(np.float64).max, 0.5, 0.25, 0.75])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = check_diagonal(f, d, x, n_probes=0)
    assert not r and "coupling ~ inf;" in r.problems[-1], r.problems
    assert "NOT DIAGONAL: output 1 changed by inf" in r.problems[-1], r.problems


def test_check_diagonal_error_split_leaves_out_kinks():
    # float32 x, float64 re-run and a float32 derivative: the finite-difference and
    # rounding errors are measured apart, over the entries compared (not the kink at 0,
    # where the difference quotient of |x| is 0 and the derivative says 1)
    from fastjac.gradcheck import check_diagonal
    x = np.array([0.0, 0.5, -1.5, 2.0], dtype=np.float32)
    r = check_diagonal(np.abs, lambda v: np.where(v >= 0, 1, -1).astype(v.dtype), x)
    assert r.passed and r.kinks == [0] and r.reference == "float64 re-run"
    assert r.fd_rel_err is not None and r.fd_rel_err < 1e-6


# ---------------------------------------------------------------------------------------
# check_vjp: defaults, the cotangent it passes, kinks, probes and the rounding allowance
# ---------------------------------------------------------------------------------------

# Equivalent mutants of check_vjp: ``reference="XXautoXX"`` or ``"AUTO"`` (see
# check_grad); ``reshape(-2)`` of the cotangent, of the analytic parts or of the re-run
# ones; ``astype(None)`` for ``astype(float64)``; ``_eps(p.dtype)`` for an integer VJP
# too (float64's eps, below the inputs' rounding unit that max() takes anyway);
# ``out_dtype`` of a non-float output taken as its own dtype, as object or always
# (``and False``, ``np.asarray(None)``, ``or True`` in call_vjp): the cotangent passed
# to vjp is float64 whenever that dtype is not a float, so only a float output's dtype
# is ever used; ``cc.reshape(())`` as ``cc.reshape(out_shape)`` for a 0-d output (the
# same shape); ``break`` for ``continue`` after a zero probe direction (a standard
# normal direction is never zero, and with no input entries every probe is zero);
# the values of a probe skipped at a kink (``None`` or 1.0 for 0.0: a kink entry is
# never compared, and the report's maxima are over compared entries), and its
# ``kink`` flag None for False (the same bool); ``cols.pop("kinked_probes", None)``
# for ``[]`` (both are falsy when no probe was kinked).


def _recording_vjp(seen, d=np.cos):
    def vjp(p, c):
        seen.append(np.array(c, copy=True))
        return (d(p[0]) * c,)
    return vjp


def test_check_vjp_defaults_and_the_cotangent_passed():
    from fastjac.gradcheck import check_vjp
    # full columns for at most max_full=64 input entries, then 3 probes (n_probes=3)
    x = np.linspace(-1.2, 1.3, 65)
    assert check_vjp(np.sin, _recording_vjp([]), (x[:64],)).n_checked == 64 + 3
    assert check_vjp(np.sin, _recording_vjp([]), (x,)).n_checked == 3
    # the default cotangent: default_rng(seed).standard_normal(m), seed 0
    seen = []
    assert check_vjp(np.sin, _recording_vjp(seen), (x[:4],), full=False)
    assert np.array_equal(seen[0], np.random.default_rng(0).standard_normal(4))
    # no kink along the probes: vjp is called once, the probes reuse its result
    assert len(seen) == 1
    # an explicit cotangent of a 2-D output reaches vjp in y's shape
    x2 = x[:6].reshape(2, 3)
    ct = np.arange(1.0, 7.0).reshape(2, 3)
    seen = []
    assert check_vjp(np.sin, _recording_vjp(seen), (x2,), ct)
    assert seen[0].shape == (2, 3) and np.array_equal(seen[0], ct)
    seen = []
    assert check_vjp(np.sin, _recording_vjp(seen), (x2,))
    assert seen[0].shape == (2, 3)
    # in the output's dtype (a float32 f gets a float32 cotangent)
    seen = []
    x32 = x[:5].astype(np.float32)
    assert check_vjp(np.sin, _recording_vjp(seen), (x32,))
    assert seen and all(c.dtype == np.float32 for c in seen)
    # the cotangent is read in float64: a longdouble one gives its float64 rounding's report
    ct5 = np.linspace(1, 2, 5).astype(np.longdouble) / 3
    def entries(r):
        return [(e.index, e.analytic, e.numeric, e.bound) for e in r.worst]
    r_ld = check_vjp(np.sin, _recording_vjp([]), (x[:5],), ct5)
    assert entries(r_ld) == entries(check_vjp(np.sin, _recording_vjp([]), (x[:5],),
                                              ct5.astype(F64)))
    # ulps reaches the probes' own lines (f's rounding, 3 rho F / h), not only rho_a
    run = lambda **k: check_vjp(np.sin, _recording_vjp([]), (x[:5],), full=False, **k)  # noqa: E731
    assert run(ulps=1e7).max_fd_bound > 1e5 * run().max_fd_bound


def test_check_vjp_output_kinks_given_by_the_caller():
    from fastjac.gradcheck import check_vjp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    ct = np.array([1.0, 2.0, -1.0, 0.5])
    mask = np.array([False, True, False, False])
    for kinks in (mask, [1], lambda v: np.abs(v + 1.2) < 1e-12):
        seen = []
        r = check_vjp(np.sin, _recording_vjp(seen), (x,), ct, kinks=kinks)
        # the kink's output is left out of the cotangent vjp is called with
        assert r.passed and r.kinks == [1]
        assert seen[0].tolist() == [1.0, 0.0, -1.0, 0.5]
    # and so out of the comparison: a VJP wrong only through output 1 passes
    bad = lambda p, c: (np.cos(p[0]) * c + 5.0 * c[1],)  # noqa: E731
    assert check_vjp(np.sin, bad, (x,), ct, kinks=mask)
    assert not check_vjp(np.sin, bad, (x,), ct)


def test_check_vjp_integer_vjp_has_no_rounding_allowance():
    from fastjac.gradcheck import check_vjp
    x = np.array([1.0, 2.0, 3.0, 4.0])
    ct = np.array([1, -2, 3, 1])
    r = check_vjp(lambda v: 3 * v, lambda p, c: (3 * np.asarray(c, dtype=np.int64),), (x,), ct)
    assert r.passed and r.max_round_bound < 1e-12
    assert not check_vjp(lambda v: 3 * v, lambda p, c: (3 * c.astype(np.int64) + 1,), (x,), ct)


def test_check_vjp_zero_cotangent():
    # a zero cotangent: every probe compares 0 with 0 and a bound of 0
    from fastjac.gradcheck import check_vjp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    r = check_vjp(np.sin, _recording_vjp([]), (x,), np.zeros(4), full=False)
    assert r.passed and r.n_checked == 3 and r.kinks == [] and r.nonfinite == []
    assert sorted(e.index for e in r.worst) == ["probe 0", "probe 1", "probe 2"]
    assert all(e.analytic == 0.0 and e.numeric == 0.0 for e in r.worst)
    assert r.max_fd_bound == 0.0 and r.max_round_bound == 0.0


@pytest.mark.parametrize("precomputed", [False, True])
def test_check_vjp_probes_crossing_a_kink(precomputed):
    # |x| at x = 0: every probe line crosses the kink of output (0, 1). A callable vjp
    # is called again with that output left out of ct and the probe is compared; a
    # precomputed VJP cannot be, so the probe is reported as a kink
    from fastjac.gradcheck import check_vjp
    x = np.array([[-1.0, 0.0, 2.0], [0.5, -0.7, 1.3]])
    ct = np.ones((2, 3))
    seen = []
    vjp = (np.sign(x) * ct,) if precomputed else _recording_vjp(seen, np.sign)
    r = check_vjp(np.abs, vjp, (x,), ct, full=False)
    names = ["probe 0", "probe 1", "probe 2"]
    assert r.passed and r.nonfinite == []
    if precomputed:
        assert r.kinks == names and r.n_checked == 0
        assert r.notes == ["nothing was compared: every entry is at a kink or outside f's "
                           "domain"]
        return
    assert r.kinks == [] and r.n_checked == 3 and sorted(e.index for e in r.worst) == names
    assert r.notes == ["probes [0, 1, 2]: outputs at a kink along t were left out of ct"]
    assert len(seen) == 4 and seen[0].tolist() == ct.tolist()
    assert all(c.tolist() == [[1, 0, 1], [1, 1, 1]] for c in seen[1:])
    # a VJP wrong at the kink's output is not blamed for it
    assert check_vjp(np.abs, lambda p, c: (np.sign(p[0]) * c + 3 * (p[0] == 0) * c,), (x,),
                     ct, full=False)


def test_check_vjp_all_outputs_at_a_kink():
    # one output, at a kink along every probe: nothing is left to compare
    from fastjac.gradcheck import check_vjp
    r = check_vjp(np.abs, lambda p, c: (np.sign(p[0]) * c,), (np.array([0.0]),),
                  np.array([1.0]), full=False)
    assert r.passed and r.n_checked == 0 and r.kinks == ["probe 0", "probe 1", "probe 2"]


def test_check_vjp_probe_directions():
    # a probe direction is z_j max(1, |x_j|), z ~ default_rng(seed).standard_normal(n)
    # (the cotangent given, so the generator draws only the directions); with a
    # precomputed VJP e_k the probe's analytic value is <e_k, t> = t_k
    from fastjac.gradcheck import check_vjp
    x = np.array([1.0, 10.0])
    z = np.random.default_rng(0).standard_normal(2)
    for k, t_k in ((0, z[0]), (1, 10 * z[1])):
        e = np.eye(2)[k]
        r = check_vjp(lambda v: v, (e,), (x,), np.ones(2), full=False, n_probes=1)
        assert r.worst[0].index == "probe 0"
        assert r.worst[0].analytic == pytest.approx(t_k, rel=1e-15)


def test_check_vjp_probe_corrects_the_rounded_steps():
    # float32 differences (reference=False) of a linear f computed exactly in float64:
    # the points x + s t are rounded to float32; the probe's numeric value is corrected
    # by <vjp(ct), t_taken - t> per level, leaving only float64 rounding
    from fastjac.gradcheck import check_vjp
    A = np.array([[0.7, -1.3, 2.1, 0.4, 1.9], [1.1, 0.2, -0.6, 2.5, -1.4]])
    x = np.array([0.3, -1.7, 2.9, 0.11, 5.5], dtype=np.float32)

    def f(v):
        return A @ np.asarray(v, dtype=F64)

    r = check_vjp(f, lambda p, c: (A.T @ c,), (x,), np.array([0.8, -1.1]),
                  reference=False, full=False, n_probes=3)
    assert r.passed and r.reference == "none" and r.n_checked == 3
    assert all(e.rel_err < 1e-9 for e in r.worst), [e.rel_err for e in r.worst]


def test_check_vjp_column_rounding_allowance_terms():
    # a full column's allowance: rho_a (|ct|.|num| + |a_j| + |ct|.(q_j |f''| + F / q_j))
    from fastjac.gradcheck import check_vjp
    rho_a = 8 * np.finfo(F64).eps
    one = np.array([1.0])

    def run(c0, x0, **kw):
        return check_vjp(lambda v: c0 + np.sin(v), lambda p, c: (np.cos(p[0]) * c,),
                         (np.array([x0]),), one, n_probes=0, **kw)

    # sin at 0 with a large step (eps=0.5): f'' = 0, F = |D(h)| = sin(0.5) / 0.5
    r = run(0.0, 0.0, eps=0.5)
    num = r.worst[0].numeric
    expected = rho_a * (abs(num) + 1.0 + math.sin(0.5) / 0.5)
    assert r.max_round_bound == pytest.approx(expected, rel=1e-12, abs=0)
    # 1000 + sin: F ~ 1000 on the line, divided by q_j = max(1, |x_j|)
    r = run(1000.0, 0.0, eps=0.5)
    assert rho_a * 999 < r.max_round_bound < rho_a * 1003
    r = run(1000.0, 4.0)
    assert rho_a * 240 < r.max_round_bound < rho_a * 260
    # f_scale is the columns' floor of F too
    x = np.array([0.3])
    big = check_vjp(np.sin, lambda p, c: (np.cos(p[0]) * c,), (x,), one, n_probes=0,
                    f_scale=1e9)
    assert big.max_fd_bound > 1e8 * run(0.0, 0.3).max_fd_bound


def test_check_vjp_probe_rounding_allowance_terms():
    # a probe's allowance: rho_a (sum |vjp| |t| + |ct|.(q |f''| + F / q)); for 1000 + sin
    # at 0 with ct = 1: t = z, q = 1 / max|z|, F ~ 1000 and f'' ~ 0
    from fastjac.gradcheck import check_vjp
    rho_a = 8 * np.finfo(F64).eps
    z = np.random.default_rng(0).standard_normal(2)
    r = check_vjp(lambda v: 1000.0 + np.sin(v), lambda p, c: (np.cos(p[0]) * c,),
                  (np.zeros(2),), np.ones(2), full=False, n_probes=1)
    assert r.passed and r.n_checked == 1
    expected = rho_a * (np.sum(np.abs(z)) + 2 * 1000.0 * np.max(np.abs(z)))
    assert r.max_round_bound == pytest.approx(expected, rel=1e-4, abs=0)


def test_check_vjp_overflowing_allowance_is_dropped_quietly():
    # ct = 1e308: the rounding allowance overflows (in the column and in the probe);
    # it is dropped (0, not inf: the check stays a check) without a warning
    from fastjac.gradcheck import check_vjp
    seed = next(s for s in range(100)
                if 0.95 < abs(np.random.default_rng(s).standard_normal(1)[0]) < 1.7)
    x = np.array([0.0])
    ct = np.array([1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kw in ({"n_probes": 0}, {"full": False, "n_probes": 1}):
            r = check_vjp(np.exp, lambda p, c: (np.exp(p[0]) * c,), (x,), ct, seed=seed, **kw)
            assert r.passed and r.n_checked == 1 and r.max_round_bound == 0.0, kw
            off = check_vjp(np.exp, lambda p, c: (1.001 * np.exp(p[0]) * c,), (x,), ct,
                            seed=seed, **kw)
            assert not off, kw


def test_check_vjp_outputs_outside_the_domain_with_zero_cotangent():
    # sqrt at 0: output 0 is NaN on one side of every line through x; with ct_0 = 0 it
    # does not take part, and the check compares the other outputs
    from fastjac.gradcheck import check_vjp
    x = np.array([0.0, 0.5, 2.0])
    ct = np.array([0.0, 1.0, -2.0])

    def vjp(p, c):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.where(c != 0, 0.5 / np.sqrt(p[0]), 0.0) * c,)

    for full in (True, False):
        r = check_vjp(np.sqrt, vjp, (x,), ct, full=full, n_probes=2)
        assert r.passed and r.nonfinite == [], full
        assert r.n_checked == (3 if full else 0) + 2, full


def test_check_vjp_report_fields_and_nothing_to_check():
    from fastjac.gradcheck import check_vjp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    ct = np.array([1.0, 2.0, -1.0, 0.5])
    good = lambda p, c: (np.cos(p[0]) * c,)  # noqa: E731
    r = check_vjp(np.sin, good, (x,), ct)
    assert r.dtype == "float64" and r.reference == "none"
    r32 = check_vjp(np.sin, good, (x.astype(np.float32),), ct)
    assert r32.dtype == "float32" and r32.reference == "float64 re-run"
    # rtol and atol loosen the bound
    off = lambda p, c: (np.cos(p[0]) * c * 1.001,)  # noqa: E731
    assert not check_vjp(np.sin, off, (x,), ct)
    assert check_vjp(np.sin, off, (x,), ct, rtol=1e-2)
    shifted = lambda p, c: (np.cos(p[0]) * c + 1e-3,)  # noqa: E731
    assert not check_vjp(np.sin, shifted, (x,), ct)
    assert check_vjp(np.sin, shifted, (x,), ct, atol=1e-1)
    # no columns and no probes: a check that cannot fail is refused (test_check_counts)
    with pytest.raises(ValueError, match=r"^n_probes=0 with full=False checks nothing"):
        check_vjp(np.sin, good, (x,), ct, full=False, n_probes=0)


# ---------------------------------------------------------------------------------------
# _fd._direction: the line along a tangent
# ---------------------------------------------------------------------------------------

# Equivalent mutants of _direction: ``astype(None)`` for ``astype(float64)`` (the scale of
# the step, the tangents actually applied); ``reshape(-2)`` of a tangent; ``pmax`` of an
# empty primal taken as 1.0 instead of 0.0 (pmax is only read through ``max(1, pmax)``).
# Of _Args.index: ``np.unravel_index(j, shape)`` for a 0-d shape too (``or True``): it
# returns ``()``, the value the ``else`` gives. Of _analytic_array: ``kind not in
# "XXfiubXX"`` (``X`` is no dtype kind).


def test_direction_bound_terms_and_tangent_scale():
    from fastjac.gradcheck import check_jvp
    rho_a = 8 * np.finfo(F64).eps
    # sin at 0 along t = 1 with a large step (eps=0.5): q = 1, f'' = 0 and F is the
    # difference at the step s itself, |D(s)| = sin(0.5) / 0.5 (|f| <= sin(0.5) on the
    # line, f_scale = |sin(0)| = 0)
    r = check_jvp(np.sin, np.ones(1), (np.array([0.0]),), (np.array([1.0]),), eps=0.5)
    assert r.passed and r.max_round_bound == pytest.approx(
        rho_a * (1 + math.sin(0.5) / 0.5), rel=1e-12, abs=0)
    # an empty primal's tangent does not enter the tangent's scale max|t| (it has none)
    x = np.array([0.3, -1.2, 0.7])
    t = np.array([0.05, -0.02, 0.08])
    r1 = check_jvp(np.sin, np.cos(x) * t, (x,), (t,))
    r2 = check_jvp(lambda a, e: np.sin(a), np.cos(x) * t, (x, np.zeros(0)), (t, np.zeros(0)))
    assert r1.passed and r2.passed
    assert r2.max_round_bound == r1.max_round_bound and r2.max_fd_bound == r1.max_fd_bound


def test_direction_float32_tangent_of_a_float64_point():
    # the tangent is read in float64: a float32 tangent moves a float64 point by
    # s t computed in float64, so a JVP given as an array (no correction for rounded
    # steps) is held to float64's bound and passes
    from fastjac.gradcheck import check_jvp
    x = np.array([0.3, -1.2, 0.7, 2.0])
    t32 = np.array([0.55, -0.275, 1.1, 0.825], dtype=np.float32)
    r = check_jvp(np.sin, np.cos(x) * t32.astype(F64), (x,), (t32,))
    assert r.passed and r.max_rel_err < 1e-8


def test_direction_rounds_the_step_before_adding_it():
    # the perturbation s t is rounded to the input's dtype and then added (two
    # roundings, as _coord_steps does): with x = 0.75 + 2**-24 in float32 (an odd last
    # bit) and s t just below half its spacing, s t rounds to 2**-25 and both sums are
    # ties, which go to even: x + s t -> 0.75 + 2**-23, x - s t -> 0.75
    from fastjac.gradcheck import check_jvp
    w = np.float32(0.75 + 2.0 ** -24)
    seen = []

    def f(v):
        seen.append(float(v[0]))
        return 2 * np.asarray(v, dtype=F64)

    check_jvp(f, np.full(1, 2.0), (np.array([w]),), (np.ones(1),), eps=2.0 ** -25 - 2.0 ** -51,
              reference=False)
    assert seen[1:3] == [0.75 + 2.0 ** -23, 0.75]


def test_check_jvp_corrections_combined_in_float64():
    # float32 differences (reference=False) of f = 2 x computed exactly in float64, a
    # power-of-two relative step (eps=2**-9) and tangents of at most 1 in float32: every
    # step s t is exact, only the perturbed points round, and the tangents actually
    # applied differ from t by float32 numbers; an exact float32 jvp then gives exact
    # corrections. Combined in float64 they remove the rounded steps' error exactly;
    # combined in float32 (4 c1 - c0 rounded) they would leave ~1e-12.
    from fastjac.gradcheck import check_jvp
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.uniform(-1, 1, 5).astype(np.float32)
        t = rng.uniform(-1, 1, 5).astype(np.float32)
        t[0] = 1.0
        r = check_jvp(lambda v: 2 * np.asarray(v, dtype=F64), lambda p, tt: 2 * tt[0], (x,),
                      (t,), eps=2.0 ** -9, reference=False)
        assert r.passed and len(r.worst) == 5
        for e in r.worst:
            assert e.numeric == 2 * float(t[e.index]), (e, x, t)


def test_error_split_of_check_jvp_and_check_grad():
    # float32 inputs re-run in float64 and an analytic function of float32 results: the
    # analytic function is called again in float64 (with a float64 tangent, a Python
    # float for a Python-float primal) and the two errors are measured apart, over the
    # entries compared (not a kink: |x| at 0, where the derivative says 1 and the
    # difference quotient 0)
    from fastjac.gradcheck import check_grad, check_jvp
    x = np.array([0.0, 0.5, -1.5, 2.0], dtype=np.float32)
    t = np.array([0.5, -1.0, 0.25, 1.0], dtype=np.float32)
    seen = []

    def jvp(p, tt):
        seen.append((type(p[1]), type(tt[1]), np.asarray(tt[0]).dtype))
        d = np.where(p[0] >= 0, 1, -1) * p[1]
        return (d * tt[0] + np.abs(p[0]) * tt[1]).astype(np.asarray(tt[0]).dtype)

    r = check_jvp(lambda v, c: np.abs(v) * c, jvp, (x, 0.75), (t, 0.5))
    assert r.passed and r.kinks == [0] and r.reference == "float64 re-run"
    assert r.fd_rel_err is not None and r.fd_rel_err < 1e-6
    assert r.round_rel_err is not None and r.round_rel_err < 1e-6
    assert seen[0] == (float, float, np.float32) and seen[-1] == (float, float, F64)

    def grad(v):
        return np.where(v >= 0, 1, -1).astype(v.dtype)

    # (a 2-D x: the gradient's float64 re-run is taken flat too; both probes cross the
    # kink and are reported as kinks, not compared)
    r = check_grad(lambda v: np.sum(np.abs(v)), grad, x.reshape(2, 2))
    assert r.passed and r.reference == "float64 re-run" and r.dtype == "float32"
    assert r.kinks == [(0, 0), "probe 0", "probe 1"] and r.n_checked == 3
    assert r.fd_rel_err is not None and r.fd_rel_err < 1e-6
    assert r.round_rel_err is not None and r.round_rel_err < 1e-6


def test_check_grad_rtol_atol():
    from fastjac.gradcheck import check_grad
    x = np.array([0.3, -1.2, 0.7, 2.0])
    f = lambda v: float(np.sum(np.sin(v)))  # noqa: E731
    off = lambda v: np.cos(v) * 1.001  # noqa: E731
    assert not check_grad(f, off, x)
    assert check_grad(f, off, x, rtol=1e-2)
    shifted = lambda v: np.cos(v) + 1e-3  # noqa: E731
    assert not check_grad(f, shifted, x)
    assert check_grad(f, shifted, x, atol=1e-1)


# ---------------------------------------------------------------------------------------
# What every check refuses: inputs that are not finite, counts that check nothing
# ---------------------------------------------------------------------------------------


def test_checks_refuse_inputs_that_are_not_finite():
    # a step from inf is inf - inf: no finite difference exists there. Every check says
    # so, naming the argument and its first bad entry, before f runs and without a
    # NumPy warning (check_diagonal at an inf used to warn from its probes' steps)
    from fastjac.gradcheck import check_diagonal, check_grad, check_jvp, check_vjp
    calls = []

    def f(*a):
        calls.append(1)
        return np.sin(a[0]) * (a[1] if len(a) > 1 else 1.0)

    x = np.array([0.5, np.inf, -1.0, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = r"^x is not finite at index 1: inf \(2 of 4 entries are NaN or inf\); finite"
        with pytest.raises(ValueError, match=msg):
            check_diagonal(f, np.cos, x)
        with pytest.raises(ValueError, match=msg):
            check_grad(lambda v: np.sum(f(v)), np.cos, x)
        m2 = np.array([[1.0, 2.0], [-np.inf, 0.0]], dtype=np.float32)
        with pytest.raises(ValueError, match=r"^x is not finite at index \(1, 0\): -inf "
                                             r"\(1 of 4 entries"):
            check_diagonal(f, np.cos, m2)
        ok = np.array([0.5, 1.5])
        with pytest.raises(ValueError, match=r"^primals\[1\] is not finite: nan \(1 of 1 "):
            check_jvp(f, lambda p, t: t[0], (ok, float("nan")), (np.ones(2), 0.0))
        with pytest.raises(ValueError, match=r"^primals\[0\] is not finite at index 0: inf"):
            check_vjp(f, lambda p, c: (c, 0.0), (np.array([np.inf, 1.0]), 2.0), np.ones(2))
        assert calls == []
        with pytest.raises(ValueError, match=r"^tangents\[1\] is not finite: inf"):
            check_jvp(f, lambda p, t: t[0], (ok, 2.0), (np.ones(2), np.inf))
        with pytest.raises(ValueError, match=r"^tangents\[0\] is not finite at index 1: nan"):
            check_jvp(f, lambda p, t: t[0], (ok, 2.0), ([0.0, np.nan], 1.0))
        # any numeric form of a tangent is read as float64 first (here an object array)
        with pytest.raises(ValueError, match=r"^tangents\[0\] is not finite at index 0: inf"):
            check_jvp(f, lambda p, t: t[0], (ok, 2.0), (np.array([np.inf, 1], object), 1.0))
        with pytest.raises(ValueError, match=r"^cotangent is not finite at index 0: -inf"):
            check_vjp(np.sin, lambda p, c: (np.cos(p[0]) * c,), (ok,), [-np.inf, 1.0])
        # an integer input is finite by construction; huge finite values are accepted
        assert check_diagonal(np.sin, np.cos, np.array([1, 2, 3]))
        assert check_grad(lambda v: float(np.sum(v)), np.ones(2), np.array([1e300, -1e300]))


# Equivalent mutant of check_jvp's tangent check: ``reshape(-2)`` for ``reshape(-1)`` (any
# negative size means "the rest"). Of _require_finite: ``np.unravel_index(j, shape)`` for a
# 0-d shape too (``or True``): it returns ``()``, the value the ``else`` gives.


def test_validation_mode_skips_calls_with_inputs_that_are_not_finite():
    # NaN and inf propagate through fastjac's kernels as through NumPy's expressions: such
    # a call is a legitimate one, and validation mode leaves it unchecked (the checks
    # would refuse its inputs) instead of raising from inside the user's computation
    import fastjac as fj
    from fastjac import _validation as V
    x = np.array([0.5, np.inf, -1.0, np.nan])
    gy = np.array([1.0, 2.0, -np.inf, 0.5])
    w = np.array([2.0, 0.5, 1.5, -1.0])
    want = fj.tanh.vjp(x, np.ones(4))
    with fj.validating(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own (the references)
        assert np.array_equal(fj.tanh.vjp(x, np.ones(4)), want, equal_nan=True)
        fj.exp.derivative(x)
        fj.sin.jvp(w, gy)
        fj.mul.vjp(w, x, np.ones(4))
        fj.add.jvp(w, x, None, np.ones(4))
        fj.dot.grad(w, x)
        fj.sum.vjp(x, 2.0)
        assert V.cross_check_unary(fj.sin, "vjp", (w, gy), np.cos(w) * gy) is None
        assert V.cross_check_binary(fj.mul, "vjp", (w, x, np.ones(4)), (x, w)) is None
        assert V.cross_check(np.sin, "jvp", (w,), (gy,), np.cos(w) * gy) is None
        assert V.cross_check(np.sin, "vjp", (w,), gy, (np.cos(w) * gy,)) is None
        assert V.cross_check(np.sin, "derivative", (x,), None, np.cos(x)) is None
        # a finite call is still checked, with an unused direction of any kind
        assert V.cross_check(np.sin, "derivative", (w,), "unused", np.cos(w)).passed
        assert V.cross_check_binary(fj.add, "jvp", (w, w, None, np.ones(4)), np.ones(4))
        with pytest.raises(fj.GradCheckError):
            V.cross_check_unary(fj.sin, "vjp", (w, w), np.cos(w) * w + 1e-3)


@pytest.mark.parametrize("check", ["grad", "diagonal", "vjp"])
def test_check_probe_counts_are_ints_from_zero(check):
    from fastjac import gradcheck as G
    x = np.array([0.3, -1.2, 0.7])
    call = {
        "grad": lambda **kw: G.check_grad(lambda v: np.sum(np.sin(v)), np.cos, x, **kw),
        "diagonal": lambda **kw: G.check_diagonal(np.sin, np.cos, x, **kw),
        "vjp": lambda **kw: G.check_vjp(np.sin, lambda p, c: (np.cos(p[0]) * c,), (x,),
                                        **kw),
    }[check]
    with pytest.raises(ValueError, match=r"^n_probes must be an int >= 0, got -1$"):
        call(n_probes=-1)
    for bad in (1.5, True, "2", None):
        with pytest.raises(TypeError, match=r"^n_probes must be an int >= 0, got "):
            call(n_probes=bad)
    assert call(n_probes=np.int64(1))
    # 0 is fine wherever something else is still compared: every coordinate (grad), the
    # diagonal and the two fixed partitions (diagonal), the full columns (vjp, 3 entries)
    r = call(n_probes=0)
    assert r.passed and r.n_checked == 3 and not any(
        isinstance(e.index, str) for e in r.worst)
    if check == "diagonal":
        assert r.n_evals == 7 + 2 * 2


def test_check_vjp_without_probes_or_columns_is_refused():
    # full=False (or "auto" above max_full) with n_probes=0 compared nothing and passed
    from fastjac.gradcheck import check_vjp
    x = np.linspace(-1.0, 1.0, 5)
    wrong = lambda p, c: (np.cos(p[0]) * c + 1.0,)  # noqa: E731
    with pytest.raises(ValueError, match=r"^n_probes=0 with full=False checks nothing \(no "
                                         r"probes, no columns for 5 input entries, "
                                         r"max_full=64\): give n_probes >= 1 or full=True$"):
        check_vjp(np.sin, wrong, (x,), full=False, n_probes=0)
    with pytest.raises(ValueError, match=r"^n_probes=0 with full='auto' checks nothing .*"
                                         r"for 5 input entries, max_full=4\)"):
        check_vjp(np.sin, wrong, (x,), n_probes=0, max_full=4)
    # with the full columns the same call can fail, so it is allowed
    assert not check_vjp(np.sin, wrong, (x,), n_probes=0)
    assert not check_vjp(np.sin, wrong, (x,), n_probes=0, full=True, max_full=0)
    r = check_vjp(np.sin, lambda p, c: (np.cos(p[0]) * c,), (x,), n_probes=0, full=True)
    assert r.passed and r.n_checked == 5
    for bad in ("yes", None, 2):
        with pytest.raises(ValueError, match=r"^full must be True, False or 'auto', got "):
            check_vjp(np.sin, wrong, (x,), full=bad)
    # an empty x has nothing to check: an empty report, not a crash (no column, and every
    # probe direction is empty), whatever the counts
    for kw in ({}, {"full": True, "n_probes": 0}):
        r = check_vjp(np.sin, wrong, (np.zeros(0),), **kw)
        assert r.passed and r.n_checked == 0 and r.worst == [] and r.kinks == [], kw
        assert r.nonfinite == [] and r.dtype == "float64", kw


# Equivalent mutants of check_vjp's report: ``np.asarray(cols["fd"])`` and ``["rb"]``
# without ``dtype=float64`` (lists of Python floats, or empty: float64 either way);
# ``base[0].dtype if base else "XXXX"`` or ``or True`` (``_Args`` refuses empty primals, so
# ``base`` always holds one part).


def test_check_grad_without_coordinates_or_probes_is_refused():
    from fastjac.gradcheck import check_grad
    f = lambda v: float(np.sum(np.sin(v)))  # noqa: E731
    x = np.array([0.3, -1.2, 0.7])
    for coords in ([], 0, np.array([], dtype=int)):
        with pytest.raises(ValueError, match=r"and n_probes=0 check nothing: difference at "
                                             r"least one coordinate or give n_probes >= 1"):
            check_grad(f, np.cos, x, coords=coords, n_probes=0)
    with pytest.raises(ValueError, match=r"^coords=\[\] and n_probes=0 check nothing"):
        check_grad(f, np.cos, x, coords=[], n_probes=0)
    with pytest.raises(ValueError, match=r"^coords=\[\] and n_probes=0 check nothing: "
                                         r"difference at least one coordinate or give"):
        check_grad(f, np.cos, x[:2], coords=[], n_probes=0)  # two entries: probes exist
    # one entry: a probe is the coordinate again and is not drawn
    with pytest.raises(ValueError, match=r"^coords=\[\] and n_probes=3 check nothing: x has "
                                         r"one entry, along which a probe is the coordinate"):
        check_grad(f, np.cos, x[:1], coords=[], n_probes=3)
    with pytest.raises(ValueError, match=r"^coords must be an int >= 0, got -2$"):
        check_grad(f, np.cos, x, coords=-2)
    # either part alone still checks, and can fail
    assert check_grad(f, np.cos, x, coords=[], n_probes=1).n_checked == 1
    assert not check_grad(f, lambda v: np.cos(v) + 1e-3, x, coords=[], n_probes=1)
    assert check_grad(f, np.cos, x, coords=0, n_probes=2).n_checked == 2
    assert check_grad(f, np.cos, x, coords=[2], n_probes=0).n_checked == 1
    # an empty x has nothing to check, whatever the counts: an empty report
    r = check_grad(lambda v: 0.0, np.zeros(0), np.zeros(0), n_probes=0)
    assert r.passed and r.n_checked == 0


def test_check_vjp_zero_cotangent_is_compared():
    # the VJP of a zero cotangent must be zero: each probe compares <vjp(0), t> with 0
    # (it recorded 0 for the analytic value and passed any VJP)
    from fastjac.gradcheck import check_vjp
    x = np.linspace(-1.0, 1.0, 80)  # above max_full: probes only
    wrong = lambda p, c: (np.cos(p[0]) * c + 1e-3,)  # noqa: E731
    r = check_vjp(np.sin, wrong, (x,), np.zeros(80))
    assert not r and r.n_checked == 3 and r.max_abs_err > 1e-3
    assert check_vjp(np.sin, lambda p, c: (np.cos(p[0]) * c,), (x,), np.zeros(80))
    # outputs outside f's domain do not matter when ct is 0 there (sqrt(-1) = NaN)
    y = np.concatenate([[-1.0], np.linspace(0.5, 2.0, 79)])
    with np.errstate(invalid="ignore"):
        r = check_vjp(np.sqrt, lambda p, c: (0 * c,), (y,), np.zeros(80))
        assert not check_vjp(np.sqrt, lambda p, c: (0 * c + 1,), (y,), np.zeros(80))
    assert r.passed and r.n_checked == 3 and r.nonfinite == []
