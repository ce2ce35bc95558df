"""
Your own Green's function: screened electrostatics in SI units
==============================================================

fmmsolve expands radial Green's functions of constant-coefficient second-order elliptic PDEs.
A user writes the profile g(r) with its first two derivatives, as plain Python that Numba
compiles, and registers it; every sum the FMM needs is derived from it, and the expansion order
for an eps is calibrated for the new kernel at its first fit.

Ions in water at physiological salt screen each other: the Debye-Hueckel potential of a unit
charge is ``G(r) = exp(-r / lambda_D) / (4 pi eps_0 eps_r r)``, with the Debye length
``lambda_D`` about 0.8 nm and ``eps_r`` about 78. The script puts charged points in a box a
few nanometres wide, in metres, fits an FMM with that kernel, checks the product against the
direct sum, and checks the kernel against the built-in modified Helmholtz kernel with
``k = 1 / lambda_D`` divided by ``eps_0 eps_r``.

Run ``python examples/user_kernel.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""

import math
import os
import time

import numpy as np

import fmmsolve

SMALL = os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small"
N = 5000 if SMALL else 200_000
DIRECT_CHECK = 2000  # targets of the direct-sum check
EPS_0, EPS_R, DEBYE = 8.8541878128e-12, 78.4, 0.79e-9  # F/m, water, m (0.15 mol/l)
E_CHARGE = 1.602176634e-19  # C
EPS = 1e-6


def debye_hueckel(r, k):
    """g(r), g'(r), g''(r) of exp(-r / DEBYE) / (4 pi EPS_0 EPS_R r); ``k`` is unused (the
    kernel takes no wavenumber: its constants are part of its definition)."""
    g = math.exp(-r / DEBYE) / (4 * math.pi * EPS_0 * EPS_R * r)
    a = 1 / DEBYE + 1 / r
    return g, -a * g, (a * a + 1 / (r * r)) * g


kernel = fmmsolve.register_kernel("debye_hueckel", debye_hueckel, decay=1 / DEBYE)
print(f"registered {kernel.name!r} (digest {kernel.digest[:16]})")

rng = np.random.default_rng(0)
side = 20e-9 * (N / 5000) ** (1 / 3)  # about one ion per 1.6 nm^3 whatever N
points = rng.uniform(0.0, side, (N, 3))
charges = E_CHARGE * rng.choice([-1.0, 1.0], N)

start = time.perf_counter()
op = fmmsolve.FMMOperator(points, kernel="debye_hueckel", eps=EPS)
fitted = time.perf_counter()
potential = op @ charges  # volts
done = time.perf_counter()
print(f"{N} ions in a {side * 1e9:.0f} nm box: fit {fitted - start:.1f} s (calibrated "
      f"expansion order {op.expansion_order} for eps {EPS:g}), product {done - fitted:.2f} s")

check = rng.choice(N, DIRECT_CHECK, replace=False)
exact = fmmsolve.direct(points, points[check], charges, kernel="debye_hueckel")
error = np.linalg.norm(potential[check] - exact) / np.linalg.norm(exact)
print(f"relative L2 error against the direct sum at {DIRECT_CHECK} ions: {error:.2e} "
      f"(mean |potential| {np.abs(exact).mean() * 1e3:.1f} mV)")
assert error <= EPS

# The kernel is the built-in Yukawa kernel exp(-k r) / (4 pi r), k = 1 / DEBYE, over eps_0 eps_r.
few = slice(0, 500)
builtin = fmmsolve.direct(points[few], None, charges[few], kernel="modified_helmholtz",
                          wavenumber=1 / DEBYE) / (EPS_0 * EPS_R)
ours = fmmsolve.direct(points[few], None, charges[few], kernel="debye_hueckel")
gap = np.linalg.norm(ours - builtin) / np.linalg.norm(builtin)
print(f"against the built-in modified Helmholtz kernel: {gap:.1e}")
assert gap <= 1e-12
