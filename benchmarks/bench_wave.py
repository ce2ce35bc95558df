"""Wave kernels against Laplace: direct-sum rates, FMM matvec and fit, P2P share, achieved error.

    python benchmarks/bench_wave.py [--sizes 100000] [--eps 1e-6] [--dtype float64]

For each kernel on the same points (uniform in the unit cube): the direct sum's rate in 1e9
pairs per second on ``--direct-n`` points, and the FMM's fit (plan cached, after a first fit),
matvec (median of ``--repeats``), the share of P2P in the matvec, and the relative L2 error of
the potential against ``fmmsolve.direct`` on ``--check`` targets. Ratios are to Laplace in the
same run. Helmholtz is timed at ``|k| w_2 = 1`` and at the top of the supported range (2.5),
with ``w_2`` the width of a level-2 box, and with a lossy ``k``; modified Helmholtz at k w_2 = 1.
"""

import argparse

import numpy as np

import fmmsolve

from _common import machine, median_time

W2 = 0.25  # a level-2 box of the unit cube's root (the tree's root cube is about the unit cube)
CASES = [("laplace", None), ("helmholtz", 1.0 / W2), ("helmholtz", 2.5 / W2),
         ("helmholtz", (1.0 + 0.25j) / W2), ("modified_helmholtz", 1.0 / W2)]


def _label(kernel, k):
    return kernel if k is None else f"{kernel} k w2={k * W2:g}"


def direct_rate(x, kernel, k, dtype, repeats):
    q = np.ones(len(x))
    xs = x.astype(dtype)
    run = lambda: fmmsolve.direct(xs, None, q.astype(dtype), kernel=kernel,  # noqa: E731
                                  wavenumber=k)
    run()
    return len(x) ** 2 / median_time(run, repeats) / 1e9


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
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-6])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct-n", type=int, default=4000)
    parser.add_argument("--check", type=int, default=300, help="targets of the error check")
    args = parser.parse_args()
    print(f"# {machine()}; {args.dtype}")
    rng = np.random.default_rng(0)
    print("\n| kernel | direct Gpairs/s | x Laplace |\n|---|---:|---:|")
    x = rng.random((args.direct_n, 3))
    lap = None
    for kernel, k in CASES:
        rate = direct_rate(x, kernel, k, args.dtype, args.repeats)
        lap = lap or rate
        print(f"| {_label(kernel, k)} | {rate:.3f} | {lap / rate:.1f} |")
    print("\n| N | eps | kernel | order | fit s | matvec s | x Laplace | P2P share | error |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        x = rng.random((n, 3))
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
