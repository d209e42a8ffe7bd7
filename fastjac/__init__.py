"""fastjac: the matrix calculus of deep learning as a fast gradient backend.

Typed Cython kernels for the rules of Parr & Howard, "The Matrix Calculus You Need For Deep
Learning": Jacobian-vector and vector-Jacobian products of element-wise functions and
operators (diagonal Jacobians, scalar expansion), sum and dot gradients, and the batched
ReLU neuron with its MSE loss, all without building a dense matrix.

>>> import fastjac as fj
>>> fj.exp.vjp(x, gy)                       # gy * exp(x), one pass
>>> fj.mul.vjp(w, x, gy)                    # (gy * x, gy * w)
>>> fj.elementwise(fj.mul, f=fj.exp, g=fj.sin).vjp(w, x, gy)
"""

from ._threads import openmp_enabled, thread_info
from .jacobian import Column, Dense, Diagonal, Jacobian, Row, RowScaled
from .ops import (BINARY, UNARY, BinaryOp, UnaryOp, chain, dot, elementwise, get_precision,
                  set_precision, sum)
from . import neuron
from .gradcheck import (
    GradCheckError, GradCheckReport, assert_diagonal, assert_grad, assert_jvp, assert_vjp,
    check_diagonal, check_grad, check_jvp, check_vjp, selfcheck, validating,
)

__version__ = "0.1.0"

identity = UNARY["identity"]
neg = UNARY["neg"]
square = UNARY["square"]
sqrt = UNARY["sqrt"]
exp = UNARY["exp"]
log = UNARY["log"]
sin = UNARY["sin"]
cos = UNARY["cos"]
tanh = UNARY["tanh"]
sigmoid = UNARY["sigmoid"]
relu = UNARY["relu"]
abs = UNARY["abs"]  # noqa: A001 - the paper's element-wise |x|, like numpy.abs
reciprocal = UNARY["reciprocal"]

add = BINARY["add"]
sub = BINARY["sub"]
mul = BINARY["mul"]
div = BINARY["div"]
maximum = BINARY["maximum"]
minimum = BINARY["minimum"]

__all__ = [
    "__version__", "thread_info", "openmp_enabled", "neuron", "set_precision", "get_precision",
    "check_grad", "check_jvp", "check_vjp", "check_diagonal", "assert_grad", "assert_jvp",
    "assert_vjp", "assert_diagonal", "selfcheck", "validating", "GradCheckReport",
    "GradCheckError",
    "Jacobian", "Diagonal", "Column", "Row", "RowScaled", "Dense",
    "UnaryOp", "BinaryOp", "UNARY", "BINARY", "chain", "elementwise", "dot", "sum",
    "identity", "neg", "square", "sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid",
    "relu", "abs", "reciprocal", "add", "sub", "mul", "div", "maximum", "minimum",
]
