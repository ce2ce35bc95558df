"""The Plan cache over a frequency sweep: its size after each Helmholtz wavenumber.

    python benchmarks/bench_cache_sweep.py [--n 20000] [--wavenumbers 20] [--eps 1e-6]
                                           [--limit 2G]

Each wavenumber of a Helmholtz sweep needs its own Plans (one per tree level), so a sweep keeps
writing to the cache. The sweep fits one FMMOperator per wavenumber on a sphere of ``n`` points
twice, in two fresh cache directories: one under the limit ``--limit`` (the default limit,
2 GiB, unless given) and one with no limit, which shows what the sweep writes in all. It prints
the entries and bytes of both after each wavenumber.
"""

import argparse
import tempfile

import numpy as np

import fmmsolve
from fmmsolve import cache
from fmmsolve._config import parse_size
from fmmsolve.accuracy import max_kw2, order_for_eps
from fmmsolve.testing import point_cloud

from _common import machine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--wavenumbers", type=int, default=20)
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--limit", default=None, help="e.g. 256M; default: fmmsolve's (2G)")
    args = parser.parse_args()
    x = point_cloud("sphere", args.n, 0)
    w2 = 2 * fmmsolve.build_octree(x).half_width / 4  # the width of a level-2 box
    k_max = 0.95 * max_kw2(order_for_eps(args.eps)) / w2  # the largest accepted, with margin
    wavenumbers = np.linspace(k_max / args.wavenumbers, k_max, args.wavenumbers)
    limit = cache.max_size() if args.limit is None else parse_size(args.limit)
    print(f"machine: {machine()}")
    print(f"sphere of {args.n} points, eps {args.eps:g}, k = {wavenumbers[0]:.3g} .. "
          f"{k_max:.3g} ({args.wavenumbers} values), limit {limit / 2**20:.0f} MiB")
    print(f"{'k':>7} {'levels':>6} | {'limited: plans':>14} {'MiB':>8} | "
          f"{'unlimited: plans':>16} {'MiB':>8}")
    with tempfile.TemporaryDirectory() as limited, tempfile.TemporaryDirectory() as unlimited:
        for k in wavenumbers:
            row = []
            for location, size in ((limited, limit), (unlimited, 2**62)):
                cache.set_max_size(size)
                A = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=args.eps,
                                         memory=location)
                info = cache.cache_info(location)
                row.append(f"{info.entries:>14} {info.size / 2**20:>8.1f}")
            print(f"{k:>7.3f} {A.tree['depth'] + 1:>6} | {row[0]} | {row[1]:>25}", flush=True)


if __name__ == "__main__":
    main()
