"""The performance targets that are not about peers: precision, right-hand sides, scaling,
memory and start-up. Prints one table, each row with the target and whether it is met.

    python benchmarks/bench_targets.py [--n 1000000] [--large-n 10000000] [--repeats 3]
        [--large-repeats 1] [--rhs 8] [--skip-large]

Every measurement runs in its own subprocess, the fmmsolve worker of ``bench_peers.py``:
it warms up on a small problem (compilation excluded), fits (Plan from the disk cache), then
evaluates twice, and the second evaluation is the one that counts. Its peak memory is
``ru_maxrss`` at the end, and the "base" is the same value before the fit. The configurations
alternate within each repeat, and the table gives medians. Errors are relative L2 errors at
1,000 sampled targets against ``fmmsolve.direct``, shown next to every time.

Start-up runs fresh processes (``STARTUP`` below). The first uses a warm Numba cache. The
second uses an empty ``NUMBA_CACHE_DIR``, so it compiles everything ("cold"). Both time the
import, the fit and the first two matvecs.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import numpy as np

import bench_peers
from _common import machine

STARTUP = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fmmsolve
t1 = time.perf_counter()
from numba.core.registry import CPUDispatcher
compiled = sum(len(f.signatures) for name, mod in list(sys.modules.items())
               if name.startswith("fmmsolve") for f in vars(mod).values()
               if isinstance(f, CPUDispatcher))
from fmmsolve.testing import point_cloud
x = point_cloud({dist!r}, {n}, 0)
q = np.random.default_rng(1).standard_normal({n})
t2 = time.perf_counter()
A = fmmsolve.FMMOperator(x, eps={eps})
t3 = time.perf_counter(); A @ q; t4 = time.perf_counter(); A @ q; t5 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "fit": t3 - t2, "first": t4 - t3, "steady": t5 - t4,
                  "compiled_at_import": compiled}}))
"""


def measure(n, dist, eps, dtype, rhs):
    """Arguments of one bench_peers fmmsolve worker."""
    return SimpleNamespace(n=n, distribution=dist, eps=eps, dtype=dtype, rhs=rhs, samples=1000,
                           seed=0, charges="normal", threads=None, kernel="laplace", kd=10.0)


def startup(dist, n, eps, cold):
    """One fresh process; with ``cold``, an empty Numba cache directory."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", STARTUP.format(dist=dist, n=n, eps=eps)],
                             capture_output=True, text=True, env=env, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--large-n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-repeats", type=int, default=1)
    parser.add_argument("--rhs", type=int, default=8)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    n = args.n
    configs = {
        "cube f64 1e-6": measure(n, "cube", 1e-6, "float64", 1),
        "sphere f64 1e-6": measure(n, "sphere", 1e-6, "float64", 1),
        f"cube f64 1e-6 x{args.rhs}": measure(n, "cube", 1e-6, "float64", args.rhs),
        f"sphere f64 1e-6 x{args.rhs}": measure(n, "sphere", 1e-6, "float64", args.rhs),
        "cube f64 1e-4": measure(n, "cube", 1e-4, "float64", 1),
        "cube f32 1e-4": measure(n, "cube", 1e-4, "float32", 1),
        "sphere f64 1e-4": measure(n, "sphere", 1e-4, "float64", 1),
        "sphere f32 1e-4": measure(n, "sphere", 1e-4, "float32", 1),
    }
    runs = {name: [] for name in configs}
    for rep in range(args.repeats):
        for name, cfg in configs.items():
            print(f"repeat {rep + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            runs[name].append(bench_peers.run_worker(cfg, "fmmsolve", cfg.eps))
    large = measure(args.large_n, "cube", 1e-6, "float64", 1)
    if not args.skip_large:
        configs["cube f64 1e-6 large"] = large
        runs["cube f64 1e-6 large"] = []
        for rep in range(args.large_repeats):
            print(f"large {rep + 1}/{args.large_repeats}", file=sys.stderr, flush=True)
            runs["cube f64 1e-6 large"].append(bench_peers.run_worker(large, "fmmsolve", 1e-6))

    import fmmsolve

    med, refs = {}, {}
    for name, cfg in configs.items():
        good = [r for r in runs[name] if "failed" not in r]
        if not good:
            sys.exit(f"{name}: {runs[name][0]['failed']}")
        key = (cfg.n, cfg.distribution, cfg.rhs)
        if key not in refs:
            x, q, idx = bench_peers.problem(cfg)
            refs[key] = fmmsolve.direct(x, x[idx], q)
        ref = refs[key]
        med[name] = {k: statistics.median(r[k] for r in good) for k in ("fit", "eval", "peak",
                                                                         "base")}
        med[name]["error"] = statistics.median(
            float(np.linalg.norm(np.array(r["pot"]) - ref) / np.linalg.norm(ref)) for r in good)
        med[name]["setting"] = good[0]["setting"]

    print("measuring start-up (fresh processes)", file=sys.stderr, flush=True)
    warm = [startup("uniform", n, 1e-6, cold=False) for _ in range(args.repeats)]
    cold = startup("uniform", n, 1e-6, cold=True)
    warm = {k: statistics.median(w[k] for w in warm) for k in warm[0]}

    def t(name):
        m = med[name]
        return f"{m['eval']:.2f} s ({m['error']:.1e})"

    rows = []  # (target, measured, required, met)
    for dist in ("cube", "sphere"):
        one = med[f"{dist} f64 1e-6"]
        rows.append((f"fit vs matvec, {dist}",
                     f"fit {one['fit']:.2f} s, matvec {t(f'{dist} f64 1e-6')}"
                     f" -> {one['fit'] / one['eval']:.2f} matvecs", "<= 2 matvecs",
                     one["fit"] <= 2 * one["eval"]))
    for dist in ("cube", "sphere"):
        r = med[f"{dist} f64 1e-4"]["eval"] / med[f"{dist} f32 1e-4"]["eval"]
        rows.append((f"float32 vs float64 at eps 1e-4, {dist}",
                     f"f64 {t(f'{dist} f64 1e-4')}, f32 {t(f'{dist} f32 1e-4')} -> {r:.2f}x",
                     ">= 1.5x", r >= 1.5))
    for dist in ("cube", "sphere"):
        r = med[f"{dist} f64 1e-6 x{args.rhs}"]["eval"] / med[f"{dist} f64 1e-6"]["eval"]
        rows.append((f"{args.rhs} rhs vs 1, {dist}",
                     f"{t(f'{dist} f64 1e-6 x{args.rhs}')} vs {t(f'{dist} f64 1e-6')} -> {r:.2f}x",
                     "<= 3x", r <= 3))
    mib = 2 ** 20
    one = med["cube f64 1e-6"]
    rows.append(("peak memory, fit + matvec, cube 1e-6 f64",
                 f"{one['peak']:.0f} MiB ({one['base']:.0f} before the fit); "
                 f"{(one['peak'] - one['base']) * mib / n:.0f} B/point above it",
                 "<= 1024 MiB", one["peak"] <= 1024))
    if not args.skip_large:
        big = med["cube f64 1e-6 large"]
        ratio = (big["eval"] / large.n) / (one["eval"] / n)
        rows.append((f"time per point, {large.n:.0e} vs {n:.0e}, cube",
                     f"{big['eval']:.1f} s ({big['error']:.1e}) vs {one['eval']:.2f} s "
                     f"-> {ratio:.2f}x", "<= 1.3x", ratio <= 1.3))
        rows.append((f"memory at {large.n:.0e}, cube",
                     f"peak {big['peak']:.0f} MiB; "
                     f"{(big['peak'] - big['base']) * mib / large.n:.0f}"
                     f" B/point above the base, fit {big['fit']:.1f} s", "stated", True))
    rows.append(("import fmmsolve (fresh process)",
                 f"{warm['import']:.2f} s, {warm['compiled_at_import']:.0f} compiled signatures",
                 "no compilation", warm["compiled_at_import"] == 0))
    over = warm["first"] - warm["steady"]
    rows.append((f"first matvec in a fresh process, {n:.0e} cube",
                 f"{warm['first']:.2f} s vs steady {warm['steady']:.2f} s -> +{over:.2f} s",
                 "<= +3 s", over <= 3))
    compile_s = (cold["fit"] + cold["first"]) - (warm["fit"] + warm["first"])
    rows.append(("cold Numba cache: compile time",
                 f"fit + first matvec {cold['fit'] + cold['first']:.1f} s vs "
                 f"{warm['fit'] + warm['first']:.1f} s warm -> {compile_s:.1f} s compiling",
                 "reported", True))

    print(f"machine: {machine()}")
    print(f"medians of {args.repeats} workers at {n:,} points"
          + ("" if args.skip_large else f", {args.large_repeats} at {large.n:,}"))
    print()
    print("| target | measured (error) | required | met |")
    print("|---|---|---|---|")
    for target, measured, required, met in rows:
        print(f"| {target} | {measured} | {required} | {'yes' if met else 'NO'} |")
    print()
    for name, m in med.items():
        print(f"- {name}: {m['setting']}, fit {m['fit']:.2f} s, eval {m['eval']:.3f} s, "
              f"error {m['error']:.1e}, peak {m['peak']:.0f} MiB")


if __name__ == "__main__":
    main()
