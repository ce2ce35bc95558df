"""Memory per rank of the Krylov vectors: fmmsolve.distributed.gmres on rank-local pieces
against SciPy's gmres on replicated vectors (``A.replicated()``'s layout), for P = 1..4.

    python benchmarks/bench_krylov_memory.py [--n 2000000] [--ranks 1 2 3 4] [--restart 30]

Runs itself under ``mpiexec -n P``. The operator is a diagonal matrix (no FMM: the memory of
the FMM's tree and lists per rank is bench_mpi.py's), so what is measured is the solvers' own
allocations: the peak of ``tracemalloc`` (NumPy's arrays included) during one restart cycle of
``restart`` iterations, max over ranks, in MB, float64.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def worker(args):
    from mpi4py import MPI
    from scipy.sparse.linalg import LinearOperator
    from scipy.sparse.linalg import gmres as scipy_gmres

    from fmmsolve.distributed import gmres

    comm = MPI.COMM_WORLD
    bounds = np.linspace(0, args.n, comm.size + 1).astype(int)
    lo, hi = bounds[comm.rank], bounds[comm.rank + 1]
    solve = dict(rtol=1e-14, restart=args.restart, maxiter=1)
    diag = 1.0 + np.arange(lo, hi) / args.n

    def peak(run):
        tracemalloc.start()
        run()
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return comm.allreduce(out, op=MPI.MAX) / 1e6

    local = LinearOperator((hi - lo,) * 2, matvec=lambda x: diag * x, dtype=np.float64)
    b = np.ones(hi - lo)
    distributed = peak(lambda: gmres(local, b, comm=comm, **solve))
    everywhere = 1.0 + np.arange(args.n) / args.n  # every rank runs SciPy on the whole vector
    whole = LinearOperator((args.n,) * 2, matvec=lambda x: everywhere * x, dtype=np.float64)
    replicated = peak(lambda: scipy_gmres(whole, np.ones(args.n), **solve))
    if comm.rank == 0:
        print(json.dumps({"P": comm.size, "distributed": distributed, "replicated": replicated,
                          "model": (args.restart + 4) * 8 * max(np.diff(bounds)) / 1e6}))


def launch(args):
    mpiexec = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent)) \
        or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('mpiexec not found: pip install "fmmsolve[mpi]"')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
    print(f"n = {args.n}, GMRES restart {args.restart}, float64; peak MB per rank")
    print("| P | distributed gmres | (restart + 4) n / P x 8 B | SciPy gmres, replicated |")
    print("|--:|--:|--:|--:|")
    for p in args.ranks:
        cmd = [mpiexec, "-n", str(p), sys.executable, __file__, "--worker", "--n", str(args.n),
               "--restart", str(args.restart)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            sys.exit(f"P={p} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {p} | {row['distributed']:.0f} | {row['model']:.0f} | "
              f"{row['replicated']:.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--restart", type=int, default=30)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else launch(args)


if __name__ == "__main__":
    main()
