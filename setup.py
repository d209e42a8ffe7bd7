"""Build the compiled kernels of fastjac.

Environment switches
--------------------
FASTJAC_DEBUG=1      bounds checks and wraparound on, -O0 -g: a debug build that the test
                     suite also runs under.
FASTJAC_NO_OPENMP=1  build without OpenMP even when the compiler supports it (the serial
                     build must pass the suite too).

OpenMP is detected by compiling and linking a tiny OpenMP program with the compiler that
will build the extensions; when that fails the build goes on serially with a warning, and
``fastjac.openmp_enabled()`` reports ``False`` at run time.
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
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


DEBUG = _env_flag("FASTJAC_DEBUG")
NO_OPENMP = _env_flag("FASTJAC_NO_OPENMP")

_OPENMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when it does not build."""
    compiler = new_compiler()
    customize_compiler(compiler)
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(_OPENMP_TEST)
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(
                    objs, os.path.join(tmp, "omp_test"), extra_postargs=lflags
                )
            except (CompileError, LinkError, OSError):
                continue
            return cflags, lflags
    return None


def _extensions():
    import numpy
    from Cython.Build import cythonize

    if NO_OPENMP:
        omp = None
    else:
        omp = _openmp_flags()
        if omp is None:
            warnings.warn(
                "fastjac: the C compiler cannot build OpenMP programs; building the kernels "
                "serially (n_threads will have no effect, fastjac.openmp_enabled() is False)",
                stacklevel=1,
            )
    omp_c, omp_l = omp if omp is not None else ([], [])

    if DEBUG:
        opt = ["-O0", "-g"]
    else:
        # -fno-math-errno lets gcc inline sqrt and vectorise loops that call it; it does not
        # change any result (fastjac never reads errno). No -ffast-math: it breaks NaN/inf.
        opt = ["-O3", "-fno-math-errno"]
    if sys.platform == "win32":
        opt = ["/O2"] if not DEBUG else ["/Od"]

    kernels = ["elementwise", "neuron"]
    exts = [
        Extension(
            f"fastjac._kernels.{name}",
            [f"fastjac/_kernels/{name}.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=opt + omp_c,
            extra_link_args=omp_l,
        )
        for name in kernels
        if os.path.exists(f"fastjac/_kernels/{name}.pyx")
    ]
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        "cdivision": True,
        "embedsignature": True,
    }
    return cythonize(exts, compiler_directives=directives, quiet=True)


setup(ext_modules=_extensions())
