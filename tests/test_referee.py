"""The referee's own sensitivity (issue 18): how small an error in a derivative do
``check_grad``, ``check_jvp``, ``check_vjp`` and ``check_diagonal`` catch?

For each dtype and each check, a few hundred random smooth functions with analytic
derivatives (sums of sin, cos, tanh, exp, log1p(u²), arctan and a cubic of random affine
maps) are checked three ways:

* the correct derivative is never flagged (default settings, probes included);
* one entry of the derivative off by 3x that entry's reported bound is always caught,
  whichever entry it is and whichever sign the error has;
* every entry off by the same relative error ``r`` is caught as soon as ``r`` exceeds the
  smallest ``bound / |analytic|`` of the report: that number, in units of the dtype's eps,
  is the *detection threshold*. Its distribution is asserted below a ceiling, so a referee
  that drifts towards forgiving (a bound 10x looser, say) fails here.

``python tests/test_referee.py`` prints the measured thresholds (quoted in
docs/development.rst). The near-bound rejections of the checks' own examples (the
rejection tests of test_gradcheck.py use errors far above the bound; those stay as extra
tests) are at the end of this file.
"""

import numpy as np
import pytest

from fastjac.gradcheck import check_diagonal, check_grad, check_jvp, check_vjp

DTYPES = [np.float64, np.float32]
N_FUNCS = 100  # per dtype and check: 800 random functions in all, about 20 s

# Smooth primitives with their derivatives, written in the input's dtype as a user would.
PRIMS = [
    (np.sin, np.cos),
    (np.cos, lambda u: -np.sin(u)),
    (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    (lambda u: np.exp(0.5 * u), lambda u: 0.5 * np.exp(0.5 * u)),
    (lambda u: np.log1p(u * u), lambda u: 2 * u / (1 + u * u)),
    (lambda u: u**3 / 3 - u, lambda u: u * u - 1),
    (np.arctan, lambda u: 1 / (1 + u * u)),
]

# Detection thresholds measured with N_FUNCS = 100 (median, 90th percentile; eps units):
#   float64: grad 8.6e6 / 5.3e7, diagonal 6.7e6 / 1.7e7, jvp 1.1e7 / 3.9e7, vjp 1.7e7 / 6.2e7
#   float32: grad 24 / 54, diagonal 21 / 50, jvp 28 / 69, vjp 49 / 94
# (float32 is differenced in float64, so only the analytic rounding is float32-sized.)
# The ceilings are 3x these: a bound 10x looser than today's fails them.
CEILING = {  # (kind, dtype) -> (median, p90), eps units
    ("grad", np.float64): (2.6e7, 1.6e8), ("diagonal", np.float64): (2.0e7, 5.0e7),
    ("jvp", np.float64): (3.4e7, 1.2e8), ("vjp", np.float64): (5.0e7, 1.9e8),
    ("grad", np.float32): (75.0, 160.0), ("diagonal", np.float32): (65.0, 150.0),
    ("jvp", np.float32): (85.0, 210.0), ("vjp", np.float32): (150.0, 280.0),
}


class Case:
    """One random function of one kind, at one point, with its analytic derivative."""

    def __init__(self, kind, dtype, seed):
        rng = np.random.default_rng([seed, 18, np.dtype(dtype).itemsize])
        self.kind, self.dtype = kind, np.dtype(dtype)
        n = int(rng.integers(1, 6))
        m = n if kind == "diagonal" else int(rng.integers(1, 6))
        if kind == "grad":
            m = int(rng.integers(1, 4))  # terms of the scalar sum
        self.phi, self.dphi = PRIMS[int(rng.integers(len(PRIMS)))]
        dt = self.dtype
        self.A = rng.uniform(-1.5, 1.5, (m, n)).astype(dt)
        self.a = rng.uniform(-1.5, 1.5, n).astype(dt)
        self.c = (rng.uniform(0.5, 2.0, m) * rng.choice([-1, 1], m)).astype(dt)
        self.b = rng.uniform(-1, 1, m).astype(dt)
        self.x = rng.uniform(-2, 2, n).astype(dt)
        self.t = rng.uniform(-1, 1, n).astype(dt)
        self.ct = rng.uniform(-1, 1, m).astype(dt)
        self.rng = rng

    def _p(self, v, name):
        return getattr(self, name).astype(np.asarray(v).dtype)

    # the functions -----------------------------------------------------------------
    def u(self, x):
        if self.kind == "diagonal":
            return self._p(x, "a") * x + self._p(x, "b")
        return self._p(x, "A") @ x + self._p(x, "b")

    def f(self, x):
        y = self._p(x, "c") * self.phi(self.u(x))
        return np.sum(y) if self.kind == "grad" else y

    def deriv(self, x):  # the analytic derivative: gradient, diagonal, or the factor c phi'
        s = self._p(x, "c") * self.dphi(self.u(x))
        if self.kind == "grad":
            return s @ self._p(x, "A")
        if self.kind == "diagonal":
            return s * self._p(x, "a")
        return s

    def jvp(self, p, tt):
        return self.deriv(p[0]) * (self._p(p[0], "A") @ tt[0])

    def vjp(self, p, c):
        return ((c * self.deriv(p[0])) @ self._p(p[0], "A"),)

    # running a check with a (possibly perturbed) derivative ---------------------------
    def check(self, perturb=None, strict=True):
        """The check of this kind; ``perturb(a)`` alters the analytic result; ``strict``
        runs without probes so that the report's entries are the derivative's entries."""
        pert = perturb or (lambda a: a)
        x = self.x
        if self.kind == "grad":
            kw = dict(n_probes=0) if strict else {}
            return check_grad(self.f, lambda v: pert(self.deriv(v)), x, **kw)
        if self.kind == "diagonal":
            kw = dict(n_probes=0) if strict else {}
            return check_diagonal(self.f, lambda v: pert(self.deriv(v)), x, **kw)
        if self.kind == "jvp":
            return check_jvp(self.f, lambda p, tt: pert(self.jvp(p, tt)), (x,), (self.t,))
        kw = dict(n_probes=0, full=True) if strict else {}
        return check_vjp(self.f, lambda p, c: (pert(self.vjp(p, c)[0]),), (x,), self.ct, **kw)

    def entries(self, report):
        """(flat position in the analytic result, Entry) for every compared entry."""
        out = []
        for e in report.worst:
            idx = e.index
            if isinstance(idx, tuple) and idx and isinstance(idx[0], str):
                idx = idx[1]  # check_vjp: (argument, index)
            if isinstance(idx, tuple):
                idx = idx[0] if idx else 0
            out.append((int(idx), e))
        return out


def _cases(kind, dtype):
    return [Case(kind, dtype, seed) for seed in range(N_FUNCS)]


KINDS = ["grad", "diagonal", "jvp", "vjp"]


def measure(kind, dtype):
    """Run the three checks over N_FUNCS cases; return the detection thresholds (eps
    units) and the lists of misses (a correct derivative flagged, a 3x error passed)."""
    eps = float(np.finfo(dtype).eps)
    thresholds, flagged, missed = [], [], []
    for case in _cases(kind, dtype):
        loose = case.check(strict=False)
        if not loose:
            flagged.append((case.kind, str(loose)))
        ref = case.check()
        if not ref:
            flagged.append((case.kind, str(ref)))
            continue
        ents = case.entries(ref)
        assert ents and len(ents) == ref.n_checked, (kind, ref.n_checked, len(ents))
        pos, e = ents[int(case.rng.integers(len(ents)))]
        sign = float(case.rng.choice([-1.0, 1.0]))

        def one_entry(a, pos=pos, delta=3 * e.bound * sign):
            a = np.array(a, dtype=case.dtype, copy=True)
            a.reshape(-1)[pos] += delta
            return a

        r = case.check(one_entry)
        if r:
            missed.append((case.kind, "one entry 3x its bound", str(r)))
        rel = [en.bound / abs(en.analytic) for _, en in ents if en.analytic != 0]
        if rel:
            thr = min(rel)
            thresholds.append(thr / eps)
            k = 3 * thr * sign
            r = case.check(lambda a, k=k: (np.asarray(a) * (1 + k)).astype(case.dtype))
            if r:
                missed.append((case.kind, f"relative error 3x threshold {thr:.3g}", str(r)))
    return np.array(thresholds), flagged, missed


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
def test_referee_sensitivity(kind, dtype):
    thr, flagged, missed = measure(kind, dtype)
    assert not flagged, f"{len(flagged)} correct derivatives flagged; first:\n{flagged[0]}"
    assert not missed, f"{len(missed)} planted errors missed; first:\n{missed[0]}"
    assert thr.size >= N_FUNCS * 0.9
    med, p90 = float(np.median(thr)), float(np.percentile(thr, 90))
    ceil_med, ceil_p90 = CEILING[(kind, dtype)]
    assert med <= ceil_med, f"{kind}: median detection threshold {med:.3g} eps > {ceil_med:.3g}"
    assert p90 <= ceil_p90, f"{kind}: 90th percentile threshold {p90:.3g} eps > {ceil_p90:.3g}"


# ---------------------------------------------------------------------------------------
# Near-bound rejections of the checks' own examples (the far-above-bound ones stay in
# test_gradcheck.py and tests/fuzz/test_fuzz_gradcheck.py as extra tests).
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name,f,d", [
    ("sin", np.sin, np.cos),
    ("exp", np.exp, np.exp),
    ("tanh", np.tanh, lambda v: 1 - np.tanh(v) ** 2),
    ("log1p", np.log1p, lambda v: 1 / (1 + v)),
])
def test_check_diagonal_rejects_three_times_the_bound(name, f, d, dtype):
    x = np.random.default_rng(5).uniform(-0.9, 1.5, 4).astype(dtype)
    r0 = check_diagonal(f, d, x, n_probes=0)
    assert r0 and len(r0.worst) == 4
    rel = {int(np.ravel(e.index)[0]): 3 * e.bound / abs(e.analytic) for e in r0.worst}
    for i, k in rel.items():
        def bad(v, i=i, k=k):
            a = np.array(d(v), dtype=dtype)
            a[i] *= 1 + k
            return a
        assert not check_diagonal(f, bad, x, n_probes=0), (name, i, k)
        assert not check_diagonal(f, bad, x), (name, i, k)  # with probes as well


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_check_grad_rejects_three_times_the_bound_on_a_large_input(dtype):
    """The sampled-coordinates path of check_grad (n > 1000) at 3x the bound."""
    n = 5000
    x = np.random.default_rng(9).uniform(-2, 2, n).astype(dtype)
    f = lambda v: np.sum(np.sin(v) ** 2)  # noqa: E731
    g = lambda v: np.sin(2 * v)  # noqa: E731
    coords = [0, 7, 123, n - 1]
    r0 = check_grad(f, g, x, coords=coords, n_probes=0)
    assert r0
    for e in r0.worst:
        i, k = int(np.ravel(e.index)[0]), 3 * e.bound / abs(e.analytic)

        def bad(v, i=i, k=k):
            a = np.array(g(v), dtype=dtype)
            a[i] *= 1 + k
            return a
        assert not check_grad(f, bad, x, coords=coords, n_probes=0), (i, k)


def test_float16_derivative_three_times_the_bound():
    """Near-bound companion of test_float16_input_does_not_loosen_the_analytic_bound."""
    import fastjac as fj

    h = fj.chain(fj.cos, fj.exp)
    x = np.array([1.156], dtype=np.float16)
    f = lambda v: fj.sum(h(v))  # noqa: E731
    r0 = check_grad(f, h.derivative, x, n_probes=0)
    assert r0
    e = r0.worst[0]
    k = 3 * e.bound / abs(e.analytic)
    assert not check_grad(f, lambda v: h.derivative(v) * (1 + k), x, n_probes=0)
    assert not check_grad(f, lambda v: h.derivative(v) * (1 - k), x, n_probes=0)


def main():
    print(f"{'check':10} {'dtype':8} {'median':>10} {'p90':>10} {'max':>10}   (eps units)")
    for dtype in DTYPES:
        for kind in KINDS:
            thr, flagged, missed = measure(kind, dtype)
            print(f"{kind:10} {np.dtype(dtype).name:8} {np.median(thr):10.3g} "
                  f"{np.percentile(thr, 90):10.3g} {np.max(thr):10.3g}"
                  f"   flagged={len(flagged)} missed={len(missed)}")


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------
# When a float32 function's float64 re-run is trusted as the reference (from the mutation
# run of gradcheck: the agreement test between the two runs).
# ---------------------------------------------------------------------------------------

# Equivalent mutants of the agreement test (_agree in fastjac._fd), left alive on purpose:
# - np.asarray(y64/y32) without dtype=float64 (or with dtype=None): the caller passes a
#   float64 y64 (it checks y64.dtype first) and the float32 values are promoted to float64
#   exactly by the subtraction, so the comparison is the same;
# - np.errstate(invalid=None), or invalid= dropped: only finite values are combined there.
# (np.errstate(over=None) is not equivalent: near overflow it raises in a caller's
# errstate(all="raise"); "<= tol" -> "< tol" differs on all-zero runs. Both are killed by
# test_gradcheck_units.py::test_agree.)


def _ref_kind(f, x):
    return check_diagonal(f, lambda v: np.cos(v).astype(v.dtype), x, n_probes=0)


def test_float64_rerun_used_only_when_it_agrees():
    x = np.linspace(-1, 1, 5).astype(np.float32)
    r = _ref_kind(np.sin, x)
    assert r and r.reference == "float64 re-run"
    # a float64 run off by far more than sqrt(eps32) relative: not used
    off = lambda v: np.sin(v) * (1.0 if v.dtype == np.float32 else 1.01)  # noqa: E731
    r = _ref_kind(off, x)
    assert r.reference == "none" and any("disagrees" in n for n in r.notes), r.notes
    # off by 1e-5 relative (< sqrt(eps32) = 3.5e-4), at two scales: agrees, used
    for k in (1.0, 100.0):
        near = lambda v, k=k: k * np.sin(v) * (1.0 if v.dtype == np.float32 else 1 + 1e-5)  # noqa: E731
        r = check_diagonal(near, lambda v, k=k: (k * np.cos(v)).astype(v.dtype), x,
                           n_probes=0)
        assert r.reference == "float64 re-run", (k, r.notes)
    # computed in float32 but returned in float64 (summed in float64): the re-run agrees
    # to float32's accuracy and is used, so the differences are float64's, and a
    # derivative 1e-3 off is caught (differences in float32 would have let it pass)
    def sum64(v):
        return np.sum(np.asarray(np.sin(v) * np.exp(v), dtype=np.float64))

    def dsum(v):
        return (np.cos(v) + np.sin(v)) * np.exp(v)

    xs = np.linspace(-2, 2, 24).astype(np.float32)
    r = check_grad(sum64, dsum, xs)
    assert r and r.reference == "float64 re-run", r.notes
    assert not check_grad(sum64, lambda v: dsum(v) * (1 + 1e-3), xs)
    # off by an absolute 1e-3 of the largest value where f is small: disagrees
    bump = lambda v: np.sin(v) + (0.0 if v.dtype == np.float32 else 1e-3)  # noqa: E731
    assert _ref_kind(bump, x).reference == "none"
    # finite in one run and not in the other: disagrees
    inf64 = lambda v: np.sin(v) / (1.0 if v.dtype == np.float32 else 0.0 * v + (v != 0))  # noqa: E731
    x0 = np.array([0.0, 0.5, 1.0], dtype=np.float32)
    with np.errstate(all="ignore"):
        r = check_diagonal(inf64, lambda v: np.cos(v).astype(v.dtype), x0, n_probes=0)
    assert r.reference == "none", r.notes
    # not finite anywhere in either run: nothing to disagree about, the re-run is used
    nan = lambda v: np.full(v.shape, np.nan, dtype=v.dtype)  # noqa: E731
    with np.errstate(all="ignore"):
        r = check_diagonal(nan, lambda v: np.cos(v).astype(v.dtype), x0, n_probes=0)
    assert r.reference == "float64 re-run", r.notes
