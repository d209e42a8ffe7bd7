/* The one CPU-feature probe of fastjac's kernels.

   Every header that has code for several instruction sets (fj_vmath.h, fj_reduce.h,
   neuron_block.h, layer_block.h) asks this one function which the CPU runs, so the answer,
   its cache and the compilers it works with are written once:

     fj_cpu_probe()   FJ_CPU_AVX512 (AVX-512 F, DQ and VL, the subset the kernels' AVX-512
                      code may use; it implies AVX2), FJ_CPU_AVX2, or
                      FJ_CPU_BASELINE (anything else, and every non-x86 or non-GCC-compatible
                      build). Asked once and cached (a benign race: every thread that asks
                      gets the same answer).

   Each header keeps its own "level in force" (at most the probe's answer) so that tests can
   force a lower version of one family of loops and compare the bits (_set_reduce_level,
   _set_vmath_level, the neuron's set_level). */
#ifndef FJ_CPU_H
#define FJ_CPU_H

#define FJ_CPU_BASELINE 0
#define FJ_CPU_AVX2 1
#define FJ_CPU_AVX512 2

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FJ_CPU_X86 1
#else
#define FJ_CPU_X86 0
#endif

static int fj_cpu_probe_cache = -1;

static int fj_cpu_probe(void)
{
    int level = FJ_CPU_BASELINE;
    if (fj_cpu_probe_cache >= 0)
        return fj_cpu_probe_cache;
#if FJ_CPU_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                        && __builtin_cpu_supports("avx512vl")
                    ? FJ_CPU_AVX512
                    : FJ_CPU_AVX2;
#endif
    fj_cpu_probe_cache = level;
    return level;
}

#endif /* FJ_CPU_H */
