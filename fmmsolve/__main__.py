"""Command line: ``python -m fmmsolve <command>`` (or the ``fmmsolve`` console script).

Commands:

* ``demo``: fits the Laplace FMM on a built-in point cloud (200,000 points on a sphere by
  default). It prints the fit and matvec times and the error against a sampled direct sum,
  then solves a second-kind integral equation with GMRES.
* ``bench``: one benchmark table for a chosen N, eps, distribution, dtype and number of
  right-hand sides. It gives the median matvec time, the per-operator shares and the error.
* ``info``: versions, threads, threading layer, and the cache location and size.
* ``cache clear``: empties the disk cache of precomputed operators.

Results go to standard output. Progress goes to standard error, as the library's log lines
(logger ``fmmsolve``) with timings. ``--quiet`` silences it, and ``--verbose`` adds the
per-evaluation lines; both may come before or after the command. A bad argument or value ends
the command with one line on standard error and exit code 2, never a traceback. ``--help``
shows plain text (``DESCRIPTION``, not this docstring) and every option's default.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
import time

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres

from . import FMMOperator, __version__, cache, direct
from .testing import DISTRIBUTIONS, point_cloud, relative_l2_error


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _point_count(text):
    """``--n``: at least 2 points. The reported error is relative to the exact potential, and
    one point has none (its own pair is skipped), so ``--n 1`` could only print "error nan"."""
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"expected at least 2 points, got {text!r} (the error is measured relative to the "
            f"potential, which is 0 for a single point)")
    return value


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start


def _numba_cache_is_cold():
    """True when Numba's disk cache holds no compiled M2L yet (a first run, which compiles
    every pass), False when it does, None when that cannot be told (no disk cache, or Numba's
    internals changed). Reads one file's existence."""
    from .operators import m2l

    try:
        return not os.path.exists(m2l.svd._translate_chunks._cache._cache_file._index_path)
    except AttributeError:
        return None


@contextlib.contextmanager
def _log_prefix(prefix: str):
    """Prefix the library's log lines (logger ``fmmsolve``) with ``prefix`` inside the block."""
    def add(record):
        record.msg = f"{prefix}{record.msg}"
        return True

    logger = logging.getLogger("fmmsolve")
    logger.addFilter(add)
    try:
        yield
    finally:
        logger.removeFilter(add)


def _warm_up(eps, seed, dtype=None, rhs=1):
    """One product on a small clustered problem whose tree has every list (U, V, W and X), so
    that the timings after it exclude compiling (or loading) every pass. Its progress lines
    are labelled "warm-up", after a line that says whether this run compiles."""
    log = logging.getLogger("fmmsolve")
    cold = _numba_cache_is_cold()
    log.info("warm-up on 3,000 points (not timed below): %s",
             "compiling the Numba kernels (first run only, 20 s to a minute; Numba caches them "
             "on disk)" if cold else "loading the compiled kernels from Numba's disk cache"
             if cold is False else "compiling the Numba kernels on first use (cached afterwards)")
    small = point_cloud("clusters", 3000, seed)
    with _log_prefix("warm-up: "):
        FMMOperator(small, eps=eps, dtype=dtype, leaf_size=16) @ np.ones((3000, rhs))


def demo(n: int, distribution: str, eps: float, leaf_size, seed: int, out=None) -> None:
    """Fit an FMM on ``n`` built-in points, check it against the direct sum, solve with GMRES."""
    say = lambda *a: print(*a, file=out or sys.stdout)  # noqa: E731
    say(f"fmmsolve {__version__} demo: Laplace FMM on {n:,} points ('{distribution}'), "
        f"eps={eps:g}")
    points = point_cloud(distribution, n, seed)
    rng = np.random.default_rng(seed)
    charges = rng.standard_normal(n)

    _warm_up(eps, seed)

    A, t_fit = _timed(FMMOperator, points, eps=eps, leaf_size=leaf_size)
    pot, t_matvec = _timed(A.matvec, charges)
    tree = A.tree
    say(f"  fit     {t_fit:.2f} s  (" + ", ".join(  # validate, tree, lists, plan, bind
        f"{k} {v:.2f}" for k, v in A.fit_timings.items()) + ")")
    say(f"  tree    depth {tree['depth']}, {tree['n_leaves']:,} leaves, expansion order "
        f"{A.expansion_order}, mean list sizes U {tree['mean_u']:.1f} V {tree['mean_v']:.1f} "
        f"W {tree['mean_w']:.1f} X {tree['mean_x']:.1f}")
    say(f"  matvec  {t_matvec:.2f} s  (" + ", ".join(
        f"{k} {v:.2f}" for k, v in A.timings.items()) + ")")

    sample = rng.choice(n, size=min(n, 1000), replace=False)
    direct(points[:10], points[sample[:10]], charges[:10])  # compile outside the timing
    exact, t_direct = _timed(direct, points, points[sample], charges)
    err = relative_l2_error(pot[sample], exact)
    say(f"  error   relative L2 {err:.2e} at {len(sample):,} sampled targets (requested "
        f"{eps:g}); the direct sum at those targets took {t_direct:.2f} s")

    # A second-kind integral equation on the unit sphere: (I + w A) x = 1, w = area / m.
    m = min(n, 20_000)
    B = FMMOperator(point_cloud("sphere", m, seed), eps=eps, leaf_size=leaf_size)
    w = 4 * np.pi / m
    system = LinearOperator((m, m), matvec=lambda x: x + w * (B @ x), dtype=B.dtype)
    iterations = []
    start = time.perf_counter()
    x, info = gmres(system, np.ones(m), rtol=1e-8, maxiter=200, callback=iterations.append,
                    callback_type="pr_norm")
    t_gmres = time.perf_counter() - start
    residual = np.linalg.norm(system @ x - 1.0) / np.sqrt(m)
    say(f"  gmres   (I + w A) x = 1 on {m:,} sphere points: {len(iterations)} iterations, "
        f"{t_gmres:.2f} s, relative residual {residual:.1e}, info {info}")


OPERATORS = ("p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p")


def bench(n: int, distribution: str, eps: float, dtype: str, rhs: int, repeats: int,
          leaf_size, seed: int, out=None) -> None:
    """Time fit and matvec on built-in points: medians, per-operator shares, sampled error."""
    say = lambda *a: print(*a, file=out or sys.stdout)  # noqa: E731
    log = logging.getLogger("fmmsolve")
    points = point_cloud(distribution, n, seed)
    rng = np.random.default_rng(seed)
    charges = rng.standard_normal((n, rhs)) if rhs > 1 else rng.standard_normal(n)
    _warm_up(eps, seed + 1, dtype, rhs)
    A, t_fit = _timed(FMMOperator, points, eps=eps, dtype=dtype, leaf_size=leaf_size)
    A @ charges
    runs = []
    for i in range(repeats):
        log.info("bench: matvec %d of %d", i + 1, repeats)
        pot, seconds = _timed(A.matmat if rhs > 1 else A.matvec, charges)
        runs.append((seconds, dict(A.timings)))
    wall = statistics.median(r[0] for r in runs)
    shares = {o: statistics.median(r[1].get(o, 0.0) for r in runs) / wall for o in OPERATORS}
    sample = rng.choice(n, size=min(n, 1000), replace=False)
    log.info("bench: direct sum at %d sampled targets", len(sample))
    exact = direct(points, points[sample], charges)
    err = relative_l2_error(pot[sample], exact)
    say(f"fmmsolve {__version__} bench: {n:,} points ('{distribution}'), eps {eps:g}, {dtype}, "
        f"{rhs} right-hand side{'s' if rhs > 1 else ''}, median of {repeats}")
    say(f"{'order':>5} {'leaves':>8} {'fit s':>7} {'matvec s':>9} {'us/pt':>7} {'error':>8}  "
        + " ".join(f"{o:>4}" for o in OPERATORS))
    say(f"{A.expansion_order:>5} {A.tree['n_leaves']:>8,} {t_fit:>7.3f} {wall:>9.3f} "
        f"{wall / n * 1e6:>7.2f} {err:>8.1e}  "
        + " ".join(f"{shares[o]:>4.0%}" for o in OPERATORS))


def info(out=None) -> None:
    """Versions, threads and the cache, one fact per line."""
    import numba
    import scipy
    from threadpoolctl import threadpool_info

    say = lambda *a: print(*a, file=out or sys.stdout)  # noqa: E731
    say(f"fmmsolve        {__version__} ({os.path.dirname(os.path.abspath(__file__))})")
    say(f"python          {platform.python_version()} ({sys.executable})")
    say(f"numpy           {np.__version__}")
    say(f"scipy           {scipy.__version__}")
    say(f"numba           {numba.__version__}")
    say(f"cpu cores       {os.cpu_count()}")
    say(f"numba threads   {numba.get_num_threads()} "
        f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})")
    say(f"threading layer {_threading_layer()}")
    for pool in (p for p in threadpool_info() if p.get("user_api") == "blas"):
        say(f"blas            {pool.get('internal_api')} {pool.get('version')}, "
            f"{pool.get('num_threads')} threads (held to 1 inside evaluations)")
    location = cache.default_location()
    if cache.resolve_memory("default") is None:  # it warned why; plans are computed each fit
        say(f"operator cache  {location} (unusable: plans are not cached; {cache.ENV_VAR} "
            f"overrides)")
    else:
        stats = cache.cache_info("default")
        say(f"operator cache  {location} ({cache.ENV_VAR} overrides): {stats.entries} "
            f"plan{'s' * (stats.entries != 1)}, {stats.size / 2**20:.1f} MiB of at most "
            f"{stats.max_size / 2**20:.1f} MiB ({cache.MAX_ENV_VAR}; least recently used "
            f"plans are evicted)")
    say(f"numba cache     {numba.config.CACHE_DIR or 'next to the package sources (__pycache__)'}")


def _threading_layer() -> str:
    """The layer Numba uses, starting it with a tiny parallel call if none ran yet."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        @numba.njit(parallel=True)
        def _touch(n):
            total = 0
            for i in numba.prange(n):
                total += i
            return total

        _touch(4)
        return numba.threading_layer()


DESCRIPTION = """\
fmmsolve: a kernel-independent fast multipole method for 3-D N-body sums.

Results go to standard output. Progress goes to standard error as log lines
with timings: --quiet silences it, --verbose adds every evaluation; either may
come before or after the command. The first run compiles the Numba kernels
(20 s to a minute); Numba caches them on disk for later runs."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each option's default after its help, unless it has none
    (None), is a flag, or the help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.option_strings and "%(default)" not in text and default is not None \
                and default is not argparse.SUPPRESS and not isinstance(default, bool):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2 (argparse also prints the usage); help in
    plain text with the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _noise_options() -> argparse.ArgumentParser:
    """--quiet and --verbose, shared by the main parser and every command so that they are
    accepted before or after it. Their default is SUPPRESS, so a command's parser never
    overwrites a flag given before the command; ``main`` reads them with ``getattr``."""
    noise = argparse.ArgumentParser(add_help=False)
    group = noise.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress lines")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="progress lines and every evaluation's timings")
    return noise


def _parser() -> argparse.ArgumentParser:
    noise = _noise_options()
    parser = _Parser(prog="fmmsolve", description=DESCRIPTION, parents=[noise])
    parser.add_argument("--version", action="version", version=f"fmmsolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="{demo,bench,info,cache}")

    def command(name, summary, description):
        return sub.add_parser(name, help=summary, description=description, parents=[noise])

    def problem(p, n):
        p.add_argument("--n", type=_point_count, default=n, help="number of points (>= 2)")
        p.add_argument("--distribution", choices=DISTRIBUTIONS, default="sphere",
                       help="built-in point cloud")
        p.add_argument("--eps", type=float, default=1e-6,
                       help="requested accuracy (relative L2 error of the potential)")
        p.add_argument("--leaf-size", type=_positive_int, default=None,
                       help="most points per leaf (default: chosen from eps)")
        p.add_argument("--seed", type=int, default=0, help="seed of the points and charges")

    problem(command("demo", "FMM on a built-in point cloud: error, timings, GMRES",
                    "Fit the Laplace FMM on built-in points, print the fit and matvec times\n"
                    "per stage, the error against a sampled direct sum, and a GMRES solve\n"
                    "of a second-kind integral equation (at most 20,000 points)."), 200_000)
    p_bench = command("bench", "benchmark table: medians, breakdown, error",
                      "Time fit and matvec on built-in points: the median matvec time, each\n"
                      "operator's share of it and the error at 1,000 sampled targets.")
    problem(p_bench, 100_000)
    p_bench.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                         help="working precision")
    p_bench.add_argument("--rhs", type=_positive_int, default=1, help="right-hand sides")
    p_bench.add_argument("--repeats", type=_positive_int, default=3,
                         help="timed matvecs (the median is shown)")
    command("info", "versions, threads, cache location and size",
            "Versions, threads, threading layer, and the caches' locations and sizes.")
    p_cache = command("cache", "the disk cache of precomputed operators",
                      "Manage the disk cache of precomputed operators (plans).")
    p_cache.add_argument("action", choices=["clear"], help="clear: empty the cache")
    return parser


def _log_to_stderr(quiet: bool, verbose: bool) -> logging.Handler:
    """Attach the progress handler (standard error); ``main`` removes it when it returns."""
    logger = logging.getLogger("fmmsolve")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[fmmsolve %(relativeCreated)7.0f ms] %(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(min(handler.level, logger.getEffectiveLevel()))
    return handler


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logger, level = logging.getLogger("fmmsolve"), logging.getLogger("fmmsolve").level
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    if quiet and verbose:  # one before the command, the other after it
        parser.error("argument -v/--verbose: not allowed with argument -q/--quiet")
    handler = _log_to_stderr(quiet, verbose)
    try:
        if args.command == "demo":
            demo(args.n, args.distribution, args.eps, args.leaf_size, args.seed)
        elif args.command == "bench":
            bench(args.n, args.distribution, args.eps, args.dtype, args.rhs, args.repeats,
                  args.leaf_size, args.seed)
        elif args.command == "info":
            info()
        elif args.action == "clear":
            before = cache.cache_size("default")
            cache.clear_cache("default")
            print(f"cleared the operator cache ({before / 2**20:.1f} MiB)")
    except (ValueError, OSError) as exc:  # bad values reach the user as one line
        parser.error(str(exc))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
