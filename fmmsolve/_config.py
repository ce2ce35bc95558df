"""Every tunable of fmmsolve, declared once, typed, defaulted and documented.

Values are read from the environment once, at import. Compiled code picks its flags up
through :mod:`fmmsolve._jit`; nothing else in the package sets Numba options.

Environment variables
---------------------
FMMSOLVE_NUMBA_CACHE
    ``"0"`` disables Numba's on-disk cache of compiled functions (default ``"1"``).
"""

from __future__ import annotations

import os

__all__ = [
    "NUMBA_CACHE",
    "NUMBA_FASTMATH",
    "NUMBA_ERROR_MODEL",
    "MAX_DEPTH",
    "DEFAULT_LEAF_SIZE",
]


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


#: Cache compiled functions on disk (``cache=True``), so a fresh process skips compilation.
NUMBA_CACHE: bool = _env_flag("FMMSOLVE_NUMBA_CACHE", True)

#: LLVM fast-math flags for compiled code. Deliberately *without* ``nnan`` and ``ninf``: the
#: zero-distance masks (``r2 == 0``) and any inf/NaN check must survive optimisation.
#: ``reassoc`` lets reductions vectorise, ``arcp``/``afn`` allow fast reciprocal and sqrt.
NUMBA_FASTMATH: frozenset[str] = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Numba's error model: ``"numpy"`` turns off the Python division-by-zero checks that would
#: otherwise stop inner loops from vectorising.
NUMBA_ERROR_MODEL: str = "numpy"

#: Deepest octree level (the root is level 0). Morton keys of points hold 3 bits per level in a
#: signed 64-bit integer, and box keys need one placeholder bit more, so 20 is the limit.
MAX_DEPTH: int = 20

#: Default maximum number of points (sources, and separately targets) per leaf.
DEFAULT_LEAF_SIZE: int = 64
