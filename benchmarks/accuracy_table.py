"""Achieved relative L2 error of the potential against the direct sum, for every test
distribution, requested eps and dtype (the table behind tests/test_fmm.py's accuracy grid).

    python benchmarks/accuracy_table.py [--n 8000] [--leaf-size 32]
"""

import argparse

import numpy as np

import fmmsolve
from fmmsolve.testing import point_cloud, relative_l2_error

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
    args = parser.parse_args()
    print(f"N = {args.n} sources, leaf_size {args.leaf_size}; error over all targets")
    print("| distribution | " + " | ".join(f"{d} eps={e:g}" for d, e in GRID) + " |")
    print("|---|" + "---:|" * len(GRID))
    for name in DISTRIBUTIONS:
        rng = np.random.default_rng(0)
        src, tgt = case(name, args.n, rng)
        q = rng.standard_normal(len(src))
        exact = fmmsolve.direct(src, tgt, q)
        cells = []
        for dtype, eps in GRID:
            A = fmmsolve.FMMOperator(src, tgt, eps=eps, dtype=dtype, leaf_size=args.leaf_size)
            cells.append(f"{relative_l2_error(A @ q, exact):.1e}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
