/* fastjac's caller-runs thread pool (one per process, compiled into fastjac._kernels.pool).
 *
 * fj_pool_parallel_for(n_blocks, fn, ctx, n_threads) runs fn(ctx, blk) once for every blk in
 * 0..n_blocks-1 and returns when all have run. The calling thread takes part: it claims blocks
 * from an atomic counter, and up to n_threads - 1 sleeping helper threads are woken to claim
 * blocks from the same counter when they get a core. The caller never waits for a helper that
 * has not claimed a block: once the counter is exhausted it only waits for the blocks that are
 * in flight on helpers. Helpers sleep on a condition variable (a futex on Linux) when there is
 * no work, after polling for the next job for at most 30 us (fj_pool_impl.h). A helper that
 * starts a job on its caller's CPU narrows its own affinity to move off it (Linux only).
 *
 * Which thread runs a block, and in which order, is not specified: a block function must
 * write only its own outputs (a slice of the result, or its own slot of per-block partials
 * that the caller merges in block order afterwards). Then the result is bitwise identical for
 * every n_threads and every schedule.
 *
 * Concurrent callers: one job at a time uses the helpers; a call that finds them busy (another
 * Python thread, a nested call from inside a block function) runs all its blocks on its own
 * thread. No call ever waits for another call.
 *
 * fork(): pthread_atfork gives the child a fresh pool (helpers are re-created on demand).
 * Without pthreads (or with FJ_POOL_SERIAL defined) every call runs serially on the caller.
 */
#ifndef FJ_POOL_H
#define FJ_POOL_H

#ifdef FJ_POOL_STANDALONE
#include <stddef.h>
#include <sys/types.h>
typedef ssize_t Py_ssize_t;
#else
#include <Python.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A block function: run block blk of the job described by ctx. */
typedef void (*fj_block_fn)(void* ctx, Py_ssize_t blk);

/* Most threads (caller included) a call can use; larger requests are clamped. */
#define FJ_POOL_MAX_THREADS 256

/* Test hooks (fj_pool_set_test_flags): schedules a normal run would rarely produce. */
#define FJ_POOL_TEST_SHUFFLE 1          /* claimed index k runs block perm(k), a permutation */
#define FJ_POOL_TEST_LATE 2             /* helpers sleep 0-200 us before each claim */
#define FJ_POOL_TEST_PAUSE 4            /* helpers wake but never claim: the caller runs all */
#define FJ_POOL_TEST_SLOW_CALLER 8      /* the caller sleeps before each claim: helpers run most */
#define FJ_POOL_TEST_NO_THRESHOLD 16    /* fj_pool_resolve ignores the work threshold */

typedef struct {
    int threads_enabled;      /* 1 when built with a thread pool, 0 for the serial build */
    int cpu_count;            /* CPUs this process may run on */
    int max_threads;          /* the cap: FASTJAC_NUM_THREADS, else cpu_count */
    int helpers_started;      /* helper threads created so far in this process */
    int helpers_sleeping;     /* helpers waiting for work right now */
    int busy;                 /* a parallel call holds the helpers right now */
    int test_flags;
    long long parallel_calls; /* calls that woke helpers */
    long long busy_fallbacks; /* calls that found the helpers busy and ran alone */
    long long helper_blocks;  /* blocks run by helpers */
    long long caller_blocks;  /* blocks run by callers in parallel calls */
    long long forks;          /* times a forked child reset the pool */
} fj_pool_info_t;

/* Run fn(ctx, 0 .. n_blocks-1) on the caller and up to n_threads - 1 helpers. Returns the
 * number of threads that ran at least one block (1 for a serial run), 0 when n_blocks <= 0. */
int fj_pool_parallel_for(Py_ssize_t n_blocks, fj_block_fn fn, void* ctx, int n_threads);

/* The one n_threads rule. requested <= 0 means None (all of the cap); a positive value is an
 * upper bound, clamped to the cap; work below threshold gives 1 (serial, no pool). */
int fj_pool_resolve(long long requested, Py_ssize_t work, Py_ssize_t threshold);

/* Set the cap (1..FJ_POOL_MAX_THREADS; <= 0 means cpu_count). Returns the cap in force. */
int fj_pool_set_max_threads(int n);
int fj_pool_max_threads(void);
int fj_pool_cpu_count(void);
void fj_pool_info(fj_pool_info_t* out);
int fj_pool_set_test_flags(int flags); /* returns the previous flags */

#ifdef __cplusplus
}
#endif
#endif /* FJ_POOL_H */
