"""fastjac.dask (issue 8): gradients and training on Dask arrays.

Every result is checked against the in-memory API (to rounding), and for a fixed chunking
against itself (bitwise: repeated runs, schedulers, worker counts). The distributed tests
run on a two-process LocalCluster bound to loopback, with a small memory limit, and cover
a data set larger than a worker's memory and a worker killed mid-computation.
"""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip(
    "dask.array", reason="fastjac.dask needs dask[array] (pip install 'fastjac[dask]')"
)
import dask  # noqa: E402
from dask.delayed import Delayed  # noqa: E402

import fastjac as fj  # noqa: E402
import fastjac.dask as fjd  # noqa: E402
from fastjac import neuron  # noqa: E402

RNG = np.random.default_rng(8)


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def problem(N=1000, n=7, dtype=np.float64, rng=RNG):
    """A data set where about a third of the rows are inactive (w·x + b <= 0)."""
    X = rng.normal(size=(N, n)).astype(dtype)
    w = rng.normal(size=n).astype(dtype)
    b = 0.3
    y = (np.maximum(X @ w + b, 0) + 0.1 * rng.normal(size=N)).astype(dtype)
    return X, y, w, b


def assert_same_bits(a, b):
    for u, v in zip(a, b):
        assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), (u, v)


THREADS = dict(scheduler="threads", num_workers=2)


# ---------------------------------------------------------------------------------------
# loss_grad against the in-memory kernel
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "chunks", [(1000, 7), (100, 7), (333, 7), (97, 3), (7, 7)],
    ids=["one-chunk", "even", "uneven", "column-chunks", "tiny-chunks"],
)
def test_loss_grad_matches_in_memory(chunks):
    X, y, w, b = problem()
    Xd = da.from_array(X, chunks=chunks)
    with dask.config.set(**THREADS):
        C, gw, gb = fjd.loss_grad(Xd, y, w, b)
    C0, gw0, gb0 = neuron.loss_grad(X, y, w, b)
    np.testing.assert_allclose(C, C0, rtol=1e-12)
    np.testing.assert_allclose(gw, gw0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, gb0, rtol=1e-12, atol=1e-15)
    assert gw.shape == (7,) and gw.dtype == np.float64
    assert type(C) is float and type(gb) is float


def test_empty_chunks_are_skipped():
    X, y, w, b = problem(N=300)
    Xd = da.from_array(X, chunks=((100, 0, 200, 0), (7,)))
    C, gw, gb = fjd.loss_grad(Xd, y, w, b)
    C0, gw0, gb0 = neuron.loss_grad(X, y, w, b)
    np.testing.assert_allclose([C, gb], [C0, gb0], rtol=1e-12)
    np.testing.assert_allclose(gw, gw0, rtol=1e-12, atol=1e-15)
    res = fjd.fit(Xd, y, lr=0.05, epochs=3, batch_size=50, w0=w)
    assert np.all(np.isfinite(res.losses))


def test_loss_grad_sums_are_unscaled():
    X, y, w, b = problem(N=500)
    sse, gw_sum, gb_sum = fjd.loss_grad_sums(da.from_array(X, chunks=(64, 7)), y, w, b)
    sse0, gw0, gb0 = neuron.loss_grad_sums(X, y, w, b)
    np.testing.assert_allclose([sse, gb_sum], [sse0, gb0], rtol=1e-12)
    np.testing.assert_allclose(gw_sum, gw0, rtol=1e-12, atol=1e-12)
    assert type(sse) is float and type(gb_sum) is float
    empty = fjd.loss_grad_sums(da.zeros((0, 7), chunks=5), np.zeros(0), w, b)
    assert empty[0] == 0.0 and empty[2] == 0.0 and np.all(empty[1] == 0)


def test_loss_grad_float32():
    X, y, w, b = problem(dtype=np.float32)
    C, gw, gb = fjd.loss_grad(da.from_array(X, chunks=(128, 7)), y, w, b)
    C0, gw0, gb0 = neuron.loss_grad(X, y, w, b)
    assert gw.dtype == np.float32
    np.testing.assert_allclose(C, C0, rtol=1e-5)
    np.testing.assert_allclose(gw, gw0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gb, gb0, rtol=1e-4, atol=1e-5)


def test_loss_grad_bitwise_repeatable_for_fixed_chunking():
    X, y, w, b = problem(N=3000)
    Xd = da.from_array(X, chunks=(211, 7))
    yd = da.from_array(y, chunks=500)  # rechunked to X's rows
    runs = []
    for cfg in (THREADS, THREADS, dict(scheduler="threads", num_workers=1),
                dict(scheduler="sync")):
        with dask.config.set(**cfg):
            runs.append(fjd.loss_grad(Xd, yd, w, b))
    runs.append(fjd.loss_grad(Xd, yd, w, b, n_threads=2))
    for r in runs[1:]:
        assert_same_bits(runs[0], r)


def test_lazy_result_and_numpy_inputs():
    X, y, w, b = problem(N=300)
    lazy = fjd.loss_grad(da.from_array(X, chunks=(50, 7)), y, w, b, compute=False)
    assert isinstance(lazy, Delayed)
    C, gw, gb = lazy.compute()
    C1, gw1, gb1 = fjd.loss_grad(X, y, w, b)  # NumPy in, automatic chunks
    np.testing.assert_allclose([C, gb], [C1, gb1], rtol=1e-12)
    np.testing.assert_allclose(gw, gw1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "args, err, match",
    [
        (lambda X, y, w: (X[:, 0], y, w), ValueError, "X must be 2-D"),
        (lambda X, y, w: (X, y[:-1], w), ValueError, "y must have shape"),
        (lambda X, y, w: (X, y, w[:-1]), ValueError, "w must have shape"),
        (lambda X, y, w: (X[:0], y[:0], w), ValueError, "no rows"),
        (lambda X, y, w: (X.astype(complex), y, w), TypeError, "X has dtype complex"),
    ],
    ids=["X-1d", "y-short", "w-short", "empty", "complex"],
)
def test_loss_grad_errors(args, err, match):
    X, y, w, b = problem(N=40)
    Xa, ya, wa = args(da.from_array(X, chunks=10), y, w)
    with pytest.raises(err, match=match):
        fjd.loss_grad(Xa, ya, wa, b)


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------

def test_fit_full_batch_matches_in_memory():
    X, y, w, b = problem(N=800)
    w0 = w + 0.5 * RNG.normal(size=w.shape)
    res = fjd.fit(da.from_array(X, chunks=(150, 7)), y, lr=0.05, epochs=30, w0=w0, b0=0.0)
    ref = neuron.fit(X, y, lr=0.05, epochs=30, w0=w0, b0=0.0)
    assert type(res) is type(ref)
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-11)
    np.testing.assert_allclose(res.w, ref.w, rtol=1e-11)
    np.testing.assert_allclose(res.b, ref.b, rtol=1e-11, atol=1e-14)
    assert res.losses[-1] < 0.5 * res.losses[0]


def test_fit_mini_batches_are_seeded_whole_chunks():
    X, y, w, b = problem(N=1000)
    Xd = da.from_array(X, chunks=(100, 7))
    a = fjd.fit(Xd, y, lr=0.05, epochs=5, batch_size=250, seed=3)
    again = fjd.fit(Xd, y, lr=0.05, epochs=5, batch_size=250, seed=3)
    other = fjd.fit(Xd, y, lr=0.05, epochs=5, batch_size=250, seed=4)
    assert_same_bits(a, again)
    assert not np.array_equal(a.w, other.w)
    assert a.losses[-1] < a.losses[0]
    # The batches of one epoch: whole chunks, each chunk once, >= batch_size rows.
    order = np.random.default_rng(0).permutation(10)
    batches = fjd._batches(Xd.chunks[0], 250, order)
    assert [i for bt in batches for i in bt] == list(order)
    assert all(len(bt) == 3 for bt in batches[:-1]) and len(batches[-1]) == 1
    # Without shuffling the chunks are visited in order, the same in every epoch.
    first = fjd.fit(Xd, y, lr=0.05, epochs=1, batch_size=250, w0=w, shuffle=False)
    seen = []
    fjd.fit(Xd, y, lr=0.05, epochs=3, batch_size=250, w0=w, shuffle=False,
            callback=lambda e, loss, w_, b_: seen.append(loss))
    assert seen[0] == first.losses[0] and len(seen) == 3


def test_fit_defaults_callback_and_full_batch_equivalents():
    X, y, w, b = problem(N=600)
    Xd = da.from_array(X, chunks=(100, 7))
    # The default w0 is the in-memory fit's: N(0, 1/n) from default_rng(seed).
    res = fjd.fit(Xd, y, lr=0.05, epochs=3, seed=5)
    ref = neuron.fit(X, y, lr=0.05, epochs=3, seed=5)
    np.testing.assert_allclose(res.w, ref.w, rtol=1e-11)
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-11)
    # NumPy inputs: wrapped (one chunk here), the same iterates to rounding.
    np.testing.assert_allclose(fjd.fit(X, y, lr=0.05, epochs=3, seed=5).w, res.w, rtol=1e-12)
    # A Dask X with a NumPy y: y is wrapped in X's row chunks, X is left lazy.
    calls = []
    lazy = Xd.map_blocks(lambda blk: calls.append(1) or blk, meta=np.empty((0, 0)))
    assert_same_bits(fjd.fit(lazy, y, lr=0.05, epochs=3, seed=5), res)
    assert len(calls) == 3 * Xd.numblocks[0]  # read once per epoch, not persisted
    # batch_size >= N is full batch.
    assert_same_bits(fjd.fit(Xd, y, lr=0.05, epochs=3, seed=5, batch_size=600), res)
    # A callback that returns True stops after that epoch.
    calls = []

    def stop_at_1(epoch, loss, w_, b_):
        calls.append((epoch, loss, w_.dtype, type(b_)))
        return epoch == 1

    short = fjd.fit(Xd, y, lr=0.05, epochs=10, seed=5, callback=stop_at_1)
    assert len(short.losses) == 2 and [c[0] for c in calls] == [0, 1]
    assert calls[0][1] == res.losses[0] and calls[0][2] == np.float64 and calls[0][3] is float
    assert short.w.dtype == np.float64 and isinstance(short.b, float)
    pytest.importorskip("tqdm")
    assert_same_bits(fjd.fit(Xd, y, lr=0.05, epochs=3, seed=5, progress=True), res)


def test_fit_float32_matches_in_memory():
    X, y, w, b = problem(N=2000, dtype=np.float32)
    res = fjd.fit(da.from_array(X, chunks=(300, 7)), y, lr=0.05, epochs=20, seed=2)
    ref = neuron.fit(X, y, lr=0.05, epochs=20, seed=2)
    assert res.w.dtype == ref.w.dtype == np.float32
    np.testing.assert_allclose(res.w, ref.w, rtol=1e-5)
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-5)


def test_nan_propagates_like_in_memory():
    X, y, w, b = problem(N=300)
    X[123, 2] = np.nan
    C, gw, gb = fjd.loss_grad(da.from_array(X, chunks=(50, 7)), y, w, b)
    C0, gw0, gb0 = neuron.loss_grad(X, y, w, b)
    np.testing.assert_array_equal(np.isnan([C, gb, *gw]), np.isnan([C0, gb0, *gw0]))
    assert np.isnan(C)


def test_unknown_chunk_sizes_are_refused():
    X, y, w, b = problem(N=100)
    Xd = da.from_array(X, chunks=(30, 7))
    Xu = Xd[da.from_array(y, chunks=30) > -1e9]  # boolean mask: row chunks unknown
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fjd.loss_grad(Xu, y, w, b)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_fit_diverging_raises():
    X, y, w, b = problem(N=200)
    Xd = da.from_array(X, chunks=50)
    with pytest.raises(FloatingPointError, match="learning rate") as info:
        fjd.fit(Xd, y * 1e3, lr=1e200, epochs=5, w0=w)
    assert info.value.epoch >= 1 and np.all(np.isfinite(info.value.losses))
    with pytest.raises(ValueError, match="initial parameters"):
        fjd.fit(Xd, y, lr=0.1, epochs=2, w0=w, b0=1e300)
    with pytest.raises(ValueError, match="lr must be"):
        fjd.fit(Xd, y, lr=0.0, epochs=2)


# ---------------------------------------------------------------------------------------
# Element-wise JVP / VJP through map_blocks
# ---------------------------------------------------------------------------------------

UNARY = [fj.exp, fj.tanh, fj.relu, fj.chain(fj.sin, fj.square)]


@pytest.mark.parametrize("op", UNARY, ids=lambda op: op.name)
def test_unary_matches_in_memory(op):
    x = RNG.normal(size=(40, 30))
    t = RNG.normal(size=(40, 30))
    xd = da.from_array(x, chunks=(13, 11))
    np.testing.assert_array_equal(fjd.apply(op, xd).compute(), op(x))
    np.testing.assert_array_equal(fjd.jvp(op, xd, t).compute(), op.jvp(x, t))
    np.testing.assert_array_equal(fjd.vjp(op, xd, da.from_array(t, chunks=7)).compute(),
                                  op.vjp(x, t))


BINARY = [fj.add, fj.mul, fj.div, fj.maximum, fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
def test_binary_matches_in_memory(op):
    w, x, gy, dw, dx = (RNG.uniform(0.5, 2, 500) for _ in range(5))
    wd = da.from_array(w, chunks=120)
    xd = da.from_array(x, chunks=77)  # different chunks: aligned by map_blocks
    np.testing.assert_array_equal(fjd.apply(op, wd, xd).compute(), op(w, x))
    np.testing.assert_array_equal(fjd.jvp(op, wd, xd, dw, None).compute(),
                                  op.jvp(w, x, dw, None))
    np.testing.assert_array_equal(fjd.jvp(op, wd, xd, dw, dx).compute(), op.jvp(w, x, dw, dx))
    gw, gx = dask.compute(*fjd.vjp(op, wd, xd, gy))
    gw0, gx0 = op.vjp(w, x, gy)
    np.testing.assert_array_equal(gw, gw0)
    np.testing.assert_array_equal(gx, gx0)


@pytest.mark.parametrize("op", [fj.mul, fj.div, fj.sub], ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scalar_operand_gradient_is_a_sum_across_chunks(op, dtype):
    x = RNG.uniform(0.5, 2, (60, 50)).astype(dtype)
    gy = RNG.normal(size=(60, 50)).astype(dtype)
    xd = da.from_array(x, chunks=(16, 20))
    z = dtype(1.75)
    gz, gx = fjd.vjp(op, z, xd, gy)           # scalar first operand
    gz0, gx0 = op.vjp(z, x, gy)
    assert gz.shape == () and gz.dtype == dtype
    np.testing.assert_array_equal(gx.compute(), gx0)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gz.compute(), gz0, rtol=rtol)
    gx, gz = fjd.vjp(op, xd, z, gy)           # scalar second operand
    gx0, gz0 = op.vjp(x, z, gy)
    np.testing.assert_array_equal(gx.compute(), gx0)
    np.testing.assert_allclose(gz.compute(), gz0, rtol=rtol)
    assert gz.compute().tobytes() == gz.compute().tobytes()
    # A scalar tangent for the scalar operand (§4.3).
    np.testing.assert_array_equal(fjd.jvp(op, z, xd, 1.0, None).compute(),
                                  op.jvp(z, x, 1.0, None))


def test_elementwise_errors():
    xd = da.ones(10, chunks=5)
    with pytest.raises(ValueError, match="same shape"):
        fjd.vjp(fj.mul, xd, da.ones(11, chunks=5), xd)
    with pytest.raises(ValueError, match="dw"):
        fjd.jvp(fj.mul, 2.0, xd, np.ones(10), None)
    with pytest.raises(TypeError, match="takes 3 arrays"):
        fjd.vjp(fj.mul, xd, xd)
    with pytest.raises(TypeError, match="op must be"):
        fjd.vjp(np.exp, xd, xd)
    with pytest.raises(TypeError, match="gy must be"):
        fjd.vjp(fj.exp, xd, None)
    with pytest.raises(ValueError, match="gy must have the shape of y"):
        fjd.vjp(fj.mul, 2.0, 3.0, xd)


# ---------------------------------------------------------------------------------------
# distributed: a two-process cluster on loopback
# ---------------------------------------------------------------------------------------

MEMORY_LIMIT = 200e6  # bytes per worker


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip(
        "distributed", reason="the cluster tests need distributed (pip install 'fastjac[dask]')"
    )
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1", memory_limit=MEMORY_LIMIT,
    )
    c = distributed.Client(cluster)
    # Functions defined here (e.g. _slow) reach the workers by value: they need not
    # import this file.
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield c
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        c.close()
        cluster.close()


def _worker_pids(client):
    return client.run(os.getpid)


def test_distributed_matches_in_memory_and_threads(client):
    X, y, w, b = problem(N=2000)
    Xd = da.from_array(X, chunks=(300, 7))
    got = fjd.loss_grad(Xd, y, w, b)
    C0, gw0, gb0 = neuron.loss_grad(X, y, w, b)
    np.testing.assert_allclose(got[0], C0, rtol=1e-12)
    np.testing.assert_allclose(got[1], gw0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[2], gb0, rtol=1e-12, atol=1e-15)
    with dask.config.set(**THREADS):
        assert_same_bits(got, fjd.loss_grad(Xd, y, w, b))
    # fit with a Client: the same iterates as on the threaded scheduler, bit for bit.
    w0 = w + 0.3
    res = fjd.fit(Xd, y, lr=0.05, epochs=4, w0=w0)
    with dask.config.set(**THREADS):
        assert_same_bits(res, fjd.fit(Xd, y, lr=0.05, epochs=4, w0=w0))
    mini = fjd.fit(Xd, y, lr=0.05, epochs=2, batch_size=600, w0=w0, seed=1)
    with dask.config.set(**THREADS):
        assert_same_bits(mini, fjd.fit(Xd, y, lr=0.05, epochs=2, batch_size=600, w0=w0, seed=1))
    # Element-wise VJP with a scalar operand, computed by the workers.
    x = RNG.normal(size=3000)
    gz, gx = fjd.vjp(fj.mul, 0.5, da.from_array(x, chunks=400), np.cos(x))
    gz0, gx0 = fj.mul.vjp(0.5, x, np.cos(x))
    np.testing.assert_array_equal(gx.compute(), gx0)
    np.testing.assert_allclose(gz.compute(), gz0, rtol=1e-12)


def lazy_problem(rows, n, chunk_rows, seed=0):
    """X (rows, n) and y from seeded da.random: generated chunk by chunk, never stored."""
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, n), chunks=(chunk_rows, n))
    w = np.linspace(-1, 1, n)
    # (X * w).sum(axis=1), not X @ w: BLAS rounding depends on its thread count.
    y = da.maximum((X * w).sum(axis=1) + 0.1, 0) + 0.01 * rng.standard_normal(
        rows, chunks=chunk_rows)
    return X, y, w


def test_data_larger_than_worker_memory(client):
    # 420 MB of X against 2 x 200 MB of worker memory: it must be streamed.
    X, y, w = lazy_problem(rows=3_500_000, n=15, chunk_rows=70_000)  # 8.4 MB chunks
    assert X.nbytes > 2 * MEMORY_LIMIT
    limits = client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
    assert set(limits.values()) == {MEMORY_LIMIT}
    pids = _worker_pids(client)
    C, gw, gb = fjd.loss_grad(X, y, w * 0.9, 0.05)
    assert _worker_pids(client) == pids, "a worker died (memory limit?)"
    # The same graph on the in-process threaded scheduler: bitwise the same sums.
    with dask.config.set(**THREADS):
        assert_same_bits((C, gw, gb), fjd.loss_grad(X, y, w * 0.9, 0.05))
    assert 0 < C < 1 and np.all(np.isfinite(gw))


def _slow(block):
    time.sleep(0.1)
    return block


def test_killed_worker_does_not_change_the_answer(client):
    X, y, w = lazy_problem(rows=40 * 5000, n=8, chunk_rows=5000, seed=1)
    X = X.map_blocks(_slow, meta=X._meta)  # about 2 s of work on 2 workers
    with dask.config.set(**THREADS):
        expected = fjd.loss_grad(X, y, w, 0.0)
    client.wait_for_workers(2)
    pids = _worker_pids(client)
    future = client.compute(fjd.loss_grad(X, y, w, 0.0, compute=False))
    killed = {}

    def kill_one():
        # Wait until the workers hold some finished chunks, then SIGKILL the busiest one.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not future.done():
            processing = client.processing()
            stored = client.run_on_scheduler(
                lambda dask_scheduler: sum(ts.state == "memory"
                                           for ts in dask_scheduler.tasks.values()))
            if stored >= 6 and any(processing.values()):
                addr = max(processing, key=lambda a: len(processing[a]))
                killed["was_done"] = future.done()
                os.kill(pids[addr], signal.SIGKILL)
                killed["addr"] = addr
                return
            time.sleep(0.05)

    t = threading.Thread(target=kill_one)
    t.start()
    got = future.result(timeout=90)
    t.join()
    assert killed.get("addr") and killed["was_done"] is False, "no worker was killed mid-run"
    assert_same_bits(got, expected)
    client.wait_for_workers(2, timeout=30)  # the nanny restarted the killed worker
    assert set(_worker_pids(client).values()) != set(pids.values())
