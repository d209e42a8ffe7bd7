# cython: language_level=3
"""Memory for the arrays fastjac returns: the output cache.

Every kernel module allocates its outputs here (``new_output``; Python code calls
``empty``). A small output is a plain ``numpy.empty``. A large one (at least
``min_bytes``, 256 KiB) gets memory through a NumPy memory handler of this module
(``PyDataMem_SetHandler``, set only around that one allocation): when the array is freed,
its memory goes back to a small cache here instead of to ``free``, and the next large
output of about the same size takes it from there: the most recently freed buffer of the
best-fitting size, so that a loop of calls writes its output into memory that is still in
the CPU's caches. (Until session 9 the oldest was taken: a loop's output cycled through
every cached buffer of its size, and with 4-8 of them, as a process that has run several
two-output VJPs holds, ``fj.log.vjp`` at 1e6 took 200-250 µs instead of 85-90 in float32
and 550-770 µs instead of 250-320 in float64; ``benchmarks/c/call_gap.py``.)

Why: the first write to memory fresh from the operating system costs a page fault per
4 KiB page. On the VM fastjac is developed on, writing a fresh 8 MB array took 6-8 ms
against 0.3 ms for memory written before, and glibc gives memory back to the system at
every call that returns two or more large arrays (their frees leave more than the trim
threshold free at the top of the heap): ``fj.mul.vjp`` and a fused VJP at n = 1e6 page
fault at every call (800-1300 faults), a single-output op does not. PyTorch's caching
allocator avoids the same cost the same way.

The arrays are ordinary NumPy arrays that own their data (``resize`` works, pickling
copies). The cache holds at most ``limit`` bytes (64 MiB by default; the environment
variable ``FASTJAC_OUTPUT_CACHE_MB`` or :func:`set_output_cache` changes it, 0 turns the
cache off) of memory no array uses any more; that memory stays in the process (as it does
with PyTorch) until a later output reuses it, the limit is lowered, or the process ends.
Nothing else in the process changes: NumPy's own arrays and every other allocation keep
NumPy's default handler and glibc's settings.
"""

from cpython.pythread cimport (PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_release_lock, PyThread_type_lock, WAIT_LOCK)
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset, strncpy

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef enum:
    NSLOT = 16           # at most this many cached buffers
    ALIGN = 64           # outputs start on a cache line (and an AVX-512 vector)
    HEADER = 16          # malloc's pointer and the capacity, before the output

cdef size_t _min_bytes = 256 * 1024   # smaller outputs use NumPy's own allocator
cdef size_t _limit = 0                 # bytes the cache may hold; 0: off
cdef size_t _cached = 0                # bytes it holds
cdef void* _slot[NSLOT]                # cached buffers, oldest first
cdef size_t _slot_cap[NSLOT]
cdef int _nslot = 0
cdef size_t _hits = 0, _misses = 0
cdef PyThread_type_lock _lock = PyThread_allocate_lock()
cdef cnp.PyDataMem_Handler _handler
cdef object _capsule


# ---------------------------------------------------------------------------------------
# The buffers: an aligned block with its capacity and malloc's pointer just before it.
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    /* Transparent huge pages for a large buffer where Linux has them, as NumPy asks for its
       own arrays of 4 MiB or more: MADV_HUGEPAGE on the whole 4 KiB pages inside the
       block malloc gave (every 2 MiB-aligned 2 MiB in it can then be one TLB entry
       instead of 512; with THP "always" the advice changes nothing). Advice only: the
       memory stays malloc's, so a freed buffer goes back to the heap for glibc to reuse.
       (A buffer mapped on its own on a 2 MiB boundary, all huge pages, was tried: it made
       every cache miss cost fresh memory, 1.8 ms against 0.6 ms per 8 MB output when
       the cache overflowed; docs/guide/memory.rst.) */
    #include <stddef.h>
    #include <stdint.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    static void fj_out_advise(void* p, size_t bytes) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        uintptr_t lo = ((uintptr_t)p + 4095u) & ~(uintptr_t)4095u;
        uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)4095u;
        if (bytes >= ((size_t)2 << 20) && hi > lo)
            (void)madvise((void*)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
    #else
        (void)p;
        (void)bytes;
    #endif
    }
    """
    void fj_out_advise(void* p, size_t bytes) nogil


cdef inline size_t _cap(void* p) noexcept nogil:
    return (<size_t*>p - 1)[0]


cdef void* _fresh(size_t cap) noexcept nogil:
    cdef char* raw = <char*>malloc(cap + HEADER + ALIGN)
    cdef char* p
    if raw == NULL:
        return NULL
    fj_out_advise(raw, cap + HEADER + ALIGN)
    p = <char*>((<uintptr_t>(raw + HEADER) + (ALIGN - 1)) & ~(<uintptr_t>(ALIGN - 1)))
    (<void**>p - 2)[0] = raw
    (<size_t*>p - 1)[0] = cap
    return p


cdef inline void _release(void* p) noexcept nogil:
    free((<void**>p - 2)[0])


cdef void _evict_oldest() noexcept nogil:
    # With _lock held.
    cdef int i
    cdef void* p = _slot[0]
    global _nslot, _cached
    _cached -= _slot_cap[0]
    for i in range(1, _nslot):
        _slot[i - 1] = _slot[i]
        _slot_cap[i - 1] = _slot_cap[i]
    _nslot -= 1
    _release(p)


# ---------------------------------------------------------------------------------------
# The NumPy memory handler (used only while new_output/empty allocate a large output; the
# array keeps a reference to it, so its memory comes back here whenever it is freed).
# ---------------------------------------------------------------------------------------

cdef void* _h_malloc(void* ctx, size_t size) noexcept nogil:
    cdef int i, best = -1
    cdef size_t c
    cdef void* p
    global _nslot, _cached, _hits, _misses
    if size >= _min_bytes:
        # Reuse the smallest cached buffer that holds size and wastes at most a quarter,
        # the most recently freed one of that size (the slots run oldest first, hence <=):
        # a loop's next output then takes the memory its last output had, which is still
        # in the CPU's caches. Taking the oldest made a loop's output cycle through every
        # cached buffer of its size, and a VJP at 1e6 ran 2-3x slower (module docstring).
        PyThread_acquire_lock(_lock, WAIT_LOCK)
        for i in range(_nslot):
            c = _slot_cap[i]
            if c >= size and c - size <= size // 4 and (best < 0 or c <= _slot_cap[best]):
                best = i
        if best >= 0:
            p = _slot[best]
            _cached -= _slot_cap[best]
            for i in range(best + 1, _nslot):
                _slot[i - 1] = _slot[i]
                _slot_cap[i - 1] = _slot_cap[i]
            _nslot -= 1
            _hits += 1
            PyThread_release_lock(_lock)
            return p
        _misses += 1
        PyThread_release_lock(_lock)
        size = (size + 4095) & ~(<size_t>4095)  # whole pages: sizes that differ a little match
    return _fresh(size if size > 0 else 1)


cdef void _h_free(void* ctx, void* p, size_t size) noexcept nogil:
    cdef size_t c
    global _nslot, _cached
    if p == NULL:
        return
    c = _cap(p)
    if c >= _min_bytes and c <= _limit:
        PyThread_acquire_lock(_lock, WAIT_LOCK)
        if c <= _limit:  # re-read under the lock (set_output_cache may have lowered it)
            while _nslot > 0 and (_nslot == NSLOT or _cached + c > _limit):
                _evict_oldest()
            _slot[_nslot] = p
            _slot_cap[_nslot] = c
            _nslot += 1
            _cached += c
            PyThread_release_lock(_lock)
            return
        PyThread_release_lock(_lock)
    _release(p)


cdef void* _h_calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef size_t size
    cdef void* p
    if elsize != 0 and nelem > (<size_t>-1) // elsize:
        return NULL
    size = nelem * elsize
    p = _h_malloc(ctx, size)
    if p != NULL:
        memset(p, 0, size)
    return p


cdef void* _h_realloc(void* ctx, void* p, size_t size) noexcept nogil:
    cdef void* q
    cdef size_t c
    if p == NULL:
        return _h_malloc(ctx, size)
    c = _cap(p)
    if size <= c and (c < _min_bytes or c - size <= size // 4):
        return p
    q = _h_malloc(ctx, size)
    if q == NULL:
        return NULL
    memcpy(q, p, c if c < size else size)
    _h_free(ctx, p, c)
    return q


strncpy(_handler.name, b"fastjac_output_cache", 127)
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = _h_malloc
_handler.allocator.calloc = _h_calloc
_handler.allocator.realloc = _h_realloc
_handler.allocator.free = _h_free
_capsule = PyCapsule_New(&_handler, "mem_handler", NULL)


# ---------------------------------------------------------------------------------------
# Allocating outputs
# ---------------------------------------------------------------------------------------

cdef object new_output(int nd, cnp.npy_intp* dims, int typenum):
    """A new uninitialised array, as ``PyArray_EMPTY(nd, dims, typenum, 0)``; a large one
    takes its memory from the output cache."""
    cdef size_t size
    cdef int i
    if _limit == 0:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    size = 8 if typenum == cnp.NPY_DOUBLE else (4 if typenum == cnp.NPY_FLOAT else 0)
    for i in range(nd):
        size *= <size_t>dims[i]
    if size < _min_bytes:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    old = cnp.PyDataMem_SetHandler(_capsule)
    try:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        cnp.PyDataMem_SetHandler(old)


def empty(shape, dtype):
    """``numpy.empty(shape, dtype)`` for an output of fastjac: a large one (``min_bytes``
    or more) takes its memory from the output cache."""
    dt = np.dtype(dtype)
    if _limit == 0 or np.prod(shape, dtype=np.int64) * dt.itemsize < <Py_ssize_t>_min_bytes:
        return np.empty(shape, dtype=dt)
    old = cnp.PyDataMem_SetHandler(_capsule)
    try:
        return np.empty(shape, dtype=dt)
    finally:
        cnp.PyDataMem_SetHandler(old)


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------

def set_output_cache(max_bytes):
    """Set how much freed output memory fastjac keeps for reuse.

    fastjac's large outputs (256 KiB or more) are allocated so that, when such an array is
    freed, its memory is kept for the next large output instead of being given back to
    the system, up to ``max_bytes`` in all. A result written into fresh memory pays a page
    fault per 4 KiB page, which can cost more than the computation (see the performance
    notes in the guide). The default is 64 MiB, or ``FASTJAC_OUTPUT_CACHE_MB`` (a whole
    number of MiB) when that environment variable is set.

    Parameters
    ----------
    max_bytes : int
        The most memory the cache holds (memory that no array uses any more). 0 turns the
        cache off and frees what it holds; arrays allocated earlier stay valid.

    Returns
    -------
    int
        The previous limit in bytes.

    Examples
    --------
    >>> import fastjac as fj
    >>> old = fj.set_output_cache(0)           # every output from NumPy's allocator
    >>> fj.output_cache_info()["cached_bytes"]
    0
    >>> _ = fj.set_output_cache(old)
    """
    global _limit
    cdef Py_ssize_t m
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    m = max_bytes
    if m < 0:
        raise ValueError(f"max_bytes must be >= 0, got {m}")
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    old = _limit
    _limit = <size_t>m
    while _nslot > 0 and _cached > _limit:
        _evict_oldest()
    PyThread_release_lock(_lock)
    return old


def output_cache_info():
    """The output cache's state (see :func:`set_output_cache`).

    Returns
    -------
    dict
        ``limit`` (bytes), ``min_bytes`` (the smallest output that uses the cache),
        ``cached_bytes`` and ``buffers`` (memory held for reuse now), ``hits`` and
        ``misses`` (large outputs that reused cached memory or needed fresh memory, since
        the process started).
    """
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    info = {"limit": _limit, "min_bytes": _min_bytes, "cached_bytes": _cached,
            "buffers": _nslot, "hits": _hits, "misses": _misses}
    PyThread_release_lock(_lock)
    return info


def _limit_from_env():
    # FASTJAC_OUTPUT_CACHE_MB: a whole number of MiB (0 = off); anything else warns.
    import os
    import warnings
    raw = os.environ.get("FASTJAC_OUTPUT_CACHE_MB")
    if raw is None or raw.strip() == "":
        return 64 << 20
    try:
        mb = int(raw.strip())
        if mb < 0:
            raise ValueError
    except ValueError:
        warnings.warn(f"FASTJAC_OUTPUT_CACHE_MB={raw!r} is not a whole number of MiB >= 0; "
                      "using the default, 64", RuntimeWarning, stacklevel=2)
        return 64 << 20
    return mb << 20


def _after_fork_in_child():
    # A fork while another thread held the lock would leave the child's copy locked
    # forever: the child starts with a new lock (the cached buffers are its own copies).
    global _lock
    _lock = PyThread_allocate_lock()


set_output_cache(_limit_from_env())
import os as _os
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)
