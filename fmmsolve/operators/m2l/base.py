"""What every M2L strategy shares: the transfer vectors, the schedule of the V-list pairs, and
the base of the strategies' data records.

Transfer vectors. A V-list pair (target box, source box) of one level has its source at one of
316 offsets ``v`` in {-3..3}^3 \\ {-1..1}^3, in box edges (:func:`transfer_vectors`); a
strategy precomputes one translation per vector, for the reference box of half-width 1.

Schedule. The pairs are sorted by chunk of consecutive target boxes and then by transfer vector
(:func:`schedule`). Boxes are numbered in Morton order within each level, so a chunk is a
compact region of space. The expansions that a chunk reads and writes therefore stay in the
last-level cache while all 316 transfer vectors are applied. A single pass per vector over every
box would instead stream them all from memory 316 times. A strategy's ``apply`` runs one
compiled ``prange`` over the chunks; chunks own disjoint target boxes, so no two threads write
the same row.

Data records (:class:`M2LData`). A strategy's precomputed operators are a frozen dataclass of
arrays only. Its fields are stored as ``m2l_<field>`` next to the plan's own arrays, in a plan
cache entry and in a saved file's plan group; the base class gives that naming, the byte count
and equality, and the strategy adds its rank, its shape rules and its consistency check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ..._jit import jit, prange
from ..moments import NO_SHIFT, shift_rows

__all__ = ["CHUNK_BOXES", "M2LData", "M2LSchedule", "gather_group", "scatter_group", "schedule",
           "shift_arguments", "transfer_index", "transfer_vectors", "v_list_pairs"]

#: Target boxes per chunk. Small chunks keep each thread's rows in its own cache and balance the
#: threads; groups stay large enough (up to this many pairs) for efficient matrix products.
CHUNK_BOXES = 256

#: Prefix of a strategy's arrays among a plan's (cache entries, saved files).
PREFIX = "m2l_"


def transfer_vectors() -> np.ndarray:
    """The 316 M2L offsets (target -> source, in box edges), shape (316, 3), int64."""
    r = np.arange(-3, 4)
    v = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return v[np.abs(v).max(axis=1) > 1]


_VECTORS = transfer_vectors().astype(np.float64)


def _offset_table() -> np.ndarray:
    """(343,) int64: the index into :func:`transfer_vectors` of the offset ``d`` in {-3..3}^3
    at ``(d + 3) @ (49, 7, 1)``, -1 if ``d`` is not a transfer vector."""
    table = np.full(343, -1, np.int64)
    v = transfer_vectors()
    table[(v + 3) @ (49, 7, 1)] = np.arange(len(v))
    return table


def transfer_index(offsets) -> np.ndarray:
    """Index into :func:`transfer_vectors` of each offset (shape (n, 3)); -1 if not one."""
    table = _offset_table()
    o = np.asarray(offsets, dtype=np.int64)
    flat = np.zeros(o.shape[:-1], np.int64)
    inside = np.ones(o.shape[:-1], bool)
    for d, weight in enumerate((49, 7, 1)):  # one component at a time: millions of pairs
        c = o[..., d] + 3
        inside &= (c >= 0) & (c <= 6)
        flat += c * weight
    flat[~inside] = 0
    return np.where(inside, table[flat], -1)


def v_list_pairs(v_indptr, v_indices, anchors, lo, hi):
    """The V-list pairs of the target boxes ``lo:hi`` (whose sources are in the same range),
    in list order, as ``(targets, sources, vectors)`` (each (n_pairs,), int64; boxes relative
    to ``lo``, vectors as indices into :func:`transfer_vectors`).

    Parameters
    ----------
    v_indptr, v_indices : ndarray, int64
        The V lists (CSR over every box).
    anchors : ndarray (n_boxes, 3), int64
        Box anchors in box edges of their level (the offsets of same-level boxes).
    lo, hi : int

    Raises
    ------
    ValueError
        If a pair's offset is not a transfer vector.
    """
    p0, p1 = v_indptr[lo], v_indptr[hi]
    out = np.empty((3, p1 - p0), np.int64)
    _v_list_pairs(v_indptr, v_indices, anchors, lo, hi, _offset_table(), out)
    if (out[2] < 0).any():
        raise ValueError("a V-list pair is not at a transfer vector")
    return out[0], out[1], out[2]


@jit(parallel=True)
def _v_list_pairs(v_indptr, v_indices, anchors, lo, hi, table, out):
    """The rows of :func:`v_list_pairs` (``table``: :func:`_offset_table`), one target box
    per iteration."""
    p_lo = v_indptr[lo]
    for t in prange(lo, hi):
        for p in range(v_indptr[t], v_indptr[t + 1]):
            s = v_indices[p]
            key, inside = 0, True
            for d in range(3):
                c = anchors[s, d] - anchors[t, d] + 3
                inside = inside and 0 <= c <= 6
                key = key * 7 + c
            out[0, p - p_lo], out[1, p - p_lo] = t - lo, s - lo
            out[2, p - p_lo] = table[key] if inside else -1


@dataclass(frozen=True, eq=False)
class M2LData:
    """Base of a strategy's precomputed M2L operators: a frozen record of arrays.

    A subclass declares its array fields and sets the class attributes below; the methods here
    work on any such record.

    Attributes
    ----------
    strategy : str (class attribute)
        The strategy's registry name (:data:`fmmsolve.operators.m2l.STRATEGY_NAMES`).
    RULES : dict (class attribute)
        Field name -> ``(dtype, shape)`` for the checks of a saved file before it is read
        (:mod:`fmmsolve._engine_state`): dtype ``"value"`` is the plan's value dtype,
        ``"complex"`` the complex dtype of its precision; a shape
        entry is an int or a named dimension, where ``"n"`` is the surface's point count,
        ``"vectors"`` is 316, ``"<name>+1"`` is one more than ``<name>`` and any other name is
        bound by its first use.
    """

    strategy: ClassVar[str] = ""
    RULES: ClassVar[dict] = {}

    @property
    def rank(self) -> int:
        """Columns of the compressed expansions M2L works on; 0 for a record without
        operators (:func:`empty`-made, for tree levels without V lists)."""
        raise NotImplementedError

    def inconsistency(self, n: int, dtype) -> str | None:
        """What in this record contradicts a plan of ``n`` surface points and value ``dtype``,
        or None: the check of a cache entry or a saved file before the record is used."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    def arrays(self) -> dict:
        """The fields by their stored names, ``m2l_<field>`` (the arrays themselves)."""
        return {PREFIX + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def stored_rules(cls) -> dict:
        """:attr:`RULES` by the stored names, ``m2l_<field>``."""
        return {PREFIX + name: rule for name, rule in cls.RULES.items()}

    @classmethod
    def from_arrays(cls, arrays: dict):
        """The record from the stored names' arrays in ``arrays`` (others are ignored);
        KeyError naming the first one missing."""
        return cls(**{f.name: arrays[PREFIX + f.name] for f in fields(cls)})

    def map_arrays(self, func):
        """A record of the same strategy with ``func(array)`` for each field."""
        return type(self)(**{f.name: func(getattr(self, f.name)) for f in fields(self)})

    def __eq__(self, other):
        """Same strategy and bit-for-bit equal arrays (of equal dtypes and shapes)."""
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name).dtype == getattr(other, f.name).dtype
                   and np.array_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self))

    __hash__ = None  # mutable arrays inside: no hash, as for an ndarray


@dataclass(frozen=True)
class M2LSchedule:
    """The V-list pairs in the order a strategy's ``apply`` visits them.

    Attributes
    ----------
    targets, sources : ndarray (n_pairs,), int64
        Box indices of each pair.
    group_ptr : ndarray (n_groups + 1,), int64
        Pairs ``group_ptr[g]:group_ptr[g + 1]`` share a chunk and a transfer vector.
    group_vec : ndarray (n_groups,), int64
        Transfer vector of each group (index into :func:`transfer_vectors`).
    chunk_ptr : ndarray (n_chunks + 1,), int64
        Groups ``chunk_ptr[c]:chunk_ptr[c + 1]`` belong to chunk ``c``.
    v_targets : ndarray, int64
        The boxes with a non-empty V list, sorted.
    """

    targets: np.ndarray
    sources: np.ndarray
    group_ptr: np.ndarray
    group_vec: np.ndarray
    chunk_ptr: np.ndarray
    v_targets: np.ndarray


def schedule(targets, sources, vectors, chunk_boxes) -> M2LSchedule:
    """Sort V-list pairs into groups of (chunk of ``chunk_boxes`` targets, transfer vector).

    The groups are those of a stable sort by ``(target // chunk_boxes, vector)`` of the pairs
    in target order: a counting sort per chunk, compiled. Pairs in target order (as
    :func:`v_list_pairs` gives them) are taken as they are, others are first sorted by target
    (stably).

    Parameters
    ----------
    targets, sources, vectors : ndarray (n_pairs,), int64
        One row per V-list pair: target box, source box, transfer vector index.
    chunk_boxes : int
        Consecutive target boxes per chunk.
    """
    targets, sources, vectors = (np.ascontiguousarray(a, dtype=np.int64)
                                 for a in (targets, sources, vectors))
    if np.any(targets[1:] < targets[:-1]):
        order = np.argsort(targets, kind="stable")
        targets, sources, vectors = targets[order], sources[order], vectors[order]
    n_chunks = (int(targets[-1]) // chunk_boxes + 1) if len(targets) else 0
    starts = np.searchsorted(targets, np.arange(n_chunks + 1) * chunk_boxes)
    out = np.empty((2, len(targets)), np.int64)
    groups = np.zeros((n_chunks, 316, 2), np.int64)  # per chunk: vector, first pair
    counts = np.zeros(n_chunks, np.int64)
    _sort_chunks(starts, targets, sources, vectors, out, groups, counts)
    used = np.arange(316) < counts[:, None]  # each chunk's first counts[c] group rows
    first = np.concatenate([[0], np.cumsum(counts)])
    return M2LSchedule(targets=out[0], sources=out[1],
                       group_ptr=np.append(groups[..., 1][used], len(targets)),
                       group_vec=groups[..., 0][used],
                       chunk_ptr=np.append(first[:-1][counts > 0], first[-1]),
                       v_targets=np.flatnonzero(np.bincount(targets)))


@jit(parallel=True)
def _sort_chunks(starts, targets, sources, vectors, out, groups, counts):
    """The compiled sort of :func:`schedule`: per chunk (pairs ``starts[c]:starts[c + 1]``),
    a stable counting sort by vector into ``out`` (rows: target, source), and its groups."""
    for c in prange(starts.shape[0] - 1):
        p0, p1 = starts[c], starts[c + 1]
        ptr = np.zeros(317, np.int64)
        for p in range(p0, p1):
            ptr[vectors[p] + 1] += 1
        n = 0
        for v in range(316):
            if ptr[v + 1] > 0:
                groups[c, n, 0], groups[c, n, 1] = v, p0 + ptr[v]
                n += 1
            ptr[v + 1] += ptr[v]
        counts[c] = n
        for p in range(p0, p1):
            q = p0 + ptr[vectors[p]]
            ptr[vectors[p]] += 1
            out[0, q], out[1, q] = targets[p], sources[p]


def shift_arguments(shift):
    """The last three arguments of a strategy's compiled loop for ``shift``, ``(table, edges)``
    or None: the shift table (:mod:`fmmsolve.operators.moments`), each box's edge (n_boxes,)
    float64 (counted from the pass's first box) and :func:`transfer_vectors` as float64."""
    table, edges = (NO_SHIFT, np.zeros(0)) if shift is None else shift
    return (np.ascontiguousarray(table, np.int64), np.ascontiguousarray(edges, np.float64),
            _VECTORS)


@jit
def gather_group(x, expansions, boxes, a, b, shift, scale, vector):
    """Rows ``x[i m + j] = expansions[boxes[a + i], j]`` for the pairs ``a:b`` of a group:
    the group's source expansions stacked for one matrix product; ``expansions`` is
    (n_boxes, m, k), ``x`` at least ((b - a) m, k).

    Moment columns (:mod:`fmmsolve.operators.moments`, ``shift`` a shift table, empty for most
    kernels) are moved from the source's centre to the target's, ``scale[s] * vector`` behind
    it: ``scale`` (n_boxes,) is the box edge, ``vector`` (3,) the group's transfer vector.
    """
    m, k = expansions.shape[1], expansions.shape[2]
    for i in range(b - a):
        s = boxes[a + i]
        for j in range(m):
            for col in range(k):
                x[i * m + j, col] = expansions[s, j, col]
        if shift.shape[0]:
            h = scale[s]
            shift_rows(x, i * m, shift, h * vector[0], h * vector[1], h * vector[2])


@jit
def scatter_group(out, y, boxes, a, b):
    """``out[boxes[a + i], j] += y[i m + j]`` for the pairs ``a:b`` of a group: the product's
    rows added to the target boxes' expansions, in pair order."""
    m, k = out.shape[1], out.shape[2]
    for i in range(b - a):
        t = boxes[a + i]
        for j in range(m):
            for col in range(k):
                out[t, j, col] += y[i * m + j, col]
