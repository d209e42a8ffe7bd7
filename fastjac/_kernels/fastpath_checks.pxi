# The C-level checks of the ``*_fast`` entry points of elementwise.pyx (and of reduce.pxi):
# is this argument an exact numpy.ndarray of float32/float64 the kernels can read as it is,
# may this out= receive the result (whether two arrays overlap: _common.pxd); and the conversions between
# Python/NumPy scalars and the kernels' 1-element operands and double sums.
# Included by elementwise.pyx (compiled into fastjac._kernels.elementwise, so these inline
# functions cost no call); not a module of its own.

cdef inline int _fast_typenum(object a) noexcept:
    # The dtype of an exact numpy.ndarray (ndim >= 1) of float32/float64, else -1.
    cdef int tn
    if type(a) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>a) == 0:
        return -1
    tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (tn != cnp.NPY_DOUBLE and tn != cnp.NPY_FLOAT) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        return -1
    return tn


cdef inline object _kernel_input(object a):
    # a itself when C-contiguous and aligned, else a C-ordered copy (strided, Fortran,
    # negative strides, unaligned). Any shape: the kernels treat arrays as flat.
    if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return a
    return cnp.PyArray_NewCopy(<cnp.ndarray>a, cnp.NPY_CORDER)


cdef inline bint _same_shape(object a, object b) noexcept:
    return cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>b)


cdef inline bint _writable_out_like(object o, object like, int typenum) noexcept:
    # out: an exact, writeable, C-contiguous, aligned ndarray of typenum and like's shape.
    return (type(o) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>o) == typenum
            and cnp.PyArray_NDIM(<cnp.ndarray>o) == cnp.PyArray_NDIM(<cnp.ndarray>like)
            and _same_shape(o, like)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>o)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>o)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>o)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>o))


_F64 = np.float64
_F32 = np.float32
cdef cnp.dtype _DESCR_F32 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT)


cdef object _typed_scalar(double v, int typenum):
    # numpy.float64(v) or numpy.float32(v). The float32 one is built from the C value:
    # numpy.float32(python float) costs ~0.9 µs, more than a 1000-element reduction. The C
    # conversion rounds like NumPy's cast; values beyond the float32 range, inf and NaN go
    # through NumPy (which warns about an overflow).
    cdef float f
    if typenum == cnp.NPY_DOUBLE:
        return _F64(v)
    if not (fabs(v) <= FLT_MAX):  # out of range, inf or NaN: NumPy's own conversion
        return _F32(v)
    f = <float>v
    return _PyArray_Scalar(&f, _DESCR_F32, NULL)


cdef object _scalar_operand(object z, int typenum):
    # A Python float (or an int that is exactly a double), or a NumPy scalar of typenum, as
    # a 1-element array of typenum converted the way numpy.asarray(z, dtype) converts it;
    # None when not eligible.
    cdef double v
    cdef cnp.npy_intp one = 1
    cdef object arr
    if type(z) is float:
        v = z
    elif type(z) is int and -(1 << 53) <= z <= (1 << 53):
        v = <double>z
    elif (type(z) is _F64 and typenum == cnp.NPY_DOUBLE) or (type(z) is _F32 and typenum == cnp.NPY_FLOAT):
        v = float(z)  # a NumPy scalar is not weak: only its own dtype stays on this path
    else:
        return None
    arr = cnp.PyArray_EMPTY(1, &one, typenum, 0)
    if typenum == cnp.NPY_DOUBLE:
        (<double*>cnp.PyArray_DATA(<cnp.ndarray>arr))[0] = v
    else:
        (<float*>cnp.PyArray_DATA(<cnp.ndarray>arr))[0] = <float>v
    return arr
