"""The Stokeslet FMM: its accuracy grid, and its matvec against Laplace's on the same points.

    python benchmarks/bench_stokes.py accuracy [--n 100000] [--eps 1e-3 1e-6 1e-9] [--stresslets]
    python benchmarks/bench_stokes.py speed [--n 1000000] [--eps 1e-6] [--repeats 3]

``accuracy``: for uniform points in the unit cube, points on a sphere's surface and clusters
of very different widths, the relative L2 error over ``--check`` targets of the velocity, the
velocity gradient and the pressure against ``fmmsolve.direct``, with the targets among the
sources (at a sample of them) and apart from them (a second set filling a box 1.6 times the
domain, and 50 of the sources). Viscosity 1, one force column; with ``--stresslets`` one
stresslet column with random normals instead (an FMM fitted with ``dipoles=True``).

``speed``: on the cube and the sphere, ``FMMOperator(kernel="stokes")`` and
``FMMOperator(kernel="laplace")`` at the same eps on the same points, their matvecs timed in
alternation after a first product (``--repeats`` rounds, the median of each), and the Stokes
matvec's time per operator.
"""

import argparse
import statistics
import time

import numpy as np

import fmmsolve

from _common import machine

CHECK = 500


def points(kind, n, rng):
    if kind == "cube":
        return rng.random((n, 3))
    if kind == "sphere":
        p = rng.standard_normal((n, 3))
        return 0.5 + 0.5 * p / np.linalg.norm(p, axis=1)[:, None]
    centres = rng.random((6, 3))
    widths = np.array([1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 3e-2])
    which = rng.integers(0, 6, n)
    return centres[which] + widths[which, None] * rng.standard_normal((n, 3))


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def accuracy(args):
    print(f"machine: {machine()}")
    layer = "stresslet (with random normals)" if args.stresslets else "force"
    print(f"N {args.n:,}, viscosity 1, one {layer} column, relative L2 errors over {CHECK} "
          f"targets (among the sources) and {CHECK + 50} (apart, 50 of them on sources)")
    print()
    print("| distribution | eps | targets | order | velocity | gradient | pressure | "
          "velocity / eps |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("cube", "sphere", "clusters"):
        rng = np.random.default_rng(0)
        x = points(kind, args.n, rng)
        f = rng.standard_normal((args.n, 3))
        layer = {}
        if args.stresslets:  # the double layer alone
            layer = dict(stresslets=f, normals=rng.standard_normal((args.n, 3)))
        lo, hi = x.min(axis=0), x.max(axis=0)
        apart = np.concatenate([lo - 0.3 * (hi - lo) + 1.6 * (hi - lo) * rng.random((CHECK, 3)),
                                x[:50]])
        sample = rng.choice(args.n, CHECK, replace=False)
        for eps in args.eps:
            for name, y in (("among", None), ("apart", apart)):
                try:
                    A = fmmsolve.FMMOperator(x, y, kernel="stokes", viscosity=1.0, eps=eps,
                                             dipoles=args.stresslets)
                except ValueError as exc:  # below the smallest eps the orders reach
                    print(f"| {kind} | {eps:g} | {name} | refused: {exc} | | | | |")
                    continue
                forces = None if args.stresslets else f
                u, du, p = A.evaluate(forces, gradient=True, pressure=True, **layer)
                at = sample if y is None else slice(None)
                ref = fmmsolve.direct(x, x[sample] if y is None else y, forces, kernel="stokes",
                                      viscosity=1.0, gradient=True, pressure=True, **layer)
                errors = [_rel(a[at], b) for a, b in zip((u, du, p), ref)]
                print(f"| {kind} | {eps:g} | {name} | {A.expansion_order} | {errors[0]:.1e} | "
                      f"{errors[1]:.1e} | {errors[2]:.1e} | {errors[0] / eps:.2f} |", flush=True)


def speed(args):
    print(f"machine: {machine()}")
    print(f"N {args.n:,}, eps {args.eps[0]:g}, one column, matvec medians of {args.repeats} "
          f"alternating rounds")
    print()
    print("| distribution | Stokes matvec (s) | Laplace matvec (s) | ratio | "
          "Stokes error | Laplace error | Stokes seconds per operator |")
    print("|---|---|---|---|---|---|---|")
    eps = args.eps[0]
    for kind in ("cube", "sphere"):
        rng = np.random.default_rng(1)
        x = points(kind, args.n, rng)
        f = rng.standard_normal((args.n, 3))
        q = np.ascontiguousarray(f[:, 0])
        sample = rng.choice(args.n, CHECK, replace=False)
        stokes = fmmsolve.FMMOperator(x, kernel="stokes", viscosity=1.0, eps=eps)
        laplace = fmmsolve.FMMOperator(x, eps=eps)
        u, phi = stokes.evaluate(f), laplace @ q  # first products: compile
        times = {"stokes": [], "laplace": []}
        parts = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            stokes.evaluate(f)
            times["stokes"].append(time.perf_counter() - start)
            parts.append(stokes.timings)
            start = time.perf_counter()
            laplace @ q
            times["laplace"].append(time.perf_counter() - start)
        ts, tl = (statistics.median(times[k]) for k in ("stokes", "laplace"))
        err_s = _rel(u[sample], fmmsolve.direct(x, x[sample], f, kernel="stokes", viscosity=1.0))
        err_l = _rel(phi[sample], fmmsolve.direct(x, x[sample], q))
        split = ", ".join(f"{k} {statistics.median(p[k] for p in parts):.2f}"
                          for k in parts[0])
        print(f"| {kind} | {ts:.2f} | {tl:.2f} | {ts / tl:.2f} | {err_s:.1e} | "
              f"{err_l:.1e} | {split} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["accuracy", "speed"])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--eps", type=float, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stresslets", action="store_true",
                        help="accuracy: the stresslet (double layer) instead of forces")
    args = parser.parse_args()
    if args.mode == "accuracy":
        args.n = args.n or 100_000
        args.eps = args.eps or [1e-3, 1e-6, 1e-9]
        accuracy(args)
    else:
        args.n = args.n or 1_000_000
        args.eps = args.eps or [1e-6]
        speed(args)


if __name__ == "__main__":
    main()
