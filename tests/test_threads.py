"""fastjac's caller-runs thread pool (issue 12): same bits for every thread count and
schedule, concurrent callers, fork, Dask, FASTJAC_NUM_THREADS, and a ThreadSanitizer run of
the pool's C stress test.

Schedules are forced through the pool's test hooks (``fastjac._kernels.pool``): helpers that
claim blocks in a shuffled order, late, or never, and a slow caller so that helpers run most
blocks. ``TEST_NO_THRESHOLD`` lets small arrays (a few blocks) go through the pool, which
keeps these tests fast.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest
from _cbuild import compile_c

import fastjac as fj
from fastjac import _validate as V
from fastjac._kernels import pool as P
from fastjac._kernels.elementwise import BLOCK_SIZE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(12)
THREADS = [1, 2, 3, 8, None]
SCHEDULES = {
    "normal": 0,
    "shuffled": P.TEST_SHUFFLE,
    "late": P.TEST_LATE,
    "slow-caller": P.TEST_SLOW_CALLER,
    "shuffled-late": P.TEST_SHUFFLE | P.TEST_LATE,
    "paused": P.TEST_PAUSE,
}
PARALLEL = fj.thread_info()["threads_enabled"] and fj.thread_info()["max_threads"] > 1


@contextlib.contextmanager
def schedule(flags):
    old = P._set_test_flags(flags | P.TEST_NO_THRESHOLD)
    try:
        yield
    finally:
        P._set_test_flags(old)


def _bits(res):
    if isinstance(res, tuple):
        return tuple(_bits(r) for r in res)
    if isinstance(res, fj.neuron.FitResult):
        return _bits((res.w, res.b, res.losses))
    if isinstance(res, fj.layer.FitResult):
        return _bits((res.W, res.b, res.losses))
    if isinstance(res, list):
        return _bits(tuple(res))
    if res is None:
        return None
    return np.asarray(res).tobytes()


# ---------------------------------------------------------------------------------------
# Every kernel family, as a function of (dtype, n_threads)
# ---------------------------------------------------------------------------------------

N_EW = 5 * BLOCK_SIZE + 123  # six blocks, the last one short


def _ew_data(dtype):
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 2.0, N_EW).astype(dtype)
    x = rng.uniform(-3.0, 3.0, N_EW).astype(dtype)
    gy = rng.normal(size=N_EW).astype(dtype)
    return w, x, gy


def _nr_data(dtype):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 50)).astype(dtype)
    w = rng.normal(size=50).astype(dtype)
    y = (np.maximum(X @ w + 0.1, 0) + 0.1 * rng.normal(size=3000)).astype(dtype)
    return X, y, w


FAMILIES = {
    "unary": lambda d, nt: (fj.tanh.vjp(d[1], d[2], n_threads=nt),
                            fj.exp(d[1], n_threads=nt),
                            fj.chain(fj.sin, fj.square).jvp(d[1], d[2], n_threads=nt)),
    "binary": lambda d, nt: (
        fj.elementwise(fj.mul, f=fj.exp, g=fj.sin).vjp(d[0], d[1], d[2], n_threads=nt),
        fj.div.jvp(d[0], d[1], d[2], d[2], n_threads=nt),
        fj.elementwise(fj.add, f=fj.log).vjp(d[0], 1.5, d[2], n_threads=nt)),
    "plain": lambda d, nt: (fj.mul.vjp(d[0], d[1], d[2], n_threads=nt),
                            fj.add(d[0], d[1], n_threads=nt),
                            fj.maximum.vjp(d[0], d[1], d[2], n_threads=nt)),
    "scalar-vjp": lambda d, nt: (fj.mul.vjp(d[1], 2.5, d[2], n_threads=nt),
                                 fj.div.vjp(0.75, d[0], d[2], n_threads=nt),
                                 fj.sub.sum_grad(d[1], 3.0, n_threads=nt)),
    "reduce": lambda d, nt: (fj.sum(d[1], n_threads=nt), fj.dot(d[0], d[1], n_threads=nt)),
}
NEURON = {
    "loss_grad": lambda d, nt: fj.neuron.loss_grad(d[0], d[1], d[2], 0.1, n_threads=nt),
    "loss_grad_X": lambda d, nt: fj.neuron.loss_grad(d[0], d[1], d[2], 0.1, n_threads=nt,
                                                     wrt=("w", "b", "X")),
    "activation": lambda d, nt: fj.neuron.activation(d[0], d[2], 0.1, n_threads=nt),
    "fit": lambda d, nt: fj.neuron.fit(d[0], d[1], lr=0.01, epochs=2, batch_size=2000,
                                       n_threads=nt),
}


def _ly_data(dtype, m=8, n=20):
    """A layer of one-pass shape (m n = 160: 7 blocks of 3000 rows), or with m=200, n=100
    one of BLAS shape (the fused pass between the products: 36 blocks)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, n)).astype(dtype)
    W = (rng.normal(size=(m, n)) / np.sqrt(n)).astype(dtype)
    b = rng.normal(scale=0.1, size=m)
    Y = (np.maximum(X @ W.T + b, 0) + 0.1 * rng.normal(size=(3000, m))).astype(dtype)
    A = fj.layer.activation(X, W, b, n_threads=1)
    G = rng.normal(size=(3000, m)).astype(dtype)
    return X, Y, W, b, A, G


LAYER = {
    "layer_loss_grad": lambda d, nt: fj.layer.loss_grad(*d[:4], n_threads=nt),  # C fast path
    "layer_loss_grad_X": lambda d, nt: fj.layer.loss_grad(*d[:4], wrt=("W", "b", "X"),
                                                          n_threads=nt),
    "layer_loss": lambda d, nt: fj.layer.loss(*d[:4], n_threads=nt),
    "layer_activation": lambda d, nt: fj.layer.activation(d[0], d[2], d[3], n_threads=nt),
    "layer_activation_vjp": lambda d, nt: fj.layer.activation_vjp(d[0], d[2], d[4], d[5],
                                                                  n_threads=nt),
    "layer_fit": lambda d, nt: fj.layer.fit(d[0], d[1], lr=0.01, epochs=2, batch_size=2000,
                                            n_threads=nt),
}
# The BLAS path: compare only what fastjac's fused pass computes (C and the bias gradient);
# the products are BLAS's, whose thread count n_threads does not set.
LAYER_BLAS = {
    "layer_blas_loss_grad_b": lambda d, nt: fj.layer.loss_grad(*d[:4], wrt="b",
                                                               n_threads=nt)[::2],
}
_FUSED = fj.fuse(lambda w, x, z: fj.tanh(w) * x + fj.maximum(w, z) * z - fj.sqrt(fj.abs(x)))
FUSE = {
    # a scalar input: per-block partial sums of its gradient, merged in block order
    "fuse_vjp_scalar": lambda d, nt: _FUSED.vjp(d[0], d[1], 0.3, d[2], n_threads=nt),
    "fuse_vjp": lambda d, nt: _FUSED.vjp(d[0], d[1], d[2], d[2], n_threads=nt),  # C fast path
    "fuse_value": lambda d, nt: _FUSED(d[0], d[1], 0.3, n_threads=nt),
    "fuse_sum_grad_scalar": lambda d, nt: _FUSED.sum_grad(d[0], 0.3, d[2], n_threads=nt),
    "fuse_jvp": lambda d, nt: _FUSED.jvp(d[0], d[1], 0.3, d[1], None, 1.0, n_threads=nt),
}
DATA = {"ew": _ew_data, "nr": _nr_data, "ly": _ly_data,
        "lyblas": lambda d: _ly_data(d, m=200, n=100)}
ALL = ([("ew", k, f) for k, f in FAMILIES.items()] + [("nr", k, f) for k, f in NEURON.items()]
       + [("ly", k, f) for k, f in LAYER.items()]
       + [("lyblas", k, f) for k, f in LAYER_BLAS.items()]
       + [("ew", k, f) for k, f in FUSE.items()])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,name,call", ALL, ids=[a[1] for a in ALL])
def test_bitwise_for_every_thread_count_and_schedule(kind, name, call, dtype):
    data = DATA[kind](dtype)
    ref = _bits(call(data, 1))  # n_threads=1 runs serially, without the pool
    for sname, flags in SCHEDULES.items():
        with schedule(flags):
            for nt in THREADS:
                assert _bits(call(data, nt)) == ref, (sname, nt)


@pytest.mark.skipif(not PARALLEL, reason="needs a threaded build and at least 2 threads")
def test_helpers_really_run_blocks_and_paused_helpers_do_not():
    w, x, gy = _ew_data(np.float64)
    ref = _bits(fj.tanh.vjp(x, gy, n_threads=1))
    before = fj.thread_info()
    with schedule(P.TEST_SLOW_CALLER):
        for _ in range(20):
            assert _bits(fj.tanh.vjp(x, gy, n_threads=2)) == ref
    mid = fj.thread_info()
    assert mid["parallel_calls"] >= before["parallel_calls"] + 20
    assert mid["helper_blocks"] > before["helper_blocks"]
    assert mid["helpers_started"] >= 1
    with schedule(P.TEST_PAUSE):
        for _ in range(20):
            assert _bits(fj.tanh.vjp(x, gy, n_threads=2)) == ref
    after = fj.thread_info()
    assert after["helper_blocks"] == mid["helper_blocks"]  # the caller ran every block
    assert after["caller_blocks"] >= mid["caller_blocks"] + 20 * 6


@pytest.mark.skipif(not PARALLEL, reason="needs a threaded build and at least 2 threads")
@pytest.mark.parametrize("name", ["fuse_vjp_scalar", "layer_loss_grad", "layer_fit",
                                  "layer_blas_loss_grad_b"])
def test_layer_and_fuse_run_on_the_pool(name):
    """A large call with n_threads=2 goes through the pool (no TEST_NO_THRESHOLD here), and
    helpers run blocks of it when the caller is slow."""
    kind, call = next((k, f) for k, nm, f in ALL if nm == name)
    data = DATA[kind](np.float64)
    if kind == "ew":  # above the element-wise threshold: 2**18 / cost weight elements
        data = tuple(np.tile(a, 80) for a in data)
    ref = _bits(call(data, 1))
    before = fj.thread_info()
    old = P._set_test_flags(P.TEST_SLOW_CALLER)
    calls = 0
    try:
        # At least 3 calls; more (up to 30) only while no helper has taken a block yet: on a
        # loaded machine the helper may not be scheduled during a whole call.
        while calls < 3 or (calls < 30
                            and fj.thread_info()["helper_blocks"] == before["helper_blocks"]):
            assert _bits(call(data, 2)) == ref
            calls += 1
    finally:
        P._set_test_flags(old)
    after = fj.thread_info()
    assert after["parallel_calls"] >= before["parallel_calls"] + calls
    assert after["helper_blocks"] > before["helper_blocks"]


def test_more_threads_are_bitwise_the_same_in_a_subprocess():
    """FASTJAC_NUM_THREADS above the CPU count: up to 4 helpers really take part."""
    if os.environ.get("FASTJAC_THREADS_CHILD"):
        pytest.skip("already the child")
    env = dict(os.environ, FASTJAC_NUM_THREADS="5", FASTJAC_THREADS_CHILD="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         os.path.abspath(__file__), "-k", "bitwise_for_every and (unary or loss_grad or reduce or fuse_vjp_scalar)"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


_HELPER_AVOID_CHILD = r"""
import os, threading, numpy as np, fastjac as fj
from fastjac._kernels import pool as P

def allowed(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                out = set()
                for part in line.split(":")[1].strip().split(","):
                    lo, _, hi = part.partition("-")
                    out.update(range(int(lo), int(hi or lo) + 1))
                return out

x = np.linspace(-3.0, 3.0, 64 * 4096)
gy = np.ones_like(x)
ref = fj.tanh.vjp(x, gy, n_threads=1).tobytes()
full = os.sched_getaffinity(0)
assert fj.tanh.vjp(x, gy, n_threads=2).tobytes() == ref  # starts the helper
main = threading.get_native_id()
helpers = [int(t) for t in os.listdir("/proc/self/task") if int(t) != main]
cpu = min(full)
os.sched_setaffinity(0, {cpu})          # the caller (this thread only) on one CPU
for tid in helpers:
    os.sched_setaffinity(tid, {cpu})    # and every other thread on the same one
P._set_test_flags(P.TEST_SLOW_CALLER)   # so that a helper takes part in the calls
# On a loaded machine the helper may not get the CPU during a call at all (then it has
# nothing to move for): call until it has moved, up to a generous bound.
for i in range(2000):
    assert fj.tanh.vjp(x, gy, n_threads=2).tobytes() == ref
    if i >= 19:
        masks = {tid: allowed(tid) for tid in helpers}
        moved = [tid for tid, m in masks.items() if cpu not in m]
        if moved:
            break
P._set_test_flags(0)
assert moved, masks                      # the pool's helper left the caller's CPU
for tid in moved:
    assert masks[tid] and masks[tid] <= full, masks
print("ok", len(moved))
"""


@pytest.mark.skipif(not PARALLEL or not sys.platform.startswith("linux")
                    or len(os.sched_getaffinity(0)) < 2,
                    reason="needs a threaded build on Linux with 2 CPUs")
def test_helper_moves_off_the_callers_cpu():
    """A helper that wakes on its caller's CPU narrows its own affinity to the CPUs it
    started with minus that one (fj_pool_impl.h, fj_helper_avoid); results stay the same."""
    proc = subprocess.run([sys.executable, "-c", _HELPER_AVOID_CHILD], capture_output=True,
                          text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, FASTJAC_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")


# ---------------------------------------------------------------------------------------
# Resolver
# ---------------------------------------------------------------------------------------

def test_one_resolver():
    cap = fj.thread_info()["max_threads"]
    assert V.n_threads(None, 10, 100) == 1               # below the threshold: serial
    assert V.n_threads(5, 10, 100) == 1
    assert V.n_threads(None, 1000, 100) == cap            # None: every thread of the cap
    assert V.n_threads(1, 1000, 100) == 1
    assert V.n_threads(2, 1000, 100) == min(2, cap)       # an upper bound
    assert V.n_threads(10**30, 1000, 100) == cap          # clamped
    assert V.n_threads(np.int64(2), 1000, 100) == min(2, cap)
    for bad, err in ((0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError),
                     ("2", TypeError)):
        with pytest.raises(err, match="n_threads"):
            V.n_threads(bad, 1000, 100)
        with pytest.raises(err, match="n_threads"):
            fj.exp(np.ones(3), n_threads=bad)
    assert not hasattr(V, "idle_cpus")


def test_thread_info():
    info = fj.thread_info()
    for key in ("threads_enabled", "max_threads", "cpu_count", "num_threads_env",
                "helpers_started", "helpers_sleeping", "busy", "parallel_calls",
                "busy_fallbacks", "helper_blocks", "caller_blocks", "forks"):
        assert key in info
    assert 1 <= info["max_threads"] <= P.MAX_THREADS
    assert info["helpers_started"] <= max(0, info["max_threads"] - 1)
    with pytest.warns(DeprecationWarning, match="thread_info"):
        assert fj.openmp_enabled() is info["threads_enabled"]


def _child(code, **env):
    e = dict(os.environ)
    e.pop("FASTJAC_NUM_THREADS", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=120)


def test_fastjac_num_threads_env():
    code = ("import numpy as np, fastjac as fj\n"
            "x = np.linspace(-1, 1, 2_000_000)\n"
            "r = fj.tanh.vjp(x, x)\n"
            "i = fj.thread_info()\n"
            "print(i['max_threads'], i['parallel_calls'], i['num_threads_env'], i['cpu_count'])\n")
    proc = _child(code, FASTJAC_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr
    cap, calls, env, _ = proc.stdout.split()
    assert (cap, calls, env) == ("1", "0", "1")
    assert "Warning" not in proc.stderr
    if fj.thread_info()["threads_enabled"]:
        proc = _child(code, FASTJAC_NUM_THREADS="3")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[:3] == ["3", "1", "3"]
    for bad in ("0", "-1", "x", "2.5"):
        proc = _child(code, FASTJAC_NUM_THREADS=bad)
        assert proc.returncode == 0, proc.stderr
        assert "RuntimeWarning" in proc.stderr and "FASTJAC_NUM_THREADS" in proc.stderr
        cap, _, env, cpus = proc.stdout.split()
        assert env == "None"
        assert cap == (cpus if fj.thread_info()["threads_enabled"] else "1")


# ---------------------------------------------------------------------------------------
# Concurrent callers, fork, Dask, interpreter exit
# ---------------------------------------------------------------------------------------

def test_eight_python_threads_mixed_calls():
    ew64, ew32, nr64 = _ew_data(np.float64), _ew_data(np.float32), _nr_data(np.float64)
    calls = [(FAMILIES[k], d) for k in FAMILIES for d in (ew64, ew32)]
    calls += [(NEURON["loss_grad"], nr64), (NEURON["activation"], nr64)]
    refs = [_bits(f(d, 1)) for f, d in calls]
    errors = []

    def work(tid):
        try:
            for i in range(200):
                k = (i * 7 + tid) % len(calls)
                f, d = calls[k]
                if _bits(f(d, (None, 2, 3)[i % 3])) != refs[k]:
                    errors.append((tid, i, k))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    with schedule(0):
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    assert not errors, errors[:5]
    info = fj.thread_info()
    assert not info["busy"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_fork_then_call_in_child_and_parent():
    w, x, gy = _ew_data(np.float64)
    X, y, wn = _nr_data(np.float64)
    ref = (_bits(fj.tanh.vjp(x, gy, n_threads=1)),
           _bits(fj.neuron.loss_grad(X, y, wn, 0.1, n_threads=1)))
    with schedule(0):
        fj.tanh.vjp(x, gy, n_threads=2)  # helpers exist before the fork
        pid = os.fork()
        if pid == 0:  # the child: a fresh pool
            ok = False
            try:
                ok = (_bits(fj.tanh.vjp(x, gy, n_threads=2)) == ref[0]
                      and _bits(fj.neuron.loss_grad(X, y, wn, 0.1, n_threads=None)) == ref[1]
                      and (fj.thread_info()["forks"] >= 1
                           or not fj.thread_info()["threads_enabled"]))
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert _bits(fj.tanh.vjp(x, gy, n_threads=2)) == ref[0]
        assert _bits(fj.neuron.loss_grad(X, y, wn, 0.1, n_threads=None)) == ref[1]


def _mp_task(seed):
    x = np.random.default_rng(seed).normal(size=N_EW)
    return fj.tanh.vjp(x, x, n_threads=None).tobytes()


@pytest.mark.skipif(sys.platform != "linux", reason="the 'fork' start method is Linux's")
def test_multiprocessing_fork_pool():
    import multiprocessing as mp

    with schedule(0):
        fj.tanh.vjp(*_ew_data(np.float64)[1:], n_threads=2)
        expect = [_mp_task(s) for s in range(4)]
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(_mp_task, range(4))
    assert got == expect


def test_dask_threaded_scheduler_four_workers():
    da = pytest.importorskip("dask.array")
    import dask
    import fastjac.dask as fjd

    X, y, w = _nr_data(np.float64)
    Xd = da.from_array(X, chunks=(400, 50))
    yd = da.from_array(y, chunks=400)
    x = np.random.default_rng(3).normal(size=40 * BLOCK_SIZE)
    xd = da.from_array(x, chunks=5 * BLOCK_SIZE)
    with schedule(0), dask.config.set(scheduler="threads", num_workers=4):
        ref = _bits(fjd.loss_grad(Xd, yd, w, 0.1, n_threads=1))
        ref_v = _bits(fjd.vjp(fj.tanh, xd, xd, n_threads=1).compute())
        for _ in range(5):
            assert _bits(fjd.loss_grad(Xd, yd, w, 0.1, n_threads=2)) == ref
            assert _bits(fjd.vjp(fj.tanh, xd, xd, n_threads=2).compute()) == ref_v
    assert ref_v == _bits(fj.tanh.vjp(x, x, n_threads=1))


def test_exit_while_helpers_are_alive_and_working():
    code = ("import threading, numpy as np, fastjac as fj\n"
            "x = np.linspace(-1, 1, 3_000_000)\n"
            "def spin():\n"
            "    while True:\n"
            "        fj.tanh.vjp(x, x, n_threads=None)\n"
            "for _ in range(3):\n"
            "    threading.Thread(target=spin, daemon=True).start()\n"
            "fj.tanh.vjp(x, x)\n"
            "print('bye')\n")
    for _ in range(3):
        proc = _child(code)
        assert proc.returncode == 0 and proc.stdout.strip() == "bye", proc.stderr


# ---------------------------------------------------------------------------------------
# The pool in C under ThreadSanitizer
# ---------------------------------------------------------------------------------------

def test_tsan_pool_stress():
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "test_pool")
        build = compile_c(os.path.join("tests", "c", "pool_stress.inc"), exe, "-O1",
                          flags=("-g", "-fsanitize=thread", "-DFJ_POOL_STANDALONE"),
                          libs=("-pthread",), needs_linux=True, check=False)
        if build.returncode != 0:
            pytest.skip(f"the compiler cannot build with ThreadSanitizer: {build.stderr[-300:]}")
        env = dict(os.environ, TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 exitcode=66")
        proc = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0 and "FATAL: ThreadSanitizer" in proc.stderr:
            pytest.skip(f"ThreadSanitizer cannot run here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "WARNING: ThreadSanitizer" not in proc.stderr
    assert proc.stdout.startswith("ok:")


def test_call_gap_harness_runs_the_pools_kernels_with_the_python_calls_bits():
    # benchmarks/c/call_gap.{inc,py} (docs/performance.rst, "Why these rows move"): the C
    # side runs the log and div VJP kernels over fastjac's blocks on fastjac's own pool
    # (through ctypes); the driver checks every variant's bits against the Python call's
    # before timing. Built at -O0 (a second or two), a few small rounds.
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("needs x86-64 Linux (the harness reads the time-stamp counter)")
    if not fj.thread_info()["threads_enabled"]:
        pytest.skip("the serial build has no pool to share")
    with tempfile.TemporaryDirectory() as tmp:
        lib = os.path.join(tmp, "call_gap.so")
        compile_c(os.path.join("benchmarks", "c", "call_gap.inc"), lib, "-O0",
                  flags=("-fPIC", "-shared", "-DFJ_POOL_STANDALONE"))
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", "c", "call_gap.py"), lib,
             "--n", str(300_000), "--rounds", "3"],
            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for what in ("div.vjp float64 n_threads=2", "log.vjp float32 n_threads=1", "C pool"):
        assert what in proc.stdout, proc.stdout
