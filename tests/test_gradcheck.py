"""Tests of fastjac.gradcheck: finite-difference validation.

Everything here uses plain NumPy functions, so it tests the checker itself and does not
depend on the compiled kernels (except ``test_selfcheck_*``, skipped until the ops exist).
"""

import importlib.util
import threading

import numpy as np
import pytest

from fastjac import _config, _selfcheck, _validation, selfcheck
from fastjac._validation import cross_check as _cross_check
from fastjac.cli import main_check
from fastjac.gradcheck import (
    GradCheckError,
    GradCheckReport,
    assert_diagonal,
    assert_grad,
    assert_jvp,
    assert_vjp,
    check_diagonal,
    check_grad,
    check_jvp,
    check_vjp,
    validating,
)

DTYPES = [np.float64, np.float32]
# The relative error each dtype's checker must catch (the brief: 1e-4 and 1e-2).
CATCH = {np.float64: 1e-4, np.float32: 1e-2}


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# (name, f, f', domain): smooth element-wise functions with their derivatives.
SMOOTH = [
    ("sin", np.sin, np.cos, (-3, 3)),
    ("exp", np.exp, np.exp, (-5, 3)),
    ("tanh", np.tanh, lambda v: 1 - np.tanh(v) ** 2, (-4, 4)),
    ("sigmoid", _sigmoid, lambda v: _sigmoid(v) * (1 - _sigmoid(v)), (-6, 6)),
    ("log", np.log, lambda v: 1 / v, (0.2, 5)),
    ("sqrt", np.sqrt, lambda v: 0.5 / np.sqrt(v), (0.2, 5)),
    ("cube", lambda v: v**3, lambda v: 3 * v**2, (-2, 2)),
    ("sin_of_square", lambda v: np.sin(v * v), lambda v: 2 * v * np.cos(v * v), (-2, 2)),
]
SMOOTH_IDS = [s[0] for s in SMOOTH]


def _point(domain, n, dtype, seed=0):
    return np.random.default_rng(seed).uniform(*domain, n).astype(dtype)


def _cast(d, dtype):
    return lambda v: np.asarray(d(v), dtype=dtype)


# Scalar functions for check_grad: f(x) and its gradient.
def _f_quartic(x):
    return np.sum(np.sin(x) ** 2) + 0.25 * np.sum(x**4) + x[0] * x[-1]


def _g_quartic(x):
    g = np.sin(2 * x) + x**3
    g = g.copy()
    g[0] += x[-1]
    g[-1] += x[0]
    return g


def _f_logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def _g_logsumexp(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


SCALAR = [("quartic", _f_quartic, _g_quartic), ("logsumexp", _f_logsumexp, _g_logsumexp)]


# A non-symmetric linear-then-nonlinear map for JVP/VJP tests: y = A tanh(x) + B x².
def _mlp(seed, m=6, n=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    B = rng.standard_normal((m, n))

    def f(x):
        return A.astype(x.dtype) @ np.tanh(x) + B.astype(x.dtype) @ (x * x)

    def J(x):
        x = np.asarray(x, dtype=np.float64)
        return A * (1 - np.tanh(x) ** 2) + B * (2 * x)

    return f, J


# ---------------------------------------------------------------------------------------
# Correct derivatives pass
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,f,d,domain", SMOOTH, ids=SMOOTH_IDS)
def test_check_diagonal_accepts_correct_derivative(name, f, d, domain, dtype):
    x = _point(domain, 500, dtype)
    r = check_diagonal(f, _cast(d, dtype), x)
    assert r, str(r)
    assert r.n_checked == 500 and not r.kinks
    assert r.max_ratio <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,f,g", SCALAR, ids=[s[0] for s in SCALAR])
def test_check_grad_accepts_correct_gradient(name, f, g, dtype):
    x = _point((-1.5, 1.5), 30, dtype, seed=3)
    r = check_grad(f, _cast(g, dtype), x)
    assert r, str(r)
    assert r.n_checked == 30 + 2  # every coordinate and two directional probes


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_jvp_and_vjp_accept_correct_products(dtype):
    f, J = _mlp(0)
    x = _point((-1, 1), 5, dtype, seed=1)
    t = _point((-1, 1), 5, dtype, seed=2)
    r = check_jvp(f, lambda p, tt: (J(p[0]) @ tt[0]).astype(dtype), (x,), (t,))
    assert r, str(r)
    r = check_vjp(f, lambda p, c: ((c @ J(p[0])).astype(dtype),), (x,))
    assert r, str(r)
    assert r.n_checked == 5 + 3  # 5 full-column entries and 3 dot-product probes


def test_check_vjp_two_primals_and_scalar_expansion():
    # y = w * z + sin(x) with z a Python float: ∂y/∂z = w (a column, §4.3), so the
    # scalar's cotangent is sum(ct * w).
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal(7), rng.standard_normal(7)

    def f(w, x, z):
        return w * z + np.sin(x)

    def vjp(p, ct):
        w, x, z = p
        return ct * z, ct * np.cos(x), float(np.sum(ct * w))

    assert check_vjp(f, vjp, (w, x, 0.7))
    assert not check_vjp(f, lambda p, ct: vjp(p, ct)[:2] + (1.001 * vjp(p, ct)[2],), (w, x, 0.7))


def test_check_vjp_dot_product_identity_alone_catches_errors():
    # full=False: only <ct, J t> == <vjp(ct), t> on random tangents, for large inputs
    f, J = _mlp(1, m=4, n=300)
    x = _point((-1, 1), 300, np.float64)
    good = lambda p, c: (c @ J(p[0]),)  # noqa: E731
    assert check_vjp(f, good, (x,), full=False, n_probes=3)
    bad = lambda p, c: ((c @ J(p[0])) * (1 + 1e-4),)  # noqa: E731
    r = check_vjp(f, bad, (x,), full=False, n_probes=3)
    assert not r and r.n_checked == 3


# ---------------------------------------------------------------------------------------
# Wrong derivatives fail
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,f,d,domain", SMOOTH, ids=SMOOTH_IDS)
def test_check_diagonal_rejects_relative_error(name, f, d, domain, dtype):
    x = _point(domain, 200, dtype)
    rel = CATCH[dtype]
    r = check_diagonal(f, lambda v: (d(v) * (1 + rel)).astype(dtype), x)
    assert not r
    assert r.problems and "exceed their bound" in r.problems[0]
    assert r.worst[0].abs_err > r.worst[0].bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,f,g", SCALAR, ids=[s[0] for s in SCALAR])
def test_check_grad_rejects_relative_error(name, f, g, dtype):
    x = _point((-1.5, 1.5), 30, dtype, seed=3)
    rel = CATCH[dtype]
    assert not check_grad(f, lambda v: (g(v) * (1 + rel)).astype(dtype), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_jvp_vjp_reject_relative_error(dtype):
    f, J = _mlp(0)
    x = _point((-1, 1), 5, dtype, seed=1)
    t = _point((-1, 1), 5, dtype, seed=2)
    k = 1 + CATCH[dtype]
    assert not check_jvp(f, lambda p, tt: (k * J(p[0]) @ tt[0]).astype(dtype), (x,), (t,))
    assert not check_vjp(f, lambda p, c: ((k * c @ J(p[0])).astype(dtype),), (x,))


def test_one_wrong_coordinate_in_a_hundred_thousand():
    n = 100_000
    x = _point((-3, 3), n, np.float64, seed=7)
    bad_index = 61_803

    def d_bad(v):
        g = np.cos(v)
        g[bad_index] *= 1 + 1e-4
        return g

    assert check_diagonal(np.sin, np.cos, x)
    r = check_diagonal(np.sin, d_bad, x)
    assert not r
    assert r.problems[0].startswith("1 of 100000 entries")
    assert r.worst[0].index == bad_index
    assert not r.worst[0].ok and all(e.ok for e in r.worst[1:])


def test_one_wrong_coordinate_float32():
    n = 100_000
    x = _point((-3, 3), n, np.float32, seed=8)

    def d_bad(v):
        g = np.cos(v)
        g[12_345] *= np.float32(1 + 1e-2)
        return g

    r = check_diagonal(np.sin, d_bad, x)
    assert not r and r.worst[0].index == 12_345


def test_wrong_sign_fails():
    x = _point((-2, 2), 40, np.float64, seed=4)
    assert not check_grad(_f_quartic, lambda v: -_g_quartic(v), x)
    assert not check_diagonal(np.sin, lambda v: -np.cos(v), x)
    f, J = _mlp(2)
    t = np.ones(5)
    assert not check_jvp(f, lambda p, tt: -(J(p[0]) @ tt[0]), (x[:5],), (t,))
    assert not check_vjp(f, lambda p, c: (-(c @ J(p[0])),), (x[:5],))


def test_transposed_jacobian_fails():
    # A square, non-symmetric Jacobian: the transpose is a classic layout mistake
    # (numerator vs denominator layout, paper §4 intro).
    f, J = _mlp(3, m=5, n=5)
    x = _point((-1, 1), 5, np.float64, seed=5)
    Jx = J(x)
    assert not np.allclose(Jx, Jx.T)
    t = np.random.default_rng(0).standard_normal(5)
    assert check_jvp(f, lambda p, tt: J(p[0]) @ tt[0], (x,), (t,))
    assert not check_jvp(f, lambda p, tt: J(p[0]).T @ tt[0], (x,), (t,))
    assert check_vjp(f, lambda p, c: (J(p[0]).T @ c,), (x,))
    assert not check_vjp(f, lambda p, c: (J(p[0]) @ c,), (x,))  # forgot the transpose
    assert not check_vjp(f, lambda p, c: (J(p[0]) @ c,), (x,), full=False)  # probes alone


def _neuron_problem(seed, N=60, n=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n)).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    w = rng.standard_normal(n).astype(dtype)
    b = 0.1
    return X, y, w, b


def _loss(X, y, th):
    z = X @ th[:-1] + th[-1]
    return np.mean((y - np.maximum(z, 0)) ** 2)


def _loss_grad(X, y, th, use_mask=True):
    z = X @ th[:-1] + th[-1]
    e = (z - y) * (z > 0 if use_mask else 1.0)  # §6: only active samples contribute
    N = X.shape[0]
    return np.concatenate([(2 / N) * e @ X, [(2 / N) * np.sum(e)]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_that_ignores_relu_mask_fails(dtype):
    X, y, w, b = _neuron_problem(0, dtype=dtype)
    th = np.concatenate([w, [b]]).astype(dtype)
    f = lambda t: _loss(X, y, t)  # noqa: E731
    assert check_grad(f, lambda t: _loss_grad(X, y, t).astype(dtype), th)
    assert not check_grad(f, lambda t: _loss_grad(X, y, t, use_mask=False).astype(dtype), th)
    # element-wise: a ReLU derivative that forgets the mask
    x = _point((-2, 2), 50, dtype)
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    assert check_diagonal(relu, lambda v: (v > 0).astype(dtype), x)
    assert not check_diagonal(relu, lambda v: np.ones_like(v), x)


# ---------------------------------------------------------------------------------------
# Diagonality
# ---------------------------------------------------------------------------------------


def test_check_diagonal_catches_coupling():
    x = _point((-1, 1), 1000, np.float64)

    def f(v):
        y = v.copy()
        y[:-1] += 0.1 * v[1:]  # y_i = x_i + 0.1 x_{i+1}
        return y

    r = check_diagonal(f, np.ones_like, x)
    assert not r
    assert any("NOT DIAGONAL" in p for p in r.problems)
    assert "NOT DIAGONAL" in str(r)
    with pytest.raises(AssertionError, match="NOT DIAGONAL"):
        assert_diagonal(f, np.ones_like, x)


def test_check_diagonal_catches_a_single_far_coupling():
    # only y_0 depends on x_{n-1}: at most one of any partition's two halves moves it
    # without y_0's own input, and the probes use several partitions
    x = _point((-1, 1), 999, np.float64)

    def f(v):
        y = np.sin(v)
        y[0] = y[0] + 1e-3 * v[-1]
        return y

    r = check_diagonal(f, np.cos, x)
    assert not r and any("NOT DIAGONAL" in p for p in r.problems)


def test_n_evals_of_check_diagonal_is_constant_in_n():
    counts = set()
    for n in (3, 100, 10_000, 200_000):
        x = _point((-1, 1), n, np.float64)
        calls = []

        def f(v):
            calls.append(1)
            return np.sin(v)

        r = check_diagonal(f, np.cos, x)
        assert r
        assert r.n_evals == len(calls)
        counts.add(r.n_evals)
    assert len(counts) == 1 and counts.pop() <= 20


# ---------------------------------------------------------------------------------------
# Kinks
# ---------------------------------------------------------------------------------------

H64 = np.finfo(np.float64).eps ** (1 / 3)


@pytest.mark.parametrize(
    "f,d",
    [
        (lambda v: np.maximum(v, 0), lambda v: (v > 0) * 1.0),  # ReLU'(0) = 0
        (np.abs, np.sign),
        (lambda v: np.maximum(v, 0), lambda v: (v >= 0) * 1.0),  # the other convention
    ],
    ids=["relu", "abs", "relu-right"],
)
def test_kinks_are_reported_not_failed(f, d):
    offsets = np.array([0.0, 0.1, -0.1, 0.3, -0.3, 1e-3, -1e-12, 0.45, -0.45]) * H64
    x = np.concatenate([offsets, [-1.0, 1.0, 2.0]])
    r = check_diagonal(f, d, x)
    assert r, str(r)
    assert 0 in r.kinks  # exactly at the kink
    assert set(r.kinks) <= set(range(len(offsets)))
    assert len(r.kinks) >= 6
    assert r.n_checked == len(x) - len(r.kinks)
    assert "kinks (not compared)" in str(r)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kinks_anywhere_within_a_step_never_fail(dtype):
    # sweep the kink across the whole stencil: every point either is reported as a kink
    # or agrees within its bound
    x = (np.linspace(-2.5, 2.5, 4001) * H64).astype(dtype)
    for f, d in [
        (lambda v: np.maximum(v, 0), lambda v: (v > 0).astype(v.dtype)),
        (np.abs, np.sign),
        (lambda v: np.minimum(v, 0.5 * v), lambda v: np.where(v > 0, 0.5, 1).astype(v.dtype)),
    ]:
        r = check_diagonal(f, d, x)
        assert r, str(r)
        assert r.kinks


def test_max_tie_and_neuron_kinks():
    # maximum(w, x) at a tie, checked through check_vjp (full columns + probes)
    w = np.array([1.0, -0.5, 2.0, 0.3])
    x = np.array([1.0, 0.5, -1.0, 0.3])

    def vjp(p, ct):
        w, x = p
        m = w >= x  # ties go to w
        return ct * m, ct * ~m

    r = check_vjp(np.maximum, vjp, (w, x))
    assert r, str(r)
    assert r.kinks  # the ties at indices 0 and 3
    # ReLU neuron with w.x + b = 0 exactly on some samples
    X, y, wv, _ = _neuron_problem(1, N=30)
    b = -float(X[0] @ wv)  # sample 0 sits on the kink
    th = np.concatenate([wv, [b]])
    r = check_grad(lambda t: _loss(X, y, t), lambda t: _loss_grad(X, y, t), th)
    assert r, str(r)


def test_explicit_kinks_argument():
    x = np.array([-1.0, 0.5, 2.0])
    bad = lambda v: np.cos(v) * np.array([1.0, 1.5, 1.0])  # noqa: E731
    assert not check_diagonal(np.sin, bad, x)
    r = check_diagonal(np.sin, bad, x, kinks=np.array([False, True, False]))
    assert r and r.kinks == [1]
    r = check_diagonal(np.sin, bad, x, kinks=lambda v: np.abs(v - 0.5) < 1e-9)
    assert r and r.kinks == [1]
    r = check_grad(lambda v: np.sum(np.sin(v)), bad, x, kinks=[1], n_probes=0)
    assert r and r.kinks == [1]


# ---------------------------------------------------------------------------------------
# float32: compared with the float64 run, never spuriously failing
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["auto", False])
def test_float32_correct_functions_never_fail(reference):
    for seed in range(40):
        for name, f, d, domain in SMOOTH:
            x = _point(domain, 300, np.float32, seed=seed)
            r = check_diagonal(f, _cast(d, np.float32), x, reference=reference, seed=seed)
            assert r, f"{name} seed {seed}\n{r}"
        x = _point((-1.5, 1.5), 12, np.float32, seed=seed)
        for name, f, g in SCALAR:
            r = check_grad(f, _cast(g, np.float32), x, reference=reference, seed=seed)
            assert r, f"{name} seed {seed}\n{r}"
        fm, J = _mlp(seed)
        x = _point((-1, 1), 5, np.float32, seed=seed)
        r = check_vjp(
            fm, lambda p, c: ((c @ J(p[0])).astype(np.float32),), (x,),
            reference=reference, seed=seed,
        )
        assert r, f"mlp vjp seed {seed}\n{r}"


def test_float32_reference_modes():
    x = _point((-2, 2), 50, np.float32)
    r = check_diagonal(np.tanh, lambda v: 1 - np.tanh(v) ** 2, x)
    assert r.reference == "float64 re-run" and r.dtype == "float32"
    # rounding (float32 analytic) and finite-difference error (float64) are apart
    assert r.max_fd_bound < 1e-8 < r.max_round_bound
    # the analytic function runs in float64 too: both errors are measured apart
    assert r.fd_rel_err < 1e-8 and 0 < r.round_rel_err < 1e-5
    assert "measured apart" in str(r)
    only32 = lambda v: (1 - np.tanh(v) ** 2) * (1.01 if v.dtype == np.float32 else 1)  # noqa
    r = check_diagonal(np.tanh, only32, x)
    assert not r and r.fd_rel_err < 1e-8 and r.round_rel_err > 5e-3  # a float32-only bug
    r = check_diagonal(np.tanh, _cast(lambda v: 1 - np.tanh(v) ** 2, np.float32), x)
    assert r and r.fd_rel_err is None  # the analytic function insists on float32
    r = check_diagonal(np.tanh, lambda v: 1 - np.tanh(v) ** 2, x, reference=False)
    assert r and r.reference == "none" and r.fd_rel_err is None
    r32only = lambda v: np.tanh(np.asarray(v, dtype=np.float32))  # noqa: E731
    r = check_diagonal(r32only, lambda v: 1 - np.tanh(v) ** 2, x)
    assert r and r.reference == "none" and r.notes  # could not re-run in float64
    r = check_diagonal(r32only, lambda v: 1 - np.tanh(v) ** 2, x, reference=np.tanh)
    assert r and r.reference == "reference callable"


def test_rtol_atol_loosen_the_bound():
    x = _point((-2, 2), 20, np.float64)
    bad = lambda v: np.cos(v) * (1 + 1e-4)  # noqa: E731
    assert not check_diagonal(np.sin, bad, x)
    assert check_diagonal(np.sin, bad, x, rtol=2e-4)
    assert check_diagonal(np.sin, bad, x, atol=2e-4)


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------


def test_report_fields_and_text():
    x = _point((-2, 2), 10, np.float64)
    good = check_diagonal(np.exp, np.exp, x, name="exp'")
    assert isinstance(good, GradCheckReport) and bool(good) and good.passed
    assert good.name == "exp'" and good.n_evals > 0 and good.max_rel_err < 1e-8
    assert len(good.worst) == 5
    e = good.worst[0]
    for field in ("index", "x", "analytic", "numeric", "abs_err", "rel_err", "bound"):
        assert hasattr(e, field)
    text = str(good)
    assert text.startswith("exp': PASSED")
    for col in ("index", "analytic", "numeric", "abs err", "rel err", "bound"):
        assert col in text
    bad = check_diagonal(np.exp, lambda v: np.exp(v) * 1.01, x)
    text = str(bad)
    assert "FAILED" in text and "FAIL" in text.splitlines()[5]
    assert len(text.splitlines()) < 20 and all(len(line) < 140 for line in text.splitlines())


def test_assert_variants_raise_with_the_table():
    x = _point((-2, 2), 10, np.float64)
    assert_diagonal(np.sin, np.cos, x)
    assert_grad(lambda v: np.sum(np.sin(v)), np.cos, x)
    assert_jvp(np.sin, lambda p, t: np.cos(p[0]) * t[0], x, np.ones(10))
    assert_vjp(np.sin, lambda p, c: np.cos(p[0]) * c, x)
    with pytest.raises(AssertionError) as info:
        assert_grad(lambda v: np.sum(np.sin(v)), lambda v: np.cos(v) + 1e-3, x)
    assert "check_grad: FAILED" in str(info.value) and "abs err" in str(info.value)
    assert isinstance(info.value, GradCheckError) and not info.value.report
    for fn, args in [
        (assert_jvp, (np.sin, lambda p, t: -np.cos(p[0]) * t[0], x, np.ones(10))),
        (assert_vjp, (np.sin, lambda p, c: np.sin(p[0]) * c, x)),
        (assert_diagonal, (np.sin, np.sin, x)),
    ]:
        with pytest.raises(AssertionError, match="FAILED"):
            fn(*args)


def test_nan_analytic_is_a_failure_and_domain_edges_are_skipped():
    x = np.array([0.5, 1.0, 2.0])
    r = check_diagonal(np.log, lambda v: np.where(v > 1.5, np.nan, 1 / v), x)
    assert not r and any("NaN" in p for p in r.problems)
    # log at a point closer to 0 than the step: f is not finite there, reported apart
    x = np.array([1e-9, 1.0])
    r = check_diagonal(np.log, lambda v: 1 / v, x)
    assert r and r.nonfinite == [0] and r.n_checked == 1


# ---------------------------------------------------------------------------------------
# Validation mode
# ---------------------------------------------------------------------------------------


def test_validating_context_and_flag():
    assert _config.VALIDATE == _config.ENV_VALIDATE
    with validating():
        assert _config.VALIDATE and _config.is_validating()
        with validating(False):
            assert not _config.is_validating()
            assert _config.VALIDATE  # the cheap flag stays on: another context may need it
        assert _config.is_validating()
    assert _config.is_validating() == _config.ENV_VALIDATE
    assert _config.VALIDATE == _config.ENV_VALIDATE


def test_validating_is_local_to_a_thread():
    seen = {}
    started = threading.Event()
    release = threading.Event()

    def other():
        started.wait()
        seen["other"] = _config.is_validating()
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with validating():
        started.set()
        release.wait()
        seen["here"] = _config.is_validating()
    t.join()
    assert seen == {"here": True, "other": _config.ENV_VALIDATE}


def test_cross_check_hook():
    x = _point((-2, 2), 30, np.float32)
    with validating(False):
        assert _cross_check(np.sin, "derivative", (x,), None, np.cos(x) * 2) is None
    with validating():
        assert _cross_check(np.sin, "derivative", (x,), None, np.cos(x))
        assert _cross_check(np.sin, "jvp", (x,), (np.ones_like(x),), np.cos(x))
        assert _cross_check(np.sin, "vjp", (x,), np.ones_like(x), (np.cos(x),))
        f = lambda w, b: np.sum((w + b) ** 2)  # noqa: E731
        g = (2 * (x + 0.5), float(np.sum(2 * (x + 0.5))))
        assert _cross_check(f, "grad", (x, 0.5), None, g)
        relu = lambda v: np.maximum(v, 0)  # noqa: E731
        z = np.array([-1.0, 0.0, 1.0])
        assert _cross_check(relu, "derivative", (z,), None, (z > 0) * 1.0).kinks == [1]
        with pytest.raises(GradCheckError, match="validation mode"):
            _cross_check(np.sin, "derivative", (x,), None, np.cos(x) * 1.1)
        with pytest.raises(AssertionError):
            _cross_check(f, "grad", (x, 0.5), None, (g[0], g[1] + 1.0))


# ---------------------------------------------------------------------------------------
# selfcheck (needs the compiled library)
# ---------------------------------------------------------------------------------------

HAVE_OPS = importlib.util.find_spec("fastjac.ops") is not None


def test_selfcheck_returns_a_table():
    r = selfcheck(dtypes=("float64",))
    text = str(r)
    assert text.splitlines()[0].split() == ["op", "dtype", "max", "rel", "err", "bound", "status"]
    assert r.rows and all(row.status == "passed" for row in r.rows), text
    assert bool(r)
    assert text.splitlines()[-1] == f"ALL PASSED: {len(r.rows)} passed, 0 failed, 0 errors, 0 skipped"


def test_selfcheck_skips_are_counted_apart_and_nothing_checked_fails(monkeypatch, capsys):
    row = _selfcheck.SelfCheckRow
    some = _selfcheck.SelfCheckReport([row("exp.vjp", "float64", 1e-16, 1e-14, "passed"),
                                       row("abs.vjp", "float64", 0.0, 0.0, "skipped")])
    assert some and str(some).splitlines()[-1] == (
        "ALL PASSED: 1 passed, 0 failed, 0 errors, 1 skipped")
    none = _selfcheck.SelfCheckReport([row("abs.vjp", "float64", 0.0, 0.0, "skipped")])
    assert not none and not none.failures
    assert str(none).splitlines()[-1] == "NOTHING CHECKED: 0 passed, 0 failed, 0 errors, 1 skipped"
    assert not _selfcheck.SelfCheckReport([])
    from fastjac import cli

    monkeypatch.setattr(cli, "selfcheck", lambda **kw: none)
    assert main_check([]) == 1
    assert "NOTHING CHECKED" in capsys.readouterr().out


@pytest.mark.skipif(not HAVE_OPS, reason="fastjac.ops not built yet")
def test_selfcheck_passes_on_the_library(capsys):
    r = selfcheck()
    assert r, str(r)
    ops = {row.op for row in r.rows if row.status == "passed"}
    assert {"exp.derivative", "relu.vjp", "mul.vjp", "mul.sum_grad"} <= ops
    if importlib.util.find_spec("fastjac.neuron") is not None:
        assert {"neuron.loss_grad", "neuron.activation_jacobian"} <= ops
    relu = [row for row in r.rows if row.op == "relu.derivative"]
    assert relu and all(row.kinks >= 1 for row in relu)  # x = 0 reported as a kink
    assert main_check(["--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "exp.derivative" in out and "ALL PASSED" in out


@pytest.mark.skipif(not HAVE_OPS, reason="fastjac.ops not built yet")
def test_selfcheck_catches_a_broken_kernel(monkeypatch, capsys):
    from fastjac import ops

    exp = ops.UNARY["exp"]
    monkeypatch.setattr(exp, "derivative", lambda x, **kw: np.exp(x) * (1 + 1e-4))
    r = selfcheck(dtypes=("float64",))
    assert not r
    assert [row.op for row in r.failures] == ["exp.derivative"]
    assert main_check(["--dtype", "float64", "-v"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "exp.derivative: FAILED" in out


@pytest.mark.skipif(not HAVE_OPS, reason="fastjac.ops not built yet")
def test_validation_mode_runs_on_the_library(monkeypatch):
    import fastjac as fj
    x = _point((-2, 2), 50, np.float32)
    x[0] = 0.0
    gy = _point((-1, 1), 50, np.float32, seed=1)
    with validating():  # real kernels, real finite differences: all consistent
        fj.exp.derivative(x)
        fj.relu.vjp(x, gy)  # x[0] = 0 is a kink, not an error
        fj.mul.vjp(x, 0.5, gy)  # scalar operand: a scalar gradient (§4.3)
        fj.maximum.sum_grad(x, x[::-1].copy())
        fj.dot.grad(x, gy)
        fj.sum.vjp(x, 2.0)
    calls = []
    monkeypatch.setattr(_validation, "cross_check_unary", lambda *a: calls.append(a[1]))
    fj.tanh.jvp(x, gy)
    assert calls == [] or _config.ENV_VALIDATE  # off: the hook is not even called
    with validating():
        fj.tanh.jvp(x, gy)
        fj.tanh.vjp(x, gy)
        fj.tanh.derivative(x)
    assert calls[-3:] == ["jvp", "vjp", "derivative"]


@pytest.mark.skipif(not HAVE_OPS, reason="fastjac.ops not built yet")
def test_validation_mode_raises_on_a_wrong_result():
    from fastjac import ops
    from fastjac._validation import cross_check_binary as _cross_check_binary
    from fastjac._validation import cross_check_unary as _cross_check_unary

    x = _point((0.5, 2), 20, np.float64)
    w = _point((-1, 1), 20, np.float64, seed=2)
    with validating():
        with pytest.raises(GradCheckError, match="exp.derivative"):
            _cross_check_unary(ops.UNARY["exp"], "derivative", (x,), np.exp(x) * (1 + 1e-6))
        gw, gx = ops.BINARY["div"].vjp(w, x, np.ones(20))
        _cross_check_binary(ops.BINARY["div"], "vjp", (w, x, np.ones(20)), (gw, gx))
        with pytest.raises(GradCheckError, match=r"div.vjp\[x\]"):
            _cross_check_binary(ops.BINARY["div"], "vjp", (w, x, np.ones(20)), (gw, -gx))


def _fake_neuron_module(broken=False):
    """A NumPy stand-in for fastjac.neuron (paper §5, §6) to exercise selfcheck's
    neuron rows and the neuron validation hook before the compiled one lands."""
    import types

    from fastjac.jacobian import Column, RowScaled

    def activation(X, w, b):
        return np.maximum(X @ w + b, 0)

    def activation_jacobian(X, w, b):
        mask = (X @ w + b > 0).astype(X.dtype)
        return RowScaled(mask, X), Column(mask)

    def loss(X, y, w, b):
        return np.mean((y - activation(X, w, b)) ** 2)

    def loss_grad(X, y, w, b, wrt=("w", "b")):
        z = X @ w + b
        e = (z - y) * (z > 0 if not broken else 1.0)
        N = X.shape[0]
        gw = (2 / N) * e @ X if "w" in wrt else None
        gb = float((2 / N) * np.sum(e)) if "b" in wrt else None
        res = (loss(X, y, w, b), gw, gb)
        return res + ((2 / N) * np.outer(e, w),) if "X" in wrt else res

    mod = types.ModuleType("fastjac.neuron")
    mod.activation, mod.activation_jacobian = activation, activation_jacobian
    mod.loss, mod.loss_grad = loss, loss_grad
    return mod


def _neuron_hook(mod):
    """The neuron validation hook with ``mod``'s value functions (as fastjac.neuron calls it)."""

    def hook(method, args, result):
        return _validation.cross_check_neuron(method, args, result,
                                              activation=mod.activation, loss=mod.loss)
    return hook


def test_selfcheck_neuron_rows_and_hook(monkeypatch):
    monkeypatch.setattr(_selfcheck, "neuron", _fake_neuron_module())
    r = selfcheck()
    rows = {(row.op, row.dtype): row for row in r.rows}
    for dt in ("float64", "float32"):
        assert rows[("neuron.activation_jacobian", dt)].status == "passed"
        assert rows[("neuron.loss_grad", dt)].status == "passed"
    X, y, w, b = _neuron_problem(3)
    mod = _selfcheck.neuron
    _cross_check_neuron = _neuron_hook(mod)
    with validating():
        assert _cross_check_neuron("loss_grad", (X, y, w, b), mod.loss_grad(X, y, w, b))
        J = mod.activation_jacobian(X, w, b)
        assert _cross_check_neuron("activation_jacobian", (X, w, b), J)
        for wrt in (("b",), ("w", "X"), ("w", "b", "X")):  # None gradients are skipped
            res = mod.loss_grad(X, y, w, b, wrt=wrt)
            assert _cross_check_neuron("loss_grad", (X, y, w, b), res)
        res = mod.loss_grad(X, y, w, b, wrt=("w", "X"))
        with pytest.raises(GradCheckError, match="neuron.loss_grad"):
            _cross_check_neuron("loss_grad", (X, y, w, b), res[:3] + (2 * res[3],))
        with pytest.raises(GradCheckError, match="neuron.loss_grad"):
            bad = _fake_neuron_module(broken=True).loss_grad(X, y, w, b)
            _cross_check_neuron("loss_grad", (X, y, w, b), bad)
    monkeypatch.setattr(_selfcheck, "neuron", _fake_neuron_module(broken=True))
    r = selfcheck(dtypes=("float64",))
    assert [row.op for row in r.failures] == ["neuron.loss_grad"]


def test_check_grad_on_a_large_input_samples_coordinates():
    n = 20_000
    x = _point((-2, 2), n, np.float64, seed=9)
    f = lambda v: np.sum(np.sin(v) ** 2)  # noqa: E731
    g = lambda v: np.sin(2 * v)  # noqa: E731
    r = check_grad(f, g, x)
    assert r and r.n_checked == 256 + 2
    assert r.n_evals <= 6 * (256 + 2) + 2
    assert any("256 of 20000 coordinates" in note for note in r.notes)
    assert not check_grad(f, lambda v: g(v) * (1 + 1e-4), x)
    r = check_grad(f, g, x, coords=[0, 7, n - 1], n_probes=0)
    assert r and [e.index for e in sorted(r.worst, key=lambda e: e.index)] == [0, 7, n - 1]


@pytest.mark.skipif(
    not HAVE_OPS or importlib.util.find_spec("fastjac.neuron") is None,
    reason="fastjac.neuron not built yet",
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_neuron_hook_on_the_real_module(dtype):
    from fastjac import neuron

    _cross_check_neuron = _neuron_hook(neuron)

    X, y, w, _ = _neuron_problem(4, N=200, n=6, dtype=dtype)
    b = -float(X[0] @ w)  # sample 0 on the kink
    with validating():
        for wrt in (("w", "b"), ("b",), ("w", "b", "X")):
            res = neuron.loss_grad(X, y, w, b, wrt=wrt)
            assert _cross_check_neuron("loss_grad", (X, y, w, b), res)
        J = neuron.activation_jacobian(X, w, b)
        assert _cross_check_neuron("activation_jacobian", (X, w, b), J)
        C, gw, gb = neuron.loss_grad(X, y, w, b)
        with pytest.raises(GradCheckError):
            _cross_check_neuron("loss_grad", (X, y, w, b), (C, gw * (1 + 1e-3), gb))


def test_float16_input_does_not_loosen_the_analytic_bound():
    """Regression (found by the fuzz suite): a float16 x made the analytic-rounding
    allowance float16's eps (~1e-3 x 8 ulps), so a derivative wrong by 1.5x passed."""
    import fastjac as fj

    h = fj.chain(fj.cos, fj.exp)
    x = np.array([1.156], dtype=np.float16)
    f = lambda v: fj.sum(h(v))  # noqa: E731 - the function under test
    assert check_grad(f, h.derivative, x)
    assert not check_grad(f, lambda v: 1.5 * h.derivative(v), x)
