"""The Stokeslet's FMM, made of one Laplace FMM of four columns per force column.

With Laplace's ``G = 1 / (4 pi r)``, a centre ``c`` and ``y~ = y - c``, the Stokeslet velocity
(viscosity 1) of forces ``f_j`` at ``x_j`` is

    u_i(y) = (Phi_i - y~_k d_i Phi_k + d_i Phi_c) / 2,
    Phi_k = sum_j f_jk G(y - x_j),   Phi_c = sum_j ((x_j - c) . f_j) G(y - x_j),

for any ``c``, and the pressure is ``p = -d_k Phi_k``. So one Laplace FMM of the columns
``(f_x, f_y, f_z, (x - c) . f)`` gives the far field. The centre matters for accuracy only:
taken once for the whole domain, ``(x - c) . f`` and ``y~`` are as large as the domain while
the velocity is made at the scale of a box, and every truncation error is multiplied by their
ratio (measured: 35-106 times on a sphere of 30,000 points). Here every expansion holds its
moment about its own box's centre, and each translation moves it
(:mod:`fmmsolve.operators.moments`): P2M takes ``x - c`` about the source's leaf, M2M, M2L, L2L
and P2L shift the moment column, and each expansion is evaluated about its own box.

Evaluation at a target from a box's expansion (equivalent densities ``sigma`` at surface points
``z``, about the box's centre ``c``): with ``s = sigma_c - (z - c) . sigma_f`` per point,

    u = Stokeslet(sigma_f) + grad(Laplace(s)) / 2,     p = Stokes pressure of sigma_f,

so L2P and M2P are the Stokes kernel's own and Laplace's compiled translations; the velocity
gradient adds the Laplace Hessian of ``s``, the gradient of the Laplace dipoles ``-s e_i``
(:mod:`fmmsolve.kernels.dipole`). The near field is the Stokeslet's own sums (the harmonic
form cancels digits for close pairs), and the pressure's the Laplace gradients of the forces.

Why not the Stokeslet's own KIFMM (three values per surface point)? Measured at 3,000 points it
converges more slowly with the order than Laplace (relative error 1.4e-3, 4.9e-5, 8e-7 at
orders 4, 6, 8, against 2e-4, 2e-6, 4e-8) and each order costs nine times the translation flops
(``docs/methods.md``, "Stokes").
"""

from __future__ import annotations

import numpy as np

from ..kernels import get_kernel, stresslet
from ..operators import dense, moments, surfaces, translations
from . import passes

__all__ = ["evaluate", "source_offsets", "base_kernel", "eps_margin", "EPS_MARGIN"]

#: The Laplace FMM is built for ``eps / EPS_MARGIN``: the velocity combines gradients of its
#: potentials (measured in ``benchmarks/README.md``, "Stokes"). An FMM fit for stresslets
#: (``dipoles=True``) is built for the dipoles' ``eps / 100`` (``accuracy.DIPOLE_MARGIN``)
#: instead, which covers it: measured at 10^5 points, the stresslet's velocity within 0.27 eps
#: (with both margins, 0.01 eps at twice the order's cost; with eps / 10 in all, 1.5 eps).
EPS_MARGIN = 10.0


def eps_margin(dipoles: bool) -> float:
    """The margin the Laplace FMM of a harmonic kernel is built with, on top of the dipoles'
    (see :data:`EPS_MARGIN`)."""
    return 1.0 if dipoles else EPS_MARGIN


def base_kernel(kernel):
    """The kernel whose FMM is fitted for ``kernel`` (:attr:`Kernel.harmonic`), or itself."""
    return get_kernel(kernel.harmonic) if kernel.harmonic else kernel


def source_offsets(schedule):
    """Each source minus the centre of its leaf, (n_sources, 3) float64 in the caller's order:
    the moments' arms, computed once per fit (:class:`~fmmsolve.FMMEngine` keeps them)."""
    tree = schedule.fitted.tree
    offsets = np.empty((tree.sources.shape[1], 3))
    offsets[tree.source_perm] = translations.leaf_offsets(
        tree.sources, tree.src_begin, tree.src_end, tree.leaves, schedule.centres).T
    return offsets


def evaluate(schedule, kernel, offsets, forces, gradient=False, pressure=False, timings=None,
             stresslets=None, normals=None):
    """Velocities (gradients, pressures) of the Stokeslet and the stresslet at the targets, in
    the caller's order, at viscosity 1.

    Parameters
    ----------
    schedule : Schedule
        Of the Laplace FMM fitted for ``kernel`` (with ``dipoles=True`` for stresslets).
    kernel : Kernel
        The Stokes kernel (viscosity 1).
    offsets : ndarray of shape (n_sources, 3), float64
        :func:`source_offsets` of ``schedule``.
    forces : ndarray of shape (n_sources, 3 m), ``value_dtype``, C-contiguous, or None
        Column ``3 c + a`` holds component ``a`` of force column ``c``.
    gradient, pressure : bool
    timings : dict or None
        Receives the seconds of each operator.
    stresslets : ndarray of shape (n_sources, m, 3), ``value_dtype``, or None
        Double-layer strengths (:mod:`fmmsolve.kernels.stresslet`), with ``normals`` (n_sources,
        3); with forces, of the same columns. At viscosity 1 the stresslet's pressure is
        :mod:`~fmmsolve.kernels.stresslet`'s with ``mu = 1``.

    Returns
    -------
    u : ndarray of shape (n_targets, 3 m)
    grad : ndarray of shape (n_targets, 3 m, 3), or None
        ``grad[t, 3 c + a, d] = du_a / dy_d``.
    p : ndarray of shape (n_targets, m), or None
    """
    lap = passes.stopwatch({} if timings is None else timings)
    fitted = schedule.fitted
    vdt, n_t = fitted.value_dtype, fitted.n_targets
    if stresslets is not None and not fitted.dipoles:
        raise ValueError("stresslets: this FMM was fit for forces only: fit it with "
                         "dipoles=True (the double layer needs a higher order to meet eps)")
    n_s = len(offsets)
    m = forces.shape[1] // 3 if forces is not None else stresslets.shape[1]
    # Laplace densities, their moments about each source's leaf centre (the module docstring)
    charges = dipoles = None
    if forces is not None:  # (f_x, f_y, f_z, (x - c) . f) per column
        f = forces.reshape(n_s, m, 3)
        charges = np.empty((n_s, m, 4), vdt)
        charges[:, :, :3] = f
        charges[:, :, 3] = np.einsum("nd,nmd->nm", offsets, f)
        charges = charges.reshape(n_s, 4 * m)
    if stresslets is not None:  # minus the dipoles a_k = s_k n + n_k s and (x - c)_k a_k
        a = (stresslets[:, :, :, None] * normals[:, None, None, :]
             + normals[:, None, :, None] * stresslets[:, :, None, :])  # (n, m, k, 3)
        dipoles = np.empty((n_s, m, 4, 3), vdt)
        dipoles[:, :, :3] = -a
        dipoles[:, :, 3] = -np.einsum("nk,nmkd->nmd", offsets, a)
        dipoles = dipoles.reshape(n_s, 4 * m, 3)
    sources, _ = passes.densities(fitted, charges, dipoles)
    shift = moments.shift_table(m)
    lap("other")
    with dense.single_threaded_blas():
        multipole = passes.upward(schedule, sources, 4 * m, lap, shift)
        local = passes.downward(schedule, sources, multipole, lap, shift=shift)
        u = np.zeros((3 * m, n_t), vdt)
        du = np.zeros((3 * m, 3, n_t if gradient else 0), vdt)
        dphi = np.zeros((3 * m, 3, n_t if pressure else 0), vdt)  # Laplace gradients
        _far_field(schedule, kernel, local, surfaces.DOWN_EQUIV, schedule.l2p_leaves,
                   schedule.l2p, gradient, u, du, dphi)
        lap("l2p")
        _far_field(schedule, kernel, multipole, surfaces.UP_EQUIV, schedule.target_leaves,
                   schedule.w, gradient, u, du, dphi)
        lap("m2p")
        p = np.zeros((m, n_t if pressure else 0), vdt)
        if pressure:  # p = -div (Phi_x, Phi_y, Phi_z) of the far field
            p += -np.trace(dphi.reshape(m, 3, 3, n_t), axis1=1, axis2=2)
        _near_field(schedule, kernel, forces, stresslets, normals, gradient, u, du, p)
        lap("p2p")
    u, du = passes.to_caller_order(fitted, u, du if gradient else None)
    if pressure:
        p = passes.to_caller_order(fitted, np.ascontiguousarray(p), None)[0]
    lap("other")
    return u, du, (p if pressure else None)


def _near_field(schedule, kernel, forces, stresslets, normals, gradient, u, du, p):
    """Add the near field of the forces and the stresslets to the tree-order velocities ``u``
    (3 m, n_t), gradients ``du`` (3 m, 3, .) and pressures ``p`` (m, n_t or 0): the kernels'
    own sums (the Laplace gradients of the forces for their pressure)."""
    fitted = schedule.fitted
    n_t, vdt = fitted.n_targets, fitted.value_dtype
    pressure = p.shape[1] > 0
    if forces is not None:
        stokes, _ = passes.densities(fitted, forces, kernel=kernel)
        passes.add_near_field(schedule, stokes, gradient, u, du)
        if pressure:
            m = forces.shape[1] // 3
            dphi = np.zeros((3 * m, 3, n_t), vdt)
            laplace, _ = passes.densities(fitted, forces)
            passes.add_near_field(schedule, laplace, True, np.zeros((3 * m, n_t), vdt), dphi)
            p -= np.trace(dphi.reshape(m, 3, 3, n_t), axis1=1, axis2=2)
    if stresslets is not None:  # densities: the normal, then each column's strength
        rows = np.concatenate([normals, stresslets.reshape(len(normals), -1)], axis=1)
        rows = np.ascontiguousarray(rows, dtype=vdt)
        near, _ = passes.densities(fitted, rows, kernel=stresslet.NEAR)
        passes.add_near_field(schedule, near, gradient, u, du)
        if pressure:
            near, _ = passes.densities(fitted, rows, kernel=stresslet.NEAR_PRESSURE)
            passes.add_near_field(schedule, near, False, p, np.zeros((len(p), 3, 0), vdt))


def _far_field(schedule, kernel, expansions, radius, leaves, lists, gradient, u, du, dphi):
    """Add the field of ``expansions`` (n_boxes, 4 m, n), equivalent densities on the surfaces
    of ``radius`` about each box's centre, to the tree-order velocities ``u`` (3 m, n_t), their
    gradients ``du`` (3 m, 3, .) and the forces' Laplace gradients ``dphi`` (3 m, 3, .; empty
    when no pressure is asked for), at the targets of ``leaves`` from the boxes of ``lists``
    (see the module docstring)."""
    fitted = schedule.fitted
    tree, vdt, k = fitted.tree, fitted.value_dtype, fitted.wavenumber
    n_boxes, n = expansions.shape[0], expansions.shape[2]
    m = expansions.shape[1] // 4
    sigma = expansions.reshape(n_boxes, m, 4, n)
    # the forces' densities (n_boxes, 3 m, n): also the Stokes layout (m, 3 n), component-major
    force = np.ascontiguousarray(sigma[:, :, :3]).reshape(n_boxes, 3 * m, n)
    # (z - c) . sigma_f = radius h surf . sigma_f, without an (n_boxes, 3, n) array of z
    dot = np.einsum("dj,bmdj->bmj", schedule.surface, sigma[:, :, :3])
    scale = (radius * schedule.half_widths).astype(vdt)
    moment = np.ascontiguousarray(sigma[:, :, 3] - scale[:, None, None] * dot)
    place = (tree.tgt_begin, tree.tgt_end, schedule.centres, schedule.frames,
             schedule.half_widths, schedule.surface, radius)
    tgt = schedule.targets
    translations.for_kernel(kernel).surfaces_to_targets(
        gradient, tgt, leaves, *lists, *place, force.reshape(n_boxes, m, 3 * n), k, u, du)
    laplace = translations.for_kernel(fitted.kernel)
    half_grad = np.zeros((m, 3, u.shape[1]), vdt)
    laplace.surfaces_to_targets(True, tgt, leaves, *lists, *place, moment, k,
                                np.zeros((m, u.shape[1]), vdt), half_grad)
    u += 0.5 * half_grad.reshape(3 * m, -1)
    if dphi.shape[2]:
        laplace.surfaces_to_targets(True, tgt, leaves, *lists, *place, force, k,
                                    np.zeros((3 * m, u.shape[1]), vdt), dphi)
    if gradient:  # + Hessian(Laplace(s)) / 2: minus half the gradient of dipoles s e_i
        dipoles = np.zeros((n_boxes, m, 3, n), vdt)  # one direction i at a time
        hessian = np.zeros((m, 3, u.shape[1]), vdt)
        for i in range(3):
            dipoles[:, :, i - 1] = 0
            dipoles[:, :, i] = moment
            hessian[:] = 0
            translations.for_kernel(fitted.kernel, dipoles=True).surfaces_to_targets(
                True, tgt, leaves, *lists, *place, dipoles.reshape(n_boxes, 3 * m, n), k,
                np.zeros((m, u.shape[1]), vdt), hessian)
            du[i::3] -= 0.5 * hessian
