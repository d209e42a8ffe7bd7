# Shared declarations of the compiled kernels: fused types, block sizes, the tiny scalar
# helpers that hold the mathematics (every one noexcept nogil, so a nogil loop that calls
# it never re-takes the GIL) and the array checks more than one module's fast path
# uses. Loops live in the .pyx modules.

cimport numpy as cnp

ctypedef fused floating:
    float
    double

# Work is split into fixed blocks of BLOCK elements (or rows) whatever the thread count;
# per-block partial sums are merged in block order, so results are bitwise identical for
# every n_threads and every schedule of fastjac's thread pool (pool.pxd). Inside a block, element-wise work runs on tiles of TILE elements held in
# stack buffers of doubles.
cdef enum:
    TILE = 256
    BLOCK = 4096


cdef inline double relu(double z) noexcept nogil:
    """max(0, z) as numpy.maximum(z, 0) computes it: NaN stays NaN. Selects, not branches,
    so that loops calling it vectorise."""
    return z if z > 0.0 else (0.0 if z <= 0.0 else z)


cdef inline double relu_deriv(double z) noexcept nogil:
    """d max(0, z)/dz with the paper's z <= 0 branch: 1 for z > 0, 0 for z <= 0 (so 0 at
    z == 0); NaN stays NaN."""
    return 1.0 if z > 0.0 else (0.0 if z <= 0.0 else z)


cdef inline int float_typenum(object a) noexcept:
    """The dtype (NPY_DOUBLE or NPY_FLOAT) of an exact numpy.ndarray of ndim >= 1 in native
    byte order, any layout; else -1."""
    cdef int tn
    if type(a) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>a) == 0:
        return -1
    tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (tn != cnp.NPY_DOUBLE and tn != cnp.NPY_FLOAT) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        return -1
    return tn


cdef inline int plain_typenum(object a) noexcept:
    """float_typenum(a) for a plain array, one a kernel can read through a pointer as it
    is (C-contiguous and aligned); else -1. THE definition of a plain array: plain_array
    and writable_out_like are this check plus a shape."""
    cdef int tn = float_typenum(a)
    if tn < 0 or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) \
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return -1
    return tn


cdef inline bint plain_array(object a, int ndim, int typenum) noexcept:
    """A plain array (plain_typenum) of ``ndim`` dimensions and ``typenum``."""
    return plain_typenum(a) == typenum and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim


cdef inline bint writable_out_like(object o, object like, int typenum) noexcept:
    """An out= argument a kernel can write as it is: a writeable plain array (plain_typenum)
    of ``typenum`` and like's shape (like: an ndarray)."""
    return (plain_typenum(o) == typenum and cnp.PyArray_SAMESHAPE(<cnp.ndarray>o, <cnp.ndarray>like)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>o))


cdef inline bint disjoint(object o, object a) noexcept:
    # o and a share no byte (a None: True). Both are plain vectors.
    cdef char* po
    cdef char* pa
    cdef Py_ssize_t nbo, nba
    if a is None:
        return True
    po = <char*>cnp.PyArray_DATA(<cnp.ndarray>o)
    pa = <char*>cnp.PyArray_DATA(<cnp.ndarray>a)
    nbo = cnp.PyArray_NBYTES(<cnp.ndarray>o)
    nba = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    return nbo == 0 or nba == 0 or po + nbo <= pa or pa + nba <= po


cdef inline bint disjoint_or_same(object o, object a) noexcept:
    # o (an output) either does not overlap a at all (disjoint), or is exactly a (same start
    # and length: element-wise kernels run in place). Both are plain vectors of one dtype.
    if a is None:
        return True
    if (cnp.PyArray_DATA(<cnp.ndarray>o) == cnp.PyArray_DATA(<cnp.ndarray>a)
            and cnp.PyArray_NBYTES(<cnp.ndarray>o) == cnp.PyArray_NBYTES(<cnp.ndarray>a)):
        return True
    return disjoint(o, a)
