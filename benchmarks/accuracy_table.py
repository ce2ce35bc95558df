"""Achieved relative L2 error of the potential against the direct sum, for every test
distribution, requested eps and dtype (the table behind tests/test_fmm.py's accuracy grid).

    python benchmarks/accuracy_table.py [--n 8000] [--leaf-size 32]
        [--float64-eps 1e-3 1e-6 1e-9] [--float32-eps 1e-3 1e-4] [--json PATH]

``--json PATH`` also writes the table for ``benchmarks/plots.py``.
"""

import argparse

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

from _common import write_json

GRID = [("float64", 1e-3), ("float64", 1e-6), ("float64", 1e-9),
        ("float32", 1e-3), ("float32", 1e-4)]
DISTRIBUTIONS = ["uniform", "sphere", "clusters", "curve", "duplicates", "targets_differ"]


def case(name, n, rng):
    if name == "targets_differ":  # targets partly outside the sources' box
        return point_cloud("uniform", n, rng), 1.4 * point_cloud("uniform", n // 2, rng) - 0.2
    return point_cloud(name, n, rng), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--leaf-size", type=int, default=32)
    parser.add_argument("--float64-eps", type=float, nargs="+",
                        default=[e for d, e in GRID if d == "float64"])
    parser.add_argument("--float32-eps", type=float, nargs="+",
                        default=[e for d, e in GRID if d == "float32"])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    grid = ([("float64", e) for e in args.float64_eps]
            + [("float32", e) for e in args.float32_eps])
    print(f"N = {args.n} sources, leaf_size {args.leaf_size}; error over all targets")
    print("| distribution | " + " | ".join(f"{d} eps={e:g}" for d, e in grid) + " |")
    print("|---|" + "---:|" * len(grid))
    rows = []
    for name in DISTRIBUTIONS:
        rng = np.random.default_rng(0)
        src, tgt = case(name, args.n, rng)
        q = rng.standard_normal(len(src))
        exact = fmmsolve.direct(src, tgt, q)
        cells = []
        for dtype, eps in grid:
            A = fmmsolve.FMMOperator(src, tgt, eps=eps, dtype=dtype, leaf_size=args.leaf_size)
            err = relative_l2_error(A @ q, exact)
            cells.append(f"{err:.1e}")
            rows.append({"distribution": name, "dtype": dtype, "eps": eps, "error": err,
                         "order": A.expansion_order})
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, {"n": args.n, "leaf_size": args.leaf_size, "rows": rows})


if __name__ == "__main__":
    main()
