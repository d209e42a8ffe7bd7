# cython: language_level=3
"""Loops of the batched ReLU neuron (paper §5 and §6).

Python caller: ``fastjac/neuron.py``, which checks every dtype, shape, layout and output
through ``fastjac/_validate.py`` before anything here runs. Inputs arrive as ``const``
C-contiguous memoryviews (read-only arrays work) and are never written.

Notation, per row i of X (N x n): z_i = w·x_i + b, the activation max(0, z_i), the
residual r_i = y_i - max(0, z_i), and for active rows (z_i > 0) the error e_i = z_i - y_i
(so r_i^2 = e_i^2). ReLU'(0) = 0: a row with z_i == 0 is inactive (the paper's z <= 0
branch).

One pass: each row of X is loaded once; its dot product and, for an active row, the
update of the gradient sum Σ e_i x_i use it while it is in cache. No N-sized temporary.

Determinism: the N rows are split into ``blocks(N, n)`` blocks of equal size (the last may
be smaller), a partition that depends on N and n only, never on the thread count. Each
block sums into its own buffer of n + 2 doubles, and the buffers are merged into the
totals in block order, so every result is bitwise identical for every ``n_threads``.
There are at most MAX_BLOCKS blocks (fewer for very long rows), so the scratch memory is
O(n) whatever N is, and a call is one job of fastjac's thread pool (pool.pxd), whatever
the number of blocks.

Arithmetic: w is widened to double once per call; float32 rows are widened on load; every
sum accumulates in double (the dot product in four independent accumulators so that it
pipelines and vectorises without -ffast-math); results are rounded once on store.

Special values follow the NumPy expression ``c = 2/N * r * (z > 0); gw = c @ X``: every
row adds c_i x_i to the gradient sum, with c_i = e_i for an active row and
c_i = (r_i * 0) for an inactive one. That weight is +-0 (an exact no-op) unless y_i is not
finite, and 0 * x_i is NaN where x_i is infinite, as in NumPy. A NaN z counts as active,
so its error, and everything it touches, is NaN.
"""

from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc

import numpy as np
cimport numpy as cnp

from fastjac._kernels._common cimport BLOCK, floating, plain_array, relu, relu_deriv
from fastjac._kernels.outputs cimport new_output
from fastjac._kernels.pool cimport fast_threads, parallel_for

cnp.import_array()

cdef extern from "neuron_block.h" nogil:
    # The hot loop of _block_sums (no gX) in C: a portable version and an AVX2 one chosen
    # at the first call; bitwise the same results as the loop below (see there).
    int FJ_NEURON_C_BLOCK
    void fj_block_sums_f64(const double* X, const double* y, const Py_ssize_t* idx,
                           Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double* w,
                           double b, int do_gw, int stream, double* part)
    void fj_block_sums_f32(const float* X, const float* y, const Py_ssize_t* idx,
                           Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double* w,
                           double b, int do_gw, int stream, double* part)
    int fj_neuron_set_level(int level)

cdef enum:
    # A block holds at least this many elements of X (64 KB of float64): enough work to
    # hide a block's fixed costs (zeroing and merging n + 2 partial sums).
    MIN_BLOCK_ELEMENTS = 2 * BLOCK
    # At most this many blocks per call: plenty to balance any realistic thread count,
    # and a bound on the scratch (MAX_BLOCKS * (n + 2) doubles) ...
    MAX_BLOCKS = 256
    # ... which is further capped at this many doubles (2 MB) for very long rows.
    MAX_SCRATCH_DOUBLES = 1 << 18
    # A thread is only worth using for this many elements of X: below it, waking a helper
    # of the pool costs more than the work it would take over.
    # n_threads is an upper bound; results do not depend on it either way.
    MIN_THREAD_ELEMENTS = 1 << 15


# An X of more bytes than this is taken to be read from memory rather than from a core's
# cache (4 MB: above the L2 of current x86 cores): the C loop then does each row's dot
# product in turn, one sequential stream, instead of four rows in step (neuron_block.h; the
# same bits either way). Measured on Zen 4 (1 MB L2), one thread: in step is ~10% faster
# for an X in L2 (1000 x 100 float64) and half the speed from memory (1e5 x 100).
cdef size_t _stream_min_bytes = 1 << 22


def _set_stream_min_bytes(size_t nbytes):
    """Testing hook: set the X size above which the C loop streams (0: always, so that
    tests compare both read orders on small inputs); returns the previous value."""
    global _stream_min_bytes
    cdef size_t old = _stream_min_bytes
    _stream_min_bytes = nbytes
    return old


def _set_block_level(int level):
    """Testing hook: force the hot loop's version (0 portable, 1 AVX2 where the CPU has it,
    -1 the CPU's best) and return the one in force. Every version gives the same bits."""
    return fj_neuron_set_level(level) if FJ_NEURON_C_BLOCK else -1


cdef Py_ssize_t _max_blocks(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t cap = MAX_SCRATCH_DOUBLES // (n + 2)
    if cap > MAX_BLOCKS:
        cap = MAX_BLOCKS
    return cap if cap > 1 else 1


cdef Py_ssize_t _blocks(Py_ssize_t N, Py_ssize_t n) noexcept nogil:
    """Number of blocks for N rows of n elements: one per MIN_BLOCK_ELEMENTS, bounded."""
    cdef Py_ssize_t per_row = n if n > 0 else 1
    cdef Py_ssize_t nb = (N * per_row) // MIN_BLOCK_ELEMENTS
    cdef Py_ssize_t cap = _max_blocks(n)
    if nb > cap:
        nb = cap
    if nb > N:
        nb = N
    return nb if nb > 1 else 1


cdef inline Py_ssize_t _block_rows(Py_ssize_t N, Py_ssize_t nblocks) noexcept nogil:
    return (N + nblocks - 1) // nblocks


def blocks(Py_ssize_t N, Py_ssize_t n):
    """``(number of blocks, rows per block)`` of the fixed row partition of an (N, n) X."""
    cdef Py_ssize_t nb = _blocks(N, n)
    return nb, _block_rows(N, nb)


# ---------------------------------------------------------------------------------------
# Point mathematics (noexcept nogil; the loops below only walk buffers and call these)
# ---------------------------------------------------------------------------------------

cdef inline double _dot(const floating* x, const double* w, Py_ssize_t n) noexcept nogil:
    """w·x in double with four independent accumulators (pipelines, and pairs vectorise)."""
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef Py_ssize_t j, m = n - (n & 3)
    for j in range(0, m, 4):
        a0 += <double>x[j] * w[j]
        a1 += <double>x[j + 1] * w[j + 1]
        a2 += <double>x[j + 2] * w[j + 2]
        a3 += <double>x[j + 3] * w[j + 3]
    for j in range(m, n):
        a0 += <double>x[j] * w[j]
    return (a0 + a1) + (a2 + a3)


cdef inline void _axpy(double* g, double a, const floating* x, Py_ssize_t n) noexcept nogil:
    """g += a x (element-wise independent: vectorises as written)."""
    cdef Py_ssize_t j
    for j in range(n):
        g[j] += a * <double>x[j]


cdef inline void _axpy4(double* g, double a0, const floating* x0, double a1,
                        const floating* x1, double a2, const floating* x2, double a3,
                        const floating* x3, Py_ssize_t n) noexcept nogil:
    """g += (a0 x0 + a1 x1) + (a2 x2 + a3 x3): one load and store of g for four rows."""
    cdef Py_ssize_t j
    for j in range(n):
        g[j] += ((a0 * <double>x0[j] + a1 * <double>x1[j])
                 + (a2 * <double>x2[j] + a3 * <double>x3[j]))


cdef inline double _sq_residual(double z, double y, double* c) noexcept nogil:
    """Return r² = (y - max(0, z))², and set c, the row's weight in the gradient sums.

    c is the error e = z - y for an active row (z > 0), and ``(0 - y) * 0`` for an inactive
    one (z <= 0): +-0, or NaN when y is not finite, as NumPy's ``r * (z > 0)`` gives. A NaN z
    is not inactive, so its c and r² are NaN. Written as selects, not branches: whether a
    row is active is data-dependent and would mispredict.
    """
    cdef bint inactive = z <= 0.0
    cdef double e = z - y
    cdef double r = -y if inactive else e
    c[0] = (0.0 - y) * 0.0 if inactive else e
    return r * r


cdef inline void _scaled_copy(floating* out, double a, const double* w,
                              Py_ssize_t n) noexcept nogil:
    """out = a w, rounded to the output type."""
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = <floating>(a * w[j])


cdef inline bint _finite(double v) noexcept nogil:
    return v - v == 0.0


# ---------------------------------------------------------------------------------------
# Block loops
# ---------------------------------------------------------------------------------------

cdef void _block_sums(const floating* X,      # IN  rows of the batch, n per row
                      const floating* y,      # IN  targets
                      const Py_ssize_t* idx,  # IN  row numbers of the batch, or NULL: 0..
                      Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                      const double* w,        # IN  weights (double)
                      double b,
                      bint do_gw,
                      bint stream,            # IN  X is larger than a cache (C loop only)
                      floating* gX,           # OUT rows r0..r1 of gX, or NULL
                      double gx_scale,
                      double* part,           # OUT [Σ r², Σ c, Σ c x (n)] of this block
                      ) noexcept nogil:
    """Sums over rows r0..r1, four rows at a time (groups start at r0, so at fixed rows).

    Four independent dot products give the out-of-order core work to overlap, and the
    gradient buffer is loaded and stored once per four rows. Every row adds c x to the
    gradient sum, c = +-0 for an inactive row, which is exact (adding +-0 changes nothing)
    and mirrors NumPy's ``c @ X`` for non-finite inputs.
    """
    cdef double sse = 0.0, gb = 0.0, c0, c1, c2, c3, s0, s1, s2, s3
    cdef double* g = part + 2
    cdef const floating* x0
    cdef const floating* x1
    cdef const floating* x2
    cdef const floating* x3
    cdef Py_ssize_t i, j, row0, row1, row2, row3
    if FJ_NEURON_C_BLOCK and gX == NULL:
        if floating is double:
            fj_block_sums_f64(X, y, idx, r0, r1, n, w, b, do_gw, stream, part)
        else:
            fj_block_sums_f32(X, y, idx, r0, r1, n, w, b, do_gw, stream, part)
        return
    for j in range(n):
        g[j] = 0.0
    i = r0
    while i + 3 < r1:
        if idx == NULL:
            row0 = i
            row1 = i + 1
            row2 = i + 2
            row3 = i + 3
        else:
            row0 = idx[i]
            row1 = idx[i + 1]
            row2 = idx[i + 2]
            row3 = idx[i + 3]
        x0 = X + row0 * n
        x1 = X + row1 * n
        x2 = X + row2 * n
        x3 = X + row3 * n
        s0 = _sq_residual(_dot(x0, w, n) + b, <double>y[row0], &c0)
        s1 = _sq_residual(_dot(x1, w, n) + b, <double>y[row1], &c1)
        s2 = _sq_residual(_dot(x2, w, n) + b, <double>y[row2], &c2)
        s3 = _sq_residual(_dot(x3, w, n) + b, <double>y[row3], &c3)
        sse += s0
        sse += s1
        sse += s2
        sse += s3
        gb += c0
        gb += c1
        gb += c2
        gb += c3
        if do_gw:
            _axpy4(g, c0, x0, c1, x1, c2, x2, c3, x3, n)
        if gX != NULL:
            _scaled_copy(gX + i * n, gx_scale * c0, w, n)
            _scaled_copy(gX + (i + 1) * n, gx_scale * c1, w, n)
            _scaled_copy(gX + (i + 2) * n, gx_scale * c2, w, n)
            _scaled_copy(gX + (i + 3) * n, gx_scale * c3, w, n)
        i += 4
    while i < r1:
        row0 = i if idx == NULL else idx[i]
        x0 = X + row0 * n
        s0 = _sq_residual(_dot(x0, w, n) + b, <double>y[row0], &c0)
        sse += s0
        gb += c0
        if do_gw:
            _axpy(g, c0, x0, n)
        if gX != NULL:
            _scaled_copy(gX + i * n, gx_scale * c0, w, n)
        i += 1
    part[0] = sse
    part[1] = gb


cdef void _sums(const floating* X, const floating* y, const Py_ssize_t* idx,
                Py_ssize_t N, Py_ssize_t n, const double* w, double b, bint do_gw,
                bint stream,        # IN  X (all of it, for a mini-batch) > STREAM_MIN_BYTES
                floating* gX, double gx_scale,
                double* total,      # OUT [Σ r², Σ c, Σ c x (n)]
                double* scratch,    # scratch of _max_blocks(n) * (n + 2) doubles
                int n_threads) noexcept nogil:
    """The fused loss + gradient sums over N rows: fixed blocks, merged in block order."""
    cdef Py_ssize_t nblocks = _blocks(N, n)
    cdef Py_ssize_t rb = _block_rows(N, nblocks)
    cdef Py_ssize_t k, j, stride = n + 2
    cdef double* p
    cdef _NeuronJob job
    n_threads = _threads_for(N * (n if n > 0 else 1), n_threads)
    if n_threads > 1 and nblocks > 1:
        # fastjac's pool: the caller and the helpers that get a core claim blocks one at a
        # time; each block writes its own buffer, so the results do not depend on which
        # thread ran which block
        job.f32 = floating is float
        job.X = X
        job.y = y
        job.idx = idx
        job.N = N
        job.n = n
        job.rb = rb
        job.w = w
        job.b = b
        job.do_gw = do_gw
        job.stream = stream
        job.gX = gX
        job.gx_scale = gx_scale
        job.scratch = scratch
        parallel_for(nblocks, _sums_job_block, &job, n_threads)
    else:
        for k in range(nblocks):
            _block_sums(X, y, idx, k * rb, (k + 1) * rb if (k + 1) * rb < N else N, n,
                        w, b, do_gw, stream, gX, gx_scale, scratch + k * stride)
    for j in range(n + 2):
        total[j] = 0.0
    for k in range(nblocks):
        p = scratch + k * stride
        total[0] += p[0]
        total[1] += p[1]
        if do_gw:
            for j in range(2, n + 2):
                total[j] += p[j]


cdef struct _NeuronJob:
    # the arguments of a parallel _sums or _forward call, for the pool's block functions
    bint f32
    const void* X
    const void* y
    const Py_ssize_t* idx
    Py_ssize_t N, n, rb
    const double* w
    double b
    bint do_gw
    bint stream
    void* gX
    double gx_scale
    double* scratch
    void* act
    void* mask


cdef void _sums_job_block(void* ctx, Py_ssize_t k) noexcept nogil:
    cdef _NeuronJob* j = <_NeuronJob*>ctx
    cdef Py_ssize_t r0 = k * j.rb
    cdef Py_ssize_t r1 = r0 + j.rb if r0 + j.rb < j.N else j.N
    if j.f32:
        _block_sums(<const float*>j.X, <const float*>j.y, j.idx, r0, r1, j.n, j.w, j.b,
                    j.do_gw, j.stream, <float*>j.gX, j.gx_scale, j.scratch + k * (j.n + 2))
    else:
        _block_sums(<const double*>j.X, <const double*>j.y, j.idx, r0, r1, j.n, j.w, j.b,
                    j.do_gw, j.stream, <double*>j.gX, j.gx_scale, j.scratch + k * (j.n + 2))


cdef void _forward_job_block(void* ctx, Py_ssize_t k) noexcept nogil:
    cdef _NeuronJob* j = <_NeuronJob*>ctx
    cdef Py_ssize_t r0 = k * j.rb
    cdef Py_ssize_t r1 = r0 + j.rb if r0 + j.rb < j.N else j.N
    if j.f32:
        _block_forward(<const float*>j.X, r0, r1, j.n, j.w, j.b, <float*>j.act,
                       <float*>j.mask)
    else:
        _block_forward(<const double*>j.X, r0, r1, j.n, j.w, j.b, <double*>j.act,
                       <double*>j.mask)


cdef inline bint _streams(Py_ssize_t N, Py_ssize_t n, size_t itemsize) noexcept nogil:
    """Whether an (N, n) X of ``itemsize``-byte elements is read from memory (see
    _stream_min_bytes): it decides the C loop's order of reads, never a result."""
    return <size_t>N * <size_t>n * itemsize > _stream_min_bytes


cdef int _threads_for(Py_ssize_t elements, int n_threads) noexcept nogil:
    """The threads to use for ``elements`` of work: at most n_threads, at least one."""
    cdef Py_ssize_t most = elements // MIN_THREAD_ELEMENTS
    if most < n_threads:
        return <int>most if most > 1 else 1
    return n_threads


cdef inline const floating* _ptr2(const floating[:, ::1] A, floating* dummy) noexcept nogil:
    # &A[0, 0] is out of bounds for an empty array (and a debug build checks it)
    if A.shape[0] == 0 or A.shape[1] == 0:
        return dummy
    return &A[0, 0]


cdef inline const floating* _ptr1(const floating[::1] a, floating* dummy) noexcept nogil:
    if a.shape[0] == 0:
        return dummy
    return &a[0]


cdef double* _widen(const floating[::1] w, double* dst) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(w.shape[0]):
        dst[j] = <double>w[j]
    return dst


# ---------------------------------------------------------------------------------------
# loss + gradient sums
# ---------------------------------------------------------------------------------------

cdef enum:
    # Scratch up to this many doubles (8 KB) lives on the stack: small batches (one block)
    # then cost no allocation at all.
    STACK_DOUBLES = 1024


cdef int _loss_grad_ptr(const floating* X, const floating* y, const floating* w,
                        Py_ssize_t N, Py_ssize_t n, double b,
                        double gw_scale, floating* gw,   # OUT gw_scale Σ c x, or NULL
                        double gx_scale, floating* gX,   # OUT gx_scale c_i w, or NULL
                        int n_threads,
                        double* sums,                    # OUT [Σ r², Σ c]
                        ) except -1:
    """The fused loss + gradient pass over pointers (X, y, w valid for N x n, N, n)."""
    cdef Py_ssize_t nblocks = _blocks(N, n), j
    cdef Py_ssize_t need = (nblocks + 1) * (n + 2) + n
    cdef double stack[STACK_DOUBLES]
    cdef double* mem = stack
    cdef const double* wd
    if need > STACK_DOUBLES:
        mem = <double*>PyMem_RawMalloc(need * sizeof(double))
        if mem == NULL:
            raise MemoryError()
    cdef double* total = mem + n
    cdef double* scratch = total + (n + 2)
    with nogil:
        if floating is double:
            wd = w  # no widening needed: read in place (gw is written after the last read)
        else:
            wd = _widen_ptr(w, mem, n)
        _sums(X, y, NULL, N, n, wd, b, gw != NULL, _streams(N, n, sizeof(floating)), gX,
              gx_scale, total, scratch, n_threads)
        if gw != NULL:
            for j in range(n):
                gw[j] = <floating>(gw_scale * total[2 + j])
        sums[0] = total[0]
        sums[1] = total[1]
    if mem != stack:
        PyMem_RawFree(mem)
    return 0


cdef double* _widen_ptr(const floating* w, double* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = <double>w[j]
    return dst


cdef object _loss_grad_sums(const floating[:, ::1] X, const floating[::1] y,
                            const floating[::1] w, double b,
                            double gw_scale, floating[::1] gw_out,
                            double gx_scale, floating[:, ::1] gX_out, int n_threads):
    cdef Py_ssize_t N = X.shape[0], n = X.shape[1]
    cdef floating dummy = 0
    cdef floating* gX = NULL
    cdef floating* gw = NULL
    cdef double sums[2]
    if gX_out is not None and N > 0 and n > 0:
        gX = &gX_out[0, 0]
    if gw_out is not None:
        gw = &gw_out[0] if n > 0 else &dummy
    _loss_grad_ptr(_ptr2(X, &dummy), _ptr1(y, &dummy), _ptr1(w, &dummy), N, n, b,
                   gw_scale, gw, gx_scale, gX, n_threads, sums)
    return sums[0], sums[1]


# ---------------------------------------------------------------------------------------
# The C-level fast path of the public functions: plain arrays, no memoryviews
# ---------------------------------------------------------------------------------------

_np_floating = np.floating


def loss_grad_fast(X, y, w, b, gw_out, n_threads, Py_ssize_t threshold, bint want_grad=True):
    """``fastjac.neuron.loss_grad`` (default ``wrt``) or, with ``want_grad=False``,
    ``loss``, for the common call in one C call; ``None`` when it needs the general path.

    Eligible: ``X`` (N, n), ``y`` (N,), ``w`` (n,) plain arrays (see ``plain_array`` in _common.pxd) of one
    float dtype with N, n >= 1, ``b`` a float or a NumPy floating scalar, ``gw_out`` None or a plain writeable
    (n,) array of that dtype, ``n_threads`` None or a positive int. Anything else
    (conversions, errors and their messages, other dtypes, empty batches) returns None.
    An ``gw_out`` that overlaps an input is safe: the kernel writes gw after its last read.
    """
    cdef int typenum, nt
    cdef Py_ssize_t N, n
    cdef cnp.npy_intp dim
    cdef double sums[2]
    cdef double scale, bd
    # b: a Python float or a NumPy floating scalar (a bias kept as np.float64/np.float32 in
    # a training loop; it took the general path and cost ~10 us); anything else goes there
    if type(b) is float:
        bd = <double>b
    elif isinstance(b, _np_floating):
        bd = float(b)
    else:
        return None
    if type(X) is not cnp.ndarray:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>X)
    if (typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT) or not plain_array(X, 2, typenum):
        return None
    N = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
    n = cnp.PyArray_DIM(<cnp.ndarray>X, 1)
    if N == 0 or n == 0:
        return None
    if not (plain_array(y, 1, typenum) and cnp.PyArray_DIM(<cnp.ndarray>y, 0) == N
            and plain_array(w, 1, typenum) and cnp.PyArray_DIM(<cnp.ndarray>w, 0) == n):
        return None
    if not want_grad:
        if gw_out is not None:
            return None
    elif gw_out is None:
        dim = n
        gw_out = new_output(1, &dim, typenum)
    elif not (plain_array(gw_out, 1, typenum) and cnp.PyArray_DIM(<cnp.ndarray>gw_out, 0) == n
              and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>gw_out)):
        return None
    nt = fast_threads(n_threads, N * n, threshold)
    if nt == 0:
        return None
    scale = 2.0 / <double>N
    if typenum == cnp.NPY_DOUBLE:
        _loss_grad_ptr(<const double*>cnp.PyArray_DATA(<cnp.ndarray>X),
                       <const double*>cnp.PyArray_DATA(<cnp.ndarray>y),
                       <const double*>cnp.PyArray_DATA(<cnp.ndarray>w), N, n, bd,
                       scale, <double*>cnp.PyArray_DATA(<cnp.ndarray>gw_out)
                       if want_grad else <double*>NULL, 0.0, <double*>NULL, nt, sums)
    else:
        _loss_grad_ptr(<const float*>cnp.PyArray_DATA(<cnp.ndarray>X),
                       <const float*>cnp.PyArray_DATA(<cnp.ndarray>y),
                       <const float*>cnp.PyArray_DATA(<cnp.ndarray>w), N, n, bd,
                       scale, <float*>cnp.PyArray_DATA(<cnp.ndarray>gw_out)
                       if want_grad else <float*>NULL, 0.0, <float*>NULL, nt, sums)
    if not want_grad:
        return sums[0] / <double>N
    return sums[0] / <double>N, gw_out, scale * sums[1]


def loss_grad_sums_f64(const double[:, ::1] X, const double[::1] y, const double[::1] w,
                       double b, double gw_scale, double[::1] gw_out, double gx_scale,
                       double[:, ::1] gX_out, int n_threads):
    """(Σ r², Σ e) and, into the outputs that are not None, gw_scale Σ e x and gx_scale c w."""
    return _loss_grad_sums(X, y, w, b, gw_scale, gw_out, gx_scale, gX_out, n_threads)


def loss_grad_sums_f32(const float[:, ::1] X, const float[::1] y, const float[::1] w,
                       double b, double gw_scale, float[::1] gw_out, double gx_scale,
                       float[:, ::1] gX_out, int n_threads):
    """float32 twin of ``loss_grad_sums_f64`` (sums in double)."""
    return _loss_grad_sums(X, y, w, b, gw_scale, gw_out, gx_scale, gX_out, n_threads)


# ---------------------------------------------------------------------------------------
# Forward pass: activation and the ReLU mask (the diagonal of ∂ max(0, z)/∂z)
# ---------------------------------------------------------------------------------------

cdef void _block_forward(const floating* X, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                         const double* w, double b,
                         floating* act,    # OUT max(0, z) or NULL
                         floating* mask,   # OUT ReLU'(z) or NULL
                         ) noexcept nogil:
    cdef Py_ssize_t i
    cdef double z
    for i in range(r0, r1):
        z = _dot(X + i * n, w, n) + b
        if act != NULL:
            act[i] = <floating>relu(z)
        if mask != NULL:
            mask[i] = <floating>relu_deriv(z)


cdef object _forward(const floating[:, ::1] X, const floating[::1] w, double b,
                     floating[::1] act_out, floating[::1] mask_out, int n_threads):
    cdef Py_ssize_t N = X.shape[0], n = X.shape[1], k
    cdef Py_ssize_t nblocks = _blocks(N, n), rb = _block_rows(N, nblocks)
    cdef floating dummy = 0
    cdef floating* act = NULL
    cdef floating* mask = NULL
    cdef const floating* Xp
    cdef _NeuronJob job
    cdef double* wd = <double*>PyMem_RawMalloc((n + 1) * sizeof(double))
    if wd == NULL:
        raise MemoryError()
    if act_out is not None and N > 0:
        act = &act_out[0]
    if mask_out is not None and N > 0:
        mask = &mask_out[0]
    with nogil:
        _widen(w, wd)
        Xp = _ptr2(X, &dummy)
        n_threads = _threads_for(N * (n if n > 0 else 1), n_threads)
        if n_threads > 1 and nblocks > 1:
            job.f32 = floating is float
            job.X = Xp
            job.N = N
            job.n = n
            job.rb = rb
            job.w = wd
            job.b = b
            job.act = act
            job.mask = mask
            parallel_for(nblocks, _forward_job_block, &job, n_threads)
        else:
            _block_forward(Xp, 0, N, n, wd, b, act, mask)
    PyMem_RawFree(wd)


def forward_f64(const double[:, ::1] X, const double[::1] w, double b,
                double[::1] act_out, double[::1] mask_out, int n_threads):
    """act_out = max(0, Xw + b), mask_out = ReLU'(Xw + b); either may be None."""
    _forward(X, w, b, act_out, mask_out, n_threads)


def forward_f32(const float[:, ::1] X, const float[::1] w, double b,
                float[::1] act_out, float[::1] mask_out, int n_threads):
    """float32 twin of ``forward_f64``."""
    _forward(X, w, b, act_out, mask_out, n_threads)


# ---------------------------------------------------------------------------------------
# Gradient descent
# ---------------------------------------------------------------------------------------

cdef object _fit(const floating[:, ::1] X, const floating[::1] y,
                 double[::1] w,                      # IN/OUT parameters (double)
                 double b, double lr, Py_ssize_t epochs, Py_ssize_t batch,
                 const Py_ssize_t[:, ::1] orders,   # IN  row order per epoch, or None
                 double[::1] losses,                 # OUT loss per epoch
                 int n_threads):
    cdef Py_ssize_t N = X.shape[0], n = X.shape[1]
    cdef Py_ssize_t ep, s0, B, j, bad_epoch = -1, bad_step = -1, step
    cdef Py_ssize_t nblocks = _blocks(batch if batch < N else N, n)  # the most per step
    cdef floating dummy = 0
    cdef const floating* Xp
    cdef const floating* yp
    cdef const Py_ssize_t* idx
    cdef double sse, step_lr
    cdef bint shuffled = orders is not None
    cdef bint stream = _streams(N, n, sizeof(floating))
    cdef double* mem = <double*>PyMem_RawMalloc(((nblocks + 1) * (n + 2) + 1) * sizeof(double))
    if mem == NULL:
        raise MemoryError()
    cdef double* total = mem
    cdef double* scratch = mem + (n + 2)
    cdef double* wp = &w[0] if n > 0 else mem
    with nogil:
        Xp = _ptr2(X, &dummy)
        yp = _ptr1(y, &dummy)
        for ep in range(epochs):
            sse = 0.0
            step = 0
            s0 = 0
            while s0 < N:
                B = batch if batch < N - s0 else N - s0
                if shuffled:
                    idx = &orders[ep, s0]
                    _sums(Xp, yp, idx, B, n, wp, b, True, stream, <floating*>NULL, 0.0,
                          total, scratch, n_threads)
                else:
                    _sums(Xp + s0 * n, yp + s0, NULL, B, n, wp, b, True, stream,
                          <floating*>NULL, 0.0, total, scratch, n_threads)
                if not _finite(total[0]):
                    bad_epoch = ep
                    bad_step = step
                    break
                sse += total[0]
                # w <- w - lr ∂C/∂w with ∂C/∂w = (2/B) Σ e x  (paper §6.1, §6.2)
                step_lr = lr * (2.0 / <double>B)
                for j in range(n):
                    wp[j] -= step_lr * total[2 + j]
                b -= step_lr * total[1]
                s0 += B
                step += 1
            if bad_epoch >= 0:
                break
            losses[ep] = sse / <double>N
            if not _finite(losses[ep]) or not _finite(b):
                bad_epoch = ep
                break
            for j in range(n):
                if not _finite(wp[j]):
                    bad_epoch = ep
                    break
            if bad_epoch >= 0:
                break
    PyMem_RawFree(mem)
    return b, bad_epoch, bad_step


def fit_f64(const double[:, ::1] X, const double[::1] y, double[::1] w, double b,
            double lr, Py_ssize_t epochs, Py_ssize_t batch,
            const Py_ssize_t[:, ::1] orders, double[::1] losses, int n_threads):
    """Run ``epochs`` epochs of gradient descent in place on ``w``; returns
    ``(b, bad_epoch, bad_step)`` (-1 when the loss and parameters stayed finite)."""
    return _fit(X, y, w, b, lr, epochs, batch, orders, losses, n_threads)


def fit_f32(const float[:, ::1] X, const float[::1] y, double[::1] w, double b,
            double lr, Py_ssize_t epochs, Py_ssize_t batch,
            const Py_ssize_t[:, ::1] orders, double[::1] losses, int n_threads):
    """float32-data twin of ``fit_f64`` (parameters and sums stay in double)."""
    return _fit(X, y, w, b, lr, epochs, batch, orders, losses, n_threads)
