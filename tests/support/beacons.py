"""A fake clock for the beacon, and the core as the sync route leaves it.

The beacons loader itself is ``TreeLoaders.beacons`` (tests/support/loaders.py),
which every ``make_loaders`` instance has.
"""

import importlib.machinery
import os
import sys


class Clock:
    """A settable wall clock for the beacon's ``_now``."""

    def __init__(self, start=1_800_000_000.0):
        self.now = start

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds
        return self.now


class SyncRouteCore:
    """The core as ``saltutil.sync_all`` leaves it: importable only while ``utils`` is on sys.path.

    The tests' own sys.path entry for ``_utils`` is removed, the core's modules
    leave sys.modules, and a finder ahead of every other (a pip-installed copy
    included) refuses ``saltext_conntrack`` unless the utils directory is
    on sys.path at that moment, which is what Salt's execution-module loader
    does while it loads a file, and the beacons loader never does.
    """

    NAME = "saltext_conntrack"

    def __init__(self, utils_dir):
        self.utils = os.path.realpath(utils_dir)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.NAME:
            return None
        if self.utils not in {os.path.realpath(p) for p in sys.path if isinstance(p, str)}:
            raise ImportError(f"{fullname} is not on sys.path (the beacons loader adds no utils dirs)")
        return importlib.machinery.PathFinder.find_spec(fullname, [self.utils])

    def install(self, monkeypatch):
        for name in [n for n in sys.modules if n == self.NAME or n.startswith(self.NAME + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.realpath(p) != self.utils])
        monkeypatch.setattr(sys, "meta_path", [self, *sys.meta_path])
        return self
