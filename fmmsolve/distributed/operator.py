"""``DistributedFMMOperator``: the FMM over points spread across MPI ranks, and
``ReplicatedOperator``, its SciPy ``LinearOperator`` over replicated global vectors.

Set-up (collective, once): the root cube of all points (allreduce of the bounds; for a wave
kernel the order and the root follow the serial rules, :func:`~.options.resolve_root`), the
cut level and the pieces of cut boxes per rank (:mod:`.partition`, from an allgather of a
histogram, and of deeper histograms of the boxes too heavy for one rank), then every source
goes to the owners of the pieces of its cut box and, as a ghost, of the adjacent cut boxes, and
every target to its piece's owner (mpi4py ``Alltoallv``). Each rank fits one ordinary
:class:`~fmmsolve.fmm.FMMEngine` on what it received, with the shared root cube and at least
the cut level's depth, and a :class:`~.top.TopTree` for the far field.

Product (collective, per call): densities (charges and/or dipoles) travel like their sources
(``Alltoallv``), each engine runs its passes with the other ranks' far field added before L2L
(one numba-mpi ``allreduce`` inside, :mod:`.top`); targets away from the sources of a decaying
kernel take the far cut boxes' multipoles directly (M2P); the potentials (and gradients)
travel back to the rank and position the caller gave them (``Alltoallv``).

The transpose is a second operator with the roles swapped (:mod:`.views` has the conjugate
and the operator on local or replicated vectors); saving is :mod:`.files`'s.
"""

from __future__ import annotations

import time

import numpy as np

from .. import cache
from .._validation import as_points
from ..accuracy import max_expansion_half_width
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
from . import files
from .layout import check_densities, check_layouts
from .narrow import NarrowFarField, min_cut_level
from .options import check_options, check_same, resolve_root
from .partition import (Partition, global_root, local_histogram, merge_histograms,
                        merge_refined, refine_counts)
from .top import TopTree
from .views import Conjugated, LocalOperator, ReplicatedOperator

__all__ = ["DistributedFMMOperator"]


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
        ``kernel``, ``wavenumber``, ``eps``, ``dipoles``, ``expansion_order``, ``leaf_size``,
        ``dtype`` and ``memory``, as for :class:`~fmmsolve.FMMOperator` (a scalar kernel:
        not Stokes); the same on every rank (``memory``
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
    options : dict
        The resolved options of every rank's engine (``kernel``, ``wavenumber``, ``eps``,
        ``dipoles``, ``expansion_order``, ``leaf_size``, ``dtype``).
    partition : Partition
        Cut level, cut boxes, their pieces and owners.
    engine : FMMEngine or None
        This rank's engine over its own and ghost sources and its own targets.
    top : TopTree
        This rank's share of the far field between cut boxes.
    narrow_field : NarrowFarField or None
        With a decaying kernel and targets apart from the sources: which of this rank's
        targets take the other ranks' field by M2P and which by L2P (:mod:`.narrow`).
    T, H : DistributedFMMOperator or Conjugated
        The transpose and the adjoint (collective on first use: fit once, then kept).
    fit_seconds : float
    timings : dict of str to float
        Seconds of the last product on this rank: ``"route"`` (the exchanges of densities and
        potentials), ``"allreduce"`` (the sum of the cut boxes' multipoles, which waits for
        the slowest rank's upward pass), ``"top"`` (the top tree's passes), ``"narrow"``
        (the narrow far field only) and the rank engine's operators (its local FMM).
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
        if comm.allreduce(len(src), op=MPI.SUM) == 0:
            raise ValueError("local_sources is empty on every rank: at least one source needed")
        # the same computation on every rank; a FrequencyError is raised by all of them
        options, root = run_agreed(comm, resolve_root, options, global_root(lo, hi))
        # targets away from the sources of a decaying kernel: the narrow far field
        self._narrow = bool(comm.allreduce(int(local_targets is not None), op=MPI.MAX)) \
            and np.isfinite(max_expansion_half_width(options["kernel"], options["wavenumber"]))
        parts = comm.allgather(run_agreed(comm, local_histogram, src, tgt, root))

        def refine(keys, levels, deeper):  # collective: the deeper histogram of heavy boxes
            return merge_refined(comm.allgather(run_agreed(
                comm, refine_counts, (src, tgt), root, keys, levels, deeper)))

        # with the narrow far field, cut boxes narrow enough for the decay (up to level 5)
        min_level = min_cut_level(options["kernel"], options["wavenumber"], root[1]) \
            if self._narrow else 2
        partition = Partition.from_histogram(root, *merge_histograms(parts), comm.size,
                                             options["leaf_size"], refine, min_level)
        self._local_points = (src, None if local_targets is None else tgt)
        self._fmm_options = dict(fmm_options)
        self.options = options
        self._transpose_op = self._adjoint_op = None
        self._fit(partition, memory)
        self.fit_seconds = time.perf_counter() - t0
        self.timings = {}

    def _fit(self, partition, memory):
        """Collective: route the points to their ranks and fit this rank's engine and top."""
        comm, (src, tgt) = self.comm, self._local_points
        tgt = src if tgt is None else tgt
        self.partition = partition
        self._routes = run_agreed(comm, lambda: (partition.route(src, ghosts=True),
                                                 partition.route(tgt, ghosts=False)))
        (s_order, s_counts), (t_order, t_counts) = self._routes
        my_src, _ = alltoallv(comm, src[s_order], s_counts)
        my_tgt, self._t_back = alltoallv(comm, tgt[t_order], t_counts)
        self._set_sizes(len(tgt), len(src), len(my_tgt), len(my_src))
        self._build(my_src, my_tgt, memory)

    def _set_sizes(self, n_targets, n_sources, n_own_targets, n_held_sources):
        """Collective: the local and global shapes, the points held, the value dtype."""
        comm = self.comm
        self.local_shape = (n_targets, n_sources)
        self.shape = (comm.allreduce(n_targets, op=MPI.SUM),
                      comm.allreduce(n_sources, op=MPI.SUM))
        self.n_own_targets, self.n_held_sources = n_own_targets, n_held_sources
        self.dtype = self.options["kernel"].value_dtype(self.options["dtype"])
        # the densities received from each rank, fixed by the routes (no exchange per product)
        self._s_recv = np.array(comm.alltoall([int(c) for c in self._routes[0][1]]), np.int64)

    @staticmethod
    def _validate(local_sources, local_targets, fmm_options):
        """This rank's options and points, checked (a rank may hold no point), and the summary
        of its options that the ranks compare."""
        options, memory, summary = check_options(fmm_options, local_sources, local_targets)
        src = as_points(local_sources, "local_sources", allow_empty=True)
        tgt = src if local_targets is None else as_points(local_targets, "local_targets",
                                                          allow_empty=True)
        return (src, tgt, options, memory), summary

    def _build(self, my_src, my_tgt, memory):
        """Fit this rank's engine and top tree (rank 0 first when plans go through a disk
        cache, so that the ranks do not write the same cache entry at once)."""
        comm, part = self.comm, self.partition
        options = {**self.options, "plan_loader": cache.plan_loader(memory)}
        top_options = {k: v for k, v in options.items() if k != "leaf_size"}

        def build():
            engine = None
            if len(my_src) or len(my_tgt):  # placeholders: a zero charge, a discarded target
                engine = FMMEngine(my_src if len(my_src) else my_tgt[:1],
                                   my_tgt if len(my_tgt) else my_src[:1], **options,
                                   tree_options={"root": part.root, "min_depth": part.level},
                                   narrow_far_field=self._narrow)
            return engine, TopTree(part, comm.rank, top_options)

        if memory is None:
            result = run_agreed(comm, build)
        else:  # two rounds: rank 0 fills the cache, then the others read it
            for first in (True, False):
                if (comm.rank == 0) == first:
                    result = run_agreed(comm, build)
                else:
                    agree(comm)
        self._set_engines(*result)

    def _set_engines(self, engine, top):
        """Collective: the engine and top of this rank, and the index maps between them."""
        comm, part = self.comm, self.partition
        self.engine, self.top = engine, top
        # expansion length, known to every rank (one without an engine still joins the sum)
        n = self.engine.plan.n_surface if self.engine is not None else 0
        self._n_surface = comm.allreduce(n, op=MPI.MAX)
        own_src = part.contributed(comm.rank)
        self._slots = np.searchsorted(self.top.source_boxes, own_src)
        self._rows = self._target_rows = np.zeros(0, np.int64)
        if self.engine is not None:
            keys = self.engine.tree.keys
            self._rows = np.searchsorted(keys, part.box_keys(own_src))
            self._target_rows = np.searchsorted(keys, part.box_keys(self.top.own_targets))
        self.narrow_field = NarrowFarField(comm, engine, top, part, self.options,
                                            self.n_own_targets, self.n_held_sources) \
            if self._narrow else None

    # -- products --------------------------------------------------------------------------

    def __matmul__(self, q):
        pot, _, vector = self._product(q)
        return pot[:, 0] if vector else pot

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

    def evaluate(self, q=None, gradient=False, *, dipoles=None):
        """Collective: potentials (and their gradients with respect to the target) at this
        rank's targets of charges and/or dipoles at its sources, as
        :meth:`fmmsolve.FMMOperator.evaluate`.

        Parameters
        ----------
        q : array_like of shape (n_local_sources,) or (n_local_sources, m), or None
        gradient : bool, default False
            The same on every rank.
        dipoles : array_like of shape (n_local_sources, 3) or (n_local_sources, m, 3), or None
            Dipole densities (an operator fit with ``dipoles=True`` only); with ``q``, of the
            same columns. Every rank gives charges, dipoles or both alike.

        Returns
        -------
        pot : ndarray of shape (n_local_targets,) or (n_local_targets, m)
        grad : ndarray of shape (n_local_targets, 3) or (n_local_targets, m, 3)
            Only when ``gradient=True``.
        """
        pot, grad, vector = self._product(q, dipoles, gradient)  # gradient checked there
        if vector:
            pot, grad = pot[:, 0], None if grad is None else grad[:, 0]
        return (pot, grad) if gradient else pot

    def _product(self, q, d=None, gradient=False):
        """Collective: ``(potentials (n_local_targets, m), gradients (n_local_targets, m, 3) or
        None, whether the input had no column axis)``.

        The densities are checked on every rank, and the ranks agree on the result and on
        what they pass (columns, charges and/or dipoles, gradients, whether any rank's
        densities are complex) in one allgather, before anything is exchanged."""
        t0 = time.perf_counter()
        (q, d, vector), shared = gather_agreed(
            self.comm, check_densities, q, d, gradient, self.local_shape[1], self.dtype,
            self.options["dipoles"])
        layouts = check_layouts(shared)
        gradient = layouts[0][3]  # checked, the same on every rank
        if self.dtype.kind != "c" and any(c for _, c in shared):
            # a real operator on complex densities: two real passes on every rank
            m = layouts[0][0]
            split = [None if a is None else np.concatenate([a.real, a.imag], axis=1)
                     .astype(self.dtype) for a in (q, d)]
            pot, grad = self._apply(*split, gradient, t0)
            pot = pot[:, :m] + 1j * pot[:, m:]
            grad = None if grad is None else grad[:, :m] + 1j * grad[:, m:]
            return pot, grad, vector
        return (*self._apply(q, d, gradient, t0), vector)

    def _apply(self, q, d, gradient, t0):
        """Collective: route the checked densities (``self.dtype``) to the ranks holding their
        sources, evaluate, and route the potentials (and gradients) back."""
        comm = self.comm
        (s_order, s_counts), (t_order, t_counts) = self._routes
        q, d = [None if a is None else
                alltoallv(comm, a[s_order], s_counts, self.dtype, self._s_recv)[0]
                for a in (q, d)]
        t1 = time.perf_counter()
        pot, grad, timings = self._evaluate(q, d, gradient)
        t2 = time.perf_counter()
        out = []
        for values in (pot, grad):
            if values is not None:
                back, _ = alltoallv(comm, values, self._t_back, recv_counts=t_counts)
                out.append(np.empty((self.local_shape[0], *values.shape[1:]), self.dtype))
                out[-1][t_order] = back
        # the engine's "far_field" is the top's allreduce and passes, given apart
        timings = {k: v for k, v in timings.items() if k != "far_field"}
        self.timings = {"route": t1 - t0 + time.perf_counter() - t2, **self.top.timings,
                        **timings}
        return out[0], out[1] if gradient else None

    def _evaluate(self, q, d, gradient):
        """This rank's passes with the far field of the others; collective through the hook:
        ``(pot (n_own_targets, m), grad (n_own_targets, m, 3) or None, timings)``."""
        comm = self.comm
        m = (q if q is not None else d).shape[1]
        reached, far, top = [False], [None], [None]

        def far_field(multipole):
            reached[0] = True
            agree(comm)  # every rank's upward pass succeeded
            local, far[0] = self.top.far_field(comm, multipole, self._rows, self._slots)
            top[0] = local
            if local is None or self._narrow:  # narrow: added at the targets, below
                return None
            return self._target_rows, local

        error, timings = None, {}
        pot = np.zeros((0, m), self.dtype)
        grad = np.zeros((0, m, 3), self.dtype) if gradient else None
        try:
            if self.engine is None:  # nothing here, but the sum over ranks needs this rank
                far_field(np.zeros((0, m, self._n_surface), self.dtype))
            else:
                if self.n_held_sources == 0:  # the placeholder source's zero densities
                    q, d = [None if a is None else np.zeros((1, *a.shape[1:]), self.dtype)
                            for a in (q, d)]
                pot, grad = self.engine.evaluate(
                    None if q is None else np.ascontiguousarray(q), gradient,
                    None if d is None else np.ascontiguousarray(d), far_field=far_field)
                if self._narrow and top[0] is not None:
                    self.engine.timings["narrow"] = self.narrow_field.add(
                        pot, grad, top[0], far[0], gradient)
                pot, timings = pot[:self.n_own_targets], dict(self.engine.timings)
                grad = None if grad is None else grad[:self.n_own_targets]
        except RankFailedError:
            raise
        except Exception as exc:  # noqa: BLE001 - reach the agreement the others wait in
            if not reached[0]:
                agree(comm, exc)
            error = exc
        agree(comm, error)
        return pot, grad, timings

    # -- transpose and adjoint -------------------------------------------------------------

    T = property(lambda self: self.transpose(), doc="Collective on first use: the transpose.")
    H = property(lambda self: self.adjoint(), doc="Collective on first use: the adjoint.")

    def transpose(self):
        """Collective on first call: ``A.T``, a distributed operator from this rank's targets
        to its sources.

        The kernels are symmetric, ``G(x, y) = G(y, x)``: with targets the sources on every
        rank, ``A.T`` is ``A``; otherwise it is the operator with the roles swapped, fit once
        (on every rank) and kept."""
        if self._transpose_op is None:
            src, tgt = self._local_points  # square if every rank's targets are its sources:
            if not self.comm.allreduce(int(tgt is not None), op=MPI.MAX):
                self._transpose_op = self
            else:
                swapped = DistributedFMMOperator(src if tgt is None else tgt, src,
                                                 comm=self.comm, **self._fmm_options)
                swapped._transpose_op = self
                self._transpose_op = swapped
        return self._transpose_op

    def adjoint(self):
        """Collective on first call: ``A.H``, the conjugate transpose: :meth:`transpose` for a
        real kernel, its products conjugated (:class:`Conjugated`) for a complex one."""
        if self._adjoint_op is None:
            transpose = self.transpose()
            self._adjoint_op = transpose if self.dtype.kind != "c" else \
                Conjugated(transpose, adjoint=self)
        return self._adjoint_op

    def rmatvec(self, x):
        """Collective: ``A.H @ x`` for ``x`` of shape (n_local_targets,): values at this
        rank's sources."""
        return self.adjoint().matvec(x)

    def rmatmat(self, X):
        """Collective: ``A.H @ X`` for ``X`` of shape (n_local_targets, m)."""
        return self.adjoint().matmat(X)

    # -- saving and loading ------------------------------------------------------------------

    def save(self, path):
        """Collective: each rank writes its part to ``<path>.rank<r>of<P>.h5``
        (:mod:`fmmsolve.distributed.files`); :meth:`load` reads them back."""
        files.save(path, self.comm, {
            "engine": self.engine, "top": self.top, "partition": self.partition,
            "routes": self._routes, "target_back": self._t_back, "points": self._local_points,
            "options": self.options, "narrow": self._narrow,
            "held_sources": self.n_held_sources, "own_targets": self.n_own_targets})

    @classmethod
    def load(cls, path, comm=None):
        """Collective: the operator :meth:`save` wrote under ``path``, without fitting.

        Parameters
        ----------
        path : str or os.PathLike
            The name given to :meth:`save`.
        comm : mpi4py.MPI.Intracomm or None
            Of the size the operator was saved from; None means ``MPI.COMM_WORLD``.

        Returns
        -------
        DistributedFMMOperator
            Its products equal the saved operator's bit for bit; ``fit_seconds`` is the time
            to read. A transpose fit later uses no plan cache.

        Raises
        ------
        FileNotFoundError, PermissionError, fmmsolve.io.OperatorFileError
            On the rank whose file is missing, unreadable, damaged, of another rank or size,
            or of another save than the others' (:func:`~fmmsolve.distributed.files.read`);
            the other ranks raise RankFailedError.
        """
        comm = resolve_comm(comm)
        t0 = time.perf_counter()
        parts = files.read(path, comm)
        self = cls.__new__(cls)
        self.comm, self.options, self.partition = comm, parts["options"], parts["partition"]
        self._routes, self._t_back = parts["routes"], parts["target_back"]
        self._narrow, self._local_points = parts["narrow"], parts["points"]
        self._fmm_options = {**self.options, "kernel": self.options["kernel"].name,
                             "memory": None}
        self._transpose_op = self._adjoint_op = None
        self._set_sizes(*parts["sizes"])
        self._set_engines(parts["engine"], parts["top"])
        self.fit_seconds, self.timings = time.perf_counter() - t0, {}
        return self

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

    def local_operator(self):
        """This operator as a SciPy ``LinearOperator`` of shape :attr:`local_shape` whose
        products are collective (:class:`LocalOperator`): what the distributed Krylov solvers
        (:mod:`fmmsolve.distributed.krylov`) and SciPy's operator algebra (``I + A / n``) work
        on."""
        return LocalOperator(self)

    def as_petsc(self):
        """This operator as a matrix-free ``petsc4py`` ``Mat`` for PETSc's KSP and
        preconditioners (:func:`fmmsolve.distributed.petsc.as_petsc`; needs petsc4py)."""
        from .petsc import as_petsc

        return as_petsc(self)

    def replicated(self):
        """Collective: this operator on global vectors held whole by every rank, a SciPy
        ``LinearOperator`` for its solvers (see :class:`ReplicatedOperator`)."""
        return ReplicatedOperator(self)
