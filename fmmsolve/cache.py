"""Disk memoisation of Plans (the precomputed, geometry-independent operators).

A Plan costs seconds to compute: about 2 s at expansion order 7 and 20 s at order 11. It is a
pure function of a few plain values, so fmmsolve stores it on disk and loads it in every later
process. The key of an entry is every argument the Plan depends on:

* the kernel's name and wavenumber, and the digest of the kernel's definition (last);
* the expansion order, the compression tolerance and the dtype;
* the four surface radii;
* :data:`FORMAT_VERSION`, bumped whenever a Plan's content or layout changes;
* ``"m2l"``, or ``"no-m2l"`` for a plan without M2L operators (tree levels 0 and 1 of the wave
  kernels);
* the name of the M2L strategy (:mod:`fmmsolve.operators.m2l`): a plan of one strategy is never
  read back as another's;
* the box half-width of a plan of a kernel without a scaling law (None for the others);
* the digest of the kernel's definition (:attr:`~fmmsolve.kernels.Kernel.digest`).

Layout and trust. The entries live in ``<store>/fmmsolve-plans`` (``<store>`` is the
:class:`joblib.Memory`'s directory), itself the store of a :class:`joblib.Memory` that holds
nothing else: each entry is ``<digest>/output.pkl`` there, the layout of joblib's own items, with
``<digest>`` the :func:`joblib.hash` of the key. It is written with :func:`joblib.dump` and holds
the key itself, the Plan's values and arrays, and a SHA-256 checksum of all of them. On reading,
an entry is used only if its checksum holds, its stored key equals the requested one and the
Plan's own fields (order, surface, shapes, dtypes, M2L strategy and the strategy's own checks)
agree with the key. Otherwise a
``RuntimeWarning`` says why, and the Plan is recomputed and the entry rewritten: a file copied
over another entry's, or damaged, is never used.

Writing. The cache is an optimisation, so it never makes a fit fail. fmmsolve writes entries
itself rather than through ``joblib.Memory.cache``, which reports any failed write as "possibly
a race condition", leaves partial temporary files behind on a full disk, and raises when the
location is not a usable directory. Here an entry is written to a temporary file next to it and
renamed over it (processes that build the same Plan at once leave one intact entry); when the
free space is too small, or the write fails, the temporary file is removed, and a
``RuntimeWarning`` (once per location and process) says that the Plan is not cached, why, and
how to choose another location. The same holds for a location that cannot be a directory.

Size. The entries of a location are kept under a limit, :func:`max_size`: 2 GiB by default,
``$FMMSOLVE_CACHE_MAX`` (bytes, or a number with K, M, G or T, powers of 1024), or
:func:`set_max_size`. Before an entry is written, :meth:`joblib.Memory.reduce_size` deletes the
least recently used entries until the new one fits; a read marks an entry used (its access
time is set, whatever the file system's ``noatime`` or ``relatime``). The eviction sees only
the entry store, so it never deletes the entry being written nor any file that is not a Plan.
An entry larger than the limit is not written (and evicts nothing): the Plan is computed and
used, and a ``RuntimeWarning`` says so once per location. A limit of 0 writes nothing and
warns about nothing: entries already there are still read.

Where: ``memory=`` of :class:`~fmmsolve.FMMOperator` takes a directory, a
:class:`joblib.Memory`, ``None`` (no disk cache), or ``"default"``. The default is
``$FMMSOLVE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fmmsolve`` (``~/.cache/fmmsolve``).
:func:`clear_cache` empties it; :func:`cache_info` reports its entries, size and limit. Both
variables are read at each use, not at import.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import pathlib
import re
import threading
import time
import warnings

import joblib
import numpy as np

from ._cache_entry import _dump, _entry_bytes, _payload, _read_entry
from ._config import DEFAULT_CACHE_MAX, parse_size
from .kernels import kernel_for_key
from .operators import surfaces
from .operators.m2l import DEFAULT as DEFAULT_M2L
from .operators.m2l import check_strategy
from .operators.plan import Plan, compute_plan

_log = logging.getLogger("fmmsolve")

__all__ = ["ENV_VAR", "FORMAT_VERSION", "MAX_ENV_VAR", "CacheInfo", "cache_info", "cache_size",
           "clear_cache", "default_location", "load_plan", "loader_location", "max_size",
           "resolve_memory",
           "set_max_size"]

#: Bump whenever the content or layout of a Plan or an entry changes: old entries never match.
# 10: the M2L strategy's name in the key and in the entry, its arrays named by it; keyed by
# the kernel's digest, and by the box size of a kernel without a scaling law;
# 9: M2L from the reflection-symmetric blocks; 8: M2L factors from a seeded randomized SVD;
# 7: M2M and L2L of octant 0 only; 6: <digest>/output.pkl, LRU-evicted
FORMAT_VERSION = 10
#: Environment variable that overrides the default cache directory.
ENV_VAR = "FMMSOLVE_CACHE_DIR"
#: Environment variable that bounds the total size of a location's entries.
MAX_ENV_VAR = "FMMSOLVE_CACHE_MAX"
#: Subdirectory of a joblib.Memory's store that holds the Plan entries.
ENTRY_DIR = "fmmsolve-plans"
# Entries of format 5, directly in the entry directory: removed on the next write.
_OLD_ENTRY = re.compile(r"\w+-p\d+-[0-9a-f]{32}\.pkl")
_HOW_TO_CHANGE = (f"set {ENV_VAR} or pass memory= to a writable directory with free space, or "
                  f"pass memory=None to turn the disk cache off")


def default_location() -> pathlib.Path:
    """The default cache directory: ``$FMMSOLVE_CACHE_DIR``, else the per-user cache."""
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "fmmsolve"


# set_max_size's value; None defers to $FMMSOLVE_CACHE_MAX, then to the default.
_MAX_SIZE: int | None = None


def set_max_size(size) -> int | None:
    """Set the limit of every location's entries, for this process; return the previous setting.

    Parameters
    ----------
    size : int, str or None
        Bytes, or a string such as ``"500M"`` or ``"2G"`` (K, M, G, T are powers of 1024);
        0 writes no entries. None restores ``$FMMSOLVE_CACHE_MAX`` or the 2 GiB default.

    Raises
    ------
    ValueError
        For a negative size or a string that is not a size.
    """
    global _MAX_SIZE
    previous, _MAX_SIZE = _MAX_SIZE, None if size is None else parse_size(size)
    return previous


def max_size() -> int:
    """The limit in bytes: :func:`set_max_size`'s, else ``$FMMSOLVE_CACHE_MAX``, else 2 GiB.

    Warns
    -----
    RuntimeWarning
        Once per value and process, when ``$FMMSOLVE_CACHE_MAX`` is not a size: the default
        applies.
    """
    if _MAX_SIZE is not None:
        return _MAX_SIZE
    value = os.environ.get(MAX_ENV_VAR, "").strip()
    if not value:
        return DEFAULT_CACHE_MAX
    try:
        return parse_size(value)
    except ValueError as exc:
        if _first_time(f"{MAX_ENV_VAR}={value}"):
            warnings.warn(f"fmmsolve: ignoring {MAX_ENV_VAR}={value!r} ({exc}); the plan cache "
                          f"is limited to the default {DEFAULT_CACHE_MAX / 2**30:g} GiB",
                          RuntimeWarning, stacklevel=3)
        return DEFAULT_CACHE_MAX


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


def _first_time(what) -> bool:
    """True the first time ``what`` is seen in this process: one warning each."""
    with _WARNED_LOCK:
        if str(what) in _WARNED:
            return False
        _WARNED.add(str(what))
        return True


def _warn_not_cached(location, reason) -> None:
    """One RuntimeWarning per location and process: Plans are computed but not cached."""
    if not _first_time(location):
        return
    warnings.warn(f"fmmsolve: the plan cache in {location} cannot be written ({reason}). "
                  f"Plans are computed and used, but not cached, so later fits compute them "
                  f"again; {_HOW_TO_CHANGE}.", RuntimeWarning, stacklevel=4)


def _write_entry(path: pathlib.Path, payload: dict, store: joblib.Memory, limit: int,
                 size: int) -> str | None:
    """Evict least recently used entries of ``store`` so that ``payload`` (about ``size``
    bytes) fits in ``limit`` bytes, then write it to ``path`` whole or not at all; None, or
    why it was not written."""
    try:
        _make_room(store, limit - size)
        try:
            return _dump(path, payload, size)
        except FileNotFoundError:  # another process's eviction took the directory: once more
            return _dump(path, payload, size)
    except OSError as exc:
        return str(exc)


def _make_room(store: joblib.Memory, room: int) -> None:
    """Delete the least recently used entries of ``store`` until they take ``room`` bytes at
    most, and any format-5 entries next to them (never read, never evicted otherwise)."""
    for old in pathlib.Path(store.location).glob("*.pkl"):
        if _OLD_ENTRY.fullmatch(old.name):
            old.unlink(missing_ok=True)
    store.reduce_size(bytes_limit=max(room, 0))


def _plain(wavenumber):
    """The wavenumber as a plain float or complex (or None), so that equal keys compare and
    hash equal whatever number type the caller used."""
    if wavenumber is None:
        return None
    return complex(wavenumber) if np.iscomplexobj(wavenumber) else float(wavenumber)


def plan_loader(memory):
    """The ``plan_loader`` of an engine whose plans go through ``memory``'s disk cache (a
    ``memory=`` argument, resolved here, so that its errors come first): :func:`load_plan`
    with the store bound."""
    return functools.partial(load_plan, resolve_memory(memory))


def loader_location(loader) -> pathlib.Path | None:
    """The cache directory behind a :func:`plan_loader` (None for another loader, or for one
    without a disk cache): where other measurements may be kept next to the plans."""
    if isinstance(loader, functools.partial) and loader.func is load_plan and loader.args \
            and loader.args[0] is not None:
        return pathlib.Path(loader.args[0].location)
    return None


def load_plan(memory: joblib.Memory | None, kernel_name: str, expansion_order: int,
              compression_tol: float, dtype: str, wavenumber=None, m2l=True,
              m2l_strategy: str = DEFAULT_M2L, scale=None) -> Plan:
    """The Plan for these parameters: from this process, from ``memory``, or computed.

    Parameters
    ----------
    memory : joblib.Memory or None
        None skips the disk (the Plan is still memoised in this process).
    kernel_name, expansion_order, compression_tol, dtype, wavenumber, m2l, m2l_strategy, scale
        As for :func:`fmmsolve.operators.plan.compute_plan`. The entry is keyed by the
        kernel's digest as well as its name.

    Raises
    ------
    ValueError
        For an unknown ``m2l_strategy``, or an order it refuses.

    Warns
    -----
    RuntimeWarning
        When a cache entry is damaged, or holds another configuration's Plan: it is recomputed
        and rewritten. Once per location, when the Plan cannot be written there (a read-only
        or full disk, a file in the way): it is computed and used, not cached.
    """
    order, tol, dtype = int(expansion_order), float(compression_tol), np.dtype(dtype).str
    wavenumber, radii = _plain(wavenumber), surfaces.radii()
    scale = None if scale is None else float(scale)
    kernel = kernel_for_key(kernel_name)
    args = (kernel_name, order, tol, dtype, wavenumber, radii, bool(m2l),
            check_strategy(m2l_strategy, order), scale)
    store = None if memory is None else getattr(memory.store_backend, "location", None)
    if store is None:
        return compute_plan(*args)
    key = (kernel.name, wavenumber, order, tol, dtype, radii, FORMAT_VERSION,
           "m2l" if m2l else "no-m2l", m2l_strategy, scale, kernel.digest)
    return _load_plan_from(pathlib.Path(store) / ENTRY_DIR, memory.location, key, args)


# The joblib.Memory whose store holds the entries, by entry directory.
_STORES: dict = {}


def _entry_store(entries: pathlib.Path) -> joblib.Memory:
    """The :class:`joblib.Memory` of the entries in ``entries``; OSError if it cannot be made.

    Given a path, joblib 1.6 keeps its store in ``entries`` itself; paths are taken from the
    store, so that another layout (``entries/joblib``) would work as well.
    """
    store = _STORES.get(str(entries))
    if store is None:
        with warnings.catch_warnings():  # joblib's note on a .gitignore it cannot write
            warnings.filterwarnings("ignore", message="Unable to write", category=UserWarning)
            store = joblib.Memory(entries, verbose=0)
        _STORES[str(entries)] = store
    return store


def _entry_path(store: joblib.Memory, key) -> pathlib.Path:
    """The file of ``key``'s entry: a joblib item, ``<digest>/output.pkl``."""
    return pathlib.Path(store.store_backend.location, joblib.hash(key), "output.pkl")


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
    start = time.perf_counter()
    try:
        store = _entry_store(entries)
    except OSError as exc:  # not a directory, or cannot be made: nothing to read or write
        store, path, plan, why = None, entries, None, None
        failure = str(exc)
        _warn_not_cached(location, failure)
    else:
        path = _entry_path(store, key)
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
        if store is not None:
            failure = _store_entry(path, _payload(key, plan), store, location)
        if failure is None:
            _log.info("plan: computed in %.2f s and cached in %s", seconds, location)
        else:
            _log.info("plan: computed in %.2f s, not cached in %s: %s", seconds, location,
                      failure)
    _IN_PROCESS[memo] = plan
    if len(_IN_PROCESS) > _IN_PROCESS_SIZE:
        _IN_PROCESS.popitem(last=False)
    return plan


def _store_entry(path, payload, store, location) -> str | None:
    """Write an entry within the limit; None, or why it was not written (warned once)."""
    limit, size = max_size(), _entry_bytes(payload)
    if size <= limit:
        failure = _write_entry(path, payload, store, limit, size)
        if failure is not None:
            _warn_not_cached(location, failure)
        return failure
    if limit > 0 and _first_time(f"{location} (limit)"):
        warnings.warn(f"fmmsolve: a plan of {size / 2**20:.1f} MiB exceeds the plan cache's "
                      f"limit of {limit / 2**20:.1f} MiB in {location}; it is computed and used "
                      f"but not cached. Raise {MAX_ENV_VAR} or call "
                      f"fmmsolve.cache.set_max_size.", RuntimeWarning, stacklevel=5)
    return f"the limit is {limit} bytes ({MAX_ENV_VAR}), the plan needs {size}"


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


class CacheInfo(collections.namedtuple("CacheInfo", "location entries size max_size")):
    """What :func:`cache_info` reports.

    Attributes
    ----------
    location : pathlib.Path or None
        The cache directory (None: no disk cache).
    entries : int
        Plans stored there.
    size : int
        Their bytes; entries are evicted to keep it under ``max_size``.
    max_size : int
        The limit, :func:`max_size`.
    """


def cache_info(memory="default") -> CacheInfo:
    """The location, number of Plans, their bytes and the limit of ``memory``'s cache."""
    memory = resolve_memory(memory)
    location = None if memory is None else memory.location
    store = None if memory is None else getattr(memory.store_backend, "location", None)
    sizes = []
    if store is not None:
        for entry in pathlib.Path(store, ENTRY_DIR).rglob("output.pkl"):
            try:
                sizes.append(entry.stat().st_size)
            except OSError:  # evicted by another process meanwhile
                pass
    return CacheInfo(None if location is None else pathlib.Path(location), len(sizes),
                     sum(sizes), max_size())
