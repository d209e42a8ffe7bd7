# The C-level checks of the ``*_fast`` entry points of elementwise.pyx (and of reduce.pxi)
# beyond _common.pxd's (is this argument an exact numpy.ndarray of float32/float64:
# _fast_typenum = float_typenum; may this out= receive the result: _writable_out_like =
# writable_out_like; do two arrays overlap): the copy of an input the kernels cannot read
# as it is, the shape comparison; and the conversions between
# Python/NumPy scalars and the kernels' 1-element operands and double sums.
# Included by elementwise.pyx (compiled into fastjac._kernels.elementwise, so these inline
# functions cost no call); not a module of its own.

cdef inline object _kernel_input(object a):
    # a itself when C-contiguous and aligned, else a C-ordered copy (strided, Fortran,
    # negative strides, unaligned). Any shape: the kernels treat arrays as flat.
    if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return a
    return cnp.PyArray_NewCopy(<cnp.ndarray>a, cnp.NPY_CORDER)


cdef inline bint _same_shape(object a, object b) noexcept:
    return cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>b)


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
