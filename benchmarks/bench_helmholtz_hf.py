"""The Helmholtz FMM across frequencies: the accuracy grid (k D x eps x distribution) and how
the matvec grows with k D at fixed points per wavelength.

    python benchmarks/bench_helmholtz_hf.py accuracy [--kd 1 10 30 64 100] [--eps 1e-3 1e-6 1e-9]
        [--max-kd-1e-9 30] [--distributions sphere cube clusters] [--json PATH]
    python benchmarks/bench_helmholtz_hf.py growth [--kd 8 16 32 64] [--ppw 10] [--eps 1e-6]
    python benchmarks/bench_helmholtz_hf.py state [--n 200000] [--kd 100] [--eps 1e-6]

``D`` is the largest extent of the points' bounding box (the sphere's diameter, the cube's
edge; about the root cube's edge, so ``|k| w_2 = k D / 4``). Distributions: ``sphere`` (its
surface at 10 points per wavelength or more: ``N = max(5000, 8 (k D)^2)``), ``cube`` (20,000
uniform points) and ``clusters`` (20,000 points in tight Gaussian clusters); a row of complex
``k (1 + 0.1 i)`` on the sphere as well. Each cell: the order the rule picks, the relative L2
error of the potential over 400 of the points against ``fmmsolve.direct``, the fit (no disk
cache) and one matvec, and the operator's bytes. A cell the rule refuses says so.

``growth``: the sphere at ``--ppw`` points per wavelength for each k D: N, order, fit,
matvec (median of 3) and error, to show how the cost grows with k D.

``state``: the operator's bytes per tree level (check-to-equivalent maps, M2M and L2L, M2L
data), and those of its tree, lists and schedule, on ``--n`` sphere points at one k D, with the
fit's time (no disk cache: a new wavenumber) and a matvec's (median of 3).
"""

import argparse
import statistics
import time

import numpy as np

import fmmsolve
from fmmsolve.accuracy import FrequencyError
from fmmsolve.testing import point_cloud, relative_l2_error

from _common import machine, write_json


def points(name, kd, ppw=10.0):
    if name == "sphere":
        n = max(5000, int(np.ceil(ppw**2 / (4 * np.pi) * kd**2)))  # pi D^2 / (lambda / ppw)^2
        return point_cloud("sphere", n, 0)
    return point_cloud("uniform" if name == "cube" else name, 20000, 0)


def state_bytes(op):
    engine = op._engine
    plans = {id(p): p for p in engine.plans}
    return sum(p.nbytes for p in plans.values())


def cell(x, k, eps, rng):
    q = rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x))
    idx = rng.choice(len(x), min(400, len(x)), replace=False)
    t0 = time.perf_counter()
    try:
        op = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=eps, memory=None)
    except FrequencyError as error:
        return {"refused": f"refused (|k| w_2 <= {error.bound:g})"}
    t1 = time.perf_counter()
    y = op @ q
    t2 = time.perf_counter()
    exact = fmmsolve.direct(x, x[idx], q, kernel="helmholtz", wavenumber=k)
    return {"order": op.expansion_order, "depth": op._engine.tree.depth,
            "error": relative_l2_error(y[idx], exact), "fit": t1 - t0, "matvec": t2 - t1,
            "bytes": state_bytes(op)}


def accuracy(args):
    print(f"machine: {machine()}")
    print("| distribution | N | k D | k | eps | order | depth | error | error / eps | fit s | "
          "matvec s | plans MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name in args.distributions:
        for kd in args.kd:
            x = points(name, kd)
            d = float(np.ptp(x, axis=0).max())
            ks = [kd / d] + ([kd / d * (1 + 0.1j)] if name == "sphere" else [])
            for k in ks:
                for eps in args.eps:
                    if eps < 1e-7 and kd > args.max_kd_1e_9:
                        continue
                    r = cell(x, k, eps, np.random.default_rng(1))
                    label = f"{k:.4g}" if np.isreal(k) else f"{k.real:.4g}(1+0.1i)"
                    if "refused" in r:
                        print(f"| {name} | {len(x)} | {kd:g} | {label} | {eps:g} | "
                              f"{r['refused']} | | | | | | |", flush=True)
                    else:
                        print(f"| {name} | {len(x)} | {kd:g} | {label} | {eps:g} | "
                              f"{r['order']} | {r['depth']} | {r['error']:.2e} | "
                              f"{r['error'] / eps:.2f} | {r['fit']:.1f} | {r['matvec']:.2f} | "
                              f"{r['bytes'] / 2**20:.0f} |", flush=True)
                    rows.append({"distribution": name, "n": len(x), "kd": kd,
                                 "k": [float(np.real(k)), float(np.imag(k))], "eps": eps, **r})
    if args.json:
        write_json(args.json, rows)


def growth(args):
    print(f"machine: {machine()}")
    print("| k D | N | order | depth | fit s | matvec s (median of 3) | error |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for kd in args.kd:
        x = points("sphere", kd, args.ppw)
        k = kd / float(np.ptp(x, axis=0).max())
        rng = np.random.default_rng(2)
        q = rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x))
        t0 = time.perf_counter()
        op = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=args.eps[0],
                                  memory=None)
        fit = time.perf_counter() - t0
        times = []
        for _ in range(3):
            t = time.perf_counter()
            y = op @ q
            times.append(time.perf_counter() - t)
        idx = rng.choice(len(x), 400, replace=False)
        err = relative_l2_error(y[idx], fmmsolve.direct(x, x[idx], q, kernel="helmholtz",
                                                        wavenumber=k))
        print(f"| {kd:g} | {len(x)} | {op.expansion_order} | {op._engine.tree.depth} | "
              f"{fit:.1f} | {statistics.median(times):.2f} | {err:.1e} |", flush=True)


def state(args):
    print(f"machine: {machine()}")
    x = point_cloud("sphere", args.n, 0)
    kd = args.kd[0]
    k = kd / float(np.ptp(x, axis=0).max())
    t0 = time.perf_counter()
    op = fmmsolve.FMMOperator(x, kernel="helmholtz", wavenumber=k, eps=args.eps[0], memory=None)
    fit = time.perf_counter() - t0
    q = np.random.default_rng(0).standard_normal(len(x)) + 0j
    times = []
    for _ in range(3):
        t = time.perf_counter()
        op @ q
        times.append(time.perf_counter() - t)
    matvec = statistics.median(times)
    engine = op._engine
    tree = engine.tree
    print(f"N {args.n}, k D {kd:g}, eps {args.eps[0]:g}: order {op.expansion_order}, depth "
          f"{tree.depth}, fit {fit:.1f} s, matvec {matvec:.2f} s (fit / matvec "
          f"{fit / matvec:.1f})")
    print("| level | \\|k\\| w | M2L | c2e MiB | M2M+L2L MiB | M2L MiB | total MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    seen, total = set(), 0
    mib = 2.0**-20
    for level, plan in enumerate(engine.plans):
        if id(plan) in seen:
            continue
        seen.add(id(plan))
        c2e = sum(a.nbytes for a in (plan.uc2e_a, plan.uc2e_b, plan.dc2e_a, plan.dc2e_b))
        ops = plan.m2m.nbytes + plan.l2l.nbytes
        print(f"| {level} | {abs(k) * 2 * tree.half_width / 2**level:.3g} | "
              f"{plan.m2l_strategy if plan.rank else '-'} | {c2e * mib:.0f} | {ops * mib:.0f} | "
              f"{plan.m2l_data.nbytes * mib:.0f} | {plan.nbytes * mib:.0f} |")
        total += plan.nbytes
    rest = tree.nbytes + engine.fitted.lists.nbytes + engine.schedule.nbytes
    print(f"plans in all: {total * mib:.0f} MiB; tree, lists and schedule: {rest * mib:.0f} MiB; "
          f"operator: {(total + rest) / 1e9:.2f} GB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["accuracy", "growth", "state"])
    parser.add_argument("--n", type=int, default=200000)
    parser.add_argument("--kd", type=float, nargs="+", default=None)
    parser.add_argument("--eps", type=float, nargs="+", default=None)
    parser.add_argument("--max-kd-1e-9", type=float, default=30.0)
    parser.add_argument("--distributions", nargs="+", default=["sphere", "cube", "clusters"])
    parser.add_argument("--ppw", type=float, default=10.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.what == "accuracy":
        args.kd = args.kd or [1, 10, 30, 64, 100]
        args.eps = args.eps or [1e-3, 1e-6, 1e-9]
        accuracy(args)
    elif args.what == "state":
        args.kd = args.kd or [100]
        args.eps = args.eps or [1e-6]
        state(args)
    else:
        args.kd = args.kd or [8, 16, 32, 64]
        args.eps = args.eps or [1e-6]
        growth(args)


if __name__ == "__main__":
    main()
