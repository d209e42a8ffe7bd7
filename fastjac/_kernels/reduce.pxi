# Reductions (paper §4.4): sum(x) and w·x, accumulated in double in a fixed order, and
# their one-C-call fast path. Included by elementwise.pyx (compiled into
# fastjac._kernels.elementwise: it uses that module's array checks, job struct and thread
# pool glue); the loops themselves are in fj_reduce.h.

cdef extern from "fj_reduce.h" nogil:
    # The reduction loops: 16 double accumulators per block, element j of the block in
    # accumulator j mod 16, a fixed tree at the end; a portable version and an AVX2 one,
    # bitwise the same (see the header for the order and why it is deterministic).
    enum: FJ_RACC
    void fj_racc_zero(double* acc)
    double fj_racc_total(const double* acc)
    void fj_racc_add_f64(double* acc, const double* a, const double* b, Py_ssize_t m)
    void fj_racc_add_f32(double* acc, const float* a, const float* b, Py_ssize_t m)
    int fj_reduce_set_level(int level)
    # fj.sum of float32 alone: 32 accumulators (element j in accumulator j mod 32), the
    # block total a fixed tree of them (fj_reduce.h says why).
    enum: FJ_RSUM32
    void fj_rsum32_zero(double* acc)
    double fj_rsum32_total(const double* acc)
    void fj_rsum32_f32(double* acc, const float* a, Py_ssize_t m)


cdef inline void _racc_add(double* acc, const floating* a, const floating* b,
                           Py_ssize_t m) noexcept nogil:
    # acc[j mod 16] += a[j] (b NULL) or a[j] b[j] in double, for j < m; a and b start at an
    # element of the block whose index is a multiple of 16 (fj_reduce.h).
    if floating is double:
        fj_racc_add_f64(acc, a, b, m)
    else:
        fj_racc_add_f32(acc, a, b, m)


def _set_reduce_level(int level):
    """Testing hook: force the reduction loops' version (0 portable, 1 AVX2 where the CPU
    has it, -1 the CPU's best) and return the one in force. Every version gives the same
    bits."""
    return fj_reduce_set_level(level)


cdef double _block_reduce(Py_ssize_t blk, Py_ssize_t n, const floating* a,
                          const floating* b) noexcept nogil:
    # The block's Σ a or Σ a b: 16 accumulators and a fixed tree (fj_reduce.h); a float32
    # Σ a: 32 accumulators and their tree.
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef double acc[FJ_RSUM32]
    if stop > n:
        stop = n
    if floating is float:
        if b == NULL:
            fj_rsum32_zero(acc)
            fj_rsum32_f32(acc, a + start, stop - start)
            return fj_rsum32_total(acc)
    fj_racc_zero(acc)
    _racc_add(acc, a + start, NULL if b == NULL else b + start, stop - start)
    return fj_racc_total(acc)


def reduce(a, b, int n_threads=1):
    """``sum(a)`` (``b`` None) or ``a · b`` for C-contiguous float arrays of one dtype and
    size, as a Python float accumulated in double in a fixed block order."""
    cdef int typenum = _float_typenum(a, "a")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>a)
    cdef void* ap = _data(a, typenum, n, False, "a")
    cdef void* bp = _data(b, typenum, n, False, "b")
    cdef Py_ssize_t nblocks, blk
    cdef double total = 0.0
    cdef double one
    cdef double* partial
    if n == 0:
        return 0.0
    nblocks = (n + BLOCK - 1) // BLOCK
    if nblocks == 1:  # the common small case: no scratch to allocate
        with nogil:
            if typenum == cnp.NPY_DOUBLE:
                one = _block_reduce(0, n, <const double*>ap, <const double*>bp)
            else:
                one = _block_reduce(0, n, <const float*>ap, <const float*>bp)
        return one
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


def reduce_fast(a, b, n_threads, Py_ssize_t work_per_element, Py_ssize_t threshold):
    # Positional on purpose: see unary_fast in elementwise.pyx.
    """``sum(a)`` (``b`` None) or ``a · b`` as a NumPy scalar of the arrays' dtype, in one
    C call; None when the call needs the general path. Eligible: exact ``numpy.ndarray`` of
    float32/float64 (for ``a · b``: two 1-D arrays of one dtype and length), any layout."""
    cdef int typenum, nt
    cdef Py_ssize_t n
    typenum = _fast_typenum(a)
    if typenum < 0:
        return None
    if b is not None:
        if not (cnp.PyArray_NDIM(<cnp.ndarray>a) == 1 and _fast_typenum(b) == typenum
                and cnp.PyArray_NDIM(<cnp.ndarray>b) == 1 and _same_shape(a, b)):
            return None
    n = cnp.PyArray_SIZE(<cnp.ndarray>a)
    nt = fast_threads(n_threads, n * work_per_element, threshold)
    if nt == 0:
        return None
    a = _kernel_input(a)
    if b is not None:
        b = _kernel_input(b)
    total = reduce(a, b, nt)
    return _typed_scalar(total, typenum)


cdef void _reduce_run(Py_ssize_t n, const floating* a, const floating* b, double* partial,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    cdef _EwJob job
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            partial[blk] = _block_reduce(blk, n, a, b)
    else:
        job.n = n
        job.f32 = floating is float
        job.w = a
        job.x = b
        job.partial = partial
        parallel_for(nblocks, _reduce_job_block, &job, n_threads)


cdef void _reduce_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    cdef _EwJob* j = <_EwJob*>ctx
    if j.f32:
        j.partial[blk] = _block_reduce(blk, j.n, <const float*>j.w, <const float*>j.x)
    else:
        j.partial[blk] = _block_reduce(blk, j.n, <const double*>j.w, <const double*>j.x)
