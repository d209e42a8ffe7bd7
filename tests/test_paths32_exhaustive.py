"""Every float32 path of the unary functions gives the bits of the proven one (issue 13).

The exhaustive proofs of tests/test_vmath_accuracy.py and tests/test_vtrig.py grade every
float32 input of ``f(x)`` and ``f.derivative(x)`` (within 1 ulp) for exp, log, sin, cos,
tanh, sigmoid, sqrt and reciprocal. The other float32 paths run other loops: the
derivative-only VJP and JVP loops, the chain interpreter's stages (for sin and cos the
double-tile routine ``fj32_sincos_dtile``, whose lanes above 2^16 no sweep had reached)
and fj.fuse's float32 registers (which hand a tile to the interpreter's stage when one lane
is outside a native routine's range). The tests here prove, for all 2^32 inputs, that each
of those paths gives the proven bits:

- ``f.vjp(x, gy)`` and ``f.jvp(x, gy)`` with a cotangent/tangent of random signs ±1 (the
  product is exact, so the one rounding of derivative × gy is ±f'(x) rounded: the bits of
  ``f.derivative``, sign applied; a shifted or misread cotangent changes them);
- ``fj.chain(fj.neg, f)``: value ``-f(x)`` and VJP ``-f.vjp(x, gy)``;
- ``fj.fuse(lambda a: f(a))``: value ``f(x)`` and VJP ``f.vjp(x, gy)``;
- for sin, cos and exp (whose fused registers decide per tile), the same on a mixed layout
  where every other lane is replaced by an input of the native routine's range, so that
  tiles hold both kinds of lane.

NaN is compared by position only (fastjac, like NumPy, does not promise a NaN's sign:
docs/guide/conventions.rst). Opt-in: ``FASTJAC_EXHAUSTIVE=1 python -m pytest -s
tests/test_paths32_exhaustive.py`` (a few minutes of CPU per function; run it under
``nice -n 19`` on a shared machine). ``FASTJAC_EXHAUSTIVE_STRIDE=K`` checks every K-th chunk
of 2^20 inputs only (a quick run; the default 1 is every input).
"""

import os

import numpy as np
import pytest

import fastjac as fj
from test_vmath_accuracy import EXHAUSTIVE, FUNCS, precision_default  # noqa: F401 (fixture)

CHUNK = 1 << 20
STRIDE = int(os.environ.get("FASTJAC_EXHAUSTIVE_STRIDE", "1") or 1)
MIXED = ("sin", "cos", "exp")
NATIVE_FILL = {"sin": 6.0e4, "cos": 6.0e4, "exp": 80.0}  # inside each native range


def assert_same_bits(got, ref, what, x):
    """got and ref equal bit for bit, NaN by position (any sign and payload)."""
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    bad = (nan_g != nan_r) | (~nan_r & (got.view(np.uint32) != ref.view(np.uint32)))
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(f"{what}: {int(bad.sum())} lanes differ, e.g. x={x[i]!r} "
                             f"got={got[i]!r} expected={ref[i]!r}")


def check_paths(name, x, gy, mixed):
    f = getattr(fj, name)
    neg_f = fj.chain(fj.neg, f)
    fused = fj.fuse(lambda a: f(a))
    with np.errstate(all="ignore"):
        v = f(x)
        d = f.derivative(x)
        vjp = f.vjp(x, gy)
        assert_same_bits(vjp, d * gy, f"{name}.vjp(x, +-1)", x)
        assert_same_bits(f.jvp(x, gy), vjp, f"{name}.jvp(x, +-1)", x)
        assert_same_bits(neg_f(x), -v, f"chain(neg, {name})(x)", x)
        assert_same_bits(neg_f.vjp(x, gy), -vjp, f"chain(neg, {name}).vjp", x)
        assert_same_bits(fused(x), v, f"fuse({name})(x){' mixed' if mixed else ''}", x)
        assert_same_bits(fused.vjp(x, gy), vjp, f"fuse({name}).vjp{' mixed' if mixed else ''}",
                         x)


def run_sweep(name, lo=0, hi=1 << 32):
    rng = np.random.default_rng(2026)
    gy = rng.choice(np.array([-1.0, 1.0], np.float32), CHUNK)
    fill = (rng.uniform(-1, 1, CHUNK) * NATIVE_FILL.get(name, 1.0)).astype(np.float32)
    n = 0
    for start in range(lo, hi, CHUNK * STRIDE):
        m = min(CHUNK, hi - start)
        x = (np.arange(m, dtype=np.uint64) + np.uint64(start)).astype(np.uint32)
        x = x.view(np.float32)
        check_paths(name, x, gy[:m], False)
        if name in MIXED:
            xm = x.copy()
            xm[::2] = fill[:m:2]
            check_paths(name, xm, gy[:m], True)
        n += m
    return n


def _bits(v):
    return int(np.array(v, np.float32).view(np.uint32))


# sin and cos in three parts that can run in separate processes, by the routine that takes
# the lane in fj.sin: the native float32 one (|x| <= 2^16), the float32-sized double one
# (2^16 < |x| < 2^20: the stage's vectorised double tile against fj.sin's one lane at a
# time) and libm's (|x| >= 2^20, inf, NaN), each for both signs.
_S16, _S20 = _bits(2.0**16) + 1, _bits(2.0**20)
PARTS = {"native": [(0, _S16)], "double": [(_S16, _S20)], "libm": [(_S20, 1 << 31)]}
CASES = [(n, p) for n in FUNCS for p in (PARTS if n in ("sin", "cos") else ["all"])]


@pytest.mark.skipif(not EXHAUSTIVE, reason="set FASTJAC_EXHAUSTIVE=1 (minutes per function)")
@pytest.mark.parametrize("name,part", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_float32_every_path_gives_the_proven_bits(name, part, precision_default):
    ranges = [(0, 1 << 32)] if part == "all" else \
        [(lo + s, hi + s) for lo, hi in PARTS[part] for s in (0, 1 << 31)]
    n = sum(run_sweep(name, lo, hi) for lo, hi in ranges)
    print(f"\n{name} ({part}): vjp, jvp, chain, fuse (and mixed tiles) bit-equal on "
          f"{n} inputs")


@pytest.mark.parametrize("name", FUNCS)
def test_float32_every_path_gives_the_proven_bits_sample(name, precision_default):
    # The normal suite's slice of the sweep: the chunks around 1, 2^16 (sin/cos's switch to
    # the double routine), 88 (exp's), 2^20 (libm's), the largest finite, inf and NaN, of
    # both signs.
    for edge in (1.0, 65536.0, 88.0, 2.0**20, 3.0e38, np.inf):
        for sign in (1.0, -1.0):
            b = int(np.array(sign * edge, np.float32).view(np.uint32))
            lo = max(0, min(b - (1 << 13), (1 << 32) - (1 << 14)))
            run_small(name, lo, lo + (1 << 14))


def run_small(name, lo, hi):
    rng = np.random.default_rng(lo)
    n = hi - lo
    x = (np.arange(n, dtype=np.uint64) + np.uint64(lo)).astype(np.uint32).view(np.float32)
    gy = rng.choice(np.array([-1.0, 1.0], np.float32), n)
    check_paths(name, x, gy, False)
    if name in MIXED:
        xm = x.copy()
        xm[::2] = (rng.uniform(-1, 1, n) * NATIVE_FILL[name]).astype(np.float32)[::2]
        check_paths(name, xm, gy, True)
