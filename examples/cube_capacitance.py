"""
Capacitance of the unit cube
============================

A conducting cube of edge ``a`` held at potential 1 carries the charge ``C = 4 pi c a`` with the
kernel ``1 / (4 pi r)`` (vacuum permittivity 1), where ``c = 0.6606785`` is the cube's
capacitance in units of ``4 pi eps0 a``. No closed form is known; the reference value comes from
the literature (boundary-element and random-walk computations agree on these digits).

The surface charge density ``sigma`` solves the first-kind equation ``(D + K W) sigma = 1`` on
the centres of an ``m x m`` grid of square cells on each face, ``n = 6 m^2`` points with the cell
areas ``(a / m)^2`` as weights. ``IntegralEquationSolver`` builds the system on the FMM (the
diagonal ``D`` is the self-integral of a flat patch of the cell's area), solves it with GMRES
and returns ``sigma``; the charge is ``sum(w * sigma)``. The error falls from 5e-3 at
``m = 8`` to about 1e-4 at ``m = 32`` and then stays there, changing sign: the density is
singular at the edges and corners, and one quadrature point per cell is a poor rule for cells
next to an edge or across it. Going further needs quadrature adapted to those cells; grading
the cells towards the edges alone did not help when we tried it (with exact self-terms of the
rectangular cells, the error stayed above 1e-4). The number of GMRES iterations grows slowly
with ``n``, as for any first-kind equation.

Run ``python examples/cube_capacitance.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run.
"""

import os
import time

import numpy as np

from fmmsolve import IntegralEquationSolver

CELLS = (8, 16, 32) if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else (8, 16, 32, 64, 128)
EDGE = 1.0
REFERENCE = 4 * np.pi * 0.6606785 * EDGE


def cube_surface(m, edge):
    """Centres (6 m^2, 3) of the m x m cells of each face of the cube [0, edge]^3, and areas."""
    c = edge * (np.arange(m) + 0.5) / m
    u, v = (g.ravel() for g in np.meshgrid(c, c, indexing="ij"))
    faces = []
    for axis in range(3):
        for side in (0.0, edge):
            face = np.empty((m * m, 3))
            face[:, axis] = side
            face[:, [i for i in range(3) if i != axis]] = np.stack([u, v], axis=1)
            faces.append(face)
    return np.concatenate(faces), np.full(6 * m * m, (edge / m) ** 2)


def main():
    print(f"capacitance of the cube of edge {EDGE:g}: reference 4 pi x 0.6606785 = "
          f"{REFERENCE:.6f}")
    print(f"{'m':>4} {'n':>7} {'charge':>9} {'charge / reference - 1':>23} {'iterations':>10} "
          f"{'seconds':>8}")
    for m in CELLS:
        points, weights = cube_surface(m, EDGE)
        start = time.perf_counter()
        model = IntegralEquationSolver(eps=1e-6, tol=1e-8).fit(
            points, np.ones(len(points)), sample_weight=weights)
        elapsed = time.perf_counter() - start
        charge = np.sum(weights * model.density_)
        print(f"{m:>4} {len(points):>7} {charge:>9.6f} {charge / REFERENCE - 1:>23.2e} "
              f"{model.n_iter_:>10} {elapsed:>8.2f}")


if __name__ == "__main__":
    main()
