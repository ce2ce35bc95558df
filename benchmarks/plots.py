"""Figures of the benchmarks page (``docs/benchmarks.md``), drawn with matplotlib.

    python benchmarks/plots.py              # draw docs/figures/*.png from the recorded data
    python benchmarks/plots.py --measure    # first re-measure the small sizes (about 10 minutes)

Two sources of data, both in the repository:

* ``benchmarks/results/*.json``, written by the benchmark scripts' ``--json`` option with the
  commands of :data:`MEASUREMENTS` (sizes up to 2e5, so they can be re-run in minutes);
* the tables at 10^6 points in the generated block of ``benchmarks/README.md``
  (``run_all.py``, about 40 minutes), read here rather than copied.

Figures: time against N (fmmsolve, the direct sum, the peers), achieved error against the
requested eps, the per-operator breakdown of a matvec, and fmmsolve against the peers at 10^6.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIGURES = HERE.parent / "docs" / "figures"
README = HERE / "README.md"
BEGIN, END = "<!-- results: begin (benchmarks/run_all.py) -->", "<!-- results: end -->"
OPS = ["p2m", "m2m", "m2l", "p2l", "l2l", "l2p", "m2p", "p2p"]
PEER_SIZES = [20_000, 50_000, 100_000, 200_000]

#: (JSON file under results/, script, arguments): what ``--measure`` runs, one after another
MEASUREMENTS = [
    ("fmm_uniform.json", "bench_fmm.py",
     ["--sizes", "10000", "20000", "50000", "100000", "200000", "--direct-max", "100000"]),
    # float32 stops at 1e-4: fmmsolve refuses smaller eps in float32 since the recorded sweep
    # (its 1e-5 points, still in results/accuracy.json and the figure, showed why)
    ("accuracy.json", "accuracy_table.py",
     ["--float64-eps", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6", "1e-7", "1e-8", "1e-9",
      "--float32-eps", "1e-2", "1e-3", "1e-4"]),
    *[(f"peers_cube_{n}.json", "bench_peers.py",
       ["--n", str(n), "--distribution", "cube", "--ferreus-order", "8"]) for n in PEER_SIZES],
]
STYLE = {"fmmsolve": ("C0", "o"), "ferreus": ("C1", "s"), "fmm3dpy": ("C2", "^"),
         "direct": ("C7", "D")}


def measure(only=None):
    """Run the benchmark scripts of :data:`MEASUREMENTS` on this checkout's fmmsolve (first on
    ``PYTHONPATH``, whatever is installed); each writes its JSON file."""
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    for name, script, arguments in MEASUREMENTS:
        if only and not any(o in name for o in only):
            continue
        cmd = [sys.executable, str(HERE / script), *arguments, "--json", str(RESULTS / name)]
        print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=HERE, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": path})


def load(name):
    """The ``results`` of one JSON file, with its date and machine; None if it is missing."""
    path = RESULTS / name
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return {**record["results"], "date": record["date"], "machine": record["machine"]}


def _recorded_text():
    return README.read_text().split(BEGIN, 1)[1].split(END, 1)[0]


def recorded_scaling():
    """From ``benchmarks/README.md``: fmmsolve's matvec seconds by N (``bench_fmm.py``, uniform
    cube, eps 1e-6) and the float64 direct-sum rate in pairs per second (``bench_direct.py``)."""
    text = _recorded_text()
    fmm = text.split("### FMM matvec: breakdown and scaling", 1)[1].split("###", 1)[0]
    matvec = [(int(n), float(t)) for n, t in
              re.findall(r"^\s+(\d+)\s+\d+\s+[\d.]+\s+([\d.]+)\s", fmm, flags=re.M)]
    rate = re.search(r"^float64\s+potential\s+([\d.]+)", text, flags=re.M)
    return matvec, float(rate.group(1)) * 1e9 if rate else None


def recorded_peers():
    """The tables at 10^6 of ``benchmarks/README.md``: {distribution: (rows, breakdown)}.

    rows: list of dicts (code, setting, fit, eval, error); breakdown: {operator: share}.
    """
    text = _recorded_text()
    found = {}
    for part in text.split("### Against the peers, ")[1:]:
        part = part.split("\n### ", 1)[0]  # this section only: later ones have other tables
        distribution = part.split("\n", 1)[0].strip()
        rows = []
        for line in part.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) > 5 and re.fullmatch(r"[0-9.]+", cells[3]):
                rows.append({"code": cells[0], "setting": cells[1], "eval": float(cells[3]),
                             "fit": None if cells[2] == "-" else float(cells[2]),
                             "error": float(cells[4])})
        match = re.search(r"fmmsolve matvec breakdown: (.*)", part)
        shares = dict(re.findall(r"(\w+) ([0-9.]+)%", match.group(1))) if match else {}
        found[distribution] = (rows, {k: float(v) / 100 for k, v in shares.items()})
    return found


def _note(fig, text):
    fig.text(0.01, 0.01, text, fontsize=7, color="0.35", ha="left", va="bottom")


def time_against_n(out):
    fmm = load("fmm_uniform.json")
    peers = [p for p in (load(f"peers_cube_{n}.json") for n in PEER_SIZES) if p]
    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    if fmm:
        rows = fmm["rows"]
        n = [r["n"] for r in rows]
        ax.loglog(n, [r["matvec"] for r in rows], "-o", color=STYLE["fmmsolve"][0],
                  label=f"fmmsolve matvec (eps {fmm['eps']:g})")
        direct = [(r["n"], r["direct"]) for r in rows if r["direct"]]
        if direct:
            ax.loglog(*zip(*direct), "-D", color=STYLE["direct"][0], label="direct sum")
            n0, t0 = direct[-1]  # the direct sum is exactly N^2 work: extrapolate the largest
            ax.loglog([n0, n[-1]], [t0, t0 * (n[-1] / n0) ** 2], "--", color=STYLE["direct"][0],
                      label="direct sum, N^2 from the largest measured")
    for code, label in (("fmmsolve", "fmmsolve, timed alternating with the peers"),
                        ("ferreus", "ferreus-bbfmm order 8"), ("fmm3dpy", "fmm3dpy eps 1e-6")):
        points = [(p["n"], r["eval"]) for p in peers for r in p["rows"] if r["code"] == code]
        if points:
            color, marker = STYLE[code]
            style = "x" if code == "fmmsolve" else "-" + marker
            ax.loglog(*zip(*points), style, color=color, label=label, ms=8)
    # the recorded run on the idle machine, hollow: fmmsolve, the direct sum's N^2 / rate, peers
    matvec, rate = recorded_scaling()
    if matvec:
        ax.loglog(*zip(*matvec), ":o", color=STYLE["fmmsolve"][0], mfc="none", ms=9)
    if rate:
        ends = [1e4, 1e6]
        ax.loglog(ends, [n * n / rate for n in ends], ":", color=STYLE["direct"][0])
    cube, _ = recorded_peers().get("cube", ([], {}))
    for row in cube:
        if row["code"] == "fmmsolve" or "order 8" in row["setting"] or row["code"] == "fmm3dpy":
            color, marker = STYLE[row["code"]]
            ax.loglog([1e6], [row["eval"]], marker, color=color, mfc="none", ms=9)
    if matvec or cube:
        ax.plot([], [], "o:", color="0.3", mfc="none",
                label="hollow, dotted: recorded run, idle machine")
    ax.set_xlabel("N (sources = targets, uniform cube)")
    ax.set_ylabel("seconds per product (one right-hand side)")
    ax.set_title("Time against N, Laplace, float64")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if fmm:
        _note(fig, f"filled: measured {fmm['date']} on {fmm['machine']}, under load")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def error_against_eps(out):
    acc = load("accuracy.json")
    if not acc:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    rows = acc["rows"]
    names = list(dict.fromkeys(r["distribution"] for r in rows))
    for i, name in enumerate(names):
        for dtype, marker in (("float64", "o"), ("float32", "x")):
            pts = sorted((r["eps"], r["error"]) for r in rows
                         if r["distribution"] == name and r["dtype"] == dtype)
            if pts:
                ax.loglog(*zip(*pts), marker + ("-" if dtype == "float64" else ":"),
                          color=f"C{i}", label=f"{name}" if dtype == "float64" else None)
    eps = sorted({r["eps"] for r in rows})
    ax.loglog(eps, eps, "k--", lw=1, label="error = eps")
    ax.plot([], [], "kx:", label="float32")
    ax.set_xlabel("requested eps")
    ax.set_ylabel("relative L2 error of the potential")
    ax.set_title(f"Achieved error against eps, N = {acc['n']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _note(fig, f"measured {acc['date']}: every target, against fmmsolve.direct")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def breakdown(out):
    bars = []  # (label, {op: share})
    fmm = load("fmm_uniform.json")
    if fmm:
        for r in fmm["rows"]:
            bars.append((f"cube {r['n']:,}", {o: r["timings"][o] / r["matvec"] for o in OPS}))
    for distribution, (_, shares) in recorded_peers().items():
        if shares:
            bars.append((f"{distribution} 1,000,000 *", {o: shares.get(o, 0.0) for o in OPS}))
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(bars) + 1.6))
    left = [0.0] * len(bars)
    for k, op in enumerate(OPS):
        widths = [b[1][op] for b in bars]
        ax.barh(range(len(bars)), widths, left=left, color=f"C{k if k < 7 else 9}", label=op)
        left = [a + b for a, b in zip(left, widths)]
    ax.barh(range(len(bars)), [max(0.0, 1 - x) for x in left], left=left, color="0.85",
            label="other")
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the matvec wall time")
    ax.set_title("Per-operator breakdown of one matvec (eps 1e-6, float64)")
    ax.legend(fontsize=7, ncol=9, loc="upper center", bbox_to_anchor=(0.45, -0.13),
              handlelength=1, columnspacing=0.8)
    _note(fig, "* recorded run of benchmarks/README.md; the others measured "
               f"{fmm['date'] if fmm else ''} under load")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def against_peers(out):
    recorded = recorded_peers()
    if not recorded:
        return False
    fig, axes = plt.subplots(1, len(recorded), figsize=(6.4, 4.2), sharey=True)
    axes = [axes] if len(recorded) == 1 else axes
    for ax, (distribution, (rows, _)) in zip(axes, recorded.items()):
        labels = [f"{r['code']}\n{r['setting'].split(',')[0]}" for r in rows]
        colors = [STYLE[r["code"]][0] for r in rows]
        bars = ax.bar(range(len(rows)), [r["eval"] for r in rows], color=colors)
        for bar, r in zip(bars, rows):
            ax.annotate(f"{r['eval']:.1f} s\nerr {r['error']:.0e}", (bar.get_x() + 0.4,
                        bar.get_height()), ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_title(f"{distribution}, N = 10^6")
    axes[0].set_ylabel("seconds per product")
    fig.suptitle("fmmsolve against the peers (Laplace, one right-hand side)", fontsize=10)
    _note(fig, "recorded run of benchmarks/README.md (2 cores); fmm3dpy builds its tree "
               "in every call")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true",
                        help="re-run the small measurements first (writes results/*.json)")
    parser.add_argument("--only", nargs="+", help="with --measure: JSON names containing these")
    args = parser.parse_args()
    if args.measure:
        measure(args.only)
    FIGURES.mkdir(parents=True, exist_ok=True)
    time_against_n(FIGURES / "time_vs_n.png")
    drawn = ["time_vs_n.png"]
    for name, draw in (("error_vs_eps.png", error_against_eps), ("breakdown.png", breakdown),
                       ("peers.png", against_peers)):
        if draw(FIGURES / name):
            drawn.append(name)
    print("wrote", ", ".join(str(FIGURES / d) for d in drawn), file=sys.stderr)


if __name__ == "__main__":
    main()
