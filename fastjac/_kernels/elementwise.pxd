# The one piece of elementwise.pyx that another kernel module cimports: the per-op
# mathematics of a unary stage (value and local derivative over a tile), so the fused
# interpreter (fused.pyx) evaluates every unary op with exactly the same arithmetic.

cdef void _stage(int code, double* v, double* d, Py_ssize_t m, bint first,
                 bint need_value) noexcept nogil
