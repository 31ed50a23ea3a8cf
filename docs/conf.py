"""
Sphinx configuration. Build with `python3 -m nox -s docs`.
"""

from __future__ import annotations

from importlib.metadata import version as distribution_version

project = "buttress"
author = "the buttress authors"
copyright = "2026, the buttress authors"  # noqa: A001  # Sphinx reads this name
release = distribution_version("buttress")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

# Docstrings write `name` for cross-references to Python objects.
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"buttress {release}"
