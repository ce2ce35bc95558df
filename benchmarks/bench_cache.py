"""Fit time of an FMMOperator in a fresh process with a cold and with a warm Plan cache.

    python benchmarks/bench_cache.py [--orders 6 8] [--n 20000] [--repeats 3]

Each run is a new Python process (Numba's own cache warm), so the in-process memo never helps.
"Cold" uses an empty cache directory; "warm" uses one that a previous process filled.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile

from _common import machine

FIT = r"""
import sys, time
import fmmsolve
from fmmsolve.testing import point_cloud
x = point_cloud("uniform", {n}, 0)
t = time.perf_counter()
A = fmmsolve.FMMOperator(x, expansion_order={order}, memory=sys.argv[1])
print(time.perf_counter() - t, A.fit_timings["plan"])
"""


def fit_in_new_process(order, n, directory):
    out = subprocess.run([sys.executable, "-c", FIT.format(order=order, n=n), directory],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"N = {args.n} uniform points, medians of {args.repeats} fresh processes")
    print("| order | cold fit s | cold plan s | warm fit s | warm plan s | fit speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for order in args.orders:
        cold, warm = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as directory:
                cold.append(fit_in_new_process(order, args.n, directory))
                warm.append(fit_in_new_process(order, args.n, directory))
        c_fit, c_plan = (statistics.median(r[i] for r in cold) for i in (0, 1))
        w_fit, w_plan = (statistics.median(r[i] for r in warm) for i in (0, 1))
        print(f"| {order} | {c_fit:.2f} | {c_plan:.2f} | {w_fit:.2f} | {w_plan:.3f} "
              f"| {c_fit / w_fit:.1f}x |")


if __name__ == "__main__":
    main()
