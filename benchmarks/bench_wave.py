"""Wave kernels against Laplace: direct-sum rates, FMM matvec and fit, P2P share, achieved error.

    python benchmarks/bench_wave.py [--sizes 100000] [--eps 1e-6] [--dtype float64] [--dipoles]
        [--distribution cube|sphere]

For each kernel on the same points (uniform in the unit cube, or on the sphere inscribed in
it): the direct sum's rate in 1e9
pairs per second on ``--direct-n`` points (with ``--dipoles``, of dipole densities too; the
kernels are timed in turn in each of ``--repeats`` rounds, so that a slower spell of a shared
machine falls on all of them), and the FMM's fit (plan cached, after a first fit),
matvec (median of ``--repeats``), the share of P2P in the matvec, and the relative L2 error of
the potential against ``fmmsolve.direct`` on ``--check`` targets. Ratios are to Laplace in the
same run. Helmholtz is timed at ``|k| w_2 = 1`` and at the top of the supported range (2.5),
with ``w_2`` the width of a level-2 box, and with a lossy ``k``; modified Helmholtz at k w_2 = 1.
"""

import argparse
import functools
import statistics
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import fibonacci_sphere

from _common import machine, median_time

W2 = 0.25  # a level-2 box of the unit cube's root (the tree's root cube is about the unit cube)
CASES = [("laplace", None), ("helmholtz", 1.0 / W2), ("helmholtz", 2.5 / W2),
         ("helmholtz", (1.0 + 0.25j) / W2), ("modified_helmholtz", 1.0 / W2)]


def _label(kernel, k):
    return kernel if k is None else f"{kernel} k w2={k * W2:g}"


def direct_rates(x, dtype, repeats, dipoles):
    """Direct-sum rates in 1e9 pairs/s per case of CASES (charges, then dipoles if asked): the
    median of ``repeats`` rounds, each timing every case once, after one call to compile."""
    xs = x.astype(dtype)
    densities = [dict(charges=np.ones(len(x), dtype))]
    if dipoles:
        densities.append(dict(dipoles=np.ones((len(x), 3), dtype)))
    runs = [functools.partial(fmmsolve.direct, xs, None, kernel=kernel, wavenumber=k, **d)
            for d in densities for kernel, k in CASES]
    for run in runs:
        run()
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, t in zip(runs, times):
            start = time.perf_counter()
            run()
            t.append(time.perf_counter() - start)
    rates = [len(x) ** 2 / statistics.median(t) / 1e9 for t in times]
    return [rates[i:i + len(CASES)] for i in range(0, len(rates), len(CASES))]


def fmm_row(x, kernel, k, eps, dtype, repeats, check):
    xs = x.astype(dtype)
    options = dict(kernel=kernel, wavenumber=k, eps=eps)
    fmmsolve.FMMOperator(xs, **options)  # computes and caches the plans, compiles
    fit = median_time(lambda: fmmsolve.FMMOperator(xs, **options), repeats)
    A = fmmsolve.FMMOperator(xs, **options)
    q = np.random.default_rng(1).standard_normal(len(x)).astype(dtype)
    pot = A @ q
    shares = []

    def product():
        A @ q
        shares.append(A.timings["p2p"] / sum(A.timings.values()))

    matvec = median_time(product, repeats)
    idx = np.random.default_rng(2).choice(len(x), check, replace=False)
    exact = fmmsolve.direct(x, x[idx], q.astype(np.float64), kernel=kernel, wavenumber=k)
    error = np.linalg.norm(pot[idx] - exact) / np.linalg.norm(exact)
    return fit, matvec, float(np.median(shares)), error, A.expansion_order


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000],
                        help="FMM sizes; 0: the direct-sum table only")
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-6])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct-n", type=int, default=4000)
    parser.add_argument("--check", type=int, default=300, help="targets of the error check")
    parser.add_argument("--distribution", default="cube", choices=["cube", "sphere"],
                        help="the FMM's points (the direct sums are always in the cube)")
    parser.add_argument("--dipoles", action="store_true",
                        help="direct-sum rates of dipole densities too")
    args = parser.parse_args()
    print(f"# {machine()}; {args.dtype}; FMM points: {args.distribution}")
    rng = np.random.default_rng(0)
    kinds = ["charges", "dipoles"] if args.dipoles else ["charges"]
    print("\n| kernel | " + " | ".join(f"direct Gpairs/s, {d} | x Laplace" for d in kinds)
          + " |\n|---|" + "---:|---:|" * len(kinds))
    rates = direct_rates(rng.random((args.direct_n, 3)), args.dtype, args.repeats,
                         args.dipoles)
    for c, (kernel, k) in enumerate(CASES):
        print(f"| {_label(kernel, k)} | " + " | ".join(
            f"{r[c]:.3f} | {r[0] / r[c]:.1f}" for r in rates) + " |")
    if args.sizes == [0]:
        return
    print("\n| N | eps | kernel | order | fit s | matvec s | x Laplace | P2P share | error |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        # the sphere inscribed in the unit cube: the same root cube, so the same k w_2
        x = rng.random((n, 3)) if args.distribution == "cube" else 0.5 + 0.5 * fibonacci_sphere(n)
        for eps in args.eps:
            lap = None
            for kernel, k in CASES:
                fit, matvec, share, error, order = fmm_row(x, kernel, k, eps, args.dtype,
                                                           args.repeats, args.check)
                lap = lap or matvec
                print(f"| {n} | {eps:g} | {_label(kernel, k)} | {order} | {fit:.2f} | "
                      f"{matvec:.3f} | {matvec / lap:.1f} | {share:.0%} | {error:.1e} |",
                      flush=True)


if __name__ == "__main__":
    main()
