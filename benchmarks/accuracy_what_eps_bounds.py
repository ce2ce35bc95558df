"""What eps bounds, measured: the relative L2 error of the potential over all targets, and where
that is not the error at each target.

1. Cancellation. Mixed-sign charges make the potential small in places. At the targets where
   |phi| is below 1/15 of its RMS over all targets, the error relative to the local potential
   is far above eps, while relative to the field of |q| (the potential the same sources give
   with charges |q_j|) it stays below eps everywhere.
2. Gradients at targets clustered far below their sources (a Gaussian blob of width 1e-5 in a
   uniform cloud), where boxes are split for the targets alone: relative L2 error of the
   gradient, in units of eps.

    python benchmarks/accuracy_what_eps_bounds.py [--n 20000] [--eps 1e-3 1e-6]
"""

import argparse

import numpy as np

import fmmsolve
from fmmsolve.testing import relative_l2_error


def cancellation(n, eps, rng):
    x = rng.random((n, 3))
    q = rng.standard_normal(n)
    op = fmmsolve.FMMOperator(x, eps=eps, memory=None)
    pot = op @ q
    exact = fmmsolve.direct(x, x, q)
    magnitude = fmmsolve.direct(x, x, np.abs(q))  # the field of |q|
    small = np.abs(exact) < np.sqrt(np.mean(exact**2)) / 15
    err = np.abs(pot - exact)
    return {
        "all targets": relative_l2_error(pot, exact) / eps,
        "|phi| < rms/15: vs phi": np.linalg.norm(err[small]) / np.linalg.norm(exact[small]) / eps,
        "|phi| < rms/15: vs field of |q|":
            np.linalg.norm(err[small]) / np.linalg.norm(magnitude[small]) / eps,
        "worst target vs field of |q|": float(np.max(err / magnitude)) / eps,
        "targets with |phi| < rms/15": int(small.sum()),
    }


def clustered_gradients(n, eps, rng):
    x = rng.random((n, 3))
    q = rng.standard_normal(n)
    y = np.array([0.3, 0.6, 0.45]) + 1e-5 * rng.standard_normal((1000, 3))
    op = fmmsolve.FMMOperator(x, y, eps=eps, memory=None)
    pot, grad = op.evaluate(q, gradient=True)
    exact_pot, exact_grad = fmmsolve.direct(x, y, q, gradient=True)
    return {"depth": op.tree["depth"], "potential": relative_l2_error(pot, exact_pot) / eps,
            "gradient": relative_l2_error(grad, exact_grad) / eps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-6])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"Laplace, {args.n} uniform sources, standard normal charges; errors in units of eps")
    for eps in args.eps:
        print(f"eps {eps:g}, targets = sources:")
        for name, value in cancellation(args.n, eps, rng).items():
            print(f"  {name:34s} {value:.3g}")
        print(f"eps {eps:g}, 1000 targets in a blob of width 1e-5:")
        for name, value in clustered_gradients(args.n, eps, rng).items():
            print(f"  {name:34s} {value:.3g}")


if __name__ == "__main__":
    main()
