"""Many right-hand sides: ``A @ Q`` with 1, 8 and 32 columns, per operator.

    python benchmarks/bench_columns.py [--n 1000000] [--eps 1e-6] [--columns 1 8 32]
        [--kernel laplace] [--distribution uniform] [--repeats 3]

One operator is fitted; each product ``A @ Q`` (Q of ``c`` columns) is timed as the median of
``--repeats`` after a warm-up (compile excluded), and split into the engine's operators
(``A.timings``). "x 1 col" is the time over the one-column product's; "per col" is the time per
column over the one-column product's. The error is the relative L2 error of the first column's
potential against the direct sum on 300 sampled targets, in the widest product.
"""

import argparse
import statistics
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

from _common import machine

OPS = ["p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--columns", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--kernel", default="laplace")
    parser.add_argument("--wavenumber", type=float, default=None)
    parser.add_argument("--distribution", default="uniform")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = point_cloud(args.distribution, args.n, 0)
    A = fmmsolve.FMMOperator(x, kernel=args.kernel, wavenumber=args.wavenumber, eps=args.eps)
    print(f"# {machine()}")
    print(f"# {args.kernel}, N = {args.n}, {args.distribution}, eps {args.eps:g}, order "
          f"{A.expansion_order}; medians of {args.repeats}")
    print("\n| columns | s | x 1 col | per col | " + " | ".join(OPS) + " | error |")
    print("|---:|---:|---:|---:|" + "---:|" * len(OPS) + "---:|")
    rng = np.random.default_rng(1)
    base = None
    for c in args.columns:
        q = rng.standard_normal((args.n, c))
        if A.dtype.kind == "c":
            q = q + 1j * rng.standard_normal((args.n, c))
        q = q[:, 0] if c == 1 else q
        A @ q
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            pot = A @ q
            runs.append((time.perf_counter() - start, dict(A.timings)))
        t = statistics.median(r[0] for r in runs)
        ops = {o: statistics.median(r[1][o] for r in runs) for o in OPS}
        base = base or t
        first = pot if c == 1 else pot[:, 0]
        idx = rng.choice(args.n, 300, replace=False)
        exact = fmmsolve.direct(x, x[idx], q if c == 1 else q[:, 0], kernel=args.kernel,
                                wavenumber=args.wavenumber)
        err = relative_l2_error(first[idx], exact)
        print(f"| {c} | {t:.2f} | {t / base:.2f} | {t / c / base:.2f} | "
              + " | ".join(f"{ops[o]:.2f}" for o in OPS) + f" | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
