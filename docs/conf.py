"""Sphinx configuration: ``make docs`` builds HTML into docs/_build."""

project = "flask-bitmapist"
author = "flask-bitmapist contributors"
# No intersphinx: builds run offline and with warnings as errors.
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
exclude_patterns = ["_build"]
