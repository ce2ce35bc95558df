"""Registered kernels against the built-in ones they copy: derived loops versus hand-tuned.

    python benchmarks/bench_user_kernel.py [--n 200000] [--eps 1e-6] [--repeats 5]

A kernel registered with ``fmmsolve.register_kernel`` gets loops derived from its profile
(float64 pair factors, one profile call per pair); the built-in kernels keep hand-tuned,
vectorised loops. This registers copies of Laplace (``homogeneity=1``) and of the modified
Helmholtz kernel at k = 2 (no law: a plan per level), fits both the copy and the built-in at
the same expansion order on the same points, and prints median matvec times (compile
excluded), the near field (P2P) alone, the ratio, and the copy's error against the built-in's
product. Both use the built-in's order for eps (the copy is not calibrated here).
"""

import argparse
import math
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud

from _common import machine, median_time

KAPPA = 2.0


def laplace_copy(r, k):
    c = 1.0 / (4 * math.pi)
    return c / r, -c / (r * r), 2 * c / (r * r * r)


def yukawa_copy(r, k):
    g = math.exp(-KAPPA * r) / (4 * math.pi * r)
    return g, -g * (KAPPA + 1 / r), g * (KAPPA * KAPPA + 2 * KAPPA / r + 2 / (r * r))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    x = point_cloud("uniform", args.n, 0)
    q = np.random.default_rng(1).standard_normal(args.n)
    print(f"{args.n} uniform points, eps {args.eps:g}")
    print(f"{'kernel':>20} {'order':>5} {'fit s':>6} {'matvec s':>8} {'p2p s':>6} "
          f"{'copy/builtin':>12} {'rel. diff':>9}")
    cases = [("laplace", None, "laplace_copy", laplace_copy, {"homogeneity": 1}),
             ("modified_helmholtz", KAPPA, "yukawa_copy", yukawa_copy, {})]
    for builtin, k, name, profile, options in cases:
        fmmsolve.register_kernel(name, profile, **options)
        ops, rows = {}, []
        for kernel, wavenumber in ((builtin, k), (name, None)):
            start = time.perf_counter()
            order = ops[builtin].expansion_order if builtin in ops else None
            op = fmmsolve.FMMOperator(x, kernel=kernel, wavenumber=wavenumber, eps=args.eps,
                                      expansion_order=order, memory=None)
            fit = time.perf_counter() - start
            op @ q  # compile
            p2p = []

            def matvec(op=op, p2p=p2p):
                op @ q
                p2p.append(op.timings["p2p"])

            t = median_time(matvec, args.repeats)
            ops[kernel] = op
            rows.append((kernel, op.expansion_order, fit, t, float(np.median(p2p))))
        diff = np.linalg.norm(ops[name] @ q - ops[builtin] @ q) / np.linalg.norm(ops[builtin] @ q)
        for kernel, order, fit, t, p2p in rows:
            ratio = t / rows[0][3]
            print(f"{kernel:>20} {order:>5} {fit:>6.2f} {t:>8.3f} {p2p:>6.3f} {ratio:>12.2f} "
                  f"{diff if kernel == name else 0.0:>9.1e}")


if __name__ == "__main__":
    main()
