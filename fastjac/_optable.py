"""The one table of fastjac's element-wise operations.

Every element-wise operation is described here once: its name, its op code, its arity, its
cost weight (work per element relative to a multiply, for the ``n_threads=None`` choice) and
the formulas of its value and partial derivatives (used for the docstrings). The kernels'
op codes are generated from it at build time: setup.py runs
``fastjac/_kernels/_gen_opcodes.py``, which writes ``fj_opcodes.pxi`` (the Cython enums
``U_EXP``, ``B_ADD``, ``F_ADD``, ... and the dicts ``UNARY_CODES``, ``BINARY_CODES``,
``FUSED_CODES``, included by ``elementwise.pyx`` and ``fused.pyx``) and ``fj_opcodes.h``
(the same codes as the C enum ``FJ_U_EXP``, ... for ``fj_fused.h``). The Python tables of
:mod:`fastjac.ops` and :mod:`fastjac.fuse` are built from this table, and
:func:`check_kernel_codes` (run at import) checks the compiled codes against it, so a build
older than the table fails loudly at import instead of computing the wrong function.

Adding an operation: add a row here, rebuild, and write its mathematics where the
generated name is dispatched: a case ``code == U_<NAME>`` in ``_stage`` (elementwise.pyx)
for a unary op; for a binary op, ``case FJ_F_<NAME>`` in ``fj_fused_binary`` (fj_fused.h)
and its loops in elementwise.pyx's binary kernels. (fj_vmath.h's derivative-only loop
keeps its own list of the unary codes; tests/test_optable.py checks it against this
table.)
"""

from __future__ import annotations

from typing import NamedTuple, Optional


class OpSpec(NamedTuple):
    """One row of the op table."""

    name: str
    code: int            # the kernels' op code (unary and binary codes are separate)
    arity: int           # 1 or 2
    weight: int          # work per element beyond one multiply (0 for cheap ops)
    value: str           # the formula of the value
    deriv: str           # dy/dx (unary) or ∂y/∂w (binary)
    deriv_x: Optional[str] = None  # ∂y/∂x (binary only)
    kernel: str = "all"  # "all": every kernel; "fuse": the fused interpreter only


UNARY_OPS = (
    OpSpec("identity", 0, 1, 0, "x", "1"),
    OpSpec("neg", 1, 1, 0, "-x", "-1"),
    OpSpec("square", 2, 1, 0, "x²", "2x"),
    OpSpec("sqrt", 3, 1, 0, "√x", "1/(2√x)"),
    OpSpec("exp", 4, 1, 4, "eˣ", "eˣ"),
    OpSpec("log", 5, 1, 10, "ln x", "1/x"),
    OpSpec("sin", 6, 1, 8, "sin x", "cos x"),
    OpSpec("cos", 7, 1, 8, "cos x", "-sin x"),
    OpSpec("tanh", 8, 1, 12, "tanh x", "1 - tanh²x (computed without cancellation)"),
    OpSpec("sigmoid", 9, 1, 6, "1/(1+e⁻ˣ)",
           "σ(x)(1-σ(x)) (computed as e/(1+e)², e = ``exp(-|x|)``)"),
    OpSpec("relu", 10, 1, 0, "max(0, x)",
           "1 if x > 0 else 0 (so ReLU'(0) = 0, the paper's choice)"),
    OpSpec("abs", 11, 1, 0, "``|x|``", "sign(x) (so abs'(0) = 0)"),
    OpSpec("reciprocal", 12, 1, 0, "1/x", "-1/x²"),
    # Fused expressions only: x ** c for a constant real c (traced from ``x ** c``).
    OpSpec("pow", 13, 1, 20, "xᶜ", "c xᶜ⁻¹", kernel="fuse"),
)

BINARY_OPS = (
    OpSpec("add", 0, 2, 0, "w + x", "I", "I"),
    OpSpec("sub", 1, 2, 0, "w - x", "I", "-I"),
    OpSpec("mul", 2, 2, 0, "w ⊗ x", "diag(x)", "diag(w)"),
    OpSpec("div", 3, 2, 0, "w ⊘ x", "diag(1/x)", "diag(-w/x²)"),
    OpSpec("maximum", 4, 2, 0, "max(w, x)", "diag(w >= x)", "diag(w < x)  (ties go to w)"),
    OpSpec("minimum", 5, 2, 0, "min(w, x)", "diag(w <= x)", "diag(w > x)  (ties go to w)"),
)

UNARY_CODES = {op.name: op.code for op in UNARY_OPS}
BINARY_CODES = {op.name: op.code for op in BINARY_OPS}
# Unary ops every kernel implements (fj.exp, ...; chains); "pow" is the fused kernel's only.
PUBLIC_UNARY = tuple(op for op in UNARY_OPS if op.kernel == "all")
# Work per element of each unary code (the codes not listed weigh 0).
WEIGHT = {op.code: op.weight for op in UNARY_OPS if op.weight}

# In the fused interpreter, binary op codes follow the unary ones from this offset.
FUSED_BINARY_BASE = 32


def check_kernel_codes(module_name, kernel_codes, expected):
    """Raise ``ImportError`` unless a kernel's ``{name: code}`` enum equals the table's."""
    if dict(kernel_codes) != dict(expected):
        raise ImportError(
            f"fastjac: the op codes compiled into {module_name} ({dict(kernel_codes)}) differ "
            f"from fastjac/_optable.py ({dict(expected)}); rebuild the extension "
            "(python setup.py build_ext --inplace) or fix the table"
        )
