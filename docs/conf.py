"""Sphinx configuration: ``make docs`` builds HTML into docs/_build."""

project = "flask-bitmapist"
author = "flask-bitmapist contributors"
# No intersphinx: builds run offline and with warnings as errors.
extensions = ["sphinx.ext.autodoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# The pages include README sections, whose headings start at level 2.
suppress_warnings = ["myst.header"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
exclude_patterns = ["_build"]
