"""``fastjac bench``: a representative benchmark of fastjac against NumPy in one command.

For each workload (element-wise VJPs, the fused ``exp(w) ⊗ sin(x)`` VJP, scalar expansion,
sum and dot, and the ReLU neuron's ``loss_grad`` when ``fastjac.neuron`` exists) it times
the fastjac call and the NumPy code a user would write for the same result, on the same
inputs, and prints one table per workload::

    size  dtype    numpy      fastjac    speed-up
    ...

*speed-up* is ``numpy median / fastjac median`` (above 1: fastjac is faster). Columns for
PyTorch and JAX (CPU) appear only when they can be imported; they are timed in a
second pass, after every NumPy and fastjac row, because their thread pools keep spinning
after a call and would take the second core from whatever is timed next. Each time is the median of
several repeats of a loop long enough to make the timer's resolution irrelevant; inputs are
built before timing and every result is checked against NumPy's after timing.

The memory read bandwidth (``fastjac.sum`` over a 1e8-byte array: bytes / time) is reported
alongside: at large sizes an element-wise kernel cannot beat the bytes it must move, so
this number is the ceiling to compare the 1e6-element rows with.

Examples
--------
``fastjac bench``                      the full table (under two minutes)
``fastjac bench --quick``              a few seconds: small sizes, few repeats
``fastjac bench --json out.json --plot out.png``
"""

import argparse
import json
import math
import os
import platform
import sys
import time
import zlib

import numpy as np

import fastjac as fj
from fastjac import _reference
from fastjac._display import format_time
from fastjac._kernels import elementwise as K
from fastjac._validate import CPU_COUNT

__all__ = ["main_bench", "run_bench"]


# --------------------------------------------------------------------------------- timing
def _median_time(fn, repeat, min_time, best=False):
    """Median (or, with ``best``, least) seconds per call of ``fn()`` over ``repeat``
    samples of >= ``min_time`` each."""
    fn()  # warm up (first-touch page faults, lazy imports, thread pool start)
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or number >= 1 << 20:
            break
        number *= 2 if dt <= 0 else max(2, min(10, int(min_time / dt * 1.2) + 1))
    samples = [dt / number]
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(min(samples) if best else np.median(samples))


def _close(a, b, dtype):
    """fastjac's and NumPy's results agree to the dtype's precision (sums: to their scale)."""
    rtol = 1e-9 if np.dtype(dtype) == np.float64 else 1e-3
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        scale = float(np.max(np.abs(v))) if v.size else 0.0
        if u.shape != v.shape or not np.allclose(u, v, rtol=rtol, atol=rtol * max(1.0, scale)):
            return False
    return True


# ------------------------------------------------------------------------------ workloads
def _frameworks():
    """{"torch": module, "jax": (jax, jnp)} for the frameworks that import (CPU only)."""
    found = {}
    try:
        import torch

        found["torch"] = torch
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        found["jax"] = (jax, jnp)
    except Exception:  # noqa: BLE001
        pass
    return found


def _workloads(fj):
    """name -> (description, make(n, dtype, rng) -> (fastjac_fn, numpy_fn, torch_fn, jax_fn))."""
    fused = fj.elementwise(fj.mul, f=fj.exp, g=fj.sin)

    def unary(op, np_vjp, torch_vjp, jax_vjp):
        def make(n, dtype, rng, fw):
            x = rng.standard_normal(n).astype(dtype)
            gy = rng.standard_normal(n).astype(dtype)
            return (lambda: op.vjp(x, gy), lambda: np_vjp(x, gy),
                    _torch_fn(fw, torch_vjp, x, gy), _jax_fn(fw, jax_vjp, x, gy))
        return make

    def binary(op, np_vjp, torch_vjp, jax_vjp, positive_x=False):
        def make(n, dtype, rng, fw):
            w = rng.standard_normal(n).astype(dtype)
            x = rng.standard_normal(n).astype(dtype)
            if positive_x:
                x = (np.abs(x) + 0.5).astype(dtype)
            gy = rng.standard_normal(n).astype(dtype)
            return (lambda: op.vjp(w, x, gy), lambda: np_vjp(w, x, gy),
                    _torch_fn(fw, torch_vjp, w, x, gy), _jax_fn(fw, jax_vjp, w, x, gy))
        return make

    def np_tanh(x, g):
        t = np.tanh(x)
        return g * (1 - t * t)

    def np_sigmoid(x, g):
        s = 1 / (1 + np.exp(-x))
        return g * s * (1 - s)

    def np_fused(w, x, g):
        e = np.exp(w)
        return g * e * np.sin(x), g * e * np.cos(x)

    def make_scalar(n, dtype, rng, fw):
        x = rng.standard_normal(n).astype(dtype)
        gy = rng.standard_normal(n).astype(dtype)
        z = 2.5
        return (lambda: fj.mul.vjp(x, z, gy),
                lambda: (gy * z, np.sum(gy * x)),
                None, None)

    def make_sum(n, dtype, rng, fw):
        x = rng.standard_normal(n).astype(dtype)
        return (lambda: fj.sum(x), lambda: np.sum(x), None, None)

    def make_dot(n, dtype, rng, fw):
        w = rng.standard_normal(n).astype(dtype)
        x = rng.standard_normal(n).astype(dtype)
        return (lambda: fj.dot(w, x), lambda: np.dot(w, x), None, None)

    return {
        "exp.vjp": ("gy ⊗ exp(x)", unary(fj.exp, lambda x, g: g * np.exp(x),
                                         lambda t, x, g: g * t.exp(x),
                                         lambda jnp, x, g: g * jnp.exp(x))),
        "tanh.vjp": ("gy ⊗ (1 - tanh²x)", unary(fj.tanh, np_tanh,
                                               lambda t, x, g: g * (1 - t.tanh(x) ** 2),
                                               lambda jnp, x, g: g * (1 - jnp.tanh(x) ** 2))),
        "sigmoid.vjp": ("gy ⊗ σ(x)(1 - σ(x))", unary(
            fj.sigmoid, np_sigmoid,
            lambda t, x, g: g * t.sigmoid(x) * (1 - t.sigmoid(x)),
            lambda jnp, x, g: g / (1 + jnp.exp(-x)) * (1 - 1 / (1 + jnp.exp(-x))))),
        "relu.vjp": ("gy ⊗ (x > 0)", unary(fj.relu, lambda x, g: g * (x > 0),
                                          lambda t, x, g: g * (x > 0),
                                          lambda jnp, x, g: g * (x > 0))),
        "mul.vjp": ("(gy ⊗ x, gy ⊗ w)", binary(fj.mul, lambda w, x, g: (g * x, g * w),
                                              lambda t, w, x, g: (g * x, g * w),
                                              lambda jnp, w, x, g: (g * x, g * w))),
        "div.vjp": ("(gy ⊘ x, -gy ⊗ w ⊘ x²)", binary(
            fj.div, lambda w, x, g: (g / x, -g * w / (x * x)),
            lambda t, w, x, g: (g / x, -g * w / (x * x)),
            lambda jnp, w, x, g: (g / x, -g * w / (x * x)), positive_x=True)),
        "exp(w)⊗sin(x).vjp": ("fused f(w) ○ g(x), §4.2", binary(
            fused, np_fused,
            lambda t, w, x, g: (g * t.exp(w) * t.sin(x), g * t.exp(w) * t.cos(x)),
            lambda jnp, w, x, g: (g * jnp.exp(w) * jnp.sin(x), g * jnp.exp(w) * jnp.cos(x)))),
        "mul.vjp scalar": ("x z: (gy z, Σ gy ⊗ x), §4.3", make_scalar),
        "sum": ("Σ x (double accumulator)", make_sum),
        "dot": ("w · x", make_dot),
    }


def _torch_fn(fw, f, *arrays):
    if f is None or "torch" not in fw:
        return None
    torch = fw["torch"]
    ts = [torch.from_numpy(a) for a in arrays]
    return lambda: f(torch, *ts)


def _jax_fn(fw, f, *arrays):
    if f is None or "jax" not in fw:
        return None
    jax, jnp = fw["jax"]
    g = jax.jit(lambda *a: f(jnp, *a))
    ja = [jnp.asarray(a) for a in arrays]

    def run():
        return jax.block_until_ready(g(*ja))
    return run


def _neuron_workloads(quick):
    """The ReLU neuron (paper §6): ``loss_grad`` and a 300-epoch ``fit``.
    Returns [(name, description, make, shapes)]."""
    fn = fj.neuron

    def torch_loss_grad(torch):
        def run(X, y, w, b):
            w = w.detach().requires_grad_(True)
            b = b.detach().requires_grad_(True)
            r = torch.relu(X @ w + b) - y
            C = (r * r).mean()
            gw, gb = torch.autograd.grad(C, (w, b))
            return C, gw, gb
        return run

    def jax_loss(jnp):
        def loss(w, b, X, y):
            r = jnp.maximum(X @ w + b, 0) - y
            return jnp.mean(r * r)
        return loss

    def batch(shape, dtype, rng):
        N, n = shape
        X = rng.standard_normal((N, n), dtype=np.float64).astype(dtype, copy=False)
        w = (rng.standard_normal(n) / math.sqrt(n)).astype(dtype)
        y = rng.standard_normal(N).astype(dtype)
        return X, y, w

    def make_loss_grad(shape, dtype, rng, fw):
        X, y, w = batch(shape, dtype, rng)
        b = dtype.type(0.1)
        f_torch = f_jax = None
        if "torch" in fw:
            torch = fw["torch"]
            tX, ty, tw, tb = (torch.from_numpy(np.asarray(a)) for a in (X, y, w, b))
            step = torch_loss_grad(torch)
            f_torch = lambda: step(tX, ty, tw, tb)  # noqa: E731
        if "jax" in fw:
            jax, jnp = fw["jax"]
            g = jax.jit(jax.value_and_grad(jax_loss(jnp), argnums=(0, 1)))
            jX, jy, jw, jb = (jnp.asarray(a) for a in (X, y, w, b))
            f_jax = lambda: jax.block_until_ready(g(jw, jb, jX, jy))  # noqa: E731
        return (lambda: fn.loss_grad(X, y, w, b), lambda: _reference.loss_grad(X, y, w, b),
                f_torch, f_jax)

    epochs, lr = 300, 0.05

    def make_fit(shape, dtype, rng, fw):
        X, y, w0 = batch(shape, dtype, rng)
        b0 = 0.1
        f_torch = f_jax = None
        if "torch" in fw:
            torch = fw["torch"]
            tX, ty, tw0 = (torch.from_numpy(a) for a in (X, y, w0))
            step = torch_loss_grad(torch)

            def f_torch():
                w, b = tw0.clone(), torch.tensor(b0, dtype=tw0.dtype)
                losses = torch.empty(epochs, dtype=tw0.dtype)
                for e in range(epochs):
                    losses[e], gw, gb = step(tX, ty, w, b)
                    w, b = w - lr * gw, b - lr * gb
                return w, b
        if "jax" in fw:
            jax, jnp = fw["jax"]
            vgrad = jax.value_and_grad(jax_loss(jnp), argnums=(0, 1))

            def train(w, b, X, y):
                def epoch(e, state):
                    w, b, losses = state
                    C, (gw, gb) = vgrad(w, b, X, y)
                    return w - lr * gw, b - lr * gb, losses.at[e].set(C)
                return jax.lax.fori_loop(0, epochs, epoch,
                                         (w, b, jnp.zeros(epochs, dtype=w.dtype)))[:2]
            g = jax.jit(train)
            jX, jy, jw0 = (jnp.asarray(a) for a in (X, y, w0))
            jb0 = jnp.asarray(b0, dtype=jw0.dtype)
            f_jax = lambda: jax.block_until_ready(g(jw0, jb0, jX, jy))  # noqa: E731

        def f_fj():
            res = fn.fit(X, y, lr=lr, epochs=epochs, w0=w0, b0=b0)
            return res.w, res.b
        return (f_fj, lambda: _reference.fit(X, y, lr, epochs, w0, b0)[:2], f_torch, f_jax)

    if quick:
        shapes = [(256, 8), (1000, 10)]
    else:
        shapes = [(32, 8), (1000, 10), (100_000, 100), (1_000_000, 100)]
    return [("neuron.loss_grad", "C, ∂C/∂w, ∂C/∂b in one pass over X, §6", make_loss_grad,
             shapes),
            ("neuron.fit", f"{epochs} full-batch epochs of gradient descent, lr {lr}",
             make_fit, [(1000, 10)])]


# ------------------------------------------------------------------------------ bandwidth
def memory_bandwidth(nbytes=10**8, repeat=5):
    """Read bandwidth in GB/s: ``fastjac.sum`` (and ``numpy.sum``) over ``nbytes`` of float64.

    A reduction reads every byte once and writes nothing, so bytes / time is the rate at
    which this machine streams memory into one core (``n_threads=1``) or all cores. The
    time is the best of ``repeat``: the ceiling, against which the large ``loss_grad``'s
    median rate is reported (so the fraction errs low on a busy machine).
    """
    x = np.ones(max(1, nbytes // 8))
    res = {"bytes": int(x.nbytes)}
    for name, fn in (("fastjac_1thread", lambda: fj.sum(x, n_threads=1)),
                     ("fastjac_all_threads", lambda: fj.sum(x, n_threads=CPU_COUNT)),
                     ("numpy", lambda: np.sum(x))):
        # the best of the repeats: a ceiling is the fastest the machine was seen to go
        # (a median would fall whenever another job shares the memory bus)
        t = _median_time(fn, repeat, 0.0, best=True)
        res[name + "_GBps"] = x.nbytes / t / 1e9
    return res


# ----------------------------------------------------------------------------------- main
def _machine_info():
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastjac": fj.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "max_threads": fj.thread_info()["max_threads"],
        "precision": fj.get_precision(),
    }
    info["simd"] = K.simd_info()
    if hasattr(os, "getloadavg"):
        info["loadavg"] = list(os.getloadavg())
    return info


def run_bench(quick=False, repeat=None, workloads=None, dtypes=("float64", "float32"),
              bandwidth=True, progress=None):
    """Run the benchmark and return its results as a dict (what ``--json`` writes)."""
    repeat = repeat or (3 if quick else 7)
    min_time = 0.002 if quick else 0.02
    sizes = [10, 1000] if quick else [10, 1000, 1_000_000]
    table = [(name, desc, make, sizes) for name, (desc, make) in _workloads(fj).items()]
    table += _neuron_workloads(quick)
    if workloads:
        table = [row for row in table if row[0] in workloads]
    out = {"machine": _machine_info(), "frameworks": [], "quick": bool(quick),
           "repeat": repeat, "ratio": "numpy_s / fastjac_s (above 1: fastjac is faster)",
           "workloads": []}

    def cases():
        """(workload entry, size, dtype, rng): every row's inputs from its own seed, so that
        the second pass rebuilds exactly the first pass's inputs."""
        for entry in table:
            for size in entry[3]:
                for dtype in dtypes:
                    seed = zlib.crc32(f"{entry[0]}|{size}|{dtype}".encode())
                    yield entry, size, np.dtype(dtype), np.random.default_rng(seed)

    # Pass 1: NumPy and fastjac, before PyTorch or JAX is imported: their thread pools
    # keep spinning after a call and would take the second core from what is timed next.
    rows_of = {}
    for (name, desc, make, _), size, dt, rng in cases():
        f_fj, f_np, _, _ = make(size, dt, rng, {})
        row = {"size": size if isinstance(size, int) else "x".join(map(str, size)),
               "dtype": dt.name,
               "numpy_s": _median_time(f_np, repeat, min_time),
               "fastjac_s": _median_time(f_fj, repeat, min_time)}
        row["ratio"] = row["numpy_s"] / row["fastjac_s"]
        row["checked"] = _close(f_fj(), f_np(), dt)
        if name not in rows_of:
            rows_of[name] = []
            out["workloads"].append({"name": name, "description": desc,
                                     "rows": rows_of[name]})
        rows_of[name].append(row)
        if progress:
            progress(name, row)
    if bandwidth:
        out["bandwidth"] = b = memory_bandwidth(10**7 if quick else 10**8,
                                                repeat=3 if quick else 5)
        big = _largest_loss_grad(out)
        if big is not None:  # the rate at which loss_grad reads X, against the ceiling
            b["loss_grad"] = big
            big["fraction_of_all_threads"] = big["GBps"] / b["fastjac_all_threads_GBps"]
    # Pass 2: the frameworks that import, on the same inputs
    fw = _frameworks()
    out["frameworks"] = sorted(fw)
    if fw:
        position = {}
        for (name, _, make, _), size, dt, rng in cases():
            k = position[name] = position.get(name, -1) + 1
            row = rows_of[name][k]
            f_torch, f_jax = make(size, dt, rng, fw)[2:]
            for key, f in (("torch_s", f_torch), ("jax_s", f_jax)):
                if f is not None:
                    try:
                        row[key] = _median_time(f, repeat, min_time)
                    except Exception:  # noqa: BLE001 - a framework failing is not ours
                        row[key] = None
    return out


def _largest_loss_grad(res):
    """{"size", "dtype", "GBps"} of the largest loss_grad row measured: bytes of X / time."""
    best = None
    for w in res["workloads"]:
        if w["name"] != "neuron.loss_grad":
            continue
        for r in w["rows"]:
            N, n = map(int, str(r["size"]).split("x"))
            nbytes = N * n * np.dtype(r["dtype"]).itemsize
            if best is None or nbytes > best[0]:
                best = (nbytes, {"size": r["size"], "dtype": r["dtype"],
                                 "GBps": nbytes / r["fastjac_s"] / 1e9})
    return None if best is None else best[1]


def format_tables(res):
    """The text tables ``fastjac bench`` prints."""
    m = res["machine"]
    lines = [
        f"fastjac {m['fastjac']} | numpy {m['numpy']} | Python {m['python']} | "
        f"{m['cpus']} CPUs | up to {m['max_threads']} threads | "
        f"precision {m['precision']}"
        + (f" | SIMD {m['simd']['cpu']}" if "simd" in m else ""),
        f"speed-up = numpy / fastjac (median of {res['repeat']} repeats; above 1: fastjac "
        "is faster)",
    ]
    if "loadavg" in m:
        lines.append(f"load average at start: {m['loadavg'][0]:.2f} (a busy machine makes "
                     "every number noisier)")
    extra = [k for k in ("torch_s", "jax_s") if any(k in r for w in res["workloads"]
                                                     for r in w["rows"])]
    for w in res["workloads"]:
        lines.append("")
        lines.append(f"{w['name']}: {w['description']}")
        head = f"  {'size':>10}  {'dtype':<8} {'numpy':>10} {'fastjac':>10} {'speed-up':>9}"
        for k in extra:
            head += f" {k[:-2]:>10}"
        lines.append(head)
        for r in w["rows"]:
            line = (f"  {r['size']!s:>10}  {r['dtype']:<8} {format_time(r['numpy_s']):>10} "
                    f"{format_time(r['fastjac_s']):>10} {r['ratio']:>8.2f}x")
            for k in extra:
                line += f" {format_time(r.get(k)):>10}"
            if not r["checked"]:
                line += "  (RESULT MISMATCH)"
            lines.append(line)
    if "bandwidth" in res:
        b = res["bandwidth"]
        lines.append("")
        lines.append(f"memory read bandwidth (sum over {b['bytes'] / 1e6:.0f} MB of float64): "
                     f"fastjac {b['fastjac_1thread_GBps']:.1f} GB/s (1 thread), "
                     f"{b['fastjac_all_threads_GBps']:.1f} GB/s (all threads); "
                     f"numpy {b['numpy_GBps']:.1f} GB/s")
        if "loss_grad" in b:
            lg = b["loss_grad"]
            lines.append(f"neuron.loss_grad {lg['size']} {lg['dtype']} reads X at "
                         f"{lg['GBps']:.1f} GB/s: {100 * lg['fraction_of_all_threads']:.0f}% "
                         "of the all-threads read bandwidth")
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
                         if r["dtype"] == dtype)
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
    fig.suptitle(f"fastjac bench: {m['cpus']} CPUs, numpy {m['numpy']} "
                 "(above the line: fastjac is faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main_bench(argv=None):
    """Entry point of ``fastjac bench``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="fastjac bench",
        description="Time fastjac against the NumPy code a user would write (one table per "
                    "workload, speed-up = numpy / fastjac), with the machine's memory read "
                    "bandwidth alongside.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: a few seconds")
    parser.add_argument("--repeat", type=int, default=None,
                        help="samples per median (default 7, or 3 with --quick)")
    parser.add_argument("--workload", action="append", default=None, metavar="NAME",
                        help="run only this workload (repeatable), e.g. 'tanh.vjp'")
    parser.add_argument("--dtype", action="append", choices=["float64", "float32"],
                        default=None, help="only this dtype (repeatable)")
    parser.add_argument("--no-bandwidth", action="store_true",
                        help="skip the memory-bandwidth measurement")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also save a bar chart of the speed-ups (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    res = run_bench(quick=args.quick, repeat=args.repeat, workloads=args.workload,
                    dtypes=tuple(args.dtype) if args.dtype else ("float64", "float32"),
                    bandwidth=not args.no_bandwidth)
    if args.workload and not res["workloads"]:
        known = ", ".join(_workloads(fj))
        print(f"fastjac bench: no workload named {', '.join(args.workload)} (known: {known}, "
              "neuron.loss_grad, neuron.fit)", file=sys.stderr)
        return 2
    print(format_tables(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2, ensure_ascii=False)
    if args.plot and not _plot(res, args.plot):
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_bench())
