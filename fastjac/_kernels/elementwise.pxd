# The pieces of elementwise.pyx that another kernel module cimports: the per-op
# mathematics of a unary stage (value and local derivative over a tile), so the fused
# interpreter (fused.pyx) evaluates every unary op with exactly the same arithmetic, and
# the last-line-of-defence buffer check that both interpreters apply to their arrays.

cdef void _stage(int code, double* v, double* d, Py_ssize_t m, bint first,
                 bint need_value, bint f32) noexcept nogil

cdef int _unary32(int code, const float* a, float* v, double* d,
                  Py_ssize_t m) noexcept nogil

cdef void* _data(object a, int typenum, Py_ssize_t n, bint writable, str name) except? NULL
