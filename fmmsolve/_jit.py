"""The one Numba wrapper of fmmsolve: every compiled function gets its flags from here.

``jit`` is :func:`numba.njit` with the package-wide settings of :mod:`fmmsolve._config`
(disk cache, fast-math flags without ``nnan``/``ninf``, NumPy error model). Use
``jit(parallel=True)`` for functions with a ``prange`` loop; never nest parallel functions.
"""

from __future__ import annotations

import numba

from . import _config

__all__ = ["jit", "prange"]

prange = numba.prange


def jit(func=None, *, parallel: bool = False, inline: str = "never"):
    """Compile ``func`` with fmmsolve's settings; usable as ``@jit`` or ``@jit(parallel=True)``."""
    options = dict(
        cache=_config.NUMBA_CACHE,
        fastmath=set(_config.NUMBA_FASTMATH),
        error_model=_config.NUMBA_ERROR_MODEL,
        parallel=parallel,
        nogil=True,
        inline=inline,
    )
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)
