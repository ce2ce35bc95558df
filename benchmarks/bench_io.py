"""Saving and loading a fitted FMMOperator (HDF5): time, file size, and the fit they replace.

    python benchmarks/bench_io.py [--sizes 1000000] [--distribution uniform] [--eps 1e-6]

Save and load times are medians of ``--repeats``. The file goes to a temporary directory
(``--dir`` chooses where; it should be on the disk you care about) and each save includes the
``fsync`` that makes it durable. Loads read a file that was just written, so they come from the
page cache: they measure fmmsolve's work (reading, checking, binding), not the disk. "read",
"check" and "bind" split the median load ("bind" rebuilds the derived index arrays, as the fit
does). "fit s" is one fit with the Plan already memoised by the warm-up (so it counts the tree,
the lists and the binding; a cold Plan adds seconds, see bench_cache.py). The last column checks
that the loaded operator's matvec equals the original's bit for bit.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud

from _common import machine, median_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--distribution", default="uniform")
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="directory for the file (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"distribution {args.distribution}, eps {args.eps:g}, {args.dtype}, "
          f"medians of {args.repeats}")
    print(f"{'N':>9} {'order':>5} {'fit s':>6} {'save s':>6} {'load s':>6} {'read':>6} "
          f"{'check':>6} {'bind':>6} {'MB':>7} {'B/pt':>5} {'fit/load':>8} {'equal':>5}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = os.path.join(folder, "operator.h5")
        small = point_cloud(args.distribution, 3000, 1)
        warm = fmmsolve.FMMOperator(small, eps=args.eps, dtype=args.dtype)  # compile
        warm.save(path)
        fmmsolve.load(path) @ np.ones(3000)
        for n in args.sizes:
            x = point_cloud(args.distribution, n, 0)
            start = time.perf_counter()
            A = fmmsolve.FMMOperator(x, eps=args.eps, dtype=args.dtype)
            t_fit = time.perf_counter() - start
            t_save = median_time(lambda: A.save(path), args.repeats)
            loads = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                B = fmmsolve.load(path)
                loads.append((time.perf_counter() - start, B.fit_timings))
                del B
            t_load = statistics.median(t for t, _ in loads)
            parts = {k: statistics.median(f[k] for _, f in loads)
                     for k in ("read", "validate", "bind")}
            size = os.path.getsize(path)
            q = np.random.default_rng(0).standard_normal(n)
            equal = np.array_equal(fmmsolve.load(path) @ q, A @ q)
            print(f"{n:>9} {A.expansion_order:>5} {t_fit:>6.2f} {t_save:>6.2f} {t_load:>6.2f} "
                  f"{parts['read']:>6.2f} {parts['validate']:>6.2f} {parts['bind']:>6.2f} "
                  f"{size / 1e6:>7.1f} {size / n:>5.0f} {t_fit / t_load:>8.1f} {str(equal):>5}")


if __name__ == "__main__":
    main()
