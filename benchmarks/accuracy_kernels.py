"""Accuracy table of issue 7: kernel x k x eps x density type, relative L2 error of the
potential and of its gradient against ``fmmsolve.direct``.

Sources are uniform in the unit cube. Targets are either the sources themselves ("self", the
near field dominates) or a sphere of radius 3 around the cube ("far": every interaction goes
through the expansions, and for a decaying kernel through boxes no wider than 1 / d or direct
sums; there the Helmholtz wavenumbers are divided by 5 to stay inside the low-frequency bound
of the larger root cube). Charges are evaluated on operators fit for them;
dipoles on operators fit with ``dipoles=True`` (built for eps / 100: order 15 at eps 1e-9).

    python benchmarks/accuracy_kernels.py [--n 3000] [--eps 1e-3 1e-6 1e-9] [--leaf-size 100]
        [--targets self far] [--densities charges dipoles] [--cases 0 1 ...]

Small leaves keep the tree at depth 2 or more at the highest orders (order 11 at eps 1e-9,
whose default leaf size is 602; order 15 for dipoles, 1178), so that the far field is really
exercised.
"""

import argparse

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

CASES = [("laplace", None), ("helmholtz", 1.0), ("helmholtz", 5 + 1j), ("helmholtz", 10.0),
         ("modified_helmholtz", 1.0), ("modified_helmholtz", 10.0)]


def shell(n, seed):
    d = np.random.default_rng(seed).standard_normal((n, 3))
    return 0.5 + 3.0 * d / np.linalg.norm(d, axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-6, 1e-9])
    parser.add_argument("--targets", nargs="+", default=["self", "far"])
    parser.add_argument("--leaf-size", type=int, default=100)
    parser.add_argument("--densities", nargs="+", default=["charges", "dipoles"])
    parser.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))),
                        help="indices into CASES (default: all)")
    args = parser.parse_args()
    src = point_cloud("uniform", args.n, 0)
    rng = np.random.default_rng(1)
    print(f"N = {args.n} uniform sources, leaf size {args.leaf_size}; relative L2 error of "
          f"potential / gradient")
    print("| kernel | k | targets | density | " + " | ".join(f"eps {e:g}" for e in args.eps)
          + " | depth (last) |")
    print("|---|---|---|---|" + "---|" * len(args.eps) + "---|")
    for kernel, k in (CASES[i] for i in args.cases):
        for where in args.targets:
            tgt = None if where == "self" else shell(args.n // 2, 2)
            kk = k if (where == "self" or k is None or kernel != "helmholtz") else k / 5
            n = len(src)
            complex_ = kernel == "helmholtz"
            q = rng.standard_normal(n) + (1j * rng.standard_normal(n) if complex_ else 0)
            d = rng.standard_normal((n, 3)) + (1j * rng.standard_normal((n, 3)) if complex_ else 0)
            for density in args.densities:
                args_ = dict(dipoles=d) if density == "dipoles" else dict(q=q)
                exact = fmmsolve.direct(src, tgt, args_.get("q"), dipoles=args_.get("dipoles"),
                                        kernel=kernel, wavenumber=kk, gradient=True)
                cells = []
                for eps in args.eps:
                    A = fmmsolve.FMMOperator(src, tgt, kernel=kernel, wavenumber=kk, eps=eps,
                                             dipoles=density == "dipoles",
                                             leaf_size=args.leaf_size)
                    pot, grad = A.evaluate(gradient=True, **args_)
                    cells.append(f"{relative_l2_error(pot, exact[0]):.1e} / "
                                 f"{relative_l2_error(grad, exact[1]):.1e}")
                print(f"| {kernel} | {kk} | {where} | {density} | " + " | ".join(cells)
                      + f" | {A.tree['depth']} |", flush=True)


if __name__ == "__main__":
    main()
