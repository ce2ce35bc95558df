"""``DistributedFMMOperator``: the FMM over points spread across MPI ranks, and
``ReplicatedOperator``, its SciPy ``LinearOperator`` over replicated global vectors.

Set-up (collective, once): the root cube of all points (allreduce of the bounds), the cut level
and the Morton ranges of cut boxes per rank (:mod:`.partition`, from an allgather of a
histogram), then every source goes to its cut box's owner and, as a ghost, to the owners of the
adjacent cut boxes, and every target to its owner (mpi4py ``Alltoallv``). Each rank fits one
ordinary :class:`~fmmsolve.fmm.FMMEngine` on what it received, with the shared root cube and
at least the cut level's depth, and a :class:`~.top.TopTree` for the far field.

Product (collective, per call): densities travel like their sources (one ``Alltoallv``), each
engine runs its passes with the other ranks' far field added before L2L (one numba-mpi
``allreduce`` inside, :mod:`.top`), and the potentials travel back to the rank and position
the caller gave them (one ``Alltoallv``).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .. import cache
from .._config import DEFAULT_LEAF_SIZE
from ..accuracy import order_for_eps
from .._validation import resolve_real_dtype
from ..fmm import FMMEngine
from ..kernels import get_kernel
from ..operators.plan import Plan
from ..operators.surfaces import n_surface_points
from ._mpi import MPI, RankFailedError, agree, alltoallv, resolve_comm, run_agreed
from .partition import Partition, fine_keys, global_root
from .top import TopTree

__all__ = ["DistributedFMMOperator", "ReplicatedOperator"]

_ENGINE_OPTIONS = ("kernel", "wavenumber", "eps", "expansion_order", "leaf_size", "dtype")


def _points(points, name):
    """(n, 3) float64 C-contiguous finite points; n may be 0 (a rank may own nothing)."""
    arr = np.asarray(points)
    if arr.dtype.kind not in "biuf" or arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must be a real array of shape (n, 3), n >= 0, "
                         f"got shape {arr.shape} and dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    return arr


def _merge(parts):
    """Sum the histograms ``[(keys, (n, 2) counts), ...]`` of the ranks into one."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts]).reshape(-1, 2)
    uniq, inverse = np.unique(keys, return_inverse=True)
    total = np.zeros((len(uniq), 2), np.int64)
    np.add.at(total, inverse, counts)
    return uniq, total


def _array_bytes(obj, seen):
    """Bytes of the NumPy arrays reachable through lists, tuples and dicts of ``obj``; views
    (the plan's translation matrices held per group) are not counted."""
    if isinstance(obj, np.ndarray):
        if id(obj) in seen or obj.base is not None:
            return 0
        seen.add(id(obj))
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(o, seen) for o in obj)
    if isinstance(obj, dict):
        return sum(_array_bytes(o, seen) for o in obj.values())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, Plan):  # M2L schedules
        return sum(_array_bytes(o, seen) for o in vars(obj).values())
    return 0


class DistributedFMMOperator:
    """``A[i, j] = G(y_i, x_j)`` over the sources and targets of all ranks; each rank passes and
    receives its own part.

    Every method that talks to other ranks is collective: all ranks of ``comm`` must call it,
    in the same order, with the same number of density columns. When the local work of one
    rank raises, every rank raises (that rank its own exception, the others
    :class:`~fmmsolve.distributed.RankFailedError`), so no rank waits forever.

    Parameters
    ----------
    local_sources : array_like of shape (n_local_sources, 3)
        The sources this rank owns (columns of its block of ``A``); may be empty.
    local_targets : array_like of shape (n_local_targets, 3) or None
        This rank's targets; None means its sources.
    comm : mpi4py.MPI.Intracomm or None
        None means ``MPI.COMM_WORLD``.
    **fmm_options
        ``kernel``, ``wavenumber``, ``eps``, ``expansion_order``, ``leaf_size``, ``dtype`` and
        ``memory``, as for :class:`~fmmsolve.FMMOperator`; the same on every rank.

    Attributes
    ----------
    comm : mpi4py.MPI.Intracomm
    local_shape : tuple (n_local_targets, n_local_sources)
    shape : tuple (n_targets, n_sources)
        Over all ranks.
    dtype : numpy.dtype
    partition : Partition
        Cut level, cut boxes and their owners.
    engine : FMMEngine or None
        This rank's engine over its own and ghost sources and its own targets.
    timings : dict of str to float
        Seconds of the last product on this rank: ``"route"`` (both exchanges), ``"far_field"``
        (allreduce and top tree) and the engine's operators.
    """

    def __init__(self, local_sources, local_targets=None, *, comm=None, **fmm_options):
        self.comm = comm = resolve_comm(comm)
        unknown = set(fmm_options) - {*_ENGINE_OPTIONS, "memory"}
        if unknown:
            raise TypeError(f"unknown FMM options {sorted(unknown)}; expected {_ENGINE_OPTIONS}"
                            f" or memory")
        t0 = time.perf_counter()
        src, tgt = run_agreed(comm, self._validate, local_sources, local_targets)
        both = np.vstack([src, tgt])
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        comm.Allreduce(np.min(both, axis=0, initial=np.inf), lo, op=MPI.MIN)
        comm.Allreduce(np.max(both, axis=0, initial=-np.inf), hi, op=MPI.MAX)
        n_src = comm.allreduce(len(src), op=MPI.SUM)
        if n_src == 0:
            raise ValueError("local_sources is empty on every rank: at least one source needed")
        root = global_root(lo, hi)
        parts = comm.allgather(run_agreed(comm, self._local_histogram, src, tgt, root))
        self.partition = Partition.from_histogram(root, *_merge(parts), comm.size,
                                                  self._leaf_size_hint(fmm_options))
        self._routes = run_agreed(comm, lambda: (self.partition.route(src, ghosts=True),
                                                 self.partition.route(tgt, ghosts=False)))
        (s_order, s_counts), (t_order, t_counts) = self._routes
        my_src, _ = alltoallv(comm, src[s_order], s_counts)
        my_tgt, self._t_back = alltoallv(comm, tgt[t_order], t_counts)
        self.local_shape = (len(tgt), len(src))
        self.shape = (comm.allreduce(len(tgt), op=MPI.SUM), n_src)
        self.n_own_targets, self.n_held_sources = len(my_tgt), len(my_src)
        kernel = get_kernel(fmm_options.get("kernel", "laplace"))
        self.dtype = kernel.value_dtype(resolve_real_dtype(fmm_options.get("dtype")))
        self._build(my_src, my_tgt, fmm_options)
        self.fit_seconds = time.perf_counter() - t0
        self.timings = {}

    @staticmethod
    def _validate(local_sources, local_targets):
        src = _points(local_sources, "local_sources")
        tgt = src if local_targets is None else _points(local_targets, "local_targets")
        return src, tgt

    @staticmethod
    def _local_histogram(src, tgt, root):
        keys = np.concatenate([np.unique(fine_keys(p, root)) for p in (src, tgt)])
        keys = np.unique(keys)
        counts = np.stack([np.bincount(np.searchsorted(keys, fine_keys(p, root)),
                                       minlength=len(keys)) for p in (src, tgt)], axis=1)
        return keys, counts.astype(np.int64)

    @staticmethod
    def _leaf_size_hint(options):
        """The engine's default leaf size (cut boxes should not be finer than leaves)."""
        if options.get("leaf_size") is not None:
            return int(options["leaf_size"])
        order = options.get("expansion_order") or order_for_eps(options.get("eps", 1e-6))
        return max(DEFAULT_LEAF_SIZE, n_surface_points(order))

    def _build(self, my_src, my_tgt, fmm_options):
        """Fit this rank's engine and top tree (rank 0 first when plans go through a disk
        cache, so that the ranks do not write the same cache entry at once)."""
        comm, part = self.comm, self.partition
        memory = fmm_options.get("memory", "default")
        options = {k: fmm_options[k] for k in _ENGINE_OPTIONS if k in fmm_options}
        options["plan_loader"] = functools.partial(cache.load_plan, cache.resolve_memory(memory))
        top_options = {k: v for k, v in options.items() if k != "leaf_size"}

        def build():
            engine = None
            if len(my_src) or len(my_tgt):  # placeholders: a zero charge, a discarded target
                engine = FMMEngine(my_src if len(my_src) else my_tgt[:1],
                                   my_tgt if len(my_tgt) else my_src[:1], **options,
                                   tree_options={"root": part.root, "min_depth": part.level},
                                   narrow_far_field=False)  # other ranks: via locals
            return engine, TopTree(part, comm.rank, top_options)

        if memory is None:
            result = run_agreed(comm, build)
        else:  # two rounds: rank 0 fills the cache, then the others read it
            for first in (True, False):
                if (comm.rank == 0) == first:
                    result = run_agreed(comm, build)
                else:
                    agree(comm)
        self.engine, self.top = result
        # expansion length, known to every rank (one without an engine still joins the sum)
        n = self.engine.plan.n_surface if self.engine is not None else 0
        self._n_surface = comm.allreduce(n, op=MPI.MAX)
        own = part.owned(comm.rank)
        own_src = own[part.counts[own, 0] > 0]
        self._slots = np.searchsorted(self.top.source_boxes, own_src)
        self._rows = self._target_rows = np.zeros(0, np.int64)
        if self.engine is not None:
            keys = self.engine.tree.keys
            self._rows = np.searchsorted(keys, part.box_keys(own_src))
            self._target_rows = np.searchsorted(keys, part.box_keys(self.top.own_targets))

    # -- products --------------------------------------------------------------------------

    def __matmul__(self, q):
        return self.matmat(q) if np.ndim(q) == 2 else self.matvec(q)

    def matvec(self, q):
        """Collective: potentials at this rank's targets, shape (n_local_targets,), from the
        densities ``q`` of shape (n_local_sources,) of its sources."""
        return self.matmat(np.reshape(q, (-1, 1)) if np.ndim(q) == 1 else q)[:, 0]

    def matmat(self, Q):
        """Collective: (n_local_targets, m) potentials from (n_local_sources, m) densities;
        ``m`` must be the same on every rank."""
        comm = self.comm
        t0 = time.perf_counter()
        Q = run_agreed(comm, self._check_densities, Q)
        widths = comm.allgather(Q.shape[1])
        if len(set(widths)) > 1:
            raise ValueError(f"the ranks passed different numbers of density columns: {widths}")
        if np.iscomplexobj(Q) and self.dtype.kind != "c":  # real operator: two real passes
            both = self.matmat(np.concatenate([Q.real, Q.imag], axis=1))
            m = Q.shape[1]
            return both[:, :m] + 1j * both[:, m:]
        (s_order, s_counts), (t_order, t_counts) = self._routes
        q, _ = alltoallv(comm, Q[s_order].astype(self.dtype), s_counts)
        t1 = time.perf_counter()
        pot, timings = self._evaluate(q)
        t2 = time.perf_counter()
        back, _ = alltoallv(comm, pot, self._t_back)
        out = np.empty((self.local_shape[0], Q.shape[1]), self.dtype)
        out[t_order] = back
        self.timings = {"route": t1 - t0 + time.perf_counter() - t2, **timings}
        return out

    def _check_densities(self, Q):
        Q = np.asarray(Q)
        n = self.local_shape[1]
        if Q.ndim != 2 or Q.shape[0] != n or Q.dtype.kind not in "biufc":
            raise ValueError(f"q_local must be a numeric array of shape ({n},) or ({n}, m), "
                             f"got shape {Q.shape} and dtype {Q.dtype}")
        return Q

    def _evaluate(self, q):
        """This rank's passes with the far field of the others; collective through the hook."""
        comm, m = self.comm, q.shape[1]
        reached = [False]

        def far_field(multipole):
            reached[0] = True
            agree(comm)  # every rank's upward pass succeeded
            local = self.top.far_field(comm, multipole, self._rows, self._slots)
            return None if local is None else (self._target_rows, local)

        error, pot, timings = None, np.zeros((0, m), self.dtype), {}
        try:
            if self.engine is None:  # nothing here, but the sum over ranks needs this rank
                far_field(np.zeros((0, m, self._n_surface), self.dtype))
            else:
                if self.n_held_sources == 0:  # the placeholder source's zero charge
                    q = np.zeros((1, m), self.dtype)
                pot, _ = self.engine.evaluate(np.ascontiguousarray(q), far_field=far_field)
                pot, timings = pot[:self.n_own_targets], dict(self.engine.timings)
        except RankFailedError:
            raise
        except Exception as exc:  # reach the agreement the other ranks wait in
            if not reached[0]:
                agree(comm, exc)
            error = exc
        agree(comm, error)
        return pot, timings

    def stats(self) -> dict:
        """This rank's share: points held and bytes of the tree, lists and index arrays."""
        engine = self.engine
        nbytes = 0
        if engine is not None:
            seen = set()
            nbytes = engine.tree.nbytes + engine.lists.nbytes + sum(
                _array_bytes(v, seen) for k, v in vars(engine).items()
                if k not in ("tree", "lists", "plan", "plans"))
        return {"cut_level": self.partition.level, "own_targets": self.n_own_targets,
                "held_sources": self.n_held_sources,
                "boxes": 0 if engine is None else engine.tree.n_boxes,
                "engine_bytes": int(nbytes), "top_bytes": int(self.top.nbytes)}

    def replicated(self):
        """Collective: this operator on global vectors held whole by every rank, a SciPy
        ``LinearOperator`` for its solvers (see :class:`ReplicatedOperator`)."""
        return ReplicatedOperator(self)


class ReplicatedOperator(LinearOperator):
    """A :class:`DistributedFMMOperator` on vectors that every rank holds whole.

    The global vector is the concatenation of the ranks' local vectors, rank 0 first. A product
    takes this rank's slice, applies the distributed operator (collective) and gathers the
    result on every rank (``Allgatherv``). Every rank then runs the same SciPy solver on the same
    numbers, so the iterates agree across ranks. Memory: each Krylov vector costs
    ``8 * n_sources`` bytes (float64) on every rank, so a GMRES with restart ``r`` holds about
    ``(r + 4) * 8 * n`` bytes per rank, not divided by the number of ranks.

    Parameters
    ----------
    operator : DistributedFMMOperator
    """

    def __init__(self, operator):
        self.operator = operator
        comm = operator.comm
        self._src_counts = np.array(comm.allgather(operator.local_shape[1]), np.int64)
        self._tgt_counts = np.array(comm.allgather(operator.local_shape[0]), np.int64)
        super().__init__(operator.dtype, operator.shape)

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))[:, 0]

    def _matmat(self, X):
        comm, rank = self.operator.comm, self.operator.comm.rank
        start = self._src_counts[:rank].sum()
        y = self.operator.matmat(X[start:start + self._src_counts[rank]])
        m = y.shape[1]
        out = np.empty((self.shape[0], m), y.dtype)
        counts = self._tgt_counts * m
        comm.Allgatherv(np.ascontiguousarray(y),
                        [out, (counts, np.concatenate([[0], np.cumsum(counts)[:-1]]))])
        return out

    def _adjoint(self):
        raise NotImplementedError("the adjoint of a distributed FMM operator is not available")
