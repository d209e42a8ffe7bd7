"""``fastjac bench``: fastjac against NumPy, PyTorch, JAX and Numba in one command.

For each workload of the table :data:`WORKLOADS` (element-wise VJPs, the fused
``exp(w) ⊗ sin(x)`` VJP, scalar expansion, sum and dot, the ReLU neuron's ``loss_grad`` and
``fit``) it times the fastjac call and the code a user of each other framework would write
for the same result, on the same inputs, and prints one table per workload::

    size  dtype    numpy    fastjac  speed-up    torch    jax    numba  vs best  ×bound

* *speed-up* is ``numpy time / fastjac time`` (above 1: fastjac is faster);
* *vs best* is the time of the fastest other framework over fastjac's;
* *×bound* is fastjac's time over the row's memory-traffic bound: the bytes the row must read
  and write, at the read and write bandwidths measured over the same number of bytes (shown
  from 1 MB of traffic; below that a call's fixed cost dominates).

**Each framework runs in its own process** (a worker: :mod:`fastjac._bench_worker` run by
path): a framework's thread pool keeps spinning after a call and would slow whatever is
timed next in the same process. Every worker builds the same inputs from
per-row seeds with NumPy alone, so a worker for PyTorch, JAX or Numba can run in another
Python that does not have fastjac (``--peer-python``); a checksum of the inputs confirms it.
Each time is the median of several repeats of a loop long enough to make the timer's
resolution irrelevant, after a warm-up call (so JAX's and Numba's compile time is
excluded; a workload that asks for it also reports the first call). Every framework's
result is checked against NumPy's in float64 after timing.

**Interleaved** (the default; ``--interleave``) every framework's process starts once and
stays alive; the parent drives the workers (``_bench_worker.py --serve``) over pipes, one
JSON request a line, row by row: each framework prepares the row, then the frameworks take turns, ``--samples S``
times (the order rotates), each timing one short sample (a warm-up call, then the median
of ``--repeat`` loops of ~10 ms). The worker not being sampled is stopped (SIGSTOP, and
its stop awaited: thread pools spin after a call) and let go (SIGCONT) for its next
request; ``--idle pause`` waits 0.2 s after each sample instead, which is also what happens
where there is no SIGSTOP. A row's time is the median of its samples, and the "samples"
column gives the quartiles of the per-sample ratio of the best peer to fastjac, each
taken from samples measured next to each other. A worker that fails or does not answer
within ``--timeout`` seconds is ended and reported missing; on every exit (errors,
Ctrl-C) the workers are let go and ended.

**One by one** (``--one-by-one``, or ``--rounds K``) each worker times all its rows, then
the next starts. With ``--rounds K`` the processes run K times in turn (the order rotates)
and each row takes the median over rounds, with the lowest and highest single-round ratio
to the best peer. On this project's shared 2-vCPU machine the interleaved runs' ratios to
the best peer moved less from run to run (docs: performance, "How the bench times").

Where ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` is set, both are unset for the NumPy
baseline's process only, and the output says so.

The "next to BLAS" section times a training loop's step, a 400×400 NumPy matrix product
followed by a fastjac call, against the sum of the product alone and the fastjac call on
one thread, and the quiet speed-up of the default threads over one thread.

Examples
--------
``fastjac bench``                      the full tables (a few minutes)
``fastjac bench --quick``              a few seconds: small sizes, few repeats
``fastjac bench --peer-python /path/to/venv/bin/python``   peers from another environment
``fastjac bench --json out.json --plot out.png``
``fastjac bench --samples 9``          9 samples per framework and row (default 5)
``fastjac bench --rounds 3``           one by one, every process three times: medians

The workloads and the workers live in :mod:`fastjac._bench_worker` (which peer workers
run without fastjac), the handling of their processes in ``fastjac._bench_procs``; this
module drives the workers, merges and prints their results.
"""

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile

import numpy as np

import fastjac as fj
from fastjac._bench_procs import PAUSE_S, _Served, _WorkerFailed, _launch
from fastjac._bench_worker import (FRAMEWORKS, NEXT_TO_BLAS_PRODUCT, PEERS, WORKLOADS,
                                   Workload, _cpus, _label, _size, memory_bandwidth)
from fastjac._display import format_time
from fastjac._kernels import elementwise as K

__all__ = ["WORKLOADS", "Workload", "main_bench", "memory_bandwidth", "run_bench"]

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
IDLE_MODES = ("stop", "pause", "none")
# Traffic below this many bytes gets no ×bound: a call's fixed cost dominates.
BOUND_MIN_BYTES = 1 << 20
# Bandwidth is measured over the row's own bytes (caches included), capped here (beyond
# the last-level cache every size streams from memory alike).
BOUND_MAX_BYTES = 1 << 28


def _bound_bytes(traffic):
    """The working set a row's bandwidth is measured over, or None below BOUND_MIN_BYTES."""
    total = sum(traffic)
    return None if total < BOUND_MIN_BYTES else min(total, BOUND_MAX_BYTES)


# ------------------------------------------------------------------------------ machine info
def cpu_model():
    """The CPU's model name, with its family and model numbers (a virtual machine may show
    only "AMD EPYC"), from /proc/cpuinfo on Linux; else what the platform knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if not key and fields:
                    break  # the first processor's block is enough
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    if fields.get("model name"):
        ids = [f"{k} {fields[k]}" for k in ("cpu family", "model") if fields.get(k)]
        return fields["model name"] + (f" ({', '.join(ids)})" if ids else "")
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _machine_info():
    info = {
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastjac": fj.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": _cpus(),
        "max_threads": fj.thread_info()["max_threads"],
        "precision": fj.get_precision(),
        "simd": K.simd_info(),
    }
    info["threads"] = fj.thread_info()
    if hasattr(os, "getloadavg"):
        info["loadavg"] = list(os.getloadavg())
    return info


def _run_interleaved(res, frameworks, rows, merged, crcs, sizes, samples, repeat, min_time,
                     quick, bandwidth, next_to_blas, unset, peer_python, timeout, progress,
                     idle):
    """``--interleave``: one process per framework, all alive at once, sampled in turn.

    For each row every framework prepares it (inputs, function), then ``samples`` times
    each framework in turn (the order rotates by row and sample) times one sample, while
    the others are held (:meth:`_Served.hold`). The samples are kept per row
    (``<fw>_samples``); each worker's last step (checks, fastjac's bandwidth and next to
    BLAS) returns the same JSON as a process of the one-by-one mode, merged alike."""
    workers, pythons = {}, {}

    def drop(fw, why):
        w = workers.pop(fw, None)
        if w is not None:
            w.close()
        if fw == "fastjac":
            raise RuntimeError(f"fastjac bench: the fastjac worker failed: {why}")
        res["missing"].setdefault(fw, f"{why} (in {pythons[fw]})")
        for row in merged.values():
            row.pop(f"{fw}_samples", None)

    def step(fw, request, sampled=False):
        w = workers[fw]
        w.release()
        try:
            reply = w.ask(request, timeout)
        except _WorkerFailed as exc:
            drop(fw, str(exc))
            return None
        if sampled or idle == "stop":
            w.hold(idle)
        return reply

    with tempfile.TemporaryDirectory(prefix="fastjac-bench-") as tmp:
        try:
            for fw in frameworks:
                python, env = _worker_python(fw, unset, peer_python)
                pythons[fw] = python
                try:
                    workers[fw] = _Served(fw, python, env, tmp)
                    workers[fw].send({"op": "load", "framework": fw})
                except (OSError, _WorkerFailed) as exc:
                    drop(fw, f"could not start {python}: {exc}")
            if progress:
                progress("interleaved: one process per framework ("
                         + ", ".join(f"{fw} in {pythons[fw]}" for fw in workers)
                         + f"), {samples} samples per framework and row, idle workers: "
                         + idle)
            for fw in list(workers):
                try:
                    reply = workers[fw].receive(timeout)
                except _WorkerFailed as exc:
                    drop(fw, str(exc))
                    continue
                if not reply["ok"]:
                    drop(fw, reply.get("missing", "could not be loaded"))
                else:
                    workers[fw].hold("stop" if idle == "stop" else "none")
            for i, (w, label, dt) in enumerate(rows):
                if progress:
                    progress(f"row {i + 1} of {len(rows)}: {w.name} {label} {dt}")
                ready = []
                for fw in frameworks:
                    if fw in workers:
                        reply = step(fw, {"op": "prepare", "row": [w.name, label, dt]})
                        if reply is not None and "error" not in reply:
                            ready.append(fw)
                times = {fw: [] for fw in ready}
                for k in range(samples):
                    shift = (i + k) % max(1, len(ready))
                    for fw in ready[shift:] + ready[:shift]:
                        if fw in workers:
                            reply = step(fw, {"op": "sample", "repeat": repeat,
                                              "min_time": min_time}, sampled=True)
                            times[fw].append(reply and reply["time_s"])
                row = merged[(w.name, label, dt)]
                for fw in ready:
                    if fw in workers:
                        row[f"{fw}_samples"] = times[fw]
            for fw in frameworks:
                if fw in workers:
                    request = {"op": "finish"}
                    request.update(_finish_spec(fw, True, sizes, repeat, min_time, quick,
                                                bandwidth, next_to_blas))
                    if progress:
                        progress(f"checking {fw}'s results"
                                 + (" and measuring the bandwidth" if fw == "fastjac"
                                    and bandwidth else ""))
                    out = step(fw, request)
                    if out is not None:
                        _merge(res, fw, out, pythons[fw], merged, crcs, True)
        finally:
            for fw in list(workers):
                workers.pop(fw).close()


# ----------------------------------------------------------------------------------- main
def run_bench(quick=False, repeat=None, workloads=None, dtypes=("float64", "float32"),
              bandwidth=True, frameworks=None, peer_python=None, next_to_blas=None,
              timeout=None, max_size=None, progress=None, rounds=1, interleave=None,
              samples=None, idle="stop"):
    """Run the benchmark and return its results as a dict (what ``--json`` writes).

    Parameters
    ----------
    quick : bool
        Small sizes and few repeats.
    repeat : int, optional
        Samples per median (default 7, 3 with ``quick``).
    workloads : list of str, optional
        Names of :data:`WORKLOADS` to run (and ``"next-to-blas"``); default all.
    dtypes : tuple of str
    bandwidth : bool
        Measure the memory bandwidth (and each large row's ×bound).
    frameworks : list of str, optional
        Default: all of ``FRAMEWORKS``; a peer that cannot be imported is reported missing.
    peer_python : str, optional
        The Python that runs the PyTorch, JAX and Numba workers (default: this one).
    next_to_blas : bool, optional
        Run the "next to BLAS" section (default: when ``workloads`` is None or names it).
    timeout : float, optional
        Seconds per worker (default 1800, or 300 with ``quick``).
    max_size : int, optional
        Only rows of at most this many elements (n, or N·n).
    progress : callable, optional
        ``progress(message)`` before each worker starts.
    rounds : int
        Times every framework's process is run, in turn (the order rotates each round).
        A row's time is the median over the rounds of each round's median, so a
        disturbance that hits one process moves it less; each round's ratio to the best
        peer is kept (``vs_best_rounds``) to show how much a row varies.
    interleave : bool, optional
        Start every framework's process once and sample the frameworks in turn, row by
        row (``samples`` samples each; the order rotates), so that they meet the same
        moments of a machine whose speed moves. Default: True, unless ``rounds`` > 1. A row's time is the median of its samples
        (``<fw>_samples``); ``vs_best_samples`` holds the ratio of the fastest other
        framework to fastjac per sample, ``vs_best_quartiles`` their quartiles. Then
        ``repeat`` is the loops per sample (default 3, 1 with ``quick``) and ``timeout``
        the seconds per request (default 300, 120 with ``quick``). Not with ``rounds``.
    samples : int, optional
        Samples per framework and row with ``interleave`` (default 5, 3 with ``quick``).
    idle : {"stop", "pause", "none"}
        With ``interleave``, what keeps a framework that is not being sampled from taking
        CPU time (its thread pools spin after a call): "stop" holds its process with
        SIGSTOP until its next request (where there is no SIGSTOP: a pause), "pause"
        waits PAUSE_S after each sample, "none" does nothing.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds!r}")
    if interleave is None:
        interleave = rounds == 1
    if interleave and rounds != 1:
        raise ValueError("rounds and interleave do not combine: with interleave, every "
                         "process runs once and `samples` sets how often each row is timed")
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples!r}")
    if idle not in IDLE_MODES:
        raise ValueError(f"idle must be one of {IDLE_MODES}, got {idle!r}")
    if interleave:
        repeat = repeat or (1 if quick else 3)
        samples = samples or (3 if quick else 5)
        min_time = 0.002 if quick else 0.01
        timeout = timeout or (120 if quick else 300)
    else:
        repeat = repeat or (3 if quick else 7)
        min_time = 0.002 if quick else 0.02
        timeout = timeout or (300 if quick else 1800)
    frameworks = list(frameworks or FRAMEWORKS)
    if "fastjac" not in frameworks:
        frameworks.insert(0, "fastjac")
    table = [w for w in WORKLOADS if not workloads or w.name in workloads]
    absent = {w.name: f"needs fastjac.{w.needs}" for w in table
              if w.needs and not _has(fj, w.needs)}
    table = [w for w in table if w.name not in absent]
    if next_to_blas is None:
        next_to_blas = not workloads or "next-to-blas" in workloads
    rows = [(w, _label(s), dt) for w in table for s in (w.quick if quick else w.sizes)
            for dt in dtypes if not max_size or _elements(_label(s)) <= max_size]
    res = {"machine": _machine_info(), "frameworks": [], "missing": {}, "quick": bool(quick),
           "repeat": repeat, "ratio": "numpy_s / fastjac_s (above 1: fastjac is faster)",
           "workloads": [], "environment": {}, "left_out": absent}
    merged, index = {}, {}
    for w, label, dt in rows:
        if w.name not in index:
            index[w.name] = {"name": w.name, "description": w.description, "rows": []}
            res["workloads"].append(index[w.name])
        row = {"size": label, "dtype": dt, "checks": {}}
        index[w.name]["rows"].append(row)
        merged[(w.name, label, dt)] = row
    sizes = set()
    for w, label, dt in rows:
        if w.traffic is not None:
            nb = _bound_bytes(w.traffic(_size(label), np.dtype(dt).itemsize))
            if nb:
                sizes.add(nb)
    if bandwidth:
        sizes.add(10**7 if quick else 10**8)
    unset = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    res["environment"]["openblas_unset_for_numpy"] = unset
    crcs = {}
    res["rounds"] = rounds
    if interleave:
        res["interleave"] = {"samples": samples, "min_time": min_time, "idle": idle
                             if idle != "stop" or hasattr(signal, "SIGSTOP") else "pause"}
        _run_interleaved(res, frameworks, rows, merged, crcs, sizes, samples, repeat,
                         min_time, quick, bandwidth, next_to_blas, unset, peer_python,
                         timeout, progress, idle)
    for rnd in range(rounds if not interleave else 0):
        order = frameworks[rnd % len(frameworks):] + frameworks[:rnd % len(frameworks)]
        for fw in order:
            _run_worker(res, fw, rnd, rows, merged, crcs, sizes, repeat, min_time, quick,
                        bandwidth, next_to_blas, unset, peer_python, timeout, progress,
                        rounds)
    for row in merged.values():
        for key in [k for k in row if k.endswith("_runs")]:
            runs = [t for t in row[key] if t is not None]
            row[key[:-5] + "_s"] = float(np.median(runs)) if runs else None
    res["inputs_identical"] = all(len(v) == 1 for v in crcs.values())
    _derive(res, {w.name: w for w in table})
    return res


def _worker_python(fw, unset, peer_python):
    """(python, environment) of framework ``fw``'s worker process."""
    env = dict(os.environ)
    python = sys.executable
    if fw == "numpy":
        for k in unset:
            del env[k]
    elif fw in PEERS and peer_python:
        python = peer_python
    if fw == "jax":
        env.setdefault("JAX_PLATFORMS", "cpu")
    return python, env


def _finish_spec(fw, first, sizes, repeat, min_time, quick, bandwidth, next_to_blas):
    """What a worker's last step needs: the timing settings and, for fastjac's first
    process only, the bandwidth sizes and the next-to-BLAS section."""
    spec = {"repeat": repeat, "min_time": min_time, "quick": bool(quick)}
    if fw == "fastjac":
        spec["bandwidth_bytes"] = sorted(sizes) if bandwidth and first else []
        spec["bandwidth_repeat"] = 3 if quick else 5
        spec["next_to_blas"] = bool(next_to_blas) and first
    return spec


def _run_worker(res, fw, rnd, rows, merged, crcs, sizes, repeat, min_time, quick, bandwidth,
                next_to_blas, unset, peer_python, timeout, progress, rounds):
    """Run framework ``fw``'s worker for round ``rnd`` and merge its times into the rows
    (``<fw>_runs`` lists, one entry per round)."""
    spec = {"framework": fw, "rows": [[w.name, label, dt] for w, label, dt in rows]}
    spec.update(_finish_spec(fw, rnd == 0, sizes, repeat, min_time, quick, bandwidth,
                             next_to_blas))
    python, env = _worker_python(fw, unset, peer_python)
    if progress:
        progress(f"timing {fw} in its own process ({python})"
                 + (f", round {rnd + 1} of {rounds}" if rounds > 1 else ""))
    _merge(res, fw, _launch(spec, python, env, timeout), python, merged, crcs, rnd == 0)


def _merge(res, fw, out, python, merged, crcs, first):
    """Merge one worker's JSON into the rows (``<fw>_runs``: one time per process run) and
    ``res``; a failed peer is reported missing, a failed fastjac raises RuntimeError."""
    if "failed" in out or "missing" in out:
        reason = out.get("failed") or out["missing"]
        if fw == "fastjac":
            raise RuntimeError(f"fastjac bench: the fastjac worker failed: {reason}")
        res["missing"].setdefault(fw, f"{reason} (in {python})")
        return
    if fw not in {f["name"] for f in res["frameworks"]}:
        res["frameworks"].append({"name": fw, "version": out.get("version"),
                                  "python": out["python"], "numpy": out["numpy"],
                                  "blas": out.get("blas")})
        if out.get("threading_layer"):
            res["frameworks"][-1]["threading_layer"] = out["threading_layer"]
    for r in out["rows"]:
        row = merged[(r["workload"], r["size"], r["dtype"])]
        if "time_s" in r:
            row.setdefault(f"{fw}_runs", []).append(r["time_s"])
            row["checks"][fw] = row["checks"].get(fw, True) and bool(r.get("checked"))
            if "first_call_s" in r:
                row.setdefault(f"{fw}_first_call_runs", []).append(r["first_call_s"])
            crcs.setdefault((r["workload"], r["size"], r["dtype"]), set()).add(
                r["inputs_crc"])
        elif r.get("error") != "no implementation":
            row.setdefault(f"{fw}_runs", []).append(None)
        if r.get("error") and r["error"] != "no implementation":
            row.setdefault("errors", {})[fw] = r["error"]
    if fw == "fastjac" and first:
        if "bandwidth" in out:
            res["bandwidth_by_bytes"] = out["bandwidth"]
            key = str(10**7 if res["quick"] else 10**8)
            if key in out["bandwidth"]:  # asked for with bandwidth=True
                res["bandwidth"] = out["bandwidth"][key]
        if "next_to_blas" in out:
            res["next_to_blas"] = out["next_to_blas"]


def _has(obj, dotted):
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def _derive(res, table):
    """Ratios, best peers and ×bound of every row, from the merged times."""
    others = [fw for fw in FRAMEWORKS if fw != "fastjac"]
    by_bytes = res.get("bandwidth_by_bytes", {})
    for w in res["workloads"]:
        wl = table[w["name"]]
        for row in w["rows"]:
            fj_s, np_s = row.get("fastjac_s"), row.get("numpy_s")
            row["ratio"] = np_s / fj_s if fj_s and np_s else None
            row["checked"] = bool(row["checks"].get("fastjac"))
            times = {fw: row[f"{fw}_s"] for fw in others if row.get(f"{fw}_s")}
            if times and fj_s:
                best = min(times, key=times.get)
                row["best_other"] = best
                row["vs_best"] = times[best] / fj_s
                per_round = _vs_best_rounds(row, others, res.get("rounds", 1))
                if per_round:
                    row["vs_best_rounds"] = per_round
                per_sample = _vs_best_samples(row, others)
                if per_sample:
                    row["vs_best_samples"] = per_sample
                    row["vs_best_quartiles"] = _quartiles(per_sample)
            if wl.traffic is not None and fj_s:
                r_bytes, w_bytes = wl.traffic(_size(row["size"]),
                                              np.dtype(row["dtype"]).itemsize)
                nb = _bound_bytes((r_bytes, w_bytes))
                bw = by_bytes.get(str(nb)) if nb else None
                if bw:
                    row["traffic_bytes"] = [r_bytes, w_bytes]
                    row["bound_s"] = (r_bytes / (bw["read_GBps"] * 1e9)
                                      + w_bytes / (bw["write_GBps"] * 1e9))
                    row["bound_ratio"] = fj_s / row["bound_s"]
    big = _largest_loss_grad(res)
    if big is not None and "bandwidth" in res:
        res["bandwidth"]["loss_grad"] = big


def _vs_best_rounds(row, others, rounds):
    """Each round's fastest-other / fastjac ratio, or None with one round (or where a
    framework lacks a round)."""
    if rounds < 2:
        return None
    runs = {fw: row.get(f"{fw}_runs") for fw in ["fastjac"] + others if row.get(f"{fw}_runs")}
    if "fastjac" not in runs or len(runs) < 2:
        return None
    if any(len(v) != rounds or None in v for v in runs.values()):
        return None
    return [min(runs[fw][i] for fw in runs if fw != "fastjac") / runs["fastjac"][i]
            for i in range(rounds)]


def _vs_best_samples(row, others):
    """Per sample k: the fastest other framework's k-th sample over fastjac's k-th
    (``--interleave``: taken next to each other in time); None without such pairs."""
    fj_samples = row.get("fastjac_samples")
    peers = [row[f"{fw}_samples"] for fw in others if row.get(f"{fw}_samples")]
    if not fj_samples or not peers:
        return None
    ratios = []
    for k, t in enumerate(fj_samples):
        near = [p[k] for p in peers if k < len(p) and p[k]]
        if t and near:
            ratios.append(min(near) / t)
    return ratios or None


def _quartiles(values):
    """[lower quartile, median, upper quartile] of ``values`` (linear interpolation
    between order statistics, as ``numpy.percentile``)."""
    return [float(q) for q in np.percentile(np.asarray(values, dtype=float), [25, 50, 75])]


def _largest_loss_grad(res):
    """{"size", "dtype", "GBps", "fraction"} of the largest loss_grad row with a bound:
    the rate at which it reads X, and the fraction of the read bandwidth measured over the
    same bytes."""
    best = None
    for w in res["workloads"]:
        if w["name"] != "neuron.loss_grad":
            continue
        for r in w["rows"]:
            if "bound_s" not in r:
                continue
            nbytes = r["traffic_bytes"][0]
            if best is None or nbytes > best[0]:
                best = (nbytes, {"size": r["size"], "dtype": r["dtype"],
                                 "GBps": nbytes / r["fastjac_s"] / 1e9,
                                 "fraction_of_read_bandwidth": r["bound_s"] / r["fastjac_s"]})
    return None if best is None else best[1]

def _header(res):
    m = res["machine"]
    lines = [
        f"fastjac {m['fastjac']} | numpy {m['numpy']} | Python {m['python']} | "
        f"CPU {m.get('cpu_model', '?')}, {m['cpus']} CPUs | up to {m['max_threads']} "
        f"threads | precision {m['precision']}"
        + (f" | SIMD {m['simd']['cpu']}" if "simd" in m else ""),
    ]
    fws = []
    for f in res["frameworks"]:
        text = f["name"] + ("" if f["name"] in ("fastjac", "numpy") else f" {f['version']}")
        if f["name"] == "jax":
            text += " (jax.jit)"
        elif f["name"] == "torch":
            text += " (eager)"
        elif f["name"] == "numba":
            text += (" (@njit(parallel=True) loops, threading layer "
                     f"{f.get('threading_layer') or '?'})")
        if f["python"] != sys.executable:
            text += f" [{f['python']}]"
        fws.append(text)
    lines.append("each framework timed in its own process: " + ", ".join(fws))
    il = res.get("interleave")
    if il:
        how = {"stop": "the others stopped (SIGSTOP) meanwhile",
               "pause": f"a pause of {PAUSE_S:g} s after each",
               "none": "the others left as they are"}[il["idle"]]
        lines.append(f"interleaved: all processes alive at once, each row timed in "
                     f"{il['samples']} samples per framework taken in turn ({how}); "
                     "samples = the quartiles of the per-sample vs best")
    lines.append("JAX's and Numba's compile time is excluded (a warm-up call precedes the "
                 "timing); every result is checked against NumPy's in float64")
    for fw, why in res.get("missing", {}).items():
        lines.append(f"not measured: {fw}: {why}")
    for name, why in res.get("left_out", {}).items():
        lines.append(f"left out: {name} ({why}, which this fastjac does not have)")
    if not res.get("inputs_identical", True):
        lines.append("WARNING: the workers built different inputs (different NumPy "
                     "random streams?): compare rows with care")
    unset = res["environment"].get("openblas_unset_for_numpy")
    if unset:
        lines.append(", ".join(f"{k}={v}" for k, v in unset.items())
                     + ": unset for the NumPy baseline process only (it slows a current "
                       "OpenBLAS); every other process keeps it")
    for f in res["frameworks"]:
        if f["name"] in ("numpy", "fastjac") and f.get("blas"):
            lines.append(f"BLAS in the {f['name']} process: " + "; ".join(
                f"{b['api']} {b['version']} kernel {b['kernel']}, {b['threads']} threads"
                for b in f["blas"]))
    rounds = res.get("rounds", 1)
    median = (f"median over {il['samples']} samples of each sample's median of "
              f"{res['repeat']} loop{'s' * (res['repeat'] != 1)}" if il else
              f"median of {res['repeat']} repeats" if rounds == 1 else
              f"median over {rounds} rounds of each process's median of {res['repeat']} "
              "repeats; rounds = the lowest and highest vs best of single rounds")
    lines.append(f"speed-up = numpy / fastjac ({median}; above 1: "
                 "fastjac is faster); vs best = fastest other framework / fastjac; ×bound = "
                 "fastjac / memory-traffic bound (bytes read and written at the bandwidths "
                 "measured over as many bytes; rows from 1 MB)")
    if "loadavg" in m:
        lines.append(f"load average at start: {m['loadavg'][0]:.2f} (a busy machine makes "
                     "every number noisier)")
    return lines


def format_tables(res):
    """The text tables ``fastjac bench`` prints."""
    lines = _header(res)
    extra = [fw for fw in PEERS if any(f"{fw}_s" in r for w in res["workloads"]
                                       for r in w["rows"])]
    for w in res["workloads"]:
        lines.append("")
        lines.append(f"{w['name']}: {w['description']}")
        head = f"  {'size':>12}  {'dtype':<8} {'numpy':>10} {'fastjac':>10} {'speed-up':>9}"
        for k in extra:
            head += f" {k:>10}"
        head += f" {'vs best':>8} {'×bound':>7}"
        spread = res.get("rounds", 1) > 1
        if spread:
            head += f"  {'rounds':>11}"
        sampled = "interleave" in res
        if sampled:
            head += f"  {'samples':>11}"
        lines.append(head)
        first = []
        for r in w["rows"]:
            ratio = f"{r['ratio']:>8.2f}x" if r.get("ratio") else f"{'n/a':>9}"
            line = (f"  {r['size']!s:>12}  {r['dtype']:<8} {format_time(r.get('numpy_s')):>10} "
                    f"{format_time(r.get('fastjac_s')):>10} {ratio}")
            for k in extra:
                line += f" {format_time(r.get(f'{k}_s')) if f'{k}_s' in r else '-':>10}"
            line += f" {r['vs_best']:>7.2f}x" if "vs_best" in r else f" {'-':>8}"
            line += f" {r['bound_ratio']:>6.2f}x" if "bound_ratio" in r else f" {'-':>7}"
            if spread:
                vr = r.get("vs_best_rounds")
                line += (f"  {min(vr):>5.2f}-{max(vr):.2f}x" if vr else f"  {'-':>11}")
            if sampled:
                q = r.get("vs_best_quartiles")
                line += (f"  {q[0]:>5.2f}-{q[2]:.2f}x" if q else f"  {'-':>11}")
            bad = [fw for fw, ok in r["checks"].items() if not ok]
            if bad:
                line += f"  (RESULT MISMATCH: {', '.join(bad)})"
            if r.get("errors"):
                line += "  (failed: " + "; ".join(f"{k}: {v}" for k, v in
                                                  r["errors"].items()) + ")"
            lines.append(line)
            fc = [(k[:-13], r[k]) for k in r if k.endswith("_first_call_s")]
            if fc:
                first.append(f"{r['size']} {r['dtype']}: " + ", ".join(
                    f"{k} {format_time(v)}" for k, v in fc))
        if first:
            lines.append("  first call (set-up, tracing, compiling and one run): "
                         + "; ".join(first))
    if "bandwidth" in res:
        b = res["bandwidth"]
        lines.append("")
        lines.append(f"memory bandwidth over {b['bytes'] / 1e6:.0f} MB: read "
                     f"{b['read_GBps']:.1f} GB/s (fastjac.sum: {b['fastjac_1thread_GBps']:.1f} "
                     f"on 1 thread, {b['fastjac_all_threads_GBps']:.1f} on all; numpy.sum "
                     f"{b['numpy_GBps']:.1f}), write {b['write_GBps']:.1f} GB/s, triad "
                     f"{b['triad_GBps']:.1f} GB/s")
        if "loss_grad" in b:
            lg = b["loss_grad"]
            lines.append(f"neuron.loss_grad {lg['size']} {lg['dtype']} reads X at "
                         f"{lg['GBps']:.1f} GB/s: {100 * lg['fraction_of_read_bandwidth']:.0f}% "
                         "of the read bandwidth measured over as many bytes")
    if res.get("next_to_blas"):
        lines.append("")
        lines.append(f"next to BLAS: a loop step [NumPy {NEXT_TO_BLAS_PRODUCT}x"
                     f"{NEXT_TO_BLAS_PRODUCT} product; fastjac call], float64, default "
                     "threads; ratio = step / (product alone + fastjac on 1 thread), goal "
                     "≤ 1.10; quiet = 1 thread / default threads with no BLAS call before")
        lines.append(f"  {'call':<18} {'size':>12} {'product':>10} {'1 thread':>10} "
                     f"{'default':>10} {'step':>10} {'ratio':>7} {'quiet':>7}")
        for r in res["next_to_blas"]:
            lines.append(f"  {r['name']:<18} {r['size']!s:>12} {format_time(r['product_s']):>10} "
                         f"{format_time(r['fastjac_1thread_s']):>10} "
                         f"{format_time(r['fastjac_s']):>10} {format_time(r['step_s']):>10} "
                         f"{r['ratio']:>6.2f}x {r['quiet_speedup']:>6.2f}x")
    return "\n".join(lines)


def _elements(size):
    """Elements of a row's size: n, or N·n for an "NxM" neuron batch."""
    return math.prod(int(v) for v in str(size).split("x"))


def _plot(res, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("fastjac bench: --plot needs matplotlib, which is not installed "
              "(pip install 'fastjac[plot]'); the tables and JSON are unaffected.",
              file=sys.stderr)
        return False
    dtypes = [d for d in ("float64", "float32")
              if any(r["dtype"] == d for w in res["workloads"] for r in w["rows"])]
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.8), squeeze=False,
                             sharey=True)
    for ax, dtype in zip(axes[0], dtypes):
        for i, w in enumerate(res["workloads"]):
            pts = sorted((_elements(r["size"]), r["ratio"]) for r in w["rows"]
                         if r["dtype"] == dtype and r.get("ratio"))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^vD<>"[i % 7],
                        ls="-" if i < 10 else "--", label=w["name"])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (n, or N·n for the neuron)")
        ax.set_title(dtype)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("speed-up over NumPy (numpy time / fastjac time)")
    axes[0][-1].legend(fontsize=7, loc="best")
    m = res["machine"]
    fig.suptitle(f"fastjac bench: {m.get('cpu_model', '?')}, {m['cpus']} CPUs, numpy "
                 f"{m['numpy']} (above the line: fastjac is faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main_bench(argv=None):
    """Entry point of ``fastjac bench``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="fastjac bench",
        description="Time fastjac against the code a user of NumPy, PyTorch, JAX or Numba "
                    "would write (one table per workload, speed-up = numpy / fastjac), each "
                    "framework in its own process, sampled in turn, with each large row's "
                    "ratio to its memory-traffic bound and the 'next to BLAS' loop step.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: a few seconds")
    parser.add_argument("--repeat", type=int, default=None,
                        help="samples per median (default 7, or 3 with --quick)")
    parser.add_argument("--workload", action="append", default=None, metavar="NAME",
                        help="run only this workload (repeatable), e.g. 'tanh.vjp' or "
                             "'next-to-blas'")
    parser.add_argument("--max-size", type=int, default=None, metavar="N",
                        help="only rows of at most N elements (n, or N·n for the neuron)")
    parser.add_argument("--dtype", action="append", choices=["float64", "float32"],
                        default=None, help="only this dtype (repeatable)")
    parser.add_argument("--framework", action="append", choices=list(FRAMEWORKS),
                        default=None, help="only this framework (repeatable; fastjac always "
                                           "runs)")
    parser.add_argument("--peer-python", metavar="PYTHON", default=None,
                        help="the Python that runs the PyTorch, JAX and Numba workers "
                             "(another environment; it needs NumPy, not fastjac)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="interleaved: per request to a framework's process (default "
                             "300, or 120 with --quick); one by one: per process (default "
                             "1800, or 300)")
    parser.add_argument("--rounds", type=int, default=1, metavar="K",
                        help="one by one: run every framework's process K times in turn "
                             "and take the median over rounds (default 1); shows each row's "
                             "range")
    parser.add_argument("--interleave", action="store_true",
                        help="the default: start every framework's process once and time "
                             "the frameworks in turn, row by row, in short samples, so that "
                             "all of them meet the same moments of a machine whose speed "
                             "moves; the 'samples' column shows the quartiles of the "
                             "per-sample vs best")
    parser.add_argument("--one-by-one", action="store_true",
                        help="instead, run each framework's process after the other, each "
                             "timing all its rows (implied by --rounds)")
    parser.add_argument("--samples", type=int, default=None, metavar="S",
                        help="interleaved: samples per framework and row (default 5, or 3 "
                             "with --quick); --repeat is then the loops per sample "
                             "(default 3)")
    parser.add_argument("--idle", choices=IDLE_MODES, default="stop",
                        help="interleaved: how a framework that is not being sampled "
                             "is kept from spinning threads: 'stop' its process (SIGSTOP, "
                             "the default; a pause where there is none), 'pause' 0.2 s "
                             "after each sample, or 'none'")
    parser.add_argument("--no-bandwidth", action="store_true",
                        help="skip the memory-bandwidth measurement (and ×bound)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also save a chart of the speed-ups (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.interleave and (args.rounds != 1 or args.one_by_one):
        parser.error("--rounds and --interleave do not combine: interleaved, every "
                     "framework's process runs once; use --samples S for more samples")
    if args.samples is not None and args.samples < 1:
        parser.error("--samples must be at least 1")
    one_by_one = args.one_by_one or args.rounds != 1
    if one_by_one and (args.samples is not None or args.idle != "stop"):
        parser.error("--samples and --idle are for the interleaved mode, not with "
                     "--one-by-one or --rounds")
    if args.max_size is not None and args.max_size < 1:
        parser.error("--max-size must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.peer_python and not os.path.exists(args.peer_python):
        parser.error(f"--peer-python {args.peer_python}: no such file")
    known = [w.name for w in WORKLOADS] + ["next-to-blas"]
    if args.workload:
        unknown = [w for w in args.workload if w not in known]
        if unknown:
            print(f"fastjac bench: no workload named {', '.join(unknown)} (known: "
                  f"{', '.join(known)})", file=sys.stderr)
            return 2
    try:
        res = run_bench(quick=args.quick, repeat=args.repeat, workloads=args.workload,
                        dtypes=tuple(args.dtype) if args.dtype else ("float64", "float32"),
                        bandwidth=not args.no_bandwidth, frameworks=args.framework,
                        peer_python=args.peer_python, timeout=args.timeout,
                        max_size=args.max_size, rounds=args.rounds,
                        interleave=not one_by_one, samples=args.samples, idle=args.idle,
                        progress=lambda msg: print(f"fastjac bench: {msg}", file=sys.stderr,
                                                   flush=True))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(format_tables(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2, ensure_ascii=False)
    if args.plot and not _plot(res, args.plot):
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_bench())
