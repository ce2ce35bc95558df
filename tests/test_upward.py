"""The upward pass keeps every expansion's monopole exact (fmmsolve/operators/upward.py).

Oracles: the kernels' monopole weights against the spherical mean of the kernel (the l = 0 term
of the addition theorem, by Gauss-Legendre quadrature), and every box's expansion against the
weighted sum over the box's own sources, computed from scratch for each box.
"""

import numpy as np
import pytest

from fmmsolve.engine import passes
from fmmsolve.fmm import FMMEngine
from fmmsolve.kernels import get_kernel
from fmmsolve.operators import surfaces
from fmmsolve.testing import point_cloud

KERNELS = [("laplace", None), ("helmholtz", 1.5), ("helmholtz", 1.0 + 0.5j),
           ("modified_helmholtz", 2.0)]
# The wave kernels need a plan per level: a shallow tree, and k small enough for its levels to
# tell the corrected expansions from the uncorrected ones (see the test).
TREES = {"laplace": ("clusters", 600, 5), "helmholtz": ("uniform", 800, 3),
         "modified_helmholtz": ("uniform", 800, 3)}


@pytest.mark.parametrize("name, k", KERNELS)
def test_monopole_weight_is_the_spherical_mean_of_the_kernel(name, k):
    """For |y| = r < R, the mean of G(x, y) over |x| = R is w(r) G(R, 0): the l = 0 term of the
    addition theorem. It depends only on the angle between x and y, so a 1-D Gauss-Legendre
    rule over its cosine is exact to rounding. dw = w'(r) / r is checked by central
    differences."""
    kernel = get_kernel(name)
    t, weights = np.polynomial.legendre.leggauss(80)
    radius = 1.0
    r = np.array([1e-9, 1e-3, 0.1, 0.3, 0.7])
    w, dw = kernel.monopole_weight(r, k)
    for ri, wi in zip(r, w):
        x = np.column_stack([radius * np.sqrt(1 - t * t), np.zeros_like(t), radius * t])
        g = kernel.matrix(x, np.array([[0.0, 0.0, ri]]), k)[:, 0]
        g0 = kernel.matrix(np.array([[0.0, 0.0, radius]]), np.zeros((1, 3)), k)[0, 0]
        assert abs(weights @ g / 2 - wi * g0) <= 1e-13 * abs(g0)
    step = 1e-5
    r = r[2:]
    numeric = (kernel.monopole_weight(r + step, k)[0]
               - kernel.monopole_weight(r - step, k)[0]) / (2 * step)
    np.testing.assert_allclose(dw[2:] * r, numeric, rtol=1e-8, atol=1e-12)


def _exact_monopoles(engine, charges, dipoles):
    """The monopole about each box's centre of the box's own sources, from scratch: (n_boxes,)."""
    tree, kernel, k = engine.tree, engine.kernel, engine.wavenumber
    centres = tree.box_centers()
    src = tree.sources.T  # tree order
    q = charges[tree.source_perm] if charges is not None else None
    d = dipoles[tree.source_perm] if dipoles is not None else None
    out = np.zeros(tree.n_boxes, complex)
    for b in range(tree.n_boxes):
        s0, s1 = tree.src_begin[b], tree.src_end[b]
        offsets = src[s0:s1] - centres[b]
        w, dw = kernel.monopole_weight(np.linalg.norm(offsets, axis=1), k)
        if q is not None:
            out[b] += q[s0:s1] @ w
        if d is not None:
            out[b] += np.sum(d[s0:s1] * offsets * dw[:, None])
    return out


@pytest.mark.parametrize("name, k", [("laplace", None), ("helmholtz", 0.1),
                                     ("helmholtz", 0.1 + 0.05j), ("modified_helmholtz", 0.2)])
@pytest.mark.parametrize("density", ["charges", "dipoles"])
def test_every_expansion_carries_its_sources_monopole(name, k, density, rng):
    """u . sigma_b, the monopole of box b's equivalent density (u_i = w(|z_i - c_b|) on its
    upward equivalent surface), equals the exact monopole of the sources in b, for every box with
    sources: leaves (P2M) and internal boxes (M2M), relative to the sources' size (dipoles over the
    box's half-width): to rounding at leaves and for Laplace. A wave kernel's M2M takes a parent's
    monopole from its children's densities, whose dipole moments are right to the solve's
    truncation only; it reaches the parent's monopole with a factor of about (k h)^2, which is what
    the bound allows (measured: 2.4e-5 (k h)^2 at most). Without the correction the error is the
    truncation itself (about 1e-7) at every level, far above that bound in the deep levels."""
    distribution, n, depth = TREES[name]
    src = point_cloud(distribution, n, rng)
    engine = FMMEngine(src, kernel=name, wavenumber=k, eps=1e-3, leaf_size=8,
                       dipoles=density == "dipoles")
    tree = engine.tree
    assert tree.depth >= depth
    charges = dipoles = None
    if density == "charges":
        charges = rng.standard_normal(len(src))
        sources, _ = passes.densities(engine.fitted, charges[:, None])
    else:
        dipoles = rng.standard_normal((len(src), 3))
        sources, _ = passes.densities(engine.fitted, None, dipoles[:, None, :])
    multipole = passes.upward(engine.schedule, sources, 1)[:, 0, :]
    exact = _exact_monopoles(engine, charges, dipoles)
    half_widths = tree.box_half_widths()
    size = np.abs(charges) if charges is not None else np.linalg.norm(dipoles, axis=1)
    leaves = set(tree.leaves.tolist())
    checked = 0
    for b in np.flatnonzero(tree.src_end > tree.src_begin):
        h = half_widths[b]
        if abs(k or 0) * h > 1.0:  # wave boxes above |k| h = 1 are not corrected
            continue
        z = surfaces.UP_EQUIV * h * engine.plans[tree.levels[b]].surface
        u = engine.kernel.monopole_weight(np.linalg.norm(z, axis=1), k)[0]
        scale = size[tree.source_perm][tree.src_begin[b]:tree.src_end[b]].sum()
        if density == "dipoles":
            scale /= h
        leaf = b in leaves
        # rounding: at a leaf, of one sum; above, accumulated over the levels (1.1e-12 at the
        # root of the Laplace dipole tree with NumPy 2.4 / SciPy 1.17's BLAS)
        allowed = 1e-12 if leaf else 1e-11 + 1e-4 * (abs(k or 0) * h) ** 2
        assert abs(multipole[b] @ u - exact[b]) <= allowed * scale, (b, leaf)
        checked += 1
    assert checked > 8
