"""Targets away from the sources with a decaying kernel: the narrow far field against the plain
FMM and the direct sum (error and matvec time).

    python benchmarks/bench_far_targets.py [--n 200000] [--m 20000] [--k 1 3 10] [--eps 1e-6]
        [--repeats 3]

Sources are uniform in the unit cube; targets lie on a sphere of radius 3 around it, so every
target leaf is away from the sources. "narrow" is the default FMM (targets away from the
sources take their field from boxes no wider than 1 / k and direct sums); "plain" is the same
engine with ``narrow_far_field=False``, every target reached through the usual expansions.
Times are medians of ``--repeats`` matvecs after one warm-up (compilation excluded); the
direct sum is timed once. Errors are relative L2 over all targets against ``fmmsolve.direct``.
"""

import argparse
import time

import numpy as np

import fmmsolve
from fmmsolve.fmm import FMMEngine
from fmmsolve.testing import fibonacci_sphere, point_cloud, relative_l2_error

from _common import machine, median_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--m", type=int, default=20_000)
    parser.add_argument("--k", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = point_cloud("uniform", args.n, 0)
    y = 0.5 + 3.0 * fibonacci_sphere(args.m)
    q = np.random.default_rng(1).standard_normal((args.n, 1))
    print(f"machine: {machine()}")
    print(f"modified Helmholtz, {args.n:,} sources in the unit cube, {args.m:,} targets on a "
          f"sphere of radius 3, eps {args.eps:g}; matvec medians of {args.repeats}")
    print("| k | away leaves | narrow error | plain error | narrow s | plain s | direct s |")
    print("|---|---|---|---|---|---|---|")
    for k in args.k:
        start = time.perf_counter()
        exact = fmmsolve.direct(x, y, q, kernel="modified_helmholtz", wavenumber=k)
        direct = time.perf_counter() - start
        cells = {}
        for narrow in (True, False):
            engine = FMMEngine(x, y, kernel="modified_helmholtz", wavenumber=k, eps=args.eps,
                               narrow_far_field=narrow)
            error = relative_l2_error(engine.evaluate(q)[0], exact)  # also the warm-up
            cells[narrow] = (error, median_time(lambda: engine.evaluate(q), args.repeats))
            if narrow:
                schedule = engine.schedule
                away = len(schedule.target_leaves) - len(schedule.l2p_leaves)
                leaves = f"{away} of {len(schedule.target_leaves)}"
        print(f"| {k:g} | {leaves} | {cells[True][0]:.1e} | {cells[False][0]:.1e} | "
              f"{cells[True][1]:.3f} | {cells[False][1]:.3f} | {direct:.2f} |", flush=True)


if __name__ == "__main__":
    main()
