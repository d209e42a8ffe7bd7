/* fastjac's caller-runs thread pool: see fj_pool.h for the contract. This is its
 * implementation, compiled once: pool.pyx includes it (so it lives in the pool extension,
 * one pool per process) and tests/c/pool_stress.inc includes it for the ThreadSanitizer run.
 *
 * How a parallel call runs (threaded build):
 *
 *   1. The caller takes the pool's single job slot with a compare-and-swap on `busy`. When
 *      another call holds it, this call runs all its blocks on its own thread (no waiting).
 *   2. Under the mutex it publishes the job (fn, ctx, n_blocks), bumps the epoch, resets the
 *      claim word to (epoch << 32 | 0), sets `wanted` to the number of helpers it would like,
 *      and signals that many sleeping helpers. The mutex is released at once.
 *   3. The caller claims blocks and runs them.
 *   4. A helper woken for epoch e copies the job under the mutex, then claims blocks too.
 *      Every claim (fj_claim) is a compare-and-swap that succeeds only while the word still
 *      carries epoch e and a block number below n_blocks, and takes a guided chunk of
 *      consecutive blocks: a helper that wakes late (the job done, or a later job
 *      published) claims nothing and goes back to sleep.
 *   5. When the counter is exhausted the caller waits for the blocks helpers have claimed and
 *      not finished (a short spin, then the `done` condition variable), and frees the slot.
 *
 * So the caller never waits for a helper that has not claimed a block, and a call next to a
 * busy core costs at most the one-thread time plus the blocks in flight (at most
 * FJ_CLAIM_MAX per helper). Helpers spin only
 * briefly: once the claim fails a helper polls the claim word for at most FJ_HELPER_POLL_NS
 * (30 us), so that the next call of a loop finds it awake, then sleeps on `wake` (glibc's
 * condition variables are futexes), so the core goes back to whoever wants it (BLAS, another
 * pool) at most 30 us after fastjac returns.
 *
 * Before session 6 a claim took one block (fetch-and-add), helpers added to `done` after
 * every block, and they slept at once. At n = 1e6 (245 blocks of ~1 us) the claim word's
 * cache line moved between the cores at nearly every block and a helper woke late, so a
 * second thread did not speed up fj.sum or fj.dot at all (C harness, same blocks, at
 * moments when the second core was free: Σ x float64 at n = 1e6 took 87-92 us on 2 threads
 * against 84 on 1; with claims of up to 61 blocks and the poll, 45 us; the cap of 4 blocks
 * per claim came later and was not timed on a free core).
 *
 * For comparison (facts, not code): pthreadpool's workers spin up to a million iterations
 * before a futex wait, libgomp spins GOMP_SPINCOUNT iterations (300000 by default, none with
 * OMP_WAIT_POLICY=passive), and OpenBLAS's blas_server keeps idle threads polling until a
 * timeout (OPENBLAS_THREAD_TIMEOUT) before they sleep. Those spins are what slow a neighbour
 * pool down on a small machine.
 */
#ifndef FJ_POOL_IMPL_H
#define FJ_POOL_IMPL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "fj_pool.h"

#include <stdint.h>
#include <stdlib.h>

#if !defined(FJ_POOL_SERIAL) && (defined(__unix__) || defined(__APPLE__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define FJ_POOL_THREADS 1
#else
#define FJ_POOL_THREADS 0
#endif

#if FJ_POOL_THREADS
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#endif

static int fj_cap = 0; /* 0: not set yet (cpu_count) */
static int fj_test_flags = 0;

#if defined(__GNUC__) || defined(__clang__)
#define LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define XCHG(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#else /* the serial build on other compilers: no helper threads, plain accesses suffice */
#define LOAD_RELAXED(p) (*(p))
#define STORE_RELAXED(p, v) (*(p) = (v))
static int fj_xchg(int* p, int v) { int o = *p; *p = v; return o; }
#define XCHG(p, v) fj_xchg((p), (v))
#endif

int fj_pool_cpu_count(void)
{
    static int cached = 0;
    int n = LOAD_RELAXED(&cached);
    if (n > 0) return n;
#if FJ_POOL_THREADS
#if defined(__linux__) && defined(CPU_COUNT)
    {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    }
#endif
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
    if (n <= 0) n = 1;
    if (n > FJ_POOL_MAX_THREADS) n = FJ_POOL_MAX_THREADS;
    STORE_RELAXED(&cached, n);
    return n;
}

int fj_pool_max_threads(void)
{
    int c = LOAD_RELAXED(&fj_cap);
    if (!FJ_POOL_THREADS) return 1;
    return c > 0 ? c : fj_pool_cpu_count();
}

int fj_pool_set_max_threads(int n)
{
    if (n <= 0) n = fj_pool_cpu_count();
    if (n > FJ_POOL_MAX_THREADS) n = FJ_POOL_MAX_THREADS;
    STORE_RELAXED(&fj_cap, n);
    return n;
}

int fj_pool_set_test_flags(int flags)
{
    return XCHG(&fj_test_flags, flags);
}

int fj_pool_resolve(long long requested, Py_ssize_t work, Py_ssize_t threshold)
{
    int cap = fj_pool_max_threads();
    if (!FJ_POOL_THREADS) return 1;
    if (work < threshold && !(LOAD_RELAXED(&fj_test_flags) & FJ_POOL_TEST_NO_THRESHOLD))
        return 1;
    if (requested <= 0 || requested > cap) return cap;
    return (int)requested;
}

/* The claimed index k -> the block to run: the identity, or under FJ_POOL_TEST_SHUFFLE a
 * permutation of 0..n-1 (k * stride + offset mod n with stride coprime to n). */
static Py_ssize_t fj_gcd(Py_ssize_t a, Py_ssize_t b)
{
    while (b) { Py_ssize_t t = a % b; a = b; b = t; }
    return a;
}

typedef struct {
    Py_ssize_t stride, offset;
} fj_perm;

static void fj_perm_init(fj_perm* p, Py_ssize_t n, unsigned seed)
{
    Py_ssize_t s = (Py_ssize_t)(seed % 7919u) + 2;
    while (n > 1 && fj_gcd(s, n) != 1) s++;
    p->stride = n > 1 ? s % n : 0;
    if (n > 1 && p->stride == 0) p->stride = 1;
    p->offset = n > 0 ? (Py_ssize_t)((seed * 2654435761u) % (unsigned)n) : 0;
}

static Py_ssize_t fj_perm_apply(const fj_perm* p, Py_ssize_t k, Py_ssize_t n)
{
    if (n <= 1) return k;
    return (Py_ssize_t)(((unsigned long long)k * (unsigned long long)p->stride
                         + (unsigned long long)p->offset) % (unsigned long long)n);
}

static void fj_run_serial(Py_ssize_t n_blocks, fj_block_fn fn, void* ctx)
{
    Py_ssize_t k;
    if (LOAD_RELAXED(&fj_test_flags) & FJ_POOL_TEST_SHUFFLE) {
        fj_perm p;
        fj_perm_init(&p, n_blocks, (unsigned)n_blocks * 31u + 7u);
        for (k = 0; k < n_blocks; k++) fn(ctx, fj_perm_apply(&p, k, n_blocks));
        return;
    }
    for (k = 0; k < n_blocks; k++) fn(ctx, k);
}

#if FJ_POOL_THREADS

/* ------------------------------------------------------------------ the pool's state */
#define FJ_MAX_JOB_BLOCKS ((Py_ssize_t)0x7fffffff)  /* more blocks run serially */
#define FJ_CALLER_SPIN 1000  /* polls of `done` before the caller sleeps on a condition */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* helpers sleep here */
    pthread_cond_t done_cv;   /* the caller sleeps here for blocks in flight */
    int busy;                 /* atomic: 1 while a caller owns the job slot */
    /* the job, written by its caller under mu, read by helpers under mu */
    fj_block_fn fn;
    void* ctx;
    Py_ssize_t n_blocks;
    fj_perm perm;
    int shuffle;
    unsigned epoch;           /* under mu */
    int wanted;               /* helpers still wanted by the current job (under mu) */
    /* atomics of the running job */
    int threads;              /* threads the current job may use (under mu) */
    /* epoch << 32 | next block number; alone on its cache line (the claims bounce it) */
    unsigned long long claim __attribute__((aligned(64)));
    Py_ssize_t done __attribute__((aligned(64))); /* blocks finished by helpers */
    int caller_waiting;
    int caller_cpu;           /* the CPU the caller published the job from, -1 unknown (under mu) */
    /* helpers */
    int n_helpers;            /* started (under mu) */
    int sleeping;             /* waiting on `wake` (under mu) */
    pid_t pid;
    /* statistics (relaxed atomics) */
    long long parallel_calls, busy_fallbacks, helper_blocks, caller_blocks, forks;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void fj_sleep_us(long us)
{
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000L;
    nanosleep(&ts, NULL);
}

static inline void fj_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claim the next blocks of job `epoch` (n blocks, `threads` threads): returns the first and
 * sets *count, or returns -1 when the job has none left (or is no longer the current one).
 * A claim takes 1/(4 threads) of what is left, at least one block and at most
 * FJ_CLAIM_MAX: a job of 245 blocks costs about 70 claims instead of 245 (each claim moves
 * the claim word's cache line between cores), the last claims are single blocks, which
 * keeps the threads' shares even, and a helper that is descheduled holds at most
 * FJ_CLAIM_MAX blocks that the caller has to wait for. Which thread runs a block never
 * changes its result (fj_pool.h). */
#ifndef FJ_CLAIM_MAX /* a harness may set it (benchmarks/c) */
#define FJ_CLAIM_MAX 4
#endif
static Py_ssize_t fj_claim(unsigned epoch, Py_ssize_t n, int threads, Py_ssize_t* count)
{
    unsigned long long w = __atomic_load_n(&P.claim, __ATOMIC_ACQUIRE);
    Py_ssize_t next, c;
    for (;;) {
        next = (Py_ssize_t)(w & 0xffffffffu);
        if ((unsigned)(w >> 32) != epoch || next >= n) return -1;
        c = (n - next) / (4 * (Py_ssize_t)threads);
        if (c < 1) c = 1;
        if (c > FJ_CLAIM_MAX) c = FJ_CLAIM_MAX;
        if (__atomic_compare_exchange_n(&P.claim, &w, w + (unsigned long long)c, 1,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            *count = c;
            return next;
        }
    }
}

/* A helper's share of job `epoch`: claim blocks while the word still carries that epoch.
 * Its finished blocks are added to `done` once, when it finds nothing left to claim (the
 * caller waits for them only after the counter is exhausted anyway). */
static void fj_helper_run(unsigned epoch, fj_block_fn fn, void* ctx, Py_ssize_t n,
                          int threads, const fj_perm* perm, int shuffle, unsigned* rng)
{
    Py_ssize_t first, count, k;
    long long mine = 0;
    for (;;) {
        int flags = LOAD_RELAXED(&fj_test_flags);
        if (flags & FJ_POOL_TEST_PAUSE) break;
        if (flags & FJ_POOL_TEST_LATE) {
            *rng = *rng * 1103515245u + 12345u;
            fj_sleep_us((long)((*rng >> 16) % 200u));
        }
        first = fj_claim(epoch, n, threads, &count);
        if (first < 0) break;
        for (k = first; k < first + count; k++)
            fn(ctx, shuffle ? fj_perm_apply(perm, k, n) : k);
        mine += count;
    }
    if (mine) {
        ADD(&P.helper_blocks, mine);
        /* seq_cst pairs with the caller's store of caller_waiting (no lost wake-up) */
        __atomic_add_fetch(&P.done, (Py_ssize_t)mine, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&P.caller_waiting, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_broadcast(&P.done_cv);
            pthread_mutex_unlock(&P.mu);
        }
    }
}

/* After its last block, a helper polls the claim word (which carries the epoch of the
 * latest job) for up to FJ_HELPER_POLL_NS before it sleeps on `wake`: a call that follows
 * within that time (a loop of calls) finds it awake instead of paying a futex wake-up, which
 * on a virtual machine often costs tens of microseconds, a large part of a 100 us call.
 * Short on purpose: a neighbour pool (BLAS) loses at most this much of one core per call. */
#define FJ_HELPER_POLL_NS 30000L
static long long fj_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fj_helper_poll(unsigned seen)
{
    long long stop = fj_now_ns() + FJ_HELPER_POLL_NS;
    int k;
    for (;;) {
        for (k = 0; k < 32; k++) {
            if ((unsigned)(__atomic_load_n(&P.claim, __ATOMIC_ACQUIRE) >> 32) != seen)
                return;
            fj_cpu_relax();
        }
        if (fj_now_ns() >= stop) return;
    }
}

/* A woken helper that finds itself on the CPU its caller runs on moves itself elsewhere.
 *
 * Measured (session 7, 2 vCPUs, Linux 6.18, other people's nice-19 jobs running on both
 * cores): the kernel woke the helper on the caller's own CPU, as it does when no CPU is
 * idle, so the two shared one core while the other ran the background jobs. The helper did
 * 35-45% of the blocks and a call took its one-thread time (a float32 sum of 1e6 elements:
 * 69 us on 1 thread, 69-72 us on 2); with the caller and the helper on different CPUs, 36
 * us, and with this move 37-51 us in most runs (69-71 in some, the other CPU being busy).
 * So when a job's caller_cpu is the helper's CPU, the helper narrows its own affinity
 * to the CPUs it started with minus that one (one sched_setaffinity call, which moves it at
 * once), and keeps that mask until the next such collision. The caller's affinity is never
 * touched; a helper whose mask would become empty stays where it is. */
static void fj_helper_avoid(int caller_cpu, void* base_mask)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t* base = (cpu_set_t*)base_mask;
    cpu_set_t set;
    int cpu;
    if (caller_cpu < 0 || caller_cpu >= CPU_SETSIZE || base == NULL) return;
    cpu = sched_getcpu();
    if (cpu != caller_cpu) return;
    set = *base;
    CPU_CLR(caller_cpu, &set);
    if (CPU_COUNT(&set) == 0) return;
    (void)sched_setaffinity(0, sizeof(set), &set);
#else
    (void)caller_cpu;
    (void)base_mask;
#endif
}

static int fj_current_cpu(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    return sched_getcpu();
#else
    return -1;
#endif
}

static void* fj_helper_main(void* arg)
{
    unsigned seen, epoch, rng = (unsigned)(uintptr_t)arg * 2654435761u + 1u;
    fj_block_fn fn;
    void* ctx;
    Py_ssize_t n;
    fj_perm perm;
    int shuffle, threads;
    int polled = 0, caller_cpu;
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t base_set;
    void* base = sched_getaffinity(0, sizeof(base_set), &base_set) == 0 ? (void*)&base_set : NULL;
#else
    void* base = NULL;
#endif
    pthread_mutex_lock(&P.mu);
    /* not the current epoch: a new helper joins the job it was started for (a finished job
       is harmless: its claim word refuses every claim) */
    seen = P.epoch - 1u;
    for (;;) {
        while (P.wanted <= 0 || P.epoch == seen) {
            if (!polled) {
                /* once per job: poll for the next one before sleeping (see the top) */
                polled = 1;
                pthread_mutex_unlock(&P.mu);
                fj_helper_poll(seen);
                pthread_mutex_lock(&P.mu);
                continue;
            }
            P.sleeping++;
            pthread_cond_wait(&P.wake, &P.mu);
            P.sleeping--;
        }
        polled = 0;
        seen = epoch = P.epoch;
        P.wanted--;
        fn = P.fn;
        ctx = P.ctx;
        n = P.n_blocks;
        threads = P.threads;
        caller_cpu = P.caller_cpu;
        perm = P.perm;
        shuffle = P.shuffle;
        pthread_mutex_unlock(&P.mu);
        fj_helper_avoid(caller_cpu, base);
        fj_helper_run(epoch, fn, ctx, n, threads, &perm, shuffle, &rng);
        pthread_mutex_lock(&P.mu);
    }
    return NULL;
}

/* Start helpers until there are `want` (under mu). Returns how many there are. */
static int fj_grow(int want)
{
    pthread_attr_t attr;
    if (want > FJ_POOL_MAX_THREADS - 1) want = FJ_POOL_MAX_THREADS - 1;
    if (P.n_helpers >= want) return P.n_helpers;
    if (pthread_attr_init(&attr) != 0) return P.n_helpers;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)4 << 20);  /* block functions use stack tiles */
    while (P.n_helpers < want) {
        pthread_t t;
        if (pthread_create(&t, &attr, fj_helper_main, (void*)(uintptr_t)(P.n_helpers + 1)) != 0)
            break;
        P.n_helpers++;
    }
    pthread_attr_destroy(&attr);
    return P.n_helpers;
}

/* fork(): the child has none of the parent's helper threads, and the mutex may have been
 * held by one of them. Take the mutex around fork so its state is clean, and give the child
 * a fresh, empty pool (helpers start again at its first parallel call). */
static void fj_atfork_prepare(void) { pthread_mutex_lock(&P.mu); }
static void fj_atfork_parent(void) { pthread_mutex_unlock(&P.mu); }
static void fj_atfork_child(void)
{
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.wake, NULL);
    pthread_cond_init(&P.done_cv, NULL);
    P.busy = 0;
    P.n_helpers = 0;
    P.sleeping = 0;
    P.wanted = 0;
    P.caller_waiting = 0;
    P.done = 0;
    P.claim = (unsigned long long)P.epoch << 32 | 0xffffffffu;
    P.pid = getpid();
    P.forks++;
}

static pthread_once_t fj_once = PTHREAD_ONCE_INIT;
static void fj_init_once(void)
{
    P.pid = getpid();
    P.claim = 0xffffffffu;
    pthread_atfork(fj_atfork_prepare, fj_atfork_parent, fj_atfork_child);
}

int fj_pool_parallel_for(Py_ssize_t n_blocks, fj_block_fn fn, void* ctx, int n_threads)
{
    int want, flags, zero = 0, used = 1, have;
    unsigned epoch;
    Py_ssize_t first, count, k, mine = 0, target;
    unsigned rng = 12345u;
    if (n_blocks <= 0) return 0;
    if (n_threads > fj_pool_max_threads()) n_threads = fj_pool_max_threads();
    if ((Py_ssize_t)n_threads > n_blocks) n_threads = (int)n_blocks;
    if (n_threads <= 1 || n_blocks > FJ_MAX_JOB_BLOCKS) {
        fj_run_serial(n_blocks, fn, ctx);
        return 1;
    }
    pthread_once(&fj_once, fj_init_once);
    if (!__atomic_compare_exchange_n(&P.busy, &zero, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        ADD(&P.busy_fallbacks, 1);
        fj_run_serial(n_blocks, fn, ctx);
        return 1;
    }
    flags = LOAD_RELAXED(&fj_test_flags);
    want = n_threads - 1;

    pthread_mutex_lock(&P.mu);
    have = fj_grow(want);
    if (want > have) want = have;
    P.fn = fn;
    P.ctx = ctx;
    P.n_blocks = n_blocks;
    P.threads = want + 1;
    P.caller_cpu = fj_current_cpu();
    P.shuffle = (flags & FJ_POOL_TEST_SHUFFLE) != 0;
    fj_perm_init(&P.perm, n_blocks, P.epoch * 40503u + (unsigned)n_blocks);
    epoch = ++P.epoch;
    __atomic_store_n(&P.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&P.claim, (unsigned long long)P.epoch << 32, __ATOMIC_RELEASE);
    P.wanted = want;
    if (want >= P.sleeping) {
        pthread_cond_broadcast(&P.wake);
    } else {
        for (k = 0; k < want; k++) pthread_cond_signal(&P.wake);
    }
    pthread_mutex_unlock(&P.mu);
    ADD(&P.parallel_calls, 1);

    /* the caller's share */
    for (;;) {
        if (flags & FJ_POOL_TEST_SLOW_CALLER) {
            rng = rng * 1103515245u + 12345u;
            fj_sleep_us(50 + (long)((rng >> 16) % 200u));
        }
        first = fj_claim(epoch, n_blocks, want + 1, &count);
        if (first < 0) break;
        for (k = first; k < first + count; k++)
            fn(ctx, P.shuffle ? fj_perm_apply(&P.perm, k, n_blocks) : k);
        mine += count;
    }
    ADD(&P.caller_blocks, mine);

    /* wait only for the blocks helpers claimed and have not finished */
    target = n_blocks - mine;
    if (target > 0) {
        int spin;
        for (spin = 0; spin < FJ_CALLER_SPIN; spin++) {
            if (__atomic_load_n(&P.done, __ATOMIC_ACQUIRE) >= target) break;
            fj_cpu_relax();
        }
        if (__atomic_load_n(&P.done, __ATOMIC_ACQUIRE) < target) {
            pthread_mutex_lock(&P.mu);
            __atomic_store_n(&P.caller_waiting, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&P.done, __ATOMIC_SEQ_CST) < target)
                pthread_cond_wait(&P.done_cv, &P.mu);
            __atomic_store_n(&P.caller_waiting, 0, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&P.mu);
        }
        used = 2;  /* at least one helper ran a block */
    }
    __atomic_store_n(&P.busy, 0, __ATOMIC_RELEASE);
    return used;
}

void fj_pool_info(fj_pool_info_t* out)
{
    pthread_once(&fj_once, fj_init_once);
    pthread_mutex_lock(&P.mu);
    out->threads_enabled = 1;
    out->helpers_started = P.n_helpers;
    out->helpers_sleeping = P.sleeping;
    pthread_mutex_unlock(&P.mu);
    out->cpu_count = fj_pool_cpu_count();
    out->max_threads = fj_pool_max_threads();
    out->busy = LOAD_RELAXED(&P.busy);
    out->test_flags = LOAD_RELAXED(&fj_test_flags);
    out->parallel_calls = LOAD_RELAXED(&P.parallel_calls);
    out->busy_fallbacks = LOAD_RELAXED(&P.busy_fallbacks);
    out->helper_blocks = LOAD_RELAXED(&P.helper_blocks);
    out->caller_blocks = LOAD_RELAXED(&P.caller_blocks);
    out->forks = LOAD_RELAXED(&P.forks);
}

#else /* serial build: no threads at all */

int fj_pool_parallel_for(Py_ssize_t n_blocks, fj_block_fn fn, void* ctx, int n_threads)
{
    (void)n_threads;
    if (n_blocks <= 0) return 0;
    fj_run_serial(n_blocks, fn, ctx);
    return 1;
}

void fj_pool_info(fj_pool_info_t* out)
{
    out->threads_enabled = 0;
    out->helpers_started = 0;
    out->helpers_sleeping = 0;
    out->cpu_count = fj_pool_cpu_count();
    out->max_threads = fj_pool_max_threads();
    out->busy = 0;
    out->test_flags = fj_test_flags;
    out->parallel_calls = out->busy_fallbacks = out->helper_blocks = 0;
    out->caller_blocks = out->forks = 0;
}

#endif

#endif /* FJ_POOL_IMPL_H */
