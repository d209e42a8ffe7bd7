"""Fused element-wise expressions: ``fj.fuse(fn)`` (paper §4.2 general form, §4.5.2).

:func:`fuse` traces a Python function of k array or scalar inputs, built from fastjac's
element-wise operations, into an expression DAG once: common subexpressions are shared,
constants are folded and nodes that do not reach the result are dropped. The DAG is
compiled to op codes for the fused interpreter (``fastjac/_kernels/fused.pyx``), which
evaluates the value, the JVP, the VJP and the diagonal Jacobians in one pass over memory:
a forward sweep computes values and local partials per tile, a forward tangent sweep the
JVP and a reverse sweep the VJP, summing the adjoints over every path (the total-derivative
rule, §4.5.2). Every Jacobian is diagonal (a Column for a scalar input, §4.3).

Tracing happens on the first call and is cached on the :class:`Fused` object.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from . import _config
from . import _optable
from . import _validation
from . import _validate as V
from ._kernels import fused as _FK
from .jacobian import Column, Diagonal
from .ops import PARALLEL_THRESHOLD, BINARY, UNARY, BinaryOp, UnaryOp

__all__ = ["fuse", "Fused"]

# The fused kernel's codes must be the table's (the unary codes are elementwise.pyx's,
# checked by fastjac.ops).
_optable.check_kernel_codes(
    "fastjac._kernels.fused", _FK.op_codes(),
    {**{op.name: op.code for op in _optable.UNARY_OPS if op.kernel == "fuse"},
     **{name: _optable.FUSED_BINARY_BASE + code for name, code in _optable.BINARY_CODES.items()}})
if _FK.N_STAGE_CODES != len(_optable.PUBLIC_UNARY):
    raise ImportError("fastjac: fused.pyx's unary stage range differs from _optable.py")

_U = _optable.UNARY_CODES
_B = {name: _optable.FUSED_BINARY_BASE + code for name, code in _optable.BINARY_CODES.items()}
_UNARY_NAME = {code: name for name, code in _U.items()}
_BINARY_NAME = {code: name for name, code in _B.items()}
_NEG, _POW = _U["neg"], _U["pow"]
# Kinds of a local partial (fused.pyx): a constant, another register's value, a buffer,
# one over a register's value (log, applied as a division).
_PK_CONST, _PK_REG, _PK_BUF, _PK_QUOT = 1, 2, 3, 4
_WORK = {**_optable.WEIGHT}

# What to suggest instead of a NumPy function on a traced value.
_SUGGEST = {
    "exp": "fj.exp", "log": "fj.log", "sin": "fj.sin", "cos": "fj.cos", "tanh": "fj.tanh",
    "sqrt": "fj.sqrt", "square": "fj.square", "absolute": "fj.abs (or abs(x))",
    "negative": "fj.neg (or -x)", "reciprocal": "fj.reciprocal (or 1 / x)",
    "add": "fj.add (or +)", "subtract": "fj.sub (or -)", "multiply": "fj.mul (or *)",
    "divide": "fj.div (or /)", "true_divide": "fj.div (or /)", "maximum": "fj.maximum",
    "minimum": "fj.minimum", "fmax": "fj.maximum", "fmin": "fj.minimum",
    "power": "x ** c with a constant c", "expit": "fj.sigmoid",
    "greater": "fj.maximum / fj.relu", "less": "fj.minimum", "where": "fj.maximum / fj.relu",
}


def _unsupported(what, hint):
    return TypeError(
        f"fj.fuse: {what} is not supported on a traced value; a fused function may use "
        f"only + - * / ** (constant exponent), abs() and fastjac's element-wise operations"
        f"{'; use ' + hint + ' instead' if hint else ''}")


# NumPy ufuncs that are the arithmetic operators (ndarray + traced value calls np.add).
_OPERATOR_UFUNCS = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
                    "true_divide": "div", "negative": "neg"}


class _Trace:
    """The DAG being recorded: leaves (inputs, constants, captured arrays) and op nodes,
    each once (a node with the same operation and operands is reused)."""

    def __init__(self, n_inputs):
        self.nodes = []     # ("in", k) | ("const", value) | ("arr", array) | ("op", code, a, b, p)
        self.index = {}     # node key -> node id (common subexpressions)
        self.dtypes = []    # dtypes of captured arrays and NumPy scalar constants
        self.inputs = [self._add(("in", k), ("in", k)) for k in range(n_inputs)]

    def _add(self, node, key):
        nid = self.index.get(key)
        if nid is None:
            nid = len(self.nodes)
            self.nodes.append(node)
            self.index[key] = nid
        return nid

    def const(self, value):
        v = float(value)
        # keyed by the bits: 0.0 and -0.0 (and NaNs) stay apart
        return self._add(("const", v), ("const", np.float64(v).tobytes()))

    def array(self, arr):
        self.dtypes.append(arr.dtype)
        return self._add(("arr", arr), ("arr", id(arr)))

    def leaf(self, value, what):
        """The node of an operand: a traced value of this trace, a real number or a
        captured array."""
        if isinstance(value, Traced):
            if value._trace is not self:
                raise TypeError("fj.fuse: a traced value from another trace was used")
            return value._node
        if isinstance(value, (bool, int, float)):
            return self.const(value)
        if isinstance(value, complex) or (isinstance(value, (np.ndarray, np.generic))
                                          and value.dtype.kind not in "fiub"):
            raise TypeError(f"fj.fuse: {what} has dtype "
                            f"{np.asarray(value).dtype}; fastjac computes on real numbers")
        if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
            self.dtypes.append(value.dtype)
            return self.const(value)
        if isinstance(value, np.ndarray):
            return self.array(value)
        raise TypeError(f"fj.fuse: {what} is a {type(value).__name__}; a fused function "
                        "combines its inputs, real numbers and arrays of the inputs' shape")

    def is_const(self, nid):
        return self.nodes[nid][0] == "const"

    def op(self, code, a, b=-1, param=0.0):
        """The node ``code(a, b)``, folded when every operand is a constant."""
        if self.is_const(a) and (b < 0 or self.is_const(b)):
            return self.const(_fold(code, self.nodes[a][1],
                                    self.nodes[b][1] if b >= 0 else None, param))
        return self._add(("op", code, a, b, param), ("op", code, a, b, param))

    def unary_chain(self, codes, nid):
        for c in codes:  # applied left to right (fastjac.ops: the last function first)
            if c != _U["identity"]:
                nid = self.op(c, nid)
        return nid


def _fold(code, a, b, param):
    # A constant operation: computed by fastjac's own kernels in double, so the folded
    # constant has the bits the interpreter would compute.
    if code == _POW:
        return float(np.power(np.float64(a), param))
    if b is None:
        return float(UNARY[_UNARY_NAME[code]](np.float64(a)))
    return float(BINARY[_BINARY_NAME[code]](np.float64(a), np.float64(b)))


class Traced:
    """A value inside a function being traced by :func:`fuse`.

    It supports ``+ - * /`` with other traced values, real numbers and arrays, unary ``-``,
    ``abs()``, ``** c`` for a constant real ``c``, and every fastjac element-wise
    operation. Everything else raises ``TypeError`` naming the operation.
    """

    __slots__ = ("_trace", "_node")
    _fj_traced = True          # recognised by fastjac.ops (UnaryOp, BinaryOp)
    __array_priority__ = 1000  # NumPy defers ndarray ○ Traced to our reflected operators

    def __init__(self, trace, node):
        self._trace = trace
        self._node = node

    def _wrap(self, nid):
        return Traced(self._trace, nid)

    def _binary(self, name, other, reflected=False):
        tr = self._trace
        o = tr.leaf(other, f"the operand of {name}")
        a, b = (o, self._node) if reflected else (self._node, o)
        return self._wrap(tr.op(_B[name], a, b))

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, True)

    def __sub__(self, other):
        return self._binary("sub", other)

    def __rsub__(self, other):
        return self._binary("sub", other, True)

    def __mul__(self, other):
        return self._binary("mul", other)

    def __rmul__(self, other):
        return self._binary("mul", other, True)

    def __truediv__(self, other):
        return self._binary("div", other)

    def __rtruediv__(self, other):
        return self._binary("div", other, True)

    def __neg__(self):
        return self._wrap(self._trace.op(_NEG, self._node))

    def __pos__(self):
        return self

    def __abs__(self):
        return self._wrap(self._trace.op(_U["abs"], self._node))

    def __pow__(self, exponent, modulo=None):
        if modulo is not None:
            raise _unsupported("pow() with a modulus", None)
        if isinstance(exponent, Traced):
            raise _unsupported("x ** y with a traced exponent", "fj.exp(y * fj.log(x))")
        if isinstance(exponent, (np.ndarray, np.generic)) and np.ndim(exponent) == 0:
            exponent = exponent[()]
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real) \
                or isinstance(exponent, np.ndarray):
            raise _unsupported(f"x ** {type(exponent).__name__}",
                               "a constant real exponent, or fj.exp(y * fj.log(x))")
        c = float(exponent)
        tr, x = self._trace, self._node
        if c == 1.0:
            return self
        if c == 0.0:   # x ** 0 = 1 for every x, NaN included (as NumPy)
            return self._wrap(tr.const(1.0))
        if c == 2.0:
            return self._wrap(tr.op(_U["square"], x))
        if c == 0.5:
            return self._wrap(tr.op(_U["sqrt"], x))
        if c == -1.0:
            return self._wrap(tr.op(_U["reciprocal"], x))
        return self._wrap(tr.op(_POW, x, -1, c))

    def __rpow__(self, base):
        raise _unsupported("c ** x (a traced exponent)", "fj.exp(x * math.log(c))")

    # fastjac.ops calls these for UnaryOp / BinaryOp objects (chains and elementwise too).
    def _fj_unary(self, op: UnaryOp):
        return self._wrap(self._trace.unary_chain(op._codes, self._node))

    @staticmethod
    def _fj_binary(op: BinaryOp, w, x):
        tr = (w if isinstance(w, Traced) else x)._trace
        a = tr.unary_chain(op._fcodes, tr.leaf(w, f"w of {op.name}"))
        b = tr.unary_chain(op._gcodes, tr.leaf(x, f"x of {op.name}"))
        return Traced(tr, tr.op(_optable.FUSED_BINARY_BASE + op._op, a, b))

    # Everything else is refused at trace time, naming the operation.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = getattr(ufunc, "__name__", str(ufunc))
        # ndarray ○ traced value reaches here as the ufunc: the operators are supported.
        if method == "__call__" and not kwargs and name in _OPERATOR_UFUNCS:
            if len(inputs) == 1:
                return -self
            w, x = inputs
            op = BINARY[_OPERATOR_UFUNCS[name]]
            return Traced._fj_binary(op, w, x)
        raise _unsupported(f"the NumPy ufunc np.{name}", _SUGGEST.get(name))

    def __array_function__(self, func, types, args, kwargs):
        name = getattr(func, "__name__", str(func))
        raise _unsupported(f"the NumPy function np.{name}", _SUGGEST.get(name))

    def __array__(self, *args, **kwargs):
        raise _unsupported("converting to a NumPy array (np.asarray)", None)

    def _compare(self, op):
        raise _unsupported(f"the comparison {op}",
                           "fj.maximum, fj.minimum, fj.relu or fj.abs for a branch-free form")

    def __lt__(self, other):
        self._compare("<")

    def __le__(self, other):
        self._compare("<=")

    def __gt__(self, other):
        self._compare(">")

    def __ge__(self, other):
        self._compare(">=")

    def __eq__(self, other):
        self._compare("==")

    def __ne__(self, other):
        self._compare("!=")

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self):
        raise _unsupported("bool() (an `if`, `and`, `or` or `not` on a traced value)",
                           "fj.maximum, fj.minimum or fj.relu for a branch-free form")

    def __getitem__(self, key):
        raise _unsupported("indexing", "element-wise operations on whole arrays")

    def __setitem__(self, key, value):
        raise _unsupported("item assignment", "element-wise operations on whole arrays")

    def __iter__(self):
        raise _unsupported("iteration", "element-wise operations on whole arrays")

    def __len__(self):
        raise _unsupported("len()", None)

    def __float__(self):
        raise _unsupported("float()", None)

    def __int__(self):
        raise _unsupported("int()", None)

    def __index__(self):
        raise _unsupported("use as an index", None)

    def __matmul__(self, other):
        raise _unsupported("@ (matrix product)", "fj.dot outside the fused function")

    __rmatmul__ = __matmul__

    def __floordiv__(self, other):
        raise _unsupported("// (floor division)", "/")

    __rfloordiv__ = __floordiv__

    def __mod__(self, other):
        raise _unsupported("% (modulo)", None)

    __rmod__ = __mod__

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # protocol probes (NumPy's __array_struct__, ...)
        hint = {"sum": "fj.sum outside the fused function, or f.sum_grad",
                "shape": None, "dtype": None}.get(name)
        raise _unsupported(f"the attribute .{name}", hint)

    def __repr__(self):
        return f"<fastjac traced value, node {self._node}>"


_Out = Optional[Union[np.ndarray, Sequence[Optional[np.ndarray]]]]


class Fused:
    """A fused element-wise function of k inputs; made by :func:`fuse`.

    Calling it gives the value; ``jvp``, ``vjp``, ``value_and_vjp``, ``sum_grad``,
    ``jacobian`` and (one input) ``derivative`` give its derivatives, each in one pass
    over memory. The calling convention is the binary ops' generalised to k inputs:
    ``f.jvp(w, x, dw, dx)``, ``f.vjp(w, x, gy)``.

    Inputs: arrays of one shape, or Python/NumPy scalars (scalar expansion, paper §4.3);
    float64 computes in double; float32 rounds to float32 at every op, bit for bit as the
    same program evaluated op by op with fastjac's float32 operations, VJPs and JVPs (a
    float32 call with a scalar input: double inside, one rounding per output; see the
    fuse guide); integers and bools compute in float64. A scalar input gets a scalar gradient (the sum over elements) and a
    :class:`~fastjac.jacobian.Column` Jacobian. Every method takes ``out=None`` and
    ``n_threads=None`` as elsewhere in fastjac; results are bitwise identical for every
    ``n_threads``; inputs are never written.
    """

    def __init__(self, fn: Callable[..., Any], n_inputs: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        if not callable(fn):
            raise TypeError(f"fj.fuse needs a callable, got {type(fn).__name__}")
        self._fn = fn
        self.__name__ = name or getattr(fn, "__name__", "fused")
        self.__doc__ = getattr(fn, "__doc__", None) or Fused.__doc__
        self._names = None
        self._k = n_inputs
        if n_inputs is None:
            self._names, self._k = _input_names(fn)
        elif not (isinstance(n_inputs, int) and n_inputs >= 1):
            raise ValueError(f"n_inputs must be a positive int, got {n_inputs!r}")
        if self._names is None:
            self._names = tuple(f"x{i}" for i in range(self._k))
        self._compiled = None

    def __repr__(self) -> str:
        return f"<fastjac.Fused {self.__name__}({', '.join(self._names)})>"

    # ---- tracing and compiling (once) ----------------------------------------------------

    def _compile(self):
        if self._compiled is not None:
            return self._compiled
        tr = _Trace(self._k)
        res = self._fn(*(Traced(tr, nid) for nid in tr.inputs))
        if isinstance(res, (tuple, list)):
            raise TypeError(f"fj.fuse: {self.__name__} must return one value, got a "
                            f"{type(res).__name__} of {len(res)}")
        out = tr.leaf(res, f"the result of {self.__name__}")
        self._compiled = _Compiled(tr, out, self._k)
        return self._compiled

    @property
    def n_inputs(self) -> int:
        """The number of inputs k."""
        return self._k

    @property
    def n_ops(self) -> int:
        """The number of operations evaluated per element after CSE and folding."""
        return self._compile().prog.n_nodes

    # ---- argument handling ---------------------------------------------------------------

    def _split(self, args, n_extra, what):
        k = self._k
        if len(args) == 1 + n_extra and n_extra == 1 and type(args[0]) is tuple \
                and len(args[0]) == k:
            # check_vjp's convention: vjp(primals, cotangent)
            return tuple(args[0]), args[1:]
        if len(args) != k + n_extra:
            raise TypeError(
                f"{self.__name__}.{what} takes {k} input{'s' if k > 1 else ''} "
                f"({', '.join(self._names)}){' and ' + str(n_extra) + ' more' if n_extra else ''}"
                f", got {len(args)} positional arguments")
        return tuple(args[:k]), tuple(args[k:])

    def _prepare(self, inputs, extra=()):
        c = self._compile()
        names = self._names
        for i, a in enumerate(inputs):
            if isinstance(a, Traced):
                raise TypeError("fj.fuse: traced values go to a fused function's __call__ only")
        dt = V.result_dtype(*zip(names, inputs), *extra, *(("a captured array", np.empty(0, d))
                                                           for d in c.dtypes))
        flats, shapes = [], []
        shape, shape_name = (), None
        for name, a in zip(names, inputs):
            f, s = V.operand(a, name, dt)
            flats.append(f)
            shapes.append(s)
            if s != ():
                if shape_name is None:
                    shape, shape_name = s, name
                else:
                    V.same_shape(shape, shape_name, s, name)
        for arr in c.arrays:
            if arr.shape != shape:
                raise ValueError(
                    f"an array captured by {self.__name__} has shape {arr.shape}, but the "
                    f"inputs have shape {shape}; captured arrays must have the inputs' shape")
            flats.append(V.operand(arr, "a captured array", dt)[0])
        scalar = tuple(s == () and shape != () for s in shapes) + (False,) * len(c.arrays)
        n = math.prod(shape)
        return c, dt, flats, shapes, shape, scalar, n

    def _threads(self, c, n_threads, n):
        return V.n_threads(n_threads, n * c.work, PARALLEL_THRESHOLD)

    def _grad_outputs(self, c, dt, flats, shapes, shape, scalar, n, out, inputs_named,
                      expand=False):
        k = self._k
        if out is None:
            outs = (None,) * k
        else:
            if not isinstance(out, (tuple, list)) or len(out) != k:
                raise TypeError(f"out must be None or a sequence of {k} arrays or None "
                                f"(one per input: {', '.join(self._names)})")
            outs = tuple(out)
        bufs, results, modes = [], [], []
        for i in range(k):
            o = outs[i]
            name = f"out[{i}]"
            if scalar[i] and not expand:
                if o is not None:
                    V.output(o, name, (), dt)
                bufs.append(None)
                results.append(o)
                modes.append(2)
                continue
            others = tuple((f"out[{j}]", outs[j]) for j in range(k) if j != i)
            buf, res = V.output(o, name, shape if scalar[i] else shapes[i], dt, inputs_named,
                                others=others)
            bufs.append(buf)
            results.append(res)
            modes.append(3 if scalar[i] else 1)
        ncap = len(c.arrays)
        return (tuple(bufs) + (None,) * ncap, tuple(modes) + (0,) * ncap, outs, results)

    def _finish_grads(self, c, dt, bufs, modes, outs, results, sums, shapes):
        grads = []
        for i in range(self._k):
            if modes[i] == 2:
                if outs[i] is not None:
                    outs[i][()] = sums[i]
                    grads.append(outs[i])
                else:
                    grads.append(dt.type(sums[i]))
            else:
                V.finish(bufs[i], results[i])
                grads.append(results[i] if outs[i] is not None
                             else _as_result(results[i], shapes[i]))
        return grads[0] if self._k == 1 else tuple(grads)

    # ---- the public methods --------------------------------------------------------------

    def __call__(self, *args: Any, out: Optional[np.ndarray] = None,
                 n_threads: Optional[int] = None):
        """The value ``f(*inputs)``, element by element (scalar inputs expanded, §4.3).

        Called with traced values (from inside another fused function) it is inlined.

        Returns
        -------
        numpy.ndarray or numpy.floating
            The inputs' common shape; a NumPy scalar when every input is a scalar.
        """
        # the common call (out= too), checked and run in one C call
        c = self._compiled or self._compile()
        res = c.prog.call_fast(args, None, 0, n_threads, out)
        if res is not None:
            return res
        if any(isinstance(a, Traced) for a in args):
            if len(args) != self._k:
                raise TypeError(f"{self.__name__} takes {self._k} inputs, got {len(args)}")
            return self._fn(*args)
        inputs, _ = self._split(args, 0, "__call__")
        c, dt, flats, shapes, shape, scalar, n = self._prepare(inputs)
        named = tuple(zip(self._names, flats))
        buf, res = V.output(out, "out", shape, dt, inputs=named)
        c.prog.run(tuple(flats), scalar, y_out=buf, n_threads=self._threads(c, n_threads, n))
        V.finish(buf, res)
        return res if out is not None else _as_result(res, shape)

    def jvp(self, *args: Any, out: Optional[np.ndarray] = None,
            n_threads: Optional[int] = None):
        """Forward mode: ``dy = Σ_k diag(∂f/∂input_k) · d_k`` in one pass (§4.5.2).

        Called as ``f.jvp(w, x, dw, dx)``: the k inputs, then k tangents, each shaped like
        its input (a scalar for a scalar input); ``None`` is a zero tangent.

        Returns
        -------
        numpy.ndarray or numpy.floating
            ``dy``, the inputs' common shape.
        """
        inputs, tangents = self._split(args, self._k, "jvp")
        tnames = tuple("d" + nm for nm in self._names)
        c, dt, flats, shapes, shape, scalar, n = self._prepare(
            inputs, tuple(zip(tnames, tangents)))
        tflats = []
        for i, t in enumerate(tangents):
            if t is None:
                tflats.append(None)
                continue
            tf, ts = V.operand(t, tnames[i], dt)
            V.same_shape(shapes[i], self._names[i], ts, tnames[i])
            tflats.append(tf)
        named = tuple(zip(self._names, flats)) + tuple(zip(tnames, tflats))
        buf, res = V.output(out, "out", shape, dt, inputs=named)
        c.prog.run(tuple(flats), scalar, tangents=tuple(tflats) + (None,) * len(c.arrays),
                   jvp_out=buf, n_threads=self._threads(c, n_threads, n))
        V.finish(buf, res)
        if out is not None:
            return res
        res = _as_result(res, shape)
        if _config.VALIDATE:  # validation mode: finite differences
            tans = tuple(_validation.zero_tangent(a) if t is None else t
                         for a, t in zip(inputs, tangents))
            _validation.cross_check(self, "jvp", inputs, tans, res, f"{self.__name__}.jvp")
        return res

    def _reverse(self, args, with_gy, with_value, out, n_threads, what, expand=False):
        inputs, rest = self._split(args, 1 if with_gy else 0, what)
        gy = rest[0] if with_gy else None
        if with_gy and gy is None:
            raise TypeError("gy must be an array or a number, not None (see sum_grad)")
        c, dt, flats, shapes, shape, scalar, n = self._prepare(
            inputs, (("gy", gy),) if with_gy else ())
        gf = None
        if with_gy:
            gf, gs = V.operand(gy, "gy", dt)
            V.same_shape(shape, "y", gs, "gy")
        named = tuple(zip(self._names, flats)) + (("gy", gf),)
        out_y, out_g = (None, out)
        if with_value and out is not None:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("out must be None or a pair (y, grads)")
            out_y, out_g = out
        bufs, modes, outs, results = self._grad_outputs(
            c, dt, flats, shapes, shape, scalar, n, out_g, named, expand)
        ybuf = y = None
        if with_value:
            given = tuple((f"out[1][{i}]", o) for i, o in enumerate(outs) if o is not None)
            ybuf, y = V.output(out_y, "out[0]", shape, dt, inputs=named, others=given)
        sums = c.prog.run(tuple(flats), scalar, gy=gf, y_out=ybuf, grad_out=bufs,
                          grad_mode=modes, n_threads=self._threads(c, n_threads, n))
        grads = self._finish_grads(c, dt, bufs, modes, outs, results, sums, shapes)
        if with_value:
            V.finish(ybuf, y)
            return (y if out_y is not None else _as_result(y, shape)), grads
        return grads

    def vjp(self, *args: Any, out: _Out = None, n_threads: Optional[int] = None):
        """Reverse mode: ``g_k = gyᵀ J_k = gy ⊗ diag(∂f/∂input_k)`` for every input, in one
        pass, the adjoints summed over every path (§4.5.2).

        Called as ``f.vjp(w, x, gy)`` (or ``f.vjp((w, x), gy)``, the form
        :func:`fastjac.check_vjp` uses). ``out`` is None or a sequence of k arrays or None.

        Returns
        -------
        tuple or numpy.ndarray or numpy.floating
            One gradient per input with its shape (a tuple of k; the gradient alone when
            k = 1); a scalar input's is the scalar ``Σ_i gy_i ∂y_i/∂z`` accumulated in
            double (§4.3).
        """
        res = None
        if len(args) == self._k + 1:  # the common call (out= too) in one C call
            c = self._compiled or self._compile()
            res = c.prog.call_fast(args[:-1], args[-1], 1, n_threads, out)
        if res is None:
            res = self._reverse(args, True, False, out, n_threads, "vjp")
        if _config.VALIDATE and out is None:  # validation mode: finite differences
            inputs, rest = self._split(args, 1, "vjp")
            _validation.cross_check(self, "vjp", inputs, rest[0], res if self._k > 1 else (res,),
                             f"{self.__name__}.vjp")
        return res

    def value_and_vjp(self, *args: Any, out=None, n_threads: Optional[int] = None):
        """``(f(...), vjp)`` from one pass. ``out`` is None or a pair ``(y, grads)``.

        Returns
        -------
        tuple
            ``(y, grads)``: the value and what :meth:`vjp` returns.
        """
        if len(args) == self._k + 1:  # the common call (out= too) in one C call
            c = self._compiled or self._compile()
            res = c.prog.call_fast(args[:-1], args[-1], 3, n_threads, out)
            if res is not None:
                return res
        return self._reverse(args, True, True, out, n_threads, "value_and_vjp")

    def sum_grad(self, *args: Any, out: _Out = None, n_threads: Optional[int] = None):
        """Gradient of ``sum(f(...))`` for every input, without a ones vector (§4.4).

        Returns
        -------
        tuple or numpy.ndarray or numpy.floating
            As :meth:`vjp` with ``gy = 1`` (one array when k = 1).
        """
        c = self._compiled or self._compile()
        res = c.prog.call_fast(args, None, 2, n_threads, out)
        if res is not None:
            return res
        return self._reverse(args, False, False, out, n_threads, "sum_grad")

    def derivative(self, x: Any, out: Optional[np.ndarray] = None,
                   n_threads: Optional[int] = None):
        """One-input functions: ``f'(x)``, the diagonal of the Jacobian (§4.2).

        Returns
        -------
        numpy.ndarray or numpy.floating
            The shape of ``x``.
        """
        if self._k != 1:
            raise TypeError(f"{self.__name__}.derivative is for one-input functions; it has "
                            f"{self._k} inputs: use jacobian, vjp or sum_grad")
        return self._reverse((x,), False, False, None if out is None else (out,), n_threads,
                             "derivative")

    def jacobian(self, *args: Any, n_threads: Optional[int] = None):
        """The Jacobian with respect to every input: :class:`Diagonal` for an array input,
        :class:`Column` (n x 1) for a scalar input (§4.2, §4.3); never n x n.

        Returns
        -------
        tuple or Diagonal or Column
            One Jacobian per input (a tuple of k; the Jacobian alone when k = 1).
        """
        inputs, _ = self._split(args, 0, "jacobian")
        grads = self._reverse(inputs, False, False, None, n_threads, "jacobian", expand=True)
        grads = (grads,) if self._k == 1 else grads
        shapes = [np.shape(a) for a in inputs]
        any_array = any(s != () for s in shapes)
        jac = tuple(Column(np.reshape(g, -1)) if (s == () and any_array)
                    else Diagonal(np.reshape(g, -1)) for g, s in zip(grads, shapes))
        return jac[0] if self._k == 1 else jac


class _Compiled:
    """The traced DAG compiled: live nodes renumbered into registers, and the Program."""

    def __init__(self, tr, out, k):
        nodes = tr.nodes
        live = [False] * len(nodes)
        live[out] = True
        for nid in range(len(nodes) - 1, -1, -1):
            node = nodes[nid]
            if live[nid] and node[0] == "op":
                live[node[2]] = True
                if node[3] >= 0:
                    live[node[3]] = True
        reg = {}
        for nid in tr.inputs:
            reg[nid] = len(reg)
        self.arrays = []
        for nid, node in enumerate(nodes):
            if live[nid] and node[0] == "arr":
                reg[nid] = len(reg)
                self.arrays.append(node[1])
        n_in = len(reg)
        consts = []
        for nid, node in enumerate(nodes):
            if live[nid] and node[0] == "const":
                reg[nid] = len(reg)
                consts.append(node[1])
        op, a, b, param, pk, pc, pr = [], [], [], [], [], [], []
        work = 1
        for nid, node in enumerate(nodes):
            if not (live[nid] and node[0] == "op"):
                continue
            _, code, na, nb, p = node
            ra, rb = reg[na], (reg[nb] if nb >= 0 else -1)
            reg[nid] = len(reg)
            op.append(code)
            a.append(ra)
            b.append(rb)
            param.append(p)
            work += 1 + _WORK.get(code, 0)
            if code == _NEG:
                kinds = ((_PK_CONST, -1.0, 0), (0, 0.0, 0))
            elif code == _U["exp"]:  # exp' = exp: the node's own value, no buffer
                kinds = ((_PK_REG, 0.0, reg[nid]), (0, 0.0, 0))
            elif code == _U["log"]:  # log' = 1/a, applied as a division by a (as fj.log.vjp)
                kinds = ((_PK_QUOT, 0.0, ra), (0, 0.0, 0))
            elif code == _B["add"]:
                kinds = ((_PK_CONST, 1.0, 0), (_PK_CONST, 1.0, 0))
            elif code == _B["sub"]:
                kinds = ((_PK_CONST, 1.0, 0), (_PK_CONST, -1.0, 0))
            elif code == _B["mul"]:
                kinds = ((_PK_REG, 0.0, rb), (_PK_REG, 0.0, ra))
            elif code >= _optable.FUSED_BINARY_BASE:
                kinds = ((_PK_BUF, 0.0, 0), (_PK_BUF, 0.0, 0))
            else:
                kinds = ((_PK_BUF, 0.0, 0), (0, 0.0, 0))
            for kind, cval, r in kinds:
                pk.append(kind)
                pc.append(cval)
                pr.append(r)
        self.dtypes = tuple(tr.dtypes)
        self.work = work
        # The program as the interpreter runs it, for tests that replay it op by op
        # (tests/test_fuse32.py): registers 0..n_in-1 inputs, then the constants, then one
        # per node (code, a, b, param) in order; the output register.
        self.listing = (n_in, tuple(consts), tuple(zip(op, a, b, param)), reg[out])
        self.prog = _FK.Program(n_in=n_in, n_const=len(consts), op=op, a=a, b=b,
                                param=param, pk=pk, pc=pc, pr=pr, consts=consts,
                                out_reg=reg[out])
        self.prog.set_serial_limit(work, PARALLEL_THRESHOLD)


def _input_names(fn):
    names = _plain_input_names(fn)
    if names:
        return names, len(names)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TypeError("fj.fuse could not read the parameters of the function; pass "
                        "n_inputs=k") from None
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError("fj.fuse: the function must take a fixed number of inputs "
                            "(no *args / **kwargs); pass n_inputs=k")
        if p.kind == p.KEYWORD_ONLY:
            if p.default is p.empty:
                raise TypeError(f"fj.fuse: keyword-only parameter {p.name} has no default")
            continue
        if p.default is not p.empty:
            continue  # parameters with defaults are constants, not inputs
        names.append(p.name)
    if not names:
        raise TypeError("fj.fuse: the function takes no inputs")
    return tuple(names), len(names)


_CO_VAR = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


def _plain_input_names(fn):
    """The inputs of a plain Python function read from its code object, as
    ``_input_names`` reads them from ``inspect.signature`` (which costs tens of µs, most of
    a first call's set-up): the positional parameters without a default. None where the
    signature path must decide (anything but a plain function, ``*args``/``**kwargs``, a
    keyword-only parameter without a default, no inputs: it raises the error)."""
    if type(fn) is not types.FunctionType or "__wrapped__" in fn.__dict__ \
            or "__signature__" in fn.__dict__:
        return None
    code = fn.__code__
    if code.co_flags & _CO_VAR:
        return None
    npos, nkw = code.co_argcount, code.co_kwonlyargcount
    if nkw and len(fn.__kwdefaults__ or ()) != nkw:
        return None
    names = code.co_varnames[:npos - len(fn.__defaults__ or ())]
    return names or None


def _as_result(res, shape):
    return res[()] if shape == () else res


def fuse(fn: Optional[Callable[..., Any]] = None, *, n_inputs: Optional[int] = None):
    """Trace an element-wise function of k inputs once and evaluate it, its JVP, VJP and
    diagonal Jacobians in one pass over memory.

    Parameters
    ----------
    fn : callable
        ``fn(x1, ..., xk)`` built from ``+ - * /`` (with traced values, real numbers and
        arrays of the inputs' shape), unary ``-``, ``abs()``, ``** c`` for a constant real
        ``c`` (2, 0.5 and -1 become square, sqrt and reciprocal), and fastjac's
        element-wise operations (``fj.exp``, ``fj.maximum``, chains, ``fj.elementwise``
        objects, other fused functions). Parameters with defaults are not inputs.
    n_inputs : int, optional
        k, when it cannot be read from ``fn``'s signature.

    Returns
    -------
    Fused
        With ``__call__``, ``jvp``, ``vjp``, ``value_and_vjp``, ``sum_grad``, ``jacobian``
        and ``derivative`` (one input). Also usable as a decorator, with or without
        arguments.

    Raises
    ------
    TypeError
        At the first call, for anything a traced value does not support (a NumPy ufunc, a
        comparison, ``if``/``bool()``, indexing), naming it and the fastjac equivalent.

    Notes
    -----
    Common subexpressions are computed once, constants are folded and nodes that do not
    reach the result are dropped. The Jacobian with respect to each input is diagonal
    (paper §4.2), and the paths from an input to the result are summed (the
    total-derivative chain rule, §4.5.2): for ``y = x + x²``, ``dy/dx = 1 + 2x``.

    Examples
    --------
    >>> import numpy as np, fastjac as fj
    >>> f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    >>> w, x = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    >>> gw, gx = f.vjp(w, x, np.ones(2))
    >>> bool(np.allclose(gw, np.exp(w) * np.sin(x) + 1 / x))
    True
    """
    if fn is None:
        return lambda g: Fused(g, n_inputs)
    return Fused(fn, n_inputs)
