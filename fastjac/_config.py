"""Run-time switches of fastjac: the validation mode.

Validation mode makes every public gradient call (``derivative``, ``jvp``, ``vjp``,
``sum_grad``, ``loss_grad``, ...) cross-check its own result with finite differences
(``fastjac.gradcheck``) and raise on a mismatch. It is off by default, on for the whole
process when the environment variable ``FASTJAC_VALIDATE`` is set to ``1`` (or ``true``,
``yes``), and on inside a :func:`validating` block.

Two levels, so that the normal path costs one attribute load:

``VALIDATE``
    A module-level ``bool``: ``True`` when validation *may* be on somewhere in the process
    (the environment asked for it, or some thread or task is inside ``validating(True)``).
    The kernels' Python wrappers test only this::

        if _config.VALIDATE:
            gradcheck._cross_check(...)

``is_validating()``
    The precise answer for the current thread / asyncio task, read from a
    :class:`contextvars.ContextVar`. ``gradcheck._cross_check`` consults it, so a
    ``validating()`` block in one thread does not slow down or alter another.
"""

import contextlib
import contextvars
import os
import threading

__all__ = ["VALIDATE", "validating", "is_validating"]


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


#: ``True`` when the environment variable ``FASTJAC_VALIDATE`` asked for validation.
ENV_VALIDATE = _env_flag("FASTJAC_VALIDATE")

#: Cheap process-wide flag: may any context be validating? (see the module docstring)
VALIDATE = ENV_VALIDATE

# None: follow the environment; True/False: set by a validating() block in this context.
_state = contextvars.ContextVar("fastjac_validate", default=None)
_lock = threading.Lock()
_n_active = 0  # validating(True) blocks currently open, over all threads and tasks


def is_validating():
    """Whether gradient calls in the current thread/task cross-check themselves.

    Returns
    -------
    bool
        The innermost :func:`validating` block's setting, or the environment's
        (``FASTJAC_VALIDATE``) outside any block.
    """
    value = _state.get()
    return ENV_VALIDATE if value is None else value


def _refresh():
    global VALIDATE
    VALIDATE = ENV_VALIDATE or _n_active > 0


@contextlib.contextmanager
def validating(enabled=True):
    """Turn validation mode on (or, with ``enabled=False``, off) inside a ``with`` block.

    While on, every public gradient call of fastjac checks its result against central
    finite differences of the corresponding value function and raises
    ``fastjac.gradcheck.GradCheckError`` (an ``AssertionError``) on a mismatch.
    The setting is local to the current thread / asyncio task and blocks nest.

    Parameters
    ----------
    enabled : bool, default True
        ``False`` turns validation off inside the block (also when ``FASTJAC_VALIDATE=1``).

    Examples
    --------
    >>> import fastjac as fj
    >>> with fj.validating():            # doctest: +SKIP
    ...     fj.exp.vjp(x, gy)            # raises if the kernel's VJP is wrong
    """
    global _n_active
    enabled = bool(enabled)
    token = _state.set(enabled)
    if enabled:
        with _lock:
            _n_active += 1
            _refresh()
    try:
        yield
    finally:
        _state.reset(token)
        if enabled:
            with _lock:
                _n_active -= 1
                _refresh()


def num_threads_from_env(warn=True):
    """The thread cap asked for by the environment variable ``FASTJAC_NUM_THREADS``.

    Like ``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``: a positive integer caps how many
    threads (the calling thread included) any fastjac call uses; it may exceed the CPU count
    (at most 256). Unset or empty gives ``None`` (the CPU count). Any other value (``0``,
    ``-1``, ``x``) gives ``None`` too, with a ``RuntimeWarning`` when ``warn`` is true.

    Returns
    -------
    int or None
    """
    raw = os.environ.get("FASTJAC_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        if warn:
            import warnings

            warnings.warn(
                f"FASTJAC_NUM_THREADS={raw!r} is not a positive integer; ignoring it "
                "(fastjac uses every CPU it may run on)", RuntimeWarning, stacklevel=2)
        return None
    return min(value, 256)
