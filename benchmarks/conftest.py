"""pytest configuration for the benchmark suites (pytest-benchmark).

Run every suite with ``python -m pytest benchmarks --benchmark-enable`` (the project's
pytest addopts disable benchmarks for normal test runs; without ``--benchmark-enable`` each
case runs once, as a smoke test). Files are named ``bench_*.py``: this conftest makes
pytest collect them when it is given the ``benchmarks`` directory.

The header of the run states what the numbers depend on: CPU count, OpenMP, the SIMD level
the kernels dispatched to, the precision mode, and the load average (on a shared machine
a median is only as good as the quiet it was measured in).
"""

import os

import pytest


def pytest_collect_file(file_path, parent):
    # Explicit paths (pytest benchmarks/bench_x.py) are collected by pytest itself.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_report_header(config):
    try:
        import numpy as np

        import fastjac as fj
        from fastjac._kernels import elementwise as K
    except Exception as exc:  # noqa: BLE001 - the header must never break the run
        return [f"fastjac: not importable ({exc})"]
    simd = K.simd_info() if hasattr(K, "simd_info") else {}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    prec = fj.get_precision() if hasattr(fj, "get_precision") else "accurate"
    return [
        f"fastjac: numpy {np.__version__}, {cpus} CPUs, threads {fj.thread_info()['max_threads']}, "
        f"SIMD {simd.get('cpu', '?')}, precision {prec}, load average {load:.2f}"
    ]
