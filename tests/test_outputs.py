"""The output cache (fastjac/_kernels/outputs.pyx): large outputs reuse the memory of freed
outputs; every array is still an ordinary, independent NumPy array."""

import os
import pickle
import threading

import numpy as np
import pytest

import fastjac as fj
from fastjac._kernels import outputs

N = 100_000  # 800 KB float64 / 400 KB float32: above the 256 KiB where the cache starts


@pytest.fixture
def cache():
    old = fj.set_output_cache(0)  # an empty cache (0 frees what it holds), then 64 MiB
    fj.set_output_cache(64 << 20)
    yield
    fj.set_output_cache(old)


def _hits():
    return fj.output_cache_info()["hits"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_outputs_reuse_freed_outputs_and_stay_correct(cache, dtype):
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 2.0, N).astype(dtype)
    x = rng.uniform(0.5, 2.0, N).astype(dtype)
    gy = rng.standard_normal(N).astype(dtype)
    f = fj.fuse(lambda w, x: fj.exp(w) * x + w / x)
    calls = [
        (lambda: fj.exp(x), lambda: np.exp(x)),
        (lambda: fj.mul(w, x), lambda: w * x),
        (lambda: fj.mul.vjp(w, x, gy), lambda: (gy * x, gy * w)),
        (lambda: f(w, x), None),
        (lambda: f.vjp(w, x, gy), None),
        (lambda: fj.mul.jacobian(w, x)[0].d, lambda: x),
    ]
    for call, ref in calls:
        first = call()
        keep = ([a.copy() for a in first] if isinstance(first, tuple) else first.copy())
        del first
        before = _hits()
        again = call()
        assert _hits() > before  # the freed output's memory was reused
        if isinstance(again, tuple):
            for a, k in zip(again, keep):
                np.testing.assert_array_equal(a, k)
        else:
            np.testing.assert_array_equal(again, keep)
        if ref is not None:
            r = ref()
            for a, b in zip(again if isinstance(again, tuple) else (again,),
                            r if isinstance(r, tuple) else (r,)):
                np.testing.assert_allclose(a, b, rtol=2e-6 if dtype == np.float32 else 1e-14)


def test_arrays_are_ordinary_and_independent(cache):
    a = outputs.empty((300, 400), np.float64)
    assert a.flags.owndata and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % 64 == 0
    a[...] = 1.0
    b = outputs.empty((300, 400), np.float64)  # a is alive: not its memory
    b[...] = 2.0
    assert not np.shares_memory(a, b)
    assert a.sum() == a.size and b.sum() == 2 * b.size
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c, a)
    a.resize(500, 400, refcheck=False)  # numpy's realloc through the cache's handler
    assert a.shape == (500, 400) and a[:300].sum() == 300 * 400
    a[300:] = 5.0
    assert a.sum() == 300 * 400 + 5.0 * 200 * 400
    a.resize((10,), refcheck=False)
    assert a.sum() == 10.0
    del a, b, c


def test_small_outputs_and_a_disabled_cache_use_numpy(cache):
    info = fj.output_cache_info()
    small = outputs.empty(info["min_bytes"] // 8 - 1, np.float64)
    assert fj.output_cache_info()["misses"] == info["misses"]
    assert fj.output_cache_info()["hits"] == info["hits"]
    del small
    big = outputs.empty(N, np.float64)
    big[:] = 3.0
    old = fj.set_output_cache(0)
    assert old == 64 << 20
    assert fj.output_cache_info()["cached_bytes"] == 0
    assert fj.output_cache_info()["buffers"] == 0
    assert big.sum() == 3.0 * N  # allocated earlier: still valid
    del big  # freed to the system now (the cache is off)
    assert fj.output_cache_info()["cached_bytes"] == 0
    misses = fj.output_cache_info()["misses"]
    y = fj.exp(np.ones(N))
    assert fj.output_cache_info()["misses"] == misses
    np.testing.assert_array_equal(y, np.exp(np.ones(N)))


def test_the_limit_bounds_what_the_cache_holds(cache):
    fj.set_output_cache(3 * 8 * N)
    arrays = [outputs.empty(N, np.float64) for _ in range(6)]
    del arrays
    info = fj.output_cache_info()
    assert 0 < info["cached_bytes"] <= 3 * 8 * N and info["buffers"] <= 3
    fj.set_output_cache(8 * N)  # lowering the limit frees the oldest
    assert fj.output_cache_info()["cached_bytes"] <= 8 * N


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_a_loop_reuses_the_memory_its_last_output_had(cache, n_outputs):
    # The most recently freed buffer of a size is reused first: a loop's output stays in
    # the CPU's caches. When the oldest was taken, a loop's outputs cycled through every
    # cached buffer of their size (here 5 + n_outputs of them), and fj.log.vjp at 1e6 ran
    # 2-3x slower than into a fixed out= (docs/performance.rst, "The output cache").
    x = np.linspace(0.5, 2.0, N)
    others = [outputs.empty(N, np.float64) for _ in range(5)]
    del others  # five cold buffers of the loop's size, older than the loop's own

    def call():
        return (fj.log.vjp(x, x),) if n_outputs == 1 else fj.div.vjp(x, x, x)

    first = call()
    mine = {a.ctypes.data for a in first}
    del first
    for _ in range(4):
        res = call()
        assert {a.ctypes.data for a in res} == mine
        del res
    # two outputs alive at once still get two buffers, and an interleaved second size
    # keeps its own (best fit first, then the newest)
    a, b = outputs.empty(N, np.float64), outputs.empty(N, np.float64)
    assert a.ctypes.data != b.ctypes.data
    del a, b


def _vm_flags(addr):
    """The VmFlags of the mapping that holds addr (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= addr < hi
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    return None


@pytest.mark.skipif(not os.path.isdir("/sys/kernel/mm/transparent_hugepage"),
                    reason="needs Linux with transparent huge pages")
def test_large_fresh_buffers_are_advised_for_huge_pages(cache):
    # A fresh buffer of 2 MiB or more gets MADV_HUGEPAGE on the pages inside it ("hg" in
    # its mapping's VmFlags), as NumPy's own large arrays do; whether the kernel then
    # grants huge pages is its decision, not asserted. Smaller ones get no advice.
    n = (4 << 20) // 8
    a = outputs.empty(n, np.float64)
    a[:] = 1.0
    assert "hg" in _vm_flags(a.ctypes.data + (2 << 20))
    a.resize(2 * n, refcheck=False)  # realloc through the handler: still advised
    a[n:] = 2.0
    assert "hg" in _vm_flags(a.ctypes.data + (5 << 20)) and a.sum() == 3.0 * n
    del a


def test_sizes_far_apart_do_not_share_memory(cache):
    a = outputs.empty(4 * N, np.float64)
    del a
    hits = _hits()
    b = outputs.empty(N, np.float64)  # a quarter of the cached buffer: too wasteful
    assert _hits() == hits
    del b


@pytest.mark.parametrize("bad", [-1, 1.5, "64", None, True])
def test_set_output_cache_rejects_bad_limits(bad):
    with pytest.raises(TypeError if not isinstance(bad, int) or isinstance(bad, bool)
                       else ValueError, match="max_bytes"):
        fj.set_output_cache(bad)


@pytest.mark.parametrize("raw,mb", [(None, 64), ("", 64), ("0", 0), ("16", 16), (" 8 ", 8)])
def test_limit_from_the_environment(monkeypatch, raw, mb):
    if raw is None:
        monkeypatch.delenv("FASTJAC_OUTPUT_CACHE_MB", raising=False)
    else:
        monkeypatch.setenv("FASTJAC_OUTPUT_CACHE_MB", raw)
    assert outputs._limit_from_env() == mb << 20


@pytest.mark.parametrize("raw", ["-1", "lots", "1.5"])
def test_a_bad_environment_limit_warns_and_uses_the_default(monkeypatch, raw):
    monkeypatch.setenv("FASTJAC_OUTPUT_CACHE_MB", raw)
    with pytest.warns(RuntimeWarning, match="FASTJAC_OUTPUT_CACHE_MB"):
        assert outputs._limit_from_env() == 64 << 20


def test_threads_allocate_and_free_concurrently(cache):
    errors = []

    def work(seed):
        try:
            x = np.full(N, float(seed))
            for _ in range(50):
                y = fj.mul(x, x)
                if not (y == seed * seed).all():
                    errors.append(seed)
                del y
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_allocates_and_frees_outputs(cache):
    x = np.full(N, 2.0)
    y = fj.mul(x, x, n_threads=1)
    del y  # the parent's cache holds a buffer; the child gets its own copy of it
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if every output is right
        code = 1
        try:
            for _ in range(3):
                y = fj.mul(x, x, n_threads=1)
                ok = bool((y == 4.0).all())
                del y
                if not ok:
                    break
            else:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fresh_outputs_and_out_give_the_same_bits_at_1e6(cache, dtype):
    # 1e6 elements: outputs from the cache's huge-page mappings, several same-size buffers
    # cached (the situation of the old oldest-first order), two threads above the
    # threshold; every result the same bits as out= on one thread.
    n = 10**6
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    x = rng.uniform(0.5, 2.5, n).astype(dtype)
    gy = rng.standard_normal(n).astype(dtype)
    spare = [outputs.empty(n, dtype) for _ in range(3)]
    del spare
    ref_log = np.empty_like(x)
    ref_gw, ref_gx = np.empty_like(x), np.empty_like(x)
    fj.log.vjp(x, gy, out=ref_log, n_threads=1)
    fj.div.vjp(w, x, gy, out=(ref_gw, ref_gx), n_threads=1)
    np.testing.assert_allclose(ref_log, gy.astype(np.float64) / x, rtol=1e-6)
    for nt in (1, 2, None):
        for _ in range(2):
            got = fj.log.vjp(x, gy, n_threads=nt)
            assert got.tobytes() == ref_log.tobytes()
            gw, gx = fj.div.vjp(w, x, gy, n_threads=nt)
            assert gw.tobytes() == ref_gw.tobytes() and gx.tobytes() == ref_gx.tobytes()
            o = np.empty_like(x)
            fj.log.vjp(x, gy, out=o, n_threads=nt)
            assert o.tobytes() == ref_log.tobytes()
            del got, gw, gx, o
