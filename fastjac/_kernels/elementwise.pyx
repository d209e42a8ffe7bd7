# cython: language_level=3
"""Element-wise kernels: value, JVP and VJP of y = f(w) ○ g(x) and of unary chains.

Python caller: ``fastjac/ops.py`` (through ``fastjac/_validate.py``, which checks every
shape, dtype, layout and ``out=`` before anything here runs).

A computation is described by op codes: a unary *chain* is a byte string of unary codes
applied left to right (``chain(sin, square)`` is ``bytes([SQUARE, SIN])``), and a binary
computation is one binary code with a chain for each operand. The codes are interpreted
once per tile of ``TILE`` elements, not once per element: each stage is a tight loop over a
stack buffer of doubles, so the whole expression's value, derivative and products are
computed in one pass over memory, whatever the chain.

All mathematics is done in double (float32 inputs are widened on load and rounded once on
store). Every kernel reads all inputs of an element (a tile, or one element in the direct
loops) before it stores that element's outputs, so an output may be exactly one of the
inputs (in place).

Faster routes with the same arithmetic (so the same bits) as the interpreter: direct
vectorised loops for a plain binary op on two arrays and for one-function derivatives
(the common VJPs); transcendental stages call the vector math of ``fj_vmath.h`` (fastjac's
own exp, sin and cos, AVX-512/AVX2 chosen at run time; libm or, in the opt-in "fast"
precision mode, libmvec for the rest). The ``*_fast`` entry points check and run the
common calls from Python in one C call.

Two include files are compiled into this module: ``fastpath_checks.pxi`` (the C-level
checks of the ``*_fast`` entry points) and ``reduce.pxi`` (the reductions ``reduce`` and
``reduce_fast``). The tile interpreter, the direct loops and the entry points are here.
"""

from cpython.ref cimport PyObject
from libc.float cimport FLT_MAX
from libc.math cimport fabs, frexp, isfinite, ldexp, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

from fastjac._kernels._common cimport (BLOCK, TILE, disjoint, disjoint_or_same, floating, relu,
                                       relu_deriv)
# the fast paths' array checks (fastpath_checks.pxi, reduce.pxi), one definition in _common
from fastjac._kernels._common cimport float_typenum as _fast_typenum
from fastjac._kernels._common cimport writable_out_like as _writable_out_like
from fastjac._kernels.outputs cimport new_output
from fastjac._kernels.pool cimport fast_threads, parallel_for

cdef extern from "fj_vmath.h" nogil:
    """
    static void fj_set_fast_math(int on) { fj_fast_math = on; }
    static int fj_get_fast_math(void) { return fj_fast_math; }
    static int fj_get_cpu_level(void) { return fj_cpu_level; }
    static int fj_built_with_libmvec(void) { return FJ_HAVE_LIBMVEC; }
    """
    void fj_vmath_init()
    void fj_set_fast_math(int on)
    int fj_get_fast_math()
    int fj_get_cpu_level()
    int fj_built_with_libmvec()
    int fj_have_libmvec()
    int fj_vmath_set_level(int level)
    void fj_sqrt_deriv_n(double* d, const double* x, Py_ssize_t n)
    void fj_recip_deriv_n(double* d, const double* x, Py_ssize_t n)
    void fj_log_vjp_double(const double* x, const double* t, double* out, Py_ssize_t n)
    void fj_log_vjp_float(const float* x, const float* t, float* out, Py_ssize_t n)
    void fj_div_grads_f32(const float* w, const float* x, const float* gy, float* gw,
                          float* gx, Py_ssize_t n)
    void fj_exp_n(double* y, const double* x, Py_ssize_t n)
    void fj_sech2_n(double* y, const double* x, Py_ssize_t n)
    void fj_sigmoid_n(double* v, double* d, const double* x, Py_ssize_t n)
    void fj_sin_n(double* y, const double* x, Py_ssize_t n, int f32)
    void fj_cos_n(double* y, const double* x, Py_ssize_t n, int f32)
    void fj_tanh_n(double* y, const double* x, Py_ssize_t n)
    void fj_log_n(double* y, const double* x, Py_ssize_t n)
    void fj_sincos_n(double* s, double* c, const double* x, Py_ssize_t n, int f32)
    # float32 stages (fj_vmath32.h; the float64 routines outside the default mode)
    void fj32_sqrt_deriv_n(double* d, const double* x, Py_ssize_t n)
    void fj32_recip_deriv_n(double* d, const double* x, Py_ssize_t n)
    void fj32_exp_n(double* y, const double* x, Py_ssize_t n)
    void fj32_log_n(double* y, const double* x, Py_ssize_t n)
    void fj32_tanh_n(double* v, double* d, const double* x, Py_ssize_t n)
    void fj32_sigmoid_n(double* v, double* d, const double* x, Py_ssize_t n)
    int fj_vjp1_double_run(int code, const double* x, const double* t, double* out,
                           Py_ssize_t n)
    int fj_vjp1_float_run(int code, const float* x, const float* t, float* out, Py_ssize_t n)
    # float32 sin and cos on float arrays (fj_vtrig.h; 0 outside the default mode)
    int fj32_trig_run(int f, const float* x, const float* t, float* out, Py_ssize_t n)
    int FJ32N_SIN, FJ32N_COS

cdef extern from "fj_tile.h" nogil:
    # tile loops compiled for AVX-512, AVX2 and the baseline (the same bits in each)
    void fj_ew_mul_partials(double* a, double* da, const double* b, double* db,
                            int need_value, Py_ssize_t m)
    void fj_ew_scale2_f32(double* da, double* db, const float* gy, Py_ssize_t m)
    void fj_ew_scale2_f64(double* da, double* db, const double* gy, Py_ssize_t m)
    void fj_fused_narrow(float* dst, const double* src, Py_ssize_t m)
    void fj_fused_widen(double* dst, const float* src, Py_ssize_t m)
    void fj_relu_vjp_f64(const double* x, const double* t, double* out, Py_ssize_t m)
    void fj_relu_vjp_f32(const float* x, const float* t, float* out, Py_ssize_t m)
    void fj_add_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_sub_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_mul_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_div_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_max_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_min_f64(const double* w, const double* x, double* y, Py_ssize_t m)
    void fj_add_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    void fj_sub_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    void fj_mul_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    void fj_div_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    void fj_max_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    void fj_min_f32(const float* w, const float* x, float* y, Py_ssize_t m)
    # the plain binary ops' gradients, one signature (gy not NULL); fj_div_grads_f32 is
    # fj_vmath.h's (gy may be NULL there)
    void fj_add_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_sub_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_mul_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_div_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_max_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_min_grads_f64(const double* w, const double* x, const double* gy, double* gw,
                          double* gx, Py_ssize_t m)
    void fj_add_grads_f32(const float* w, const float* x, const float* gy, float* gw, float* gx,
                          Py_ssize_t m)
    void fj_sub_grads_f32(const float* w, const float* x, const float* gy, float* gw, float* gx,
                          Py_ssize_t m)
    void fj_mul_grads_f32(const float* w, const float* x, const float* gy, float* gw, float* gx,
                          Py_ssize_t m)
    void fj_max_grads_f32(const float* w, const float* x, const float* gy, float* gw, float* gx,
                          Py_ssize_t m)
    void fj_min_grads_f32(const float* w, const float* x, const float* gy, float* gw, float* gx,
                          Py_ssize_t m)

cdef extern from "fj_vdiv.h" nogil:
    # fj_div_grads_f64's bits with 1/x formed by FMAs (two divisions per element, not three)
    void fj_div_grads_f64_fast(const double* w, const double* x, const double* gy, double* gw,
                               double* gx, Py_ssize_t m)

cdef extern from "fj_fused32.h" nogil:
    # fused.pyx's float32 registers: exp and sin/cos on float tiles (_unary32)
    int fj_fused32_unary(int code, const float* a, float* v, double* d, Py_ssize_t m)

cdef extern from "numpy/arrayobject.h":
    # (commented out in NumPy's .pxd) a new NumPy scalar of descr from the C value at data
    object _PyArray_Scalar "PyArray_Scalar" (void* data, cnp.dtype descr, PyObject* base)

cnp.import_array()
fj_vmath_init()

# The op codes (U_EXP, ..., N_UNARY; B_ADD, ..., N_BINARY) and the dicts UNARY_CODES and
# BINARY_CODES (which fastjac/ops.py checks), written by setup.py from fastjac/_optable.py
# (fastjac/_kernels/_gen_opcodes.py).
include "fj_opcodes.pxi"
TILE_SIZE = TILE
BLOCK_SIZE = BLOCK

# A one-thread element-wise call with less work than this keeps the GIL: releasing and
# re-taking it (PyEval_SaveThread + PyEval_RestoreThread) costs about 410 instructions under
# callgrind, a tenth of a 1000-element float32 log VJP, and such a call ends within a few
# microseconds. Work is counted in units of ops.py's _work (about a multiply each); a caller
# that does not know the work per element passes the element count. NumPy's ufunc loops
# keep the GIL below 500 elements.
cdef Py_ssize_t GIL_KEEP_BELOW = 1 << 14
GIL_KEEP_BELOW_WORK = GIL_KEEP_BELOW

cdef extern from "Python.h":
    ctypedef struct PyThreadState
    PyThreadState* PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState* tstate)


cdef inline PyThreadState* _release_gil(Py_ssize_t work, int n_threads) noexcept:
    # The GIL released for a kernel call of this much work (NULL: kept, see GIL_KEEP_BELOW).
    # Only C code without Python objects may run until _restore_gil.
    if work >= GIL_KEEP_BELOW or n_threads > 1:
        return PyEval_SaveThread()
    return NULL


cdef inline void _restore_gil(PyThreadState* ts) noexcept:
    if ts != NULL:
        PyEval_RestoreThread(ts)


def set_math_mode(int mode):
    """-1 strict (libm everywhere), 0 accurate (the default), 1 fast (libmvec); see
    fj_vmath.h and ``fastjac.set_precision``."""
    if mode < -1 or mode > 1:
        raise ValueError(f"math mode must be -1, 0 or 1, got {mode}")
    fj_set_fast_math(mode)


def get_math_mode():
    """The current math mode: -1 strict, 0 accurate, 1 fast."""
    return fj_get_fast_math()


def simd_info():
    """What the vector math runs on: ``{"cpu": "avx512f" | "avx2" | "baseline",
    "libmvec_built": bool, "libmvec_usable": bool, "math_mode": str}``."""
    return {
        "cpu": ("baseline", "avx2", "avx512f")[fj_get_cpu_level()],
        "libmvec_built": bool(fj_built_with_libmvec()),
        "libmvec_usable": bool(fj_have_libmvec()),
        "math_mode": ("strict", "accurate", "fast")[fj_get_fast_math() + 1],
    }


def vexp(double[::1] x, double[::1] out):
    """``out = exp(x)`` with the kernels' vectorised exp (for accuracy tests)."""
    if x.shape[0] != out.shape[0]:
        raise ValueError("x and out must have the same length")
    if x.shape[0] == 0:
        return
    with nogil:
        fj_exp_n(&out[0], &x[0], x.shape[0])


# ---------------------------------------------------------------------------------------
# Argument checks at the C boundary. fastjac/_validate.py has already normalised every
# argument; these few integer comparisons make the kernels memory-safe even if a caller
# skipped it, and they cost nanoseconds (no buffer protocol, no fused-type dispatch).
# ---------------------------------------------------------------------------------------

cdef struct BinaryProgram:
    int op
    const unsigned char* fcodes
    Py_ssize_t nf
    const unsigned char* gcodes
    Py_ssize_t ng
    bint w_scalar
    bint x_scalar
    bint need_deriv


# ---------------------------------------------------------------------------------------
# Parallel runs: every kernel family splits its n elements into the fixed blocks of BLOCK
# elements, and a block function (below, per family) runs one block; fastjac's thread pool
# (pool.pxd) calls it for every block. The job's arguments travel in one struct; f32 picks
# the float32 or float64 instance of the fused block code.
# ---------------------------------------------------------------------------------------

cdef struct _EwJob:
    Py_ssize_t n
    bint f32
    int op
    const unsigned char* codes
    Py_ssize_t ncodes
    const BinaryProgram* prog
    const void* w
    const void* x
    const void* dw
    const void* dx
    const void* gy
    void* y_out
    void* jvp_out
    void* gw_out
    void* gx_out
    double z
    bint z_is_w
    double* partial

cdef Py_ssize_t _check_codes(bytes codes, int limit) except -1:
    cdef Py_ssize_t k, nc = len(codes)
    cdef const unsigned char* cp = codes
    for k in range(nc):
        if cp[k] >= limit:
            raise ValueError(f"unknown op code {cp[k]}")
    return nc


cdef int _float_typenum(object a, str name) except -1:
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        raise TypeError(f"{name} must be float32 or float64")
    return typenum


cdef void* _data(object a, int typenum, Py_ssize_t n, bint writable, str name) except? NULL:
    # NULL for None; otherwise the data pointer of a C-contiguous array of n elements.
    if a is None:
        return NULL
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray or None")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{name} has the wrong dtype")
    if cnp.PyArray_SIZE(arr) != n or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous with {n} elements")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only")
    if not cnp.PyArray_ISALIGNED(arr) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise ValueError(f"{name} is not aligned or not in native byte order")
    return cnp.PyArray_DATA(arr)


# ---------------------------------------------------------------------------------------
# Point mathematics: one stage of a chain over a tile.
#
# v holds the stage's input and receives its output; d (when not NULL) holds the
# derivative of the chain so far and is multiplied by this stage's derivative, evaluated
# at the stage's input (the vector chain rule with diagonal factors, paper §4.5.3).
# ---------------------------------------------------------------------------------------

cdef inline double _sign(double x) noexcept nogil:
    # d|x|/dx: -1, 0 at x == 0 (documented choice, like ReLU'(0) = 0), +1; NaN stays NaN.
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x * 0.0  # +-0 -> 0, NaN -> NaN


cdef inline void _dmul(double* d, const double* f, Py_ssize_t m, bint first) noexcept nogil:
    # d <- f (first stage of a chain: no d = 1 pass) or d <- d * f (vector chain rule).
    cdef Py_ssize_t k
    if first:
        memcpy(d, f, m * sizeof(double))
    else:
        for k in range(m):
            d[k] *= f[k]


cdef inline void _dfill(double* d, double c, Py_ssize_t m, bint first) noexcept nogil:
    cdef Py_ssize_t k
    if first:
        for k in range(m):
            d[k] = c
    elif c != 1.0:
        for k in range(m):
            d[k] *= c


cdef void _stage(int code, double* v, double* d, Py_ssize_t m, bint first,
                 bint need_value, bint f32) noexcept nogil:
    # One stage of a chain on a tile (m <= TILE). v: the stage's input, replaced by its output
    # (left as is when not need_value: the last stage of a derivative-only pass). d: NULL,
    # or the derivative of the chain so far, multiplied by this stage's derivative at its
    # input; with first, d is uninitialised and receives the stage's derivative.
    # Transcendentals go through fj_vmath.h (vectorised exp, libm or libmvec for the rest).
    # f32: the call's dtype is float32: exp, log, tanh, sigmoid and the derivatives of sqrt
    # and reciprocal use fj_vmath32.h's routines, sized for a float32 result (in the default
    # precision mode; the float64 arithmetic in the others).
    cdef Py_ssize_t k
    cdef double f[TILE]
    cdef double g[TILE]
    cdef bint a32 = f32 and fj_get_fast_math() == 0
    if code == U_IDENTITY:
        if d != NULL:
            _dfill(d, 1.0, m, first)
    elif code == U_NEG:
        if need_value:
            for k in range(m):
                v[k] = -v[k]
        if d != NULL:
            if first:
                _dfill(d, -1.0, m, True)
            else:
                for k in range(m):
                    d[k] = -d[k]
    elif code == U_SQUARE:
        if d != NULL:
            if first:
                for k in range(m):
                    d[k] = 2.0 * v[k]
            else:
                for k in range(m):
                    d[k] *= 2.0 * v[k]
        if need_value:
            for k in range(m):
                v[k] = v[k] * v[k]
    elif code == U_SQRT:
        # 0.5/sqrt(x) within 1 ulp (fj_vmath.h), from the stage's input
        if d != NULL:
            if a32:
                fj32_sqrt_deriv_n(f, v, m)
                _dmul(d, f, m, first)
            else:
                fj_sqrt_deriv_n(f, v, m)  # with FMA (fj_vmath.h)
                _dmul(d, f, m, first)
        if need_value:
            for k in range(m):
                v[k] = sqrt(v[k])
    elif code == U_EXP:
        if f32:
            fj32_exp_n(v, v, m)
        else:
            fj_exp_n(v, v, m)
        if d != NULL:
            _dmul(d, v, m, first)
    elif code == U_LOG:
        # log' = 1/x; a derivative so far is divided by x (one rounding). A single-op
        # log VJP is t/x (_unary_tile, fj_vmath.h FJ_LOG_VJP).
        if d != NULL:
            if first:
                for k in range(m):
                    d[k] = 1.0 / v[k]
            else:
                for k in range(m):
                    d[k] = d[k] / v[k]
        if need_value:
            if f32:
                fj32_log_n(v, v, m)
            else:
                fj_log_n(v, v, m)
    elif code == U_SIN:
        # f32: fj_vtrig.h's float32-sized routines (default mode), as FJ_DERIV_TILE's
        if d == NULL:
            fj_sin_n(v, v, m, f32)
        elif first:
            # sin' = cos straight into d (the bits of the copy below)
            if need_value:
                fj_sincos_n(v, d, v, m, f32)
            else:
                fj_cos_n(d, v, m, f32)
        else:
            if need_value:
                fj_sincos_n(v, f, v, m, f32)
            else:
                fj_cos_n(f, v, m, f32)
            _dmul(d, f, m, first)
    elif code == U_COS:
        if d == NULL:
            fj_cos_n(v, v, m, f32)
        else:
            if need_value:
                fj_sincos_n(f, g, v, m, f32)
                for k in range(m):
                    v[k] = g[k]
            else:
                fj_sin_n(f, v, m, f32)
            for k in range(m):
                f[k] = -f[k]
            _dmul(d, f, m, first)
    elif code == U_TANH and f32:
        # tanh and sech^2 from one exp
        fj32_tanh_n(v if need_value or d == NULL else NULL, f if d != NULL else NULL, v, m)
        if d != NULL:
            _dmul(d, f, m, first)
    elif code == U_TANH:
        if d != NULL:
            # sech^2 from exp(-2|x|) (no tanh needed): accurate in the tails, ~1 ulp.
            fj_sech2_n(f, v, m)
            _dmul(d, f, m, first)
        if need_value or d == NULL:
            fj_tanh_n(v, v, m)
    elif code == U_SIGMOID:
        if d != NULL:
            if f32:
                fj32_sigmoid_n(v if need_value else NULL, f, v, m)
            else:
                fj_sigmoid_n(v if need_value else NULL, f, v, m)
            _dmul(d, f, m, first)
        elif f32:
            fj32_sigmoid_n(v, NULL, v, m)
        else:
            fj_sigmoid_n(v, NULL, v, m)
    elif code == U_RELU:
        if d != NULL:
            if first:
                for k in range(m):
                    d[k] = relu_deriv(v[k])
            else:
                for k in range(m):
                    d[k] *= relu_deriv(v[k])
        if need_value:
            for k in range(m):
                v[k] = relu(v[k])
    elif code == U_ABS:
        if d != NULL:
            if first:
                for k in range(m):
                    d[k] = _sign(v[k])
            else:
                for k in range(m):
                    d[k] *= _sign(v[k])
        if need_value:
            for k in range(m):
                v[k] = fabs(v[k])
    elif code == U_RECIPROCAL:
        # -1/x^2 within 1 ulp (fj_vmath.h), from the stage's input
        if d != NULL:
            if a32:
                fj32_recip_deriv_n(f, v, m)
                _dmul(d, f, m, first)
            else:
                fj_recip_deriv_n(f, v, m)  # with FMA (fj_vmath.h)
                _dmul(d, f, m, first)
        if need_value:
            for k in range(m):
                v[k] = 1.0 / v[k]


cdef int _unary32(int code, const float* a, float* v, double* d,
                  Py_ssize_t m) noexcept nogil:
    # For fused.pyx's float32 registers (fj_fused32.h): exp and sin/cos of a float tile in
    # this module's precision mode and SIMD level; 0 when the caller must use _stage.
    return fj_fused32_unary(code, a, v, d, m)


cdef inline void _run_chain(const unsigned char* codes, Py_ssize_t ncodes, double* v,
                            double* d, Py_ssize_t m, bint need_value, bint f32) noexcept nogil:
    # v <- h(v), d <- h'(v) (d may be NULL). Without need_value, v is garbage afterwards.
    cdef Py_ssize_t k
    cdef double x0[TILE]
    cdef bint rescue = d != NULL and ncodes > 1
    if ncodes == 0:
        if d != NULL:
            _dfill(d, 1.0, m, True)
        return
    if rescue:
        for k in range(m):
            x0[k] = v[k]
    for k in range(ncodes):
        _stage(codes[k], v, d, m, k == 0, need_value or k + 1 < ncodes, f32)
    if rescue:
        _rescue_products(codes, ncodes, x0, d, m, f32)


cdef void _rescue_products(const unsigned char* codes, Py_ssize_t ncodes, const double* x0,
                           double* d, Py_ssize_t m, bint f32) noexcept nogil:
    # The product of stage derivatives can leave the double range part-way although the
    # chain's derivative is representable: chain(reciprocal, reciprocal) at x = 1.5e-158
    # multiplies -(1/x)² = -inf by -x² and gets inf (and NaN from inf × 0 at 1e300) where
    # h'(x) = 1. Elements whose product came out ±inf or NaN from a finite input are
    # recomputed one by one with every factor and the product held as mantissa × 2^E; an
    # element with a truly zero, infinite or NaN stage derivative keeps its value (then
    # that is the answer). Every other element is untouched, so results elsewhere keep
    # their bits. A product that underflows to 0 is not rescued (rare; rescuing zeros
    # would re-run every relu-zeroed element of a chain such as relu∘tanh).
    cdef Py_ssize_t k, j
    cdef double v, vin, s, sm, mant
    cdef int e, code
    cdef long E
    cdef bint exact
    for k in range(m):
        if isfinite(d[k]) or not isfinite(x0[k]):
            continue
        v = x0[k]
        mant = 1.0
        E = 0
        exact = True
        for j in range(ncodes):
            code = codes[j]
            vin = v
            _stage(code, &v, &s, 1, True, True, f32)
            if code == U_RECIPROCAL or code == U_LOG or code == U_SQUARE:
                # these stage derivatives can themselves leave the double range
                # (-(1/v)² at v = 1.5e-158): form them from v = sm × 2^e instead
                if vin == 0.0 or not isfinite(vin):
                    exact = False
                    break
                sm = frexp(vin, &e)
                if code == U_RECIPROCAL:
                    sm = -(1.0 / sm) * (1.0 / sm)
                    e = -2 * e
                elif code == U_LOG:
                    sm = 1.0 / sm
                    e = -e
                else:
                    sm = 2.0 * sm
            else:
                if s == 0.0 or not isfinite(s):
                    exact = False
                    break
                sm = frexp(s, &e)
            mant *= sm  # |sm| in [0.5, 4]: no overflow, no underflow
            E += e
            mant = frexp(mant, &e)
            E += e
        if exact:
            # ldexp rounds once and gives ±inf or 0 only when the true product is out of
            # range; clamping E keeps it an int without changing that outcome.
            if E > 100000:
                E = 100000
            elif E < -100000:
                E = -100000
            d[k] = ldexp(mant, <int>E)


def _set_vmath_level(int level):
    """Testing hook: force the vector math's version (0 baseline, 1 AVX2, 2 AVX-512F, each
    only where the CPU has it; -1 the CPU's best) and return the one in force. Every
    version gives the same bits (fj_vmath.h)."""
    return fj_vmath_set_level(level)


# ---------------------------------------------------------------------------------------
# Unary chains: y = h(x), dy = h'(x) * t (JVP and VJP coincide for a diagonal Jacobian).
# ---------------------------------------------------------------------------------------

cdef void _unary_tile(const unsigned char* codes, Py_ssize_t ncodes,
                      const floating* x,        # IN  (m,)
                      const floating* t,        # IN  (m,) tangent/cotangent or NULL
                      floating* y_out,          # OUT (m,) value or NULL
                      floating* d_out,          # OUT (m,) h'(x) * t (or h'(x)) or NULL
                      Py_ssize_t m) noexcept nogil:
    cdef double v[TILE]
    cdef double d[TILE]
    cdef double* dp = d if d_out != NULL else NULL
    cdef Py_ssize_t k
    cdef int code
    cdef const double* xd
    if ncodes == 1 and y_out == NULL and d_out != NULL:
        # One function, derivative only (the common VJP): fewer passes than the chain
        # interpreter below, with the same arithmetic (so the same bits). (relu's is
        # _unary_block's.)
        code = codes[0]
        # The vectorised derivative-only loops of fj_vmath.h (the stage's arithmetic, so the
        # same bits; log: t/x as below); they decline (0) ops they do not cover and
        # non-default modes.
        if floating is double:
            if fj_vjp1_double_run(code, x, t, d_out, m):
                return
        else:
            if fj_vjp1_float_run(code, x, t, d_out, m):
                return
        if code == U_EXP or code == U_TANH or code == U_SIGMOID:
            if floating is double:
                xd = x  # the vector routine reads x in place
            else:
                for k in range(m):
                    v[k] = x[k]
                xd = v
            if code == U_EXP:
                fj_exp_n(d, xd, m)
            elif code == U_TANH:
                fj_sech2_n(d, xd, m)
            else:
                fj_sigmoid_n(NULL, d, xd, m)
            if t != NULL:
                for k in range(m):
                    d_out[k] = <floating>(d[k] * t[k])
            else:
                for k in range(m):
                    d_out[k] = <floating>d[k]
            return
    if ncodes == 1 and codes[0] == U_LOG and d_out != NULL:
        # log's VJP is t/x (1/x without t) whether or not the value is wanted: the loop of
        # the derivative-only path, so both give the same bits. d_out first (y_out may
        # be t itself); the value from the tile copy.
        for k in range(m):
            v[k] = x[k]
        if floating is double:
            fj_log_vjp_double(x, t, d_out, m)
        else:
            fj_log_vjp_float(x, t, d_out, m)
        if y_out != NULL:
            _run_chain(codes, ncodes, v, NULL, m, True, floating is float)
            for k in range(m):
                y_out[k] = <floating>v[k]
        return
    for k in range(m):
        v[k] = x[k]
    _run_chain(codes, ncodes, v, dp, m, y_out != NULL, floating is float)
    # Stores: d_out first (it reads t; y_out may be t itself), then y_out.
    if d_out != NULL:
        if t != NULL:
            for k in range(m):
                d_out[k] = <floating>(d[k] * t[k])
        else:
            for k in range(m):
                d_out[k] = <floating>d[k]
    if y_out != NULL:
        for k in range(m):
            y_out[k] = <floating>v[k]


cdef void _unary_block(Py_ssize_t blk, Py_ssize_t n, const unsigned char* codes,
                       Py_ssize_t ncodes, const floating* x, const floating* t,
                       floating* y_out, floating* d_out) noexcept nogil:
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t i, m
    cdef int done = 0
    if stop > n:
        stop = n
    if ncodes == 1 and y_out == NULL and d_out != NULL and codes[0] == U_RELU:
        # relu'(x) * t is t, 0 * t or NaN: exact in the input precision, so float32 stays
        # in float32 (the same values as the double route): fj_tile.h's loop (compiled
        # for each SIMD level) over the whole block.
        if floating is double:
            fj_relu_vjp_f64(x + start, t + start if t != NULL else NULL, d_out + start,
                            stop - start)
        else:
            fj_relu_vjp_f32(x + start, t + start if t != NULL else NULL, d_out + start,
                            stop - start)
        return
    if ncodes == 1 and y_out == NULL and d_out != NULL:
        # One function's derivative-only VJP: fj_vmath.h's loops over the whole block in
        # one call (they tile inside where they need to), the same bits as tile by tile
        # (every element's arithmetic is independent of its position); 0: not covered.
        if floating is double:
            done = fj_vjp1_double_run(codes[0], x + start,
                                      t + start if t != NULL else NULL,
                                      d_out + start, stop - start)
        else:
            done = fj_vjp1_float_run(codes[0], x + start,
                                     t + start if t != NULL else NULL,
                                     d_out + start, stop - start)
        if done:
            return
    if (floating is float and ncodes == 1 and y_out != NULL and d_out == NULL
            and (codes[0] == U_SIN or codes[0] == U_COS)):
        # float32 sin or cos value: fj_vtrig.h's native loop on float arrays, the bits
        # of the interpreter's stage (the same routine per lane), without double tiles
        if fj32_trig_run(FJ32N_SIN if codes[0] == U_SIN else FJ32N_COS, x + start, NULL,
                         y_out + start, stop - start):
            return
    i = start
    while i < stop:
        m = stop - i
        if m > TILE:
            m = TILE
        _unary_tile(codes, ncodes, x + i,
                    t + i if t != NULL else NULL,
                    y_out + i if y_out != NULL else NULL,
                    d_out + i if d_out != NULL else NULL, m)
        i += m


cdef void _unary_run(const unsigned char* codes, Py_ssize_t ncodes, Py_ssize_t n,
                     const floating* x, const floating* t, floating* y_out, floating* d_out,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    cdef _EwJob job
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _unary_block(blk, n, codes, ncodes, x, t, y_out, d_out)
    else:
        job.n = n
        job.f32 = floating is float
        job.codes = codes
        job.ncodes = ncodes
        job.x = x
        job.dx = t
        job.y_out = y_out
        job.jvp_out = d_out
        parallel_for(nblocks, _unary_job_block, &job, n_threads)


cdef void _unary_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    cdef _EwJob* j = <_EwJob*>ctx
    if j.f32:
        _unary_block(blk, j.n, j.codes, j.ncodes, <const float*>j.x, <const float*>j.dx,
                     <float*>j.y_out, <float*>j.jvp_out)
    else:
        _unary_block(blk, j.n, j.codes, j.ncodes, <const double*>j.x, <const double*>j.dx,
                     <double*>j.y_out, <double*>j.jvp_out)


cdef int _unary_impl(bytes codes, object x, object t, object y_out, object d_out,
                     int n_threads) except -1:
    cdef Py_ssize_t ncodes = _check_codes(codes, N_UNARY)
    cdef int typenum = _float_typenum(x, "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef void* xp = _data(x, typenum, n, False, "x")
    cdef void* tp = _data(t, typenum, n, False, "t")
    cdef void* yp = _data(y_out, typenum, n, True, "y_out")
    cdef void* dp = _data(d_out, typenum, n, True, "d_out")
    _unary_dispatch(codes, ncodes, typenum, n, xp, tp, yp, dp, n_threads, n)
    return 0


cdef inline void _unary_dispatch(const unsigned char* cp, Py_ssize_t ncodes, int typenum,
                                 Py_ssize_t n, void* xp, void* tp, void* yp, void* dp,
                                 int n_threads, Py_ssize_t work) noexcept:
    # The kernel on checked buffers (_unary_impl's checks, or unary_fast's own).
    if n == 0:
        return
    ts = _release_gil(work, n_threads)  # kept below GIL_KEEP_BELOW units of work
    if typenum == cnp.NPY_DOUBLE:
        _unary_run(cp, ncodes, n, <const double*>xp, <const double*>tp, <double*>yp,
                   <double*>dp, n_threads)
    else:
        _unary_run(cp, ncodes, n, <const float*>xp, <const float*>tp, <float*>yp,
                   <float*>dp, n_threads)
    _restore_gil(ts)


def unary(bytes codes, x, *, t=None, y_out=None, d_out=None, int n_threads=1):
    """Value and/or derivative-times-tangent of the unary chain ``codes`` at ``x``.

    ``x``, ``t``, ``y_out`` and ``d_out`` are C-contiguous arrays of one float dtype and
    one size (``t``, ``y_out``, ``d_out`` may be None); ``d_out = h'(x) * t``, or ``h'(x)``
    when ``t`` is None. Everything after ``x`` is passed by keyword. The arrays are checked
    here in C as a last line of defence.
    """
    _unary_impl(codes, x, t, y_out, d_out, n_threads)


# ---------------------------------------------------------------------------------------
# Fast paths: the common calls checked and run in one C call (about a microsecond for a
# small array), or None when the general path in ops.py must handle the call (it then
# raises the proper error for anything invalid). Their argument checks are in
# fastpath_checks.pxi.
# ---------------------------------------------------------------------------------------

include "fastpath_checks.pxi"


# The three *_fast entry points (here, binary_fast, reduce_fast) keep positional arguments:
# they are the microsecond path, and parsing keywords cost 86-146 more instructions per
# call (callgrind, fj.exp.vjp / fj.mul.vjp / fj.sum at n=10: +2.9%, +1.7%, +1.8% of the
# whole call). The general entry points unary and binary take keywords.
def unary_fast(bytes codes, x, t, bint value, out, n_threads, Py_ssize_t work_per_element,
               Py_ssize_t threshold):
    """The common case in one C call, or None when the call needs the general path.

    Eligible: ``x`` (and ``t``, of the same shape and dtype) exact ``numpy.ndarray`` of
    float32/float64 with ``ndim >= 1``, any layout (non-contiguous inputs are copied);
    ``out`` None or a C-contiguous writeable array of that shape and dtype. Returns
    ``out`` (or a new array) with the value (``value``) or ``h'(x) * t``.
    """
    cdef int typenum, nt
    cdef Py_ssize_t ncodes
    cdef void* xp
    cdef void* tp
    cdef void* rp
    cdef Py_ssize_t n
    typenum = _fast_typenum(x)
    if typenum < 0:
        return None
    if t is not None and not (_fast_typenum(t) == typenum and _same_shape(t, x)):
        return None
    n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    nt = fast_threads(n_threads, n * work_per_element, threshold)
    if nt == 0:
        return None
    if out is not None and not _writable_out_like(out, x, typenum):
        return None
    x = _kernel_input(x)
    if t is not None:
        t = _kernel_input(t)
    if out is None:
        res = new_output(cnp.PyArray_NDIM(<cnp.ndarray>x), cnp.PyArray_DIMS(<cnp.ndarray>x),
                         typenum)
    else:
        if not (disjoint_or_same(out, x) and disjoint_or_same(out, t)):
            return None
        res = out
    # Every buffer is checked above (exact ndarray, dtype, byte order, shape; x and t
    # C-contiguous and aligned after _kernel_input; out writeable, C-contiguous and aligned
    # or new): the kernel runs on their data pointers without _unary_impl's second look.
    ncodes = _check_codes(codes, N_UNARY)
    xp = cnp.PyArray_DATA(<cnp.ndarray>x)
    rp = cnp.PyArray_DATA(<cnp.ndarray>res)
    if value:
        _unary_dispatch(codes, ncodes, typenum, n, xp, NULL, rp, NULL, nt,
                        n * work_per_element)
    else:
        tp = NULL if t is None else cnp.PyArray_DATA(<cnp.ndarray>t)
        _unary_dispatch(codes, ncodes, typenum, n, xp, tp, NULL, rp, nt,
                        n * work_per_element)
    return res


# ---------------------------------------------------------------------------------------
# Binary: y = f(w) ○ g(x), with scalar expansion of either operand (paper §4.2, §4.3).
# ---------------------------------------------------------------------------------------


cdef void _operand_tile(const unsigned char* codes, Py_ssize_t nc, const floating* src,
                        bint is_scalar, double* v, double* d, Py_ssize_t m) noexcept nogil:
    # v <- f(src), d <- f'(src) on one tile; a scalar operand is computed once and spread.
    cdef Py_ssize_t k
    cdef double v0, d0
    if is_scalar:
        v0 = src[0]
        _run_chain(codes, nc, &v0, &d0 if d != NULL else NULL, 1, True, floating is float)
        for k in range(m):
            v[k] = v0
        if d != NULL:
            for k in range(m):
                d[k] = d0
    else:
        if floating is float:
            fj_fused_widen(v, src, m)
        else:
            memcpy(v, src, m * sizeof(double))
        _run_chain(codes, nc, v, d, m, True, floating is float)


cdef void _apply_op(int op, double* a, double* da, double* b, double* db,
                    Py_ssize_t m, bint need_value) noexcept nogil:
    # a <- a ○ b; da <- ∂y/∂w = (∂○/∂a) f'(w); db <- ∂y/∂x = (∂○/∂b) g'(x). da/db may be NULL.
    # Without need_value (mul only), a may be left as it was.
    cdef Py_ssize_t k
    cdef double y, p, q
    cdef bint deriv = da != NULL
    if op == B_ADD:
        for k in range(m):
            a[k] = a[k] + b[k]
    elif op == B_SUB:
        for k in range(m):
            a[k] = a[k] - b[k]
        if deriv:
            for k in range(m):
                db[k] = -db[k]
    elif op == B_MUL:
        if deriv:
            fj_ew_mul_partials(a, da, b, db, need_value, m)
        else:
            for k in range(m):
                a[k] = a[k] * b[k]
    elif op == B_DIV:
        # ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b² = -(a/b)/b  (paper §4.2 table)
        for k in range(m):
            y = a[k] / b[k]
            if deriv:
                da[k] = da[k] / b[k]
                db[k] = -(y / b[k]) * db[k]
            a[k] = y
    elif op == B_MAXIMUM or op == B_MINIMUM:
        # Ties send the whole gradient to the first operand; NaN in either propagates to
        # the value and to both partials.
        for k in range(m):
            p = a[k]
            q = b[k]
            if (p >= q) if op == B_MAXIMUM else (p <= q):
                if deriv:
                    db[k] = 0.0
            elif (p < q) if op == B_MAXIMUM else (p > q):
                a[k] = q
                if deriv:
                    da[k] = 0.0
            else:
                a[k] = p + q
                if deriv:
                    da[k] = a[k]
                    db[k] = a[k]


cdef void _binary_tile(const BinaryProgram* prog,
                       const floating* w,        # IN  (m,) or (1,) if w_scalar
                       const floating* x,        # IN  (m,) or (1,) if x_scalar
                       const floating* dw,       # IN  tangent of w (shape of w) or NULL
                       const floating* dx,       # IN  tangent of x (shape of x) or NULL
                       const floating* gy,       # IN  cotangent (m,), or NULL meaning ones
                       floating* y_out,          # OUT (m,) or NULL
                       floating* jvp_out,        # OUT (m,) or NULL
                       floating* gw_out,         # OUT (m,) or NULL
                       floating* gx_out,         # OUT (m,) or NULL
                       double* acc,              # IN/OUT 2 x 16 accumulators of the block's
                                                 # Σ gy ∂y/∂w, Σ gy ∂y/∂x (scalars), or NULL
                       Py_ssize_t m) noexcept nogil:
    cdef double a[TILE]
    cdef double da[TILE]
    cdef double b[TILE]
    cdef double db[TILE]
    cdef double t[TILE]
    cdef double* dap = da if prog.need_deriv else NULL
    cdef double* dbp = db if prog.need_deriv else NULL
    cdef Py_ssize_t k
    cdef double c, p, q, g

    if (floating is float and prog.op == B_DIV and prog.nf == 0 and prog.ng == 0
            and not prog.w_scalar and not prog.x_scalar and jvp_out == NULL and acc == NULL):
        # float32 w / x: the partials times gy as the plain loop forms them
        # (fj_div_grads_f32: gy/x and -(gy w)/(x x), each correctly rounded), with the value
        for k in range(m):
            p = w[k]
            q = x[k]
            g = gy[k] if gy != NULL else 1.0
            a[k] = p / q
            da[k] = g / q
            db[k] = -(g * p) / (q * q)
        if y_out != NULL:
            for k in range(m):
                y_out[k] = <floating>a[k]
        if gw_out != NULL:
            for k in range(m):
                gw_out[k] = <floating>da[k]
        if gx_out != NULL:
            for k in range(m):
                gx_out[k] = <floating>db[k]
        return

    _operand_tile(prog.fcodes, prog.nf, w, prog.w_scalar, a, dap, m)
    _operand_tile(prog.gcodes, prog.ng, x, prog.x_scalar, b, dbp, m)
    _apply_op(prog.op, a, dap, b, dbp, m, y_out != NULL)

    if jvp_out != NULL:
        # dy = (∂y/∂w) dw + (∂y/∂x) dx; a missing tangent is zero.
        for k in range(m):
            t[k] = 0.0
        if dw != NULL:
            if prog.w_scalar:
                c = dw[0]
                for k in range(m):
                    t[k] = da[k] * c
            else:
                for k in range(m):
                    t[k] = da[k] * dw[k]
        if dx != NULL:
            if prog.x_scalar:
                c = dx[0]
                for k in range(m):
                    t[k] += db[k] * c
            else:
                for k in range(m):
                    t[k] += db[k] * dx[k]

    if prog.need_deriv and (gw_out != NULL or gx_out != NULL or acc != NULL):
        if gy != NULL:
            if floating is float:
                fj_ew_scale2_f32(da, db, gy, m)
            else:
                fj_ew_scale2_f64(da, db, gy, m)
        if acc != NULL:
            if prog.w_scalar:
                fj_racc_add_f64(acc, da, NULL, m)
            if prog.x_scalar:
                fj_racc_add_f64(acc + FJ_RACC, db, NULL, m)

    # Stores come last: every input of this tile has been read.
    if y_out != NULL:
        for k in range(m):
            y_out[k] = <floating>a[k]
    if jvp_out != NULL:
        for k in range(m):
            jvp_out[k] = <floating>t[k]
    if gw_out != NULL:
        if floating is float:
            fj_fused_narrow(gw_out, da, m)
        else:
            memcpy(gw_out, da, m * sizeof(double))
    if gx_out != NULL:
        if floating is float:
            fj_fused_narrow(gx_out, db, m)
        else:
            memcpy(gx_out, db, m * sizeof(double))


cdef void _binary_block(Py_ssize_t blk, Py_ssize_t n, const BinaryProgram* prog,
                        const floating* w, const floating* x, const floating* dw,
                        const floating* dx, const floating* gy, floating* y_out,
                        floating* jvp_out, floating* gw_out, floating* gx_out,
                        double* partial) noexcept nogil:
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t i, m
    cdef double acc[2 * FJ_RACC]
    cdef double* accp = NULL
    if stop > n:
        stop = n
    if partial != NULL:
        accp = acc
        fj_racc_zero(acc)
        fj_racc_zero(acc + FJ_RACC)
    i = start
    while i < stop:
        m = stop - i
        if m > TILE:
            m = TILE
        _binary_tile(
            prog,
            w if prog.w_scalar else w + i,
            x if prog.x_scalar else x + i,
            NULL if dw == NULL else (dw if prog.w_scalar else dw + i),
            NULL if dx == NULL else (dx if prog.x_scalar else dx + i),
            NULL if gy == NULL else gy + i,
            NULL if y_out == NULL else y_out + i,
            NULL if jvp_out == NULL else jvp_out + i,
            NULL if gw_out == NULL else gw_out + i,
            NULL if gx_out == NULL else gx_out + i,
            accp, m)
        i += m
    if partial != NULL:
        partial[2 * blk] = fj_racc_total(acc)
        partial[2 * blk + 1] = fj_racc_total(acc + FJ_RACC)


cdef void _binary_run(const BinaryProgram* prog, Py_ssize_t n, const floating* w,
                      const floating* x, const floating* dw, const floating* dx,
                      const floating* gy, floating* y_out, floating* jvp_out,
                      floating* gw_out, floating* gx_out, double* partial,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    cdef _EwJob job
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _binary_block(blk, n, prog, w, x, dw, dx, gy, y_out, jvp_out, gw_out, gx_out,
                          partial)
    else:
        job.n = n
        job.f32 = floating is float
        job.prog = prog
        job.w = w
        job.x = x
        job.dw = dw
        job.dx = dx
        job.gy = gy
        job.y_out = y_out
        job.jvp_out = jvp_out
        job.gw_out = gw_out
        job.gx_out = gx_out
        job.partial = partial
        parallel_for(nblocks, _binary_job_block, &job, n_threads)


cdef void _binary_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    cdef _EwJob* j = <_EwJob*>ctx
    if j.f32:
        _binary_block(blk, j.n, j.prog, <const float*>j.w, <const float*>j.x,
                      <const float*>j.dw, <const float*>j.dx, <const float*>j.gy,
                      <float*>j.y_out, <float*>j.jvp_out, <float*>j.gw_out,
                      <float*>j.gx_out, j.partial)
    else:
        _binary_block(blk, j.n, j.prog, <const double*>j.w, <const double*>j.x,
                      <const double*>j.dw, <const double*>j.dx, <const double*>j.gy,
                      <double*>j.y_out, <double*>j.jvp_out, <double*>j.gw_out,
                      <double*>j.gx_out, j.partial)


# ---------------------------------------------------------------------------------------
# Plain binary ops (no f, g; two arrays): one direct loop per op that the compiler
# vectorises, no tiles. Every element's arithmetic is exactly the interpreter's (the same
# operations in the same order), so both give the same bits. All inputs of element k are
# read before its outputs are stored: an output may be exactly an input.
# ---------------------------------------------------------------------------------------

ctypedef void (*_value_f64_fn)(const double*, const double*, double*, Py_ssize_t) noexcept nogil
ctypedef void (*_value_f32_fn)(const float*, const float*, float*, Py_ssize_t) noexcept nogil
ctypedef void (*_grads_f64_fn)(const double*, const double*, const double*, double*, double*,
                               Py_ssize_t) noexcept nogil
ctypedef void (*_grads_f32_fn)(const float*, const float*, const float*, float*, float*,
                               Py_ssize_t) noexcept nogil

# fj_tile.h's loops (compiled for each SIMD level; the bits of the double route), one table
# per dtype indexed by the op code: y = w ○ x, and (gw, gx) = gy (∂y/∂w, ∂y/∂x).
cdef _value_f64_fn _PLAIN_VALUE_F64[N_BINARY]
cdef _value_f32_fn _PLAIN_VALUE_F32[N_BINARY]
cdef _grads_f64_fn _PLAIN_GRADS_F64[N_BINARY]
cdef _grads_f32_fn _PLAIN_GRADS_F32[N_BINARY]
_PLAIN_VALUE_F64[B_ADD], _PLAIN_VALUE_F32[B_ADD] = fj_add_f64, fj_add_f32
_PLAIN_VALUE_F64[B_SUB], _PLAIN_VALUE_F32[B_SUB] = fj_sub_f64, fj_sub_f32
_PLAIN_VALUE_F64[B_MUL], _PLAIN_VALUE_F32[B_MUL] = fj_mul_f64, fj_mul_f32
_PLAIN_VALUE_F64[B_DIV], _PLAIN_VALUE_F32[B_DIV] = fj_div_f64, fj_div_f32
_PLAIN_VALUE_F64[B_MAXIMUM], _PLAIN_VALUE_F32[B_MAXIMUM] = fj_max_f64, fj_max_f32
_PLAIN_VALUE_F64[B_MINIMUM], _PLAIN_VALUE_F32[B_MINIMUM] = fj_min_f64, fj_min_f32
_PLAIN_GRADS_F64[B_ADD], _PLAIN_GRADS_F32[B_ADD] = fj_add_grads_f64, fj_add_grads_f32
_PLAIN_GRADS_F64[B_SUB], _PLAIN_GRADS_F32[B_SUB] = fj_sub_grads_f64, fj_sub_grads_f32
_PLAIN_GRADS_F64[B_MUL], _PLAIN_GRADS_F32[B_MUL] = fj_mul_grads_f64, fj_mul_grads_f32
# float32: gy/x and -(gy w)/(x x), correctly rounded (fj_vmath.h; it also takes gy NULL)
_PLAIN_GRADS_F64[B_DIV], _PLAIN_GRADS_F32[B_DIV] = fj_div_grads_f64_fast, fj_div_grads_f32
_PLAIN_GRADS_F64[B_MAXIMUM], _PLAIN_GRADS_F32[B_MAXIMUM] = fj_max_grads_f64, fj_max_grads_f32
_PLAIN_GRADS_F64[B_MINIMUM], _PLAIN_GRADS_F32[B_MINIMUM] = fj_min_grads_f64, fj_min_grads_f32


cdef void _plain_value(int op, Py_ssize_t lo, Py_ssize_t hi, const floating* w,
                       const floating* x, floating* y_out) noexcept nogil:
    if floating is double:
        _PLAIN_VALUE_F64[op](w + lo, x + lo, y_out + lo, hi - lo)
    else:
        _PLAIN_VALUE_F32[op](w + lo, x + lo, y_out + lo, hi - lo)


cdef void _plain_grads(int op, Py_ssize_t lo, Py_ssize_t hi, const floating* w,
                       const floating* x, const floating* gy, floating* gw_out,
                       floating* gx_out) noexcept nogil:
    # gw = gy ∂y/∂w, gx = gy ∂y/∂x (gy NULL: ones, i.e. the partials themselves).
    cdef Py_ssize_t k
    cdef double pw, px
    if gy == NULL and not (floating is float and op == B_DIV):
        for k in range(lo, hi):
            _plain_partials(op, w[k], x[k], &pw, &px)
            gw_out[k] = <floating>pw
            gx_out[k] = <floating>px
        return
    if floating is double:
        _PLAIN_GRADS_F64[op](w + lo, x + lo, gy + lo, gw_out + lo, gx_out + lo, hi - lo)
    else:
        _PLAIN_GRADS_F32[op](w + lo, x + lo, gy + lo if gy != NULL else NULL, gw_out + lo,
                             gx_out + lo, hi - lo)


cdef void _plain_block(Py_ssize_t blk, Py_ssize_t n, int op, const floating* w,
                       const floating* x, const floating* gy, floating* y_out,
                       floating* gw_out, floating* gx_out) noexcept nogil:
    cdef Py_ssize_t lo = blk * BLOCK
    cdef Py_ssize_t hi = lo + BLOCK
    if hi > n:
        hi = n
    if y_out != NULL:
        _plain_value(op, lo, hi, w, x, y_out)
    else:
        _plain_grads(op, lo, hi, w, x, gy, gw_out, gx_out)


cdef void _plain_run(int op, Py_ssize_t n, const floating* w, const floating* x,
                     const floating* gy, floating* y_out, floating* gw_out,
                     floating* gx_out, int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    cdef _EwJob job
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _plain_block(blk, n, op, w, x, gy, y_out, gw_out, gx_out)
    else:
        job.n = n
        job.f32 = floating is float
        job.op = op
        job.w = w
        job.x = x
        job.gy = gy
        job.y_out = y_out
        job.gw_out = gw_out
        job.gx_out = gx_out
        parallel_for(nblocks, _plain_job_block, &job, n_threads)


cdef void _plain_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    cdef _EwJob* j = <_EwJob*>ctx
    if j.f32:
        _plain_block(blk, j.n, j.op, <const float*>j.w, <const float*>j.x,
                     <const float*>j.gy, <float*>j.y_out, <float*>j.gw_out, <float*>j.gx_out)
    else:
        _plain_block(blk, j.n, j.op, <const double*>j.w, <const double*>j.x,
                     <const double*>j.gy, <double*>j.y_out, <double*>j.gw_out,
                     <double*>j.gx_out)


cdef inline void _plain_partials(int op, double p, double q, double* pw,
                                 double* px) noexcept nogil:
    # ∂(p ○ q)/∂p and ∂(p ○ q)/∂q, with exactly the interpreter's operations.
    if op == B_ADD:
        pw[0] = 1.0
        px[0] = 1.0
    elif op == B_SUB:
        pw[0] = 1.0
        px[0] = -1.0
    elif op == B_MUL:
        pw[0] = q
        px[0] = p
    elif op == B_DIV:
        pw[0] = 1.0 / q
        px[0] = -((p / q) / q)
    elif op == B_MAXIMUM:
        pw[0] = 1.0 if p >= q else (0.0 if p < q else p + q)
        px[0] = 0.0 if p >= q else (1.0 if p < q else p + q)
    else:
        pw[0] = 1.0 if p <= q else (0.0 if p > q else p + q)
        px[0] = 0.0 if p <= q else (1.0 if p > q else p + q)


cdef inline void _scalar_vjp_tile(int op, bint z_is_w, const floating* arr, double z,
                                  const floating* gy, floating* g_out, double* acc,
                                  Py_ssize_t m) noexcept nogil:
    # One tile of _scalar_vjp_block for any plain op: the partials of every element into
    # two L1 buffers (op and z_is_w are constants where the block calls it, so the loop has
    # no branch on them and vectorises), times gy, then stored and summed. The same
    # operations per element as the interpreter.
    cdef double ta[TILE]
    cdef double tz[TILE]
    cdef double pw, px, g
    cdef Py_ssize_t k
    for k in range(m):
        if z_is_w:
            _plain_partials(op, z, arr[k], &pw, &px)
            ta[k] = px
            tz[k] = pw
        else:
            _plain_partials(op, arr[k], z, &pw, &px)
            ta[k] = pw
            tz[k] = px
    if gy != NULL:
        for k in range(m):
            g = gy[k]
            ta[k] = ta[k] * g
            tz[k] = tz[k] * g
    fj_racc_add_f64(acc, tz, NULL, m)
    for k in range(m):  # last: g_out may be exactly arr or gy
        g_out[k] = <floating>ta[k]


cdef void _scalar_vjp_block(Py_ssize_t blk, Py_ssize_t n, int op, const floating* arr,
                            double z, bint z_is_w, const floating* gy, floating* g_out,
                            double* partial) noexcept nogil:
    # VJP of y = z ○ a (z_is_w) or a ○ z for a plain op and a scalar z (§4.3): g_out gets
    # the array operand's gradient, partial[2 blk + (0 or 1)] the block's Σ for z, in the
    # 16 accumulators of fj_reduce.h: the same operations in the same order as the
    # interpreter. For mul (either order) ∂/∂a = z and ∂/∂z = a, so the Σ is the dot
    # product of a and gy (Σ a without gy), summed straight from the inputs.
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t i, m, k
    cdef double acc[FJ_RACC]
    cdef double total
    cdef const floating* ai
    cdef const floating* gi
    cdef floating* oi
    if stop > n:
        stop = n
    fj_racc_zero(acc)
    i = start
    while i < stop:
        m = stop - i
        if m > TILE:
            m = TILE
        ai = arr + i
        gi = NULL if gy == NULL else gy + i
        oi = g_out + i
        if op == B_MUL:
            _racc_add(acc, ai, gi, m)
            if gi != NULL:  # after the sum: g_out may be exactly arr or gy
                for k in range(m):
                    oi[k] = <floating>(z * <double>gi[k])
            else:
                for k in range(m):
                    oi[k] = <floating>z
        # The other ops with op and z_is_w as constants (inlined, one loop each).
        elif op == B_ADD:
            if z_is_w:
                _scalar_vjp_tile(B_ADD, True, ai, z, gi, oi, acc, m)
            else:
                _scalar_vjp_tile(B_ADD, False, ai, z, gi, oi, acc, m)
        elif op == B_SUB:
            if z_is_w:
                _scalar_vjp_tile(B_SUB, True, ai, z, gi, oi, acc, m)
            else:
                _scalar_vjp_tile(B_SUB, False, ai, z, gi, oi, acc, m)
        elif op == B_DIV:
            if z_is_w:
                _scalar_vjp_tile(B_DIV, True, ai, z, gi, oi, acc, m)
            else:
                _scalar_vjp_tile(B_DIV, False, ai, z, gi, oi, acc, m)
        elif op == B_MAXIMUM:
            if z_is_w:
                _scalar_vjp_tile(B_MAXIMUM, True, ai, z, gi, oi, acc, m)
            else:
                _scalar_vjp_tile(B_MAXIMUM, False, ai, z, gi, oi, acc, m)
        else:
            if z_is_w:
                _scalar_vjp_tile(B_MINIMUM, True, ai, z, gi, oi, acc, m)
            else:
                _scalar_vjp_tile(B_MINIMUM, False, ai, z, gi, oi, acc, m)
        i += m
    total = fj_racc_total(acc)
    partial[2 * blk] = total if z_is_w else 0.0
    partial[2 * blk + 1] = 0.0 if z_is_w else total


cdef void _scalar_vjp_run(int op, Py_ssize_t n, const floating* arr, double z, bint z_is_w,
                          const floating* gy, floating* g_out, double* partial,
                          int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    cdef _EwJob job
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _scalar_vjp_block(blk, n, op, arr, z, z_is_w, gy, g_out, partial)
    else:
        job.n = n
        job.f32 = floating is float
        job.op = op
        job.x = arr
        job.z = z
        job.z_is_w = z_is_w
        job.gy = gy
        job.gx_out = g_out
        job.partial = partial
        parallel_for(nblocks, _scalar_vjp_job_block, &job, n_threads)


cdef void _scalar_vjp_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    cdef _EwJob* j = <_EwJob*>ctx
    if j.f32:
        _scalar_vjp_block(blk, j.n, j.op, <const float*>j.x, j.z, j.z_is_w,
                          <const float*>j.gy, <float*>j.gx_out, j.partial)
    else:
        _scalar_vjp_block(blk, j.n, j.op, <const double*>j.x, j.z, j.z_is_w,
                          <const double*>j.gy, <double*>j.gx_out, j.partial)


cdef object _binary_impl(int op, bytes fcodes, bytes gcodes, Py_ssize_t n, object w,
                         object x, bint w_scalar, bint x_scalar, object dw, object dx,
                         object gy, object y_out, object jvp_out, object gw_out,
                         object gx_out, bint want_scalar_grads, int n_threads):
    cdef BinaryProgram prog
    cdef double sums[2]
    cdef Py_ssize_t lw = 1 if w_scalar else n
    cdef Py_ssize_t lx = 1 if x_scalar else n
    _binary_program(&prog, op, fcodes, gcodes, w_scalar, x_scalar)
    cdef int typenum = _float_typenum(w, "w")
    cdef void* wp = _data(w, typenum, lw, False, "w")
    cdef void* xp = _data(x, typenum, lx, False, "x")
    cdef void* dwp = _data(dw, typenum, lw, False, "dw")
    cdef void* dxp = _data(dx, typenum, lx, False, "dx")
    cdef void* gyp = _data(gy, typenum, n, False, "gy")
    cdef void* yp = _data(y_out, typenum, n, True, "y_out")
    cdef void* jp = _data(jvp_out, typenum, n, True, "jvp_out")
    cdef void* gwp = _data(gw_out, typenum, n, True, "gw_out")
    cdef void* gxp = _data(gx_out, typenum, n, True, "gx_out")
    _binary_dispatch(&prog, typenum, n, wp, xp, dwp, dxp, gyp, yp, jp, gwp, gxp,
                     want_scalar_grads, n_threads, sums)
    return (sums[0], sums[1])


cdef int _binary_program(BinaryProgram* prog, int op, bytes fcodes, bytes gcodes,
                         bint w_scalar, bint x_scalar) except -1:
    # The op and its chains checked and stored (need_deriv is set by _binary_dispatch).
    if op < 0 or op >= N_BINARY:
        raise ValueError(f"unknown binary op code {op}")
    prog.op = op
    prog.nf = _check_codes(fcodes, N_UNARY)
    prog.ng = _check_codes(gcodes, N_UNARY)
    prog.fcodes = fcodes
    prog.gcodes = gcodes
    prog.w_scalar = w_scalar
    prog.x_scalar = x_scalar
    return 0


cdef int _binary_dispatch(BinaryProgram* prog, int typenum, Py_ssize_t n, void* wp,
                          void* xp, void* dwp, void* dxp, void* gyp, void* yp, void* jp,
                          void* gwp, void* gxp, bint want_scalar_grads, int n_threads,
                          double* sums) except -1:
    # The kernel on checked buffers (_binary_impl's checks, or binary_fast's own); sums
    # receives (gw_sum, gx_sum), the scalar operands' gradients (0.0 when not asked for).
    cdef Py_ssize_t nblocks, blk
    cdef double* partial = NULL
    cdef double gw_sum = 0.0, gx_sum = 0.0
    cdef bint w_scalar = prog.w_scalar, x_scalar = prog.x_scalar
    cdef bint plain
    sums[0] = 0.0
    sums[1] = 0.0
    if n <= 0:
        return 0
    want_scalar_grads = want_scalar_grads and (w_scalar or x_scalar)
    prog.need_deriv = jp != NULL or gwp != NULL or gxp != NULL or want_scalar_grads
    # The direct loops: a plain op on two arrays, value alone or both gradients alone.
    plain = (prog.nf == 0 and prog.ng == 0 and not w_scalar and not x_scalar
             and jp == NULL and dwp == NULL and dxp == NULL
             and ((yp != NULL and gwp == NULL and gxp == NULL)
                  or (yp == NULL and gwp != NULL and gxp != NULL)))
    if plain:
        ts = _release_gil(n, n_threads)  # kept below GIL_KEEP_BELOW units of work
        if typenum == cnp.NPY_DOUBLE:
            _plain_run(prog.op, n, <const double*>wp, <const double*>xp, <const double*>gyp,
                       <double*>yp, <double*>gwp, <double*>gxp, n_threads)
        else:
            _plain_run(prog.op, n, <const float*>wp, <const float*>xp, <const float*>gyp,
                       <float*>yp, <float*>gwp, <float*>gxp, n_threads)
        _restore_gil(ts)
        return 0
    nblocks = (n + BLOCK - 1) // BLOCK
    if want_scalar_grads:
        partial = <double*>malloc(2 * nblocks * sizeof(double))
        if partial == NULL:
            raise MemoryError()
    # The direct scalar-expansion VJP: a plain op, one scalar operand, its sum and the
    # array operand's gradient (nothing else asked for).
    cdef bint scalar_direct = (prog.nf == 0 and prog.ng == 0 and want_scalar_grads
                               and (w_scalar != x_scalar) and yp == NULL and jp == NULL
                               and dwp == NULL and dxp == NULL
                               and (gxp != NULL if w_scalar else gwp != NULL)
                               and (gwp == NULL if w_scalar else gxp == NULL))
    # A unary chain on either side costs far more than the plain op: such a call is
    # counted as 32 units per element (so it keeps the GIL below 512 elements).
    ts = _release_gil(n if scalar_direct or (prog.nf == 0 and prog.ng == 0) else 32 * n,
                      n_threads)  # kept below GIL_KEEP_BELOW units of work
    if scalar_direct:
        if typenum == cnp.NPY_DOUBLE:
            _scalar_vjp_run(prog.op, n, <const double*>(xp if w_scalar else wp),
                            (<const double*>(wp if w_scalar else xp))[0], w_scalar,
                            <const double*>gyp, <double*>(gxp if w_scalar else gwp),
                            partial, n_threads)
        else:
            _scalar_vjp_run(prog.op, n, <const float*>(xp if w_scalar else wp),
                            (<const float*>(wp if w_scalar else xp))[0], w_scalar,
                            <const float*>gyp, <float*>(gxp if w_scalar else gwp),
                            partial, n_threads)
    elif typenum == cnp.NPY_DOUBLE:
        _binary_run(prog, n, <const double*>wp, <const double*>xp,
                    <const double*>dwp, <const double*>dxp, <const double*>gyp,
                    <double*>yp, <double*>jp, <double*>gwp, <double*>gxp,
                    partial, n_threads)
    else:
        _binary_run(prog, n, <const float*>wp, <const float*>xp,
                    <const float*>dwp, <const float*>dxp, <const float*>gyp,
                    <float*>yp, <float*>jp, <float*>gwp, <float*>gxp,
                    partial, n_threads)
    if partial != NULL:
        # Merge per-block sums in block order: the same bits for every n_threads.
        for blk in range(nblocks):
            gw_sum += partial[2 * blk]
            gx_sum += partial[2 * blk + 1]
    _restore_gil(ts)
    free(partial)
    sums[0] = gw_sum
    sums[1] = gx_sum
    return 0


def binary(int op, bytes fcodes, bytes gcodes, Py_ssize_t n,
           w, x,                             # IN  n elements, or 1 with w_scalar/x_scalar
           *,                                # the rest by keyword only
           bint w_scalar=False, bint x_scalar=False,
           dw=None, dx=None,                 # IN  tangents shaped like w and x, or None
           gy=None,                          # IN  cotangent (n,), or None meaning ones
           y_out=None,                       # OUT value, or None
           jvp_out=None,                     # OUT J_w dw + J_x dx, or None
           gw_out=None,                      # OUT gy ⊗ diag(J_w) (array w), or None
           gx_out=None,                      # OUT gy ⊗ diag(J_x) (array x), or None
           bint want_scalar_grads=False,
           int n_threads=1):
    """One fused pass of y = f(w) ○ g(x): any of value, JVP, VJP.

    Every array is C-contiguous of the dtype of ``w``; everything after ``x`` is passed by
    keyword and defaults to False, None or one thread. Returns ``(gw_sum, gx_sum)``: for a
    scalar operand with ``want_scalar_grads``, its VJP ``Σ_i gy_i ∂y_i/∂operand``
    accumulated in double in a fixed block order (else 0.0).
    """
    return _binary_impl(op, fcodes, gcodes, n, w, x, w_scalar, x_scalar, dw, dx, gy, y_out,
                        jvp_out, gw_out, gx_out, want_scalar_grads, n_threads)


cdef inline void* _ptr(object a) noexcept:
    # The data pointer of a checked array, NULL for None.
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


def binary_fast(int op, bytes fcodes, bytes gcodes, w, x, gy, bint value, out, n_threads,
                Py_ssize_t work_per_element, Py_ssize_t threshold):
    # Positional on purpose: see unary_fast.
    """Value (``value``) or VJP ``(gw, gx)`` (``gy`` None means ones: sum_grad) in one C
    call, or None when the call needs the general path.

    Eligible: ``w`` and ``x`` exact ``numpy.ndarray`` of one float dtype and one shape
    (``ndim >= 1``, any layout), or one of them a Python float/int or a NumPy scalar of
    that dtype (scalar expansion, §4.3: its gradient is a NumPy scalar); ``gy`` None or an
    array of the same shape and dtype; ``out`` None, a C-contiguous array (value) or a pair
    of them or None (VJP, array operands only).
    """
    cdef int typenum, nt
    cdef Py_ssize_t n
    cdef bint ws = False, xs = False
    cdef object ow = None, ox = None, like
    cdef BinaryProgram prog
    cdef double sums[2]
    typenum = _fast_typenum(w)
    if typenum >= 0:
        like = w
    else:
        typenum = _fast_typenum(x)
        if typenum < 0:
            return None
        like = x
    if like is w:
        if not (_fast_typenum(x) == typenum and _same_shape(x, w)):
            x = _scalar_operand(x, typenum)
            if x is None:
                return None
            xs = True
    else:
        w = _scalar_operand(w, typenum)
        if w is None:
            return None
        ws = True
    if gy is not None and not (_fast_typenum(gy) == typenum and _same_shape(gy, like)):
        return None
    n = cnp.PyArray_SIZE(<cnp.ndarray>like)
    nt = fast_threads(n_threads, n * work_per_element, threshold)
    if nt == 0:
        return None
    if out is not None:
        if value:
            if not _writable_out_like(out, like, typenum):
                return None
        else:
            if ws or xs or type(out) is not tuple or len(<tuple>out) != 2:
                return None
            ow = (<tuple>out)[0]
            ox = (<tuple>out)[1]
            for o in (ow, ox):
                if o is not None and not _writable_out_like(o, like, typenum):
                    return None
            if ow is not None and ox is not None and not disjoint(ow, ox):
                return None
    if not ws:
        w = _kernel_input(w)
    if not xs:
        x = _kernel_input(x)
    if gy is not None:
        gy = _kernel_input(gy)
    # Every buffer is now checked (exact ndarray, dtype, byte order, shape; w, x and gy
    # C-contiguous and aligned after _kernel_input, a scalar operand a new 1-element array;
    # each out writeable, C-contiguous and aligned, or new; overlaps below): the kernel runs
    # on their data pointers without _binary_impl's second look. Only the op and its chains
    # are checked here, as there.
    _binary_program(&prog, op, fcodes, gcodes, ws, xs)
    if value:
        if out is None:
            res = new_output(cnp.PyArray_NDIM(<cnp.ndarray>like),
                             cnp.PyArray_DIMS(<cnp.ndarray>like), typenum)
        elif (disjoint_or_same(out, None if ws else w)
              and disjoint_or_same(out, None if xs else x)):
            res = out
        else:
            return None
        _binary_dispatch(&prog, typenum, n, _ptr(w), _ptr(x), NULL, NULL, NULL, _ptr(res),
                         NULL, NULL, NULL, False, nt, sums)
        return res
    for o in (ow, ox):
        if o is not None and not (disjoint_or_same(o, w) and disjoint_or_same(o, x)
                                  and disjoint_or_same(o, gy)):
            return None
    if ws:
        gw = None
    else:
        gw = ow if ow is not None else new_output(
            cnp.PyArray_NDIM(<cnp.ndarray>like), cnp.PyArray_DIMS(<cnp.ndarray>like), typenum)
    if xs:
        gx = None
    else:
        gx = ox if ox is not None else new_output(
            cnp.PyArray_NDIM(<cnp.ndarray>like), cnp.PyArray_DIMS(<cnp.ndarray>like), typenum)
    _binary_dispatch(&prog, typenum, n, _ptr(w), _ptr(x), NULL, NULL, _ptr(gy), NULL, NULL,
                     _ptr(gw), _ptr(gx), True, nt, sums)
    if ws:
        gw = _typed_scalar(sums[0], typenum)
    if xs:
        gx = _typed_scalar(sums[1], typenum)
    return gw, gx


include "reduce.pxi"
