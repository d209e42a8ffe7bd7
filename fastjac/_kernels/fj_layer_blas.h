/* Single-threaded GEMM calls into the BLAS that NumPy already loaded, for the blocked BLAS
 * path of fastjac/_kernels/layer.pyx.
 *
 * Why: NumPy's np.matmul runs OpenBLAS on OpenBLAS's own threads, which synchronise with
 * each other inside every product (and spin after it). On a machine whose cores are shared
 * with other work, one OpenBLAS thread that does not get a core stalls the others: the
 * product (10000 x 128)ᵀ (10000 x 784) took 4x its one-thread time with two threads on the
 * loaded 2-vCPU development machine. The layer's blocked path instead splits the rows into
 * fixed blocks that fastjac's caller-runs pool hands out, and each block calls GEMM with
 * OpenBLAS held to one thread (fj_blas_enter/fj_blas_leave); the caller never waits for a
 * helper that has no core, and one-thread GEMM gives the same bits whichever thread runs it.
 *
 * Which library: the first loaded shared object (dl_iterate_phdr, Linux/glibc) that exports
 * a CBLAS gemm and OpenBLAS's get/set_num_threads, in the order of FJ_BLAS_NAMES: the
 * scipy-openblas64 of NumPy's wheels (ILP64, symbols scipy_cblas_?gemm64_), an ILP64
 * OpenBLAS (cblas_?gemm64_), the 32-bit-index scipy-openblas32 and a plain OpenBLAS. Nothing
 * is loaded that the process had not loaded already (RTLD_NOLOAD). Anywhere else (another
 * BLAS such as MKL or Accelerate, another OS) fj_blas_load() returns 0 and layer.py keeps
 * np.matmul.
 */
#ifndef FJ_LAYER_BLAS_H
#define FJ_LAYER_BLAS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FJ_CBLAS_ROW_MAJOR 101
#define FJ_CBLAS_NO_TRANS 111
#define FJ_CBLAS_TRANS 112

typedef void (*fj_dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double,
                              const double *, int64_t, const double *, int64_t, double,
                              double *, int64_t);
typedef void (*fj_sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float,
                              const float *, int64_t, const float *, int64_t, float,
                              float *, int64_t);
typedef void (*fj_dgemm32_fn)(int, int, int, int, int, int, double, const double *, int,
                              const double *, int, double, double *, int);
typedef void (*fj_sgemm32_fn)(int, int, int, int, int, int, float, const float *, int,
                              const float *, int, float, float *, int);
typedef void (*fj_set_threads_fn)(int);
typedef int (*fj_get_threads_fn)(void);

static struct {
    int state;          /* 0 not looked up, 1 found, -1 not found */
    int ilp64;
    void *dgemm, *sgemm;
    fj_set_threads_fn set_threads;
    fj_get_threads_fn get_threads;
    char name[256];
} fj_blas = {0, 0, NULL, NULL, NULL, NULL, {0}};

#if defined(__linux__) && defined(__GLIBC__) && !defined(FJ_NO_DIRECT_BLAS)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* dladdr, RTLD_NOLOAD */
#endif
#include <dlfcn.h>
#include <link.h>

/* {dgemm, sgemm, get_num_threads, set_num_threads, ilp64} */
static const char *const FJ_BLAS_NAMES[][5] = {
    {"scipy_cblas_dgemm64_", "scipy_cblas_sgemm64_", "scipy_openblas_get_num_threads64_",
     "scipy_openblas_set_num_threads64_", "1"},
    {"cblas_dgemm64_", "cblas_sgemm64_", "openblas_get_num_threads64_",
     "openblas_set_num_threads64_", "1"},
    {"scipy_cblas_dgemm", "scipy_cblas_sgemm", "scipy_openblas_get_num_threads",
     "scipy_openblas_set_num_threads", "0"},
    {"cblas_dgemm", "cblas_sgemm", "openblas_get_num_threads", "openblas_set_num_threads", "0"},
};

static int fj_blas_try(struct dl_phdr_info *info, size_t size, void *data)
{
    size_t k;
    void *h;
    (void)size;
    (void)data;
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0')
        return 0;
    h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (h == NULL)
        return 0;
    for (k = 0; k < sizeof FJ_BLAS_NAMES / sizeof FJ_BLAS_NAMES[0]; k++) {
        void *d = dlsym(h, FJ_BLAS_NAMES[k][0]);
        void *s = dlsym(h, FJ_BLAS_NAMES[k][1]);
        void *g = dlsym(h, FJ_BLAS_NAMES[k][2]);
        void *l = dlsym(h, FJ_BLAS_NAMES[k][3]);
        if (d && s && g && l) {
            fj_blas.dgemm = d;
            fj_blas.sgemm = s;
            fj_blas.get_threads = (fj_get_threads_fn)g;
            fj_blas.set_threads = (fj_set_threads_fn)l;
            fj_blas.ilp64 = FJ_BLAS_NAMES[k][4][0] == '1';
            {   /* name the object that defines the symbol (dlsym also searches the
                 * dependencies of the object it was given) */
                Dl_info where;
                const char *name = info->dlpi_name;
                if (dladdr(d, &where) && where.dli_fname != NULL)
                    name = where.dli_fname;
                strncpy(fj_blas.name, name, sizeof fj_blas.name - 1);
            }
            return 1;  /* the handle stays open: the library stays loaded */
        }
    }
    dlclose(h);
    return 0;
}

/* 1 when a usable BLAS is loaded (looked up once; call with the GIL held). */
static int fj_blas_load(void)
{
    if (fj_blas.state == 0)
        fj_blas.state = dl_iterate_phdr(fj_blas_try, NULL) ? 1 : -1;
    return fj_blas.state == 1;
}
#else
static int fj_blas_load(void)
{
    fj_blas.state = -1;
    return 0;
}
#endif

static const char *fj_blas_name(void) { return fj_blas.name; }
static int fj_blas_ilp64(void) { return fj_blas.ilp64; }

/* OpenBLAS on one thread while the blocked path runs: OpenBLAS's thread count is one
 * process-wide setting in its pthreads builds (even openblas_set_num_threads_local sets the
 * global count there: disassembled in scipy-openblas 0.3.31), so the first of possibly nested or concurrent users lowers it to 1
 * and the last restores it; the count of users is only changed with the GIL held. */
static int fj_blas_users = 0, fj_blas_saved = 0;

static void fj_blas_enter(void)
{
    if (fj_blas_users++ == 0) {
        fj_blas_saved = fj_blas.get_threads();
        if (fj_blas_saved != 1)
            fj_blas.set_threads(1);
    }
}

static void fj_blas_leave(void)
{
    if (--fj_blas_users == 0 && fj_blas_saved != 1)
        fj_blas.set_threads(fj_blas_saved);
}

/* C (M x N, ldc) = alpha op(A) op(B) + beta C, row-major, on the calling thread (the caller
 * brackets the job with fj_blas_enter / fj_blas_leave). ta, tb: transpose A, B. */
static inline void fj_gemm_f64(int ta, int tb, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                               const double *A, ptrdiff_t lda, const double *B,
                               ptrdiff_t ldb, double beta, double *C, ptrdiff_t ldc)
{
    const int a = ta ? FJ_CBLAS_TRANS : FJ_CBLAS_NO_TRANS;
    const int b = tb ? FJ_CBLAS_TRANS : FJ_CBLAS_NO_TRANS;
    if (fj_blas.ilp64)
        ((fj_dgemm64_fn)fj_blas.dgemm)(FJ_CBLAS_ROW_MAJOR, a, b, M, N, K, 1.0, A, lda, B, ldb,
                                       beta, C, ldc);
    else
        ((fj_dgemm32_fn)fj_blas.dgemm)(FJ_CBLAS_ROW_MAJOR, a, b, (int)M, (int)N, (int)K, 1.0,
                                       A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static inline void fj_gemm_f32(int ta, int tb, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                               const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                               float beta, float *C, ptrdiff_t ldc)
{
    const int a = ta ? FJ_CBLAS_TRANS : FJ_CBLAS_NO_TRANS;
    const int b = tb ? FJ_CBLAS_TRANS : FJ_CBLAS_NO_TRANS;
    if (fj_blas.ilp64)
        ((fj_sgemm64_fn)fj_blas.sgemm)(FJ_CBLAS_ROW_MAJOR, a, b, M, N, K, 1.0f, A, lda, B, ldb,
                                       beta, C, ldc);
    else
        ((fj_sgemm32_fn)fj_blas.sgemm)(FJ_CBLAS_ROW_MAJOR, a, b, (int)M, (int)N, (int)K, 1.0f,
                                       A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

#endif /* FJ_LAYER_BLAS_H */
