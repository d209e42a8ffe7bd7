"""Where the time of a large VJP goes between Python and its kernel (docs/performance.rst).

Interleaves, in one process and in rotating order, for fj.log.vjp and fj.div.vjp at n = 1e6
(float64 and float32, 1 and 2 threads):

  py fresh   the Python call returning new arrays (what ``fastjac bench`` times);
  py out=    the same call writing into preallocated arrays;
  C pool     the same kernels over the same blocks on the same pool, called through ctypes
             from call_gap.inc (no argument checks, no allocation, no Python frame).

Per variant: median, 10% quantile and least time of a call, minor page faults per call,
the share of blocks the helper ran (fastjac.thread_info() for the Python calls, the block
trace for the C calls) and, for the C calls, how late the helper's first block started.
Every variant's output is checked bit for bit against ``py fresh``.

    gcc -O3 -fno-math-errno -ffp-contract=off -fno-trapping-math -fPIC -shared \\
        -DFJ_POOL_STANDALONE -Ifastjac/_kernels -x c benchmarks/c/call_gap.inc \\
        -o /tmp/call_gap.so
    python benchmarks/c/call_gap.py /tmp/call_gap.so [--rounds 200] [--n 1000000]
"""

import argparse
import ctypes
import resource
import time

import numpy as np

import fastjac as fj
from fastjac._kernels import pool as _pool


def _minflt():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib")
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--ops", default="div,log")
    ap.add_argument("--dtypes", default="64,32")
    ap.add_argument("--threads", default="2,1")
    a = ap.parse_args()

    lib = ctypes.CDLL(a.lib)
    lib.cg_init()
    lib.cg_tsc.restype = ctypes.c_ulonglong
    P = ctypes.c_void_p
    lib.cg_run.argtypes = [P, ctypes.c_int, ctypes.c_int, P, P, P, P, P, ctypes.c_ssize_t,
                           ctypes.c_int, P, P, P]
    # the pool inside fastjac._kernels.pool (dlopen of a loaded library returns it)
    pool_lib = ctypes.CDLL(_pool.__file__)
    pool_fn = ctypes.cast(pool_lib.fj_pool_parallel_for, P).value

    t0, c0 = time.perf_counter(), lib.cg_tsc()
    time.sleep(0.05)
    ticks_per_us = (lib.cg_tsc() - c0) / ((time.perf_counter() - t0) * 1e6)

    n = a.n
    nb = (n + 4095) // 4096
    tr0 = np.zeros(nb, np.uint64)
    tr1 = np.zeros(nb, np.uint64)
    who = np.zeros(nb, np.intc)
    rng = np.random.default_rng(0)
    print(f"n = {n}, {a.rounds} rounds, TSC {ticks_per_us / 1e3:.2f} GHz, "
          f"simd {fj._kernels.elementwise.simd_info() if hasattr(fj, '_kernels') else ''}")
    for opname in a.ops.split(","):
        for bits in a.dtypes.split(","):
            dt = np.float64 if bits == "64" else np.float32
            w = rng.uniform(0.5, 2.0, n).astype(dt)
            x = rng.uniform(0.5, 2.5, n).astype(dt)
            gy = rng.uniform(-0.5, 0.5, n).astype(dt)
            op = getattr(fj, opname)
            two = opname == "div"
            o = (np.empty_like(x), np.empty_like(x)) if two else np.empty_like(x)
            c1, c2 = np.empty_like(x), np.empty_like(x)
            ptr = lambda v: v.ctypes.data  # noqa: E731
            for nt in (int(s) for s in a.threads.split(",")):
                if two:
                    py_fresh = lambda: op.vjp(w, x, gy, n_threads=nt)  # noqa: E731
                    py_out = lambda: op.vjp(w, x, gy, out=o, n_threads=nt)  # noqa: E731
                else:
                    py_fresh = lambda: op.vjp(x, gy, n_threads=nt)  # noqa: E731
                    py_out = lambda: op.vjp(x, gy, out=o, n_threads=nt)  # noqa: E731
                code = 1 if two else 0
                args = (pool_fn, code, 1 if dt is np.float64 else 0, ptr(w), ptr(x), ptr(gy),
                        ptr(c1), ptr(c2), n, nt, ptr(tr0), ptr(tr1), ptr(who))

                def c_pool():
                    lib.cg_run(*args)
                    return (c1, c2) if two else c1

                variants = {"py fresh": py_fresh, "py out=": py_out, "C pool": c_pool}
                ref = py_fresh()
                ref = ref if two else (ref,)
                for name, f in variants.items():
                    got = f()
                    got = got if two else (got,)
                    for r, g in zip(ref, got):
                        if not np.array_equal(r.view(np.uint8), g.view(np.uint8)):
                            raise SystemExit(f"{opname} float{bits} {name}: bits differ")
                del got
                times = {k: [] for k in variants}
                faults = dict.fromkeys(variants, 0)
                helper = dict.fromkeys(variants, 0)
                blocks = dict.fromkeys(variants, 0)
                late = []
                names = list(variants)
                for r in range(a.rounds):
                    for k in names[r % 3:] + names[:r % 3]:
                        i0 = fj.thread_info()
                        m0 = _minflt()
                        s = time.perf_counter()
                        c_start = lib.cg_tsc()
                        res = variants[k]()
                        e = time.perf_counter()
                        m1 = _minflt()
                        del res
                        times[k].append(e - s)
                        faults[k] += m1 - m0
                        if k == "C pool":
                            hb = int(who.sum())
                            helper[k] += hb
                            blocks[k] += nb
                            if hb:
                                late.append((int(tr0[who == 1].min()) - c_start) / ticks_per_us)
                        else:
                            i1 = fj.thread_info()
                            hb = i1["helper_blocks"] - i0["helper_blocks"]
                            helper[k] += hb
                            blocks[k] += (hb + i1["caller_blocks"] - i0["caller_blocks"]
                                          if nt > 1 else nb)
                print(f"{opname}.vjp float{bits} n_threads={nt}:")
                for k in names:
                    t = np.array(times[k]) * 1e6
                    line = (f"  {k:9s} median {np.median(t):7.0f} us  10% {np.quantile(t, 0.1):7.0f}"
                            f"  min {t.min():7.0f}  faults/call {faults[k] / a.rounds:6.1f}"
                            f"  helper blocks {100 * helper[k] / max(blocks[k], 1):4.1f}%")
                    if k == "C pool" and late:
                        line += f"  helper starts after {np.median(late):.1f} us (median)"
                    print(line)
    print("output cache:", fj.output_cache_info())
    print("pool:", fj.thread_info())


if __name__ == "__main__":
    main()
