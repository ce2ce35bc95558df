"""
Free-space Poisson equation by volume quadrature
================================================

The solution of ``-Laplace(u) = f`` in all of space that decays at infinity is the Newtonian
potential ``u(y) = integral G(y, x) f(x) dx`` with ``G = 1 / (4 pi r)``. For the Gaussian
charge density of width ``s`` and unit total charge,

``f(x) = exp(-|x|^2 / (2 s^2)) / (2 pi s^2)^(3/2)``,

the potential has the closed form ``u(y) = erf(|y| / (s sqrt 2)) / (4 pi |y|)``.

The integral is discretised with the midpoint rule on a grid of cells of width ``h`` over the
cube ``[-L, L]^3`` (``L = 6 s``, so the truncated charge is below 1e-8): each cell centre is a
source with the charge ``f(x_j) h^3``. ``FMMOperator`` sums the charges at distinct targets:
points of the integer lattice inside, across and outside the charge cloud. They are vertices of
every grid used (``h`` divides 1), so no target comes closer to a source than ``h sqrt(3) / 2``;
there the midpoint rule stays second-order accurate despite the ``1 / r`` singularity (at a
target close to a cell centre it would not). The error against the closed form falls 4x each
time ``h`` is halved, far above the FMM's ``eps = 1e-8``.

Run ``python examples/poisson_volume.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""

import os
import time

import numpy as np
from scipy.special import erf

import fmmsolve
from fmmsolve.testing import relative_l2_error

CELLS = (12, 24, 48) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (12, 24, 48, 96)
WIDTH = 1.0  # s, the Gaussian's standard deviation
HALF = 6.0 * WIDTH  # L, half the edge of the quadrature cube


def density(x):
    """The Gaussian charge density f at points x of shape (n, 3)."""
    r2 = np.sum(x * x, axis=1)
    return np.exp(-r2 / (2 * WIDTH ** 2)) / (2 * np.pi * WIDTH ** 2) ** 1.5


def exact_potential(y):
    """The closed form erf(r / (s sqrt 2)) / (4 pi r) at points y of shape (n, 3), r > 0."""
    r = np.linalg.norm(y, axis=1)
    return erf(r / (WIDTH * np.sqrt(2))) / (4 * np.pi * r)


def grid(m):
    """Centres (m^3, 3) of the m^3 cells of [-L, L]^3 and the cell volume h^3."""
    h = 2 * HALF / m
    c = -HALF + h * (np.arange(m) + 0.5)
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1), h ** 3


def main():
    # Targets on the integer lattice, a vertex of every grid below (h divides 1): never
    # closer than h sqrt(3) / 2 to a source, where the midpoint rule is second order.
    rng = np.random.default_rng(0)
    targets = rng.integers(-10, 11, (3000, 3)).astype(float)
    targets = np.unique(targets[np.any(targets != 0, axis=1)], axis=0)
    exact = exact_potential(targets)
    print(f"-Laplace(u) = Gaussian of width {WIDTH:g}, cells of [-{HALF:g}, {HALF:g}]^3; "
          f"{len(targets)} targets on the integer lattice of [-10, 10]^3")
    print(f"{'cells':>9} {'h':>7} {'rel. L2 error':>14} {'max error':>10} {'error ratio':>12} "
          f"{'fit s':>6} {'sum s':>6}")
    previous = None
    for m in CELLS:
        sources, volume = grid(m)
        charges = density(sources) * volume
        start = time.perf_counter()
        A = fmmsolve.FMMOperator(sources, targets, eps=1e-8)
        fitted = time.perf_counter()
        u = A @ charges
        summed = time.perf_counter()
        err = relative_l2_error(u, exact)
        worst = np.max(np.abs(u - exact)) / np.max(np.abs(exact))
        ratio = f"{previous / err:.2f}" if previous else "-"
        print(f"{m ** 3:>9} {2 * HALF / m:>7.3f} {err:>14.2e} {worst:>10.2e} {ratio:>12} "
              f"{fitted - start:>6.2f} {summed - fitted:>6.2f}")
        previous = err


if __name__ == "__main__":
    main()
