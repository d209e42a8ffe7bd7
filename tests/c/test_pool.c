/* Stress test of fastjac's thread pool (fastjac/_kernels/fj_pool.c) in C, without Python,
 * meant to run under ThreadSanitizer (tests/test_threads.py builds and runs it):
 *
 *   gcc -O1 -g -fsanitize=thread -DFJ_POOL_STANDALONE -Ifastjac/_kernels \
 *       tests/c/test_pool.c fastjac/_kernels/fj_pool.c -o test_pool -pthread && ./test_pool
 *
 * Several threads call fj_pool_parallel_for at once (so most calls find the helpers busy and
 * some share them), every test schedule is used, a nested call runs inside a block, and a
 * fork()ed child uses its own pool. Each job sums per-block partials and merges them in block
 * order; the result must equal the serial one bit for bit, and every block must run once.
 * Exit status 0 on success.
 */
#include "fj_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NB_MAX 67

typedef struct {
    Py_ssize_t n_blocks;
    const double* x;
    Py_ssize_t per_block;
    double partial[NB_MAX];
    int runs[NB_MAX];
    int nested;
} job_t;

static void block_fn(void* p, Py_ssize_t blk)
{
    job_t* j = (job_t*)p;
    double s = 0.0;
    Py_ssize_t i;
    for (i = blk * j->per_block; i < (blk + 1) * j->per_block; i++) s += j->x[i] * 1.000001;
    if (j->nested && blk == 0) {
        /* a nested parallel call from inside a block: must not deadlock */
        job_t inner;
        memset(&inner, 0, sizeof(inner));
        inner.n_blocks = 5;
        inner.x = j->x;
        inner.per_block = 7;
        fj_pool_parallel_for(inner.n_blocks, block_fn, &inner, 4);
        s += inner.partial[4];
    }
    j->partial[blk] = s;
    __atomic_add_fetch(&j->runs[blk], 1, __ATOMIC_RELAXED);
}

static double data[NB_MAX * 64];

static int run_job(Py_ssize_t nb, int threads, int nested, double* out)
{
    job_t j;
    Py_ssize_t b;
    double total = 0.0;
    memset(&j, 0, sizeof(j));
    j.n_blocks = nb;
    j.x = data;
    j.per_block = 64;
    j.nested = nested;
    fj_pool_parallel_for(nb, block_fn, &j, threads);
    for (b = 0; b < nb; b++) {
        if (j.runs[b] != 1) {
            fprintf(stderr, "block %ld ran %d times\n", (long)b, j.runs[b]);
            return 1;
        }
        total += j.partial[b];
    }
    *out = total;
    return 0;
}

static double expected[NB_MAX + 1][2];

static void* caller_main(void* arg)
{
    long id = (long)arg;
    int k;
    for (k = 0; k < 300; k++) {
        Py_ssize_t nb = 1 + (k * 7 + id * 13) % NB_MAX;
        int nested = (k % 11) == 0;
        double got;
        if (run_job(nb, 1 + (int)((k + id) % 5), nested, &got)) return (void*)1;
        if (memcmp(&got, &expected[nb][nested], sizeof(double)) != 0) {
            fprintf(stderr, "thread %ld: result differs for %ld blocks\n", id, (long)nb);
            return (void*)1;
        }
    }
    return NULL;
}

static int stress(int n_callers)
{
    pthread_t t[8];
    long i;
    int bad = 0;
    for (i = 0; i < n_callers; i++) pthread_create(&t[i], NULL, caller_main, (void*)i);
    for (i = 0; i < n_callers; i++) {
        void* r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    return bad;
}

int main(void)
{
    static const int schedules[] = {0, FJ_POOL_TEST_SHUFFLE, FJ_POOL_TEST_LATE,
                                    FJ_POOL_TEST_PAUSE, FJ_POOL_TEST_SLOW_CALLER,
                                    FJ_POOL_TEST_SHUFFLE | FJ_POOL_TEST_LATE};
    Py_ssize_t nb;
    size_t s;
    int nested;
    pid_t pid;
    int status;
    fj_pool_info_t info;
    for (s = 0; s < sizeof(data) / sizeof(data[0]); s++) data[s] = 1.0 / (double)(s + 3);
    fj_pool_set_max_threads(4);
    for (nb = 1; nb <= NB_MAX; nb++)
        for (nested = 0; nested < 2; nested++)
            if (run_job(nb, 1, nested, &expected[nb][nested])) return 1;
    for (s = 0; s < sizeof(schedules) / sizeof(schedules[0]); s++) {
        fj_pool_set_test_flags(schedules[s]);
        if (stress(s == 0 ? 4 : 2)) {
            fprintf(stderr, "schedule %d failed\n", schedules[s]);
            return 1;
        }
    }
    fj_pool_set_test_flags(0);
    pid = fork();
    if (pid == 0) {
        double got;
        int bad = run_job(NB_MAX, 4, 0, &got) != 0
                  || memcmp(&got, &expected[NB_MAX][0], sizeof(double)) != 0;
        _exit(bad);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "forked child failed\n");
        return 1;
    }
    if (stress(2)) return 1;
    fj_pool_info(&info);
    printf("ok: %lld parallel calls, %lld busy fallbacks, %lld helper blocks, %d helpers\n",
           info.parallel_calls, info.busy_fallbacks, info.helper_blocks, info.helpers_started);
    return info.helper_blocks > 0 ? 0 : 2;
}
