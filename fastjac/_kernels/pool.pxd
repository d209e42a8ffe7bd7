# The API of fastjac's caller-runs thread pool, for the other kernel modules:
#
#     from fastjac._kernels.pool cimport parallel_for, fast_threads
#
# There is ONE pool per process: the C code (fj_pool_impl.h) is compiled into the extension
# fastjac._kernels.pool only, and other modules reach these functions through the capsule
# Cython makes for a .pxd (importing a module that cimports this one imports the pool).
#
# Writing a parallel kernel
# -------------------------
# Split the work into a FIXED partition of n_blocks blocks that depends on the problem size
# only (never on the thread count), and write one block function
#
#     cdef void _xxx_block(void* ctx, Py_ssize_t blk) noexcept nogil
#
# that does block blk: it reads its arguments from a struct behind ctx, writes only its own
# slice of the outputs, and puts any partial sum in its own slot (partial[blk]). After
# parallel_for returns, the caller merges the partials in block order (blk = 0, 1, ...).
# Then the result is bitwise identical for every n_threads and every schedule. Keep the
# serial loop (n_threads <= 1) a plain `for blk in range(n_blocks)` where a microsecond
# matters; parallel_for itself also runs serially for n_threads <= 1 or one block.

cdef extern from "fj_pool.h" nogil:
    ctypedef void (*fj_block_fn)(void* ctx, Py_ssize_t blk) noexcept nogil


cdef int parallel_for(Py_ssize_t n_blocks, void (*fn)(void*, Py_ssize_t) noexcept nogil,
                      void* ctx, int n_threads) noexcept nogil
    # Run fn(ctx, blk) for blk in 0..n_blocks-1 on the calling thread and up to
    # n_threads - 1 helper threads, and return when every block has run. The caller claims
    # blocks itself and never waits for a helper that has not started a block; a call that
    # finds the helpers busy (another thread's call, or a nested call) runs alone on its
    # thread. Returns the number of threads that ran blocks (1: serial), 0 for no blocks.
    # The GIL is not needed and must not be taken inside fn.

cdef int resolve_threads(long long requested, Py_ssize_t work, Py_ssize_t threshold) noexcept nogil
    # The one n_threads rule: requested <= 0 means None (every thread of the cap), a
    # positive value is an upper bound clamped to the cap (FASTJAC_NUM_THREADS, else the CPU
    # count); work below threshold gives 1 (serial on the caller, the pool is not touched).

cdef int fast_threads(object n_threads, Py_ssize_t work, Py_ssize_t threshold) noexcept
    # resolve_threads for an n_threads Python object, for the C fast paths: None or a
    # positive Python int gives the resolved count, anything else 0 (take the general path,
    # whose fastjac._validate.n_threads raises the proper error).
