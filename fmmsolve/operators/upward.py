"""M2M up the tree, and the exact monopole of every expansion.

Why the monopole is kept exact: the check-to-equivalent solve of P2M and M2M is accurate to its
truncation relative to the size of the equivalent density. Sources whose far field has no
monopole (dipoles, or charges that cancel) still need a density of about ``|d| / h`` on the
surface of a box of half-width h, and the solve leaves a net charge of about ``tol |d| / h`` in
it. That charge's ``1 / R`` field outgrows the dipoles' ``1 / R^2`` by ``R / h``, so targets far
from a tiny box (its W-list targets, and everything its ancestors' expansions reach) would see an
error that grows without bound as the box shrinks: 1,000 eps from a cluster of width 1e-6.

The monopole (l = 0) term of a box's far field is a linear functional of the sources, known
exactly: ``sum_j q_j w(|y_j - c|) + d_j . grad w(|y_j - c|)`` with the kernel's
``monopole_weight`` w (the total charge for Laplace), and of an equivalent density ``sigma`` on
points ``z_i`` likewise, ``u . sigma`` with ``u_i = w(|z_i - c|)``. After P2M, and after the M2M
of each level, every expansion gets the multiple of a unit charge's equivalent density (at the
box centre) that sets its functional to the value of what it represents. The rest of the
density's error is relative to its size, as before. Only boxes with ``|k| h <= MAX_KH`` are
corrected: above it a wave kernel's field has no ``R / h`` gain to fear.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from . import dense, moments
from .plan import reflection
from .surfaces import UP_CHECK, UP_EQUIV
from .translations import leaf_offsets

__all__ = ["Upward", "octant_groups", "MAX_KH"]

#: Levels whose boxes have ``|k| h`` above this are not corrected (see the module docstring).
MAX_KH = 1.0


def octant_groups(tree, boxes, op, order, parities):
    """Split ``boxes`` (one level) by octant: a list of (boxes, their parents, ``op[0].T``
    (C-contiguous, one copy shared by the octants), the octant's
    :func:`~fmmsolve.operators.plan.reflection`), for octant 0's M2M or L2L ``op`` (1, n, n) of
    an order-``order`` plan of a kernel with these ``parities``. Products take ``op_t.T``:
    :func:`~fmmsolve.operators.dense.add_products` then multiplies without transposing again
    (a copy of 38 MB at order 17, which each product made for itself)."""
    octant = tree.keys[boxes] & 7
    op_t = np.ascontiguousarray(op[0].T)
    return [(boxes[octant == c], tree.parent[boxes[octant == c]], op_t,
             reflection(order, parities, c))
            for c in range(8) if np.any(octant == c)]


# Both loops are serial: their work is O(n_sources) and O(n_boxes n), less than a parallel
# region costs to start on a loaded machine (several ms each).
@jit
def _leaf_sums(q, rows, weights, leaves, src_begin, src_end, n_sources, out):
    """``out[i, c] += sum_j sum_a q[c rows + a, j] weights[j, a]`` over the sources j of leaf
    ``leaves[i]``, with ``q`` in the leaf-block layout of ``rows`` rows per column
    (:mod:`fmmsolve.operators.translations`): 1 for charges, 3 for dipoles."""
    per_point = q.shape[0] // n_sources
    for i in range(leaves.shape[0]):
        b = leaves[i]
        s0, s1 = src_begin[b], src_end[b]
        block = q[per_point * s0:per_point * s1].reshape((per_point, s1 - s0))
        for c in range(out.shape[1]):
            for a in range(rows):
                for j in range(s1 - s0):
                    out[i, c] += block[c * rows + a, j] * weights[s0 + j, a]


@jit
def _set_monopoles(multipole, boxes, levels, target, u, unit):
    """``multipole[boxes[i], c] += (target[i, c] - u[l] . multipole[boxes[i], c]) unit[l]``
    with ``l = levels[i]``, in the precision of ``u`` (float64 or complex128)."""
    for i in range(boxes.shape[0]):
        b, level = boxes[i], levels[i]
        for c in range(multipole.shape[1]):
            error = target[i, c]
            for j in range(multipole.shape[2]):
                error -= multipole[b, c, j] * u[level, j]
            for j in range(multipole.shape[2]):
                multipole[b, c, j] += error * unit[level, j]


class Upward:
    """The exact monopoles of a fitted tree, and M2M with them.

    Parameters
    ----------
    kernel : Kernel
    wavenumber : scalar or None
    tree : Octree
    plans : list of Plan
        The plan of each level.
    src_leaves : ndarray of int64
        The leaves with sources, in the order of P2M's rows.

    Attributes
    ----------
    dtype : numpy.dtype
        float64, or complex128 for a complex kernel: the precision of every correction.
    """

    def __init__(self, kernel, wavenumber, tree, plans, src_leaves):
        self.dtype = np.dtype(np.complex128 if kernel.is_complex else np.float64)
        self._tree, self._src_leaves = tree, src_leaves
        n_levels, n = tree.depth + 1, plans[0].n_surface
        half_widths = tree.half_width / 2.0 ** np.arange(n_levels)
        weight = kernel.monopole_weight
        k = 0.0 if wavenumber is None else abs(complex(wavenumber))
        self._on = np.array([weight is not None and k * h <= MAX_KH for h in half_widths])
        centres = tree.box_centers()

        # Per level: u (the functional on the level's upward equivalent surface) and the
        # density of a unit charge at the centre, scaled so that u . density = 1.
        self._u = np.zeros((n_levels, n), self.dtype)
        self._unit = np.zeros((n_levels, n), self.dtype)
        for level in np.flatnonzero(self._on):
            plan, h = plans[level], half_widths[level]
            surface = plan.surface
            u = weight(UP_EQUIV * h * np.linalg.norm(surface, axis=1), wavenumber)[0]
            check = kernel.matrix(UP_CHECK * h * surface, np.zeros((1, 3)), wavenumber)[:, 0]
            a, b = (np.asarray(x, self.dtype) for x in (plan.uc2e_a, plan.uc2e_b))
            unit = a @ (b @ check.astype(self.dtype))
            self._u[level] = u
            self._unit[level] = unit / (u @ unit)

        # Per source (tree order): its weight as a charge, and as the three components of a
        # dipole, about the centre of its leaf.
        offsets = leaf_offsets(tree.sources, tree.src_begin, tree.src_end, tree.leaves,
                               centres).T  # (n, 3)
        if weight is None:
            w = dw = np.zeros(len(offsets))
        else:
            w, dw = weight(np.linalg.norm(offsets, axis=1), wavenumber)
        self._charge_weights = np.ascontiguousarray(np.asarray(w, self.dtype)[:, None])
        self._dipole_weights = None
        if np.any(dw):  # else every dipole weight is 0 (as for Laplace): skip the product
            dipole = np.asarray(dw, self.dtype)[:, None] * offsets
            self._dipole_weights = np.ascontiguousarray(dipole) if np.any(dipole) else None

        # M2M, deepest level first: (boxes of the level above with sources, groups of
        # (children, parents, octant 0's m2m matrix transposed and the octant's reflection, u
        # of the children about their parent or None, the children's centre minus their
        # parent's)).
        has_src = tree.src_end > tree.src_begin
        self._m2m = []
        for level in range(tree.depth, 0, -1):
            boxes = np.arange(tree.level_ptr[level], tree.level_ptr[level + 1])
            boxes = boxes[has_src[boxes]]
            if not len(boxes):
                continue
            groups = []
            plan = plans[level - 1]
            for children, parents, op_t, reflect in octant_groups(
                    tree, boxes, plan.m2m, plan.expansion_order, kernel.parities):
                v = None
                offset = centres[children[0]] - centres[parents[0]]
                if self._on[level - 1]:
                    z = offset + UP_EQUIV * half_widths[level] * plans[level].surface
                    v = np.asarray(weight(np.linalg.norm(z, axis=1), wavenumber)[0], self.dtype)
                groups.append((children, parents, op_t, reflect, v, offset))
            self._m2m.append((level - 1, np.unique(tree.parent[boxes]), groups))

    def leaf_monopoles(self, sources, m):
        """The exact monopole of each source leaf's sources.

        Parameters
        ----------
        sources : list of (compiled translations, densities)
            The density passes of :func:`fmmsolve.engine.passes.densities` (charges, dipoles).
        m : int
            Columns.

        Returns
        -------
        ndarray of shape (len(src_leaves), m), :attr:`dtype`
        """
        tree = self._tree
        out = np.zeros((len(self._src_leaves), m), self.dtype)
        if not self._on.any():  # nothing to correct (and no weights: a kernel of components)
            return out
        n_sources = tree.sources.shape[1]
        for _, q in sources:
            rows = q.shape[0] // (n_sources * m)
            weights = self._charge_weights if rows == 1 else self._dipole_weights
            if weights is not None:
                _leaf_sums(q, rows, weights, self._src_leaves, tree.src_begin, tree.src_end,
                           n_sources, out)
        return out

    def fix(self, multipole, boxes, target):
        """Set the monopole of ``multipole[boxes]`` (nb, m, n) to ``target`` (nb, m) in place,
        by adding multiples of the unit charge's density of each box's level."""
        levels = self._tree.levels[boxes]
        on = self._on[levels]
        if not on.any():
            return
        _set_monopoles(multipole, boxes[on], levels[on], np.ascontiguousarray(target[on]),
                       self._u, self._unit)

    def m2m(self, multipole, shift=None):
        """M2M up the levels in place on the (n_boxes, m, n) expansions, each level's parents
        corrected before they are translated in turn. ``shift``: a shift table
        (:mod:`fmmsolve.operators.moments`) of moment columns, moved to each parent's centre
        (the children's are moved and moved back around their product)."""
        target = np.zeros((self._tree.n_boxes, multipole.shape[1]), self.dtype)
        for level, parents, groups in self._m2m:
            for children, group_parents, op_t, reflect, v, offset in groups:
                if shift is not None:
                    moments.shift_boxes(multipole, children, offset, shift)
                if v is not None:
                    target[group_parents] += multipole[children] @ v
                # children and parents are on different levels: no row is read and written
                dense.add_products(multipole, group_parents, multipole, children, op_t.T,
                                   reflect=reflect)
                if shift is not None:
                    moments.shift_boxes(multipole, children, -offset, shift)
            if self._on[level]:
                self.fix(multipole, parents, target[parents])
