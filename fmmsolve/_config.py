"""Every tunable of fmmsolve, declared once, typed, defaulted and documented.

Values are read from the environment once, at import. Compiled code picks its flags up
through :mod:`fmmsolve._jit`; nothing else in the package sets Numba options.

Environment variables
---------------------
FMMSOLVE_NUMBA_CACHE
    ``"0"`` disables Numba's on-disk cache of compiled functions (default ``"1"``).

Two variables of the Plan cache are read by :mod:`fmmsolve.cache` at each use rather than
here, so that a process (or a test session) may set them after import: ``FMMSOLVE_CACHE_DIR``
(its location) and ``FMMSOLVE_CACHE_MAX`` (its size limit, parsed by :func:`parse_size`,
default :data:`DEFAULT_CACHE_MAX`).
"""

from __future__ import annotations

import os
import re

__all__ = [
    "NUMBA_CACHE",
    "NUMBA_FASTMATH",
    "NUMBA_ERROR_MODEL",
    "MAX_DEPTH",
    "DEFAULT_LEAF_SIZE",
    "DEFAULT_CACHE_MAX",
    "parse_size",
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

#: Default limit of the Plan cache on disk, in bytes (2 GiB: about 20 Helmholtz wavenumbers at
#: eps 1e-6, or every Laplace order many times over).
DEFAULT_CACHE_MAX: int = 2 * 2**30

_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def parse_size(value) -> int:
    """A size in bytes from an int or a string such as ``"2000000"``, ``"500M"`` or ``"2GiB"``.

    Units K, M, G and T are powers of 1024 (as in :meth:`joblib.Memory.reduce_size`), with an
    optional ``B`` or ``iB``; case and spaces do not matter.

    Raises
    ------
    ValueError
        For a negative number, or a string that is not a size.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = value, ""
    else:
        match = _SIZE.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"not a size: {value!r} (expected bytes, or a number with K, M, "
                             f"G or T, such as '500M' or '2G')")
        number, unit = float(match[1]), match[2].lower()
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"a size must be >= 0, got {value!r}")
    return int(number * 1024 ** " kmgt".index(unit or " "))
