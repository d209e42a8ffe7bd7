"""Building the C programs of tests/c and benchmarks/c for the tests: one place for the
compiler lookup, the floating-point flags the kernels are built with (setup.py), the
include path of fastjac/_kernels and the skip where there is no C compiler."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "fastjac", "_kernels")
# the kernels' own floating-point flags: no contraction into fma, no errno, no traps
FP_FLAGS = ("-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno")


def compile_c(source, out, opt="-O0", flags=(), libs=(), needs_linux=False, check=True):
    """Build the C program ``source`` (a path relative to the repository's root) into
    ``out`` against fastjac/_kernels, with ``opt``, the kernels' floating-point flags, any
    extra ``flags`` and ``libs`` (and libm). Skips without a C compiler (or, with
    ``needs_linux``, off Linux). With ``check`` a failed build fails the test; without it,
    the CompletedProcess is returned for the caller to judge (to skip, say)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None or (needs_linux and sys.platform != "linux"):
        pytest.skip("needs a C compiler" + (" on Linux" if needs_linux else ""))
    build = subprocess.run(
        [cc, opt, *FP_FLAGS, *flags, "-I", KERNELS, "-x", "c", os.path.join(ROOT, source),
         "-o", str(out), "-lm", *libs], capture_output=True, text=True)
    if check:
        assert build.returncode == 0, build.stderr[-2000:]
    return build


def build_and_run(source, args, timeout, opt="-O3", needs_linux=False):
    """compile_c ``source`` into a temporary directory, run it with ``args`` and return the
    CompletedProcess (its output is printed, for ``pytest -s``)."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, os.path.splitext(os.path.basename(source))[0])
        compile_c(source, exe, opt, needs_linux=needs_linux)
        proc = subprocess.run([exe, *(str(a) for a in args)], capture_output=True, text=True,
                              timeout=timeout)
    print(proc.stdout)
    return proc
