"""saltext.conntrack: the Salt loader entry point, the version, where the
formula is, and the core every loader file imports, one package per domain
(``common``, ``runtime``, ``persistence``, ``firewall``, ``logwatch``,
``report``). Nothing in the core reads ``__opts__`` or ``__salt__``: the loader
files pass the root and options in. Why the core lives here, in ``_utils/``, is
in ``docs/design.md``.

One function serves both layouts of this package:

- installed (``pip install .``, a wheel): setup.cfg copies ``_modules`` to
  ``saltext_conntrack/modules`` and so on, and the formula to
  ``saltext_conntrack/formula``;
- editable (``pip install -e .``) or imported from a checkout
  (``saltutil.sync_all`` ships it as ``extmods/utils/saltext_conntrack``): this
  package stays in the repository's ``_utils/``, beside ``_modules``,
  ``_states``, ... and ``salt/``.

Salt's loader only looks for ``modules/`` beside a package's ``__init__.py``
when the entry point is the package itself, which finds nothing in the
editable layout; an entry point that is a function returning the directories
works in both (salt/loader/__init__.py ``_module_dirs``).
"""

import pathlib

try:
    from saltext_conntrack._version import __version__
except ImportError:  # a checkout no build has run in (served by file_roots or gitfs)
    __version__ = "0+unknown"

_HERE = pathlib.Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent.parent  # the repository root, when this is _utils/saltext_conntrack
KINDS = ("modules", "states", "beacons", "runners")


def __virtual__():
    # Salt's utils loader maps every package under _utils; this one is imported
    # by name, never used as __utils__ (which SEP 65 retires).
    return False, "saltext_conntrack is imported by the conntrack loader files, not a utils module"


def _first_dir(*candidates):
    return next((str(path) for path in candidates if path.is_dir()), None)


def loader_dirs():
    """The loader directories of this extension, by loader type (Salt's
    ``salt.loader`` entry point).

    No ``utils``: the core is this package, importable wherever this function
    is (installed, editable, or Salt's thin for salt-ssh).
    """
    dirs = {kind: _first_dir(_HERE / kind, _CHECKOUT / f"_{kind}") for kind in KINDS}
    return {kind: [path] for kind, path in dirs.items() if path}


def formula_root():
    """The directory to add to ``file_roots``: it holds ``conntrack/`` (the
    formula and ``pillar.example``) and ``reactor/``."""
    return _first_dir(_HERE / "formula", _CHECKOUT / "salt")
