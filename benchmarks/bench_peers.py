"""fmmsolve against peer FMM codes (ferreus-bbfmm, fmm3dpy): time, achieved error, peak memory.

    python benchmarks/bench_peers.py [--n 1000000] [--distribution cube|sphere|clustered]
        [--eps 1e-6] [--dtype float64] [--rhs 1] [--repeats 3] [--samples 1000]
        [--peers fmmsolve ferreus fmm3dpy] [--ferreus-order 6 8] [--charges normal|uniform]
        [--kernel laplace|helmholtz|stokes] [--kd 10] [--json PATH]

All codes sum the 3-D Laplace potential phi_i = sum_{j != i} q_j / (4 pi |x_i - x_j|) at the
sources themselves, on the same points and charges (regenerated from ``--seed``). With
``--kernel helmholtz`` the sum is of exp(i k r) / (4 pi r) with complex charges (real and
imaginary parts drawn as for real ones), ``k = kd / D`` for the diameter D of the points'
bounding box (its diagonal, or with ``--diameter extent`` its largest side); fmm3dpy runs
``hfmm3d(zk=k)`` (its kernel has the 1/(4 pi) too) and ferreus, a
Laplace code, is skipped. With ``--kernel stokes`` it is the Stokeslet velocity of random
forces (3 per point) at viscosity 1, ``(f / r + r (r . f) / r^3) / (8 pi)``; fmm3dpy runs
``stfmm3d``, whose Stokeslet is the same (checked at the warm-up, as every convention is).

* fmmsolve: fit = ``A = FMMOperator(x, eps=eps, dtype=dtype)`` (operator disk cache as left by
  the warm-up), eval = ``A @ Q``.
* ferreus-bbfmm (Chebyshev black-box FMM, Rust): fit = ``FmmTree(x, order, Laplacian 1/r)``
  (tree, M2M and compressed M2L operators), eval = ``set_weights(Q)`` (upward pass) then
  ``evaluate(Q, x)`` (downward pass and leaves), divided by 4 pi. Float64 only.
* fmm3dpy (FMM3D, Fortran): no fit; eval = ``lfmm3d(eps=eps, sources=x.T, charges=Q.T, pg=1)``,
  which builds its tree on every call. Its kernel already has the 1/(4 pi). Float64 only.

Both peers drop the zero-distance (self) term, like ``fmmsolve.direct``; every worker checks its
code against the direct sum on a small problem before timing, so a change of convention (self
term, scaling) fails loudly instead of showing up as a large error.

Each measurement runs in its own subprocess (a worker: this script with ``--worker``), so that
the peak memory is the code's own: ``ru_maxrss`` at the worker's end ("peak MiB") and before the
fit ("base MiB": interpreter, imports, points, warm-up). A worker warms up on a small problem
(compilation, thread pools), fits once and evaluates twice; "eval s" is the second evaluation.
The codes alternate within each repeat (fmmsolve, ferreus, fmm3dpy, then again) and the table
gives medians over ``--repeats``. The error is the relative L2 error of the potentials at
``--samples`` random targets against ``fmmsolve.direct``, computed here, outside the workers.
"eval vs fmmsolve" is the peer's eval time over fmmsolve's matvec time; "fit+eval vs fmmsolve"
compares one whole product from scratch, the fair figure for fmm3dpy. The breakdown line gives
fmmsolve's per-operator shares of the matvec (``A.timings``; "python" is the rest of the wall
time: validation and reshaping outside the engine).

``--charges normal`` (default, as bench_fmm.py) gives signed charges; ``uniform`` gives positive
charges in [0, 1), whose smooth mean field makes every code's relative error 10-100x smaller.
``--json PATH`` also writes the medians for ``benchmarks/plots.py``.
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

DISTRIBUTIONS = {"cube": "uniform", "sphere": "sphere", "clustered": "clusters"}
CODES = {"fmmsolve": "fmmsolve", "ferreus": "ferreus_bbfmm", "fmm3dpy": "fmm3dpy"}
OPS = ["other", "p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p"]
WARMUP_N = 3000


def problem(args, n=None, seed=None):
    """Points (n, 3), charges (n, rhs) (complex for Helmholtz) and sampled target indices, all
    from the seed."""
    from fmmsolve.testing import point_cloud

    n = args.n if n is None else n
    seed = args.seed if seed is None else seed
    x = point_cloud(DISTRIBUTIONS[args.distribution], n, seed)
    rng = np.random.default_rng(seed + 1)
    shape = (n, args.rhs)
    draw = rng.standard_normal if args.charges == "normal" else rng.random
    if args.kernel == "stokes":  # a force per point and column: (n, 3 rhs)
        shape = (n, 3 * args.rhs)
    q = draw(shape) + 1j * draw(shape) if args.kernel == "helmholtz" else draw(shape)
    idx = np.random.default_rng(seed + 2).choice(n, min(args.samples, n), replace=False)
    return x, q, idx


def kernel_options(args, x):
    """The kernel's keyword arguments for ``fmmsolve`` at the points ``x``: the Helmholtz
    wavenumber ``kd / D``, the Stokes viscosity 1."""
    if args.kernel == "helmholtz":
        extent = x.max(axis=0) - x.min(axis=0)
        d = extent.max() if args.diameter == "extent" else np.linalg.norm(extent)
        return {"wavenumber": args.kd / float(d)}
    return {"viscosity": 1.0} if args.kernel == "stokes" else {}


def reference(args, x, targets, q):
    """The direct sum at ``targets``, (n_targets, columns) like every runner's potentials."""
    import fmmsolve

    q = q.reshape(len(x), -1, 3) if args.kernel == "stokes" else q
    pot = fmmsolve.direct(x, targets, q, kernel=args.kernel, **kernel_options(args, x))
    return pot.reshape(len(targets), -1)


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- one code's runner: (fit(x) -> state, evaluate(state, x, q) -> (n, rhs) potentials) -------

def fmmsolve_runner(args, setting):
    import fmmsolve

    def fit(x):
        return fmmsolve.FMMOperator(x, eps=setting, dtype=args.dtype, kernel=args.kernel,
                                    **kernel_options(args, x))

    def evaluate(A, x, q):
        if args.kernel == "stokes":
            return A.evaluate(q.reshape(len(x), -1, 3)).reshape(len(x), -1)
        return (A @ (q[:, 0] if args.rhs == 1 else q)).reshape(len(x), -1)

    return fit, evaluate


def ferreus_runner(args, setting):
    import ferreus_bbfmm as fb

    kernel = fb.KernelParams(fb.FmmKernelType.Laplacian)  # 1/r, self term skipped

    def fit(x):
        return fb.FmmTree(x, int(setting), kernel, True)  # sparse: no empty leaves

    def evaluate(tree, x, q):
        q = np.ascontiguousarray(q)
        tree.set_weights(q)
        return tree.evaluate(q, x).reshape(len(x), -1) / (4 * np.pi)  # 1-D when rhs = 1

    return fit, evaluate


def fmm3dpy_runner(args, setting):
    import fmm3dpy

    def evaluate(_, x, q):
        nd = q.shape[1]
        charges = q[:, 0].copy() if nd == 1 else np.asfortranarray(q.T)  # (n,) or (nd, n)
        sources = np.asfortranarray(x.T)
        if args.kernel == "stokes":  # forces (rhs, 3, n) or (3, n); the same 1 / (8 pi)
            forces = q.T if nd == 3 else q.T.reshape(nd // 3, 3, len(x))
            out = fmm3dpy.stfmm3d(eps=setting, sources=sources, ifppreg=1, nd=nd // 3,
                                  stoklet=np.asfortranarray(forces))
            if out.ier:
                raise RuntimeError(f"fmm3dpy returned ier={out.ier}")
            return out.pot.reshape(-1, len(x)).T
        if args.kernel == "laplace":
            out = fmm3dpy.lfmm3d(eps=setting, sources=sources, charges=charges, pg=1,
                                 nd=nd)  # kernel 1/(4 pi r), self term skipped
        else:
            out = fmm3dpy.hfmm3d(eps=setting, zk=kernel_options(args, x)["wavenumber"],
                                 sources=sources, charges=charges, pg=1,
                                 nd=nd)  # exp(i k r) / (4 pi r)
        if out.ier:
            raise RuntimeError(f"fmm3dpy returned ier={out.ier}")
        return out.pot.reshape(nd, len(x)).T

    return (lambda x: None), evaluate


RUNNERS = {"fmmsolve": fmmsolve_runner, "ferreus": ferreus_runner, "fmm3dpy": fmm3dpy_runner}


def worker(args):
    """Measure one code once; print one JSON line."""
    code, setting = args.worker, args.setting
    fit, evaluate = RUNNERS[code](args, setting)
    # Warm-up on a small problem: compile, start thread pools, and check the conventions.
    xs, qs, _ = problem(args, WARMUP_N, args.seed + 3)
    ps = evaluate(fit(xs), xs, qs)
    ref = reference(args, xs, xs[:200], qs)
    err = np.linalg.norm(ps[:200] - ref) / np.linalg.norm(ref)
    if not err < 0.5:  # a self term gives inf, a missing or extra 1/(4 pi) ~0.9 or ~11
        raise RuntimeError(f"{code} disagrees with the direct sum (error {err:.1e}): check its "
                           "self-interaction and 1/(4 pi) conventions")
    x, q, idx = problem(args)
    base = maxrss_mib()
    start = time.perf_counter()
    state = fit(x)
    t_fit = time.perf_counter() - start
    evals = []
    for _ in range(2):
        start = time.perf_counter()
        pot = evaluate(state, x, q)
        evals.append(time.perf_counter() - start)
    sample = pot[idx].astype(np.complex128 if args.kernel == "helmholtz" else np.float64)
    result = {"fit": t_fit, "eval": evals[-1], "pot": sample.view(np.float64).tolist(),
              "base": base, "peak": maxrss_mib()}
    if code == "fmmsolve":
        from _common import machine

        result.update(timings=state.timings, machine=machine(),
                      setting=f"eps {setting:g}, order {state.expansion_order}, {args.dtype}")
    elif code == "ferreus":
        result["setting"] = f"order {int(setting)}, float64"
    else:
        result["setting"] = f"eps {setting:g}, float64"
    print(json.dumps(result))


def run_worker(args, code, setting):
    """One worker subprocess; its result dict, or {"failed": reason}."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", code, "--setting", repr(setting)]
    for name in ("n", "distribution", "eps", "dtype", "rhs", "samples", "seed", "charges",
                 "kernel", "kd", "diameter"):
        cmd += [f"--{name}", str(getattr(args, name))]
    env = dict(os.environ)
    if args.threads:
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "RAYON_NUM_THREADS"):
            env[var] = str(args.threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--distribution", default="cube", choices=list(DISTRIBUTIONS))
    parser.add_argument("--eps", type=float, default=1e-6, help="fmmsolve's eps")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                        help="fmmsolve's precision (the peers are float64 only)")
    parser.add_argument("--rhs", type=int, default=1,
                        help="charge columns per product (all codes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", nargs="+", choices=list(CODES), default=list(CODES),
                        help="codes to run (default: all; missing ones print 'not installed')")
    parser.add_argument("--samples", type=int, default=1000, help="targets for the error")
    parser.add_argument("--ferreus-order", type=int, nargs="+", default=[6],
                        help="Chebyshev interpolation orders (one row each)")
    parser.add_argument("--fmm3d-eps", type=float, default=None, help="default: --eps")
    parser.add_argument("--charges", default="normal", choices=["normal", "uniform"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernel", default="laplace",
                        choices=["laplace", "helmholtz", "stokes"])
    parser.add_argument("--kd", type=float, default=10.0,
                        help="Helmholtz: k times the diameter D of the points' bounding box")
    parser.add_argument("--diameter", default="diagonal", choices=["diagonal", "extent"],
                        help="D: the box's diagonal, or its largest side (a sphere's diameter, "
                             "about the root cube's edge: |k| w_2 = k D / 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="set NUMBA/OMP/RAYON_NUM_THREADS in the workers (default: theirs)")
    parser.add_argument("--json", help="also write the medians to this JSON file")
    parser.add_argument("--worker", choices=list(CODES), help=argparse.SUPPRESS)
    parser.add_argument("--setting", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    rows = []  # (code, setting); the runs alternate over them within each repeat
    for code in CODES:
        if code not in args.peers or (code == "ferreus" and args.kernel != "laplace"):
            continue
        if code == "ferreus":
            rows += [(code, order) for order in args.ferreus_order]
        else:
            rows.append((code, args.eps if code == "fmmsolve" or args.fmm3d_eps is None
                         else args.fmm3d_eps))
    installed = {c: importlib.util.find_spec(m) is not None for c, m in CODES.items()}
    runs = {row: [] for row in rows}
    for rep in range(args.repeats):
        for row in rows:
            if installed[row[0]]:
                print(f"repeat {rep + 1}/{args.repeats}: {row[0]} {row[1]:g}", file=sys.stderr,
                      flush=True)
                runs[row].append(run_worker(args, *row))

    x, q, idx = problem(args)
    ref = reference(args, x, x[idx], q)
    ref = ref.astype(np.complex128).view(np.float64) if args.kernel == "helmholtz" else ref
    norm = np.linalg.norm(ref)
    from _common import machine, write_json

    ok = [r for row in rows if row[0] == "fmmsolve" for r in runs[row] if "failed" not in r]
    print(f"machine: {ok[0]['machine'] if ok else machine()}")
    kernel = (f"helmholtz k D = {args.kd:g} (D the box's {args.diameter})"
              if args.kernel == "helmholtz" else args.kernel)
    print(f"N {args.n:,}, {kernel}, {args.distribution}, {args.charges} charges, {args.rhs} rhs, "
          f"error at {len(idx)} targets, medians of {args.repeats} (alternating workers)")
    print()
    print("| code | setting | fit s | eval s | error | peak MiB | base MiB | eval vs fmmsolve "
          "| fit+eval vs fmmsolve |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for row in rows:
        good = [r for r in runs[row] if "failed" not in r]
        if good:
            med[row] = {k: statistics.median(r[k] for r in good)
                        for k in ("fit", "eval", "peak", "base")}
            med[row]["error"] = statistics.median(
                float(np.linalg.norm(np.array(r["pot"]) - ref) / norm) for r in good)
            med[row]["setting"] = good[0]["setting"]
    base = next((m for row, m in med.items() if row[0] == "fmmsolve"), None)
    for row in rows:
        code, setting = row
        if row not in med:
            why = "not installed" if not installed[code] else runs[row][0]["failed"]
            label = f"order {setting}" if code == "ferreus" else f"eps {setting:g}"
            print(f"| {code} | {label} | {why} | | | | | | |")
            continue
        m = med[row]
        fit = "-" if code == "fmm3dpy" else f"{m['fit']:.2f}"
        ratios = (f"{m['eval'] / base['eval']:.2f} | "
                  f"{(m['fit'] + m['eval']) / (base['fit'] + base['eval']):.2f}") if base else " |"
        print(f"| {code} | {m['setting']} | {fit} | {m['eval']:.3f} | {m['error']:.1e} "
              f"| {m['peak']:.0f} | {m['base']:.0f} | {ratios} |")
    shares = {}
    if ok:
        wall = statistics.median(r["eval"] for r in ok)
        shares = {o: statistics.median(r["timings"].get(o, 0.0) for r in ok) / wall for o in OPS}
        python = statistics.median(r["eval"] - sum(r["timings"].values()) for r in ok) / wall
        print()
        print("fmmsolve matvec breakdown: " + ", ".join(f"{o} {s:.0%}" for o, s in shares.items())
              + f", python {python:.1%}")
    if args.json:
        write_json(args.json, {"n": args.n, "distribution": args.distribution, "rhs": args.rhs,
                               "repeats": args.repeats, "breakdown": shares,
                               "rows": [{"code": code, **m} for (code, _), m in med.items()]})


if __name__ == "__main__":
    main()
