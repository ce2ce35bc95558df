"""
Stokes drag on a translating sphere with GMRES on the FMM
=========================================================

A rigid sphere of radius ``a`` moving at velocity ``U`` through a fluid of viscosity ``mu`` at
low Reynolds number feels Stokes' drag ``F = 6 pi mu a U``. Its surface traction is uniform:
the single-layer density ``f = 3 mu U / (2 a)`` per unit area, spread over the surface, makes
the velocity ``U`` everywhere on it. This script solves that first-kind resistance problem,

    sum_j G(x_i, x_j) f_j w_j + D_i f_i = U    on Fibonacci-lattice points x_i,

with ``fmmsolve.FMMOperator(kernel="stokes")`` inside SciPy's GMRES, equal quadrature weights
``w_j = 4 pi a^2 / n`` and the self-term ``D_i`` of a flat disk of area ``w_i`` (radius
``rho``): ``rho (3 I - n n) / (8 mu)``, the Stokeslet integrated over the disk. The drag
``sum_j f_j w_j`` converges to ``6 pi mu a U`` as the surface is refined, like ``n^-1/2`` (the
point quadrature's rate), and the density to the uniform traction. The single layer of the
normal field is zero on a closed surface (the fluid is incompressible), so the system has a
null vector; GMRES converges on the consistent right-hand side, and the drag does not see it.

Run ``python examples/sphere_drag.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""

import os
import time

import numpy as np
import scipy.sparse.linalg as spla

import fmmsolve
from fmmsolve.testing import fibonacci_sphere

SIZES = (500, 2000) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (
    2000, 8000, 32000, 128000)
MU, RADIUS = 1.3, 0.7
VELOCITY = np.array([0.3, -0.2, 1.0])


def solve(n, eps=1e-6):
    """The traction density (n, 3), the drag (3,), GMRES's iterations and the seconds."""
    points = RADIUS * fibonacci_sphere(n)
    normals = points / RADIUS
    weight = 4 * np.pi * RADIUS ** 2 / n
    rho = np.sqrt(weight / np.pi)
    self_term = rho / (8 * MU) * (3 * np.eye(3) - normals[:, :, None] * normals[:, None, :])
    start = time.perf_counter()
    A = fmmsolve.FMMOperator(points, kernel="stokes", viscosity=MU, eps=eps)

    def matvec(f):
        f = f.reshape(n, 3)
        return A @ (weight * f).ravel() + np.einsum("nab,nb->na", self_term, f).ravel()

    system = spla.LinearOperator(A.shape, matvec=matvec, dtype=np.float64)
    iterations = []
    f, info = spla.gmres(system, np.tile(VELOCITY, n), rtol=1e-8, atol=0.0, restart=50,
                         callback=iterations.append, callback_type="pr_norm")
    if info != 0:
        raise RuntimeError(f"GMRES did not converge at n = {n} (info {info})")
    f = f.reshape(n, 3)
    return f, weight * f.sum(axis=0), len(iterations), time.perf_counter() - start


def main():
    stokes_drag = 6 * np.pi * MU * RADIUS * VELOCITY
    traction = 3 * MU * VELOCITY / (2 * RADIUS)
    print(f"Stokes' drag 6 pi mu a U = {np.array2string(stokes_drag, precision=5)}")
    print(f"{'n':>7} {'|F - 6 pi mu a U| / |6 pi mu a U|':>34} {'density error':>14} "
          f"{'iterations':>10} {'seconds':>8}")
    rows = []
    for n in SIZES:
        f, drag, iterations, seconds = solve(n)
        drag_error = np.linalg.norm(drag - stokes_drag) / np.linalg.norm(stokes_drag)
        density_error = np.linalg.norm(f - traction) / np.linalg.norm(np.tile(traction, (n, 1)))
        rows.append((n, drag_error, density_error, iterations, seconds))
        print(f"{n:>7} {drag_error:>34.2e} {density_error:>14.2e} {iterations:>10} "
              f"{seconds:>8.2f}")
    return rows


if __name__ == "__main__":
    main()
