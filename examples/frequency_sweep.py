"""
A frequency sweep: one surface, thirty wavenumbers
==================================================

An acoustics user solves the same mesh at many frequencies. Here the geometry is fixed (points
on a sphere of diameter D, as the nodes of a boundary-element mesh would be) and the Helmholtz
kernel ``exp(i k r) / (4 pi r)`` changes with k. Every wavenumber is new to the operator: its
fit builds the tree and computes the translation operators of every level at ``k h_l``
(cached on disk afterwards, so a second sweep is cheaper). The table gives, per wavenumber, the
fit and one product's time and the relative L2 error of the product against the direct sum at
sampled targets; the last line the whole sweep's time. The sweep stays where the expansion
order is eps's own (k D up to 10 here: ``|k| w_2 <= 2.5`` with ``w_2 = D / 4``); past it the
order grows with the frequency, up to k D of about 100 (the user guide's "Wave kernels", and
``examples/sphere_scattering_high_frequency.py``).

Run ``python examples/frequency_sweep.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick
run (fewer points and wavenumbers).
"""

import os
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import fibonacci_sphere

SMALL = os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small"
N = 3000 if SMALL else 100_000
KD = np.geomspace(0.5, 10.0, 5 if SMALL else 30)  # k times the diameter
EPS, SAMPLES, RADIUS = 1e-6, 200, 1.0


def main():
    x = RADIUS * fibonacci_sphere(N)
    rng = np.random.default_rng(0)
    q = rng.standard_normal(N) + 1j * rng.standard_normal(N)
    sample = rng.choice(N, SAMPLES, replace=False)
    print(f"{N} points on a sphere of diameter {2 * RADIUS:g}, eps {EPS:g}")
    print(f"{'k D':>7} {'order':>5} {'fit s':>7} {'product s':>10} {'error':>9}")
    rows, start = [], time.perf_counter()
    for kd in KD:
        k = kd / (2 * RADIUS)
        t0 = time.perf_counter()
        A = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=EPS)
        t1 = time.perf_counter()
        u = A @ q
        t2 = time.perf_counter()
        exact = fmmsolve.direct(x, x[sample], q, kernel="helmholtz", wavenumber=k)
        error = np.linalg.norm(u[sample] - exact) / np.linalg.norm(exact)
        rows.append((kd, t1 - t0, t2 - t1, error))
        print(f"{kd:>7.2f} {A.expansion_order:>5} {t1 - t0:>7.2f} {t2 - t1:>10.2f} "
              f"{error:>9.1e}")
    total = time.perf_counter() - start
    print(f"{len(KD)} wavenumbers in {total:.1f} s (error checks included)")
    plot(np.array(rows))


def plot(rows):
    """Fit and product times, and the error, against k D (when matplotlib is installed)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(rows[:, 0], rows[:, 1], "o-", label="fit (new wavenumber)")
    left.plot(rows[:, 0], rows[:, 2], "s-", label="one product")
    left.set(xscale="log", xlabel="k D", ylabel="seconds")
    left.legend()
    right.semilogy(rows[:, 0], rows[:, 3], "o-")
    right.axhline(EPS, color="gray", linestyle="--", label="eps")
    right.set(xscale="log", xlabel="k D", ylabel="relative L2 error")
    right.legend()
    fig.tight_layout()
    plt.show()


if __name__ == "__main__":
    main()
