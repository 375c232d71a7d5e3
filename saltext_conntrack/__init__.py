"""saltext.conntrack: the Salt loader entry point, the version, and where the
formula is.

One function serves both layouts of this package:

- installed (``pip install .``, a wheel): setup.cfg copies ``_modules`` to
  ``saltext_conntrack/modules`` and so on, and the formula to
  ``saltext_conntrack/formula``;
- editable (``pip install -e .``) or imported from a checkout: this file stays
  in the repository, beside ``_modules``, ``_states``, ... and ``salt/``.

Salt's loader only looks for ``modules/`` beside a package's ``__init__.py``
when the entry point is the package itself, which finds nothing in the
editable layout; an entry point that is a function returning the directories
works in both (salt/loader/__init__.py ``_module_dirs``).
"""

import pathlib

__version__ = "0.2.0"

_HERE = pathlib.Path(__file__).resolve().parent
KINDS = ("modules", "states", "beacons", "runners")


def _first_dir(*candidates):
    return next((str(path) for path in candidates if path.is_dir()), None)


def loader_dirs():
    """The loader directories of this extension, by loader type (Salt's
    ``salt.loader`` entry point).

    ``utils`` is given only where the core package sits in a directory of its
    own (the repository's ``_utils``); installed, the core is a top-level
    package of site-packages, importable as it is, and a utils dir there would
    make Salt's utils loader load every package of site-packages.
    """
    dirs = {kind: _first_dir(_HERE / kind, _HERE.parent / f"_{kind}") for kind in KINDS}
    dirs["utils"] = _first_dir(_HERE.parent / "_utils")
    return {kind: [path] for kind, path in dirs.items() if path}


def formula_root():
    """The directory to add to ``file_roots``: it holds ``conntrack/`` (the
    formula and ``pillar.example``) and ``reactor/``."""
    return _first_dir(_HERE / "formula", _HERE.parent / "salt")
