"""Regenerate every recorded benchmark table with one command.

    python benchmarks/run_all.py             # all scripts, about 80 minutes on 2 cores
    python benchmarks/run_all.py --quick     # small sizes, a smoke test (prints only)
    python benchmarks/run_all.py --only bench_fmm bench_targets

Runs each script of :data:`SUITE` one after another, never two at once, and writes their
output between the ``results`` markers of ``benchmarks/README.md``. It adds the date, the
machine and the git commit. The text around the markers (how to read the tables, what is
missing) is written by hand. ``--quick`` and ``--only`` print the output instead of writing it,
so a partial run never replaces the full record.
"""

import argparse
import datetime
import pathlib
import subprocess
import sys

from _common import machine

HERE = pathlib.Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN, END = "<!-- results: begin (benchmarks/run_all.py) -->", "<!-- results: end -->"

#: (title, script, full-run arguments, quick arguments)
SUITE = [
    ("Direct sum", "bench_direct.py", [], ["--n", "4000", "--repeats", "2"]),
    ("Octree and interaction lists", "bench_tree.py",
     ["--distributions", "uniform", "sphere", "clusters"],
     ["--sizes", "20000", "--repeats", "2"]),
    ("FMM matvec: breakdown and scaling", "bench_fmm.py", ["--sizes", "100000", "1000000"],
     ["--sizes", "20000", "--repeats", "2"]),
    ("Accuracy", "accuracy_table.py", [], ["--n", "2000"]),
    ("Plan cache", "bench_cache.py", [], ["--n", "5000", "--orders", "4", "--repeats", "1"]),
    ("Plan cache over a frequency sweep", "bench_cache_sweep.py", ["--limit", "512M"],
     ["--n", "5000", "--wavenumbers", "4"]),
    ("Save and load", "bench_io.py", [], ["--sizes", "20000", "--repeats", "2"]),
    ("Against the peers, cube", "bench_peers.py",
     ["--distribution", "cube", "--ferreus-order", "6", "8"],
     ["--n", "20000", "--repeats", "1", "--ferreus-order", "6"]),
    ("Against the peers, sphere", "bench_peers.py",
     ["--distribution", "sphere", "--ferreus-order", "6", "8"],
     ["--n", "20000", "--repeats", "1", "--distribution", "sphere", "--ferreus-order", "6"]),
    ("Targets: precision, right-hand sides, scaling, memory, start-up", "bench_targets.py", [],
     ["--n", "20000", "--large-n", "60000", "--repeats", "1"]),
    ("Fit by phase against one matvec", "bench_fit.py", [],
     ["--sizes", "20000", "--eps", "1e-3", "--repeats", "1"]),
    ("Many right-hand sides", "bench_columns.py", [],
     ["--n", "20000", "--columns", "1", "4", "--repeats", "1"]),
    ("Wave kernels against Laplace", "bench_wave.py", ["--dipoles"],
     ["--sizes", "20000", "--direct-n", "1000", "--repeats", "1"]),
    ("Wave kernels against Laplace, float32", "bench_wave.py",
     ["--dtype", "float32", "--eps", "1e-4", "--dipoles"],
     ["--sizes", "0", "--direct-n", "1000", "--repeats", "1", "--dtype", "float32"]),
]
# Helmholtz against fmm3dpy at equal or better achieved error: hfmm3d reaches 2-4e-8 at both
# eps 1e-5 and 1e-6, which fmmsolve first beats at eps 1e-8 (3-7e-9). One repeat: an hfmm3d
# call at 10^6 points takes one to two minutes.
SUITE += [(f"Against fmm3dpy, Helmholtz, {where}, k D = {kd}", "bench_peers.py",
           ["--kernel", "helmholtz", "--kd", kd, "--distribution", where, "--eps", "1e-8",
            "--fmm3d-eps", "1e-6", "--peers", "fmmsolve", "fmm3dpy", "--repeats", "1"],
           ["--n", "20000", "--kernel", "helmholtz", "--kd", kd, "--distribution", where,
            "--peers", "fmmsolve", "fmm3dpy", "--repeats", "1"])
          for where in ("cube", "sphere") for kd in ("1", "10")]
# Stokes: the accuracy grid, the matvec against Laplace's, and stfmm3d at equal or better
# achieved error (fmmsolve at eps 3e-7 against stfmm3d's 1e-6: at eps 1e-6 stfmm3d reached
# 5.8e-7 at 10^5 points, fmmsolve 6.7e-7). stfmm3d takes minutes per call at 10^6 points.
SUITE += [("Stokes: accuracy", "bench_stokes.py", ["accuracy"],
           ["accuracy", "--n", "20000", "--eps", "1e-3", "1e-6"]),
          ("Stokes: accuracy of the stresslet", "bench_stokes.py", ["accuracy", "--stresslets"],
           ["accuracy", "--stresslets", "--n", "20000", "--eps", "1e-3", "1e-6"]),
          ("Stokes: matvec against Laplace's", "bench_stokes.py", ["speed"],
           ["speed", "--n", "50000", "--repeats", "1"])]
# On the sphere at 10^6 points stfmm3d is killed for memory on a 24 GB machine: 5 x 10^5.
SUITE += [(f"Against fmm3dpy, Stokes, {where}", "bench_peers.py",
           ["--kernel", "stokes", "--distribution", where, "--eps", "3e-7", "--fmm3d-eps", "1e-6",
            "--peers", "fmmsolve", "fmm3dpy", *(["--n", "500000"] if where == "sphere" else [])],
           ["--n", "20000", "--kernel", "stokes", "--distribution", where, "--peers",
            "fmmsolve", "fmm3dpy", "--repeats", "1"])
          for where in ("cube", "sphere")]

# Helmholtz at high frequencies (issue 22): the accuracy grid, the matvec's growth with k D at 30
# points per wavelength (10^4 to 10^6 points: k D 12 to 118), the operator's bytes per level at k D
# 100, and hfmm3d on 2 x 10^5 sphere points at equal or better achieved error: at k D 30 hfmm3d's
# eps 1e-6 reaches 1.3e-8, which fmmsolve beats at eps 3e-8 (6e-10; 3.5e-8 at its eps 1e-6).
SUITE += [("Helmholtz at high frequencies: accuracy", "bench_helmholtz_hf.py", ["accuracy"],
           ["accuracy", "--kd", "1", "30", "--eps", "1e-3", "1e-6"]),
          ("Helmholtz at high frequencies: growth with k D", "bench_helmholtz_hf.py",
           ["growth", "--kd", "12", "24", "48", "96", "118", "--ppw", "30"],
           ["growth", "--kd", "8", "16", "--ppw", "10"]),
          ("Helmholtz at high frequencies: operator bytes per level", "bench_helmholtz_hf.py",
           ["state", "--n", "200000", "--kd", "100"], ["state", "--n", "20000", "--kd", "30"])]
SUITE += [(f"Against fmm3dpy, Helmholtz, sphere, k D = {kd} (D the extent)", "bench_peers.py",
           ["--kernel", "helmholtz", "--kd", kd, "--diameter", "extent", "--distribution",
            "sphere", "--n", "200000", "--eps", eps, "--fmm3d-eps", "1e-6", "--peers",
            "fmmsolve", "fmm3dpy", "--repeats", "2"],
           ["--n", "20000", "--kernel", "helmholtz", "--kd", kd, "--diameter", "extent",
            "--distribution", "sphere", "--peers", "fmmsolve", "fmm3dpy", "--repeats", "1"])
          for kd, eps in (("30", "3e-8"), ("100", "1e-6"))]
# The distributed FMM (needs the mpi extra; runs itself under mpiexec, one thread per rank).
SUITE += [("Distributed: strong scaling", "bench_mpi.py",
           ["--n", "100000", "--distributions", "uniform", "clusters", "sphere"],
           ["--n", "20000", "--ranks", "1", "2", "--repeats", "1"]),
          ("Distributed: weak scaling", "bench_mpi.py", ["--mode", "weak", "--n", "25000"],
           ["--mode", "weak", "--n", "10000", "--ranks", "1", "2", "--repeats", "1"]),
          ("Distributed: agreement with the serial operator", "bench_mpi.py",
           ["--n", "20000", "--distributions", "uniform", "clusters", "sphere", "--check",
            "--repeats", "1"], ["--n", "5000", "--ranks", "2", "--check", "--repeats", "1"]),
          ("Distributed: Krylov memory per rank", "bench_krylov_memory.py", [],
           ["--n", "200000", "--ranks", "1", "2"]),
          ("Distributed: the scaling model", "mpi_model.py", [], [])]


def run(script, arguments):
    """Output of one script; stops the whole run if it fails."""
    cmd = [sys.executable, str(HERE / script), *arguments]
    print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{script} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout.strip()


def section(title, script, arguments, output):
    """Markdown for one script: the command, then its output. Markdown tables stay tables."""
    command = " ".join(["python", f"benchmarks/{script}", *arguments])
    table = any(line.startswith("|") for line in output.splitlines())
    if not table:
        body = f"```\n{output}\n```"
    else:  # a blank line before each table, so that it renders as one
        lines, body_lines = output.splitlines(), []
        for i, line in enumerate(lines):
            if line.startswith("|") and i and lines[i - 1].strip() and \
                    not lines[i - 1].startswith("|"):
                body_lines.append("")
            body_lines.append(line)
        body = "\n".join(body_lines)
    return f"### {title}\n\n`{command}`\n\n{body}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print, do not record")
    parser.add_argument("--only", nargs="+", help="script names (without .py); print only")
    args = parser.parse_args()
    chosen = [s for s in SUITE if not args.only or s[1][:-3] in args.only]
    if not chosen:
        sys.exit(f"--only matches no script of {[s[1][:-3] for s in SUITE]}")
    where = subprocess.run([sys.executable, "-c", "import fmmsolve; print(fmmsolve.__file__)"],
                           cwd=HERE, capture_output=True, text=True).stdout.strip()
    if not pathlib.Path(where).resolve().is_relative_to(HERE.parent):
        print(f"warning: the scripts import the fmmsolve installed at {where}, not this "
              f"checkout ({HERE.parent}); run `python -m pip install -e .` to time this one",
              file=sys.stderr)
    parts = []
    for title, script, full, quick in chosen:
        arguments = quick if args.quick else full
        parts.append(section(title, script, arguments, run(script, arguments)))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    header = (f"Recorded {datetime.date.today().isoformat()} at commit {commit} on: "
              f"{machine()}.\n")
    text = "\n".join([header, *parts])
    if args.quick or args.only:
        print(text)
        return
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"{README} lacks the markers {BEGIN!r} and {END!r}")
    head, rest = readme.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n\n{text}\n{END}{tail}")
    print(f"wrote {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
