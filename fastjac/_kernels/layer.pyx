# cython: language_level=3
"""Loops of a layer of m ReLU neurons (``fastjac/layer.py``).

Python caller: ``fastjac/layer.py``, which checks every dtype, shape, layout and output
through ``fastjac/_validate.py`` before anything here runs. Inputs arrive as ``const``
C-contiguous buffers and are never written.

Two kinds of loop:

* the one-pass loop (``layer_block.h``): each row of X is read once and gives the m
  pre-activations, the masks, the loss terms and its share of the m gradient rows;
* the loops *between* two BLAS products (``between_*``): given Z = X Wᵀ from
  ``np.matmul``, one pass over the (N, m) array adds the bias, applies ReLU, forms the
  residual, the mask and the loss, writes the scaled error C that the second product needs
  (in place, over Z), and sums the bias gradient.

Determinism: rows are split into a fixed number of blocks that depends on the shapes only
(never on the thread count); each block sums into its own scratch slot and the slots are
merged in block order, so every result is bitwise identical for every ``n_threads`` and
every schedule. Every block function is ``_xxx_block(ctx, blk)`` with its arguments in a
struct, run by fastjac's thread pool (``pool.pxd``: ``parallel_for(n_blocks, fn, ctx,
n_threads)``); ``n_threads`` comes from the pool's one rule (``fast_threads`` here, or
``fastjac._validate.n_threads`` in ``fastjac/layer.py``).
"""

from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from libc.string cimport memcpy

import numpy as np
cimport numpy as cnp

from fastjac._kernels.outputs cimport new_output
from fastjac._kernels._common cimport floating, plain_array
from fastjac._kernels.pool cimport fast_threads, parallel_for, resolve_threads

cnp.import_array()

cdef extern from "layer_block.h" nogil:
    int FJ_LAYER_LOSS
    int FJ_LAYER_VJP
    int FJ_LAYER_ACT
    ctypedef struct fj_layer_ctx:
        const void* X
        const void* Y
        const void* A
        const void* G
        const Py_ssize_t* idx
        const double* Wt
        const double* Wd
        const double* b
        void* out
        void* gX
        double gx_scale
        Py_ssize_t N, n, m, rows_per_block
        int mode, do_gw
        double* scratch
        Py_ssize_t stride
    Py_ssize_t fj_layer_stride(Py_ssize_t n, Py_ssize_t m)
    Py_ssize_t fj_layer_mpad(Py_ssize_t m)
    void fj_layer_block_f64(const fj_layer_ctx* ctx, Py_ssize_t blk)
    void fj_layer_block_f32(const fj_layer_ctx* ctx, Py_ssize_t blk)
    int fj_layer_set_level(int level)
    ctypedef struct fj_between_ctx:
        void* Z
        const void* Y
        const void* A
        const double* b
        double scale
        Py_ssize_t N, m, rows_per_block
        int mode
        double* scratch
    void fj_between_f64(const fj_between_ctx* ctx, Py_ssize_t blk)
    void fj_between_f32(const fj_between_ctx* ctx, Py_ssize_t blk)
    ctypedef struct fj_fit_ctx:
        fj_layer_ctx kc
        void (*block)(const fj_layer_ctx*, Py_ssize_t) noexcept nogil
        const char* X
        const char* Y
        size_t isz
        const Py_ssize_t* orders
        double* Wt
        double* bd
        double* losses
        double lr
        Py_ssize_t N, n, m, batch, epochs, nb_full, nb_last
        Py_ssize_t bad_epoch, bad_step
    void fj_fit_start(fj_fit_ctx* f)
    void fj_fit_worker(void* f, Py_ssize_t blk)

cdef extern from "fj_layer_blas.h" nogil:
    int fj_blas_load()
    const char* fj_blas_name()
    void fj_blas_enter()
    void fj_blas_leave()
    void fj_gemm_f64(int ta, int tb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                     const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
                     double beta, double* C, Py_ssize_t ldc)
    void fj_gemm_f32(int ta, int tb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                     const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                     float beta, float* C, Py_ssize_t ldc)
    int fj_blas_ilp64()

cdef enum:
    # A block holds at least this much work (rows x m x n multiply-adds): enough to hide
    # its fixed costs (zeroing and merging 1 + m + m n partial sums).
    MIN_BLOCK_WORK = 1 << 16
    # ... and at least this many rows, so that merging costs at most 1/32 of the work.
    MIN_BLOCK_ROWS = 32
    MAX_BLOCKS = 256
    # scratch cap (2 MB of doubles) for wide layers
    MAX_SCRATCH_DOUBLES = 1 << 18
    # A thread of the pool is only worth waking for this much work (an upper bound on the
    # threads of one call; results do not depend on it).
    MIN_THREAD_WORK = 1 << 16
    # Scratch up to this many doubles (32 KB) lives on the stack.
    STACK_DOUBLES = 4096
    # a float32 bias of at most this many neurons is widened on the stack (loss_grad_fast)
    FAST_BIAS_MAX = 2048
    # rows per block of the loops between BLAS products (x m elements)
    BETWEEN_MIN_ELEMENTS = 1 << 14


def _set_block_level(int level):
    """Testing hook: force the one-pass loop's version (0 portable, 1 AVX2, 2 AVX-512,
    each granted only where the CPU has it; -1 the CPU's best); returns the one in force.
    Every version gives the same bits."""
    return fj_layer_set_level(level)


cdef Py_ssize_t _blocks(Py_ssize_t N, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """Number of blocks of the one-pass loop for N rows: depends on the shapes only."""
    cdef Py_ssize_t per_row = (n if n > 0 else 1) * m
    cdef Py_ssize_t nb = (N * per_row) // MIN_BLOCK_WORK
    cdef Py_ssize_t cap = MAX_SCRATCH_DOUBLES // fj_layer_stride(n, m)
    if cap > MAX_BLOCKS:
        cap = MAX_BLOCKS
    if nb > cap:
        nb = cap
    if nb > N // MIN_BLOCK_ROWS:
        nb = N // MIN_BLOCK_ROWS
    return nb if nb > 1 else 1


def blocks(Py_ssize_t N, Py_ssize_t n, Py_ssize_t m):
    """``(number of blocks, rows per block)`` of the one-pass loop's fixed partition."""
    cdef Py_ssize_t nb = _blocks(N, n, m)
    return nb, (N + nb - 1) // nb


cdef int _threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    cdef Py_ssize_t most = work // MIN_THREAD_WORK
    if most < n_threads:
        return <int>most if most > 1 else 1
    return n_threads


cdef void _onepass_block_f64(void* ctx, Py_ssize_t blk) noexcept nogil:
    fj_layer_block_f64(<const fj_layer_ctx*>ctx, blk)


cdef void _onepass_block_f32(void* ctx, Py_ssize_t blk) noexcept nogil:
    fj_layer_block_f32(<const fj_layer_ctx*>ctx, blk)


cdef void _run_onepass(fj_layer_ctx* ctx, bint f64, Py_ssize_t nblocks,
                       int n_threads) noexcept nogil:
    """Run every block (in parallel when it pays), then merge the slots in block order
    into slot ``nblocks`` (the totals)."""
    cdef Py_ssize_t k, j, mp = fj_layer_mpad(ctx.m), width
    cdef double* total = ctx.scratch + nblocks * ctx.stride
    cdef double* p
    n_threads = _threads_for(ctx.N * ctx.m * (ctx.n if ctx.n > 0 else 1), n_threads)
    if n_threads > 1 and nblocks > 1:
        # fastjac's pool: the caller and the helpers that get a core claim blocks one at a
        # time; each block writes its own rows and its own scratch slot
        parallel_for(nblocks, _onepass_block_f64 if f64 else _onepass_block_f32, ctx,
                     n_threads)
    elif f64:
        for k in range(nblocks):
            fj_layer_block_f64(ctx, k)
    else:
        for k in range(nblocks):
            fj_layer_block_f32(ctx, k)
    if ctx.mode == FJ_LAYER_ACT:
        return
    width = 1 + mp + (ctx.n * mp if ctx.do_gw else 0)
    if nblocks == 1:
        for j in range(width):
            total[j] = ctx.scratch[j]
        return
    for j in range(width):
        total[j] = 0.0
    for k in range(nblocks):
        p = ctx.scratch + k * ctx.stride
        for j in range(width):
            total[j] += p[j]


cdef void _widen_W(const floating* W, Py_ssize_t m, Py_ssize_t n, double* Wt,
                   double* Wd) noexcept nogil:
    """Wt = Wᵀ (n x mp, zero padded) and, when Wd is not NULL, Wd = W (m x n), in double."""
    cdef Py_ssize_t k, j, mp = fj_layer_mpad(m)
    for j in range(n):
        for k in range(m):
            Wt[j * mp + k] = <double>W[k * n + j]
        for k in range(m, mp):
            Wt[j * mp + k] = 0.0
    if Wd != NULL:
        for k in range(m * n):
            Wd[k] = <double>W[k]


cdef object _onepass(int mode, const floating* X, const floating* Y, const floating* A,
                     const floating* G, const floating* W, const double* b,
                     Py_ssize_t N, Py_ssize_t n, Py_ssize_t m,
                     floating* out,          # OUT activations (ACT), N x m
                     double gw_scale, floating* gW,   # OUT m x n, or NULL
                     double gb_scale, floating* gb,   # OUT m, or NULL
                     double gx_scale, floating* gX,   # OUT N x n, or NULL
                     int n_threads):
    """One pass over X. Returns Σ r² (LOSS mode), else 0.0."""
    cdef Py_ssize_t nblocks = _blocks(N, n, m)
    cdef Py_ssize_t stride = fj_layer_stride(n, m)
    cdef Py_ssize_t mp = fj_layer_mpad(m)
    # [Wt (n mp) | Wd (m n) | b (mp) | block slots ((nblocks + 1) stride)]
    cdef Py_ssize_t o_wd = n * mp, o_b = n * mp + m * n, o_s = n * mp + m * n + mp
    cdef Py_ssize_t need = o_s + (nblocks + 1) * stride
    cdef Py_ssize_t k, j
    cdef double stack[STACK_DOUBLES]
    cdef double* mem = stack
    cdef fj_layer_ctx ctx
    cdef double* total
    cdef double sse = 0.0
    if need > STACK_DOUBLES:
        mem = <double*>PyMem_RawMalloc(need * sizeof(double))
        if mem == NULL:
            raise MemoryError()
    ctx.X = X
    ctx.Y = Y
    ctx.A = A
    ctx.G = G
    ctx.idx = NULL
    ctx.Wt = mem
    ctx.Wd = mem + o_wd
    ctx.b = mem + o_b
    ctx.out = out
    ctx.gX = gX
    ctx.gx_scale = gx_scale
    ctx.N = N
    ctx.n = n
    ctx.m = m
    ctx.rows_per_block = (N + nblocks - 1) // nblocks
    ctx.mode = mode
    ctx.do_gw = gW != NULL
    ctx.scratch = mem + o_s
    ctx.stride = stride
    with nogil:
        _widen_W(W, m, n, mem, mem + o_wd if gX != NULL else <double*>NULL)
        for k in range(mp):
            mem[o_b + k] = b[k] if b != NULL and k < m else 0.0
        _run_onepass(&ctx, floating is double, nblocks, n_threads)
        total = ctx.scratch + nblocks * stride
        if mode != FJ_LAYER_ACT:
            sse = total[0]
            if gb != NULL:
                for k in range(m):
                    gb[k] = <floating>(gb_scale * total[1 + k])
            if gW != NULL:
                for k in range(m):
                    for j in range(n):
                        gW[k * n + j] = <floating>(gw_scale * total[1 + mp + j * mp + k])
    if mem != stack:
        PyMem_RawFree(mem)
    return sse


cdef inline const floating* _p2(const floating[:, ::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline floating* _w2(floating[:, ::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline const floating* _p1(const floating[::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef inline const double* _pb(const double[::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef inline floating* _w1(floating[::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef object _onepass_mv(int mode, const floating[:, ::1] X, const floating[:, ::1] Y,
                        const floating[:, ::1] A, const floating[:, ::1] G,
                        const floating[:, ::1] W, const double[::1] b,
                        floating[:, ::1] out, double gw_scale, floating[:, ::1] gW,
                        bint want_gW, double gb_scale, floating[::1] gb, double gx_scale,
                        floating[:, ::1] gX, int n_threads):
    cdef Py_ssize_t N = X.shape[0], n = X.shape[1], m = W.shape[0]
    cdef floating dummy = 0
    cdef floating* gWp = NULL
    if want_gW:
        gWp = _w2(gW)
        if gWp == NULL:
            gWp = &dummy  # an empty gW (n == 0): the sums are still skipped safely
    return _onepass(mode, _p2(X), _p2(Y), _p2(A), _p2(G), _p2(W), _pb(b), N, n, m,
                    _w2(out), gw_scale, gWp if n > 0 else NULL, gb_scale, _w1(gb),
                    gx_scale, _w2(gX), n_threads)


def onepass_f64(int mode, const double[:, ::1] X, const double[:, ::1] Y,
                const double[:, ::1] A, const double[:, ::1] G, const double[:, ::1] W,
                const double[::1] b, double[:, ::1] out, double gw_scale,
                double[:, ::1] gW, double gb_scale, double[::1] gb, double gx_scale,
                double[:, ::1] gX, int n_threads):
    """The one-pass loop (mode 0 loss + gradients, 1 activation VJP, 2 activation).
    Outputs that are None are not computed. Returns Σ r² in mode 0."""
    return _onepass_mv(mode, X, Y, A, G, W, b, out, gw_scale, gW, gW is not None,
                       gb_scale, gb, gx_scale, gX, n_threads)


def onepass_f32(int mode, const float[:, ::1] X, const float[:, ::1] Y,
                const float[:, ::1] A, const float[:, ::1] G, const float[:, ::1] W,
                const double[::1] b, float[:, ::1] out, double gw_scale,
                float[:, ::1] gW, double gb_scale, float[::1] gb, double gx_scale,
                float[:, ::1] gX, int n_threads):
    """float32 twin of ``onepass_f64`` (sums in double)."""
    return _onepass_mv(mode, X, Y, A, G, W, b, out, gw_scale, gW, gW is not None,
                       gb_scale, gb, gx_scale, gX, n_threads)


MODE_LOSS = FJ_LAYER_LOSS
MODE_VJP = FJ_LAYER_VJP
MODE_ACT = FJ_LAYER_ACT


# ---------------------------------------------------------------------------------------
# The C-level fast path of loss_grad / loss (one-pass shapes, plain arrays)
# ---------------------------------------------------------------------------------------

cdef inline bint _plain_out(object a, int ndim, int typenum, Py_ssize_t d0,
                            Py_ssize_t d1) noexcept:
    return (plain_array(a, ndim, typenum) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == d0
            and (ndim == 1 or cnp.PyArray_DIM(<cnp.ndarray>a, 1) == d1))


def loss_grad_fast(X, Y, W, b, out, n_threads, Py_ssize_t onepass_max_f64,
                   Py_ssize_t onepass_max_f32, Py_ssize_t threshold, bint want_grad=True):
    """``fastjac.layer.loss_grad`` (default ``wrt``) or, with ``want_grad=False``,
    ``loss``, in one C call; ``None`` when the call needs the general path.

    Eligible: plain (see ``_plain``) arrays X (N, n), Y (N, m), W (m, n), b (m,) of one
    float dtype, N, n >= 1, m >= 2, m n <= ``onepass_max_f64`` or ``onepass_max_f32``
    (the one-pass shapes); ``out``
    None or a tuple ``(gW_out, gb_out)`` of plain writeable arrays of the right shapes
    (or None); b float64, or float32 when the rest is; ``n_threads`` None or a positive
    int, resolved by the pool's one rule
    against ``threshold`` (N n m multiply-adds below it run serially). Outputs are written
    after the last read of any input, so an out that overlaps an input is safe.
    """
    cdef int typenum, nt
    cdef Py_ssize_t N, n, m, k
    cdef cnp.npy_intp dims[2]
    cdef double sse, scale
    cdef double bwide[FAST_BIAS_MAX]
    cdef const double* bp
    cdef const float* bf
    gW_out = gb_out = None
    if type(X) is not cnp.ndarray:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>X)
    if (typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT) or not plain_array(X, 2, typenum):
        return None
    if not (plain_array(W, 2, typenum) and plain_array(Y, 2, typenum)):
        return None
    if not plain_array(b, 1, cnp.NPY_DOUBLE):
        # the kernel reads b in double, as the general path does (widening is exact for a
        # float32 b): a float32 layer's own float32 bias stays on this path
        if typenum != cnp.NPY_FLOAT or not plain_array(b, 1, cnp.NPY_FLOAT):
            return None
        if cnp.PyArray_DIM(<cnp.ndarray>b, 0) > FAST_BIAS_MAX:
            b = cnp.PyArray_Cast(<cnp.ndarray>b, cnp.NPY_DOUBLE)
            bp = <const double*>cnp.PyArray_DATA(<cnp.ndarray>b)
        else:  # widened on the stack: no array allocated per call
            bf = <const float*>cnp.PyArray_DATA(<cnp.ndarray>b)
            for k in range(cnp.PyArray_DIM(<cnp.ndarray>b, 0)):
                bwide[k] = <double>bf[k]
            bp = bwide
    else:
        bp = <const double*>cnp.PyArray_DATA(<cnp.ndarray>b)
    N = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
    n = cnp.PyArray_DIM(<cnp.ndarray>X, 1)
    m = cnp.PyArray_DIM(<cnp.ndarray>W, 0)
    if (N == 0 or n == 0 or m < 2
            or m * n > (onepass_max_f64 if typenum == cnp.NPY_DOUBLE else onepass_max_f32)
            or cnp.PyArray_DIM(<cnp.ndarray>W, 1) != n
            or cnp.PyArray_DIM(<cnp.ndarray>Y, 0) != N
            or cnp.PyArray_DIM(<cnp.ndarray>Y, 1) != m
            or cnp.PyArray_DIM(<cnp.ndarray>b, 0) != m):
        return None
    nt = fast_threads(n_threads, N * n * m, threshold)
    if nt == 0:  # not None nor a positive int: the general path raises the error
        return None
    if want_grad:
        if out is not None:
            if type(out) is not tuple or len(out) != 2:
                return None
            gW_out, gb_out = out
            if gW_out is not None and not _plain_out(gW_out, 2, typenum, m, n):
                return None
            if gb_out is not None and not _plain_out(gb_out, 1, typenum, m, 0):
                return None
        dims[0] = m
        dims[1] = n
        if gW_out is None:
            gW_out = new_output(2, dims, typenum)
        if gb_out is None:
            gb_out = new_output(1, dims, typenum)
    elif out is not None:
        return None
    scale = 2.0 / <double>N
    if typenum == cnp.NPY_DOUBLE:
        sse = _onepass(FJ_LAYER_LOSS,
                       <const double*>cnp.PyArray_DATA(<cnp.ndarray>X),
                       <const double*>cnp.PyArray_DATA(<cnp.ndarray>Y), NULL, NULL,
                       <const double*>cnp.PyArray_DATA(<cnp.ndarray>W),
                       bp, N, n, m, NULL,
                       scale, <double*>cnp.PyArray_DATA(<cnp.ndarray>gW_out)
                       if want_grad else <double*>NULL,
                       scale, <double*>cnp.PyArray_DATA(<cnp.ndarray>gb_out)
                       if want_grad else <double*>NULL, 0.0, NULL, nt)
    else:
        sse = _onepass(FJ_LAYER_LOSS,
                       <const float*>cnp.PyArray_DATA(<cnp.ndarray>X),
                       <const float*>cnp.PyArray_DATA(<cnp.ndarray>Y), NULL, NULL,
                       <const float*>cnp.PyArray_DATA(<cnp.ndarray>W),
                       bp, N, n, m, NULL,
                       scale, <float*>cnp.PyArray_DATA(<cnp.ndarray>gW_out)
                       if want_grad else <float*>NULL,
                       scale, <float*>cnp.PyArray_DATA(<cnp.ndarray>gb_out)
                       if want_grad else <float*>NULL, 0.0, NULL, nt)
    if not want_grad:
        return sse / <double>N
    return sse / <double>N, gW_out, gb_out


# ---------------------------------------------------------------------------------------
# Between two BLAS products: one pass over the (N, m) array
# ---------------------------------------------------------------------------------------

cdef object _between(int mode, floating[:, ::1] Z, const floating[:, ::1] Y,
                     const floating[:, ::1] A, const double[::1] b, double scale,
                     double gb_scale, floating[::1] gb_out, int n_threads):
    cdef Py_ssize_t N = Z.shape[0], m = Z.shape[1], k, j
    cdef Py_ssize_t nb = (N * m) // BETWEEN_MIN_ELEMENTS
    cdef fj_between_ctx ctx
    cdef double* total
    cdef double sse = 0.0
    if nb > MAX_BLOCKS:
        nb = MAX_BLOCKS
    if nb < 1:
        nb = 1
    cdef double* mem = <double*>PyMem_RawMalloc((m + (nb + 1) * (1 + 2 * m)) * sizeof(double))
    if mem == NULL:
        raise MemoryError()
    ctx.Z = _w2(Z)
    ctx.Y = _p2(Y)
    ctx.A = _p2(A)
    ctx.b = mem
    ctx.scale = scale
    ctx.N = N
    ctx.m = m
    ctx.rows_per_block = (N + nb - 1) // nb
    ctx.mode = mode
    ctx.scratch = mem + m
    with nogil:
        for k in range(m):
            mem[k] = b[k] if b is not None else 0.0
        n_threads = _threads_for(N * m * 4, n_threads)
        if n_threads > 1 and nb > 1:
            parallel_for(nb, _between_block_f64 if floating is double else _between_block_f32,
                         &ctx, n_threads)
        else:
            for k in range(nb):
                if floating is double:
                    fj_between_f64(&ctx, k)
                else:
                    fj_between_f32(&ctx, k)
        total = ctx.scratch + nb * (1 + 2 * m)
        for j in range(1 + m):
            total[j] = 0.0
        for k in range(nb):
            for j in range(1 + m):
                total[j] += ctx.scratch[k * (1 + 2 * m) + j]
        sse = total[0]
        if gb_out is not None:
            for k in range(m):
                gb_out[k] = <floating>(gb_scale * total[1 + k])
    PyMem_RawFree(mem)
    return sse


cdef void _between_block_f64(void* ctx, Py_ssize_t blk) noexcept nogil:
    fj_between_f64(<const fj_between_ctx*>ctx, blk)


cdef void _between_block_f32(void* ctx, Py_ssize_t blk) noexcept nogil:
    fj_between_f32(<const fj_between_ctx*>ctx, blk)


def between_f64(int mode, double[:, ::1] Z, const double[:, ::1] Y, const double[:, ::1] A,
                const double[::1] b, double scale, double gb_scale, double[::1] gb_out,
                int n_threads):
    """The fused pass between the BLAS products (see the module docstring); returns Σ r²
    in mode 0 and writes gb_scale Σ c into gb_out when it is not None."""
    return _between(mode, Z, Y, A, b, scale, gb_scale, gb_out, n_threads)


def between_f32(int mode, float[:, ::1] Z, const float[:, ::1] Y, const float[:, ::1] A,
                const double[::1] b, double scale, double gb_scale, float[::1] gb_out,
                int n_threads):
    """float32 twin of ``between_f64`` (sums in double)."""
    return _between(mode, Z, Y, A, b, scale, gb_scale, gb_out, n_threads)


# ---------------------------------------------------------------------------------------
# Gradient descent with the one-pass loop
# ---------------------------------------------------------------------------------------

cdef void _fit_worker(void* ctx, Py_ssize_t blk) noexcept nogil:
    fj_fit_worker(ctx, blk)


cdef object _fit(const floating[:, ::1] X, const floating[:, ::1] Y,
                 double[:, ::1] W,       # IN/OUT m x n parameters (double)
                 double[::1] b,          # IN/OUT m
                 double lr, Py_ssize_t epochs, Py_ssize_t batch,
                 const Py_ssize_t[:, ::1] orders,   # IN row order per epoch, or None
                 double[::1] losses, int n_threads):
    """The epoch loop (layer_block.h, fj_fit_worker): every step's fixed blocks are shared
    by the threads that come, the step's sums merged in block order by the thread that
    finishes its last block, so the result is that of the serial loop, bit for bit."""
    cdef Py_ssize_t N = X.shape[0], n = X.shape[1], m = W.shape[0]
    cdef Py_ssize_t Bmax = batch if batch < N else N
    cdef Py_ssize_t nblocks = _blocks(Bmax, n, m)
    cdef Py_ssize_t stride = fj_layer_stride(n, m)
    cdef Py_ssize_t j, k, last = N % Bmax
    cdef fj_fit_ctx f
    cdef Py_ssize_t mp = fj_layer_mpad(m)
    cdef int nt
    cdef double* mem = <double*>PyMem_RawMalloc((n * mp + mp + (nblocks + 1) * stride)
                                                * sizeof(double))
    if mem == NULL:
        raise MemoryError()
    f.kc.X = NULL
    f.kc.Y = NULL
    f.kc.A = NULL
    f.kc.G = NULL
    f.kc.idx = NULL
    f.kc.Wt = mem
    f.kc.Wd = NULL
    f.kc.b = mem + n * mp
    f.kc.out = NULL
    f.kc.gX = NULL
    f.kc.gx_scale = 0.0
    f.kc.n = n
    f.kc.m = m
    f.kc.mode = FJ_LAYER_LOSS
    f.kc.do_gw = 1
    f.kc.scratch = mem + n * mp + mp
    f.kc.stride = stride
    f.block = fj_layer_block_f64 if floating is double else fj_layer_block_f32
    f.X = <const char*>_p2(X)
    f.Y = <const char*>_p2(Y)
    f.isz = sizeof(floating)
    f.orders = &orders[0, 0] if orders is not None else NULL
    f.Wt = mem
    f.bd = mem + n * mp
    f.losses = &losses[0]
    f.lr = lr
    f.N = N
    f.n = n
    f.m = m
    f.batch = Bmax
    f.epochs = epochs
    f.nb_full = nblocks
    f.nb_last = _blocks(last, n, m) if last > 0 else 0
    with nogil:
        for k in range(mp):
            f.bd[k] = b[k] if k < m else 0.0
            for j in range(n):
                f.Wt[j * mp + k] = W[k, j] if k < m else 0.0
        fj_fit_start(&f)
        nt = _threads_for(Bmax * m * (n if n > 0 else 1), n_threads)
        if nt > 1 and nblocks > 1:
            # one parallel_for for the whole loop: each thread that comes runs the worker
            parallel_for(nt, _fit_worker, &f, nt)
        else:
            fj_fit_worker(&f, 0)
        for k in range(m):
            b[k] = f.bd[k]
            for j in range(n):
                W[k, j] = f.Wt[j * mp + k]
    PyMem_RawFree(mem)
    return f.bad_epoch, f.bad_step


def fit_f64(const double[:, ::1] X, const double[:, ::1] Y, double[:, ::1] W, double[::1] b,
            double lr, Py_ssize_t epochs, Py_ssize_t batch,
            const Py_ssize_t[:, ::1] orders, double[::1] losses, int n_threads):
    """Run ``epochs`` epochs of gradient descent in place on W and b (double); returns
    ``(bad_epoch, bad_step)``, -1 when the loss and parameters stayed finite."""
    return _fit(X, Y, W, b, lr, epochs, batch, orders, losses, n_threads)


def fit_f32(const float[:, ::1] X, const float[:, ::1] Y, double[:, ::1] W, double[::1] b,
            double lr, Py_ssize_t epochs, Py_ssize_t batch,
            const Py_ssize_t[:, ::1] orders, double[::1] losses, int n_threads):
    """float32-data twin of ``fit_f64`` (parameters and sums in double)."""
    return _fit(X, Y, W, b, lr, epochs, batch, orders, losses, n_threads)


# ---------------------------------------------------------------------------------------
# The blocked BLAS path: the two products on fastjac's pool, one-thread GEMM per block
# ---------------------------------------------------------------------------------------

cdef enum:
    BLAS_MAX_BLOCKS = 8
    # the partial ∂C/∂W of blocks 1.. (block 0 writes gW itself) take at most this many bytes
    BLAS_MAX_PARTIAL_BYTES = 1 << 26

# rows per block at least, and multiply-adds per block at least (N m n / blocks); variables
# only so that tests can send small shapes down the path (_set_blas_blocking)
cdef Py_ssize_t _blas_min_rows = 256
cdef Py_ssize_t _blas_min_work = 1 << 22
cdef bint _blas_enabled = True


def _set_blas_blocking(min_rows=None, min_work=None, enabled=None):
    """Testing hook: the blocked BLAS path's minimum rows and work per block, and whether
    it is used at all (off: np.matmul, as with a BLAS it cannot call). None leaves a value;
    returns the previous ``(min_rows, min_work, enabled)``."""
    global _blas_min_rows, _blas_min_work, _blas_enabled
    prev = (_blas_min_rows, _blas_min_work, bool(_blas_enabled))
    if min_rows is not None:
        _blas_min_rows = max(1, int(min_rows))
    if min_work is not None:
        _blas_min_work = max(1, int(min_work))
    if enabled is not None:
        _blas_enabled = bool(enabled)
    return prev


ctypedef struct _blas_ctx:
    const void* X
    const void* W
    const void* G
    void* Z
    void* gW
    void* gX
    void* parts
    fj_between_ctx bt
    Py_ssize_t N, n, m, rows
    int f64


cdef bint _blas_on() noexcept:
    # on where a BLAS it can call is loaded and fastjac's pool may run more than one thread
    # (in a serial build, or with FASTJAC_NUM_THREADS=1, np.matmul keeps BLAS's own threads)
    return _blas_enabled and fj_blas_load() and resolve_threads(0, 1 << 40, 0) > 1


def blas_library():
    """The BLAS library the blocked path calls (its file name), or None when the path is
    off: no OpenBLAS among the loaded libraries, or fastjac's pool limited to one thread."""
    if not _blas_on():
        return None
    return fj_blas_name().decode("utf-8", "replace")


def blas_blocks(Py_ssize_t N, Py_ssize_t n, Py_ssize_t m, Py_ssize_t itemsize):
    """Blocks of the blocked BLAS path for these shapes: depends on the shapes only (0 or 1:
    the path is not used)."""
    cdef Py_ssize_t nb = N // _blas_min_rows, cap
    if m * n > 0 and nb > N * m * n // _blas_min_work:
        nb = N * m * n // _blas_min_work
    if nb > BLAS_MAX_BLOCKS:
        nb = BLAS_MAX_BLOCKS
    if m * n > 0:
        cap = 1 + BLAS_MAX_PARTIAL_BYTES // (m * n * itemsize)
        if nb > cap:
            nb = cap
    return nb if nb > 1 else 1


cdef void _blas_block(void* p, Py_ssize_t blk) noexcept nogil:
    cdef _blas_ctx* ctx = <_blas_ctx*>p
    cdef Py_ssize_t n = ctx.n, m = ctx.m
    cdef Py_ssize_t r0 = blk * ctx.rows
    cdef Py_ssize_t R = ctx.N - r0 if ctx.N - r0 < ctx.rows else ctx.rows
    cdef fj_between_ctx bc = ctx.bt
    cdef size_t isz = sizeof(double) if ctx.f64 else sizeof(float)
    cdef char* Z = <char*>ctx.Z + r0 * m * isz
    cdef const char* X = <const char*>ctx.X + r0 * n * isz
    cdef char* gWp = NULL
    if ctx.gW != NULL:
        gWp = <char*>ctx.gW if blk == 0 else <char*>ctx.parts + (blk - 1) * m * n * isz
    # Z rows = X rows Wᵀ (or the cotangent's rows, VJP)
    if bc.mode == FJ_LAYER_VJP:
        memcpy(Z, <const char*>ctx.G + r0 * m * isz, R * m * isz)
    elif ctx.f64:
        fj_gemm_f64(0, 1, R, m, n, <const double*>X, n, <const double*>ctx.W, n, 0.0,
                    <double*>Z, m)
    else:
        fj_gemm_f32(0, 1, R, m, n, <const float*>X, n, <const float*>ctx.W, n, 0.0,
                    <float*>Z, m)
    # the fused pass over the block's rows (its own scratch slot)
    bc.Z = Z
    if bc.Y != NULL:
        bc.Y = <const char*>bc.Y + r0 * m * isz
    if bc.A != NULL:
        bc.A = <const char*>bc.A + r0 * m * isz
    bc.N = R
    bc.rows_per_block = R
    bc.scratch = ctx.bt.scratch + blk * (1 + 2 * m)
    if ctx.f64:
        fj_between_f64(&bc, 0)
    else:
        fj_between_f32(&bc, 0)
    if bc.mode != FJ_LAYER_ACT:
        # this block's share of ∂W = Zᵀ X (Z holds the scaled c) and its rows of ∂X = Z W
        if ctx.f64:
            if gWp != NULL:
                fj_gemm_f64(1, 0, m, n, R, <const double*>Z, m, <const double*>X, n, 0.0,
                            <double*>gWp, n)
            if ctx.gX != NULL:
                fj_gemm_f64(0, 0, R, n, m, <const double*>Z, m, <const double*>ctx.W, n, 0.0,
                            <double*>ctx.gX + r0 * n, n)
        else:
            if gWp != NULL:
                fj_gemm_f32(1, 0, m, n, R, <const float*>Z, m, <const float*>X, n, 0.0,
                            <float*>gWp, n)
            if ctx.gX != NULL:
                fj_gemm_f32(0, 0, R, n, m, <const float*>Z, m, <const float*>ctx.W, n, 0.0,
                            <float*>ctx.gX + r0 * n, n)


cdef object _blas_path(int mode, const floating[:, ::1] X, const floating[:, ::1] Y,
                       const floating[:, ::1] A, const floating[:, ::1] G,
                       const floating[:, ::1] W, const double[::1] b,
                       floating[:, ::1] Z, double scale, double gb_scale,
                       floating[:, ::1] gW, floating[::1] gb, floating[:, ::1] gX,
                       int n_threads):
    cdef Py_ssize_t N = Z.shape[0], m = Z.shape[1], n = W.shape[1]
    cdef Py_ssize_t nb = blas_blocks(N, n, m, sizeof(floating))
    cdef Py_ssize_t k, j, i, slot = 1 + 2 * m, mn = m * n
    cdef _blas_ctx ctx
    cdef double s, sse = 0.0
    cdef floating* out
    cdef floating* parts
    cdef double* mem
    if nb < 2 or N == 0 or n == 0 or m == 0 or not _blas_on():
        return None
    if not fj_blas_ilp64() and (N > 0x7fffffff or n > 0x7fffffff or m > 0x7fffffff):
        return None
    mem = <double*>PyMem_RawMalloc((m + nb * slot + 1) * sizeof(double))
    if mem == NULL:
        raise MemoryError()
    ctx.parts = NULL
    if gW is not None and nb > 1:
        ctx.parts = PyMem_RawMalloc((nb - 1) * mn * sizeof(floating))
        if ctx.parts == NULL:
            PyMem_RawFree(mem)
            raise MemoryError()
    ctx.X = _p2(X)
    ctx.W = _p2(W)
    ctx.G = _p2(G)
    ctx.Z = _w2(Z)
    ctx.gW = _w2(gW)
    ctx.gX = _w2(gX)
    ctx.N = N
    ctx.n = n
    ctx.m = m
    ctx.rows = (N + nb - 1) // nb
    ctx.f64 = floating is double
    ctx.bt.Z = NULL
    ctx.bt.Y = _p2(Y)
    ctx.bt.A = _p2(A)
    ctx.bt.b = mem
    ctx.bt.scale = scale
    ctx.bt.N = 0
    ctx.bt.m = m
    ctx.bt.rows_per_block = 0
    ctx.bt.mode = mode
    ctx.bt.scratch = mem + m
    fj_blas_enter()  # with the GIL held
    with nogil:
        for k in range(m):
            mem[k] = b[k] if b is not None else 0.0
        if n_threads > nb:
            n_threads = <int>nb
        if n_threads > 1:
            parallel_for(nb, _blas_block, &ctx, n_threads)
        else:
            for k in range(nb):
                _blas_block(&ctx, k)
        # merge the blocks' partial sums in block order
        for k in range(nb):
            sse += ctx.bt.scratch[k * slot]
        if gb is not None:
            for j in range(m):
                s = 0.0
                for k in range(nb):
                    s += ctx.bt.scratch[k * slot + 1 + j]
                gb[j] = <floating>(gb_scale * s)
        if ctx.parts != NULL:
            out = <floating*>ctx.gW
            parts = <floating*>ctx.parts
            for i in range(mn):
                s = <double>out[i]
                for k in range(nb - 1):
                    s += <double>parts[k * mn + i]
                out[i] = <floating>s
    fj_blas_leave()
    PyMem_RawFree(ctx.parts)
    PyMem_RawFree(mem)
    return sse


def blas_f64(int mode, const double[:, ::1] X, const double[:, ::1] Y, const double[:, ::1] A,
             const double[:, ::1] G, const double[:, ::1] W, const double[::1] b,
             double[:, ::1] Z, double scale, double gb_scale, double[:, ::1] gW,
             double[::1] gb, double[:, ::1] gX, int n_threads):
    """The blocked BLAS path (modes as ``onepass_f64``): ``blas_blocks`` fixed row blocks on
    fastjac's pool; each runs ``Z = X Wᵀ`` (or copies G, VJP) for its rows with one-thread
    GEMM, the fused pass (``between``), its partial ``Zᵀ X`` and its rows of ``Z W``; the
    partials are merged in block order, so the result does not depend on ``n_threads``.
    Z (N, m) is scratch (ACT: the activations). Returns Σ r² (0.0 outside LOSS), or None
    when the path is off for these shapes or this BLAS (then nothing was written)."""
    return _blas_path(mode, X, Y, A, G, W, b, Z, scale, gb_scale, gW, gb, gX, n_threads)


def blas_f32(int mode, const float[:, ::1] X, const float[:, ::1] Y, const float[:, ::1] A,
             const float[:, ::1] G, const float[:, ::1] W, const double[::1] b,
             float[:, ::1] Z, double scale, double gb_scale, float[:, ::1] gW,
             float[::1] gb, float[:, ::1] gX, int n_threads):
    """float32 twin of ``blas_f64`` (products in float32, as np.matmul's; sums in double)."""
    return _blas_path(mode, X, Y, A, G, W, b, Z, scale, gb_scale, gW, gb, gX, n_threads)
