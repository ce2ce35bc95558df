"""The command line (``python -m fmmsolve``) and the library's log lines."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fmmsolve
from fmmsolve.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, env=None):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "fmmsolve", *args], capture_output=True,
                          check=False, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": path, **(env or {})})


def test_info_names_versions_threads_and_cache(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("fmmsolve", "numba threads", "threading layer", "operator cache", "blas"):
        assert word in out, out


def test_bench_prints_a_table_with_an_error_below_eps(capsys):
    assert main(["--quiet", "bench", "--n", "4000", "--repeats", "1", "--eps", "1e-4",
                 "--distribution", "uniform"]) == 0
    captured = capsys.readouterr()
    row = captured.out.strip().splitlines()[-1].split()
    assert float(row[5]) <= 1e-4, captured.out  # order, leaves, fit, matvec, us/pt, error
    assert captured.err == ""  # --quiet


def test_bench_logs_progress_unless_quiet(capsys):
    assert main(["bench", "--n", "3000", "--repeats", "1", "--rhs", "2"]) == 0
    err = capsys.readouterr().err
    assert "bench: matvec 1 of 1" in err and "fit:" in err


def test_cache_clear_empties_the_cache_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fmmsolve.cache.ENV_VAR, str(tmp_path))
    fmmsolve.FMMOperator(np.random.default_rng(0).random((500, 3)), eps=1e-3)
    assert fmmsolve.cache.cache_size("default") > 0
    assert main(["cache", "clear"]) == 0
    assert "cleared" in capsys.readouterr().out
    left = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert set(left) <= {".gitignore"}, left  # joblib keeps its own .gitignore


@pytest.mark.parametrize("args, message", [
    (["bench", "--n", "0"], "expected a positive integer"),
    (["bench", "--n", "100", "--eps", "3"], "eps must be a number in (0, 1)"),
    (["bench", "--n", "100", "--dtype", "float32"], "eps must be at least 0.0001 in float32"),
    (["bench", "--dtype", "float16"], "invalid choice"),
    (["cache"], "required: action"),
    (["solve"], "invalid choice"),
])
def test_bad_arguments_end_in_one_line_and_exit_code_2(args, message):
    proc = _run(*args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[fmmsolve")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_a_single_point_is_refused_naming_n_and_the_minimum(command):
    # one point has a zero potential (its own pair is skipped): the relative error was "nan",
    # after a RuntimeWarning
    proc = _run(command, "--n", "1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "argument --n: expected at least 2 points, got '1'" in proc.stderr
    assert "Warning" not in proc.stderr and proc.stdout == ""


def test_bench_on_two_points_reports_a_finite_error(capsys):
    assert main(["--quiet", "bench", "--n", "2", "--repeats", "1", "--distribution",
                 "uniform"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert np.isfinite(float(row[5])) and float(row[5]) <= 1e-6, row


def test_console_entry_point_runs_info():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"numba threads\s+\d+", proc.stdout)


def test_library_logs_fit_and_evaluation_and_prints_nothing(caplog, capsys):
    x = np.random.default_rng(1).random((800, 3))
    with caplog.at_level(logging.DEBUG, logger="fmmsolve"):
        A = fmmsolve.FMMOperator(x, eps=1e-3)
        A @ np.ones(800)
    messages = [r.getMessage() for r in caplog.records if r.name == "fmmsolve"]
    assert any(m.startswith("fit: 800 sources") for m in messages), messages
    assert any(m.startswith("evaluate: 1 column") for m in messages), messages
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("args", [["demo", "--quiet"], ["--quiet", "demo"], ["demo", "-q"]])
def test_quiet_is_accepted_before_or_after_the_command(args, capsys):
    assert main([*args, "--n", "3000", "--eps", "1e-3"]) == 0
    captured = capsys.readouterr()
    assert "gmres" in captured.out and captured.err == ""


@pytest.mark.parametrize("args", [["-q", "info", "-v"], ["info", "-q", "--verbose"]])
def test_quiet_and_verbose_together_are_refused(args):
    proc = _run(*args)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["bench", "--help"]])
def test_help_is_plain_text_with_the_defaults(args, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out, out  # no reStructuredText
    assert "--quiet" in out
    if args != ["--help"]:
        for default in ("(default: 1e-06)", "(default: sphere)", "(default: 0)",
                        "(default: chosen from eps)"):
            assert default in out, out
        assert "(default: None)" not in out and "(default: False)" not in out, out


def test_demo_labels_the_warm_up_and_reports_every_fit_stage(capsys):
    assert main(["demo", "--n", "4000", "--eps", "1e-3"]) == 0
    captured = capsys.readouterr()
    progress = captured.err.splitlines()
    assert "warm-up on 3,000 points (not timed below): " in progress[0], progress
    warm = [line for line in progress if "fit: 3000 sources" in line]
    assert warm and all("warm-up: fit:" in line for line in warm), progress
    fit = next(line for line in captured.out.splitlines() if line.lstrip().startswith("fit"))
    for stage in ("validate", "tree", "lists", "plan", "bind"):
        assert f"{stage} " in fit, fit


def test_the_compile_notice_tells_a_cold_numba_cache(tmp_path):
    probe = "from fmmsolve.__main__ import _numba_cache_is_cold as c; print(c())"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    cold = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False,
                          text=True, env={**env, "NUMBA_CACHE_DIR": str(tmp_path)}, timeout=600)
    assert cold.stdout.strip() == "True", cold.stderr
    no_cache = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False,
                              text=True, env={**env, "NUMBA_DISABLE_JIT": "1"}, timeout=600)
    assert no_cache.stdout.strip() == "None", no_cache.stderr
    main(["-q", "bench", "--n", "2", "--repeats", "1"])  # compiles or loads the M2L here
    from fmmsolve.__main__ import _numba_cache_is_cold
    assert _numba_cache_is_cold() is False
