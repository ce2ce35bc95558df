"""Saving and loading a :class:`~.operator.DistributedFMMOperator`: one HDF5 file per rank.

Each rank writes what it holds, ``<path>.rank<r>of<P>.h5`` (:func:`rank_path`): its engine and
its share of the top tree (the serial engine's state, :meth:`FMMEngine.state
<fmmsolve.fmm.FMMEngine.state>`, under the prefixes ``rank_engine.`` and ``top_engine.``), the
partition (the same on every rank), the routes of its points, and its points in the caller's
order (for the transpose). Nothing is gathered on one rank, so a file is about as large as the
rank's share of the memory. The files of one save share a random token; :func:`load` reads
them on a communicator of the same size and refuses files of different saves.

Both functions are collective; a rank that cannot write or read its file (a missing,
unwritable, damaged or foreign file) raises its own error and the others
:class:`~._mpi.RankFailedError`.
"""

from __future__ import annotations

import os
import secrets

import numpy as np

from .._engine_state import check_layout as check_engine_layout
from ..fmm import FMMEngine
from ..io import OperatorFileError, read_groups, write_groups
from ..kernels import get_kernel
from ._mpi import gather_agreed, run_agreed
from .._config import MAX_DEPTH
from .partition import MAX_CUT_LEVEL, Partition
from .top import TopTree, check_boxes

__all__ = ["FORMAT_VERSION", "rank_path", "read", "save"]

#: Version of the layout of a rank's file.
FORMAT_VERSION = 1
_KIND = "fmmsolve.DistributedFMMOperator"
_ENGINES = ("rank_engine", "top_engine")
_OPTIONS = ("kernel", "wavenumber", "eps", "dipoles", "expansion_order", "leaf_size", "dtype")


def rank_path(path, rank, size) -> str:
    """The file of ``rank`` out of ``size`` for the name ``path``: ``<path>.rank<r>of<P>.h5``."""
    return f"{os.fspath(path)}.rank{rank}of{size}.h5"


def save(path, comm, parts):
    """Collective: write each rank's part of an operator to :func:`rank_path` of ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The common name; each rank writes its own file next to it, atomically
        (:func:`fmmsolve.io.write_groups`).
    comm : mpi4py.MPI.Intracomm
    parts : dict
        What the rank holds (``DistributedFMMOperator.save`` gathers it): ``engine``, ``top``,
        ``partition``, ``routes``, ``target_back``, ``points``, ``options``, ``narrow``,
        ``held_sources``, ``own_targets``; :func:`read` gives the same back.

    Raises
    ------
    OSError
        On the rank that could not write (others: RankFailedError).
    """
    token = comm.bcast(secrets.token_hex(8) if comm.rank == 0 else None)
    groups, attrs = {}, {}
    for prefix, engine in zip(_ENGINES, (parts["engine"], parts["top"].engine)):
        if engine is not None:
            g, a = engine.state()
            groups.update({f"{prefix}.{name}": arrays for name, arrays in g.items()})
            attrs.update({f"{prefix}.{name}": value for name, value in a.items()})
    part = parts["partition"]
    groups["partition"] = {"keys": part.keys, "counts": part.counts,
                           "piece_keys": part.piece_keys, "piece_levels": part.piece_levels,
                           "piece_counts": part.piece_counts, "piece_owner": part.piece_owner,
                           "center": np.asarray(part.root[0], np.float64)}
    (s_order, s_counts), (t_order, t_counts) = parts["routes"]
    groups["routes"] = {"source_order": s_order, "source_counts": s_counts,
                        "target_order": t_order, "target_counts": t_counts,
                        "target_back": parts["target_back"]}
    src, tgt = parts["points"]
    groups["points"] = {"sources": src, **({} if tgt is None else {"targets": tgt})}
    options = parts["options"]
    attrs.update({f"options.{name}": options[name] for name in _OPTIONS
                  if name not in ("kernel", "dtype")})
    attrs.update({"options.kernel": options["kernel"].name,
                  "options.kernel_digest": options["kernel"].digest,
                  "options.dtype": np.dtype(options["dtype"]).name,
                  "partition.level": part.level, "partition.half_width": float(part.root[1]),
                  "distributed.rank": comm.rank, "distributed.size": comm.size,
                  "distributed.token": token, "distributed.narrow": parts["narrow"],
                  "distributed.held_sources": parts["held_sources"],
                  "distributed.own_targets": parts["own_targets"]})
    run_agreed(comm, lambda: write_groups(rank_path(path, comm.rank, comm.size), groups, attrs,
                                          kind=_KIND, format_version=FORMAT_VERSION))


def _split(groups, attrs, prefix):
    """The engine state saved under ``prefix``: (groups, attrs), or None when absent."""
    head = prefix + "."
    sub_groups = {k[len(head):]: v for k, v in groups.items() if k.startswith(head)}
    sub_attrs = {k[len(head):]: v for k, v in attrs.items() if k.startswith(head)}
    return (sub_groups, sub_attrs) if sub_groups else None


def _check_layout(layout, attrs):
    """The layout of a rank's file: each engine's by its own rules, the rest by name."""
    for prefix in _ENGINES:
        part = _split(layout, attrs, prefix)
        if part is not None:
            check_engine_layout(*part)
    rest = {k for k in layout if not k.startswith(tuple(p + "." for p in _ENGINES))}
    if rest - {"partition", "routes", "points"} or not {"partition", "routes", "points"} <= rest:
        raise ValueError(f"groups {sorted(rest)}: expected partition, routes and points")


def _require(condition, message):
    if not condition:
        raise ValueError(message)


def _partition(p, attrs, size):
    """The saved :class:`Partition`, its arrays checked against each other."""
    n_cut, n_pieces = len(p["keys"]), len(p["piece_keys"])
    level, half = attrs["partition.level"], attrs["partition.half_width"]
    _require(type(level) is int and 2 <= level <= MAX_CUT_LEVEL and half > 0
             and p["center"].shape == (3,) and np.isfinite(p["center"]).all(),
             "partition: invalid root or level")
    _require(p["keys"].ndim == 1 and p["counts"].shape == (n_cut, 2)
             and p["piece_levels"].shape == (n_pieces,) and p["piece_counts"].shape
             == (n_pieces, 2) and p["piece_owner"].shape == (n_pieces,)
             and np.all(np.diff(p["keys"]) > 0) and np.all(np.diff(p["piece_owner"]) >= 0)
             and (n_pieces == 0 or 0 <= p["piece_owner"].min() <= p["piece_owner"].max() < size)
             and np.all((p["piece_levels"] >= level) & (p["piece_levels"] <= MAX_DEPTH)),
             "partition: keys, counts, pieces and owners disagree")
    box = p["piece_keys"] >> (3 * (p["piece_levels"] - level))
    _require(np.isin(box, p["keys"]).all() and np.isin(p["keys"], box).all(),
             "partition: pieces outside the cut boxes, or cut boxes without pieces")
    return Partition((p["center"], half), level, size, p["keys"], p["counts"],
                     p["piece_keys"], p["piece_levels"], p["piece_counts"], p["piece_owner"])


def _read(path, comm):
    """This rank's file of the save ``path``: ``(parts for the operator, the save's token)``."""
    path = rank_path(path, comm.rank, comm.size)
    groups, attrs = read_groups(path, kind=_KIND, format_version=FORMAT_VERSION,
                                check_layout=_check_layout)
    try:
        rank, size = attrs.get("distributed.rank"), attrs.get("distributed.size")
        _require((rank, size) == (comm.rank, comm.size),
                 f"written by rank {rank} of {size}, read by rank {comm.rank} of {comm.size}")
        kernel = get_kernel(attrs["options.kernel"])
        _require(kernel.digest == attrs["options.kernel_digest"],
                 f"kernel {kernel.name!r} is registered here with another definition")
        options = {name: attrs[f"options.{name}"] for name in _OPTIONS}
        options.update(kernel=kernel, dtype=np.dtype(options["dtype"]))
        partition = _partition(groups["partition"], attrs, size)
        pts, r = groups["points"], groups["routes"]
        src = pts["sources"]
        tgt = pts.get("targets")
        n_src, n_tgt = len(src), len(src if tgt is None else tgt)
        for name, n in (("source", n_src), ("target", n_tgt)):
            order, counts = r[f"{name}_order"], r[f"{name}_counts"]
            _require(counts.shape == (size,) and counts.min(initial=0) >= 0
                     and counts.sum() == len(order)
                     and (len(order) == 0 or 0 <= order.min() <= order.max() < n),
                     f"routes: {name}_order and {name}_counts disagree with {n} points")
        _require(r["target_back"].shape == (size,), "routes: target_back has the wrong shape")
        level = partition.level
        engines = [None, None]
        narrow = attrs["distributed.narrow"]
        _require(isinstance(narrow, bool), "distributed.narrow must be a bool")
        for i, (prefix, bound) in enumerate(zip(_ENGINES, (narrow, True))):
            state = _split(groups, attrs, prefix)
            if state is not None:
                engines[i] = FMMEngine.from_state(*state, narrow_far_field=bound,
                                                  min_depth=level)
        engine = engines[0]
        held, own = attrs["distributed.held_sources"], attrs["distributed.own_targets"]
        _require(engine is None or (engine.n_sources >= held and engine.n_targets >= own),
                 "rank_engine: fewer points than the rank holds")
        _check_engine(partition, comm.rank, engine)
        top = TopTree(partition, comm.rank, None, engine=engines[1])
        routes = ((r["source_order"], r["source_counts"]),
                  (r["target_order"], r["target_counts"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, OperatorFileError):
            raise
        raise OperatorFileError(path, f"{type(exc).__name__}: {exc}") from exc
    parts = dict(options=options, partition=partition, routes=routes, narrow=narrow,
                 target_back=r["target_back"], points=(src, tgt), engine=engine, top=top,
                 sizes=(n_tgt, n_src, own, held))
    return parts, attrs["distributed.token"]


def read(path, comm):
    """Collective: the parts :func:`save` wrote under ``path`` for this rank, checked.

    Parameters
    ----------
    path : str or os.PathLike
        The name given to :func:`save`; rank ``r`` of ``P`` reads :func:`rank_path`.
    comm : mpi4py.MPI.Intracomm
        Of the size the operator was saved from.

    Returns
    -------
    dict
        :func:`save`'s ``parts``, with the engines read back (not fitted), and ``sizes``:
        ``(n_local_targets, n_local_sources, own_targets, held_sources)``.

    Raises
    ------
    FileNotFoundError, PermissionError, fmmsolve.io.OperatorFileError
        On the rank whose file is missing, unreadable, damaged, of another rank or size, or
        of another save than the other ranks' files; the others raise RankFailedError.
    """
    parts, tokens = gather_agreed(comm, _read, path, comm)  # a bad path: inside, agreed
    if len(set(tokens)) > 1:
        raise OperatorFileError(rank_path(path, comm.rank, comm.size),
                                f"the ranks' files come from different saves (tokens "
                                f"{', '.join(map(str, tokens))})")
    return parts


def _check_engine(partition, rank, engine):
    """A restored rank engine must hold the boxes of the rank's cut boxes."""
    if engine is None:
        return
    keys = engine.tree.keys
    for boxes in (partition.contributed(rank), partition.target_boxes(rank)):
        wanted = partition.box_keys(boxes)
        check_boxes(keys, np.searchsorted(keys, wanted), wanted, "rank_engine")
