# cython: language_level=3
"""fastjac's caller-runs thread pool (one per process) and the one ``n_threads`` rule.

The C implementation is ``fj_pool_impl.h`` (see ``fj_pool.h`` for how a call runs); the kernel
modules use it through ``pool.pxd``. From Python: :func:`resolve_threads` (used by
``fastjac._validate.n_threads``), :func:`thread_info` (public as ``fastjac.thread_info``) and
test hooks.
"""

from fastjac import _config

# the implementation, compiled into this extension only
cdef extern from "fj_pool_impl.h":
    pass

cdef extern from "fj_pool.h" nogil:
    ctypedef struct fj_pool_info_t:
        int threads_enabled
        int cpu_count
        int max_threads
        int helpers_started
        int helpers_sleeping
        int busy
        int test_flags
        long long parallel_calls
        long long busy_fallbacks
        long long helper_blocks
        long long caller_blocks
        long long forks
    int FJ_POOL_MAX_THREADS
    int FJ_POOL_TEST_SHUFFLE
    int FJ_POOL_TEST_LATE
    int FJ_POOL_TEST_PAUSE
    int FJ_POOL_TEST_SLOW_CALLER
    int FJ_POOL_TEST_NO_THRESHOLD
    int fj_pool_parallel_for(Py_ssize_t n_blocks, fj_block_fn fn, void* ctx, int n_threads)
    int fj_pool_resolve(long long requested, Py_ssize_t work, Py_ssize_t threshold)
    int fj_pool_set_max_threads(int n)
    int fj_pool_max_threads()
    int fj_pool_cpu_count()
    void fj_pool_info(fj_pool_info_t* out)
    int fj_pool_set_test_flags(int flags)

MAX_THREADS = FJ_POOL_MAX_THREADS
TEST_SHUFFLE = FJ_POOL_TEST_SHUFFLE
TEST_LATE = FJ_POOL_TEST_LATE
TEST_PAUSE = FJ_POOL_TEST_PAUSE
TEST_SLOW_CALLER = FJ_POOL_TEST_SLOW_CALLER
TEST_NO_THRESHOLD = FJ_POOL_TEST_NO_THRESHOLD


cdef int parallel_for(Py_ssize_t n_blocks, void (*fn)(void*, Py_ssize_t) noexcept nogil,
                      void* ctx, int n_threads) noexcept nogil:
    return fj_pool_parallel_for(n_blocks, fn, ctx, n_threads)


cdef int resolve_threads(long long requested, Py_ssize_t work,
                         Py_ssize_t threshold) noexcept nogil:
    return fj_pool_resolve(requested, work, threshold)


cdef int fast_threads(object n_threads, Py_ssize_t work, Py_ssize_t threshold) noexcept:
    cdef long long v
    if n_threads is None:
        return fj_pool_resolve(0, work, threshold)
    if type(n_threads) is not int:
        return 0
    try:
        v = n_threads
    except OverflowError:
        return 0
    if v < 1:
        return 0
    return fj_pool_resolve(v, work, threshold)


def resolve(requested, Py_ssize_t work, Py_ssize_t threshold):
    """The thread count for ``requested`` (None or a positive int, already validated) and
    ``work`` units of work against a kernel family's ``threshold``."""
    cdef long long v = 0
    if requested is not None:
        v = requested if requested < (1 << 62) else (1 << 62)
    return fj_pool_resolve(v, work, threshold)


def cpu_count():
    """The CPUs this process may run on (its affinity mask), at most MAX_THREADS."""
    return fj_pool_cpu_count()


def set_max_threads(n):
    """Set the pool's cap (None: ``FASTJAC_NUM_THREADS``, else the CPU count); returns it."""
    if n is None:
        n = _config.num_threads_from_env() or 0
    return fj_pool_set_max_threads(int(n))


def thread_info():
    """How fastjac runs in parallel in this process (see ``fastjac.thread_info``)."""
    cdef fj_pool_info_t i
    fj_pool_info(&i)
    return {
        "threads_enabled": bool(i.threads_enabled),
        "max_threads": i.max_threads,
        "cpu_count": i.cpu_count,
        "num_threads_env": _config.num_threads_from_env(warn=False),
        "helpers_started": i.helpers_started,
        "helpers_sleeping": i.helpers_sleeping,
        "busy": bool(i.busy),
        "parallel_calls": i.parallel_calls,
        "busy_fallbacks": i.busy_fallbacks,
        "helper_blocks": i.helper_blocks,
        "caller_blocks": i.caller_blocks,
        "forks": i.forks,
    }


def _set_test_flags(int flags):
    """Testing hook: force schedules (TEST_* flags, or-ed); returns the previous flags."""
    return fj_pool_set_test_flags(flags)


# The cap, from FASTJAC_NUM_THREADS (a bad value warns and the CPU count is used).
set_max_threads(None)
