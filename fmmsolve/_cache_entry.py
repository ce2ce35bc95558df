"""The file of one Plan cache entry: its content, its checks, and an atomic write.

An entry is a dict written with :func:`joblib.dump`: the key, the Plan's plain values and
arrays (its M2L strategy's as ``m2l_<field>``, :meth:`M2LData.arrays
<fmmsolve.operators.m2l.M2LData.arrays>`), and a SHA-256 checksum of all of them.
:func:`_read_entry` returns a Plan only when the checksum holds, the stored key is the one
asked for and the Plan's own fields agree with it; :func:`_dump` writes through a temporary
file renamed over the entry, so readers see the old entry or the new one and no partial file is
left behind. Where entries live, how many, and
when they are evicted is :mod:`fmmsolve.cache`'s business.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import shutil
import tempfile
import time

import joblib
import numpy as np

from .kernels import kernel_for_key
from .operators import surfaces
from .operators.m2l import get_strategy
from .operators.plan import Plan


# Bytes left free beyond an entry's arrays (pickle framing; other writers on the same disk).
_HEADROOM = 2**20
# An entry's bytes beyond its arrays (pickle framing, the key, small values), for the limit.
_OVERHEAD = 2**16


def _checksum(key, values: dict, arrays: dict) -> str:
    digest = hashlib.sha256(repr(key).encode())
    digest.update(repr(sorted(values.items())).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _payload(key, plan: Plan) -> dict:
    """An entry's content: the key, the Plan as plain values and arrays (M2M and L2L of
    octant 0 only; the M2L strategy's by their stored names), their checksum."""
    fields = dict(vars(plan))
    m2l_arrays = fields.pop("m2l_data").arrays()
    arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
    arrays.update(m2l_arrays)
    values = {k: v for k, v in fields.items() if not isinstance(v, np.ndarray)}
    return {"key": key, "arrays": arrays, "values": values,
            "checksum": _checksum(key, values, arrays)}


def _inconsistency(plan: Plan, key, components=1) -> str | None:
    """What in ``plan`` contradicts ``key``, or None: the last guard before a Plan is used;
    ``components``: the kernel's."""
    kernel_name, _, order, tol, dtype, _, _, variant, strategy = key[:9]
    stored = (plan.kernel_name, plan.expansion_order, plan.compression_tol)
    if stored != (kernel_name, order, tol):
        return f"kernel, order and tolerance {stored} instead of {(kernel_name, order, tol)}"
    if plan.m2l_strategy != strategy:
        return f"M2L strategy {plan.m2l_strategy!r} instead of {strategy!r}"
    n = surfaces.n_surface_points(order) * components
    if not np.array_equal(plan.surface, surfaces.surface(order)):
        return f"a surface of shape {plan.surface.shape} that is not the order-{order} one"
    shapes = {"uc2e_a": (n, None), "uc2e_b": (None, n), "dc2e_a": (n, None),
              "dc2e_b": (None, n), "m2m": (1, n, n), "l2l": (1, n, n)}
    for name, shape in shapes.items():
        a = getattr(plan, name)
        if a.dtype != np.dtype(dtype) or a.ndim != len(shape) or any(
                want is not None and have != want for have, want in zip(a.shape, shape)):
            return f"{name} of shape {a.shape} and dtype {a.dtype}, not {shape} {dtype}"
    why = plan.m2l_data.inconsistency(n, np.dtype(dtype))  # the strategy's own rules
    if why:
        return why
    if (plan.rank == 0) != (variant == "no-m2l"):
        return f"M2L rank {plan.rank} in a plan with variant {variant!r}"
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
        data = get_strategy(values["m2l_strategy"]).Data.from_arrays(arrays)
        own = {k: v for k, v in arrays.items() if k not in data.arrays()}
        kernel = kernel_for_key(f"{key[0]}-{key[-1][:16]}")  # key: name first, digest last
        plan = Plan(**own, **values, m2l_data=data)
        why = _inconsistency(plan, key, kernel.components)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return None, f"is damaged ({type(exc).__name__}: {exc})"
    if why:
        return None, f"holds an inconsistent plan: {why}"
    # The eviction keeps the entries accessed last; set the access time, which file systems
    # mounted noatime or relatime would not. A read-only cache is still read.
    with contextlib.suppress(OSError):
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
    return plan, None


def _entry_bytes(payload: dict) -> int:
    """About the size of ``payload``'s file: its arrays and a bound on the rest."""
    return sum(a.nbytes for a in payload["arrays"].values()) + _OVERHEAD


def _dump(path: pathlib.Path, payload: dict, size: int) -> str | None:
    """Write ``payload`` through a temporary file renamed over ``path``."""
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
        with contextlib.suppress(OSError):
            os.unlink(temporary)  # no partial file is left behind
        raise
    return None
