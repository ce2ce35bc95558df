"""
Screened-Coulomb (Yukawa) energy of a charge cloud
==================================================

A ball of radius R carries the total charge Q spread uniformly; with the modified Helmholtz
kernel G = exp(-kappa r) / (4 pi r), its potential solves -lap(phi) + kappa^2 phi = rho and,
inside the ball, is
``phi(r) = rho / kappa^2 * (1 - (1 + kappa R) exp(-kappa R) sinh(kappa r) / (kappa r))``.
The continuum energy is ``E = 1/2 int rho phi dV``.

N random points with charges Q / N sample the ball. Their pair energy
``E_N = 1/2 sum_{i != j} q_i q_j G(x_i, x_j)`` has expectation ``(1 - 1/N) E`` exactly, so
``E_N / (1 - 1/N)`` converges to E like N^-1/2. The FMM computes every potential in one product
(``targets`` = sources, zero-distance pairs skipped); where N is small enough, the direct sum
checks the FMM's energy too.

Run ``python examples/yukawa_energy.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""

import os
import time

import numpy as np
from scipy.integrate import quad

import fmmsolve

SMALL = os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small"
SIZES = (2000, 8000) if SMALL else (10_000, 100_000, 1_000_000)
DIRECT_UP_TO = 20_000  # the direct sum checks the FMM up to this many points
RADIUS, CHARGE, KAPPA, EPS = 1.0, 1.0, 3.0, 1e-6


def ball(n, radius, rng):
    """n points uniform in the ball: a uniform direction and a radius radius * u^(1/3)."""
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * radius * rng.random((n, 1)) ** (1 / 3)


def continuum_energy(radius, charge, kappa):
    """1/2 int rho phi dV for the uniformly charged ball, by quadrature of the closed-form phi."""
    rho = charge / (4 / 3 * np.pi * radius ** 3)
    tail = (1 + kappa * radius) * np.exp(-kappa * radius)

    def phi(r):
        return rho / kappa ** 2 * (1 - tail * np.sinh(kappa * r) / (kappa * r))

    return 0.5 * rho * quad(lambda r: phi(r) * 4 * np.pi * r * r, 0, radius)[0]


def main():
    rng = np.random.default_rng(0)
    exact = continuum_energy(RADIUS, CHARGE, KAPPA)
    print(f"continuum energy E = {exact:.8f} (R = {RADIUS}, Q = {CHARGE}, kappa = {KAPPA})")
    print(f"{'N':>9} {'E_N / (1 - 1/N)':>16} {'vs E':>9} {'FMM vs direct':>14} "
          f"{'fit s':>7} {'product s':>10}")
    for n in SIZES:
        x = ball(n, RADIUS, rng)
        q = np.full(n, CHARGE / n)
        t0 = time.perf_counter()
        A = fmmsolve.FMMOperator(x, kernel="modified_helmholtz", wavenumber=KAPPA, eps=EPS)
        t1 = time.perf_counter()
        energy = 0.5 * q @ (A @ q)
        t2 = time.perf_counter()
        check = "-"
        if n <= DIRECT_UP_TO:
            direct = 0.5 * q @ fmmsolve.direct(x, None, q, kernel="modified_helmholtz",
                                               wavenumber=KAPPA)
            check = f"{abs(energy - direct) / abs(direct):.1e}"
        estimate = energy / (1 - 1 / n)
        print(f"{n:>9} {estimate:>16.8f} {abs(estimate - exact) / exact:>9.1e} {check:>14} "
              f"{t1 - t0:>7.2f} {t2 - t1:>10.2f}")


if __name__ == "__main__":
    main()
