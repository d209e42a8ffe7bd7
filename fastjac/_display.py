"""What fastjac shows while it works: a progress bar and a time.

:class:`Progress` is the one per-epoch progress bar (``fastjac.neuron.fit``,
``fastjac.dask.fit``, ``fastjac demo`` and ``fastjac train``): tqdm when it is installed,
plain text otherwise. :func:`format_time` is the one way a duration is printed
(``fastjac demo``, ``fastjac bench``).
"""

import sys

__all__ = ["Progress", "load_tqdm", "format_time"]


def load_tqdm(required_by=None):
    """The ``tqdm`` class, or None when tqdm is not installed.

    Parameters
    ----------
    required_by : str, optional
        What needs tqdm (e.g. ``"fit(progress=True)"``); when given, a missing tqdm raises
        ``ImportError`` naming it and saying how to install it, instead of returning None.
    """
    try:
        from tqdm import tqdm
    except ImportError as exc:
        if required_by is None:
            return None
        raise ImportError(
            f"{required_by} needs the optional dependency tqdm: "
            "pip install tqdm (or pip install 'fastjac[progress]')"
        ) from exc
    return tqdm


class Progress:
    """A per-epoch progress bar showing the current loss.

    Drawn by tqdm when it is installed (or when ``tqdm`` is given), else as plain text:
    redrawn in place on a terminal, a few lines (every 20%) elsewhere. Written to
    ``stream`` (standard error by default) so that standard output holds only results.

    Parameters
    ----------
    total : int
        Number of epochs.
    desc : str
        Label in front of the bar.
    enabled : bool, default True
        False: draw nothing (``update`` and ``close`` still count and return).
    stream : file, optional
        Where the bar goes; default ``sys.stderr``.
    tqdm : class, optional
        The tqdm class to use (from :func:`load_tqdm`); default: tqdm if installed.
    """

    def __init__(self, total, desc="fit", enabled=True, stream=None, tqdm=None):
        self.total = max(int(total), 1)
        self.desc = desc
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self._tqdm = None
        self._tty = False
        self._next_report = 0
        if not enabled:
            return
        tqdm = tqdm if tqdm is not None else load_tqdm()
        if tqdm is None:
            self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        else:
            self._tqdm = tqdm(total=self.total, desc=desc, unit="epoch", file=self.stream,
                              leave=True, dynamic_ncols=True)

    def update(self, loss):
        """One epoch done, ending with ``loss``."""
        self.count += 1
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.set_postfix(loss=f"{loss:.6g}", refresh=False)
            self._tqdm.update(1)
            return
        if self._tty:
            width = 30
            filled = width * self.count // self.total
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.desc}: [{bar}] {self.count}/{self.total} "
                              f"epochs  loss {loss:.4g}   ")
            self.stream.flush()
        elif self.count >= self._next_report or self.count == self.total:
            self.stream.write(f"{self.desc}: {self.count}/{self.total} epochs  "
                              f"loss {loss:.4g}\n")
            self.stream.flush()
            self._next_report = self.count + max(1, self.total // 5)

    def close(self):
        """Finish the bar (a newline after a redrawn plain-text bar)."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._tty:
            self.stream.write("\n")
            self.stream.flush()


def format_time(seconds):
    """A duration for people: ``"850 ns"``, ``"12.34 µs"``, ``"1.50 ms"``, ``"2.00 s"``;
    ``"n/a"`` for None."""
    if seconds is None:
        return "n/a"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
