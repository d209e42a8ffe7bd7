"""The ``fastjac`` command line: ``fastjac check | bench | demo | train``.

``fastjac demo`` is the one-command tour: it validates every kernel against finite
differences, trains a ReLU neuron (paper §5, §6) on a built-in synthetic data set, shows
the loss curve, and times the same training written in plain NumPy. ``fastjac train``
trains the neuron on a CSV file of numeric columns. ``fastjac check`` prints the table of
:func:`fastjac.selfcheck` (:func:`main_check`); ``fastjac bench`` hands its arguments to
:func:`fastjac.bench.main_bench`.

A missing optional dependency (matplotlib, tqdm) gives a message naming it, not a
traceback. Usage and data errors exit with status 2, a failed gradient check with status 1.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import sys
import time
from typing import IO, Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

from . import __version__, _reference, bench, layer, neuron
from ._display import Progress, format_time
from ._selfcheck import selfcheck

__all__ = ["main", "main_check", "build_parser", "ascii_plot", "read_csv",
           "auto_learning_rate", "CLIError"]

PROG = "fastjac"


class CLIError(Exception):
    """An error the user can fix; printed as ``fastjac <command>: error: <message>``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------
# Optional dependencies
# ---------------------------------------------------------------------------------------

def _import_optional(module: str, option: str, extra: str) -> Any:
    """Import an optional third-party dependency or raise a CLIError saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CLIError(
            f"{option} needs the optional dependency {module}, which is not installed: "
            f"pip install {module}  (or pip install 'fastjac[{extra}]')"
        ) from None


def _check_matplotlib() -> None:
    _import_optional("matplotlib", "--plot", "plot")


# ---------------------------------------------------------------------------------------
# Text output
# ---------------------------------------------------------------------------------------

def ascii_plot(values: npt.ArrayLike, width: int = 60, height: int = 10,
               log: bool = True, xlabel: str = "epoch") -> List[str]:
    """A small text plot of a curve (e.g. the loss per epoch), in plain ASCII.

    Parameters
    ----------
    values : sequence of float
        The curve; non-finite values are left out.
    width, height : int
        Plot area in characters.
    log : bool, default True
        Logarithmic vertical axis (used only when every value is positive).
    xlabel : str
        Label of the horizontal axis.

    Returns
    -------
    list of str
        The lines of the plot, without newlines.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or not np.isfinite(v).any():
        return ["(nothing to plot)"]
    use_log = log and bool(np.all(v[np.isfinite(v)] > 0))
    t = np.log10(v) if use_log else v.copy()
    finite = np.isfinite(t)
    lo, hi = float(t[finite].min()), float(t[finite].max())
    span = hi - lo
    if span <= 0:  # a flat curve: one row
        span, height = 1.0, 1
    width = max(1, min(width, v.size))
    # Column c covers the points [edges[c], edges[c+1]); it shows their smallest and
    # largest value, so that a spike between two columns is not lost.
    edges = np.linspace(0, v.size, width + 1).round().astype(int)
    grid = [[" "] * width for _ in range(height)]
    for c in range(width):
        seg = t[edges[c]:max(edges[c + 1], edges[c] + 1)]
        seg = seg[np.isfinite(seg)]
        for val in (seg.min(), seg.max()) if seg.size else ():
            r = int(round((hi - float(val)) / span * (height - 1)))
            grid[r][c] = "*"

    def label(x: float) -> str:
        return f"{10 ** x if use_log else x:.3g}"

    top, bottom = label(hi), label(lo)
    lw = max(len(top), len(bottom))
    lines = []
    for r in range(height):
        lab = top if r == 0 else bottom if r == height - 1 else ""
        lab = "" if (r > 0 and lab == top) else lab
        lines.append(f"{lab:>{lw}} |" + "".join(grid[r]).rstrip())
    lines.append(" " * lw + " +" + "-" * width)
    left, right = "1", str(v.size)
    middle = f"{xlabel}{' (log scale)' if use_log else ''}"
    gap = width - len(left) - len(right)
    if gap >= len(middle) + 2:
        pad = gap - len(middle)
        axis = left + " " * (pad // 2) + middle + " " * (pad - pad // 2) + right
    else:
        axis = left + " " * max(1, gap) + right
    lines.append(" " * lw + "  " + axis)
    return lines


def _save_plot(losses: npt.ArrayLike, path: str, title: str) -> None:
    _import_optional("matplotlib", "--plot", "plot")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    values = np.asarray(losses, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, values.size + 1), values)
    if np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean squared error)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise CLIError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. an extension matplotlib has no writer for
        raise CLIError(f"cannot save the plot as {path}: {exc}") from None
    finally:
        plt.close(fig)


def _best_time(fn: Callable[[], Any], repeats: int) -> Tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _train(neuron: Any, X: np.ndarray, y: np.ndarray, *, lr: float, epochs: int,
           batch_size: Optional[int], w0: Optional[np.ndarray], b0: float, seed: int,
           progress: bool, desc: str) -> Any:
    """``neuron.fit`` with a progress bar driven from its per-epoch callback."""
    bar = Progress(epochs, desc=desc, enabled=progress)

    def on_epoch(epoch: int, loss: float, *rest: Any) -> None:
        bar.update(float(loss))

    try:
        return neuron.fit(X, y, lr=lr, epochs=epochs, batch_size=batch_size, w0=w0, b0=b0,
                          seed=seed, callback=on_epoch if progress else None)
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------
# fastjac check
# ---------------------------------------------------------------------------------------

def main_check(argv: Optional[Sequence[str]] = None) -> int:
    """``fastjac check``: print the :func:`fastjac.selfcheck` table; 0 when it passed, else 1.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments after ``check`` (default ``sys.argv[2:]``):
        ``--dtype {float64,float32}`` (repeatable), ``--seed N``, ``-v`` (print the full
        report of every failing row).

    Returns
    -------
    int
        The process exit status: 1 when a row failed or nothing was checked.
    """
    parser = argparse.ArgumentParser(
        prog=f"{PROG} check",
        description="Validate every fastjac kernel against central finite differences.",
    )
    parser.add_argument(
        "--dtype", action="append", choices=("float64", "float32"),
        help="dtype to check (repeatable; default both)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random points")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failing reports")
    opts = parser.parse_args(sys.argv[2:] if argv is None else argv)
    report = selfcheck(dtypes=tuple(opts.dtype or ("float64", "float32")), seed=opts.seed)
    print(report)
    if opts.verbose:
        for row in report.failures:
            if row.report is not None:
                print()
                print(row.report)
    return 0 if report.passed else 1


# ---------------------------------------------------------------------------------------
# fastjac demo
# ---------------------------------------------------------------------------------------

def synthetic_neuron_data(n_samples: int = 2000, n_features: int = 8, noise: float = 0.05,
                          seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A data set a ReLU neuron can learn: ``y = max(0, X w* + b*) + noise``.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features), float64, standard normal entries
    y : ndarray, shape (n_samples,)
    w_star : ndarray, shape (n_features,), the planted (teacher) weights
    b_star : float, the planted bias
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w_star = np.round(rng.normal(0.0, 1.0, n_features), 2)
    b_star = 0.5
    y = np.maximum(X @ w_star + b_star, 0.0) + noise * rng.standard_normal(n_samples)
    return X, y, w_star, b_star


def _run_selfcheck(out: IO[str]) -> bool:
    """Print a one-line summary of :func:`fastjac.selfcheck` (plus failures)."""
    t0 = time.perf_counter()
    report = selfcheck()
    elapsed = time.perf_counter() - t0
    rows = list(report.rows)
    passed = sum(r.status == "passed" for r in rows)
    skipped = sum(r.status == "skipped" for r in rows)
    kinks = sum(r.kinks for r in rows)
    failures = [r for r in rows if not r.ok]
    summary = f"{passed} checks passed, {len(failures)} failed"
    if skipped:
        summary += f", {skipped} skipped"
    if kinks:
        summary += f" ({kinks} points on kinks reported apart, as designed)"
    ok = bool(report)
    print(f"   {'PASSED' if ok else 'FAILED'}: {summary}  [{format_time(elapsed)}]", file=out)
    for r in failures[:20]:
        detail = f"  {r.detail}" if r.detail else ""
        print(f"   FAILED {r.op} ({r.dtype}): max rel err {r.max_rel_err:.2e} "
              f"> bound {r.bound:.1e}{detail}", file=out)
    if len(failures) > 20:
        print(f"   ... and {len(failures) - 20} more (run `fastjac check -v`)", file=out)
    return ok


def _cmd_demo(opts: argparse.Namespace) -> int:
    out = sys.stdout
    if opts.plot:
        _check_matplotlib()
    if opts.epochs < 1:
        raise CLIError("--epochs must be at least 1")
    N, n, lr, epochs = opts.samples, opts.features, opts.lr, opts.epochs
    if N < 1 or n < 1:
        raise CLIError("--samples and --features must be at least 1")
    if opts.repeats < 1:
        raise CLIError("--repeats must be at least 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise CLIError("--lr must be a positive number")

    print(f"fastjac {__version__} demo: one ReLU neuron, max(0, w·x + b), trained "
          "by gradient descent on its MSE loss (Parr & Howard §5-§6)\n", file=out)

    print("1. Gradient check: every fastjac kernel against central finite differences",
          file=out)
    check_ok = _run_selfcheck(out) if not opts.no_check else None
    if opts.no_check:
        print("   skipped (--no-check)", file=out)

    X, y, w_star, b_star = synthetic_neuron_data(N, n, noise=opts.noise, seed=opts.seed)
    rng = np.random.default_rng(opts.seed + 1)
    w0 = rng.normal(0.0, 1.0 / math.sqrt(n), n)
    b0 = 0.0
    print(f"\n2. Data (built in, seed {opts.seed}): N={N} samples of n={n} features, "
          f"x ~ N(0, I);\n   y = max(0, w*·x + b*) + N(0, {opts.noise}²) noise, with a "
          "planted teacher neuron (w*, b*)", file=out)

    print(f"\n3. Training with fastjac.neuron.fit: full batch, lr={lr:g}, {epochs} epochs",
          file=out)
    out.flush()
    try:
        res = _train(neuron, X, y, lr=lr, epochs=epochs, batch_size=None, w0=w0, b0=b0,
                     seed=opts.seed, progress=not opts.no_progress, desc="fit")
    except FloatingPointError as exc:
        raise CLIError(f"training diverged: {exc}. Try a smaller --lr.") from None
    losses = np.asarray(res.losses, dtype=np.float64)
    final = float(neuron.loss(X, y, res.w, res.b))
    print(f"   loss {losses[0]:.4g} -> {final:.4g}   (the noise alone gives about "
          f"{opts.noise ** 2:.4g})", file=out)
    if not final < losses[0]:
        print(f"   warning: the loss did not go down: lr={lr:g} is too large for this data "
              "(the default is 0.1)", file=out)
    print(f"\n   {'parameter':<10}{'planted':>9}  {'learned':>10}", file=out)
    shown = n if n <= 12 else 10
    for j in range(shown):
        print(f"   {f'w[{j}]':<10}{w_star[j]:>9.4g}  {float(res.w[j]):>10.4g}", file=out)
    if shown < n:
        print(f"   ... and {n - shown} more weights", file=out)
    print(f"   {'b':<10}{b_star:>9.4g}  {float(res.b):>10.4g}", file=out)
    err = max(float(np.max(np.abs(res.w - w_star))), abs(res.b - b_star))
    print(f"   largest |learned - planted| = {err:.3g}", file=out)

    print("\n4. Loss per epoch", file=out)
    for line in ascii_plot(losses, width=min(60, max(epochs, 2)), height=8):
        print("   " + line, file=out)
    if opts.plot:
        _save_plot(losses, opts.plot, "fastjac demo: ReLU neuron, full-batch GD")
        print(f"   saved the loss curve to {opts.plot}", file=out)

    print("\n5. Speed: the same training (same start, same steps) written in plain NumPy",
          file=out)
    repeats = opts.repeats
    t_np, (w_np, b_np, _) = _best_time(lambda: _reference.fit(X, y, lr, epochs, w0, b0), repeats)
    t_fj, fj_res = _best_time(
        lambda: neuron.fit(X, y, lr=lr, epochs=epochs, w0=w0, b0=b0, seed=opts.seed), repeats)
    agree = max(float(np.max(np.abs(fj_res.w - w_np))), abs(fj_res.b - b_np))
    print(f"   NumPy:    {format_time(t_np):>9}   (best of {repeats})", file=out)
    print(f"   fastjac:  {format_time(t_fj):>9}   (best of {repeats})", file=out)
    print(f"   speed-up: {t_np / t_fj:.1f}x   (the two agree to {agree:.1e} in w and b)",
          file=out)

    if check_ok is False:
        print("\nThe gradient check FAILED (see step 1): exit status 1.", file=out)
        return 1
    return 0


# ---------------------------------------------------------------------------------------
# fastjac train
# ---------------------------------------------------------------------------------------

def read_csv(path: str) -> Tuple[List[str], np.ndarray]:
    """Read a CSV file of numeric columns with a header row.

    Returns
    -------
    names : list of str
        The column names (header row, surrounding spaces removed).
    data : ndarray, shape (rows, columns), float64

    Raises
    ------
    CLIError
        Missing or unreadable file, no header, duplicate or empty column names, a row with
        the wrong number of fields, a cell that is not a finite number (naming its line
        and column), or no data rows.
    """
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CLIError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CLIError(f"{path} is a directory, not a CSV file") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise CLIError(f"{path} is not a UTF-8 text file") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    reader = csv.reader(text.splitlines(), dialect)
    header: Optional[List[str]] = None
    rows: List[List[float]] = []
    for fields in reader:
        if not fields or all(not c.strip() for c in fields):
            continue  # blank line
        if header is None:
            header = [c.strip() for c in fields]
            if any(not h for h in header):
                raise CLIError(f"{path}, line {reader.line_num}: the header row has an "
                               "empty column name")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise CLIError(f"{path}: duplicate column names in the header: "
                               + ", ".join(dup))
            continue
        if len(fields) != len(header):
            raise CLIError(f"{path}, line {reader.line_num}: {len(fields)} fields, but the "
                           f"header has {len(header)} columns")
        row = []
        for name, cell in zip(header, fields):
            s = cell.strip()
            try:
                value = float(s)
            except ValueError:
                what = "an empty cell" if not s else f"{s!r} is not a number"
                raise CLIError(f"{path}, line {reader.line_num}, column {name!r}: {what} "
                               "(every cell must be numeric)") from None
            if not math.isfinite(value):
                raise CLIError(f"{path}, line {reader.line_num}, column {name!r}: {s!r} is "
                               "not a finite number")
            row.append(value)
        rows.append(row)
    if header is None:
        raise CLIError(f"{path} is empty: expected a header row and data rows")
    if not rows:
        raise CLIError(f"{path} has a header but no data rows")
    return header, np.array(rows, dtype=np.float64)


def auto_learning_rate(X: np.ndarray, iterations: int = 30) -> float:
    """A safe gradient-descent step for the neuron on ``X``: ``1 / λ_max``.

    ``λ_max`` is the largest eigenvalue of ``(2/N) X̂ᵀX̂`` with ``X̂ = [X, 1]``, the
    curvature of the MSE when every sample is active (the bias is the column of ones),
    found by power iteration. Gradient descent on a quadratic is stable for steps below
    ``2 / λ_max``; ``1 / λ_max`` leaves a factor of two to spare.
    """
    N, n = X.shape
    v = np.full(n + 1, 1.0 / math.sqrt(n + 1))
    lam = 0.0
    for _ in range(iterations):
        u = X @ v[:n] + v[n]
        g = np.empty(n + 1)
        g[:n] = X.T @ u
        g[n] = u.sum()
        g *= 2.0 / N
        lam = float(np.linalg.norm(g))
        if not lam > 0 or not math.isfinite(lam):
            return 0.01
        v = g / lam
    return 1.0 / lam


def _cmd_train(opts: argparse.Namespace) -> int:
    out = sys.stdout
    if opts.lr is not None and not (opts.lr > 0 and math.isfinite(opts.lr)):
        raise CLIError("--lr must be a positive number")
    if opts.epochs < 1:
        raise CLIError("--epochs must be at least 1")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    if opts.hidden is not None and opts.hidden < 1:
        raise CLIError("--hidden must be at least 1 (the number of hidden ReLU neurons)")
    if opts.plot:
        _check_matplotlib()
    names, data = read_csv(opts.csv)
    if opts.target not in names:
        raise CLIError(f"no column {opts.target!r} in {opts.csv}; the columns are: "
                       + ", ".join(names))
    t = names.index(opts.target)
    features = [c for i, c in enumerate(names) if i != t]
    if not features:
        raise CLIError(f"{opts.csv} has no feature columns besides the target {opts.target!r}")
    X = np.ascontiguousarray(np.delete(data, t, axis=1))
    y = np.ascontiguousarray(data[:, t])
    N, n = X.shape

    mean: Optional[np.ndarray] = None
    std: Optional[np.ndarray] = None
    if opts.standardize:
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std[std == 0] = 1.0  # a constant column stays centred at 0
        X = (X - mean) / std
    if opts.hidden is not None:
        return _train_two_layer(opts, X, y, features, mean, std)
    lr = opts.lr if opts.lr is not None else auto_learning_rate(X)
    batch = opts.batch_size
    print(f"fastjac train: {N} rows, {n} features -> target {opts.target!r}"
          f"{' (features standardized)' if opts.standardize else ''}", file=out)
    lr_note = "" if opts.lr is not None else " (chosen from the data; set it with --lr)"
    print(f"model: {opts.target} ≈ max(0, w·x + b); gradient descent on the MSE, "
          f"{opts.epochs} epochs, batch size {batch if batch else 'N (full batch)'}, "
          f"lr={lr:.3g}{lr_note}", file=out)
    out.flush()
    try:
        res = _train(neuron, X, y, lr=lr, epochs=opts.epochs, batch_size=batch, w0=None,
                     b0=opts.b0, seed=opts.seed, progress=not opts.no_progress, desc="train")
    except FloatingPointError as exc:
        raise CLIError(f"training diverged: {exc}. Try a smaller --lr"
                       f"{' or --standardize' if not opts.standardize else ''}.") from None
    except ValueError as exc:
        raise CLIError(f"cannot train: {exc}") from None
    losses = np.asarray(res.losses, dtype=np.float64)
    final = float(neuron.loss(X, y, res.w, res.b))
    active = float(np.mean(X @ res.w + res.b > 0))

    print(f"\nloss {losses[0]:.6g} -> {final:.6g} after {len(losses)} epochs "
          f"(the neuron is active on {100 * active:.0f}% of the rows)", file=out)
    if active == 0.0:
        print("warning: the neuron is inactive on every row (a 'dead' ReLU): its gradient "
              "is zero and it cannot learn; try a smaller --lr, --standardize, --b0 > 0 "
              "or another --seed",
              file=out)
    wid = max(len(c) for c in features + ["(bias) b"])
    for c, wj in zip(features, res.w):
        print(f"  {c:<{wid}}  {float(wj):+.6g}", file=out)
    print(f"  {'(bias) b':<{wid}}  {float(res.b):+.6g}", file=out)
    for line in ascii_plot(losses, width=min(60, max(len(losses), 2)), height=6):
        print("  " + line, file=out)

    params = {
        "model": "relu_neuron",
        "formula": "prediction = max(0, w . x + b)"
        + ("  with x standardized: (x - mean) / std" if opts.standardize else ""),
        "target": opts.target,
        "features": features,
        "w": [float(v) for v in res.w],
        "b": float(res.b),
        "final_loss": final,
        "losses": [float(v) for v in losses],
        "standardization": (
            {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
            if mean is not None and std is not None else None
        ),
        "training": {"lr": lr, "epochs": opts.epochs, "batch_size": batch,
                     "seed": opts.seed, "n_samples": N},
    }
    if opts.out:
        try:
            with open(opts.out, "w", encoding="utf-8") as f:
                json.dump(params, f, indent=2)
                f.write("\n")
        except OSError as exc:
            raise CLIError(f"cannot write {opts.out}: {exc.strerror or exc}") from None
        print(f"\nwrote the parameters to {opts.out}", file=out)
    if opts.plot:
        _save_plot(losses, opts.plot, f"fastjac train: {opts.target}")
        print(f"saved the loss curve to {opts.plot}", file=out)
    return 0


def _train_two_layer(opts: argparse.Namespace, X: np.ndarray, y: np.ndarray,
                     features: List[str], mean: Optional[np.ndarray],
                     std: Optional[np.ndarray]) -> int:
    """``fastjac train --hidden H``: a hidden layer of H ReLU neurons, then the paper's
    ReLU output neuron, ``target ≈ max(0, v·max(0, W x + b) + c)``, by gradient descent.

    Each step: ``A = fastjac.layer.activation(X, W, b)``; the output neuron's loss and its
    gradients with respect to v, c and A from one fused call,
    ``fastjac.neuron.loss_grad(A, y, v, c, wrt=("w", "b", "X"))``; ∂C/∂A back through the
    hidden layer with ``fastjac.layer.activation_vjp(X, W, A, ∂C/∂A, wrt=("W", "b"))``.
    """
    out = sys.stdout
    N, n = X.shape
    H = opts.hidden
    # train on the target divided by its scale (so that one step size suits both layers
    # whatever the target's units); losses and parameters are reported in its units:
    # s max(0, v·a + c) = max(0, (s v)·a + s c) for s > 0
    scale = float(np.sqrt(np.mean(y * y))) or 1.0
    y = y / scale
    rng = np.random.default_rng(opts.seed)
    W = rng.normal(0.0, 1.0 / math.sqrt(n), (H, n))
    b = np.full(H, opts.b0)                         # start the hidden neurons active
    v = np.abs(rng.normal(0.0, 1.0 / math.sqrt(H), H))
    # the output starts at the mean target: the ReLU output neuron starts active
    A0 = layer.activation(X, W, b)
    c = float(np.mean(y) - np.mean(A0 @ v))
    # the step: 1/λ_max of the output neuron's curvature at the start (auto_learning_rate
    # on the hidden activations; a heuristic for the hidden layer, which has its own)
    lr = opts.lr if opts.lr is not None else auto_learning_rate(A0)
    B = opts.batch_size if opts.batch_size is not None and opts.batch_size < N else N
    print(f"fastjac train: {N} rows, {n} features -> target {opts.target!r}"
          f"{' (features standardized)' if opts.standardize else ''}", file=out)
    lr_note = "" if opts.lr is not None else " (chosen from the data; set it with --lr)"
    print(f"model: {opts.target} ≈ max(0, v·a + c), a = max(0, W x + b) with {H} hidden "
          f"ReLU neurons; gradient descent on the MSE, {opts.epochs} epochs, batch size "
          f"{B if B < N else 'N (full batch)'}, lr={lr:.3g}{lr_note}", file=out)
    out.flush()
    bar = Progress(opts.epochs, desc="train", enabled=not opts.no_progress)
    losses = np.empty(opts.epochs)
    try:
        for epoch in range(opts.epochs):
            order = rng.permutation(N) if B < N else None
            sse = 0.0
            for s0 in range(0, N, B):
                rows = order[s0:s0 + B] if order is not None else slice(s0, s0 + B)
                Xb, yb = X[rows], y[rows]
                A = layer.activation(Xb, W, b)
                C, gv, gc, gA = neuron.loss_grad(A, yb, v, c, wrt=("w", "b", "X"))
                gW, gb = layer.activation_vjp(Xb, W, A, gA, wrt=("W", "b"))
                sse += C * len(yb)
                W -= lr * gW
                b -= lr * gb
                v -= lr * gv
                c -= lr * gc
            losses[epoch] = sse / N * scale * scale
            if not (math.isfinite(losses[epoch]) and np.isfinite(W).all()
                    and np.isfinite(v).all() and math.isfinite(c)):
                raise CLIError(f"training diverged at epoch {epoch}: the loss or the "
                               f"parameters became NaN/inf. Try a smaller --lr"
                               f"{' or --standardize' if not opts.standardize else ''}.")
            bar.update(float(losses[epoch]))
    finally:
        bar.close()
    A = layer.activation(X, W, b)
    final = float(neuron.loss(A, y, v, c)) * scale * scale
    active = float(np.mean(A > 0))
    v, c = v * scale, c * scale
    print(f"\nloss {losses[0]:.6g} -> {final:.6g} after {len(losses)} epochs "
          f"({H} hidden neurons, active on {100 * active:.0f}% of (row, neuron) pairs)",
          file=out)
    for line in ascii_plot(losses, width=min(60, max(len(losses), 2)), height=6):
        print("  " + line, file=out)
    params = {
        "model": "two_layer_relu",
        "formula": "prediction = max(0, v . max(0, W x + b) + c)"
        + ("  with x standardized: (x - mean) / std" if opts.standardize else ""),
        "target": opts.target,
        "features": features,
        "hidden": H,
        "W": W.tolist(),
        "b": b.tolist(),
        "v": v.tolist(),
        "c": c,
        "final_loss": final,
        "losses": [float(v_) for v_ in losses],
        "standardization": (
            {"mean": [float(v_) for v_ in mean], "std": [float(v_) for v_ in std]}
            if mean is not None and std is not None else None
        ),
        "training": {"lr": lr, "epochs": opts.epochs, "batch_size": opts.batch_size,
                     "seed": opts.seed, "n_samples": N},
    }
    if opts.out:
        try:
            with open(opts.out, "w", encoding="utf-8") as f:
                json.dump(params, f, indent=2)
                f.write("\n")
        except OSError as exc:
            raise CLIError(f"cannot write {opts.out}: {exc.strerror or exc}") from None
        print(f"\nwrote the parameters to {opts.out}", file=out)
    if opts.plot:
        _save_plot(losses, opts.plot, f"fastjac train --hidden {H}: {opts.target}")
        print(f"saved the loss curve to {opts.plot}", file=out)
    return 0


# ---------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------

_FORWARDED = {
    # command: (the function that parses the rest of the command line, help)
    "check": (main_check, "validate every kernel against central finite differences "
              "(see `fastjac check --help`)"),
    "bench": (bench.main_bench, "time fastjac against NumPy (see `fastjac bench --help`)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``fastjac`` parser with its four subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="fastjac: the matrix calculus of deep learning (Parr & Howard) as fast "
        "gradient kernels. Start with `fastjac demo`.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    for name, (_, help_text) in _FORWARDED.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)

    d = sub.add_parser(
        "demo", help="the tour: check the gradients, train a ReLU neuron on synthetic data, "
        "plot the loss, time it against NumPy",
        description="Validate fastjac's gradients, train a ReLU neuron on a built-in "
        "synthetic data set (no download), print learned vs planted parameters and the "
        "loss curve, and time the same training in plain NumPy.",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the data set (default 0)")
    d.add_argument("--epochs", type=int, default=300, help="epochs of full-batch gradient "
                   "descent (default 300)")
    d.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    d.add_argument("--samples", type=int, default=2000, help="N (default 2000)")
    d.add_argument("--features", type=int, default=8, help="n (default 8)")
    d.add_argument("--noise", type=float, default=0.05, help="noise std (default 0.05)")
    d.add_argument("--repeats", type=int, default=5, help="timing repeats (default 5)")
    d.add_argument("--plot", metavar="PATH", help="save the loss curve as an image "
                   "(needs matplotlib)")
    d.add_argument("--no-check", action="store_true", help="skip the gradient check")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")

    t = sub.add_parser(
        "train", help="train a ReLU neuron on a CSV file of numeric columns",
        description="Train one ReLU neuron, target ≈ max(0, w·x + b), on a CSV file with a "
        "header row and numeric cells, by gradient descent on the mean squared error.",
    )
    t.add_argument("csv", help="the CSV file (header row, numeric cells)")
    t.add_argument("--target", required=True, metavar="COLUMN",
                   help="the column to predict; every other column is a feature")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: "
                   "1/λ_max of the loss's curvature, a step that cannot diverge on a "
                   "quadratic; see auto_learning_rate)")
    t.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="rows per step (default: all rows, full-batch gradient descent)")
    t.add_argument("--standardize", action="store_true",
                   help="scale each feature to mean 0, std 1 first (stored in --out)")
    t.add_argument("--b0", type=float, default=0.1,
                   help="initial bias (default 0.1: starts the neuron active)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights and "
                   "the batch order (default 0)")
    t.add_argument("--hidden", type=int, default=None, metavar="H",
                   help="train a two-layer network instead: H hidden ReLU neurons "
                   "(fastjac.layer) feeding the ReLU output neuron")
    t.add_argument("--out", metavar="PATH", help="write the parameters as JSON")
    t.add_argument("--plot", metavar="PATH", help="save the loss curve as an image "
                   "(needs matplotlib)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _fail(command: Optional[str], exc: CLIError) -> int:
    where = f"{PROG} {command}" if command else PROG
    print(f"{where}: error: {exc}", file=sys.stderr)
    return exc.code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``fastjac`` command line; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else None
    try:
        if command in _FORWARDED:
            function, _ = _FORWARDED[command]
            return int(function(args[1:]) or 0)
        parser = build_parser()
        opts = parser.parse_args(args)
        if opts.command is None:
            parser.print_help()
            return 2
        if opts.command == "demo":
            return _cmd_demo(opts)
        if opts.command == "train":
            return _cmd_train(opts)
        parser.error(f"unknown command {opts.command!r}")  # pragma: no cover
    except CLIError as exc:
        return _fail(command, exc)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastjac demo | head`: the reader left; leave quietly
        try:
            devnull = open(os.devnull, "w")
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    return 0  # pragma: no cover
