"""The MPI layer of the distributed FMM: imports, failure agreement and the exchanges.

* ``mpi4py`` and ``numba_mpi`` are imported here and only here; without them importing this
  module raises ``ImportError`` naming the ``mpi`` extra.
* Set-up exchanges (bounds, histograms, point coordinates) and the per-product routing of
  densities and potentials use mpi4py (``Alltoallv`` of NumPy buffers). The one exchange inside
  a compiled pass, the sum of the cut-level multipole expansions over ranks, is numba-mpi's
  ``allreduce`` called from Numba code (:func:`sum_over_ranks`). numba-mpi only knows
  ``MPI_COMM_WORLD``; on another communicator the same sum falls back to mpi4py.
* Failures: every rank runs the same sequence of collective calls. A rank whose local work
  raises must not skip a collective the others wait in, so local work is followed by
  :func:`agree`, a collective that tells every rank whether some rank failed; then all of them
  raise (the failing rank its own exception, the others :class:`RankFailedError` naming it).
  :func:`gather_agreed` does the same in one allgather that also shares a small summary of
  each rank's inputs (the options, the number of density columns), so that the ranks can
  compare them before any exchange that depends on them.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

_EXTRA = ('the distributed FMM needs MPI: install the "mpi" extra, '
          'pip install "fmmsolve[mpi]" (mpi4py, numba-mpi and an MPI library such as mpich)')

try:
    import numba_mpi
    from mpi4py import MPI
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(f"{_EXTRA}; {exc}") from exc

__all__ = ["MPI", "RankFailedError", "agree", "alltoallv", "gather_agreed", "resolve_comm",
           "run_agreed", "sum_over_ranks"]


class RankFailedError(RuntimeError):
    """Raised on every rank whose own work succeeded when another rank's failed."""


def resolve_comm(comm):
    """``comm`` (an ``mpi4py.MPI.Intracomm``) or ``MPI.COMM_WORLD`` for None."""
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py.MPI.Intracomm or None, got {comm!r}")
    return comm


def _message(error):
    return None if error is None else f"{type(error).__name__}: {error}"


def _raise_failures(error, messages):
    """Raise ``error`` on the rank that failed, :class:`RankFailedError` on the others."""
    if error is not None:
        raise error
    failed = "; ".join(f"rank {r}: {m}" for r, m in enumerate(messages) if m is not None)
    raise RankFailedError(f"the distributed FMM failed on another rank ({failed})")


def agree(comm, error=None):
    """Collective: raise on every rank if ``error`` is not None on some rank.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    error : BaseException or None
        This rank's failure since the last agreement, or None.

    Raises
    ------
    BaseException
        ``error`` itself on the rank that failed.
    RankFailedError
        On the other ranks, naming the failed ranks and their messages.
    """
    if not comm.allreduce(int(error is not None), op=MPI.SUM):
        return
    _raise_failures(error, comm.allgather(_message(error)))


def run_agreed(comm, func, *args):
    """``func(*args)`` then :func:`agree` on its failure: its result on every rank, or an
    exception on every rank."""
    try:
        result = func(*args)
    except Exception as exc:
        agree(comm, exc)
        raise  # unreachable: agree raises exc
    agree(comm)
    return result


def gather_agreed(comm, func, *args):
    """Collective: ``result, summary = func(*args)`` on every rank, agreed on and shared in one
    allgather.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    func : callable
        Returns ``(result, summary)``; ``summary`` is small and picklable (plain values).

    Returns
    -------
    result
        This rank's result.
    summaries : list
        Every rank's summary, rank 0 first (the same list on every rank).

    Raises
    ------
    Exception
        As :func:`agree`, on every rank, when ``func`` raised on some rank.
    """
    error = result = summary = None
    try:
        result, summary = func(*args)
    except Exception as exc:  # noqa: BLE001 - any failure must reach the other ranks
        error = exc
    shared = comm.allgather((_message(error), summary))
    messages = [m for m, _ in shared]
    if any(m is not None for m in messages):
        _raise_failures(error, messages)
    return result, [s for _, s in shared]


def alltoallv(comm, send, counts, dtype=None, recv_counts=None):
    """Exchange rows: ``send`` is (n, ...) sorted by destination rank, ``counts[d]`` rows for
    rank ``d``; returns the received rows ordered by source rank, and their counts.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    send : ndarray of shape (n, *row)
    counts : ndarray of shape (comm.size,), int64
    dtype : numpy.dtype or None
        The dtype to send (None: ``send``'s).
    recv_counts : ndarray of shape (comm.size,), int64, or None
        The rows to receive from each rank, when known from the set-up; None exchanges them
        here (one ``Alltoall``).

    Returns
    -------
    recv : ndarray of shape (sum(recv_counts), *row), ``send.dtype``
    recv_counts : ndarray of shape (comm.size,), int64
    """
    send = np.ascontiguousarray(send, dtype)
    row = int(np.prod(send.shape[1:], dtype=np.int64))
    counts = np.asarray(counts, np.int64)
    if recv_counts is None:
        recv_counts = np.empty_like(counts)
        comm.Alltoall(counts, recv_counts)
    recv_counts = np.asarray(recv_counts, np.int64)
    recv = np.empty((int(recv_counts.sum()), *send.shape[1:]), send.dtype)
    size = row * send.dtype.itemsize  # bytes per row: any dtype travels as MPI.BYTE
    s_counts, r_counts = counts * size, recv_counts * size
    s_displ = np.concatenate([[0], np.cumsum(s_counts)[:-1]])
    r_displ = np.concatenate([[0], np.cumsum(r_counts)[:-1]])
    comm.Alltoallv([send.reshape(-1).view(np.uint8), (s_counts, s_displ), MPI.BYTE],
                   [recv.reshape(-1).view(np.uint8), (r_counts, r_displ), MPI.BYTE])
    return recv, recv_counts


@jit(cache=False)  # numba-mpi's calls hold ctypes pointers, which Numba cannot cache
def _gather_and_sum(multipole, rows, slots, buffer, out):
    """Copy ``multipole[rows[i]]`` into ``buffer[slots[i]]`` (the rest zero), then sum
    ``buffer`` over ``MPI_COMM_WORLD`` into ``out``; returns the MPI status."""
    buffer[:] = 0
    for i in range(rows.shape[0]):
        buffer[slots[i]] = multipole[rows[i]]
    return numba_mpi.allreduce(buffer, out, numba_mpi.Operator.SUM)


def sum_over_ranks(comm, multipole, rows, slots, n_slots):
    """Sum, over ranks, the expansions each rank holds for some of ``n_slots`` global boxes.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    multipole : ndarray of shape (n_boxes, m, n), C-contiguous
        This rank's expansions, indexed by its own box numbers.
    rows, slots : ndarray of shape (k,), int64
        This rank contributes ``multipole[rows[i]]`` to global box ``slots[i]``.
    n_slots : int

    Returns
    -------
    ndarray of shape (n_slots, m, n), ``multipole.dtype``
        The same on every rank.
    """
    shape = (n_slots, *multipole.shape[1:])
    buffer, out = np.empty(shape, multipole.dtype), np.empty(shape, multipole.dtype)
    if comm.Compare(MPI.COMM_WORLD) in (MPI.IDENT, MPI.CONGRUENT):
        status = _gather_and_sum(multipole, rows, slots, buffer, out)
        if status != 0:
            raise RuntimeError(f"numba_mpi.allreduce failed with MPI error code {status}")
    else:  # numba-mpi has no communicator argument: the same sum through mpi4py
        buffer[:] = 0
        buffer[slots] = multipole[rows]
        comm.Allreduce(buffer, out, op=MPI.SUM)
    return out
