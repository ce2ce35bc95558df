"""Distributed FMM on one machine: points, bytes and matvec time per rank for P = 1, 2, 4.

    python benchmarks/bench_mpi.py [--n 50000] [--ranks 1 2 4] [--eps 1e-6]
                                   [--distributions uniform clusters] [--threads 1]

Runs itself under ``mpiexec -n P`` (the mpiexec next to this Python) once per P, with
``NUMBA_NUM_THREADS`` (and the BLAS thread counts) set to ``--threads`` per rank, so the ranks
do not oversubscribe the cores through threads; P ranks still need P cores, so on a machine
with fewer cores the time of the larger P measures contention, not scaling. Every rank holds
an equal, spatially random share of the points, so the set-up redistributes all of them.

Columns (max and min over ranks where two numbers are given): the cut level, targets owned,
sources held (own + ghosts), boxes of the rank's tree, bytes of its tree, lists and index
arrays (``DistributedFMMOperator.stats``; the plan is shared by every problem and not counted),
fit seconds and the median seconds of one matvec (the slowest rank's, after one warm-up),
and the relative L2 difference from the serial FMMOperator (P = 1 is the serial operator's
own tree, so 0 there up to rounding).
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


def worker(args):
    from mpi4py import MPI

    import fmmsolve
    from fmmsolve.distributed import DistributedFMMOperator
    from fmmsolve.testing import point_cloud

    comm = MPI.COMM_WORLD
    x = point_cloud(args.distribution, args.n, 0)
    q = np.random.default_rng(1).standard_normal(args.n)
    mine = np.array_split(np.random.default_rng(2).permutation(args.n), comm.size)[comm.rank]
    comm.Barrier()
    t0 = time.perf_counter()
    A = DistributedFMMOperator(x[mine], comm=comm, eps=args.eps)
    fit = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    A @ q[mine]  # warm-up: compile the numba-mpi exchange
    times = []
    for _ in range(args.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        y = A @ q[mine]
        times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    serial = np.zeros_like(y)
    if args.check:
        serial = (fmmsolve.FMMOperator(x, eps=args.eps) @ q)[mine]
    num = comm.allreduce(float(np.sum((y - serial) ** 2)))
    den = comm.allreduce(float(np.sum(serial ** 2)))
    stats = comm.gather(A.stats())
    if comm.rank == 0:
        print(json.dumps({"P": comm.size, "stats": stats, "fit": fit,
                          "matvec": float(np.median(times)),
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
    print(f"n = {args.n}, eps = {args.eps}, NUMBA_NUM_THREADS = {threads} per rank, "
          f"{os.cpu_count()} cores")
    head = (f"{'points':>9} {'P':>2} {'cut':>3} {'targets/rank':>13} {'sources/rank':>13} "
            f"{'boxes/rank':>11} {'MB/rank':>11} {'fit s':>6} {'matvec s':>8} "
            f"{'vs serial':>9}")
    print(head)
    for dist in args.distributions:
        for p in args.ranks:
            cmd = [mpiexec, "-n", str(p), sys.executable, __file__, "--worker",
                   "--n", str(args.n), "--eps", str(args.eps), "--distribution", dist,
                   "--repeats", str(args.repeats)] + (["--check"] if args.check else [])
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
            if proc.returncode:
                sys.exit(f"P={p} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            st = row["stats"]

            def span(key, scale=1.0, fmt="{:.0f}"):
                values = [s[key] * scale for s in st]
                return (fmt.format(max(values)) + "/" + fmt.format(min(values))) \
                    if p > 1 else fmt.format(values[0])

            diff = "-" if row["diff"] is None else f"{row['diff']:.1e}"
            print(f"{dist:>9} {p:>2} {st[0]['cut_level']:>3} {span('own_targets'):>13} "
                  f"{span('held_sources'):>13} {span('boxes'):>11} "
                  f"{span('engine_bytes', 1e-6, '{:.1f}'):>11} {row['fit']:>6.1f} "
                  f"{row['matvec']:>8.3f} {diff:>9}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
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
