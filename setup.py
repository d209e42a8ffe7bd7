"""Build the compiled kernels of fastjac.

Environment switches
--------------------
FASTJAC_DEBUG=1      bounds checks and wraparound on, -O0 -g: a debug build that the test
                     suite also runs under.
FASTJAC_SERIAL=1     build the thread pool without threads: every kernel runs on the calling
                     thread (the serial build must pass the suite too). The old name
                     FASTJAC_NO_OPENMP=1 means the same.

FASTJAC_NO_LIBMVEC=1 build without glibc's libmvec even when it links (the opt-in "fast"
                     precision mode then falls back to libm).

Parallel kernels run on fastjac's own caller-runs thread pool (fastjac/_kernels/fj_pool_impl.h,
POSIX threads; no OpenMP). It is compiled into one extension, ``fastjac._kernels.pool``, that
the kernel modules cimport, so a process has exactly one pool. Where pthreads are not
available (or with FASTJAC_SERIAL=1) the pool runs every call serially and
``fastjac.thread_info()["threads_enabled"]`` is ``False``. glibc's vector math library
(libmvec, used only in the opt-in ``fastjac.set_precision("fast")`` mode) is detected by
compiling and linking a tiny program; without it the build succeeds and "fast" means libm.

Every kernel is compiled with ``-ffp-contract=off``: no fused multiply-add is formed, so the
SSE2, AVX2 and AVX-512 code paths selected at run time give bitwise-identical results.
"""
import os
import sys
import tempfile
import warnings

from setuptools import Extension, setup

try:  # setuptools vendors distutils since Python 3.12 removed it from the stdlib
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError, LinkError
    from setuptools._distutils.sysconfig import customize_compiler
except ImportError:  # pragma: no cover - very old setuptools
    from distutils.ccompiler import new_compiler
    from distutils.errors import CompileError, LinkError
    from distutils.sysconfig import customize_compiler


def _env_flag(name):
    # The same rule as fastjac._config.env_flag (on: 1/true/yes/on; off: 0/false/no/off or
    # empty; anything else warns and is off). A copy, because setup.py runs before the
    # package it builds can be imported.
    raw = os.environ.get(name)
    value = "" if raw is None else raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value not in ("0", "false", "no", "off", ""):
        warnings.warn(f"{name}={raw!r} is neither on (1, true, yes, on) nor off "
                      "(0, false, no, off); using off")
    return False


DEBUG = _env_flag("FASTJAC_DEBUG")
SERIAL = _env_flag("FASTJAC_SERIAL") or _env_flag("FASTJAC_NO_OPENMP")
NO_LIBMVEC = _env_flag("FASTJAC_NO_LIBMVEC")

_LIBMVEC_TEST = r"""
#include <immintrin.h>
__m256d _ZGVdN4v_sin(__m256d);
__m512d _ZGVeN8v_sin(__m512d);
__attribute__((target("avx512f"))) static double f8(double x) {
    double o[8];
    _mm512_storeu_pd(o, _ZGVeN8v_sin(_mm512_set1_pd(x)));
    return o[0];
}
__attribute__((target("avx2"))) static double f4(double x) {
    double o[4];
    _mm256_storeu_pd(o, _ZGVdN4v_sin(_mm256_set1_pd(x)));
    return o[0];
}
int main(int argc, char** argv) {
    (void)argv;
    if (argc > 5) return (int)(f8(argc) + f4(argc));
    return 0;
}
"""


def _try_build(source, cflags, lflags, libraries=()):
    """True when ``source`` compiles and links with the extension's compiler."""
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), libraries=list(libraries),
                                     extra_postargs=lflags)
        except (CompileError, LinkError, OSError):
            return False
    return True


def _libmvec_available():
    """glibc's libmvec on x86-64 Linux with gcc (the kernels call its AVX2/AVX-512 entry
    points directly); False elsewhere or when the probe program does not build."""
    if NO_LIBMVEC or sys.platform != "linux" or os.uname().machine not in ("x86_64", "amd64"):
        return False
    return _try_build(_LIBMVEC_TEST, [], [], libraries=["mvec", "m"])


def _write_opcodes():
    # fj_opcodes.pxi and fj_opcodes.h from the one op table, fastjac/_optable.py (loaded by
    # path: the package is not built yet). Rewritten only when the table changed.
    import importlib.util
    path = os.path.join("fastjac", "_kernels", "_gen_opcodes.py")
    spec = importlib.util.spec_from_file_location("_fastjac_gen_opcodes", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.write()


def _extensions():
    import numpy
    from Cython.Build import cythonize

    _write_opcodes()

    threads = not SERIAL and sys.platform != "win32"
    pool_macros = [] if threads else [("FJ_POOL_SERIAL", "1")]
    pool_libs = ["pthread"] if threads else []

    if DEBUG:
        opt = ["-O0", "-g"]
    else:
        # -fno-math-errno lets gcc inline sqrt and vectorise loops that call it; it does not
        # change any result (fastjac never reads errno). No -ffast-math: it breaks NaN/inf.
        opt = ["-O3", "-fno-math-errno"]
    # No FMA contraction: the same bits whichever SIMD clone runs (see fj_vmath.h).
    # -fno-trapping-math: fastjac never reads the floating-point exception flags, and
    # without it gcc may not turn the NaN-aware selects of relu, abs, maximum and minimum
    # into vector blends (a comparison "might trap"). Results are unchanged.
    opt = opt + ["-ffp-contract=off", "-fno-trapping-math"]
    if sys.platform == "win32":
        opt = ["/O2"] if not DEBUG else ["/Od"]
    libmvec = sys.platform != "win32" and _libmvec_available()

    pool = Extension(
        "fastjac._kernels.pool",
        ["fastjac/_kernels/pool.pyx"],
        include_dirs=["fastjac/_kernels"],
        define_macros=pool_macros,
        libraries=pool_libs,
        depends=["fastjac/_kernels/fj_pool.h", "fastjac/_kernels/fj_pool_impl.h",
                 "fastjac/_kernels/pool.pxd"],
        extra_compile_args=opt,
    )
    kernels = ["outputs", "elementwise", "neuron", "fused", "layer"]
    exts = [pool] + [
        Extension(
            f"fastjac._kernels.{name}",
            [f"fastjac/_kernels/{name}.pyx"],
            include_dirs=[numpy.get_include(), "fastjac/_kernels"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
            + ([("FJ_HAVE_LIBMVEC", "1")] if libmvec and name == "elementwise" else []),
            libraries=(["mvec", "m"] if libmvec and name == "elementwise" else [])
            + (["dl"] if name == "layer" and sys.platform.startswith("linux") else []),
            depends=[f"fastjac/_kernels/{h}" for h in ("_common.pxd", "elementwise.pxd",
                                                        "fastpath_checks.pxi", "reduce.pxi",
                                                        "fj_cpu.h", "fj_vmath.h", "fj_vmath32.h",
                                                        "fj_exp_table.h",
                                                        "fj_reduce.h", "fj_vtrig.h",
                                                        "neuron_block.h", "fj_fused.h", "fj_fused32.h",
                                                        "fused32.pxi",
                                                        "fj_tile.h", "fj_vdiv.h",
                                                        "neuron_block_avx2.h",
                                                        "layer_block.h", "fj_layer_blas.h",
                                                        "pool.pxd")],
            extra_compile_args=opt,
        )
        for name in kernels
        if os.path.exists(f"fastjac/_kernels/{name}.pyx")
    ]
    for ext in exts[1:]:  # every kernel module: the output cache's API and the op codes
        ext.depends += [f"fastjac/_kernels/{h}"
                        for h in ("outputs.pxd", "fj_opcodes.pxi", "fj_opcodes.h")]
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "cdivision": True,
        "embedsignature": True,
    }
    # cythonize regenerates a .c only when its .pyx is newer, so switching between the debug
    # and the optimised build would keep the other build's directives (bounds checks on or
    # off) in the .c files: a stamp of the directives forces regeneration when they change.
    stamp = os.path.join("fastjac", "_kernels", ".cython_directives")
    wanted = repr(sorted(directives.items()))
    try:
        with open(stamp, encoding="utf-8") as f:
            force = f.read() != wanted
    except OSError:
        force = True
    exts = cythonize(exts, compiler_directives=directives, quiet=True, force=force)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(wanted)
    return exts


setup(ext_modules=_extensions())
