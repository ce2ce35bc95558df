"""
Capacitance of a sphere with the integral-equation solver
=========================================================

A conducting sphere of radius R held at potential 1 carries the charge 4 pi R (with the kernel
1 / (4 pi r)), and outside it the potential is ``R / |x|``. The single-layer density sigma solves
``(D + K W) sigma = 1`` on Fibonacci-lattice points with equal quadrature weights
4 pi R^2 / n. ``IntegralEquationSolver`` builds that system on the FMM, solves it with GMRES,
and evaluates the field anywhere. The error falls like n^-1/2 with the point quadrature.

Run ``python examples/sphere_capacitance.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""

import os
import time

import numpy as np

from fmmsolve import IntegralEquationSolver
from fmmsolve.testing import fibonacci_sphere

SIZES = (500, 2000) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (2000, 8000, 32000)
RADIUS = 2.0


def sphere(n, radius):
    """Fibonacci-lattice points on a sphere and equal quadrature weights."""
    return radius * fibonacci_sphere(n), np.full(n, 4 * np.pi * radius ** 2 / n)


def main():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((200, 3))
    outside = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(1.2, 10, (200, 1))
    outside *= RADIUS
    print(f"{'n':>7} {'charge / 4 pi R':>16} {'error':>9} {'exterior max error':>19} "
          f"{'iterations':>10} {'residual':>9} {'seconds':>8}")
    for n in SIZES:
        points, weights = sphere(n, RADIUS)
        start = time.perf_counter()
        model = IntegralEquationSolver(eps=1e-6).fit(points, np.ones(n), sample_weight=weights)
        elapsed = time.perf_counter() - start
        ratio = np.sum(weights * model.density_) / (4 * np.pi * RADIUS)
        exact = RADIUS / np.linalg.norm(outside, axis=1)
        exterior = np.max(np.abs(model.predict(outside) / exact - 1))
        print(f"{n:>7} {ratio:>16.6f} {abs(ratio - 1):>9.2e} {exterior:>19.2e} "
              f"{model.n_iter_:>10} {model.residual_norm_:>9.1e} {elapsed:>8.2f}")


if __name__ == "__main__":
    main()
