"""Sphinx configuration: topics in Markdown (MyST), reference pages generated
from the loader files' docstrings (``make docs``; warnings are errors)."""

import pathlib
import sys
import types

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
# The tree's own core and loader files, never an installed copy: the reference
# is of the checkout being built.
sys.path.insert(0, str(REPO / "_utils"))

import saltext_conntrack  # noqa: E402


def _loader_packages():
    """Make the loader directories importable under the names a wheel gives
    them (``saltext_conntrack.modules.conntrack``...), so the reference names
    what an installed extension shows."""
    for kind, folder in (
        ("modules", "_modules"),
        ("states", "_states"),
        ("beacons", "_beacons"),
        ("runners", "_runners"),
    ):
        name = f"saltext_conntrack.{kind}"
        package = types.ModuleType(name)
        package.__path__ = [str(REPO / folder)]
        sys.modules[name] = package
        setattr(saltext_conntrack, kind, package)


_loader_packages()

project = "saltext-conntrack"
author = "saltext-conntrack developers"
copyright = "saltext-conntrack developers, Apache-2.0"
release = saltext_conntrack.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
nitpicky = True
# Salt's own objects are not documented here; a reference to them is not a
# broken link of ours.
nitpick_ignore_regex = [(r"py:.*", r"salt\..*")]

autodoc_default_options = {"members": True, "undoc-members": False, "member-order": "bysource"}
autodoc_mock_imports = []

html_theme = "furo"
html_title = f"saltext-conntrack {release}"
html_static_path = []
