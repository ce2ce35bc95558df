"""The Helmholtz FMM's error by expansion order and |k| w_2 (the table behind
fmmsolve.accuracy's frequency rule): relative L2 error of the potential against the direct sum.

    python benchmarks/frequency_table.py [--n 20000] [--kw2 3.5 5 ...] [--orders 6 7 ...]
        [--distributions uniform sphere] [--leaf-size 400] [--json PATH]

``w_2`` is a quarter of the root cube's edge (the width of a level-2 box, where M2L starts).
The tree is of depth 2 (``--leaf-size`` about N / 50): the level-2 translations, which carry
the highest ``|k| w``, hold most of the far field. The fit's frequency check is bypassed, so
that orders the rule would refuse are measured too; the operators are built for eps 1e-12
(the compression is not what is measured; levels past ``FFT_ABOVE_KW`` use the FFT M2L,
which compresses nothing). Targets are 400 of the sources; random complex charges.
"""

import argparse
import time

import numpy as np

import fmmsolve
from fmmsolve.engine import fitted
from fmmsolve.testing import point_cloud, relative_l2_error

from _common import write_json


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--kw2", type=float, nargs="+",
                        default=[3.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0])
    parser.add_argument("--orders", type=int, nargs="+", default=list(range(5, 17)))
    parser.add_argument("--distributions", nargs="+", default=["uniform", "sphere"])
    parser.add_argument("--leaf-size", type=int, default=400)
    parser.add_argument("--stop", type=float, default=1e-10,
                        help="stop raising the order once the error is below this")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    fitted.choose_order = lambda kernel, k, edge, order, *a, **kw: order  # measure all orders
    rows = []
    print(f"N = {args.n}, leaf_size {args.leaf_size}; relative L2 error of the potential")
    print("| distribution | |k| w_2 | order | depth | error | fit s | matvec s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.distributions:
        rng = np.random.default_rng(0)
        x = point_cloud(name, args.n, rng)
        q = rng.standard_normal(args.n) + 1j * rng.standard_normal(args.n)
        idx = rng.choice(args.n, 400, replace=False)
        edge = np.ptp(x, axis=0).max()
        for kw2 in args.kw2:
            k = 4.0 * kw2 / edge
            exact = fmmsolve.direct(x, x[idx], q, kernel="helmholtz", wavenumber=k)
            for order in args.orders:
                t0 = time.perf_counter()
                op = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=1e-9,
                                          expansion_order=order, leaf_size=args.leaf_size,
                                          memory=None)
                t1 = time.perf_counter()
                y = op.matvec(q)
                t2 = time.perf_counter()
                err = relative_l2_error(y[idx], exact)
                depth = op._engine.schedule.fitted.tree.depth
                print(f"| {name} | {kw2:g} | {order} | {depth} | {err:.2e} | {t1 - t0:.1f} | "
                      f"{t2 - t1:.2f} |", flush=True)
                rows.append({"distribution": name, "kw2": kw2, "order": order, "depth": depth,
                             "error": err})
                if err < args.stop:
                    break
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
