"""
Adaptive octrees of several point clouds
========================================

Depth, leaves, mean sizes of the U, V, W and X interaction lists and build times of the
octree on each point distribution of ``fmmsolve.testing``.

Run ``python examples/tree_statistics.py``; set ``FMMSOLVE_EXAMPLE_SIZE=small`` for a quick run.
"""

import os
import time

import fmmsolve
from fmmsolve.testing import DISTRIBUTIONS, point_cloud

N = 5_000 if os.environ.get("FMMSOLVE_EXAMPLE_SIZE") == "small" else 200_000


def main():
    print(f"{'distribution':<12} {'depth':>5} {'leaves':>8} {'mean U':>7} {'mean V':>7} "
          f"{'mean W':>7} {'mean X':>7} {'build s':>8}")
    for name in DISTRIBUTIONS:
        points = point_cloud(name, N, seed=1)
        start = time.perf_counter()
        tree = fmmsolve.build_octree(points, leaf_size=64)
        lists = fmmsolve.build_interaction_lists(tree)
        elapsed = time.perf_counter() - start
        s, ls = tree.summary(), lists.summary(tree)
        print(f"{name:<12} {s['depth']:>5} {s['n_leaves']:>8} {ls['mean_u']:>7.1f} "
              f"{ls['mean_v']:>7.1f} {ls['mean_w']:>7.1f} {ls['mean_x']:>7.1f} {elapsed:>8.3f}")


if __name__ == "__main__":
    main()
