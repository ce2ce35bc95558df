"""The package as a user meets it: README commands and snippet, the demo, the examples, and the
one-way dependency rule between subpackages."""

import ast
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys

import pytest

import fmmsolve

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fmmsolve"


def test_version_and_public_names():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", fmmsolve.__version__)
    for name in fmmsolve.__all__:
        assert hasattr(fmmsolve, name), name


# The guide's snippets register kernels and fit every kind of operator: most of their time is
# compiling what no other test needs, so they are in the slow tier (CI runs it).
@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md",
                                  pytest.param("docs/guide.md", marks=pytest.mark.slow)])
def test_python_snippets_in_the_docs_run(page):
    text = (ROOT / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    if page != "docs/guide.md":
        assert blocks, f"{page} should hold a runnable example"
    for block in blocks:
        exec(compile(block, page, "exec"), {})


def test_readme_has_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert "python -m pip install . && python -m fmmsolve demo" in readme
    assert 'python -m pip install ".[test]" && python -m pytest' in readme
    assert 'python -m pip install ".[test]" && python -m pytest' in (ROOT / ".ci/run").read_text()


def test_citation_file_matches_the_package():
    text = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^cff-version: 1\.2\.0$", text, flags=re.M)
    for key in ("message", "title", "authors", "version", "license", "date-released"):
        assert re.search(rf"^{key}:", text, flags=re.M), f"CITATION.cff lacks {key}"
    version = re.search(r"^version: ['\"]?([^'\"\n]+)", text, flags=re.M).group(1)
    assert version == fmmsolve.__version__


def test_docs_build_command_is_in_the_readme_and_ci():
    command = 'python -m pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs'
    assert command in (ROOT / "README.md").read_text()
    assert command in (ROOT / ".ci/run").read_text()


def _run(*args, env=None, launcher=()):
    """Run Python on this checkout (not whatever fmmsolve is installed elsewhere), optionally
    under a ``launcher`` such as ``mpiexec -n 2``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([*launcher, sys.executable, *args], capture_output=True, text=True,
                          cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": path, **(env or {})}, timeout=600)


def test_demo_command():
    proc = _run("-m", "fmmsolve", "demo", "--n", "6000", "--distribution", "clusters",
                "--eps", "1e-3")
    assert proc.returncode == 0, proc.stderr
    for word in ("fit", "matvec", "relative L2", "gmres", "info 0"):
        assert word in proc.stdout, proc.stdout
    err = float(re.search(r"relative L2 ([0-9.e+-]+)", proc.stdout).group(1))
    assert err <= 1e-3


CACHE_PROBE = """
import sys, numpy as np, numba, fmmsolve
from fmmsolve.kernels import get_kernel
from fmmsolve.operators import translations
x = np.random.default_rng(0).random((3000, 3))
A = fmmsolve.FMMOperator(x, eps=1e-3)
A @ np.ones(3000)
A.evaluate(np.ones(3000), gradient=True)
fmmsolve.direct(x, x[:50], np.ones(3000), gradient=True)
fmmsolve.direct(x, x[:50], np.ones(3000))
kern = get_kernel("laplace")
found = list(vars(translations.for_kernel(kern)).values())
found += list(sys.modules["fmmsolve.kernels.direct"]._compiled(kern))
for name, module in list(sys.modules.items()):
    if name.startswith("fmmsolve"):
        found += [f for f in vars(module).values()
                  if isinstance(f, numba.core.dispatcher.Dispatcher)]
misses = {f.py_func.__qualname__: dict(f.stats.cache_misses)
          for f in found if f.stats.cache_misses}
hits = sum(sum(f.stats.cache_hits.values()) for f in found)
print(repr(misses), hits)
"""


def test_second_process_loads_every_compiled_function_from_the_disk_cache():
    # A fresh process must not recompile: a signature that differs between processes (a
    # dispatcher passed as an argument, for example) silently costs seconds per first call.
    _run("-c", CACHE_PROBE)  # fills the cache if this checkout's is cold
    proc = _run("-c", CACHE_PROBE)
    assert proc.returncode == 0, proc.stderr
    misses, hits = proc.stdout.rsplit(maxsplit=1)
    assert misses == "{}", f"recompiled in a fresh process: {misses}"
    assert int(hits) >= 10


@pytest.mark.parametrize("args, message", [(["--n", "zero"], "expected a positive integer"),
                                           (["--eps", "2"], "eps must be a number in (0, 1)")])
def test_demo_rejects_bad_arguments_in_one_line(args, message):
    proc = _run("-m", "fmmsolve", "demo", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


# Examples that need an optional extra, with the module they import: skipped without it.
OPTIONAL_EXAMPLES = {"sphere_scattering.py": "bempp_cl",
                     "sphere_scattering_high_frequency.py": "bempp_cl"}


# Run as scripts in the slow tier: user_kernel.py compiles its own kernel's passes (20 s
# cold); the Stokes examples' results are checked in-process by tests/test_stokes_fmm.py in
# the default run, so their script runs would only repeat them.
SLOW_EXAMPLES = {"user_kernel.py", "sphere_drag.py", "sedimenting_cloud.py"}


@pytest.mark.parametrize("script", [
    pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_EXAMPLES else p
    for p in sorted((ROOT / "examples").glob("*.py"))], ids=lambda p: p.name)
def test_example_runs(script):
    if script.name in OPTIONAL_EXAMPLES:
        pytest.importorskip(OPTIONAL_EXAMPLES[script.name])
    launcher = ()
    if script.name.startswith("mpi_"):  # under mpiexec -n 3 where MPI is installed
        pytest.importorskip("mpi4py", reason='the MPI examples need pip install "fmmsolve[mpi]"')
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
        launcher = (mpiexec, "-n", "3") if mpiexec else ()
    proc = _run(*(("-m", "mpi4py") if launcher else ()), str(script), launcher=launcher,
                env={"FMMSOLVE_EXAMPLE_SIZE": "small"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_has_a_gallery_title(script):
    # sphinx-gallery stops the docs build on an example whose docstring opens without a title
    doc = ast.get_docstring(ast.parse(script.read_text()), clean=False) or ""
    title, underline = (doc.strip("\n").splitlines() + ["", ""])[:2]
    assert title.strip() and set(underline) == {"="} and len(underline) >= len(title), \
        f"{script.name}: the docstring must open with a title underlined with '='"


def test_gallery_shows_but_does_not_run_examples_it_cannot(tmp_path, monkeypatch):
    monkeypatch.setenv("FMMSOLVE_EXAMPLE_SIZE", "small")
    runs_here = runpy.run_path(str(ROOT / "docs" / "conf.py"))["_runs_here"]
    cases = {"plain.py": "import numpy as np\nfrom scipy import sparse\n",
             "missing.py": "import numpy\nimport not_installed_pkg.sub as s\n",
             "missing_from.py": "from not_installed_pkg import x\n",
             "lazy.py": "def main():\n    import not_installed_pkg\n",
             "marked.py": "# fmmsolve-gallery: not executed (needs mpiexec)\nimport numpy\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert {name for name in cases if runs_here(tmp_path / name)} == {"plain.py", "lazy.py"}


# Lower layers never import higher ones: kernels and tree -> operators -> fmm ->
# linear_operator -> estimators. Underscore modules and testing are shared utilities.
LAYERS = {"kernels": 1, "tree": 1, "operators": 2, "engine": 3, "fmm": 3, "linear_operator": 4,
          "cache": 4, "field": 4, "accuracy": 2, "io": 1, "estimators": 6, "distributed": 6,
          "bempp": 6, "__main__": 7}
# The command line (__main__) and the integral-equation solver (estimators) are applications of
# the library, like an example, so they may use SciPy's solvers themselves.
# The distributed operator gives SciPy's solvers a LinearOperator over replicated vectors.
EXTERNAL_OWNERS = {"scipy.sparse.linalg": {"linear_operator", "estimators", "__main__",
                                           "distributed"},
                   "sklearn": {"estimators"}, "bempp_cl": {"bempp"}}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield (node.module or "", node.level)


def _layer_of(parts):
    return LAYERS.get(parts[0]) if parts else None


def test_dependency_rule():
    offences = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        own = _layer_of(rel)
        for module, level in _imports(path):
            if level:  # resolve a relative import against the module's package
                base = list(rel[:-1])[: len(rel) - level]
                target = base + [p for p in module.split(".") if p]
            elif module.startswith("fmmsolve."):
                target = module.split(".")[1:]
            else:
                for ext, owners in EXTERNAL_OWNERS.items():
                    if module.startswith(ext) and (not rel or rel[0] not in owners):
                        offences.append(f"{'/'.join(rel)} imports {module}")
                continue
            other = _layer_of(target)
            if own is not None and other is not None and other > own:
                offences.append(f"{'/'.join(rel)} imports {'.'.join(target)}")
            if own == 1 and other == 1 and target[0] != rel[0]:
                offences.append(f"{'/'.join(rel)} imports {'.'.join(target)} (kernels and tree "
                                "are independent)")
    assert not offences, offences


# Uses of another object's private attributes (``obj._name`` where ``obj`` is not self or cls
# and the module defines no ``_name`` itself, on self or by name), by module, with reasons.
PRIVATE_READS = {
    # Numba's disk-cache index of the compiled M2L: Numba has no public way to tell it
    "__main__.py": {"_translate_chunks", "_cache", "_cache_file", "_index_path"},
    # load() builds an operator around the engine it read: FMMOperator's constructor for that
    # stays private, users fit through __init__ (the reader is its own module for size)
    "operator_file.py": {"_from_engine"},
}


def _on_self(node):
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def test_no_module_reads_another_modules_private_attributes():
    """Modules share values through public fields (the engine's records are Fitted and
    Schedule, fmmsolve.engine), never through another module's underscore attributes."""
    offences = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        own = {n.name for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        own |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.ctx, ast.Store) and _on_self(n)}
        own |= {n.id for n in ast.walk(tree)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        allowed = PRIVATE_READS.get(str(path.relative_to(PACKAGE)), set())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in own | allowed
                    and not _on_self(node)):
                offences.append(f"{path.relative_to(PACKAGE)}:{node.lineno} "
                                f"{ast.unparse(node)}")
    assert not offences, offences


#: The most lines a module of the package may have: past it, split the module by what it owns.
MODULE_BUDGET = 500


def test_no_module_passes_the_line_budget():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in (ROOT / "fmmsolve").rglob("*.py")}
    assert sizes and not {p: n for p, n in sizes.items() if n > MODULE_BUDGET}


def test_the_linter_passes():
    pytest.importorskip("ruff", reason="the test extra installs ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


STAMPED = '''
def g(x):
    return x {op} 1 if x in {{"a", "b", "c"}} else x
'''


def _defined_without_a_file(op):
    namespace = {}
    exec(STAMPED.format(op=op), namespace)  # like a notebook cell: no source file
    return namespace["g"]


def test_compiled_copies_are_named_after_the_code_of_functions_without_a_file():
    from fmmsolve._jit import _source_stamp

    plus, minus = _defined_without_a_file("+"), _defined_without_a_file("-")
    assert _source_stamp([plus]) != _source_stamp([minus])  # one name, two definitions
    assert _source_stamp([plus]) == _source_stamp([_defined_without_a_file("+")])
    # the same in every process, whatever the string hash seed (the set constant's order)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import test_package as t; "
              "from fmmsolve._jit import _source_stamp; "
              "print(_source_stamp([t._defined_without_a_file('+')]))")
    stamps = {subprocess.run([sys.executable, "-c", script, str(ROOT / "tests")],
                             env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True,
                             text=True, check=True).stdout.strip() for seed in ("1", "2")}
    assert stamps == {_source_stamp([plus])}
