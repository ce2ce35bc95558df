"""Command line: ``python -m fmmsolve demo`` (or the ``fmmsolve`` console script).

``demo`` fits the Laplace FMM on a built-in point cloud (200,000 points on a sphere by default),
prints the fit and matvec times and the error against a sampled direct sum, and solves a
second-kind integral equation with GMRES.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from scipy.sparse.linalg import LinearOperator, gmres

from . import FMMOperator, __version__, direct
from .testing import DISTRIBUTIONS, point_cloud, relative_l2_error


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start


def demo(n: int, distribution: str, eps: float, leaf_size, seed: int, out=sys.stdout) -> None:
    """Fit an FMM on ``n`` built-in points, check it against the direct sum, solve with GMRES."""
    say = lambda *a: print(*a, file=out)  # noqa: E731
    say(f"fmmsolve {__version__} demo: Laplace FMM on {n:,} points ('{distribution}'), "
        f"eps={eps:g}")
    points = point_cloud(distribution, n, seed)
    rng = np.random.default_rng(seed)
    charges = rng.standard_normal(n)

    # Warm-up on a small problem so the timings below exclude compilation (or cache loading).
    small = point_cloud(distribution, 2000, seed)
    FMMOperator(small, eps=eps, leaf_size=leaf_size) @ np.ones(2000)

    A, t_fit = _timed(FMMOperator, points, eps=eps, leaf_size=leaf_size)
    pot, t_matvec = _timed(A.matvec, charges)
    tree = A.tree
    say(f"  fit     {t_fit:.2f} s  (tree {A.fit_timings['tree']:.2f} s, lists "
        f"{A.fit_timings['lists']:.2f} s, operators {A.fit_timings['plan']:.2f} s)")
    say(f"  tree    depth {tree['depth']}, {tree['n_leaves']:,} leaves, expansion order "
        f"{A.expansion_order}, mean list sizes U {tree['mean_u']:.1f} V {tree['mean_v']:.1f} "
        f"W {tree['mean_w']:.1f} X {tree['mean_x']:.1f}")
    say(f"  matvec  {t_matvec:.2f} s  (" + ", ".join(
        f"{k} {v:.2f}" for k, v in A.timings.items()) + ")")

    sample = rng.choice(n, size=min(n, 1000), replace=False)
    direct(points[:10], points[sample[:10]], charges[:10])  # compile outside the timing
    exact, t_direct = _timed(direct, points, points[sample], charges)
    err = relative_l2_error(pot[sample], exact)
    say(f"  error   relative L2 {err:.2e} at {len(sample):,} sampled targets (requested "
        f"{eps:g}); the direct sum at those targets took {t_direct:.2f} s")

    # A second-kind integral equation on the unit sphere: (I + w A) x = 1, w = area / m.
    m = min(n, 20_000)
    B = FMMOperator(point_cloud("sphere", m, seed), eps=eps, leaf_size=leaf_size)
    w = 4 * np.pi / m
    system = LinearOperator((m, m), matvec=lambda x: x + w * (B @ x), dtype=B.dtype)
    iterations = []
    start = time.perf_counter()
    x, info = gmres(system, np.ones(m), rtol=1e-8, maxiter=200, callback=iterations.append,
                    callback_type="pr_norm")
    t_gmres = time.perf_counter() - start
    residual = np.linalg.norm(system @ x - 1.0) / np.sqrt(m)
    say(f"  gmres   (I + w A) x = 1 on {m:,} sphere points: {len(iterations)} iterations, "
        f"{t_gmres:.2f} s, relative residual {residual:.1e}, info {info}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fmmsolve", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fmmsolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="FMM on a built-in point cloud: error, timings, GMRES")
    p_demo.add_argument("--n", type=_positive_int, default=200_000, help="number of points")
    p_demo.add_argument("--distribution", choices=DISTRIBUTIONS, default="sphere")
    p_demo.add_argument("--eps", type=float, default=1e-6, help="requested accuracy")
    p_demo.add_argument("--leaf-size", type=_positive_int, default=None)
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            demo(args.n, args.distribution, args.eps, args.leaf_size, args.seed)
        except ValueError as exc:  # bad values reach the user as one line, not a traceback
            parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
