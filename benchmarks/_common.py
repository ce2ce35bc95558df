"""Shared helpers of the benchmark scripts: medians of repeated timings and machine facts."""

import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import numba


def median_time(func, repeats):
    """Median wall time of ``func()`` over ``repeats`` calls (call it once before to compile)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """One line naming the machine the numbers come from."""
    return (f"{_cpu_model()}, {os.cpu_count()} cores, "
            f"{numba.get_num_threads()} Numba threads "
            f"({numba.threading_layer() if _ran() else 'n/a'}), "
            f"Python {platform.python_version()}, Numba {numba.__version__}")


def _ran():
    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


def write_json(path, results):
    """Write ``results`` (JSON-serialisable) to ``path`` with the date, machine and command,
    for ``benchmarks/plots.py``."""
    record = {"date": datetime.date.today().isoformat(), "machine": machine(),
              "command": " ".join(["python", *sys.argv]), "results": results}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
