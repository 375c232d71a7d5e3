"""
The one core of saltext-conntrack: plain code every loader file shares.

Each loader file (execution modules, states, beacon, runner) imports these
modules by the same name on both ways in:

- pip (``pip install .``): this package is installed beside the loader
  package, importable everywhere, beacons included.
- ``saltutil.sync_all`` (file_roots or gitfs, no pip): ``_utils/`` is synced to
  the minion's ``extmods/utils``, which Salt's loader puts on ``sys.path``
  while an execution module, state or runner file loads. The beacons loader
  does not; the beacon gets this package from ``sys.modules`` once the
  ``conntrack`` execution module has imported it (see ``_beacons/conntrack.py``).

Nothing here reads ``__opts__`` or ``__salt__``: the loader files pass the root
and options in, so everything here is testable on its own.
"""


def __virtual__():
    # Salt's utils loader maps every package under _utils; this one is imported
    # by name, never used as __utils__ (which SEP 65 retires).
    return False, "saltext_conntrack_core is imported by the conntrack loader files, not a utils module"
