"""Validation mode: the hooks fastjac's gradient methods call to check themselves.

Inside ``with fastjac.validating():`` (or with ``FASTJAC_VALIDATE=1``) every public
gradient method of fastjac cross-checks its own result against finite differences
(:mod:`fastjac.gradcheck`) and raises :class:`~fastjac.gradcheck.GradCheckError` on a
mismatch. The methods call one of these hooks behind the cheap flag
``fastjac._config.VALIDATE``::

    if _config.VALIDATE:
        _validation.cross_check_unary(self, "vjp", (x, gy), res)

:func:`cross_check_unary` (element-wise functions), :func:`cross_check_binary`
(element-wise operators), :func:`cross_check_neuron` (the ReLU neuron) and the generic
:func:`cross_check`. An element-wise derivative costs about 13 evaluations of the value
function, a JVP 8, a VJP 13. This module imports no other module that computes
gradients: the value functions come from the caller.
"""

import numpy as np

from . import _config
from ._fd import DEFAULT_ULPS, F64, _as_tuple, _eps
from .gradcheck import GradCheckError, GradCheckReport, check_diagonal, check_jvp, check_vjp

__all__ = ["cross_check", "cross_check_unary", "cross_check_binary", "cross_check_neuron"]


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


def cross_check(fn_value, kind, primals, direction, result, name="gradient"):
    """Cross-check one gradient result against finite differences of its value function.

    The hook behind validation mode (``fastjac.validating()`` / ``FASTJAC_VALIDATE=1``).
    Callers guard it with the cheap flag::

        if _config.VALIDATE:
            _validation.cross_check(fn_value, "vjp", (w, b), 1.0, (gw, gb), "loss_grad")

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
        None when validation is off in this thread/task, when ``result`` overwrote
        one of the inputs (an in-place ``out=`` call: nothing left to difference), or
        when an input (primal or direction) holds NaN or inf.

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
    used = _as_tuple(direction) if kind in ("jvp", "vjp") else ()  # else unused
    if not _finite_inputs(primals + used):
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


def _finite_inputs(args):
    """False when an input (a primal, tangent or cotangent; None is a zero tangent) holds
    NaN or inf: finite differences cannot be taken there (the checks refuse such inputs),
    and NaN/inf propagate as NumPy's expressions do, so such a call is not cross-checked."""
    return all(a is None or np.isfinite(np.asarray(a, dtype=F64)).all() for a in args)


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


def cross_check_unary(op, method, args, result):
    """Validation hook of an element-wise unary op ``y = h(x)``.

    ``method`` and ``args``: ``"derivative"``/``"sum_grad"`` ``(x,)``, ``"jacobian"``
    ``(x,)`` (``result`` a ``Diagonal``), ``"jvp"`` ``(x, dx)``, ``"vjp"`` ``(x, gy)``,
    ``"value_and_vjp"`` ``(x, gy)`` (``result`` the pair). The Jacobian is diagonal, so
    a VJP is checked entry by entry as the JVP along ``gy``.
    """
    if not _config.is_validating() or _overwrote_input(args, result):
        return None
    if not _finite_inputs(args):
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


def zero_tangent(v):
    return 0.0 if np.ndim(v) == 0 and not isinstance(v, np.ndarray) else np.zeros(np.shape(v))


def cross_check_binary(op, method, args, result):
    """Validation hook of an element-wise binary op ``y = f(w) ○ g(x)``.

    ``method`` and ``args``: ``"jvp"`` ``(w, x, dw, dx)`` (a None tangent is zero),
    ``"vjp"`` ``(w, x, gy)``, ``"sum_grad"`` ``(w, x)``, ``"jacobian"`` ``(w, x)``
    (``result`` the pair of ``Diagonal``/``Column``). An array operand's cotangent is
    checked entry by entry (``gw = J_w gy`` since ``J_w`` is diagonal); a scalar
    operand's (the §4.3 sum) through the dot-product identity.
    """
    if not _config.is_validating() or _overwrote_input(args, result):
        return None
    if not _finite_inputs(args):
        return None
    name = _op_name(op, method)
    w, x = args[0], args[1]
    if method == "jvp":
        dw = args[2] if args[2] is not None else zero_tangent(w)
        dx = args[3] if args[3] is not None else zero_tangent(x)
        return _validated(name, lambda: check_jvp(op, result, (w, x), (dw, dx), name=name))
    if method == "jacobian":
        reports = []
        for k, (J, operand) in enumerate(zip(result, (w, x))):
            tan = [zero_tangent(w), zero_tangent(x)]
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


def cross_check_neuron(method, args, result, *, activation, loss, seed=0):
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

    ``y`` (and ``X`` unless ``gX`` is given) is held fixed. ``activation(X, w, b)`` and
    ``loss(X, y, w, b)`` are the value functions (``fastjac.neuron`` passes its own).
    A call whose ``out=`` overwrote an input is not checked.
    """
    if not _config.is_validating() or _overwrote_input(args, tuple(result)):
        return None
    if not _finite_inputs(args):
        return None  # NaN/inf inputs: finite differences have nothing to compare
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
                lambda ww, bb: activation(X, ww, bb), an, (w, float(b)), (v, db),
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
                ref64 = np.asarray(loss(X64, y64, w64, float(b))).dtype == F64
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
            return frac * loss(at["X"], y_S, at["w"], at["b"])

        def adjusted(active):
            e_near = np.where(near & active, z - y64, 0.0) * (2.0 / N)
            return {
                "w": None if grads["w"] is None else np.asarray(grads["w"]) - e_near @ X64,
                "b": None if grads["b"] is None else float(grads["b"]) - float(np.sum(e_near)),
                "X": None if grads["X"] is None else np.asarray(grads["X"])[keep],
            }

        def make():
            with np.errstate(all="ignore"):
                C_ref = float(loss(X, y, w, b))
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
