"""Accuracy, SIMD-path and special-value proofs of the vector math (fj_vmath.h), issue 13.

- float64 (default precision): tanh, log, sigmoid and the derivatives of tanh, sigmoid,
  sqrt and reciprocal within 1 ulp of a long double reference (80-bit on x86-64), on samples that include the
  regions where they are hard: near 0, the saturation of tanh and sigmoid, subnormal
  inputs and results, the largest finite inputs. docs/guide/precision.rst has the measured
  maxima over 1e7 points (``python tests/test_vmath_accuracy.py 10000000`` prints them).
- float32: every value and derivative of exp, log, sin, cos, tanh, sigmoid, sqrt and
  reciprocal within 1 ulp (faithfully rounded), against a float64 reference (its error,
  ~2^-52 relative, is 2^-29 of a float32 ulp): 1e6 random bit patterns and every special
  value here; all 2^32 inputs with FASTJAC_EXHAUSTIVE=1 (minutes per function).
- The AVX-512, AVX2 and baseline versions give the same bits (forced one at a time).
- A derivative-only pass (a VJP) gives the same bits as the value-and-derivative pass.
- NaN, inf and signed zeros come out as NumPy's expressions give them.
"""

import os
import sys

import numpy as np
import pytest
from _cbuild import compile_c

import fastjac as fj
from fastjac._kernels import elementwise as K

LONG = np.finfo(np.longdouble).nmant >= 63
needs_long = pytest.mark.skipif(not LONG, reason="needs an 80-bit long double reference")
EXHAUSTIVE = os.environ.get("FASTJAC_EXHAUSTIVE", "").strip() not in ("", "0")

FUNCS = ["exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "reciprocal"]


def ulps(y, ref, dtype=np.float64):
    """|y - ref| in units of the last place of ref rounded to ``dtype``; 0 where both are
    the same inf or both NaN; inf where only one of them is NaN or inf."""
    ref = np.asarray(ref)
    y = np.asarray(y)
    with np.errstate(all="ignore"):
        refd = ref.astype(dtype)
        sp = np.spacing(np.abs(refd).astype(dtype)).astype(ref.dtype)
        err = np.abs(y.astype(ref.dtype) - ref) / sp
        err = err.astype(np.float64)
    # equal, both NaN, or an overflow rounded to the same inf as the reference's rounding
    same = (np.isnan(y) & np.isnan(ref)) | (y.astype(ref.dtype) == ref) | (
        np.isinf(refd) & (y.astype(dtype) == refd))
    err[same] = 0.0
    err[np.isnan(err)] = np.inf
    return err


# ---- references ---------------------------------------------------------------------

def _ld_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _ld_sigmoid_d(x):
    e = np.exp(-np.abs(x))
    return e / ((1 + e) * (1 + e))


def _ld_sech2(x):
    q = np.exp(-2 * np.abs(x))
    return 4 * q / ((1 + q) * (1 + q))


def reference(name, x, deriv):
    """f(x) or f'(x) in the precision of x's dtype (long double or float64)."""
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(x)
        if name == "log":
            return 1 / x if deriv else np.log(x)
        if name == "sin":
            return np.cos(x) if deriv else np.sin(x)
        if name == "cos":
            return -np.sin(x) if deriv else np.cos(x)
        if name == "tanh":
            return _ld_sech2(x) if deriv else np.tanh(x)
        if name == "sigmoid":
            return _ld_sigmoid_d(x) if deriv else _ld_sigmoid(x)
        if name == "sqrt":
            return 0.5 / np.sqrt(x) if deriv else np.sqrt(x)
        if name == "reciprocal":
            return -1 / (x * x) if deriv else 1 / x
    raise KeyError(name)


def evaluate(name, x, deriv):
    f = getattr(fj, name)
    with np.errstate(all="ignore"):
        return f.derivative(x) if deriv else f(x)


# ---- samples ----------------------------------------------------------------------------

def f64_sample(name, n, rng):
    """Points where each float64 function is hard, plus a spread over its whole range."""
    tiny = np.finfo(np.float64).tiny
    big = np.finfo(np.float64).max
    parts = [
        rng.uniform(-1, 1, n // 8),
        np.exp(rng.uniform(np.log(1e-300), 0, n // 8)) * rng.choice([-1, 1], n // 8),
        rng.uniform(-30, 30, n // 8),
        rng.uniform(0, tiny, n // 16),                         # subnormal inputs
        np.exp(rng.uniform(0, np.log(big), n // 16)),          # up to the largest finite
    ]
    if name == "tanh":
        parts += [rng.uniform(0.2, 0.3, n // 8), rng.uniform(15, 25, n // 8) * rng.choice([-1, 1], n // 8)]
    if name == "sigmoid":
        parts += [rng.uniform(-760, -30, n // 8), rng.uniform(30, 760, n // 8)]
    if name == "log":
        parts += [rng.uniform(0.5, 2, n // 8), 1 + rng.uniform(-1e-6, 1e-6, n // 8)]
    parts.append(np.array([0.0, -0.0, tiny, 5e-324, big, -big, 1.0, 0.25, -0.25,
                           np.nextafter(0.25, 0), 22.0, np.nextafter(22.0, 0), 350.0, 700.0,
                           -700.0, np.nextafter(700, 0), 709.0, -745.0, -746.0]))
    x = np.concatenate(parts)
    if name in ("tanh", "sigmoid"):
        x = np.concatenate([x, -x])
    return x


def f32_specials():
    f = np.float32
    fi = np.finfo(np.float32)
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, fi.tiny, -fi.tiny, fi.smallest_subnormal,
            -fi.smallest_subnormal, fi.max, -fi.max, 1.0, -1.0, 0.5, 2.0,
            88.72283, 88.72284, -87.33654, -103.97208, -103.972084, -104.0, 89.0,  # exp
            9.010913, 9.0109135, -9.010913, 17.0, 104.0, -104.0, 16.635532, -88.0,  # tanh/sigmoid
            np.pi / 2, np.pi, 1e5, 1e10, 3e38, 1e-20, 1.18e-38,
            87.0, -87.0, 600.0, -600.0, 300.0, -300.0,  # ends of the native float32 routines
            80.0, -80.0, 40.0, -40.0]  # (and the former ones)
    v = np.array(vals, dtype=f)
    with np.errstate(all="ignore"):
        return np.concatenate([v, np.nextafter(v, np.float32(np.inf)),
                               np.nextafter(v, np.float32(-np.inf))])


def f32_random(n, rng):
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    return bits.view(np.float32)


# ---- float64 ----------------------------------------------------------------------------

F64_CASES = [("tanh", False), ("tanh", True), ("log", False), ("sigmoid", False),
             ("sigmoid", True), ("sqrt", True), ("reciprocal", True)]


def f64_max_ulps(name, deriv, n, seed=13):
    rng = np.random.default_rng(seed)
    x = f64_sample(name, n, rng)
    return ulps(evaluate(name, x, deriv), reference(name, x.astype(np.longdouble), deriv)).max()


@needs_long
@pytest.mark.parametrize("name,deriv", F64_CASES,
                         ids=[n + ("'" if d else "") for n, d in F64_CASES])
def test_float64_within_one_ulp(name, deriv, precision_default):
    assert f64_max_ulps(name, deriv, 400_000) < 1.0


@pytest.fixture
def precision_default():
    old = fj.set_precision("accurate")
    yield
    fj.set_precision(old)


# ---- float32 ----------------------------------------------------------------------------

def f32_check(name, deriv, x):
    y = evaluate(name, x, deriv)
    assert y.dtype == np.float32
    with np.errstate(invalid="ignore"):  # the specials include NaN and ±inf on purpose
        ref = reference(name, x.astype(np.float64), deriv)
    err = ulps(y, ref, np.float32)
    return err, err > 1.0


@pytest.mark.parametrize("deriv", [False, True], ids=["value", "derivative"])
@pytest.mark.parametrize("name", FUNCS)
def test_float32_faithful_on_random_bits_and_specials(name, deriv, precision_default):
    rng = np.random.default_rng(32)
    x = np.concatenate([f32_random(1_000_000, rng), f32_specials()])
    err, bad = f32_check(name, deriv, x)
    assert not bad.any(), (x[bad][:10], err[bad][:10])


@pytest.mark.skipif(not EXHAUSTIVE, reason="set FASTJAC_EXHAUSTIVE=1 (minutes per function)")
@pytest.mark.parametrize("deriv", [False, True], ids=["value", "derivative"])
@pytest.mark.parametrize("name", FUNCS)
def test_float32_exhaustive(name, deriv, precision_default):
    # Every float32 bit pattern. An element whose result is the reference rounded to float32
    # (correctly rounded: within 0.5 ulp) is not measured further; the others are.
    step = 1 << 24
    worst, n_off = 0.0, 0
    for start in range(0, 1 << 32, step):
        x = (np.arange(step, dtype=np.uint32) + np.uint32(start)).view(np.float32)
        y = evaluate(name, x, deriv)
        with np.errstate(all="ignore"):
            ref = reference(name, x.astype(np.float64), deriv)
            off = (y != ref.astype(np.float32)) & ~(np.isnan(y) & np.isnan(ref))
        if off.any():
            err = ulps(y[off], ref[off], np.float32)
            assert not (err > 1.0).any(), (name, deriv, x[off][err > 1.0][:10])
            worst = max(worst, float(err.max()))
            n_off += int(off.sum())
    print(f"\nexhaustive float32 {name}{chr(39) if deriv else ''}: max {worst:.4f} ulp, "
          f"{n_off} of 2^32 not correctly rounded")
    assert worst <= 1.0


@pytest.mark.skipif(not EXHAUSTIVE, reason="set FASTJAC_EXHAUSTIVE=1 (about 30 s of CPU each)")
@pytest.mark.parametrize("which", [0, 1, 2], ids=["tanh-derivative", "sigmoid-derivative",
                                                  "sigmoid-value"])
def test_float32_exp_family_exhaustive_in_c(which, tmp_path):
    # Every float32 input that the float-lane tanh' and the double-lane sigmoid' and
    # sigmoid take, in C (tests/c/sig32_exhaustive.inc; the NumPy test above covers all
    # 2^32 inputs, at several times the cost): within 1 ulp, the lower SIMD levels bit for
    # bit, and for tanh' the recorded maximum, count and hash of the bits
    import subprocess
    exe = _compile_c(("tests", "c", "sig32_exhaustive.inc"), tmp_path, "-O2")
    proc = subprocess.run([exe, str(which)], capture_output=True, text=True, timeout=7200)
    print("\n" + proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "0 over 1 ulp, level mismatches 0" in proc.stdout
    if which == 0:
        assert TANH_D32_EXHAUSTIVE in proc.stdout, proc.stdout


# tests/c/sig32_exhaustive.inc's measurement of the float32 tanh' (float lanes) and the
# hash of every result, recorded on the Zen 4 EPYC (every SIMD level and CPU gives the same
# bits): a change of any bit fails. A deliberate change updates it, with
# docs/guide/precision.rst.
TANH_D32_EXHAUSTIVE = ("2218786818 inputs, max 0.6396 ulp, 2300162 not correctly rounded, "
                       "0 over 1 ulp, level mismatches 0, bits efb3a043ec6745c5")


def _div32_sweep(which, stride, tmp_path, opt):
    # tests/c/div32_exhaustive.inc: reciprocal' (0) or sqrt' (1) through the float32
    # single-op VJP entry point, every stride-th block of 4096 float32 bit patterns
    import subprocess
    exe = _compile_c(("tests", "c", "div32_exhaustive.inc"), tmp_path, opt)
    proc = subprocess.run([exe, str(which), str(stride)], capture_output=True, text=True,
                          timeout=7200)
    print("\n" + proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert " 0 over 1 ulp, level mismatches 0" in proc.stdout
    return proc.stdout


@pytest.mark.parametrize("which", [0, 1], ids=["reciprocal-derivative", "sqrt-derivative"])
def test_float32_division_family_c_sample(which, tmp_path):
    # every 997th block of 4096 float32 inputs (4.3e6 over every exponent), built at -O0
    # (about a second): within 1 ulp, the SIMD levels bit for bit
    _div32_sweep(which, 997, tmp_path, "-O0")


@pytest.mark.skipif(not EXHAUSTIVE, reason="set FASTJAC_EXHAUSTIVE=1 (about 40 s of CPU each)")
@pytest.mark.parametrize("which", [0, 1], ids=["reciprocal-derivative", "sqrt-derivative"])
def test_float32_division_family_exhaustive_in_c(which, tmp_path):
    # all 2^32 float32 inputs; reciprocal' is correctly rounded on every one
    out = _div32_sweep(which, 1, tmp_path, "-O2")
    if which == 0:
        assert " 0 not correctly rounded" in out


def _compile_c(parts, tmp_path, opt, *libs):
    """Build the C program at <repo>/<parts...> against fastjac/_kernels with ``opt``
    (skips without a C compiler); the executable's path."""
    exe = str(tmp_path / os.path.splitext(parts[-1])[0])
    compile_c(os.path.join(*parts), exe, opt, libs=libs)
    return exe


def _build_c(name, tmp_path, *libs):
    # benchmarks/c/<name>.inc built at -O0 (about a second): the programs' own checks, not
    # their timings
    return _compile_c(("benchmarks", "c", name + ".inc"), tmp_path, "-O0", *libs)


def _run_c(name, tmp_path, args, libs=(), x86_only=None, skip_marker=None):
    """Build benchmarks/c/<name>.inc (_build_c), run it with args and return its output,
    which must end with exit status 0. x86_only: the reason to skip on other machines;
    skip_marker: (text in the output, reason) to skip when the CPU lacks what it needs."""
    import platform
    import subprocess
    if x86_only and platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(x86_only)
    exe = _build_c(name, tmp_path, *libs)
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)
    if skip_marker and skip_marker[0] in proc.stdout:
        pytest.skip(skip_marker[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("dtype", ["32", "64"])
def test_vjp_rate_harness_threads_bitwise(dtype, tmp_path):
    # benchmarks/c/vjp_rate.inc (the kernels' rates quoted in precision.rst) runs each
    # single-op VJP kernel on 2 threads' shares and compares the bits with one call over the
    # whole array: it must build against the kernels and find no difference
    out = _run_c("vjp_rate", tmp_path, ["4099", "2", "1", dtype], libs=["-lpthread"])
    for name in ("mul", "log", "reciprocal", "sqrt", "exp", "tanh", "sigmoid"):
        assert f"\n{name}" in out, out


def test_div_rate_experiment_gives_the_division_bits(tmp_path):
    # benchmarks/c/div_rate.inc (precision.rst's "The divider"; an experiment, not used by
    # fastjac): every dividing loop, the FMA division and the mixes included, gives the C
    # division's bits on its inputs
    out = _run_c("div_rate", tmp_path, ["4099", "1"],
                 x86_only="the experiment is written for x86-64 (AVX2, AVX-512F)",
                 skip_marker=("needs AVX2 and FMA", "the experiment needs AVX2 and FMA"))
    assert "ymm fma" in out and "differ" not in out, out


def test_div_grads_rate_two_division_form_is_more_accurate(tmp_path):
    # benchmarks/c/div_grads_rate.inc (precision.rst's "The divider"): the proposed
    # gw = gy/x, gx = -(w/x) gw is at least as accurate as fj.div's float64 gradients
    # (exit status 1 otherwise), and the program runs fastjac's two kernels
    out = _run_c("div_grads_rate", tmp_path, ["1027", "1", "200000"],
                 x86_only="the program reads the x86-64 time-stamp counter")
    assert "2 div gw 0.500" in out and "_fast" in out, out


def _div_grads_f64_operands(n, seed):
    # random w, x, gy over the whole exponent range (subnormals included) and, in x, the
    # reciprocal's hard cases: significands next to all ones (the exception of the Newton
    # step) and next to one, powers of two, the range limits of fj_vdiv.h's FMA reciprocal
    # (2^+-1000 on AVX-512, 2^+-125 on AVX2), zeros, infinities, NaN
    rng = np.random.default_rng(seed)

    def rand(k):
        e = rng.integers(-1074, 1024, k).astype(float)
        return rng.uniform(0.5, 2.0, k) * 2.0 ** e * rng.choice([-1.0, 1.0], k)

    w, x, g = rand(n), rand(n), rand(n)
    k = min(n // 4, 300000)
    j = np.arange(1, k + 1, dtype=float)
    x[:k] = (2.0 - j * 2.0 ** -52) * 2.0 ** rng.integers(-1030, 1020, k) * rng.choice([-1, 1], k)
    x[k:2 * k] = (1.0 + j * 2.0 ** -52) * 2.0 ** rng.integers(-1030, 1020, k)
    edges = [2.0 ** e * m for e in (-1074, -1023, -1022, -1001, -1000, -999, -126, -125, -124,
                                    0, 124, 125, 126, 999, 1000, 1001, 1023)
             for m in (1.0, 1.5, 2.0 - 2.0 ** -52)]
    sp = np.array(edges + [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.0, -1.0])
    x[2 * k:2 * k + len(sp)] = sp
    x[2 * k + len(sp):2 * k + 2 * len(sp)] = -sp
    w[-len(sp):], g[-2 * len(sp):-len(sp)] = sp, sp
    return w, x, g


def _check_div_grads_f64_bits(n, seed):
    w, x, g = _div_grads_f64_operands(n, seed)
    with np.errstate(all="ignore"):
        want_w, want_x = (1.0 / x) * g, (-((w / x) / x)) * g
    for level in (2, 1, 0):
        K._set_vmath_level(level)
        with np.errstate(all="ignore"):
            gw, gx = fj.div.vjp(w, x, g)
        for got, want in ((gw, want_w), (gx, want_x)):
            nan = np.isnan(want)
            assert np.array_equal(np.isnan(got), nan)
            bad = got.view(np.uint64)[~nan] != want.view(np.uint64)[~nan]
            assert not bad.any(), (level, x[~nan][bad][:5], got[~nan][bad][:5])


@pytest.mark.parametrize("seed", [0, 1])
def test_div_float64_vjp_keeps_the_three_divisions_bits(vmath_level, seed):
    # fj.div's float64 VJP forms 1/x by FMAs (fj_vdiv.h: RN(1/x), so the bits of
    # (1/x) gy and -((w/x)/x) gy, NaN signs aside) at every SIMD level
    _check_div_grads_f64_bits(1_000_003, seed)


@pytest.mark.skipif(not EXHAUSTIVE, reason="set FASTJAC_EXHAUSTIVE=1 (1e8 operands, minutes)")
def test_div_float64_vjp_keeps_the_three_divisions_bits_1e8(vmath_level):
    for seed in range(100, 110):
        _check_div_grads_f64_bits(10_000_000, seed)


def test_div_markstein_simulation_finds_the_quotient_correctly_rounded(tmp_path):
    # benchmarks/c/div_markstein_sim.inc: the FMA division's last steps in binary
    # precisions 8..10, exhaustively: RN(1/b) by one Newton step (all-ones b excepted) and
    # RN(a/b) by Markstein's corrections; exit status 1 on a wrong result
    out = _run_c("div_markstein_sim", tmp_path, ["10"])
    assert out.count("quotient wrong 0;") == 3, out


# ---- the SIMD paths, derivative-only stages, special values ----------------------------

@pytest.fixture
def vmath_level():
    yield K._set_vmath_level
    K._set_vmath_level(-1)


def _all_outputs(x):
    out = []
    for name in FUNCS:
        f = getattr(fj, name)
        with np.errstate(all="ignore"):
            out += [f(x), f.derivative(x), f.vjp(x, x[::-1].copy())]
    op = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)
    with np.errstate(all="ignore"):
        out += list(op.vjp(x, x[::-1].copy(), x))
        out.append(fj.chain(fj.tanh, fj.log, fj.sigmoid).vjp(x, x))
        fused = fj.fuse(lambda a: fj.tanh(fj.log(a)) * fj.sqrt(a) + fj.exp(a) / a)
        out += [fused(x), fused.vjp(x, x[::-1].copy())]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simd_paths_give_the_same_bits(dtype, vmath_level, precision_default):
    rng = np.random.default_rng(5)
    best = vmath_level(-1)
    x = np.concatenate([rng.standard_normal(3000) * 10, rng.uniform(-800, 800, 1000),
                        f64_sample("tanh", 800, rng), f32_specials().astype(np.float64)])
    with np.errstate(over="ignore"):  # float64 samples beyond float32 become ±inf: wanted
        x = x.astype(dtype)
    ref = _all_outputs(x)
    for level in range(best):
        assert vmath_level(level) == level
        got = _all_outputs(x)
        for a, b in zip(ref, got):
            # Where both factors of a product are NaN (f'(-inf) = NaN times a NaN cotangent),
            # IEEE 754 returns one of the two, and which one follows the operand order the
            # compiler chose: the -O0 debug build's portable loop gave the cotangent's +NaN
            # where AVX-512 gave the derivative's -NaN. So NaNs must sit at the same places,
            # and every other element must have the same bits.
            assert np.array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_array_equal(np.where(np.isnan(a), np.nan, a).view(np.uint8),
                                          np.where(np.isnan(b), np.nan, b).view(np.uint8))


UNARY_CODES = K.UNARY_CODES


def _same_bits_nan_places(a, b):
    # NaN at the same places (a NaN's payload may follow the operand order), else the bits
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.where(np.isnan(a), np.nan, a).view(np.uint8),
                                  np.where(np.isnan(b), np.nan, b).view(np.uint8))


@pytest.mark.parametrize("name", FUNCS + ["square", "abs"])
def test_float64_vjp_is_the_derivative_times_the_cotangent(name, vmath_level,
                                                           precision_default):
    # The float64 single-op VJP (fj_vmath.h: fj_vjp_expfam's 8/4-lane pipelined loop and
    # scalar tail, fj_vjp1_f64's product loops; fj.<op>.derivative takes the same loops)
    # must give f'(x) * gy in double bit for bit (log: gy / x), f' as the tile interpreter
    # forms it beside the value (K.unary with y_out: fj_sech2_n and the like), at every
    # SIMD level, for every length (vector remainders, pipeline fill and drain), whatever
    # the pool block split, and with out= on x or on gy. Rare lanes are mixed into vectors
    # of ordinary ones: far exponents, zeros, subnormals, infinities, NaN and negative
    # inputs (sqrt' of x < 0 is NaN in the vector loop, not lane by lane).
    rng = np.random.default_rng(21)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1e-310, 1e-300, 1e300,
                        349.9, 350.0, -350.1, 699.9, 700.0, -700.5, 800.0, 2.0**-126,
                        2.0**126, 2.0**-401, 2.0**401, -1.0, -7.5])
    base = np.concatenate([rng.standard_normal(6000) * 4, rng.uniform(-900, 900, 2000),
                           np.abs(rng.standard_normal(2000)) + 0.01])
    base[rng.integers(0, base.size, 300)] = rng.choice(special, 300)
    g = rng.standard_normal(base.size)
    op = getattr(fj, name)
    code = bytes([UNARY_CODES[name]])
    d_ref = np.empty_like(base)
    with np.errstate(all="ignore"):
        K.unary(code, base, y_out=np.empty_like(base), d_out=d_ref)  # the interpreter
        ref_all = g / base if name == "log" else d_ref * g
    best = vmath_level(-1)
    for level in range(best + 1):
        assert vmath_level(level) == level
        for n in (1, 7, 8, 9, 17, 4095, 4097, base.size):
            x, gy, ref = base[:n].copy(), g[:n].copy(), ref_all[:n]
            with np.errstate(all="ignore"):
                if name != "log":
                    _same_bits_nan_places(op.derivative(x), d_ref[:n])
                for n_threads in (1, 2):
                    _same_bits_nan_places(op.vjp(x, gy, n_threads=n_threads), ref)
                on_x = x.copy()
                op.vjp(on_x, gy, out=on_x)
                _same_bits_nan_places(on_x, ref)
                on_g = gy.copy()
                op.vjp(x, on_g, out=on_g)
                _same_bits_nan_places(on_g, ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chain", [[n] for n in sorted(UNARY_CODES)]
                         + [["sin", "square"], ["tanh", "log"], ["exp", "sigmoid", "cos"]],
                         ids=lambda c: "-".join(c))
def test_derivative_only_pass_gives_the_same_bits(chain, dtype):
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.standard_normal(2000) * 3, [0.0, -0.0, np.inf, -np.inf, np.nan,
                                                        1e-310, 800.0, -800.0]]).astype(dtype)
    t = rng.standard_normal(x.size).astype(dtype)
    codes = bytes(UNARY_CODES[n] for n in reversed(chain))  # chain(f, g) = f(g(x))
    d_only = np.empty_like(x)
    d_both = np.empty_like(x)
    y = np.empty_like(x)
    with np.errstate(all="ignore"):
        K.unary(codes, x, t=t, d_out=d_only)
        K.unary(codes, x, t=t, y_out=y, d_out=d_both)
    np.testing.assert_array_equal(d_only.view(np.uint8), d_both.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_vjp_is_the_correctly_rounded_quotient_in_every_path(dtype):
    # log's VJP is t/x, one division (NumPy's gy / x bit for bit), whichever path computes
    # it: the derivative-only loop, value-and-VJP, the JVP, a fused log node; in float32
    # the native division and the fused interpreter's double division (rounded once more
    # to float32) must agree, which they do because 53 >= 2 * 24 + 2.
    rng = np.random.default_rng(17)
    with np.errstate(all="ignore"):
        x = np.concatenate([rng.standard_normal(20000), rng.uniform(0, 1e-38, 2000),
                            np.exp(rng.uniform(-700, 700, 20000)) * rng.choice([-1, 1], 20000),
                            [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e-45]]).astype(dtype)
        m = x.size - 4
        t = np.concatenate([rng.standard_normal(m) * np.exp(rng.uniform(-60, 60, m)),
                            [0.0, np.inf, -1e-45, 3e38]]).astype(dtype)
        ref = t / x
        fused = fj.fuse(lambda a: fj.log(a))
        got = [fj.log.vjp(x, t), fj.log.value_and_vjp(x, t)[1], fj.log.jvp(x, t),
               fused.vjp(x, t), fused.jvp(x, t), np.empty_like(x), np.empty_like(x)]
        K.unary(bytes([UNARY_CODES["log"]]), x, t=t, d_out=got[-2])
        K.unary(bytes([UNARY_CODES["log"]]), x, t=t, y_out=np.empty_like(x), d_out=got[-1])
    ok = ~np.isnan(ref)
    for g in got:
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(ref))
        np.testing.assert_array_equal(g[ok].view(np.uint8), ref[ok].view(np.uint8))
    with np.errstate(all="ignore"):
        d, ref = fj.log.derivative(x), 1 / x
    np.testing.assert_array_equal(d[~np.isnan(d)], ref[~np.isnan(d)])


def test_float32_div_gradients_are_correctly_rounded_in_both_paths():
    # fj.div's float32 VJP: gy/x and -(gy w)/(x x), each one correctly rounded quotient
    # (exact float32 products in double, a double quotient rounded to float32), in the
    # plain two-array loop and in the interpreter (value and both gradients in one pass)
    rng = np.random.default_rng(23)

    def bits(n):
        return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)

    sp = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 1e-45, 3e38], dtype=np.float32)
    n = 50000
    w, x, gy = (np.concatenate([rng.standard_normal(n).astype(np.float32), bits(n),
                                rng.permutation(np.repeat(sp, 8))]) for _ in range(3))
    with np.errstate(all="ignore"):
        rw = (gy.astype(np.longdouble) / x).astype(np.float32)
        rx = (-(gy.astype(np.longdouble) * w) / (x.astype(np.longdouble) ** 2)).astype(np.float32)
        plain = fj.div.vjp(w, x, gy)
        y = np.empty_like(w)
        both = (np.empty_like(w), np.empty_like(w))
        K.binary(K.BINARY_CODES["div"], b"", b"", w.size, w, x, gy=gy, y_out=y,
                 gw_out=both[0], gx_out=both[1])
        ones = fj.div.sum_grad(w, x)  # gy None: ones
        r1 = ((1 / x.astype(np.longdouble)).astype(np.float32),
              (-w.astype(np.longdouble) / (x.astype(np.longdouble) ** 2)).astype(np.float32))
        np.testing.assert_array_equal(y, w / x)
    for got, ref in ((plain[0], rw), (plain[1], rx), (both[0], rw), (both[1], rx),
                     (ones[0], r1[0]), (ones[1], r1[1])):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        ok = ~np.isnan(ref)
        np.testing.assert_array_equal(got[ok].view(np.uint32), ref[ok].view(np.uint32))


def test_float32_fused_unary_gives_the_bits_of_the_elementwise_op(precision_default):
    # fj.fuse's interpreter runs a float32 stage with the float32 routines too
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(3000) * 5, f32_specials()]).astype(np.float32)
    gy = rng.standard_normal(x.size).astype(np.float32)
    for name in FUNCS:
        u = getattr(fj, name)
        f = fj.fuse(lambda a, u=u: u(a))
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(f(x).view(np.uint32), u(x).view(np.uint32))
            np.testing.assert_array_equal(f.vjp(x, gy).view(np.uint32),
                                          u.vjp(x, gy).view(np.uint32))


NATIVE32_ENDS = {"exp": 87.0, "tanh": 40.0, "sigmoid": 80.0}


@pytest.mark.parametrize("name", sorted(NATIVE32_ENDS))
def test_float32_native_or_double_is_chosen_per_lane(name, precision_default):
    # A tile with one lane outside the native float32 range takes the double routine for
    # that lane only: every other element keeps the bits it has in an all-native tile.
    rng = np.random.default_rng(21)
    lim = NATIVE32_ENDS[name]
    x = (rng.uniform(-1, 1, 4096) * lim).astype(np.float32)
    x[::97] = np.float32(lim)
    t = rng.standard_normal(x.size).astype(np.float32)
    mixed = x.copy()
    mixed[::301] = np.float32(lim * 1.5)  # outside: the double routine
    mixed[5::301] = np.nan
    keep = mixed == x
    f = getattr(fj, name)
    with np.errstate(all="ignore"):
        for g in (f, f.derivative, lambda a: f.vjp(a, t)):
            np.testing.assert_array_equal(g(mixed)[keep].view(np.uint32),
                                          g(x)[keep].view(np.uint32))
        # and the elements outside stay faithful
        for deriv in (False, True):
            err, bad = f32_check(name, deriv, mixed[~keep])
            assert not bad.any(), err


def test_float32_exp_vjp_is_the_float32_product(precision_default):
    # Where the native routine runs (|x| <= 87), exp' is a float32, so the VJP's one
    # rounding of the double product is the float32 product exp(x) * gy
    # (docs/guide/precision.rst): NumPy's expression, bit for bit. Elsewhere exp' is the
    # double routine's and the product is rounded once, as for the other functions.
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.standard_normal(5000) * 20, f32_specials()]).astype(np.float32)
    gy = rng.standard_normal(x.size).astype(np.float32)
    native = np.abs(x) <= 87
    with np.errstate(all="ignore"):
        want = fj.exp(x) * gy
        d = fj.exp.derivative(x).astype(np.float64)
        d[~native] = np.exp(x[~native].astype(np.float64))
        got = fj.exp.vjp(x, gy)
        fused = fj.fuse(lambda a: fj.exp(a)).vjp(x, gy)
    np.testing.assert_array_equal(got[native].view(np.uint32), want[native].view(np.uint32))
    np.testing.assert_array_equal(fused.view(np.uint32), got.view(np.uint32))
    err = ulps(got[~native], (d * gy.astype(np.float64))[~native], np.float32)
    assert (err <= 1.0).all(), err


def check_native_per_lane(name, x, mixed, gy):
    # x: float32 inputs in the native range; mixed: x with some lanes moved outside it.
    # The lanes left alone keep their bits (derivative, VJP, one-op fj.fuse), the VJP is the
    # float32 product derivative * gy, and the moved lanes are faithful (f32_check).
    keep = mixed == x
    f = getattr(fj, name)
    with np.errstate(all="ignore"):
        want = f.derivative(x) * gy
        for g in (f.derivative, lambda a: f.vjp(a, gy),
                  lambda a: fj.fuse(lambda b: f(b)).vjp(a, gy)):
            np.testing.assert_array_equal(g(mixed)[keep].view(np.uint32),
                                          g(x)[keep].view(np.uint32))
        np.testing.assert_array_equal(f.vjp(x, gy).view(np.uint32), want.view(np.uint32))
        err, bad = f32_check(name, True, mixed[~keep])
    assert not bad.any(), err


def test_float32_sqrt_vjp_native_per_lane_and_the_float32_product(precision_default):
    # sqrt' is native float32 for 2^-100 <= x <= FLT_MAX (fj_vmath32.h fj32n_sqrt_deriv),
    # so there the VJP is the float32 product sqrt'(x) * gy (docs/guide/precision.rst);
    # a tile with lanes outside that range takes the double routine for those lanes only.
    rng = np.random.default_rng(22)
    x = np.exp2(rng.uniform(-100, 127, 4096)).astype(np.float32)
    x[::97] = np.float32(2.0 ** -100)
    x[1::97] = np.finfo(np.float32).max
    gy = rng.standard_normal(x.size).astype(np.float32)
    mixed = x.copy()
    mixed[::301] = np.float32(2.0 ** -101)
    mixed[3::301] = np.float32(1e-40)
    mixed[5::301] = np.nan
    mixed[7::301] = np.inf
    mixed[9::301] = 0.0
    mixed[11::301] = -1.0
    check_native_per_lane("sqrt", x, mixed, gy)


def test_float32_reciprocal_vjp_native_per_lane_and_the_float32_product(precision_default):
    # reciprocal' is native float32 for 2^-50 <= |x| <= 2^63 (fj32n_recip_deriv): there
    # the VJP is the float32 product reciprocal'(x) * gy; lanes outside take the double
    # routine, lane by lane.
    rng = np.random.default_rng(23)
    x = (np.exp2(rng.uniform(-50, 63, 4096)) * rng.choice([-1, 1], 4096)).astype(np.float32)
    x[::97] = np.float32(2.0 ** -50)
    x[1::97] = np.float32(-(2.0 ** 63))
    gy = rng.standard_normal(x.size).astype(np.float32)
    mixed = x.copy()
    mixed[::301] = np.float32(2.0 ** -51)
    mixed[3::301] = np.float32(-(2.0 ** 64))
    mixed[5::301] = np.nan
    mixed[7::301] = -np.inf
    mixed[9::301] = 0.0
    mixed[11::301] = np.float32(1e-40)
    check_native_per_lane("reciprocal", x, mixed, gy)


@pytest.mark.parametrize("name", ["sqrt", "reciprocal", "exp", "tanh"])
def test_float32_vector_vjp_gives_the_portable_bits(name, vmath_level, precision_default):
    # The float32 VJPs of sqrt and reciprocal run 16 (AVX-512) or 8 (AVX2) lanes at a time
    # (fj_vmath32.h FJ32N_VJP1_VEC; exp the tile loop; tanh' the float lanes of
    # FJ32F_SECH2_OF on whole blocks, else tile by tile); a vector with a lane outside the
    # native range and the last n mod 16 elements go to the portable tile routine, which
    # decides lane by lane. Every element must have the portable path's bits (_set_vmath_level(0): the
    # float32 product f'(x) * gy natively, the double route rounded once elsewhere),
    # wherever the odd lanes fall in a vector, for every length, on 1 and 2 threads, with
    # out= on x or on gy, for strided and read-only inputs, and without a cotangent.
    rng = np.random.default_rng(25)
    fi = np.finfo(np.float32)
    odd = np.concatenate([f32_specials(), np.float32([2.0**-101, 2.0**-100, 2.0**-51, 2.0**-50,
                                                      2.0**63, 2.0**64, -1.0, -2.0**-100,
                                                      87.0, -87.0, 87.00001, -87.00001,
                                                      fi.max, 1e-40, -1e-40])])
    base = {"sqrt": np.exp2(rng.uniform(-99, 127, 20000)),
            "reciprocal": np.exp2(rng.uniform(-49, 62, 20000)) * rng.choice([-1, 1], 20000),
            "exp": rng.uniform(-86, 86, 20000),
            "tanh": rng.uniform(-40, 40, 20000)}[name].astype(np.float32)
    x = np.concatenate([base, f32_random(20000, rng)])
    for pos in (0, 1, 7, 8, 15, 16, 17, 31, 4095, 4096, 4111, 8200):
        x[pos] = odd[pos % odd.size]
    x[rng.integers(40, x.size, 400)] = rng.choice(odd, 400)
    gy = (rng.standard_normal(x.size) * np.exp(rng.uniform(-40, 40, x.size))).astype(np.float32)
    gy[rng.integers(0, x.size, 100)] = rng.choice(odd, 100)
    f = getattr(fj, name)
    best = vmath_level(-1)
    with np.errstate(all="ignore"):
        assert vmath_level(0) == 0
        ref_vjp, ref_d = f.vjp(x, gy, n_threads=1), f.derivative(x)
        for level in range(best + 1):
            assert vmath_level(level) == level
            for n in (1, 7, 15, 16, 17, 33, 4095, 4097, x.size):
                xs, gs, want = x[:n], gy[:n], ref_vjp[:n]
                for n_threads in (1, 2):
                    _same_bits_nan_places(f.vjp(xs, gs, n_threads=n_threads), want)
                _same_bits_nan_places(f.derivative(xs), ref_d[:n])
            on_x = x.copy()
            f.vjp(on_x, gy, out=on_x, n_threads=2)
            _same_bits_nan_places(on_x, ref_vjp)
            on_g = gy.copy()
            f.vjp(x, on_g, out=on_g)
            _same_bits_nan_places(on_g, ref_vjp)
            strided_x, strided_g = np.repeat(x, 2)[::2], np.repeat(gy, 3)[::3]
            _same_bits_nan_places(f.vjp(strided_x, strided_g), ref_vjp)
            ro_x, ro_g = x.copy(), gy.copy()
            ro_x.flags.writeable = ro_g.flags.writeable = False
            _same_bits_nan_places(f.vjp(ro_x, ro_g, n_threads=2), ref_vjp)
    # and the portable path is the float32 product where the native routine runs
    native = {"sqrt": (x >= 2.0**-100) & (x <= fi.max),
              "reciprocal": (np.abs(x) >= 2.0**-50) & (np.abs(x) <= 2.0**63),
              "exp": np.abs(x) <= 87,
              "tanh": np.abs(x) <= 40}[name]
    with np.errstate(all="ignore"):
        prod = ref_d * gy
    _same_bits_nan_places(ref_vjp[native], prod[native])


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_float32_tanh_sigmoid_vjp_native_per_lane_and_the_float32_product(name,
                                                                          precision_default):
    # sech^2 comes from float lanes (fj_vmath32.h fj32n_sech2) for |x| <= 40, sigmoid' from
    # one exponential in double lanes rounded to float32 (fj32n_sigmoid_vd) for |x| <= 80: there the
    # VJP is the float32 product f'(x) * gy; lanes outside (the far tails, inf, NaN) take
    # the double routine, lane by lane.
    rng = np.random.default_rng(24)
    lim = NATIVE32_ENDS[name]
    x = np.concatenate([rng.standard_normal(3000) * 3, rng.uniform(-lim, lim, 1096)])
    x = x.astype(np.float32)
    x[::97] = np.float32(lim)
    x[1::97] = np.float32(-lim)
    x[2::97] = 0.0
    x[3::97] = -0.0
    gy = (rng.standard_normal(x.size) * np.exp(rng.uniform(-20, 20, x.size))).astype(np.float32)
    mixed = x.copy()
    mixed[::301] = np.nextafter(np.float32(lim), np.float32(np.inf))
    mixed[3::301] = np.float32(-lim * 1.3)
    mixed[5::301] = np.nan
    mixed[7::301] = -np.inf
    mixed[9::301] = np.float32(200.0)
    check_native_per_lane(name, x, mixed, gy)


def _tanh_d32_inputs():
    # every 1021st float32 in [0, 40] (1.09e6 inputs, every exponent, both signs) and the
    # special values: +-0, subnormals, FLT_MIN, the ends of the table's reduction steps
    # (multiples of ln2/16) and of the binades, tanh's saturation, the +-40 end of the
    # float lanes and their neighbours, +-inf, NaN
    pos = np.arange(0, 0x42200001, 1021, dtype=np.uint32).view(np.float32)
    fi = np.finfo(np.float32)
    steps = (np.arange(1, 924) * (np.log(2) / 16)).astype(np.float32)
    extra = np.concatenate([f32_specials(), steps, np.float32([
        fi.smallest_subnormal, 1e-40, 1e-45, fi.tiny, 2.0**-12, 0.25, 0.5, 1.0, 2.0, 4.0,
        8.0, 16.0, 32.0, 9.010913, 40.0])])
    with np.errstate(all="ignore"):
        extra = np.concatenate([extra, np.nextafter(extra, np.float32(np.inf)),
                                np.nextafter(extra, np.float32(-np.inf))])
    return np.concatenate([pos, -pos, extra, -extra])


# sha256 of fj.tanh.derivative's float32 bits on _tanh_d32_inputs() (the float-lane
# sech^2 of fj_vmath32.h, FJ32F_SECH2_OF): any changed bit fails this test. Its exhaustive
# counterpart: tests/c/sig32_exhaustive.inc (TANH_D32_EXHAUSTIVE).
TANH_D32_SAMPLE_SHA256 = "9e858296ff49abd6faa92761b789cd243ecad98e579d1fa66010f786b258066f"


def test_float32_tanh_derivative_float_lanes(vmath_level, precision_default):
    # float32 tanh' = sech^2 on float lanes (16 AVX-512, 8 AVX2, the portable fmaf path):
    # faithful (within 1 ulp of the float64 expression), the recorded bits, the same bits at
    # every SIMD level, on 1 and 2 threads, through derivative, VJP and JVP (a cotangent
    # of +-1 gives +-derivative exactly), value_and_vjp, a chain's last stage and fj.fuse
    import hashlib
    x = _tanh_d32_inputs()
    rng = np.random.default_rng(40)
    sign = rng.choice(np.float32([-1.0, 1.0]), x.size)
    ones = np.ones_like(x)
    best = vmath_level(-1)
    with np.errstate(all="ignore"):
        d = fj.tanh.derivative(x)
        err, bad = f32_check("tanh", True, x)
        assert not bad.any(), (x[bad][:10], err[bad][:10])
        assert np.nanmax(err) < 0.75  # the header's bound: 0.72 ulp
        assert hashlib.sha256(d.tobytes()).hexdigest() == TANH_D32_SAMPLE_SHA256
        want = d * sign
        for level in range(best + 1):
            assert vmath_level(level) == level
            _same_bits_nan_places(fj.tanh.derivative(x), d)
            for n_threads in (1, 2):
                _same_bits_nan_places(fj.tanh.vjp(x, sign, n_threads=n_threads), want)
                _same_bits_nan_places(fj.tanh.jvp(x, sign, n_threads=n_threads), want)
            v, g = fj.tanh.value_and_vjp(x, sign)
            _same_bits_nan_places(g, want)
            _same_bits_nan_places(v, fj.tanh(x))
            _same_bits_nan_places(fj.chain(fj.neg, fj.tanh).vjp(x, sign), -want)
            gw, _ = fj.elementwise(fj.mul, f=fj.tanh).vjp(x, ones, sign)  # tanh'(w) x gy
            _same_bits_nan_places(gw, want)
            _same_bits_nan_places(fj.fuse(lambda a: fj.tanh(a)).vjp(x, sign), want)


@pytest.mark.parametrize("name", ["exp", "log", "tanh"])
def test_float32_strict_mode_is_libm_rounded_once(name):
    # "strict" keeps glibc's double result rounded once to float32, bit for bit
    import math
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(500) * 30, [0.5, 1.0, 88.0, -100.0, 1e-30]])
    x = (np.abs(x) if name == "log" else x).astype(np.float32)
    old = fj.set_precision("strict")
    try:
        with np.errstate(all="ignore"):
            got = getattr(fj, name)(x)
    finally:
        fj.set_precision(old)
    f = getattr(math, name)
    with np.errstate(over="ignore"):  # exp beyond FLT_MAX: inf, as fastjac gives it
        want = np.array([f(float(v)) for v in x]).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_float32_vjp_where_the_derivative_underflows_float32(name, precision_default):
    # Beyond |x| = 40 (tanh') and 80 (sigmoid') the derivative is below FLT_MIN or 0 in
    # float32; the VJP is then the double product rounded once: an infinite cotangent
    # gives an infinity (not 0 * inf = NaN), and a huge one a finite product (1e-50 * 1e30
    # is 1e-20, not 0). Found by the fuzz suite when the native range reached 300 / 600.
    x = np.array([45.0, -45.0, 60.0, 90.0, -90.0, 104.0, 255.0, 299.0, 599.0, -599.0],
                 dtype=np.float32)
    f = getattr(fj, name)
    with np.errstate(all="ignore"):
        d64 = np.asarray(reference(name, x.astype(np.float64), True), dtype=np.float64)
        for g in (np.inf, -np.inf, 1e30, -3e38):
            gy = np.full(x.shape, g, dtype=np.float32)
            want = (d64 * gy.astype(np.float64)).astype(np.float32)
            got = f.vjp(x, gy)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_float32_chain_keeps_double_intermediates(precision_default):
    # a float32 stage's input can leave float32's range (exp(100) > FLT_MAX): the float32
    # routines cover the double range, so log(exp(x)) and sqrt(exp(x)) stay finite
    x = np.array([100.0, 300.0, -300.0, 700.0, 5.0], dtype=np.float32)
    np.testing.assert_allclose(fj.chain(fj.log, fj.exp)(x), x, rtol=1e-7)
    d = fj.chain(fj.log, fj.exp).derivative(x)
    np.testing.assert_allclose(d, np.ones_like(x), rtol=1e-7)
    y = fj.chain(fj.tanh, fj.reciprocal)(np.array([1e-3, 1e-30], dtype=np.float32))
    np.testing.assert_array_equal(y, np.float32(1.0))


def _numpy_expr(name, x, deriv):
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-x))
        return s * (1 - s) if deriv else s
    if name == "tanh" and deriv:
        return 1 - np.tanh(x) ** 2
    return reference(name, x, deriv)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("deriv", [False, True], ids=["value", "derivative"])
@pytest.mark.parametrize("name", FUNCS)
def test_nan_inf_and_signed_zeros_as_numpy(name, deriv, dtype, precision_default):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0], dtype=dtype)
    with np.errstate(all="ignore"):
        got = evaluate(name, x, deriv)
        ref = _numpy_expr(name, x, deriv).astype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    fin = ~np.isnan(ref)
    # values equal where NumPy's expression is exact at these points; signs of zeros and infs
    exact = fin & (np.isinf(ref) | (ref == 0))
    np.testing.assert_array_equal(got[exact], ref[exact])
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(ref[exact]))


def main(n):  # pragma: no cover - the measurement behind docs/guide/precision.rst
    print(f"float64, {n} points per function, max error in ulps vs long double")
    for name, deriv in F64_CASES:
        print(f"  {name}{chr(39) if deriv else ' '}  {f64_max_ulps(name, deriv, n):.3f}")
    rng = np.random.default_rng(1)
    x = np.concatenate([f32_random(n, rng), f32_specials()])
    print(f"float32, {x.size} random bit patterns + specials, max error in ulps vs float64")
    for name in FUNCS:
        for deriv in (False, True):
            err, _ = f32_check(name, deriv, x)
            print(f"  {name}{chr(39) if deriv else ' '}  {err[np.isfinite(err)].max():.3f}")


if __name__ == "__main__":  # pragma: no cover
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
