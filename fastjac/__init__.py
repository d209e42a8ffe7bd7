"""fastjac: the matrix calculus of deep learning as a fast gradient backend.

Typed Cython kernels for the rules of Parr & Howard, "The Matrix Calculus You Need For Deep
Learning": Jacobian-vector and vector-Jacobian products of element-wise functions and
operators (diagonal Jacobians, scalar expansion), sum and dot gradients, and the batched
ReLU neuron with its MSE loss, all without building a dense matrix.

Examples
--------
>>> import numpy as np
>>> import fastjac as fj
>>> w = np.array([1.0, 2.0, 3.0])
>>> x = np.array([0.0, 0.5, 1.0])
>>> gy = np.array([1.0, 2.0, 3.0])
>>> fj.exp.vjp(x, gy).round(4)               # gy * exp(x), one pass
array([1.    , 3.2974, 8.1548])
>>> fj.mul.vjp(w, x, gy)                     # (gy * x, gy * w)
(array([0., 1., 3.]), array([1., 4., 9.]))
>>> gw, gx = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin).vjp(w, x, gy)
>>> gx.round(4)                              # gy * exp(w) * cos(x)
array([ 2.7183, 12.969 , 32.5568])
"""

# Where things live, in import order (each module imports only those above it; the
# order is checked by tests/test_structure.py):
#   _kernels/      compiled loops over validated buffers: elementwise.pyx (op-code
#                  interpreter, direct loops, entry points) including fastpath_checks.pxi
#                  (the one-C-call checks) and reduce.pxi (sum, dot); neuron.pyx,
#                  layer.pyx, fused.pyx; pool.pyx (threads); outputs.pyx (the memory of
#                  every output array: the output cache); shared inline helpers in
#                  _common.pxd; C loops in fj_*.h, neuron_block*.h, layer_block.h
#   _config        FASTJAC_* environment switches, validation-mode flag
#   _threads       the thread pool: thread_info, n_threads
#   _validate      every input check;  jacobian  structured Jacobians
#   _display       progress bar, time format;  _reference  the NumPy neuron
#   _optable       the op table: names, codes, arities, weights, formulas
#   _fd            finite-difference engine;  _report  what a check found
#   gradcheck      the public checks (check_*, assert_*)
#   _validation    validation-mode hooks called by ops and neuron
#   ops            the element-wise ops
#   neuron, layer, fuse   the ReLU neuron, a layer of them, fused expressions (fj.fuse)
#   _selfcheck     every kernel against finite differences (fastjac.selfcheck)
#   bench, dask    `fastjac bench`; the same gradients on Dask arrays
#   cli            the `fastjac` command (check, bench, demo, train)
from ._kernels.outputs import output_cache_info, set_output_cache
from ._threads import openmp_enabled, thread_info
from .jacobian import Column, Dense, Diagonal, Jacobian, LayerJacobian, Row, RowScaled
from .ops import (BINARY, UNARY, BinaryOp, UnaryOp, chain, dot, elementwise, get_precision,
                  set_precision, sum)
from . import neuron
from .fuse import Fused, fuse
from . import layer
from .gradcheck import (
    GradCheckError, GradCheckReport, assert_diagonal, assert_grad, assert_jvp, assert_vjp,
    check_diagonal, check_grad, check_jvp, check_vjp, validating,
)
from ._selfcheck import SelfCheckReport, selfcheck

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
    "__version__", "thread_info", "openmp_enabled", "neuron", "layer", "set_precision",
    "get_precision", "set_output_cache", "output_cache_info",
    "check_grad", "check_jvp", "check_vjp", "check_diagonal", "assert_grad", "assert_jvp",
    "assert_vjp", "assert_diagonal", "selfcheck", "SelfCheckReport", "validating",
    "GradCheckReport", "GradCheckError",
    "Jacobian", "Diagonal", "Column", "Row", "RowScaled", "Dense", "LayerJacobian",
    "UnaryOp", "BinaryOp", "UNARY", "BINARY", "chain", "elementwise", "dot", "sum",
    "fuse", "Fused",
    "identity", "neg", "square", "sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid",
    "relu", "abs", "reciprocal", "add", "sub", "mul", "div", "maximum", "minimum",
]
