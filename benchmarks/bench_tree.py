"""Time and memory of the adaptive octree and interaction lists.

    python benchmarks/bench_tree.py [--sizes 100000 1000000] [--distributions uniform sphere]

Each size runs in a fresh subprocess so its peak resident memory (``ru_maxrss``) is its own.
Times are medians over repeats with compilation excluded (one warm-up build first).
"""

import argparse
import json
import subprocess
import sys

from _common import machine

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {bench!r})
import fmmsolve
from fmmsolve.testing import point_cloud
from _common import median_time
n, dist, leaf, repeats = {n}, {dist!r}, {leaf}, {repeats}
pts = point_cloud(dist, n, seed=0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
small = point_cloud(dist, 2000, seed=1)
fmmsolve.build_interaction_lists(fmmsolve.build_octree(small, leaf_size=leaf))  # compile
tree = fmmsolve.build_octree(pts, leaf_size=leaf)
lists = fmmsolve.build_interaction_lists(tree)
t_tree = median_time(lambda: fmmsolve.build_octree(pts, leaf_size=leaf), repeats)
t_lists = median_time(lambda: fmmsolve.build_interaction_lists(tree), repeats)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(t_tree=t_tree, t_lists=t_lists, tree_bytes=tree.nbytes,
                      list_bytes=lists.nbytes, peak_kib=peak, base_kib=base,
                      depth=tree.depth, leaves=tree.n_leaves)))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--distributions", nargs="+", default=["uniform", "sphere"])
    parser.add_argument("--leaf-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_dir = sys.path[0]
    print(f"machine: {machine()}")
    print(f"leaf_size {args.leaf_size}, medians of {args.repeats}, compile excluded")
    print(f"{'points':>9} {'distribution':<12} {'depth':>5} {'leaves':>7} {'tree s':>7} "
          f"{'lists s':>7} {'total s':>7} {'B/pt tree':>9} {'B/pt lists':>10} {'peak MiB':>8}")
    for n in args.sizes:
        for dist in args.distributions:
            code = CHILD.format(bench=bench_dir, n=n, dist=dist, leaf=args.leaf_size,
                                repeats=args.repeats)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{n:>9} {dist:<12} {r['depth']:>5} {r['leaves']:>7} {r['t_tree']:>7.3f} "
                  f"{r['t_lists']:>7.3f} {r['t_tree'] + r['t_lists']:>7.3f} "
                  f"{r['tree_bytes'] / n:>9.1f} {r['list_bytes'] / n:>10.1f} "
                  f"{r['peak_kib'] / 1024:>8.0f}")


if __name__ == "__main__":
    main()
