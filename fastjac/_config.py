"""Run-time switches of fastjac: the ``FASTJAC_*`` environment variables and validation mode.

Environment switches
--------------------
Every ``FASTJAC_*`` on/off switch is read by :func:`env_flag`, with one meaning: ``1``,
``true``, ``yes``, ``on`` (any case) are on; ``0``, ``false``, ``no``, ``off`` and the empty
string are off; anything else gives a ``RuntimeWarning`` and the switch's default.
Switches that name a choice (``FASTJAC_PRECISION``) are read by :func:`env_choice`.

Validation mode
---------------

Validation mode makes every public gradient call (``derivative``, ``jvp``, ``vjp``,
``sum_grad``, ``loss_grad``, ...) cross-check its own result with finite differences
(``fastjac.gradcheck``) and raise on a mismatch. It is off by default, on for the whole
process when the environment variable ``FASTJAC_VALIDATE`` is on (see above), and on
inside a :func:`validating` block.

Two levels, so that the normal path costs one attribute load:

``VALIDATE``
    A module-level ``bool``: ``True`` when validation *may* be on somewhere in the process
    (the environment asked for it, or some thread or task is inside ``validating(True)``).
    The kernels' Python wrappers test only this::

        if _config.VALIDATE:
            _validation.cross_check(...)

``is_validating()``
    The precise answer for the current thread / asyncio task, read from a
    :class:`contextvars.ContextVar`. The hooks of ``fastjac._validation`` consult it, so a
    ``validating()`` block in one thread does not slow down or alter another.
"""

import contextlib
import contextvars
import os
import threading
import warnings

__all__ = ["VALIDATE", "validating", "is_validating", "env_flag", "env_choice"]

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")


def env_flag(name, default=False):
    """Read the on/off environment switch ``name``.

    Parameters
    ----------
    name : str
        The variable, e.g. ``"FASTJAC_VALIDATE"``.
    default : bool, default False
        The value when the variable is not set or not understood.

    Returns
    -------
    bool
        True for ``1/true/yes/on``, False for ``0/false/no/off`` or an empty value (any
        case, surrounding spaces ignored), ``default`` when unset. Any other value warns
        (``RuntimeWarning``) and gives ``default``.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    warnings.warn(
        f"{name}={raw!r} is neither on (1, true, yes, on) nor off (0, false, no, off, "
        f"empty); using the default, {'on' if default else 'off'}",
        RuntimeWarning, stacklevel=2,
    )
    return default


def env_choice(name, choices):
    """Read the environment variable ``name`` that names one of ``choices``.

    Returns
    -------
    str or None
        The choice (lower case, spaces stripped), or None when the variable is unset or
        empty, or names none of ``choices`` (then with a ``RuntimeWarning``).
    """
    raw = os.environ.get(name)
    value = "" if raw is None else raw.strip().lower()
    if not value:
        return None
    if value in choices:
        return value
    warnings.warn(
        f"{name}={raw!r} is not one of {', '.join(choices)}; ignored", RuntimeWarning,
        stacklevel=2,
    )
    return None


#: ``True`` when the environment variable ``FASTJAC_VALIDATE`` asked for validation.
ENV_VALIDATE = env_flag("FASTJAC_VALIDATE")

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
    >>> import numpy as np
    >>> import fastjac as fj
    >>> x, gy = np.array([0.0, 1.0]), np.ones(2)
    >>> with fj.validating():            # raises if the kernel's VJP is wrong
    ...     fj.exp.vjp(x, gy).round(4)
    array([1.    , 2.7183])
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
