"""Disk memoisation of Plans (the precomputed, geometry-independent operators) with joblib.

A Plan costs seconds to compute: about 2 s at expansion order 7 and 20 s at order 11. It is a
pure function of a few plain values, so fmmsolve stores it with :class:`joblib.Memory` and
loads it in every later process. The memoised function is :func:`_plan_payload`. Its
arguments are the whole key:

* the kernel name and wavenumber;
* the expansion order, the compression tolerance and the dtype;
* the four surface radii;
* :data:`FORMAT_VERSION`, bumped whenever a Plan's content or layout changes;
* ``"no-m2l"`` for a plan without M2L operators (tree levels 0 and 1 of the wave kernels).

A cached Plan therefore never answers for another configuration. Each entry carries a SHA-256
checksum of its arrays. An entry that fails to load or fails its checksum raises a
``RuntimeWarning`` and is recomputed and rewritten, never used. joblib writes entries to a
temporary file and renames it, so processes that build the same Plan at once leave one intact
entry.

Where: ``memory=`` of :class:`~fmmsolve.FMMOperator` takes a directory, a
:class:`joblib.Memory`, ``None`` (no disk cache), or ``"default"``. The default is
``$FMMSOLVE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fmmsolve`` (``~/.cache/fmmsolve``).
:func:`clear_cache` empties it.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import pathlib
import time
import warnings

import joblib
import numpy as np

from .operators import surfaces
from .operators.plan import Plan, compute_plan

_log = logging.getLogger("fmmsolve")

__all__ = ["FORMAT_VERSION", "ENV_VAR", "default_location", "resolve_memory", "load_plan",
           "clear_cache", "cache_size"]

#: Bump whenever the content or layout of a Plan changes: old entries then never match.
FORMAT_VERSION = 4  # 4: plans without M2L hold (0, 0) factors, as their rank 0 says
#: Environment variable that overrides the default cache directory.
ENV_VAR = "FMMSOLVE_CACHE_DIR"


def default_location() -> pathlib.Path:
    """The default cache directory: ``$FMMSOLVE_CACHE_DIR``, else the per-user cache."""
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "fmmsolve"


def resolve_memory(memory) -> joblib.Memory | None:
    """Turn a ``memory=`` argument into a :class:`joblib.Memory` (or None for no disk cache).

    Parameters
    ----------
    memory : "default", str, os.PathLike, joblib.Memory or None

    Raises
    ------
    TypeError
        For anything else, naming the argument.
    """
    if memory is None or isinstance(memory, joblib.Memory):
        return memory
    if isinstance(memory, str) and memory == "default":
        return joblib.Memory(default_location(), verbose=0)
    if isinstance(memory, (str, os.PathLike)):
        return joblib.Memory(pathlib.Path(memory).expanduser(), verbose=0)
    raise TypeError(f"memory must be 'default', a directory path, a joblib.Memory or None, "
                    f"got {type(memory).__name__}")


def _checksum(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _plan_payload(kernel_name, wavenumber, expansion_order, compression_tol, dtype, radii,
                  format_version, *variant):
    """The memoised builder: a Plan as plain values and arrays, with their checksum.

    Every argument is part of the cache key; ``format_version`` is not used here otherwise.
    ``variant`` is empty for a full plan, ``("no-m2l",)`` for one without M2L operators.
    """
    plan = compute_plan(kernel_name, expansion_order, compression_tol, dtype, wavenumber, radii,
                        "no-m2l" not in variant)
    fields = dict(vars(plan))
    arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in fields.items() if not isinstance(v, np.ndarray)}
    return {"arrays": arrays, "values": values, "checksum": _checksum(arrays)}


def _plan_from_payload(payload) -> Plan | None:
    """The Plan in ``payload``, or None if the payload is damaged."""
    try:
        arrays, values = payload["arrays"], payload["values"]
        if _checksum(arrays) != payload["checksum"]:
            return None
        return Plan(**arrays, **values)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def load_plan(memory: joblib.Memory | None, kernel_name: str, expansion_order: int,
              compression_tol: float, dtype: str, wavenumber=None, m2l=True) -> Plan:
    """The Plan for these parameters: from this process, from ``memory``, or computed.

    Parameters
    ----------
    memory : joblib.Memory or None
        None skips the disk (the Plan is still memoised in this process).
    kernel_name, expansion_order, compression_tol, dtype, wavenumber, m2l
        As for :func:`fmmsolve.operators.plan.compute_plan`.

    Warns
    -----
    RuntimeWarning
        When a cache entry is damaged; it is recomputed and rewritten.
    """
    order, tol, dtype = int(expansion_order), float(compression_tol), np.dtype(dtype).str
    if memory is None:
        return compute_plan(kernel_name, order, tol, dtype, wavenumber, surfaces.radii(),
                            bool(m2l))
    key = (kernel_name, wavenumber, order, tol, dtype, surfaces.radii(), FORMAT_VERSION)
    if not m2l:  # keys of full plans keep their old form, so existing entries stay valid
        key += ("no-m2l",)
    return _load_plan_from(memory.location, key, memory)


# Plans already loaded in this process, by (cache location, key): one disk read per process.
# Bounded like compute_plan's memo: a high-order Plan is tens of MB.
_IN_PROCESS: collections.OrderedDict = collections.OrderedDict()
_IN_PROCESS_SIZE = 16


def _load_plan_from(location, key, memory) -> Plan:
    """Disk lookup, memoised per process by (cache location, key)."""
    if (location, key) in _IN_PROCESS:
        _IN_PROCESS.move_to_end((location, key))
        return _IN_PROCESS[(location, key)]
    memoised = memory.cache(_plan_payload)
    plan = None
    start = time.perf_counter()
    if memoised.check_call_in_cache(*key):
        try:  # load it ourselves: joblib would only log a failure and print a traceback
            plan = _plan_from_payload(memoised.call_and_shelve(*key).get())
        except Exception:  # noqa: BLE001 - any unreadable entry is recomputed, never used
            plan = None
        if plan is None:
            warnings.warn(f"fmmsolve: the plan cache entry for {key} in {location} is "
                          f"damaged; recomputing it", RuntimeWarning, stacklevel=3)
        else:
            _log.debug("plan %s: read from %s in %.3f s", key[:5], location,
                       time.perf_counter() - start)
    if plan is None:
        _log.info("plan %s: computing it once for the cache in %s (a cached one loads in a "
                  "fraction of a second)", key[:5], location)
        plan = _plan_from_payload(memoised.call(*key)[0])  # compute and (re)write the entry
        _log.info("plan: computed and cached in %.2f s", time.perf_counter() - start)
    _IN_PROCESS[(location, key)] = plan
    if len(_IN_PROCESS) > _IN_PROCESS_SIZE:
        _IN_PROCESS.popitem(last=False)
    return plan


def clear_cache(memory="default") -> None:
    """Delete every cached Plan in ``memory`` (default: the default cache directory)."""
    memory = resolve_memory(memory)
    if memory is not None:
        memory.clear(warn=False)
    _IN_PROCESS.clear()


def cache_size(memory="default") -> int:
    """Bytes used by the cache directory of ``memory`` (0 if it does not exist)."""
    memory = resolve_memory(memory)
    if memory is None or memory.location is None:
        return 0
    root = pathlib.Path(memory.location)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
