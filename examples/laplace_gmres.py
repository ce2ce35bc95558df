"""
Interior Dirichlet problem with a double-layer potential and GMRES
==================================================================

Find ``u`` harmonic inside the ellipsoid ``(x/a)^2 + (y/b)^2 + (z/c)^2 < 1`` with ``u = g`` on
its surface. We take ``g`` from a known harmonic function, the potential of a unit point charge
outside, ``u(x) = 1 / (4 pi |x - x0|)``, so the exact solution is known everywhere inside.

The solution is sought as a double-layer potential

``u(x) = integral  n_y . (x - y) / (4 pi |x - y|^3)  mu(y)  dS_y``,

whose interior limit on the surface gives the second-kind equation ``(-1/2 I + K) mu = g``.
Here it is written with ``FMMOperator`` directly, in three steps:

1. **Double layer from gradients.** With ``grad_x G(x, y) = -(x - y) / (4 pi |x - y|^3)``,
   ``u(x) = -sum_k d/dx_k [sum_j G(x, y_j) w_j mu_j n_jk]``: the FMM gradient of three
   density columns ``w mu n`` in one pass, ``A.evaluate(Q, gradient=True)``, and the trace of
   the (targets, 3 columns, 3 directions) result.
2. **Singularity subtraction.** The kernel of ``K`` is singular at ``y = x``, so the
   quadrature of ``K mu`` at a surface point uses ``mu(y) - mu(x)``, which vanishes there, plus
   ``mu(x)`` times Gauss's integral ``integral K(x, y) dS_y = -1/2``. The system becomes
   ``-mu_i + (K_h mu)_i - mu_i (K_h 1)_i = g_i`` with the quadrature ``K_h`` (``K_h 1`` is
   computed once).
3. **GMRES** on that system as a ``scipy.sparse.linalg.LinearOperator`` whose every product is
   one FMM evaluation of a tree fitted once. A second-kind equation needs about the same
   number of iterations at every ``n``.

The surface points are a Fibonacci lattice of the unit sphere mapped onto the ellipsoid; the
quadrature weights are the sphere's equal weights times the area ratio of the map. The table
gives the error of ``u`` at interior points (at most 70% of the way to the surface) against the
exact solution.

Run ``python examples/laplace_gmres.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""

import os
import time

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres

import fmmsolve
from fmmsolve.testing import fibonacci_sphere, relative_l2_error

SIZES = (1000, 4000) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (2000, 8000, 32000)
AXES = np.array([1.0, 0.75, 0.5])  # semi-axes a, b, c
CHARGE = np.array([1.2, 0.9, 0.6])  # x0, outside the ellipsoid


def ellipsoid(n):
    """Surface points (n, 3), outward unit normals (n, 3) and quadrature weights (n,)."""
    sphere = fibonacci_sphere(n)
    normals = sphere / AXES
    stretch = np.linalg.norm(normals, axis=1)  # area of the map's image per unit sphere area
    weights = 4 * np.pi / n * np.prod(AXES) * stretch
    return sphere * AXES, normals / stretch[:, None], weights


def exact(x):
    """The exact solution 1 / (4 pi |x - x0|) at points x of shape (m, 3)."""
    return 1 / (4 * np.pi * np.linalg.norm(x - CHARGE, axis=1))


def double_layer(A, w_normals, mu):
    """``sum_j n_j . (x_i - y_j) / (4 pi r^3) w_j mu_j`` at A's targets, by three FMM columns."""
    _, grad = A.evaluate(w_normals * mu[:, None], gradient=True)  # (targets, 3 columns, 3)
    return -np.einsum("ikk->i", grad)


def main():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((500, 3))
    inside = AXES * d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0, 0.7, (500, 1))
    print(f"interior Dirichlet problem in the ellipsoid with semi-axes {AXES.tolist()}, "
          f"u = 1 / (4 pi |x - x0|), x0 = {CHARGE.tolist()}")
    print(f"{'n':>7} {'iterations':>10} {'residual':>9} {'interior rel. L2 error':>23} "
          f"{'max error':>10} {'fit s':>6} {'solve s':>8}")
    for n in SIZES:
        points, normals, weights = ellipsoid(n)
        w_normals = weights[:, None] * normals
        start = time.perf_counter()
        A = fmmsolve.FMMOperator(points, eps=1e-7)
        fitted = time.perf_counter()
        k_one = double_layer(A, w_normals, np.ones(n))  # K_h 1, about -1/2

        def matvec(mu):
            return -mu + double_layer(A, w_normals, mu) - k_one * mu

        system = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        iterations = []
        mu, info = gmres(system, exact(points), rtol=1e-8, restart=50,
                         callback=iterations.append, callback_type="pr_norm")
        if info:
            raise RuntimeError(f"GMRES did not converge at n = {n} (info {info})")
        residual = np.linalg.norm(system @ mu - exact(points)) / np.linalg.norm(exact(points))
        u = double_layer(fmmsolve.FMMOperator(points, inside, eps=1e-7), w_normals, mu)
        solved = time.perf_counter()
        err = relative_l2_error(u, exact(inside))
        worst = np.max(np.abs(u - exact(inside))) / np.max(np.abs(exact(inside)))
        print(f"{n:>7} {len(iterations):>10} {residual:>9.1e} {err:>23.2e} {worst:>10.2e} "
              f"{fitted - start:>6.2f} {solved - fitted:>8.2f}")


if __name__ == "__main__":
    main()
