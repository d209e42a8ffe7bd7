"""Finite-difference validation of gradients, JVPs, VJPs and diagonal Jacobians.

Usable on anyone's functions (:func:`check_grad`, :func:`check_jvp`, :func:`check_vjp`,
:func:`check_diagonal` and their ``assert_*`` twins) and on fastjac's own kernels
(:func:`fastjac.selfcheck`, ``fastjac check``, validation mode).

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
  ``|f|`` seen on the line, at least ``f_scale`` and ``q |D(h)|`` (the change of ``f``
  over the input's own scale, for an ``f`` that is small at ``x``), and
  ``rho = ulps * eps`` the relative accuracy assumed for one evaluation of ``f``
  (``ulps=8`` by default);
* rounding of the *analytic* value, computed in its own dtype:
  ``rho_a * (|a| + q |f''| + F / q)``, with ``q`` the scale of the input
  (``max(1, |x_i|)``; along a direction ``t``, ``max(1, max |x|) / max |t|``, and
  ``|a|`` is then ``Σ |a_i t_i|``) and ``f''`` the second difference along the line: the
  last term covers cancellation inside a derivative formula (``1 - tanh(x)**2``), the
  middle one the propagation of input rounding through the derivative.

An entry passes when ``|analytic - numeric| <= bound``. ``rtol``/``atol``, when given,
loosen the bound to ``max(bound, atol + rtol * |numeric|)``.

*Inputs.* Primals, tangents and cotangents must be finite: a step from an infinite
coordinate is ``inf - inf``, so every check raises ``ValueError`` naming the argument and
its first NaN/inf entry. Where ``f`` itself is not finite on a step (outside its domain,
overflow) the entry is reported apart (``report.nonfinite``), not compared. A check that
would compare nothing by construction (``check_vjp`` with ``n_probes=0`` and no full
columns, ``check_grad`` with no coordinate and no probe) is a ``ValueError`` too.

*float32.* A float32 function is differentiated in float64 when it can be: by default
(``reference="auto"``) ``f`` is re-run on the float64 copy of its float32 inputs, and
the re-run is used when it returns float64 values that agree with the float32 run (to
within ``sqrt(eps32)`` relative: also when the float32 run returned float64 values, as a
float32 computation summed in float64 does); or
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
above and raises :class:`GradCheckError` on a mismatch (a call with NaN or inf inputs,
or one whose ``out=`` overwrote an input, is not cross-checked). The methods call,
behind the cheap flag ``fastjac._config.VALIDATE``, one of the hooks of
:mod:`fastjac._validation`.
An element-wise derivative costs about 13 evaluations of the value function, a JVP 8, a
VJP 13.

The finite-difference engine (steps, evaluation, line statistics) is :mod:`fastjac._fd`;
the reports are built in :mod:`fastjac._report`.

Functions here are pure Python and NumPy; they never need the compiled kernels.
"""

import math

import numpy as np

from . import _config
from ._fd import (
    DEFAULT_ULPS, F64, _analytic_array, _Args, _as_tuple, _coord_steps, _count, _direction,
    _dot_tangent, _eps, _Evaluator, _in_eps, _kink_mask, _line_stats, _rel_step,
    _require_finite, _round_allow, _split_errors, _want_split,
)
from ._report import Entry, GradCheckError, GradCheckReport, _finish

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
    "validating",
    "is_validating",
]

validating = _config.validating
is_validating = _config.is_validating


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
        The point, finite (NaN or inf is a ``ValueError``: no finite difference can be
        taken there). Integer and bool inputs are differentiated in float64; float32 in
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
    n_probes : int >= 0, default 2
        Random directional derivatives ``<grad, t>`` also checked: they involve every
        coordinate, including those not sampled. No coordinate and no probe (``coords=0``
        or ``[]`` with ``n_probes=0``) would check nothing: a ``ValueError``.
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
    n_probes = _count(n_probes, "n_probes")
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
        k = _count(coords, "coords")
        sel = np.sort(rng.choice(n, size=min(k, n), replace=False)) if k < n else np.arange(n)
    else:
        sel = np.asarray(coords, dtype=np.intp).reshape(-1)
    n_dir = n_probes if n > 1 else 0  # one coordinate: a probe is the coordinate again
    if sel.size == 0 and n_dir == 0 and n > 0:
        hint = (
            "difference at least one coordinate or give n_probes >= 1"
            if n > 1
            else "x has one entry, along which a probe is the coordinate again: difference it"
        )
        raise ValueError(f"coords={coords!r} and n_probes={n_probes} check nothing: {hint}")
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
    for _ in range(n_dir):
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
        The point, any shape (treated as flat), finite as in :func:`check_grad`.
    eps, rtol, atol, reference, kinks, seed, ulps, f_scale, name
        As in :func:`check_grad`; ``kinks`` masks entries of ``x``.
    n_probes : int >= 0, default 3
        Random partitions used to probe diagonality (two evaluations each), on top of the
        alternate-coordinates and half/half partitions (``0`` keeps those two).

    Returns
    -------
    GradCheckReport
        ``n_evals`` is ``7 + 2 * (n_probes + 2)`` whatever the size of ``x``.
    """
    n_probes = _count(n_probes, "n_probes")
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
    parts += [rng.random(n) < 0.5 for _ in range(n_probes)]
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
                # per unit of step; a step of 0 (vanished) or inf (overflowed): inf
                coupling = float(delta[i]) / hmax if 0 < hmax < math.inf else math.inf
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
        Finite, as in :func:`check_grad`.
    tangents : tuple of array_like
        One tangent per primal, of its shape; finite too.
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
        _require_finite(np.asarray(t, dtype=F64).reshape(-1), np.shape(t), f"tangents[{i}]")
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
        The point (a single array is a 1-tuple), finite as in :func:`check_grad`.
    cotangent : array_like, optional
        ``ct`` of ``y``'s shape, finite; random normal by default. A zero ``ct`` is
        checked too: its VJP must be zero.
    eps, rtol, atol, reference, ulps, f_scale, name
        As in :func:`check_grad`.
    kinks : bool array or callable, optional
        Output entries known to sit at a kink (``kinks(*primals)``): removed from ``ct``.
    n_probes : int >= 0, default 3
        Random tangents of the identity. ``0`` is a ``ValueError`` unless full columns
        are checked: a check without probes or columns compares nothing.
    full : True, False or "auto", default "auto"
        Check every column (above); ``"auto"`` when the inputs have at most ``max_full``
        entries in all.
    max_full, seed
        See above; ``seed`` draws the probes (and the default cotangent).

    Returns
    -------
    GradCheckReport
        Entries ``"probe k"`` for the identity and ``(arg, index)`` for full columns.
    """
    n_probes = _count(n_probes, "n_probes")
    if full not in (True, False, "auto"):
        raise ValueError(f"full must be True, False or 'auto', got {full!r}")
    primals = _as_tuple(primals)
    args = _Args(primals)
    n_in = sum(args.sizes)
    do_full = n_in <= max_full if isinstance(full, str) else bool(full)
    if n_probes == 0 and not do_full:
        raise ValueError(
            f"n_probes=0 with full={full!r} checks nothing (no probes, no columns for "
            f"{n_in} input entries, max_full={max_full}): give n_probes >= 1 or full=True"
        )
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
        _require_finite(ct, np.shape(cotangent), "cotangent")
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

    for p in range(n_probes):
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
        # Every output with a cotangent at a kink along t: nothing left to compare. A
        # precomputed VJP cannot be re-run on ct' either. (A zero ct is compared: its
        # VJP must be zero.)
        if kinked and (not use.any() or not callable(vjp)):
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
