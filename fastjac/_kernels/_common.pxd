# Shared declarations of the compiled kernels: fused types, block sizes, and the tiny
# scalar derivative helpers that hold the mathematics (every one noexcept nogil, so a
# nogil loop that calls it never re-takes the GIL). Loops live in the .pyx modules.

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


cdef inline double relu_deriv(double z) noexcept nogil:
    """d max(0, z)/dz with the paper's z <= 0 branch: 0 at z == 0; NaN stays NaN."""
    if z > 0.0:
        return 1.0
    if z <= 0.0:
        return 0.0
    return z
