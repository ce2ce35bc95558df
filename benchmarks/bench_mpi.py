"""Distributed FMM on one machine: strong and weak scaling, bytes per rank, the time of a
matvec split into its parts, and the balance of clustered points.

    python benchmarks/bench_mpi.py [--n 100000] [--ranks 1 2 3 4] [--eps 1e-6]
                                   [--distributions uniform clusters] [--threads 1]
                                   [--mode strong|weak] [--check]

Runs itself under ``mpiexec -n P`` (the mpiexec next to this Python) once per P, with
``NUMBA_NUM_THREADS`` (and the BLAS thread counts) set to ``--threads`` per rank, so the ranks
do not oversubscribe the cores through threads; P ranks still need P cores, so on a machine
with fewer cores the time of the larger P measures contention, not scaling. Every rank holds
an equal, spatially random share of the points, so the set-up redistributes all of them.
``--mode strong`` keeps ``n`` points for every P; ``--mode weak`` gives each rank ``n`` points
(``n P`` in all).

Columns (max/min over ranks where two numbers are given): the cut level, targets owned,
sources held (own + ghosts), the load (``Partition.loads``: sources and targets of the rank's
pieces and a cost per whole cut box) of the heaviest rank over the mean, MB per rank (tree,
lists and index arrays of the rank's engine and top, ``DistributedFMMOperator.stats``; the
plan is shared by every problem and not counted), MB per rank of a GMRES(30) Krylov basis on
rank-local vectors (34 vectors of the rank's length), fit seconds, the median seconds of one
matvec (the slowest rank's, after one warm-up) and its parts on the slowest rank: local FMM
(the rank engine's passes), route (the two exchanges), allreduce (the sum of the cut boxes'
multipoles; it waits for the slowest rank) and top (the top tree's passes); the local FMM's
max/mean over ranks in wall time and in CPU time (its passes' ``process_time``, fair where P
ranks share fewer cores), and the relative L2 difference from the serial FMMOperator
(``--check``).
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def _cpu_timers(A):
    """CPU seconds (``time.process_time``) of the rank engine's passes and of the far field
    inside them, summed over the products that follow: the local FMM's work, which the
    oversubscribed cores of P > 2 ranks on two leave fair where wall times are not."""
    cpu = {"evaluate": 0.0, "far_field": 0.0}

    def timed(owner, name):
        inner = getattr(owner, name)

        def run(*a, **k):
            t0 = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                cpu[name] += time.process_time() - t0
        setattr(owner, name, run)

    if A.engine is not None:
        timed(A.engine, "evaluate")
    timed(A.top, "far_field")
    return cpu


def worker(args):
    from mpi4py import MPI

    import fmmsolve
    from fmmsolve.distributed import DistributedFMMOperator
    from fmmsolve.testing import point_cloud

    comm = MPI.COMM_WORLD
    n = args.n * (comm.size if args.mode == "weak" else 1)
    x = point_cloud(args.distribution, n, 0)
    q = np.random.default_rng(1).standard_normal(n)
    mine = np.array_split(np.random.default_rng(2).permutation(n), comm.size)[comm.rank]
    comm.Barrier()
    t0 = time.perf_counter()
    A = DistributedFMMOperator(x[mine], comm=comm, eps=args.eps)
    fit = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    A @ q[mine]  # warm-up: compile the numba-mpi exchange
    cpu = _cpu_timers(A)
    times, parts = [], []
    for _ in range(args.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        y = A @ q[mine]
        times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        parts.append(A.timings)
    serial = np.zeros_like(y)
    if args.check:
        serial = (fmmsolve.FMMOperator(x, eps=args.eps) @ q)[mine]
    num = comm.allreduce(float(np.sum((y - serial) ** 2)))
    den = comm.allreduce(float(np.sum(serial ** 2)))
    split = {}
    for key in ("route", "allreduce", "top"):
        split[key] = float(np.median([t.get(key, 0.0) for t in parts]))
    split["local"] = float(np.median([sum(v for k, v in t.items()
                                          if k not in ("route", "allreduce", "top"))
                                      for t in parts]))
    split["cpu"] = (cpu["evaluate"] - cpu["far_field"]) / args.repeats
    part = A.partition
    load = part.loads()
    stats = comm.gather({**A.stats(), **split, "krylov_bytes": 34 * 8 * len(mine)})
    if comm.rank == 0:
        print(json.dumps({"P": comm.size, "n": n, "stats": stats, "fit": fit,
                          "matvec": float(np.median(times)),
                          "load": float(load.max() / load.mean()),
                          "diff": float(np.sqrt(num / den)) if args.check else None}))


def launch(args):
    mpiexec = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent)) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('mpiexec not found: pip install "fmmsolve[mpi]"')
    threads = str(args.threads)
    env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent),
                                                       os.environ.get("PYTHONPATH")]))}
    print(f"{args.mode} scaling, n = {args.n}{' per rank' * (args.mode == 'weak')}, "
          f"eps = {args.eps}, NUMBA_NUM_THREADS = {threads} per rank, {os.cpu_count()} cores")
    print("| points | P | n | cut | targets/rank | sources/rank | load max/mean | MB/rank | "
          "Krylov MB/rank | fit s | matvec s | local FMM s | route s | allreduce s | top s | "
          "local max/mean | local CPU max/mean | vs serial |")
    print("|---|" + "--:|" * 17)
    for dist in args.distributions:
        for p in args.ranks:
            cmd = [mpiexec, "-n", str(p), sys.executable, __file__, "--worker",
                   "--n", str(args.n), "--eps", str(args.eps), "--distribution", dist,
                   "--repeats", str(args.repeats), "--mode", args.mode] \
                + (["--check"] if args.check else [])
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
            if proc.returncode:
                sys.exit(f"P={p} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            st = row["stats"]

            def span(key, scale=1.0, fmt="{:.0f}"):
                values = [s[key] * scale for s in st]
                return (fmt.format(max(values)) + " / " + fmt.format(min(values))) \
                    if p > 1 else fmt.format(values[0])

            mb = [(s["engine_bytes"] + s["top_bytes"]) * 1e-6 for s in st]
            slowest = max(st, key=lambda s: s["local"] + s["top"])
            local = [s["local"] for s in st]
            cpu = [s["cpu"] for s in st]
            diff = "-" if row["diff"] is None else f"{row['diff']:.1e}"
            print(f"| {dist} | {p} | {row['n']} | {st[0]['cut_level']} | "
                  f"{span('own_targets')} | {span('held_sources')} | {row['load']:.2f} | "
                  f"{max(mb):.1f} | {span('krylov_bytes', 1e-6, '{:.1f}')} | "
                  f"{row['fit']:.1f} | {row['matvec']:.3f} | {slowest['local']:.3f} | "
                  f"{slowest['route']:.3f} | {slowest['allreduce']:.3f} | "
                  f"{slowest['top']:.3f} | {max(local) / np.mean(local):.2f} | "
                  f"{max(cpu) / np.mean(cpu):.2f} | {diff} |",
                  flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--mode", choices=["strong", "weak"], default="strong")
    parser.add_argument("--distributions", nargs="+", default=["uniform", "clusters"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", action="store_true",
                        help="also compare with the serial FMMOperator on every rank")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribution", default="uniform", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else launch(args)


if __name__ == "__main__":
    main()
