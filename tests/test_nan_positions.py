"""The bits of special values (NaN's sign included) do not depend on an element's position.

docs/guide/precision.rst promises results "bitwise identical for every n_threads and every
array length or position (the SIMD body and the scalar tail of a loop do the same
arithmetic)". NumPy does not promise a NaN's sign, and neither does fastjac against NumPy
(tests/test_vmath_accuracy.py compares NaN with NumPy by position only), but an element's
bits, NaN sign included, must be those it has when computed alone (n = 1: the scalar
tail) and those it has inside a longer array (the SIMD body). Inputs: every special value
(±0, ±inf, ±NaN, the largest and smallest numbers) mixed at random positions, so that
both kinds of lane meet every special value, and cotangents with specials too.
"""

import os

import numpy as np
import pytest

import fastjac as fj

SPECIALS = [np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 1e300, -1e300, 3e38, -3e38, 1.0,
            -1.0, 1e-320, 1e-45, 0.5, 100.0]
N = 67  # SIMD bodies of 2, 4, 8 and 16 lanes, and a scalar tail


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def _samples(dtype, seed, nan_cotangent=False):
    """x with every special value; a cotangent with every special value but NaN (unless
    nan_cotangent): a NaN derivative times a NaN cotangent is the known bug below."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32, on purpose
        pool = np.array(SPECIALS, dtype)
    gpool = np.concatenate([pool if nan_cotangent else pool[~np.isnan(pool)],
                            np.array([2, -3], dtype)])
    return rng.choice(pool, N), rng.choice(gpool, N)


# The debug build (-O0; .ci/run sets FASTJAC_DEBUG_BUILD=1 for its tests) is a bounds-check
# build, not a shipped one: its scalar code calls libm where the optimised build uses an
# instruction (sqrt of a negative number: libm's NaN has the other sign than the vector
# body's default NaN), so there NaNs are compared by position only.
DEBUG_BUILD = os.environ.get("FASTJAC_DEBUG_BUILD", "") == "1"


def _alone_vs_together(call, *args):
    """call on the whole arrays, and on each position alone; equal bits, NaN sign too
    (NaN by position only in the debug build)."""
    with np.errstate(all="ignore"):
        whole = call(*args)
        alone = [call(*(a[i:i + 1] for a in args)) for i in range(N)]
    if not isinstance(whole, tuple):
        whole, alone = (whole,), [(r,) for r in alone]
    for j, w in enumerate(whole):
        one = np.concatenate([r[j] for r in alone])
        bad = _bits(w) != _bits(one)
        if DEBUG_BUILD:
            bad &= ~(np.isnan(w) & np.isnan(one))
        assert not bad.any(), (j, np.flatnonzero(bad), w[bad], one[bad])


UNARY = ["exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "reciprocal", "square",
         "neg", "abs", "relu"]
CHAINS = {"tanh.log.sigmoid": (fj.tanh, fj.log, fj.sigmoid), "sin.square": (fj.sin, fj.square),
          "log.sqrt": (fj.log, fj.sqrt), "sigmoid.exp": (fj.sigmoid, fj.exp),
          "reciprocal.tanh": (fj.reciprocal, fj.tanh)}


def _unary_calls(f):
    return {"value": lambda x, g: f(x), "derivative": lambda x, g: f.derivative(x),
            "vjp": lambda x, g: f.vjp(x, g), "jvp": lambda x, g: f.jvp(x, g)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", UNARY + list(CHAINS))
def test_unary_and_chain_special_bits_do_not_depend_on_position(name, dtype):
    f = fj.chain(*CHAINS[name]) if name in CHAINS else getattr(fj, name)
    x, g = _samples(dtype, 5)
    for call in _unary_calls(f).values():
        _alone_vs_together(call, x, g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum"])
def test_binary_special_bits_do_not_depend_on_position(name, dtype):
    op = getattr(fj, name)
    w, g = _samples(dtype, 6)
    x, _ = _samples(dtype, 7)
    _alone_vs_together(lambda a, b, c: op(a, b), w, x, g)
    _alone_vs_together(lambda a, b, c: op.vjp(a, b, c), w, x, g)
    chained = fj.elementwise(op, f=fj.exp, g=fj.sin)
    _alone_vs_together(lambda a, b, c: chained.vjp(a, b, c), w, x, g)


# Known bug (seen by vm6 in session 6 for exp∘cos∘square at inf, located by qa7): when a
# product's two factors are both NaN, with different signs, x86 returns the first operand's
# NaN, and gcc is free to order the operands of a commutative multiply differently in a
# loop's vectorised body and in its scalar tail (register allocation may swap them). So the
# sign of such a NaN depends on the element's position, against precision.rst's promise.
# Two places seen:
# - a chain's derivative: the derivative so far times the stage's (elementwise.pyx _dmul,
#   d[k] *= f[k]; exp∘cos at x = ±inf: -sin(inf) is +NaN, exp(cos(inf)) is -NaN), on the
#   baseline build every lane but the last of an odd-length tile is in the SIMD body;
# - a VJP/JVP whose derivative is NaN times a NaN cotangent (float64 sin and cos at ±inf:
#   the derivative-only VJP loop, cos(x) * t; an elementwise binary op's sin stage).
# A fix needs an order-independent NaN in the product loops of the hot kernels (a NaN
# test and a canonical NaN, or the NaN of one named operand); session 8 wrote and measured
# one (docs/development.rst, "The NaN of two NaNs"), not merged while its cost is decided;
# until then the tests below fail, strictly.
# The debug build (-O0, .ci/run sets FASTJAC_DEBUG_BUILD=1 for its tests) has no
# vectorised loop bodies, so there the bug may not show: not strict there.
STRICT = not DEBUG_BUILD
TWO_NAN_REASON = ("the sign of a product of two NaNs of opposite signs depends on the "
                  "element's position (operand order differs between SIMD body and scalar "
                  "tail: elementwise.pyx _dmul, the float64 sin/cos VJP loop)")


@pytest.mark.xfail(strict=STRICT, reason=TWO_NAN_REASON)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["derivative", "vjp", "jvp"])
def test_chain_nan_sign_with_two_nan_factors_does_not_depend_on_position(method, dtype):
    f = fj.chain(fj.exp, fj.cos, fj.square)
    x = np.full(N, np.inf, dtype)
    g = np.ones(N, dtype)
    _alone_vs_together(_unary_calls(f)[method], x, g)


@pytest.mark.xfail(strict=STRICT, reason=TWO_NAN_REASON)
@pytest.mark.parametrize("method", ["vjp", "jvp"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_nan_derivative_times_nan_cotangent_does_not_depend_on_position(name, method):
    f = getattr(fj, name)
    x = np.full(N, np.inf)
    with np.errstate(invalid="ignore"):
        d = f.derivative(x[:1])[0]
    nan = np.abs(np.full(N, np.nan))  # +NaN
    g = nan if np.signbit(d) else -nan  # a NaN of the other sign than the derivative's
    _alone_vs_together(_unary_calls(f)[method], x, g)


# The same in fj.fuse's kernels: exp(w) * sin(x) with w and x NaNs of opposite signs.
@pytest.mark.xfail(strict=STRICT, reason=TWO_NAN_REASON + "; fj.fuse's kernels too")
@pytest.mark.parametrize("dtype,method", [(np.float32, "value"), (np.float32, "jvp"),
                                          (np.float64, "jvp")])
def test_fused_nan_sign_with_two_nan_factors_does_not_depend_on_position(dtype, method):
    f = fj.fuse(lambda w, x: fj.exp(w) * fj.sin(x) + w / x)
    w, g = _samples(dtype, 8)
    x, _ = _samples(dtype, 9)
    call = {"value": lambda a, b, c: f(a, b), "jvp": lambda a, b, c: f.jvp(a, b, c, c)}
    _alone_vs_together(call[method], w, x, g)


# Found in session 8 (qa8): the same with NaN cotangents and tangents everywhere (the tests
# above give a NaN cotangent to sin and cos only), and with a sum of two NaNs (addition
# commutes too). The cases marked failed on main d1ff05c (gcc 12, every SIMD level); not
# strict: which loop orders which way is the compiler's choice.
def _maybe(cond, *values):
    if cond:
        return pytest.param(*values, marks=pytest.mark.xfail(strict=False, reason=TWO_NAN_REASON))
    return values if len(values) > 1 else values[0]


@pytest.mark.parametrize("name,dtype", [
    _maybe(n in ("sin", "cos") and d is np.float64, n, d)
    for d in (np.float64, np.float32) for n in UNARY + list(CHAINS)])
def test_nan_cotangent_bits_do_not_depend_on_position(name, dtype):
    f = fj.chain(*CHAINS[name]) if name in CHAINS else getattr(fj, name)
    x, g = _samples(dtype, 5, nan_cotangent=True)
    for method in ("vjp", "jvp"):
        _alone_vs_together(_unary_calls(f)[method], x, g)


@pytest.mark.parametrize("name,dtype", [
    _maybe(n in ("sub", "div") and d is np.float64, n, d)
    for d in (np.float64, np.float32)
    for n in ["add", "sub", "mul", "div", "maximum", "minimum"]])
def test_binary_nan_cotangent_bits_do_not_depend_on_position(name, dtype):
    op = getattr(fj, name)
    w, g = _samples(dtype, 6, nan_cotangent=True)
    x, t = _samples(dtype, 7, nan_cotangent=True)
    _alone_vs_together(lambda a, b, c: op.vjp(a, b, c), w, x, g)
    _alone_vs_together(lambda a, b, c, e: op.jvp(a, b, c, e), w, x, g, t)
    chained = fj.elementwise(op, f=fj.exp, g=fj.sin)
    _alone_vs_together(lambda a, b, c: chained.vjp(a, b, c), w, x, g)
    _alone_vs_together(lambda a, b, c, e: chained.jvp(a, b, c, e), w, x, g, t)


@pytest.mark.parametrize("dtype", [_maybe(d is np.float32, d) for d in (np.float64, np.float32)])
def test_fused_nan_sum_does_not_depend_on_position(dtype):
    f = fj.fuse(lambda w, x: fj.exp(w) + fj.sin(x))
    w, g = _samples(dtype, 8, nan_cotangent=True)
    x, t = _samples(dtype, 9, nan_cotangent=True)
    _alone_vs_together(lambda a, b, c, e: f(a, b), w, x, g, t)
    _alone_vs_together(lambda a, b, c, e: f.jvp(a, b, c, e), w, x, g, t)
    _alone_vs_together(lambda a, b, c, e: f.vjp(a, b, c), w, x, g, t)


# A tangent sum with a negated term (sub's partial -1: fj_fused_axpy's cur + -src). It passes
# on main, and failed with session 8's per-operation fix (qa8-nanfix, fj_nan.h): there gcc
# folded the scalar tail's cur + -src into cur - src, which keeps the NaN's sign where the
# SIMD body's negation flips it (docs/development.rst, "The NaN of two NaNs").
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_nan_difference_does_not_depend_on_position(dtype):
    f = fj.fuse(lambda w, x: fj.log(w * x) - fj.tanh(w))
    w, g = _samples(dtype, 8, nan_cotangent=True)
    x, t = _samples(dtype, 9, nan_cotangent=True)
    _alone_vs_together(lambda a, b, c, e: f(a, b), w, x, g, t)
    _alone_vs_together(lambda a, b, c, e: f.jvp(a, b, c, e), w, x, g, t)
