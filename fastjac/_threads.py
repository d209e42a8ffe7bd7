"""Introspection of fastjac's thread pool: ``fastjac.thread_info()`` (and the deprecated
``fastjac.openmp_enabled()``). The pool itself is compiled (``fastjac/_kernels/fj_pool_impl.h``);
the user guide is ``docs/guide/threads.rst``."""

import warnings

from fastjac._kernels import pool as _pool

__all__ = ["thread_info", "openmp_enabled"]


def thread_info():
    """How fastjac runs in parallel in this process.

    fastjac has one thread pool per process, its own (no OpenMP): a parallel call runs on
    the calling thread plus helper threads that sleep when there is no work. This reports
    its configuration and what it has done so far, for users and threadpoolctl-style tools.

    Returns
    -------
    dict
        ``threads_enabled`` (bool)
            False for a serial build (``FASTJAC_SERIAL=1``, or no POSIX threads): every
            call then runs on the calling thread.
        ``max_threads`` (int)
            The cap: the most threads (the caller included) one call uses. It is
            ``FASTJAC_NUM_THREADS`` when that is set to a positive integer, else
            ``cpu_count``; 1 in a serial build. ``n_threads=None`` means this many.
        ``cpu_count`` (int)
            The CPUs this process may run on (its affinity mask).
        ``num_threads_env`` (int or None)
            The value of ``FASTJAC_NUM_THREADS`` in force (None: unset or invalid).
        ``helpers_started``, ``helpers_sleeping`` (int)
            Helper threads created so far (they start at the first parallel call, up to
            ``max_threads - 1``) and those waiting for work right now.
        ``busy`` (bool)
            A parallel call holds the helpers right now.
        ``parallel_calls``, ``busy_fallbacks``, ``helper_blocks``, ``caller_blocks``, ``forks``
            Counters: calls that used the helpers, calls that found them busy and ran on
            their own thread, blocks run by helpers and by callers, and forks after which
            the child started a fresh pool.

    Examples
    --------
    >>> import fastjac as fj
    >>> info = fj.thread_info()
    >>> info["max_threads"] >= 1
    True
    """
    return _pool.thread_info()


def openmp_enabled():
    """Deprecated: whether the kernels can use several threads.

    fastjac no longer uses OpenMP; its kernels run on fastjac's own thread pool. This
    returns what the name used to tell users, ``thread_info()["threads_enabled"]`` (True
    unless fastjac was built serially), and warns. Use :func:`thread_info` instead.

    Returns
    -------
    bool
        ``thread_info()["threads_enabled"]``.
    """
    warnings.warn("fastjac.openmp_enabled() is deprecated: fastjac uses its own thread pool, "
                  "not OpenMP; use fastjac.thread_info()['threads_enabled']",
                  DeprecationWarning, stacklevel=2)
    return _pool.thread_info()["threads_enabled"]
