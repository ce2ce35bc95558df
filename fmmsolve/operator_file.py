"""Reading an operator file: :func:`load`, the inverse of :meth:`FMMOperator.save`.

Apart from :mod:`fmmsolve.linear_operator` so that the operator module stays about the operator;
the layout of the file is :mod:`fmmsolve.io`'s and :mod:`fmmsolve._engine_state`'s.
"""

from __future__ import annotations

import inspect
import time

from ._engine_state import check_layout
from .fmm import FMMEngine
from .io import OperatorFileError, read_groups
from .linear_operator import _FILE_KIND, FORMAT_VERSION, FMMOperator

__all__ = ["load"]


def load(path):
    """Read an :class:`FMMOperator` written by :meth:`FMMOperator.save`, without fitting it.

    The tree, the interaction lists and the plan are read and checked (dtypes, shapes, index
    bounds, permutations), never recomputed; no pickle is involved.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    FMMOperator
        Its products equal the saved operator's bit for bit. ``sources`` and ``targets`` are
        the saved points in the caller's order, ``memory`` is ``FMMOperator``'s default (not
        stored), and ``fit_timings`` holds the seconds to ``"read"``, ``"validate"`` and
        ``"bind"``. ``A.T`` of a rectangular operator, and an unpickled copy, are fitted again
        as usual.

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        When ``path`` cannot be opened.
    fmmsolve.io.OperatorFileError
        A ``ValueError`` naming ``path`` and the problem: not an HDF5 file, a damaged or
        truncated one, an HDF5 file that is not an fmmsolve operator, a format version newer
        than this fmmsolve reads, a refused (non-numeric) type, or arrays and parameters that
        are missing or inconsistent.
    """
    t0 = time.perf_counter()
    groups, attrs = read_groups(path, kind=_FILE_KIND, format_version=FORMAT_VERSION,
                                check_layout=check_layout)  # shapes checked before reading
    t1 = time.perf_counter()
    try:
        engine = FMMEngine.from_state(groups, attrs)
        for key in ("operator.wavenumber", "operator.leaf_size"):
            if key not in attrs:
                raise ValueError(f"missing parameter {key!r}")
        wavenumber, leaf_size = attrs["operator.wavenumber"], attrs["operator.leaf_size"]
        if leaf_size is not None and (type(leaf_size) is not int
                                      or leaf_size != engine.tree.leaf_size):
            raise ValueError(f"operator.leaf_size {leaf_size!r} differs from the tree's")
        if engine.kernel.check_wavenumber(wavenumber) != engine.wavenumber:
            raise ValueError(f"operator.wavenumber {wavenumber!r} disagrees with the engine's")
        viscosity = attrs.get("operator.viscosity")  # absent from files of no viscosity
        engine.kernel.viscosity_factor(viscosity)
    except ValueError as exc:
        raise OperatorFileError(path, str(exc)) from exc
    engine.fit_timings = {"read": t1 - t0, **engine.fit_timings}
    memory = inspect.signature(FMMOperator.__init__).parameters["memory"].default
    return FMMOperator._from_engine(engine, wavenumber, leaf_size, memory, viscosity)
