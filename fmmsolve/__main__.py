"""Command line: ``python -m fmmsolve demo`` (or the ``fmmsolve`` console script).

``demo`` builds the adaptive octree and interaction lists of a built-in point cloud, prints their
statistics and timings, and measures the direct-sum interaction rate on a sample of targets.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import __version__, build_interaction_lists, build_octree, direct
from ._config import DEFAULT_LEAF_SIZE
from .testing import DISTRIBUTIONS, point_cloud


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


def demo(n: int, distribution: str, leaf_size: int, seed: int, out=sys.stdout) -> None:
    """Build a tree and lists for ``n`` points and report statistics and timings."""
    say = lambda *a: print(*a, file=out)  # noqa: E731
    say(f"fmmsolve {__version__} demo: {n:,} points, distribution '{distribution}', "
        f"leaf_size {leaf_size}")
    points = point_cloud(distribution, n, seed)

    # The first call compiles (or loads Numba's disk cache); the second is the steady state.
    (_, first_tree) = _timed(build_octree, points, leaf_size=leaf_size)
    tree, t_tree = _timed(build_octree, points, leaf_size=leaf_size)
    (_, first_lists) = _timed(build_interaction_lists, tree)
    lists, t_lists = _timed(build_interaction_lists, tree)

    stats, lstats = tree.summary(), lists.summary(tree)
    say(f"  tree   depth {stats['depth']}, {stats['n_boxes']:,} boxes, {stats['n_leaves']:,} "
        f"leaves, {stats['mean_sources_per_leaf']:.1f} points per leaf on average "
        f"(max {stats['max_sources_per_leaf']})")
    say(f"  lists  mean sizes U {lstats['mean_u']:.1f}, V {lstats['mean_v']:.1f}, "
        f"W {lstats['mean_w']:.1f}, X {lstats['mean_x']:.1f}")
    say(f"  time   tree {t_tree:.3f} s, lists {t_lists:.3f} s "
        f"(first calls, with compilation or cache load: {first_tree:.2f} s, {first_lists:.2f} s)")
    per_point = (stats["nbytes"] + lstats["nbytes"]) / n
    say(f"  memory tree {stats['nbytes'] / 2**20:.1f} MiB + lists {lstats['nbytes'] / 2**20:.1f} "
        f"MiB = {per_point:.0f} bytes per point")

    rng = np.random.default_rng(seed)
    sample = points[rng.choice(n, size=min(n, 2000), replace=False)]
    charges = rng.standard_normal(n)
    direct(points[:10], sample[:10], charges[:10])  # compile outside the timing
    pot, t_direct = _timed(direct, points, sample, charges)
    say(f"  direct sum at {len(sample):,} sampled targets: {t_direct:.3f} s, "
        f"{len(sample) * n / t_direct / 1e9:.2f} billion interactions/s, "
        f"|phi| mean {np.abs(pot).mean():.4g}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fmmsolve", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fmmsolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="tree and lists of a built-in point cloud, with timings")
    p_demo.add_argument("--n", type=_positive_int, default=200_000, help="number of points")
    p_demo.add_argument("--distribution", choices=DISTRIBUTIONS, default="sphere")
    p_demo.add_argument("--leaf-size", type=_positive_int, default=DEFAULT_LEAF_SIZE)
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.n, args.distribution, args.leaf_size, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
