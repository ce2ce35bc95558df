"""FMM matvec: achieved error, per-operator breakdown, cost per point, and matmat cost.

    python benchmarks/bench_fmm.py [--sizes 100000 1000000] [--distribution uniform] [--eps 1e-6]
        [--direct-max N] [--json PATH]

Times are medians of ``--repeats`` matvecs after one warm-up (compile excluded). The error is
the relative L2 error against the direct sum at 1,000 sampled targets. "python" is the wall time
of a matvec that no operator's timer covers (Python sequencing, permutation, allocation).
``--direct-max N`` adds the time of the direct sum ``fmmsolve.direct(x, x, q)`` at the sizes up
to N (it grows as N^2). ``--json PATH`` also writes the table (seconds per operator, not shares)
for ``benchmarks/plots.py``.
The last lines time the first matvec after ``import fmmsolve`` in a fresh process (Numba cache
warm), against the steady state.
"""

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

from _common import machine, median_time, write_json

FRESH = r"""
import time, numpy as np
t0 = time.perf_counter()
import fmmsolve
from fmmsolve.testing import point_cloud
x = point_cloud({dist!r}, {n}, 0)
A = fmmsolve.FMMOperator(x, eps={eps})
t1 = time.perf_counter(); A @ np.ones({n}); t2 = time.perf_counter(); A @ np.ones({n})
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--distribution", default="uniform")
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rhs", type=int, default=8, help="columns for the matmat timing")
    parser.add_argument("--direct-max", type=int, default=0,
                        help="also time the direct sum at sizes up to this")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"distribution {args.distribution}, eps {args.eps:g}, {args.dtype}, "
          f"medians of {args.repeats}")
    ops = ["p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p"]
    print(f"{'N':>9} {'order':>5} {'fit s':>6} {'matvec s':>8} {'us/pt':>6} {'error':>8} "
          + " ".join(f"{o:>5}" for o in ops) + f" {'python':>6} {f'{args.rhs} rhs/1':>8}"
          + (f" {'direct s':>8}" if args.direct_max else ""))
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        x = point_cloud(args.distribution, n, 0)
        q = rng.standard_normal(n)
        small = point_cloud(args.distribution, 3000, 1)
        fmmsolve.FMMOperator(small, eps=args.eps, dtype=args.dtype) @ np.ones(3000)  # compile
        start = time.perf_counter()
        A = fmmsolve.FMMOperator(x, eps=args.eps, dtype=args.dtype)
        t_fit = time.perf_counter() - start
        A @ q
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            pot = A @ q
            runs.append((time.perf_counter() - start, A.timings))
        t_mv = statistics.median(r[0] for r in runs)
        shares = {o: statistics.median(r[1][o] for r in runs) for o in ops}
        python = statistics.median(r[0] - sum(r[1][o] for o in ops) for r in runs)
        Q = rng.standard_normal((n, args.rhs))
        A @ Q[:, :2]
        t_mm = statistics.median(
            [(lambda s: (A @ Q, time.perf_counter() - s)[1])(time.perf_counter())
             for _ in range(args.repeats)])
        sample = rng.choice(n, 1000, replace=False)
        err = relative_l2_error(pot[sample], fmmsolve.direct(x, x[sample], q))
        t_direct = None
        if n <= args.direct_max:
            fmmsolve.direct(small, small, np.ones(3000))  # compile
            t_direct = median_time(lambda: fmmsolve.direct(x, x, q), args.repeats)
        print(f"{n:>9} {A.expansion_order:>5} {t_fit:>6.2f} {t_mv:>8.3f} {t_mv / n * 1e6:>6.2f} "
              f"{err:>8.1e} " + " ".join(f"{shares[o] / t_mv:>5.0%}" for o in ops)
              + f" {python / t_mv:>6.1%} {t_mm / t_mv:>8.2f}"
              + (f" {t_direct:>8.3f}" if t_direct else (f" {'-':>8}" if args.direct_max else "")))
        rows.append({"n": n, "order": A.expansion_order, "fit": t_fit, "matvec": t_mv,
                     "error": err, "timings": shares, "python": python,
                     "matmat_ratio": t_mm / t_mv, "direct": t_direct})
    n = args.sizes[0]
    code = FRESH.format(dist=args.distribution, n=n, eps=args.eps)
    first, steady = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True,
                                              text=True, check=True).stdout.split())
    print(f"fresh process, N={n}: first matvec {first:.2f} s, steady {steady:.2f} s, "
          f"first-call overhead {first - steady:.2f} s")
    if args.json:
        write_json(args.json, {"distribution": args.distribution, "eps": args.eps,
                               "dtype": args.dtype, "rhs": args.rhs, "rows": rows})


if __name__ == "__main__":
    main()
