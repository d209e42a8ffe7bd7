/* The AVX2 version of fj_block_sums_f64 / _f32 (see neuron_block.h for what they compute
 * and why the arithmetic, lane by lane, is that of the portable version). Included by
 * neuron_block.h only; defines fj_block_sums_f64_avx2 and fj_block_sums_f32_avx2, or,
 * where FJ_NEURON_HAVE_AVX2 is 0, stubs that are never called.
 */
#ifndef FJ_NEURON_BLOCK_AVX2_H
#define FJ_NEURON_BLOCK_AVX2_H

/* Software prefetch distance for short contiguous rows, in bytes ahead of the current
 * group of four rows (measured best of 1, 2, 4, 8 KB), and the longest rows that get it:
 * longer rows are long sequential streams the hardware prefetcher follows by itself. */
#define FJ_PREFETCH_BYTES 2048
#define FJ_PREFETCH_MAX_ROW_BYTES 2048
/* float32 rows of at most this many elements are widened once into an L1 buffer of
 * 4 * FJ_STASH_MAX_N doubles (8 KB) on the stack. */
#define FJ_STASH_MAX_N 256
/* Rows of at most this many elements get a copy of the loop with n a compile-time constant
 * (the gradient case only): for short rows the loop overhead and the remainder are most
 * of the work, and unrolling them made n = 3..16 20-40% faster (fit at n = 10). The
 * arithmetic is the same; only the control flow is resolved at compile time. */
#define FJ_CONST_N_MAX 16

#if FJ_NEURON_HAVE_AVX2

#define FJ_AVX2_FN __attribute__((target("avx2"), optimize("fp-contract=off")))
#define FJ_AVX2_LD_F64(p) _mm256_loadu_pd(p)
#define FJ_AVX2_LD_F32(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
/* masked loads of up to four elements (mk: 64-bit lanes, mk32: 32-bit lanes); masked-off
 * lanes are 0 and their memory is not read, so a row's end is never overrun */
#define FJ_AVX2_MLD_F64(p, mk, mk32) ((void)(mk32), _mm256_maskload_pd(p, mk))
#define FJ_AVX2_MLD_F32(p, mk, mk32) ((void)(mk), _mm256_cvtps_pd(_mm_maskload_ps(p, mk32)))

/* In the dispatcher (X, y, r0, r1, w, b, part in scope): BODY with do_gw 1 and n the
 * constant 1..FJ_CONST_N_MAX (16) when n is one of them; falls through otherwise. */
#define FJ_CONST_N_CASE(BODY, IDX, K)                                                        \
    case K:                                                                                  \
        BODY(X, y, IDX, r0, r1, K, w, b, 1, stream, part);                                   \
        return;
#define FJ_CONST_N_SWITCH(BODY, IDX)                                                         \
    do {                                                                                     \
        switch (n) {                                                                         \
            FJ_CONST_N_CASE(BODY, IDX, 1) FJ_CONST_N_CASE(BODY, IDX, 2)                      \
            FJ_CONST_N_CASE(BODY, IDX, 3) FJ_CONST_N_CASE(BODY, IDX, 4)                      \
            FJ_CONST_N_CASE(BODY, IDX, 5) FJ_CONST_N_CASE(BODY, IDX, 6)                      \
            FJ_CONST_N_CASE(BODY, IDX, 7) FJ_CONST_N_CASE(BODY, IDX, 8)                      \
            FJ_CONST_N_CASE(BODY, IDX, 9) FJ_CONST_N_CASE(BODY, IDX, 10)                     \
            FJ_CONST_N_CASE(BODY, IDX, 11) FJ_CONST_N_CASE(BODY, IDX, 12)                    \
            FJ_CONST_N_CASE(BODY, IDX, 13) FJ_CONST_N_CASE(BODY, IDX, 14)                    \
            FJ_CONST_N_CASE(BODY, IDX, 15) FJ_CONST_N_CASE(BODY, IDX, 16)                    \
        default:                                                                             \
            break;                                                                           \
        }                                                                                    \
    } while (0)

/* In the body (j, m, w in scope): A += the lane-wise products of the first m elements of
 * row X with w, four at a time (lane k takes the elements j = k mod 4), the arithmetic of
 * the in-step loop for one row. */
#define FJ_AVX2_DOT(LOAD, A, X)                                                              \
    for (j = 0; j < m; j += 4)                                                               \
        A = _mm256_add_pd(A, _mm256_mul_pd(LOAD((X) + j), _mm256_loadu_pd(w + j)))

/* T the element type of X and y, LOAD its widening load of four elements, MLOAD its masked
 * one (the last n mod 4 elements of a row), STASH whether
 * widened rows are worth keeping (float32). NAME##_body is inlined once for each
 * combination of (idx given, do_gw). */
#define FJ_DEFINE_BLOCK_SUMS_AVX2(NAME, T, LOAD, MLOAD, STASH)                               \
    static inline __attribute__((always_inline)) FJ_AVX2_FN void NAME##_body(                \
        const T *restrict X, const T *restrict y, const Py_ssize_t *restrict idx,            \
        Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, const double *restrict w, double b,      \
        int do_gw, int stream, double *restrict part)                                        \
    {                                                                                        \
        double buf[4 * FJ_STASH_MAX_N];                                                      \
        double sse = 0.0, gb = 0.0;                                                          \
        double *restrict g = part + 2;                                                       \
        const Py_ssize_t m = n - (n & 3);                                                    \
        const int stash = STASH && do_gw && n <= FJ_STASH_MAX_N;                             \
        const int seq = stream && !stash; /* dot products one row after the other */         \
        const int prefetch = (size_t)n * sizeof(T) <= FJ_PREFETCH_MAX_ROW_BYTES              \
                             && (idx != NULL || !seq);                                       \
        const __m256d zero = _mm256_setzero_pd(), bv = _mm256_set1_pd(b);                    \
        const __m256d sign = _mm256_set1_pd(-0.0);                                           \
        Py_ssize_t i, j;                                                                     \
        for (j = 0; j < n; j++)                                                              \
            g[j] = 0.0;                                                                      \
        for (i = r0; i + 3 < r1; i += 4) {                                                   \
            const Py_ssize_t q0 = idx ? idx[i] : i, q1 = idx ? idx[i + 1] : i + 1;           \
            const Py_ssize_t q2 = idx ? idx[i + 2] : i + 2, q3 = idx ? idx[i + 3] : i + 3;   \
            const T *x0 = X + q0 * n, *x1 = X + q1 * n, *x2 = X + q2 * n, *x3 = X + q3 * n;  \
            __m256d a0 = zero, a1 = zero, a2 = zero, a3 = zero;                              \
            __m256d T0, T1, T2, T3, yv, zv, ev, rv, cv, sv, inactive;                        \
            __m256d col0 = _mm256_setzero_pd(), col1 = col0, col2 = col0;                    \
            double c[4], s[4];                                                               \
            if (prefetch) { /* prefetching never faults; the bounds only avoid waste */      \
                if (idx == NULL) { /* byte offsets, bounded before a pointer is formed */    \
                    const size_t lim = (size_t)(r1 * n) * sizeof(T);                         \
                    size_t off = (size_t)(i * n) * sizeof(T) + FJ_PREFETCH_BYTES;            \
                    size_t end = (size_t)((i + 4) * n) * sizeof(T) + FJ_PREFETCH_BYTES;      \
                    for (end = end < lim ? end : lim; off < end; off += 64)                  \
                        _mm_prefetch((const char *)X + off, _MM_HINT_T0);                    \
                } else if (i + 11 < r1) {                                                    \
                    Py_ssize_t u;                                                            \
                    for (u = i + 8; u < i + 12; u++) {                                       \
                        const char *p = (const char *)(X + idx[u] * n);                      \
                        const char *e = p + n * sizeof(T);                                   \
                        for (; p < e; p += 64)                                               \
                            _mm_prefetch(p, _MM_HINT_T0);                                    \
                        _mm_prefetch(e - 1, _MM_HINT_T0);                                    \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            if (stash) {                                                                     \
                for (j = 0; j < m; j += 4) {                                                 \
                    const __m256d wv = _mm256_loadu_pd(w + j);                               \
                    const __m256d v0 = LOAD(x0 + j), v1 = LOAD(x1 + j);                      \
                    const __m256d v2 = LOAD(x2 + j), v3 = LOAD(x3 + j);                      \
                    _mm256_storeu_pd(buf + 4 * j, v0);                                       \
                    _mm256_storeu_pd(buf + 4 * j + 4, v1);                                   \
                    _mm256_storeu_pd(buf + 4 * j + 8, v2);                                   \
                    _mm256_storeu_pd(buf + 4 * j + 12, v3);                                  \
                    a0 = _mm256_add_pd(a0, _mm256_mul_pd(v0, wv));                           \
                    a1 = _mm256_add_pd(a1, _mm256_mul_pd(v1, wv));                           \
                    a2 = _mm256_add_pd(a2, _mm256_mul_pd(v2, wv));                           \
                    a3 = _mm256_add_pd(a3, _mm256_mul_pd(v3, wv));                           \
                }                                                                            \
            } else if (seq) { /* X from memory: one row after the other (neuron_block.h) */  \
                FJ_AVX2_DOT(LOAD, a0, x0);                                                   \
                FJ_AVX2_DOT(LOAD, a1, x1);                                                   \
                FJ_AVX2_DOT(LOAD, a2, x2);                                                   \
                FJ_AVX2_DOT(LOAD, a3, x3);                                                   \
            } else { /* X in cache: the four rows in step, four chains in each iteration */  \
                for (j = 0; j < m; j += 4) {                                                 \
                    const __m256d wv = _mm256_loadu_pd(w + j);                               \
                    a0 = _mm256_add_pd(a0, _mm256_mul_pd(LOAD(x0 + j), wv));                 \
                    a1 = _mm256_add_pd(a1, _mm256_mul_pd(LOAD(x1 + j), wv));                 \
                    a2 = _mm256_add_pd(a2, _mm256_mul_pd(LOAD(x2 + j), wv));                 \
                    a3 = _mm256_add_pd(a3, _mm256_mul_pd(LOAD(x3 + j), wv));                 \
                }                                                                            \
            }                                                                                \
            { /* transpose: lane k of Tq is accumulator q of row k */                        \
                const __m256d t0 = _mm256_unpacklo_pd(a0, a1);                               \
                const __m256d t1 = _mm256_unpackhi_pd(a0, a1);                               \
                const __m256d t2 = _mm256_unpacklo_pd(a2, a3);                               \
                const __m256d t3 = _mm256_unpackhi_pd(a2, a3);                               \
                T0 = _mm256_permute2f128_pd(t0, t2, 0x20);                                   \
                T1 = _mm256_permute2f128_pd(t1, t3, 0x20);                                   \
                T2 = _mm256_permute2f128_pd(t0, t2, 0x31);                                   \
                T3 = _mm256_permute2f128_pd(t1, t3, 0x31);                                   \
            }                                                                                \
            if (n - m == 1) { /* the remainder goes to the first accumulator, in order */    \
                col0 = _mm256_set_pd((double)x3[m], (double)x2[m], (double)x1[m],            \
                                     (double)x0[m]);                                         \
                T0 = _mm256_add_pd(T0, _mm256_mul_pd(col0, _mm256_set1_pd(w[m])));           \
            } else if (m < n) {                                                              \
                /* two or three: the rows' last elements by masked loads (lanes past the     \
                   row read nothing), transposed: colk = element m + k of the four rows */   \
                const __m256i mk = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - m),             \
                                                      _mm256_set_epi64x(3, 2, 1, 0));        \
                const __m128i mk32 = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n - m)),           \
                                                     _mm_set_epi32(3, 2, 1, 0));             \
                const __m256d u0 = MLOAD(x0 + m, mk, mk32), u1 = MLOAD(x1 + m, mk, mk32);    \
                const __m256d u2 = MLOAD(x2 + m, mk, mk32), u3 = MLOAD(x3 + m, mk, mk32);    \
                const __m256d t0 = _mm256_unpacklo_pd(u0, u1), t1 = _mm256_unpackhi_pd(u0, u1); \
                const __m256d t2 = _mm256_unpacklo_pd(u2, u3), t3 = _mm256_unpackhi_pd(u2, u3); \
                col0 = _mm256_permute2f128_pd(t0, t2, 0x20);                                 \
                col1 = _mm256_permute2f128_pd(t1, t3, 0x20);                                 \
                col2 = _mm256_permute2f128_pd(t0, t2, 0x31);                                 \
                T0 = _mm256_add_pd(T0, _mm256_mul_pd(col0, _mm256_set1_pd(w[m])));           \
                if (n - m > 1)                                                               \
                    T0 = _mm256_add_pd(T0, _mm256_mul_pd(col1, _mm256_set1_pd(w[m + 1])));   \
                if (n - m > 2)                                                               \
                    T0 = _mm256_add_pd(T0, _mm256_mul_pd(col2, _mm256_set1_pd(w[m + 2])));   \
            }                                                                                \
            /* all four rows at once, lane by lane the scalar arithmetic of _sq_residual */  \
            yv = _mm256_set_pd((double)y[q3], (double)y[q2], (double)y[q1], (double)y[q0]);  \
            zv = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(T0, T1), _mm256_add_pd(T2, T3)),  \
                               bv);                                                          \
            inactive = _mm256_cmp_pd(zv, zero, _CMP_LE_OQ);                                  \
            ev = _mm256_sub_pd(zv, yv);                                                      \
            rv = _mm256_blendv_pd(ev, _mm256_xor_pd(yv, sign), inactive);                    \
            cv = _mm256_blendv_pd(ev, _mm256_mul_pd(_mm256_sub_pd(zero, yv), zero),          \
                                  inactive);                                                 \
            sv = _mm256_mul_pd(rv, rv);                                                      \
            _mm256_storeu_pd(s, sv);                                                         \
            _mm256_storeu_pd(c, cv);                                                         \
            sse += s[0];                                                                     \
            sse += s[1];                                                                     \
            sse += s[2];                                                                     \
            sse += s[3];                                                                     \
            gb += c[0];                                                                      \
            gb += c[1];                                                                      \
            gb += c[2];                                                                      \
            gb += c[3];                                                                      \
            if (do_gw) { /* g += (c0 x0 + c1 x1) + (c2 x2 + c3 x3), lane by lane */          \
                const __m256d c0 = _mm256_set1_pd(c[0]), c1 = _mm256_set1_pd(c[1]);          \
                const __m256d c2 = _mm256_set1_pd(c[2]), c3 = _mm256_set1_pd(c[3]);          \
                if (stash) {                                                                 \
                    for (j = 0; j < m; j += 4) {                                             \
                        const __m256d p01 =                                                  \
                            _mm256_add_pd(_mm256_mul_pd(c0, _mm256_loadu_pd(buf + 4 * j)),   \
                                          _mm256_mul_pd(c1, _mm256_loadu_pd(buf + 4 * j + 4))); \
                        const __m256d p23 = _mm256_add_pd(                                   \
                            _mm256_mul_pd(c2, _mm256_loadu_pd(buf + 4 * j + 8)),             \
                            _mm256_mul_pd(c3, _mm256_loadu_pd(buf + 4 * j + 12)));           \
                        _mm256_storeu_pd(g + j, _mm256_add_pd(_mm256_loadu_pd(g + j),        \
                                                              _mm256_add_pd(p01, p23)));     \
                    }                                                                        \
                } else {                                                                     \
                    for (j = 0; j < m; j += 4) {                                             \
                        const __m256d p01 = _mm256_add_pd(_mm256_mul_pd(c0, LOAD(x0 + j)),   \
                                                          _mm256_mul_pd(c1, LOAD(x1 + j)));  \
                        const __m256d p23 = _mm256_add_pd(_mm256_mul_pd(c2, LOAD(x2 + j)),   \
                                                          _mm256_mul_pd(c3, LOAD(x3 + j)));  \
                        _mm256_storeu_pd(g + j, _mm256_add_pd(_mm256_loadu_pd(g + j),        \
                                                              _mm256_add_pd(p01, p23)));     \
                    }                                                                        \
                }                                                                            \
                if (m < n) { /* g[j] += (c0 x0[j] + c1 x1[j]) + (c2 x2[j] + c3 x3[j]): the   \
                    products lane by lane, the pair sums by hadd, then low + high half */    \
                    const __m256d h01 = _mm256_hadd_pd(_mm256_mul_pd(cv, col0),              \
                                                       _mm256_mul_pd(cv, col1));             \
                    const __m128d s01 = _mm_add_pd(_mm256_castpd256_pd128(h01),              \
                                                   _mm256_extractf128_pd(h01, 1));           \
                    if (n - m == 1) {                                                        \
                        _mm_store_sd(g + m, _mm_add_sd(_mm_load_sd(g + m), s01));            \
                    } else {                                                                 \
                        _mm_storeu_pd(g + m, _mm_add_pd(_mm_loadu_pd(g + m), s01));          \
                        if (n - m == 3) {                                                    \
                            const __m256d p2 = _mm256_mul_pd(cv, col2);                      \
                            const __m256d h2 = _mm256_hadd_pd(p2, p2);                       \
                            const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(h2),        \
                                                          _mm256_extractf128_pd(h2, 1));     \
                            _mm_store_sd(g + m + 2, _mm_add_sd(_mm_load_sd(g + m + 2), s2)); \
                        }                                                                    \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (; i < r1; i++) { /* the last r1 - r0 mod 4 rows, one at a time */               \
            const Py_ssize_t q0 = idx ? idx[i] : i;                                          \
            const T *x0 = X + q0 * n;                                                        \
            __m256d a0 = zero;                                                               \
            double av[4], t0, c0;                                                            \
            for (j = 0; j < m; j += 4)                                                       \
                a0 = _mm256_add_pd(a0, _mm256_mul_pd(LOAD(x0 + j), _mm256_loadu_pd(w + j))); \
            _mm256_storeu_pd(av, a0);                                                        \
            t0 = av[0];                                                                      \
            for (j = m; j < n; j++)                                                          \
                t0 += (double)x0[j] * w[j];                                                  \
            sse += fj_sq_residual(((t0 + av[1]) + (av[2] + av[3])) + b, (double)y[q0], &c0); \
            gb += c0;                                                                        \
            if (do_gw)                                                                       \
                for (j = 0; j < n; j++)                                                      \
                    g[j] += c0 * (double)x0[j];                                              \
        }                                                                                    \
        part[0] = sse;                                                                       \
        part[1] = gb;                                                                        \
    }                                                                                        \
                                                                                             \
    static FJ_AVX2_FN void NAME(const T *X, const T *y, const Py_ssize_t *idx, Py_ssize_t r0, \
                                Py_ssize_t r1, Py_ssize_t n, const double *w, double b,      \
                                int do_gw, int stream, double *part)                         \
    {                                                                                        \
        if (do_gw && n <= FJ_CONST_N_MAX) { /* n a constant: the j loops unrolled */         \
            if (idx == NULL)                                                                 \
                FJ_CONST_N_SWITCH(NAME##_body, NULL);                                        \
            else                                                                             \
                FJ_CONST_N_SWITCH(NAME##_body, idx);                                         \
        }                                                                                    \
        FJ_CALL_BODY(NAME##_body, X, y, idx, r0, r1, n, w, b, do_gw, stream, part);          \
    }

FJ_DEFINE_BLOCK_SUMS_AVX2(fj_block_sums_f64_avx2, double, FJ_AVX2_LD_F64, FJ_AVX2_MLD_F64, 0)
FJ_DEFINE_BLOCK_SUMS_AVX2(fj_block_sums_f32_avx2, float, FJ_AVX2_LD_F32, FJ_AVX2_MLD_F32, 1)

#else /* no AVX2 version on this platform: never called (fj_neuron_get_level is 0) */
static void fj_block_sums_f64_avx2(const double *X, const double *y, const Py_ssize_t *idx,
                                   Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                                   const double *w, double b, int do_gw, int stream, double *part)
{
    abort();
}
static void fj_block_sums_f32_avx2(const float *X, const float *y, const Py_ssize_t *idx,
                                   Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                                   const double *w, double b, int do_gw, int stream, double *part)
{
    abort();
}
#endif

#endif /* FJ_NEURON_BLOCK_AVX2_H */
