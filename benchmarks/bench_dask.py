"""Throughput of fastjac.dask against the in-memory API on one machine (issue 8).

Run: ``python -m pytest benchmarks/bench_dask.py --benchmark-enable``
(add ``--benchmark-columns=mean,stddev,rounds`` for a compact table). Each group holds the
in-memory call and its Dask twins; ``extra_info["GB/s"]`` is the input bytes read per
second (X for the neuron, x and gy for the element-wise VJP).

* ``threads-1`` / ``threads-2``: the threaded scheduler with 1 and 2 workers, each chunk's
  kernel with ``n_threads=1``. The kernels release the GIL, so 2 workers should approach
  twice the throughput of 1 on a 2-core machine.
* ``distributed``: a 2-process LocalCluster on loopback with the same X generated and
  persisted on the workers (only the gradient sums cross process boundaries); its time
  is mostly the scheduler's per-task latency, not the kernels.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="needs dask[array]")
import dask  # noqa: E402

import fastjac as fj  # noqa: E402
import fastjac.dask as fjd  # noqa: E402
from fastjac import neuron  # noqa: E402

N, n, CHUNK_ROWS = 400_000, 32, 25_000          # X: 102 MB float64, 16 chunks of 6.4 MB
M, M_CHUNK = 8_000_000, 500_000                 # element-wise: 64 MB per array, 16 chunks


def _lazy_data():
    """X, y as seeded da.random graphs: computed locally here, generated on the workers
    for the distributed case (embedding a 100 MB NumPy array in a graph would measure the
    graph transfer, not the gradient)."""
    rng = da.random.default_rng(0)
    X = rng.standard_normal((N, n), chunks=(CHUNK_ROWS, n))
    w = np.linspace(-1, 1, n) / np.sqrt(n)
    y = da.maximum((X * w).sum(axis=1) + 0.1, 0) + 0.1 * rng.standard_normal(
        N, chunks=CHUNK_ROWS)
    return X, y, w


@pytest.fixture(scope="module")
def data():
    X, y, w = _lazy_data()
    with dask.config.set(scheduler="threads"):
        X, y = dask.compute(X, y)
    return X, y, w


def _throughput(benchmark, nbytes):
    if benchmark.stats is not None:  # None under --benchmark-disable (a smoke run)
        benchmark.extra_info["GB/s"] = round(nbytes / benchmark.stats.stats.mean / 1e9, 3)


@pytest.mark.benchmark(group="neuron.loss_grad N=400k n=32")
def test_loss_grad_in_memory(benchmark, data):
    X, y, w = data
    benchmark(neuron.loss_grad, X, y, w, 0.1)
    _throughput(benchmark, X.nbytes)


@pytest.mark.parametrize("workers", [1, 2], ids=["threads-1", "threads-2"])
@pytest.mark.benchmark(group="neuron.loss_grad N=400k n=32")
def test_loss_grad_dask_threads(benchmark, data, workers):
    X, y, w = data
    Xd = da.from_array(X, chunks=(CHUNK_ROWS, n))
    yd = da.from_array(y, chunks=CHUNK_ROWS)
    with dask.config.set(scheduler="threads", num_workers=workers):
        benchmark(fjd.loss_grad, Xd, yd, w, 0.1)
    _throughput(benchmark, X.nbytes)


FIT_EPOCHS = 5


@pytest.mark.benchmark(group="neuron.fit full batch, 5 epochs, N=400k n=32")
def test_fit_in_memory(benchmark, data):
    X, y, w = data
    benchmark(neuron.fit, X, y, lr=0.05, epochs=FIT_EPOCHS, w0=w)
    _throughput(benchmark, FIT_EPOCHS * X.nbytes)


@pytest.mark.benchmark(group="neuron.fit full batch, 5 epochs, N=400k n=32")
def test_fit_dask_threads(benchmark, data):
    X, y, w = data
    Xd = da.from_array(X, chunks=(CHUNK_ROWS, n))
    yd = da.from_array(y, chunks=CHUNK_ROWS)
    with dask.config.set(scheduler="threads", num_workers=2):
        benchmark(fjd.fit, Xd, yd, lr=0.05, epochs=FIT_EPOCHS, w0=w)
    _throughput(benchmark, FIT_EPOCHS * X.nbytes)


@pytest.mark.benchmark(group="exp.vjp 8M")
def test_vjp_in_memory(benchmark):
    x = np.linspace(-3, 3, M)
    gy = np.ones(M)
    benchmark(fj.exp.vjp, x, gy)
    _throughput(benchmark, x.nbytes + gy.nbytes)


@pytest.mark.parametrize("workers", [1, 2], ids=["threads-1", "threads-2"])
@pytest.mark.benchmark(group="exp.vjp 8M")
def test_vjp_dask_threads(benchmark, workers):
    x = np.linspace(-3, 3, M)
    gy = np.ones(M)
    xd = da.from_array(x, chunks=M_CHUNK)
    gd = da.from_array(gy, chunks=M_CHUNK)
    with dask.config.set(scheduler="threads", num_workers=workers):
        # Reduce each block to one number so that the timing is the kernel's, not the
        # concatenation of 16 blocks into one result array.
        benchmark(lambda: fjd.vjp(fj.exp, xd, gd).sum().compute())
    _throughput(benchmark, x.nbytes + gy.nbytes)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="needs distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.mark.benchmark(group="neuron.loss_grad N=400k n=32")
def test_loss_grad_distributed(benchmark, client):
    X, y, w = _lazy_data()
    X, y = client.persist([X, y])
    benchmark(fjd.loss_grad, X, y, w, 0.1)
    _throughput(benchmark, X.nbytes)
