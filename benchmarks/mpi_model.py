"""A model of the distributed FMM's cost per rank, checked against bench_mpi.py's measurements
on P = 1..4, and extrapolated to P = 1,000 ranks.

    python benchmarks/mpi_model.py

Per matvec (one density column, Laplace, eps 1e-6, one thread per rank), on the rank with
the most work:

    local     = a T + b S          T targets owned, S sources held (own and ghosts)
    top       = c C                C cut boxes holding sources (the top tree's leaves: M2M up
                                   through all of them, M2L and L2L for the rank's own)
    allreduce = 2 C n 8 / B + l    the cut boxes' expansions (n = 218 numbers each) summed by a
                                   ring allreduce of bandwidth B per rank and latency l log2 P

``a``, ``b`` and ``c`` are fitted to the uniform runs at P = 1, 2 (100,000 points) on the 2-core
development VM, and the local term is scaled for each distribution by its own time at P = 1
(a point of a sphere costs about half a uniform one's); the check predicts the other runs
from their partitions (computed here as the operator computes them) and compares with the
measured times (P = 3, 4 put 2 ranks on a core: the measured wall times are about P / 2 times
the work, so the predictions are scaled so).

The extrapolation is for uniform points, one rank per core on a cluster (B = 10 GB/s, l = 5 us)
in weak scaling (10^6 points per rank) and strong scaling (10^8 points): the cut level is the
one the operator picks (about the leaves' level, at most 5), so past 32,768 cut boxes a rank
owns fewer and fewer of them and its ghost layer (the shell of adjacent cut boxes, ``(k^(1/3) +
2)^3 - k`` boxes for k owned in a compact block) grows relative to what it owns. A locally
essential tree (LET) lifts the cap: each rank exchanges only the expansions its own boxes and
their ancestors' interaction lists need, so the cut level can follow P (about 4,096 cut boxes per
rank), the top costs ``c (k + 189 levels)`` and the exchange ``(shell + 189 levels) n 8 / B``.
"""

import numpy as np

from fmmsolve.distributed.partition import (MAX_CUT_LEVEL, Partition, fine_keys, global_root,
                                            merge_refined, refine_counts)
from fmmsolve.operators.surfaces import default_leaf_size
from fmmsolve.testing import point_cloud

N_SURFACE = 218  # 6 (p - 1)^2 + 2 at eps 1e-6 (order 7)
ORDER = 7
#: Measured (benchmarks/README.md, "Distributed Krylov solvers and scaling"): seconds of the
#: local FMM and the top of the slowest rank, per matvec, uniform and clustered, n = 100,000.
MEASURED = {("clusters", 1): (0.821, 0.000), ("sphere", 1): (0.397, 0.000),
            ("uniform", 1): (0.721, 0.000), ("uniform", 2): (0.374, 0.008),
            ("uniform", 3): (0.433, 0.019), ("uniform", 4): (0.390, 0.017),
            ("clusters", 2): (0.493, 0.019), ("clusters", 3): (0.525, 0.042),
            ("clusters", 4): (0.529, 0.041), ("sphere", 2): (0.177, 0.014),
            ("sphere", 3): (0.198, 0.034), ("sphere", 4): (0.197, 0.034)}
BANDWIDTH, LATENCY = 10e9, 5e-6
#: Bytes per source held of a rank's tree, lists and index arrays (13.0 MB for 100,000 uniform
#: points, bench_mpi.py), and of a GMRES(30) basis per own point (34 float64).
TREE_BYTES, KRYLOV_BYTES = 130, 34 * 8


def partition_of(x, size):
    """The operator's partition of all points ``x`` (targets the sources) over ``size`` ranks,
    and the sources each rank holds."""
    root = global_root(x.min(axis=0), x.max(axis=0))
    keys = fine_keys(x, root)
    uniq, counts = np.unique(keys, return_counts=True)

    def refine(k, levels, deeper):
        return merge_refined([refine_counts((x, x), root, k, levels, deeper)])

    part = Partition.from_histogram(root, uniq, np.stack([counts, counts], 1), size,
                                    default_leaf_size(ORDER), refine)
    held = part.route(x, ghosts=True)[1]
    targets = part.route(x, ghosts=False)[1]
    return part, targets, held


def fit():
    """``a``, ``b`` from the uniform runs at P = 1, 2 and ``c`` from the top at P = 2."""
    x = point_cloud("uniform", 100_000, 0)
    rows = []
    for p in (1, 2):
        part, targets, held = partition_of(x, p)
        worst = np.argmax(targets + held)
        rows.append((targets[worst], held[worst], MEASURED[("uniform", p)][0]))
    (t1, s1, y1), (t2, s2, y2) = rows
    a, b = np.linalg.solve([[t1, s1], [t2, s2]], [y1, y2])
    part, _, _ = partition_of(x, 2)
    c = MEASURED[("uniform", 2)][1] / int((part.counts[:, 0] > 0).sum())
    return a, b, c


def check(a, b, c):
    print("Check on the development VM (2 cores; P = 3, 4 scaled by P / 2), n = 100,000:")
    print("| points | P | cut level | cut boxes | T | S | local predicted | local measured | "
          "top predicted | top measured |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for dist in ("uniform", "clusters", "sphere"):
        x = point_cloud(dist, 100_000, 0)
        rate = MEASURED[(dist, 1)][0] / ((a + b) * len(x))  # this distribution's work per point
        for p in (1, 2, 3, 4):
            if (dist, p) not in MEASURED:
                continue
            part, targets, held = partition_of(x, p)
            boxes = int((part.counts[:, 0] > 0).sum())
            load = max(1.0, p / 2)
            local = load * rate * max(a * t + b * s for t, s in zip(targets, held))
            top = load * c * boxes if p > 1 else 0.0
            measured_local, measured_top = MEASURED[(dist, p)]
            print(f"| {dist} | {p} | {part.level} | {boxes} | {targets.max()} | {held.max()} | "
                  f"{local:.3f} | {measured_local:.3f} | {top:.3f} | {measured_top:.3f} |")


def shell(k):
    """Ghost boxes around k cut boxes owned as a compact block, interior to the domain."""
    return (np.cbrt(k) + 2.0) ** 3 - k


def extrapolate(a, b, c, per_rank=None, total=None):
    leaf = default_leaf_size(ORDER)
    title = (f"weak scaling, {per_rank:.0e} points per rank" if per_rank
             else f"strong scaling, {total:.0e} points")
    print(f"\nModel, uniform points, one rank per core, {title} (B = 10 GB/s):")
    print("| P | points/rank | cut level | cut boxes/rank | ghosts/owned | local s | top s | "
          "allreduce s | MB/rank | efficiency | with LET: ghosts/owned | top + exchange s | "
          "MB/rank | efficiency |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    base = None
    for p in (1, 8, 64, 512, 1000):
        n = per_rank * p if per_rank else total
        mine = n / p
        # the operator's cut level: the leaves' level, capped; one rank takes level 2
        level = 2 if p == 1 else int(min(MAX_CUT_LEVEL, max(2, np.floor(
            np.log(8 * n / leaf) / np.log(8)))))
        boxes = 8.0 ** level
        k = boxes / p
        g = 0.0 if p == 1 else min(shell(k), boxes - k) / k
        local = a * mine + b * (1 + g) * mine
        top = 0.0 if p == 1 else c * boxes
        reduce = 0.0 if p == 1 else 2 * boxes * N_SURFACE * 8 / BANDWIDTH \
            + LATENCY * np.log2(p)
        total_s = local + top + reduce
        # LET: about 4,096 cut boxes per rank, whatever P
        let_level = 2 if p == 1 else int(np.ceil(np.log(4096 * p) / np.log(8) - 1e-9))
        let_k = 8.0 ** let_level / p
        let_g = 0.0 if p == 1 else shell(let_k) / let_k
        levels = let_level - 1
        let_local = a * mine + b * (1 + let_g) * mine
        let_top = 0.0 if p == 1 else c * (let_k + 189 * levels) \
            + (shell(let_k) + 189 * levels) * N_SURFACE * 8 / BANDWIDTH
        let_total = let_local + let_top
        # tree and Krylov basis, and the allreduce's two buffers of all cut boxes' expansions
        memory = (TREE_BYTES * (1 + g) * mine + KRYLOV_BYTES * mine
                  + (2 * boxes * N_SURFACE * 8 if p > 1 else 0)) / 1e6
        let_memory = (TREE_BYTES * (1 + let_g) * mine + KRYLOV_BYTES * mine
                      + 2 * (shell(let_k) + 189 * levels) * N_SURFACE * 8 * (p > 1)) / 1e6
        if base is None:
            base = total_s
        ideal = base if per_rank else base / p
        print(f"| {p} | {mine:.2g} | {level} | {k:.3g} | {g:.2f} | {local:.2f} | {top:.3f} | "
              f"{reduce:.4f} | {memory:.0f} | {ideal / total_s:.2f} | {let_g:.2f} | "
              f"{let_top:.3f} | {let_memory:.0f} | {ideal / let_total:.2f} |")


def main():
    a, b, c = fit()
    print(f"fitted: a = {a * 1e6:.2f} us per target, b = {b * 1e6:.2f} us per source held, "
          f"c = {c * 1e6:.1f} us per cut box of the top\n")
    check(a, b, c)
    extrapolate(a, b, c, per_rank=1e6)
    extrapolate(a, b, c, total=1e8)


if __name__ == "__main__":
    main()
