"""``selfcheck``: every kernel of fastjac against central finite differences.

The catalogue of cases: each unary function, each binary operator (array and scalar
operands), a fused ``elementwise`` op, a ``chain``, ``dot`` and the ReLU neuron, checked
with the public checks of :mod:`fastjac.gradcheck`. :func:`selfcheck` is exported as
``fastjac.selfcheck``; ``fastjac check`` (:mod:`fastjac.cli`) prints its table.

The module is named ``_selfcheck`` so that the function ``fastjac.selfcheck`` does not
shadow a module of the same name.
"""

import dataclasses
from typing import List, Optional

import numpy as np

from . import _config, neuron, ops
from ._fd import F64
from .fuse import fuse
from .gradcheck import GradCheckReport, check_diagonal, check_jvp, check_vjp

__all__ = ["SelfCheckRow", "SelfCheckReport", "selfcheck"]


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
        """Not a failure: passed, or skipped (a skip is not counted as a pass)."""
        return self.status in ("passed", "skipped")


@dataclasses.dataclass
class SelfCheckReport:
    """All rows of :func:`selfcheck`; truthy when nothing failed and something passed.

    A skipped row is neither a failure nor a pass: the summary line counts it apart, and
    a report in which no row passed (everything skipped, or no rows) has not passed.
    ``str(report)`` is the table that ``fastjac check`` prints.
    """

    rows: List[SelfCheckRow]

    def count(self, status):
        """Number of rows with ``status`` ("passed", "FAILED", "error" or "skipped")."""
        return sum(r.status == status for r in self.rows)

    @property
    def passed(self):
        return all(r.ok for r in self.rows) and self.count("passed") > 0

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
        if self.passed:
            verdict = "ALL PASSED"
        elif self.failures:
            verdict = "FAILURES"
        else:
            verdict = "NOTHING CHECKED"
        lines.append("-" * len(head))
        lines.append(
            f"{verdict}: {self.count('passed')} passed, {self.count('FAILED')} failed, "
            f"{self.count('error')} errors, {self.count('skipped')} skipped"
        )
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


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
    """Yield ``(label, thunk)``; each thunk returns a GradCheckReport."""
    dt = np.dtype(dtype)
    unary = ops.UNARY
    binary = ops.BINARY
    for name in sorted(unary):
        op = unary[name]
        x = _unary_point(name, n, dt, rng)
        t = rng.standard_normal(n).astype(dt)
        yield f"{name}.derivative", lambda op=op, x=x: check_diagonal(
            op, op.derivative(x), x, name=f"{op.name}.derivative"
        )
        yield f"{name}.jvp", lambda op=op, x=x, t=t: check_jvp(
            op, lambda p, tt: op.jvp(p[0], tt[0]), (x,), (t,), name=f"{op.name}.jvp"
        )
        yield f"{name}.vjp", lambda op=op, x=x: check_vjp(
            op, lambda p, c: (op.vjp(p[0], c),), (x,), seed=1, name=f"{op.name}.vjp"
        )
    for name in sorted(binary):
        op = binary[name]
        yield from _binary_cases(op, name, dt, rng, n)
    fused = ops.elementwise(binary["mul"], f=unary["exp"], g=unary["sin"])
    yield from _binary_cases(fused, "elementwise(mul, f=exp, g=sin)", dt, rng, n)
    h = ops.chain(unary["sin"], unary["square"])
    x = rng.uniform(-1.5, 1.5, n).astype(dt)
    label = "chain(sin, square)"
    yield f"{label}.derivative", lambda h=h, x=x: check_diagonal(
        h, h.derivative(x), x, name=f"{label}.derivative"
    )
    yield f"{label}.vjp", lambda h=h, x=x: check_vjp(
        h, lambda p, c: (h.vjp(p[0], c),), (x,), seed=2, name=f"{label}.vjp"
    )
    dot = ops.dot
    w = rng.standard_normal(n).astype(dt)
    x = rng.standard_normal(n).astype(dt)
    yield "dot.grad", lambda: check_vjp(dot, dot.grad(w, x), (w, x), 1.0, name="dot.grad")
    dw = rng.standard_normal(n).astype(dt)
    dx = rng.standard_normal(n).astype(dt)
    yield "dot.jvp", lambda: check_jvp(
        dot, lambda p, tt: dot.jvp(p[0], p[1], tt[0], tt[1]), (w, x), (dw, dx),
        name="dot.jvp",
    )
    yield from _neuron_cases(dt, rng)
    yield from _fuse_cases(dt, rng, n)


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
        f = op.jvp
        return check_jvp(
            op, lambda p, t: f(p[0], p[1], t[0], t[1]), (w, x), (dw, dx), name=f"{label}.jvp"
        )

    def vjp():
        f = op.vjp
        return check_vjp(op, lambda p, c: f(p[0], p[1], c), (w, x), seed=3, name=f"{label}.vjp")

    def vjp_scalar_w():
        f = op.vjp
        return check_vjp(
            op, lambda p, c: f(p[0], p[1], c), (s, x), seed=4, name=f"{label}.vjp[scalar w]"
        )

    def vjp_scalar_x():
        f = op.vjp
        xs = s if "div" not in label else s + 0.5
        return check_vjp(
            op, lambda p, c: f(p[0], p[1], c), (w, xs), seed=5, name=f"{label}.vjp[scalar x]"
        )

    def sum_grad():
        f = op.sum_grad
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
    X = rng.standard_normal((N, n)).astype(dt)
    y = rng.standard_normal(N).astype(dt)
    w = rng.standard_normal(n).astype(dt)
    b = float(rng.uniform(-0.3, 0.3))

    def act_jac():
        act = neuron.activation
        Jw, Jb = neuron.activation_jacobian(X, w, b)
        v = rng.standard_normal(n).astype(dt)
        db = float(rng.standard_normal())
        an = np.asarray(Jw @ v, dtype=F64) + np.asarray(Jb @ np.array([db]), dtype=F64)
        return check_jvp(
            lambda ww, bb: act(X, ww, bb), an, (w, b), (v, db), name="neuron.activation_jacobian"
        )

    def loss_grad():
        loss = neuron.loss
        lg = neuron.loss_grad
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


def _fuse_cases(dt, rng, n):
    """Fused expressions: the paper's x + x² (§4.5.2), exp(w)·sin(x) + w/x with array and
    scalar inputs, and a three-input DAG with shared subexpressions."""
    U, B = ops.UNARY, ops.BINARY
    paper = fuse(lambda x: x + x ** 2)
    issue = fuse(lambda w, x: U["exp"](w) * U["sin"](x) + w / x)
    three = fuse(lambda a, b, c: U["tanh"](a) * b + B["maximum"](a * b, c) * c
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


def selfcheck(dtypes=("float64", "float32"), seed=0):
    """Validate every kernel of the library against central finite differences.

    Runs :func:`check_diagonal`, :func:`check_jvp`, :func:`check_vjp` and
    :func:`check_grad` on each unary function (``derivative``, ``jvp``, ``vjp``), each
    binary operator (``jvp``, ``vjp`` with array and scalar operands, ``sum_grad``), a
    fused ``elementwise`` op, a ``chain``, ``dot`` and the ReLU neuron, at random points
    away from kinks and poles (positive inputs for log, sqrt and reciprocal) plus one
    point exactly on each kink (ReLU and abs at 0, a max/min tie), which must be
    reported as a kink. A check that compared no entry at all (every one at a kink or
    outside the function's domain) is a "skipped" row: not a failure, and not a pass.

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
        Rows of (op, dtype, max rel err, bound, status); truthy when nothing failed and
        at least one row passed.
    """
    rows = []
    for dtype in dtypes:
        dt = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        for label, thunk in _selfcheck_cases(dt, rng):
            try:
                with _config.validating(False):
                    rep = thunk()
            except Exception as exc:  # a crash is a failure, shown in the table
                rows.append(
                    SelfCheckRow(
                        label, dt.name, float("nan"), 0.0, "error",
                        detail=f"{type(exc).__name__}: {exc}"[:120],
                    )
                )
                continue
            if not rep.passed:
                status = "FAILED"
                detail = "; ".join(p for p in rep.problems[1:] if p)[:120]
            elif rep.n_checked == 0:
                status, detail = "skipped", "nothing compared"
            else:
                status, detail = "passed", ""
            rows.append(
                SelfCheckRow(
                    label,
                    dt.name,
                    rep.max_rel_err,
                    rep.rel_bound,
                    status,
                    kinks=len(rep.kinks),
                    detail=detail,
                    report=rep,
                )
            )
    return SelfCheckReport(rows)
