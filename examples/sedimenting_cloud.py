"""
A sedimenting cloud of particles: its mean settling velocity
============================================================

``N`` small heavy particles spread uniformly through a ball of radius ``R`` in a viscous fluid
each push on it with their weight ``F``. At low Reynolds number each particle moves with the
velocity that the other particles' point forces (Stokeslets) make at its position, plus its own
Stokes velocity ``F / (6 pi mu a)``, which is the same for every particle and left out here.
The cloud as a whole falls faster than one particle: seen from afar it is a ball of fluid with
a uniform body force, which moves like a drop of the same viscosity (Hadamard and Rybczynski),
at ``U = (6 / 5) N F / (6 pi mu R)``; with each particle's own force left out of its velocity
the expected mean over the particles is ``(N - 1) F / (5 pi mu R)`` (Nitsche and Batchelor,
J. Fluid Mech. 340, 1997, on such clouds). Random placement adds a fluctuation that falls as
the cloud grows.

The script sums the Stokeslets with ``fmmsolve.FMMOperator(kernel="stokes")``, checks a sample
of the velocities against ``fmmsolve.direct``, and compares the mean settling velocity with the
closed form for clouds of growing size.

Run ``python examples/sedimenting_cloud.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""

import os
import time

import numpy as np

import fmmsolve

SIZES = (2000, 20000) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (
    2000, 20000, 200000, 1000000)
MU, RADIUS, WEIGHT = 1e-3, 2e-3, 1e-12  # water (Pa s), a 2 mm cloud, 1 pN per particle
SAMPLE = 500  # velocities checked against the direct sum


def cloud(n, rng):
    """``n`` points uniform in the ball of radius ``RADIUS`` about the origin."""
    direction = rng.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * RADIUS * rng.random((n, 1)) ** (1 / 3)


def settle(n, rng, eps=1e-6):
    """The mean settling speed of a cloud of ``n`` particles, the relative error of a sample
    of velocities against the direct sum, and the seconds of the fit and the product."""
    x = cloud(n, rng)
    forces = np.tile([0.0, 0.0, -WEIGHT], (n, 1))
    start = time.perf_counter()
    A = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=MU, eps=eps)
    u = A.evaluate(forces)
    seconds = time.perf_counter() - start
    sample = rng.choice(n, min(n, SAMPLE), replace=False)
    exact = fmmsolve.direct(x, x[sample], forces, kernel="stokes", viscosity=MU)
    error = np.linalg.norm(u[sample] - exact) / np.linalg.norm(exact)
    return -u[:, 2].mean(), error, seconds


def main():
    rng = np.random.default_rng(2)
    print(f"{'N':>8} {'mean speed (m/s)':>17} {'(N-1) F / (5 pi mu R)':>22} {'deviation':>10} "
          f"{'FMM error':>10} {'seconds':>8}")
    rows = []
    for n in SIZES:
        speed, error, seconds = settle(n, rng)
        closed_form = (n - 1) * WEIGHT / (5 * np.pi * MU * RADIUS)
        deviation = speed / closed_form - 1
        rows.append((n, speed, closed_form, deviation, error))
        print(f"{n:>8} {speed:>17.5e} {closed_form:>22.5e} {deviation:>10.2e} {error:>10.1e} "
              f"{seconds:>8.2f}")
    return rows


if __name__ == "__main__":
    main()
