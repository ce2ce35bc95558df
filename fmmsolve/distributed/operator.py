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

import time

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .. import cache
from .._validation import as_array, as_densities, as_points
from ..fmm import FMMEngine
from ._mpi import (
    MPI,
    RankFailedError,
    agree,
    alltoallv,
    gather_agreed,
    resolve_comm,
    run_agreed,
)
from .options import check_options, check_same
from .partition import Partition, fine_keys, global_root
from .top import TopTree

__all__ = ["DistributedFMMOperator", "ReplicatedOperator"]


def _merge(parts):
    """Sum the histograms ``[(keys, (n, 2) counts), ...]`` of the ranks into one."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts]).reshape(-1, 2)
    uniq, inverse = np.unique(keys, return_inverse=True)
    total = np.zeros((len(uniq), 2), np.int64)
    np.add.at(total, inverse, counts)
    return uniq, total


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
        ``memory``, as for :class:`~fmmsolve.FMMOperator`; the same on every rank (``memory``
        may name a different directory on each rank, but be None on all or none of them).
        Without ``dtype`` the precision follows each rank's points (float32 if they all are),
        and ranks whose points differ in dtype are refused: pass ``dtype`` where they may.

    Raises
    ------
    ValueError, TypeError
        On every rank: the rank with a bad point or option its own error naming the argument,
        the others :class:`~fmmsolve.distributed.RankFailedError` naming that rank; options
        that differ between ranks a ``ValueError`` naming each such option and its values.

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
        t0 = time.perf_counter()
        (src, tgt, options, memory), summaries = gather_agreed(
            comm, self._validate, local_sources, local_targets, fmm_options)
        check_same(summaries)  # the same list everywhere: every rank raises, or none
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
                                                  options["leaf_size"])
        self._routes = run_agreed(comm, lambda: (self.partition.route(src, ghosts=True),
                                                 self.partition.route(tgt, ghosts=False)))
        (s_order, s_counts), (t_order, t_counts) = self._routes
        my_src, _ = alltoallv(comm, src[s_order], s_counts)
        my_tgt, self._t_back = alltoallv(comm, tgt[t_order], t_counts)
        self.local_shape = (len(tgt), len(src))
        self.shape = (comm.allreduce(len(tgt), op=MPI.SUM), n_src)
        self.n_own_targets, self.n_held_sources = len(my_tgt), len(my_src)
        self.dtype = options["kernel"].value_dtype(options["dtype"])
        self._build(my_src, my_tgt, options, memory)
        self.fit_seconds = time.perf_counter() - t0
        self.timings = {}

    @staticmethod
    def _validate(local_sources, local_targets, fmm_options):
        """This rank's options and points, checked (a rank may hold no point), and the summary
        of its options that the ranks compare."""
        options, memory, summary = check_options(fmm_options, local_sources, local_targets)
        src = as_points(local_sources, "local_sources", allow_empty=True)
        tgt = src if local_targets is None else as_points(local_targets, "local_targets",
                                                          allow_empty=True)
        return (src, tgt, options, memory), summary

    @staticmethod
    def _local_histogram(src, tgt, root):
        keys = np.concatenate([np.unique(fine_keys(p, root)) for p in (src, tgt)])
        keys = np.unique(keys)
        counts = np.stack([np.bincount(np.searchsorted(keys, fine_keys(p, root)),
                                       minlength=len(keys)) for p in (src, tgt)], axis=1)
        return keys, counts.astype(np.int64)

    def _build(self, my_src, my_tgt, options, memory):
        """Fit this rank's engine and top tree (rank 0 first when plans go through a disk
        cache, so that the ranks do not write the same cache entry at once)."""
        comm, part = self.comm, self.partition
        options = {**options, "plan_loader": cache.plan_loader(memory)}
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
        Y, vector = self._product(q)
        return Y[:, 0] if vector else Y

    def matvec(self, q):
        """Collective: potentials at this rank's targets, shape (n_local_targets,), from the
        densities ``q`` of shape (n_local_sources,) of its sources."""
        return self._product(q)[0][:, 0]

    def matmat(self, Q):
        """Collective: (n_local_targets, m) potentials from (n_local_sources, m) densities;
        ``m`` must be the same on every rank.

        Complex densities on any rank make the product complex on every rank (a real
        operator then runs two real passes)."""
        return self._product(Q)[0]

    def _product(self, Q):
        """Collective: ``(potentials of shape (n_local_targets, m), whether Q was 1-D)``.

        The densities are checked on every rank and the ranks agree on the result, their
        column counts and whether any rank's densities are complex in one allgather, before
        anything is exchanged."""
        comm = self.comm
        t0 = time.perf_counter()
        (Q, vector), shared = gather_agreed(comm, self._check_densities, Q)
        widths = [m for m, _ in shared]
        if len(set(widths)) > 1:
            raise ValueError("q_local must have the same number of columns m on every rank, "
                             "got " + ", ".join(f"{m} on rank {r}" for r, m in enumerate(widths)))
        if self.dtype.kind != "c" and any(c for _, c in shared):
            # a real operator on a complex global vector: two real passes on every rank
            m = Q.shape[1]
            both = self._apply(np.concatenate([Q.real, Q.imag], axis=1), t0)
            return both[:, :m] + 1j * both[:, m:], vector
        return self._apply(Q, t0), vector

    def _check_densities(self, Q):
        """``(Q as (n_local_sources, m) of A.dtype, or complex for a real A, whether it was
        1-D)``, and the summary ``(m, complex)`` the ranks compare."""
        n, dtype = self.local_shape[1], self.dtype
        Q = as_array(Q, "q_local", f"shape ({n},) or ({n}, m)")
        if Q.dtype.kind == "c" and dtype.kind != "c":
            dtype = np.result_type(dtype, np.complex64)
        Q = as_densities(Q, n, "q_local", dtype)
        if Q.ndim == 2 and Q.shape[1] == 0:
            raise ValueError(f"q_local must have at least one column, got shape {Q.shape}")
        vector = Q.ndim == 1
        if vector:  # not reshape(n, -1): a rank may hold no source (n = 0)
            Q = Q[:, None]
        return (Q, vector), (Q.shape[1], Q.dtype.kind == "c")

    def _apply(self, Q, t0):
        """Collective: route the checked densities ``Q`` (n_local_sources, m) of
        ``self.dtype`` to the ranks holding their sources, evaluate, and route back."""
        comm = self.comm
        (s_order, s_counts), (t_order, _) = self._routes
        q, _ = alltoallv(comm, Q[s_order], s_counts, self.dtype)
        t1 = time.perf_counter()
        pot, timings = self._evaluate(q)
        t2 = time.perf_counter()
        back, _ = alltoallv(comm, pot, self._t_back)
        out = np.empty((self.local_shape[0], Q.shape[1]), self.dtype)
        out[t_order] = back
        self.timings = {"route": t1 - t0 + time.perf_counter() - t2, **timings}
        return out

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
        except Exception as exc:  # noqa: BLE001 - reach the agreement the others wait in
            if not reached[0]:
                agree(comm, exc)
            error = exc
        agree(comm, error)
        return pot, timings

    def stats(self) -> dict:
        """This rank's share: points held and bytes of the tree, lists and index arrays."""
        engine = self.engine
        nbytes = 0
        if engine is not None:  # the plans are shared by every problem: not counted
            fitted = engine.fitted
            nbytes = fitted.tree.nbytes + fitted.lists.nbytes + engine.schedule.nbytes
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
