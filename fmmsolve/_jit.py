"""The one Numba wrapper of fmmsolve: every compiled function gets its flags from here.

``jit`` is :func:`numba.njit` with the package-wide settings of :mod:`fmmsolve._config`
(disk cache, fast-math flags without ``nnan``/``ninf``, NumPy error model). Use
``jit(parallel=True)`` for functions with a ``prange`` loop; never nest parallel functions.

``bind`` compiles a kernel-generic template for one kernel. Kernel block functions are bound as
globals, never passed as arguments: a dispatcher argument is a new Numba type in every process,
so the disk cache would never hit and every fresh process would recompile for seconds.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import types

import numba

from . import _config

__all__ = ["jit", "bind", "prange"]

prange = numba.prange

# Parallel functions parallelise their explicit ``prange`` loop and nothing else: converting
# array expressions, reductions and comprehensions to parallel loops (and fusing them) is never
# wanted inside fmmsolve's loop bodies, and those passes cost about 10 % of each compile.
_PRANGE_ONLY = {"prange": True, "comprehension": False, "numpy": False, "reduction": False,
                "setitem": False, "stencil": False, "fusion": False, "inplace_binop": False}


def jit(func=None, *, parallel: bool = False, inline: str = "never", cache: bool = True):
    """Compile ``func`` with fmmsolve's settings; usable as ``@jit`` or ``@jit(parallel=True)``.

    ``cache=False`` only for functions Numba cannot cache (numba-mpi calls hold ctypes pointers).
    """
    options = dict(
        cache=_config.NUMBA_CACHE and cache,
        fastmath=set(_config.NUMBA_FASTMATH),
        error_model=_config.NUMBA_ERROR_MODEL,
        parallel=_PRANGE_ONLY if parallel else False,
        nogil=True,
        inline=inline,
    )
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)


def bind(template, suffix: str, bindings: dict, *, parallel: bool = False):
    """Compile a copy of the plain function ``template`` with some module globals rebound.

    Parameters
    ----------
    template : function
        Plain (not yet compiled) Python function reading ``bindings``' names as globals.
    suffix : str
        Appended to the copy's name; it names the copy's own disk-cache entry, so it must
        differ whenever ``bindings`` differ (use the kernel's name).
    bindings : dict
        Global name -> object (for example ``{"p2p": kernel.p2p}``).
    parallel : bool
        As for :func:`jit`.

    Returns
    -------
    numba dispatcher (the plain copy when ``NUMBA_DISABLE_JIT`` is set)
    """
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    # Numba keys a cache entry by its own file only. Name the copy after the bound functions'
    # files and code too, so that editing a kernel module, or binding a function defined
    # without a file (a notebook), never reuses a copy compiled from other code.
    suffix = f"{suffix}_{_source_stamp(bindings.values())}"
    name = f"{template.__name__}__{suffix}"
    func = types.FunctionType(template.__code__, namespace, name, template.__defaults__,
                              template.__closure__)
    func.__qualname__ = f"{template.__qualname__}__{suffix}"
    func.__module__ = template.__module__
    func.__doc__ = template.__doc__
    return jit(func, parallel=parallel)


def _source_stamp(objects) -> str:
    """Short hash of the definitions of ``objects``: the modification time and size of each
    one's file, and a digest of its code, so that code without a file (a notebook cell,
    ``exec``) or a file edited within the clock's resolution never reuses another definition's
    compiled copy."""
    parts = []
    for obj in objects:
        func = getattr(obj, "py_func", obj)
        try:
            stat = os.stat(inspect.getsourcefile(func))
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except (TypeError, OSError):
            parts.append("?")
        code = getattr(func, "__code__", None)
        parts.append("" if code is None else code_digest(code))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]


def code_digest(code) -> str:
    """Digest of a code object's instructions, constants (nested code included) and names;
    the same in every process (a frozenset's elements are sorted, not hash-ordered)."""
    def const(c):
        if isinstance(c, types.CodeType):
            return code_digest(c)
        if isinstance(c, frozenset):
            return "frozenset(" + ",".join(sorted(map(const, c))) + ")"
        if isinstance(c, tuple):
            return "(" + ",".join(map(const, c)) + ")"
        return repr(c)

    text = "|".join([code.co_code.hex(), ",".join(map(const, code.co_consts)),
                     ",".join(code.co_names), ",".join(code.co_varnames)])
    return hashlib.sha1(text.encode()).hexdigest()
