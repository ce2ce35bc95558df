"""Time of a fit with the plan cache warm, by phase, against one matvec.

    python benchmarks/bench_fit.py [--sizes 1000000] [--distributions uniform sphere]
                                   [--eps 1e-3 1e-6 1e-9] [--repeats 3]

``fmmsolve.FMMOperator(x, eps=eps)`` (Laplace, float64) is fitted once to compile and to fill
the plan cache, then timed over repeats. Its phases: the engine's own stages (validation, tree,
interaction lists, plan load: ``fit_timings``), the steps of the bind
(:func:`fmmsolve.engine.bind`, timed by wrapping the functions it calls) and what the operator
adds around the engine ("other"). Every time is a median over the repeats; the phases are
medians of their own, so they need not add up to the total exactly. The last columns are the
median of ``A @ q`` and the ratio fit / matvec that issue 20 asks to keep under 0.5.
"""

import argparse
import collections
import functools
import statistics
import sys
import time

import numpy as np

from _common import machine

import fmmsolve
from fmmsolve.engine import schedule as _schedule
from fmmsolve.operators import translations as _translations
from fmmsolve.testing import point_cloud

# What bind calls, by the name its phase is reported under: (module, attribute).
_BIND_STEPS = {
    "frames": (_translations, "leaf_frames"),
    "near/far": (_schedule, "near_and_far"),
    "away": (_schedule, "leaves_away_from_sources"),
    "l2p box": (_schedule, "l2p_boxes"),
    "octants": (_schedule, "octant_groups"),
    "upward": (_schedule, "Upward"),
    "m2l": (_schedule, "_m2l_passes"),
}


def _instrument(seconds):
    """Wrap the steps of bind so that each call adds its time to ``seconds[name]``."""
    def timed(name, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
        return wrapper

    for name, (module, attr) in _BIND_STEPS.items():
        setattr(module, attr, timed(name, getattr(module, attr)))


def _fit_once(points, eps, seconds):
    """One timed fit: (operator, {phase: seconds})."""
    seconds.clear()
    start = time.perf_counter()
    op = fmmsolve.FMMOperator(points, eps=eps)
    total = time.perf_counter() - start
    fit = dict(op.fit_timings)
    phases = {k: fit[k] for k in ("validate", "tree", "lists", "plan")}
    # octant_groups runs inside Upward too: count it there only once, under "upward"
    bind_steps = dict(seconds)
    phases.update(bind_steps)
    phases["bind rest"] = fit["bind"] - sum(v for k, v in bind_steps.items() if k != "octants")
    phases["other"] = total - sum(fit.values())
    phases["total"] = total
    return op, phases


def measure(n, dist, eps, repeats, seconds):
    """Median phases of the fit and the median matvec of ``n`` points of ``dist``."""
    points = point_cloud(dist, n, seed=0)
    q = np.random.default_rng(1).standard_normal(n)
    op, _ = _fit_once(points, eps, seconds)  # compiles, fills the plan cache
    op @ q
    runs = [_fit_once(points, eps, seconds)[1] for _ in range(repeats)]
    phases = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        op @ q
        times.append(time.perf_counter() - start)
    return op, phases, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--distributions", nargs="+", default=["uniform", "sphere"])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-6, 1e-9])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds = collections.defaultdict(float)
    _instrument(seconds)
    print(f"machine: {machine()}")
    print(f"Laplace, float64, plan cache warm, medians of {args.repeats}, compile excluded; "
          "seconds")
    header = None
    for n in args.sizes:
        for dist in args.distributions:
            for eps in args.eps:
                op, phases, matvec = measure(n, dist, eps, args.repeats, seconds)
                if header is None:
                    header = list(phases)
                    print(f"{'points':>8} {'dist':<8} {'eps':>6} {'p':>2} "
                          + " ".join(f"{k:>9}" for k in header)
                          + f" {'matvec':>7} {'fit/mv':>6}")
                print(f"{n:>8} {dist:<8} {eps:>6.0e} {op.expansion_order:>2} "
                      + " ".join(f"{phases[k]:>9.3f}" for k in header)
                      + f" {matvec:>7.3f} {phases['total'] / matvec:>6.2f}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
