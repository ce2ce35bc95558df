"""Disk memoisation of Plans (the precomputed, geometry-independent operators).

A Plan costs seconds to compute: about 2 s at expansion order 7 and 20 s at order 11. It is a
pure function of a few plain values, so fmmsolve stores it on disk and loads it in every later
process. The key of an entry is every argument the Plan depends on:

* the kernel name and wavenumber;
* the expansion order, the compression tolerance and the dtype;
* the four surface radii;
* :data:`FORMAT_VERSION`, bumped whenever a Plan's content or layout changes;
* ``"m2l"``, or ``"no-m2l"`` for a plan without M2L operators (tree levels 0 and 1 of the wave
  kernels).

Layout and trust. Each entry is one file, ``<store>/fmmsolve-plans/<kernel>-p<order>-<digest>.pkl``
(``<store>`` is the :class:`joblib.Memory`'s directory, ``<digest>`` :func:`joblib.hash` of the
key), written with :func:`joblib.dump`. It holds the key itself, the Plan's values and arrays, and
a SHA-256 checksum of all of them. On reading, an entry is used only if its checksum holds, its
stored key equals the requested one and the Plan's own fields (order, surface, shapes, dtypes)
agree with the key. Otherwise a ``RuntimeWarning`` says why, and the Plan is recomputed and the
entry rewritten: a file copied over another entry's, or damaged, is never used.

Writing. The cache is an optimisation, so it never makes a fit fail. fmmsolve writes entries
itself rather than through ``joblib.Memory.cache``, which reports any failed write as "possibly
a race condition", leaves partial temporary files behind on a full disk, and raises when the
location is not a usable directory. Here an entry is written to a temporary file next to it and
renamed over it (processes that build the same Plan at once leave one intact entry); when the
free space is too small, or the write fails, the temporary file is removed, and a
``RuntimeWarning`` (once per location and process) says that the Plan is not cached, why, and
how to choose another location. The same holds for a location that cannot be a directory.

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
import re
import shutil
import tempfile
import threading
import time
import warnings

import joblib
import numpy as np

from .operators import surfaces
from .operators.plan import Plan, compute_plan, transfer_vectors

_log = logging.getLogger("fmmsolve")

__all__ = ["ENV_VAR", "FORMAT_VERSION", "cache_size", "clear_cache", "default_location",
           "load_plan", "resolve_memory"]

#: Bump whenever the content or layout of a Plan or an entry changes: old entries never match.
FORMAT_VERSION = 5  # 5: one file per entry, holding its key inside the checksum
#: Environment variable that overrides the default cache directory.
ENV_VAR = "FMMSOLVE_CACHE_DIR"
#: Subdirectory of a joblib.Memory's store that holds the Plan entries.
ENTRY_DIR = "fmmsolve-plans"
# Bytes left free beyond an entry's arrays (pickle framing; other writers on the same disk).
_HEADROOM = 2**20
_HOW_TO_CHANGE = (f"set {ENV_VAR} or pass memory= to a writable directory with free space, or "
                  f"pass memory=None to turn the disk cache off")


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

    Returns
    -------
    joblib.Memory or None
        None also when the directory cannot be created (a regular file is in the way, or the
        parent is not writable): Plans are then computed without a disk cache.

    Raises
    ------
    TypeError
        For anything else, naming the argument.
    ValueError
        For an empty path.

    Warns
    -----
    RuntimeWarning
        Once per location and process, when the directory cannot be created.
    """
    if memory is None or isinstance(memory, joblib.Memory):
        return memory
    if isinstance(memory, str) and memory == "default":
        path = default_location()
    elif isinstance(memory, (str, os.PathLike)):
        if isinstance(memory, str) and not memory:  # Path("") would be the working directory
            raise ValueError(f"memory must name a directory, got an empty string (use "
                             f"memory='default' for ${ENV_VAR} or the per-user cache, or "
                             f"memory=None to turn the disk cache off)")
        path = pathlib.Path(memory).expanduser()
    else:
        raise TypeError(f"memory must be 'default' (${ENV_VAR} or the per-user cache), a "
                        f"directory path, a joblib.Memory or None (no disk cache), got "
                        f"{type(memory).__name__}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _warn_not_cached(path, f"it cannot be a directory: {exc}")
        return None
    if os.access(path, os.W_OK):
        return joblib.Memory(path, verbose=0)
    # A read-only cache may still hold usable entries. joblib warns that it cannot write its
    # .gitignore there; the write of the first new entry says it once, in our words.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to write", category=UserWarning)
        return joblib.Memory(path, verbose=0)


# Locations already warned about in this process: one warning each, however many fits.
_WARNED: set = set()
_WARNED_LOCK = threading.Lock()


def _warn_not_cached(location, reason) -> None:
    """One RuntimeWarning per location and process: Plans are computed but not cached."""
    with _WARNED_LOCK:
        if str(location) in _WARNED:
            return
        _WARNED.add(str(location))
    warnings.warn(f"fmmsolve: the plan cache in {location} cannot be written ({reason}). "
                  f"Plans are computed and used, but not cached, so later fits compute them "
                  f"again; {_HOW_TO_CHANGE}.", RuntimeWarning, stacklevel=4)


def _checksum(key, values: dict, arrays: dict) -> str:
    digest = hashlib.sha256(repr(key).encode())
    digest.update(repr(sorted(values.items())).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _payload(key, plan: Plan) -> dict:
    """An entry's content: the key, the Plan as plain values and arrays, their checksum."""
    fields = dict(vars(plan))
    arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in fields.items() if not isinstance(v, np.ndarray)}
    return {"key": key, "arrays": arrays, "values": values,
            "checksum": _checksum(key, values, arrays)}


def _inconsistency(plan: Plan, key) -> str | None:
    """What in ``plan`` contradicts ``key``, or None: the last guard before a Plan is used."""
    kernel_name, _, order, tol, dtype, _, _, variant = key
    stored = (plan.kernel_name, plan.expansion_order, plan.compression_tol)
    if stored != (kernel_name, order, tol):
        return f"kernel, order and tolerance {stored} instead of {(kernel_name, order, tol)}"
    n, k = surfaces.n_surface_points(order), plan.m2l_vt.shape[0]
    if not np.array_equal(plan.surface, surfaces.surface(order)):
        return f"a surface of shape {plan.surface.shape} that is not the order-{order} one"
    ptr = plan.m2l_ptr
    if ptr.shape != (len(transfer_vectors()) + 1,) or ptr[0] != 0 or np.any(np.diff(ptr) < 0):
        return "malformed M2L row pointers"
    shapes = {"uc2e_a": (n, None), "uc2e_b": (None, n), "dc2e_a": (n, None),
              "dc2e_b": (None, n), "m2m": (8, n, n), "l2l": (8, n, n), "m2l_vt": (k, n),
              "m2l_a": (ptr[-1], k), "m2l_b": (ptr[-1], k), "m2l_u": (n, k)}
    for name, shape in shapes.items():
        a = getattr(plan, name)
        if a.dtype != np.dtype(dtype) or a.ndim != len(shape) or any(
                want is not None and have != want for have, want in zip(a.shape, shape)):
            return f"{name} of shape {a.shape} and dtype {a.dtype}, not {shape} {dtype}"
    if (k == 0) != (variant == "no-m2l"):
        return f"M2L rank {k} in a plan with variant {variant!r}"
    return None


def _read_entry(path: pathlib.Path, key) -> tuple[Plan | None, str | None]:
    """``(plan, None)`` for a sound entry, ``(None, None)`` for none, ``(None, why)`` for one
    that must not be used."""
    try:
        payload = joblib.load(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed, never used
        return None, f"is damaged or unreadable ({type(exc).__name__}: {exc})"
    try:
        arrays, values = payload["arrays"], payload["values"]
        if _checksum(payload["key"], values, arrays) != payload["checksum"]:
            return None, "is damaged (its checksum does not match its content)"
        if payload["key"] != key:
            return None, (f"holds the plan of another configuration {payload['key']} (copied "
                          f"or renamed?)")
        plan = Plan(**arrays, **values)
        why = _inconsistency(plan, key)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return None, f"is damaged ({type(exc).__name__}: {exc})"
    return (None, f"holds an inconsistent plan: {why}") if why else (plan, None)


def _write_entry(path: pathlib.Path, payload: dict) -> str | None:
    """Write ``payload`` to ``path`` whole or not at all; None, or why it was not written."""
    size = sum(a.nbytes for a in payload["arrays"].values())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < size + _HEADROOM:
            return (f"not enough free space: {free / 2**20:.1f} MiB free, the entry needs "
                    f"{(size + _HEADROOM) / 2**20:.1f} MiB")
        fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                joblib.dump(payload, f)
            os.replace(temporary, path)  # atomic: readers see the old entry or the new one
        except BaseException:
            try:
                os.unlink(temporary)  # no partial file is left behind
            except OSError:
                pass
            raise
    except OSError as exc:
        return str(exc)
    return None


def _plain(wavenumber):
    """The wavenumber as a plain float or complex (or None), so that equal keys compare and
    hash equal whatever number type the caller used."""
    if wavenumber is None:
        return None
    return complex(wavenumber) if np.iscomplexobj(wavenumber) else float(wavenumber)


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
        When a cache entry is damaged, or holds another configuration's Plan: it is recomputed
        and rewritten. Once per location, when the Plan cannot be written there (a read-only
        or full disk, a file in the way): it is computed and used, not cached.
    """
    order, tol, dtype = int(expansion_order), float(compression_tol), np.dtype(dtype).str
    wavenumber, radii = _plain(wavenumber), surfaces.radii()
    args = (kernel_name, order, tol, dtype, wavenumber, radii, bool(m2l))
    store = None if memory is None else getattr(memory.store_backend, "location", None)
    if store is None:
        return compute_plan(*args)
    key = (kernel_name, wavenumber, order, tol, dtype, radii, FORMAT_VERSION,
           "m2l" if m2l else "no-m2l")
    return _load_plan_from(pathlib.Path(store) / ENTRY_DIR, memory.location, key, args)


def _entry_path(entries: pathlib.Path, key) -> pathlib.Path:
    """The file of ``key``'s entry; the kernel and order in its name are for people only."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", str(key[0]))
    return entries / f"{readable}-p{key[2]}-{joblib.hash(key)}.pkl"


# Plans already loaded in this process, by (entry directory, key): one disk read per process.
# Bounded like compute_plan's memo: a high-order Plan is tens of MB.
_IN_PROCESS: collections.OrderedDict = collections.OrderedDict()
_IN_PROCESS_SIZE = 16


def _load_plan_from(entries: pathlib.Path, location, key, args) -> Plan:
    """Disk lookup, memoised per process by (entry directory, key)."""
    memo = (str(entries), key)
    if memo in _IN_PROCESS:
        _IN_PROCESS.move_to_end(memo)
        return _IN_PROCESS[memo]
    path = _entry_path(entries, key)
    start = time.perf_counter()
    plan, why = _read_entry(path, key)
    if why is not None:
        warnings.warn(f"fmmsolve: the plan cache entry {path} {why}; recomputing it",
                      RuntimeWarning, stacklevel=4)
    if plan is not None:
        _log.debug("plan %s: read from %s in %.3f s", key[:5], path,
                   time.perf_counter() - start)
    else:
        _log.info("plan %s: computing it (a cached one loads in a fraction of a second)",
                  key[:5])
        plan = compute_plan(*args)
        seconds = time.perf_counter() - start
        failure = _write_entry(path, _payload(key, plan))
        if failure is None:
            _log.info("plan: computed in %.2f s and cached in %s", seconds, location)
        else:
            _log.info("plan: computed in %.2f s, not cached in %s: %s", seconds, location,
                      failure)
            _warn_not_cached(location, failure)
    _IN_PROCESS[memo] = plan
    if len(_IN_PROCESS) > _IN_PROCESS_SIZE:
        _IN_PROCESS.popitem(last=False)
    return plan


def clear_cache(memory="default") -> None:
    """Delete every cached Plan in ``memory`` (default: the default cache directory).

    Raises
    ------
    OSError
        When the directory cannot be emptied, naming it and how it was chosen.
    """
    memory = resolve_memory(memory)
    if memory is not None:
        try:
            memory.clear(warn=False)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot clear the plan cache in {memory.location} "
                          f"({exc.strerror}); it is the directory given by memory= or "
                          f"${ENV_VAR}") from exc
    _IN_PROCESS.clear()


def cache_size(memory="default") -> int:
    """Bytes used by the cache directory of ``memory`` (0 if it does not exist)."""
    memory = resolve_memory(memory)
    if memory is None or memory.location is None:
        return 0
    root = pathlib.Path(memory.location)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0
