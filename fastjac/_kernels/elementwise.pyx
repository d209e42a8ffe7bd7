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
store). Every kernel first loads a tile of each input into its own buffers and only then
stores the tile of each output, so an output may be exactly one of the inputs (in place).
"""

from cython.parallel cimport prange
from libc.math cimport cos, exp, fabs, log, sin, sqrt, tanh
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from fastjac._kernels._common cimport BLOCK, FJ_HAVE_OPENMP, TILE, floating

cnp.import_array()

# Unary op codes (keep in sync with fastjac/ops.py).
cdef enum:
    U_IDENTITY = 0
    U_NEG = 1
    U_SQUARE = 2
    U_SQRT = 3
    U_EXP = 4
    U_LOG = 5
    U_SIN = 6
    U_COS = 7
    U_TANH = 8
    U_SIGMOID = 9
    U_RELU = 10
    U_ABS = 11
    U_RECIPROCAL = 12
    N_UNARY = 13

# Binary op codes.
cdef enum:
    B_ADD = 0
    B_SUB = 1
    B_MUL = 2
    B_DIV = 3
    B_MAXIMUM = 4
    B_MINIMUM = 5
    N_BINARY = 6

UNARY_CODES = {
    "identity": U_IDENTITY, "neg": U_NEG, "square": U_SQUARE, "sqrt": U_SQRT, "exp": U_EXP,
    "log": U_LOG, "sin": U_SIN, "cos": U_COS, "tanh": U_TANH, "sigmoid": U_SIGMOID,
    "relu": U_RELU, "abs": U_ABS, "reciprocal": U_RECIPROCAL,
}
BINARY_CODES = {
    "add": B_ADD, "sub": B_SUB, "mul": B_MUL, "div": B_DIV,
    "maximum": B_MAXIMUM, "minimum": B_MINIMUM,
}
TILE_SIZE = TILE
BLOCK_SIZE = BLOCK


def openmp_enabled():
    """True when the kernels were compiled with OpenMP (``n_threads`` > 1 can help)."""
    return bool(FJ_HAVE_OPENMP)


# ---------------------------------------------------------------------------------------
# Argument checks at the C boundary. fastjac/_validate.py has already normalised every
# argument; these few integer comparisons make the kernels memory-safe even if a caller
# skipped it, and they cost nanoseconds (no buffer protocol, no fused-type dispatch).
# ---------------------------------------------------------------------------------------

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


cdef inline bint _is_plain_vector(object a) noexcept:
    return (type(a) is cnp.ndarray and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a))


# ---------------------------------------------------------------------------------------
# Point mathematics: one stage of a chain over a tile.
#
# v holds the stage's input and receives its output; d (when not NULL) holds the
# derivative of the chain so far and is multiplied by this stage's derivative, evaluated
# at the stage's input (the vector chain rule with diagonal factors, paper §4.5.3).
# ---------------------------------------------------------------------------------------

cdef inline double _sigmoid_parts(double x, double* deriv) noexcept nogil:
    # With e = exp(-|x|) in (0, 1]: sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0,
    # and sigmoid'(x) = e/(1+e)^2 for all x. No cancellation anywhere, so both are accurate
    # even where sigmoid(x) rounds to 1 (v*(1-v) would give 0 there).
    cdef double e = exp(-fabs(x))
    cdef double q = 1.0 + e
    deriv[0] = e / (q * q)
    if x >= 0.0:
        return 1.0 / q
    return e / q


cdef inline double _tanh_deriv(double x, double t) noexcept nogil:
    # sech^2(x). 1 - t^2 cancels badly once |t| is near 1; for |x| >= 0.5 use
    # 4q/(1+q)^2 with q = exp(-2|x|), which has no cancellation. NaN falls to 1 - t*t.
    cdef double q
    if fabs(x) >= 0.5:
        q = exp(-2.0 * fabs(x))
        return 4.0 * q / ((1.0 + q) * (1.0 + q))
    return 1.0 - t * t


cdef inline double _sign(double x) noexcept nogil:
    # d|x|/dx: -1, 0 at x == 0 (documented choice, like ReLU'(0) = 0), +1; NaN stays NaN.
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x * 0.0  # +-0 -> 0, NaN -> NaN


cdef inline double _relu(double x) noexcept nogil:
    if x > 0.0:
        return x
    if x <= 0.0:
        return 0.0
    return x  # NaN propagates like numpy.maximum(x, 0)


cdef inline double _relu_deriv(double x) noexcept nogil:
    # The paper's branch: 1 for x > 0, 0 for x <= 0 (so 0 at x == 0); NaN propagates.
    if x > 0.0:
        return 1.0
    if x <= 0.0:
        return 0.0
    return x


cdef void _stage(int code, double* v, double* d, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    cdef double t, s
    if code == U_IDENTITY:
        pass
    elif code == U_NEG:
        for k in range(m):
            v[k] = -v[k]
        if d != NULL:
            for k in range(m):
                d[k] = -d[k]
    elif code == U_SQUARE:
        if d != NULL:
            for k in range(m):
                d[k] *= 2.0 * v[k]
        for k in range(m):
            v[k] = v[k] * v[k]
    elif code == U_SQRT:
        for k in range(m):
            v[k] = sqrt(v[k])
        if d != NULL:
            for k in range(m):
                d[k] *= 0.5 / v[k]
    elif code == U_EXP:
        for k in range(m):
            v[k] = exp(v[k])
        if d != NULL:
            for k in range(m):
                d[k] *= v[k]
    elif code == U_LOG:
        if d != NULL:
            for k in range(m):
                d[k] = d[k] / v[k]
        for k in range(m):
            v[k] = log(v[k])
    elif code == U_SIN:
        if d != NULL:
            for k in range(m):
                t = v[k]
                d[k] *= cos(t)
                v[k] = sin(t)
        else:
            for k in range(m):
                v[k] = sin(v[k])
    elif code == U_COS:
        if d != NULL:
            for k in range(m):
                t = v[k]
                d[k] *= -sin(t)
                v[k] = cos(t)
        else:
            for k in range(m):
                v[k] = cos(v[k])
    elif code == U_TANH:
        if d != NULL:
            for k in range(m):
                t = tanh(v[k])
                d[k] *= _tanh_deriv(v[k], t)
                v[k] = t
        else:
            for k in range(m):
                v[k] = tanh(v[k])
    elif code == U_SIGMOID:
        if d != NULL:
            for k in range(m):
                v[k] = _sigmoid_parts(v[k], &s)
                d[k] *= s
        else:
            for k in range(m):
                v[k] = _sigmoid_parts(v[k], &s)
    elif code == U_RELU:
        if d != NULL:
            for k in range(m):
                d[k] *= _relu_deriv(v[k])
        for k in range(m):
            v[k] = _relu(v[k])
    elif code == U_ABS:
        if d != NULL:
            for k in range(m):
                d[k] *= _sign(v[k])
        for k in range(m):
            v[k] = fabs(v[k])
    elif code == U_RECIPROCAL:
        for k in range(m):
            v[k] = 1.0 / v[k]
        if d != NULL:
            for k in range(m):
                d[k] *= -(v[k] * v[k])


cdef inline void _run_chain(const unsigned char* codes, Py_ssize_t ncodes, double* v,
                            double* d, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    if d != NULL:
        for k in range(m):
            d[k] = 1.0
    for k in range(ncodes):
        _stage(codes[k], v, d, m)


cdef inline double _sum4(const double* a, Py_ssize_t m) noexcept nogil:
    # Four independent accumulators: a fixed order (so a fixed result) that pipelines.
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t k = 0
    while k + 4 <= m:
        s0 += a[k]
        s1 += a[k + 1]
        s2 += a[k + 2]
        s3 += a[k + 3]
        k += 4
    while k < m:
        s0 += a[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


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
    for k in range(m):
        v[k] = x[k]
    _run_chain(codes, ncodes, v, dp, m)
    if d_out != NULL and t != NULL:
        for k in range(m):
            d[k] *= t[k]
    if y_out != NULL:
        for k in range(m):
            y_out[k] = <floating>v[k]
    if d_out != NULL:
        for k in range(m):
            d_out[k] = <floating>d[k]


cdef void _unary_block(Py_ssize_t blk, Py_ssize_t n, const unsigned char* codes,
                       Py_ssize_t ncodes, const floating* x, const floating* t,
                       floating* y_out, floating* d_out) noexcept nogil:
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t i, m
    if stop > n:
        stop = n
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
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _unary_block(blk, n, codes, ncodes, x, t, y_out, d_out)
    else:
        for blk in prange(nblocks, schedule="static", num_threads=n_threads):
            _unary_block(blk, n, codes, ncodes, x, t, y_out, d_out)


def unary(bytes codes, x, t, y_out, d_out, int n_threads=1):
    """Value and/or derivative-times-tangent of the unary chain ``codes`` at ``x``.

    ``x``, ``t``, ``y_out`` and ``d_out`` are C-contiguous arrays of one float dtype and
    one size (``t``, ``y_out``, ``d_out`` may be None); ``d_out = h'(x) * t``, or ``h'(x)``
    when ``t`` is None. The arrays are checked here in C as a last line of defence.
    """
    cdef Py_ssize_t ncodes = _check_codes(codes, N_UNARY)
    cdef int typenum = _float_typenum(x, "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef void* xp = _data(x, typenum, n, False, "x")
    cdef void* tp = _data(t, typenum, n, False, "t")
    cdef void* yp = _data(y_out, typenum, n, True, "y_out")
    cdef void* dp = _data(d_out, typenum, n, True, "d_out")
    cdef const unsigned char* cp = codes
    if n == 0:
        return
    with nogil:
        if typenum == cnp.NPY_DOUBLE:
            _unary_run(cp, ncodes, n, <const double*>xp, <const double*>tp, <double*>yp,
                       <double*>dp, n_threads)
        else:
            _unary_run(cp, ncodes, n, <const float*>xp, <const float*>tp, <float*>yp,
                       <float*>dp, n_threads)


def unary_fast(bytes codes, x, t, bint value, Py_ssize_t work_per_element,
               Py_ssize_t threshold, int n_cores):
    """The common case in one C call, or None when the call needs the general path.

    Eligible: ``x`` (and ``t``) exactly ``numpy.ndarray``, 1-D, C-contiguous, one float
    dtype, one length. Returns a new array with the value (``value``) or ``h'(x) * t``.
    """
    cdef int typenum
    cdef Py_ssize_t n
    cdef cnp.npy_intp dim
    if not _is_plain_vector(x):
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        return None
    n = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    if t is not None and not (_is_plain_vector(t) and cnp.PyArray_TYPE(<cnp.ndarray>t) == typenum
                              and cnp.PyArray_DIM(<cnp.ndarray>t, 0) == n):
        return None
    dim = n
    res = cnp.PyArray_EMPTY(1, &dim, typenum, 0)
    if value:
        unary(codes, x, None, res, None, 1 if n * work_per_element < threshold else n_cores)
    else:
        unary(codes, x, t, None, res, 1 if n * work_per_element < threshold else n_cores)
    return res


# ---------------------------------------------------------------------------------------
# Binary: y = f(w) ○ g(x), with scalar expansion of either operand (paper §4.2, §4.3).
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


cdef void _operand_tile(const unsigned char* codes, Py_ssize_t nc, const floating* src,
                        bint is_scalar, double* v, double* d, Py_ssize_t m) noexcept nogil:
    # v <- f(src), d <- f'(src) on one tile; a scalar operand is computed once and spread.
    cdef Py_ssize_t k
    cdef double v0, d0
    if is_scalar:
        v0 = src[0]
        _run_chain(codes, nc, &v0, &d0 if d != NULL else NULL, 1)
        for k in range(m):
            v[k] = v0
        if d != NULL:
            for k in range(m):
                d[k] = d0
    else:
        for k in range(m):
            v[k] = src[k]
        _run_chain(codes, nc, v, d, m)


cdef void _apply_op(int op, double* a, double* da, double* b, double* db,
                    Py_ssize_t m) noexcept nogil:
    # a <- a ○ b; da <- ∂y/∂w = (∂○/∂a) f'(w); db <- ∂y/∂x = (∂○/∂b) g'(x). da/db may be NULL.
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
            for k in range(m):
                da[k] *= b[k]
                db[k] *= a[k]
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
                       double* sums,             # OUT [Σ gy ∂y/∂w, Σ gy ∂y/∂x] for scalars
                       Py_ssize_t m) noexcept nogil:
    cdef double a[TILE]
    cdef double da[TILE]
    cdef double b[TILE]
    cdef double db[TILE]
    cdef double t[TILE]
    cdef double* dap = da if prog.need_deriv else NULL
    cdef double* dbp = db if prog.need_deriv else NULL
    cdef Py_ssize_t k
    cdef double c

    _operand_tile(prog.fcodes, prog.nf, w, prog.w_scalar, a, dap, m)
    _operand_tile(prog.gcodes, prog.ng, x, prog.x_scalar, b, dbp, m)
    _apply_op(prog.op, a, dap, b, dbp, m)

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

    if prog.need_deriv and (gw_out != NULL or gx_out != NULL or sums != NULL):
        if gy != NULL:
            for k in range(m):
                c = gy[k]
                da[k] *= c
                db[k] *= c
        if sums != NULL:
            if prog.w_scalar:
                sums[0] += _sum4(da, m)
            if prog.x_scalar:
                sums[1] += _sum4(db, m)

    # Stores come last: every input of this tile has been read.
    if y_out != NULL:
        for k in range(m):
            y_out[k] = <floating>a[k]
    if jvp_out != NULL:
        for k in range(m):
            jvp_out[k] = <floating>t[k]
    if gw_out != NULL:
        for k in range(m):
            gw_out[k] = <floating>da[k]
    if gx_out != NULL:
        for k in range(m):
            gx_out[k] = <floating>db[k]


cdef void _binary_block(Py_ssize_t blk, Py_ssize_t n, const BinaryProgram* prog,
                        const floating* w, const floating* x, const floating* dw,
                        const floating* dx, const floating* gy, floating* y_out,
                        floating* jvp_out, floating* gw_out, floating* gx_out,
                        double* partial) noexcept nogil:
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t i, m
    cdef double* sums = NULL
    if stop > n:
        stop = n
    if partial != NULL:
        sums = partial + 2 * blk
        sums[0] = 0.0
        sums[1] = 0.0
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
            sums, m)
        i += m


cdef void _binary_run(const BinaryProgram* prog, Py_ssize_t n, const floating* w,
                      const floating* x, const floating* dw, const floating* dx,
                      const floating* gy, floating* y_out, floating* jvp_out,
                      floating* gw_out, floating* gx_out, double* partial,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _binary_block(blk, n, prog, w, x, dw, dx, gy, y_out, jvp_out, gw_out, gx_out,
                          partial)
    else:
        for blk in prange(nblocks, schedule="static", num_threads=n_threads):
            _binary_block(blk, n, prog, w, x, dw, dx, gy, y_out, jvp_out, gw_out, gx_out,
                          partial)


def binary(int op, bytes fcodes, bytes gcodes, Py_ssize_t n,
           w, x,                             # IN  n elements, or 1 with w_scalar/x_scalar
           bint w_scalar, bint x_scalar,
           dw, dx,                           # IN  tangents shaped like w and x, or None
           gy,                               # IN  cotangent (n,), or None meaning ones
           y_out,                            # OUT value, or None
           jvp_out,                          # OUT J_w dw + J_x dx, or None
           gw_out,                           # OUT gy ⊗ diag(J_w) (array w), or None
           gx_out,                           # OUT gy ⊗ diag(J_x) (array x), or None
           bint want_scalar_grads=False,
           int n_threads=1):
    """One fused pass of y = f(w) ○ g(x): any of value, JVP, VJP.

    Every array is C-contiguous of the dtype of ``w``. Returns ``(gw_sum, gx_sum)``: for a
    scalar operand with ``want_scalar_grads``, its VJP ``Σ_i gy_i ∂y_i/∂operand``
    accumulated in double in a fixed block order (else 0.0).
    """
    cdef BinaryProgram prog
    cdef Py_ssize_t nblocks, blk
    cdef double* partial = NULL
    cdef double gw_sum = 0.0, gx_sum = 0.0
    cdef Py_ssize_t lw = 1 if w_scalar else n
    cdef Py_ssize_t lx = 1 if x_scalar else n
    if op < 0 or op >= N_BINARY:
        raise ValueError(f"unknown binary op code {op}")
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
    prog.op = op
    prog.nf = _check_codes(fcodes, N_UNARY)
    prog.ng = _check_codes(gcodes, N_UNARY)
    prog.fcodes = fcodes
    prog.gcodes = gcodes
    prog.w_scalar = w_scalar
    prog.x_scalar = x_scalar
    if n <= 0:
        return (0.0, 0.0)
    want_scalar_grads = want_scalar_grads and (w_scalar or x_scalar)
    prog.need_deriv = jp != NULL or gwp != NULL or gxp != NULL or want_scalar_grads
    nblocks = (n + BLOCK - 1) // BLOCK
    if want_scalar_grads:
        partial = <double*>malloc(2 * nblocks * sizeof(double))
        if partial == NULL:
            raise MemoryError()
    try:
        with nogil:
            if typenum == cnp.NPY_DOUBLE:
                _binary_run(&prog, n, <const double*>wp, <const double*>xp,
                            <const double*>dwp, <const double*>dxp, <const double*>gyp,
                            <double*>yp, <double*>jp, <double*>gwp, <double*>gxp,
                            partial, n_threads)
            else:
                _binary_run(&prog, n, <const float*>wp, <const float*>xp,
                            <const float*>dwp, <const float*>dxp, <const float*>gyp,
                            <float*>yp, <float*>jp, <float*>gwp, <float*>gxp,
                            partial, n_threads)
            if partial != NULL:
                # Merge per-block sums in block order: the same bits for every n_threads.
                for blk in range(nblocks):
                    gw_sum += partial[2 * blk]
                    gx_sum += partial[2 * blk + 1]
    finally:
        free(partial)
    return (gw_sum, gx_sum)


def binary_fast(int op, bytes fcodes, bytes gcodes, w, x, gy, bint value,
                Py_ssize_t work_per_element, Py_ssize_t threshold, int n_cores):
    """Value (``value``) or VJP ``(gw, gx)`` in one C call for plain equal-length vectors
    (``gy`` None means ones: sum_grad); None when the call needs the general path."""
    cdef int typenum
    cdef Py_ssize_t n
    cdef cnp.npy_intp dim
    if not (_is_plain_vector(w) and _is_plain_vector(x)):
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>w)
    if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
        return None
    n = cnp.PyArray_DIM(<cnp.ndarray>w, 0)
    if cnp.PyArray_TYPE(<cnp.ndarray>x) != typenum or cnp.PyArray_DIM(<cnp.ndarray>x, 0) != n:
        return None
    if gy is not None and not (_is_plain_vector(gy)
                               and cnp.PyArray_TYPE(<cnp.ndarray>gy) == typenum
                               and cnp.PyArray_DIM(<cnp.ndarray>gy, 0) == n):
        return None
    cdef int nt = 1 if n * work_per_element < threshold else n_cores
    dim = n
    if value:
        res = cnp.PyArray_EMPTY(1, &dim, typenum, 0)
        binary(op, fcodes, gcodes, n, w, x, False, False, None, None, None, res, None, None,
               None, False, nt)
        return res
    gw = cnp.PyArray_EMPTY(1, &dim, typenum, 0)
    gx = cnp.PyArray_EMPTY(1, &dim, typenum, 0)
    binary(op, fcodes, gcodes, n, w, x, False, False, None, None, gy, None, None, gw, gx,
           False, nt)
    return gw, gx


# ---------------------------------------------------------------------------------------
# Reductions (paper §4.4): sum(x) and w·x, accumulated in double in a fixed order.
# ---------------------------------------------------------------------------------------

cdef double _block_reduce(Py_ssize_t blk, Py_ssize_t n, const floating* a,
                          const floating* b) noexcept nogil:
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t k
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    if stop > n:
        stop = n
    k = start
    if b == NULL:
        while k + 4 <= stop:
            s0 += a[k]
            s1 += a[k + 1]
            s2 += a[k + 2]
            s3 += a[k + 3]
            k += 4
        while k < stop:
            s0 += a[k]
            k += 1
    else:
        while k + 4 <= stop:
            s0 += <double>a[k] * <double>b[k]
            s1 += <double>a[k + 1] * <double>b[k + 1]
            s2 += <double>a[k + 2] * <double>b[k + 2]
            s3 += <double>a[k + 3] * <double>b[k + 3]
            k += 4
        while k < stop:
            s0 += <double>a[k] * <double>b[k]
            k += 1
    return (s0 + s1) + (s2 + s3)


def reduce(a, b, int n_threads=1):
    """``sum(a)`` (``b`` None) or ``a · b`` for C-contiguous float arrays of one dtype and
    size, as a Python float accumulated in double in a fixed block order."""
    cdef int typenum = _float_typenum(a, "a")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>a)
    cdef void* ap = _data(a, typenum, n, False, "a")
    cdef void* bp = _data(b, typenum, n, False, "b")
    cdef Py_ssize_t nblocks, blk
    cdef double total = 0.0
    cdef double* partial
    if n == 0:
        return 0.0
    nblocks = (n + BLOCK - 1) // BLOCK
    partial = <double*>malloc(nblocks * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    try:
        with nogil:
            if typenum == cnp.NPY_DOUBLE:
                _reduce_run(n, <const double*>ap, <const double*>bp, partial, n_threads)
            else:
                _reduce_run(n, <const float*>ap, <const float*>bp, partial, n_threads)
            for blk in range(nblocks):
                total += partial[blk]
    finally:
        free(partial)
    return total


cdef void _reduce_run(Py_ssize_t n, const floating* a, const floating* b, double* partial,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            partial[blk] = _block_reduce(blk, n, a, b)
    else:
        for blk in prange(nblocks, schedule="static", num_threads=n_threads):
            partial[blk] = _block_reduce(blk, n, a, b)
