"""Sphinx configuration: Markdown pages (MyST), API pages from numpydoc docstrings, and the
example gallery (sphinx-gallery over ``examples/``).

Build (warnings are errors, as in CI):

    python -m pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery runs every example at its small size (``FMMSOLVE_EXAMPLE_SIZE=small``, as the
tests do) and shows what it prints; an example that fails stops the build. An example is shown
but not run when it imports, at its top level, a module that is not installed (bempp-cl, mpi4py,
...), or when its source holds the line ``# fmmsolve-gallery: not executed`` (for one that needs
``mpiexec``, say).
"""

import ast
import importlib.util
import os
import pathlib
import re

import fmmsolve

project = "fmmsolve"
author = "The fmmsolve developers"
copyright = "2026, The fmmsolve developers"
release = version = fmmsolve.__version__

extensions = ["myst_parser", "numpydoc", "sphinx.ext.autodoc", "sphinx.ext.mathjax",
              "sphinx_gallery.gen_gallery"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

# numpydoc: no automatic member tables (each class documents its own attributes), and
# cross-references only where the docstrings make them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_default_options = {"members": False}
autodoc_typehints = "none"
# The API page documents fmmsolve.distributed whether or not the mpi extra is installed.
autodoc_mock_imports = ["mpi4py", "numba_mpi"]

html_theme = "alabaster"
html_title = f"fmmsolve {release}"

# -- example gallery -------------------------------------------------------------------------

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NOT_EXECUTED = "# fmmsolve-gallery: not executed"
os.environ.setdefault("FMMSOLVE_EXAMPLE_SIZE", "small")


def _runs_here(path):
    """Whether the example can run in this build: no opt-out line, and every module it
    imports at its top level is installed."""
    text = path.read_text()
    if NOT_EXECUTED in text:
        return False
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        # the top-level package only: find_spec("a.b") would import a
        if any(importlib.util.find_spec(name.split(".")[0]) is None for name in names):
            return False
    return True


_executed = sorted(p.name for p in EXAMPLES.glob("*.py") if _runs_here(p))
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # sphinx-gallery runs the files this matches (re.search on the path) and shows the others
    "filename_pattern": "/(" + "|".join(map(re.escape, _executed)) + ")$" if _executed
                        else "^$",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "write_computation_times": False,
    "min_reported_time": 1,
}
