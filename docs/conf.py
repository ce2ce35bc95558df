"""Sphinx configuration: Markdown pages (MyST), API pages from numpydoc docstrings.

Build (warnings are errors, as in CI):

    python -m pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import fmmsolve

project = "fmmsolve"
author = "The fmmsolve developers"
copyright = "2026, The fmmsolve developers"
release = version = fmmsolve.__version__

extensions = ["myst_parser", "numpydoc", "sphinx.ext.autodoc", "sphinx.ext.mathjax"]
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

html_theme = "alabaster"
html_title = f"fmmsolve {release}"
