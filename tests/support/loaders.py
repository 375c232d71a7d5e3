"""pytest-salt-factories' ``Loaders`` for opts that load this tree's own files.

``Loaders`` starts by loading grains and pillar, building the execution
modules, running ``saltutil.sync_all`` through them and then reloading
everything, so that whatever the minion's ``file_roots`` hold lands in its
extmods cache first. The tests point ``module_dirs``, ``states_dirs``, ... at
the working tree and serve nothing to the functional minion's extmods: the
sync finds nothing to copy, yet it cost about 3 s an instance (a file client
for each of some twenty loader types, and a one-second wait to fire a refresh
event at a minion bus that a functional test does not have), and the reload
after it as much again as the first load. That was most of every functional
test's time, on every Salt leg.

``TreeLoaders`` starts with one load and no sync. It also has the beacons
loader that ``Loaders`` lacks: ``.beacons`` is ``salt.loader.beacons`` over the
same opts, execution modules and ``__context__`` the minion would give it
(built on first use), so a beacon under test reaches
``__salt__["conntrack.status"]`` for real. What the dropped reload did
besides is kept: it took the earlier instances' module objects out of
``sys.modules``. A Salt loader (3006, 3007 and 3008 alike) re-executes a
module object it finds there under its own dunders, so two instances alive in
one test (the formula tests keep one per OS) would otherwise render with each
other's grains (``tests/functional/test_tree_loaders.py``). Grains are loaded once a process (they describe this host whatever
``conntrack.root`` is) and each instance gets its own copy, which tests may
change. The sync route itself is tested on real daemons
(``tests/integration/test_status_daemons.py``).
"""

import copy
import sys

from saltfactories.utils.functional import Loaders

_HOST_GRAINS = {}


class _NoSync:
    """What ``Loaders.__init__`` reaches through the execution modules: ``saltutil.sync_all``."""

    class saltutil:
        @staticmethod
        def sync_all(*args, **kwargs):
            return {}


def _forget_loaded_modules(base):
    """Drop ``base.int.<tag>.<module>`` and ``base.ext.<tag>.<module>`` from
    sys.modules for every tag, as ``LazyLoader.clean_modules`` does for its
    own; live loaders keep the module objects they hold."""
    depth = base.count(".") + 3
    for name in [n for n in sys.modules if n.startswith(base + ".") and n.count(".") >= depth]:
        del sys.modules[name]


class TreeLoaders(Loaders):
    _beacons = None

    def __init__(self, opts, loaded_base_name=None):
        self._starting = True
        try:
            super().__init__(opts, loaded_base_name=loaded_base_name)
        finally:
            self._starting = False

    def reload_all(self):
        if self._starting:
            if self._grains is not None:  # the reload after the sync
                return
            _forget_loaded_modules(self.loaded_base_name)
        self._drop_beacons()
        super().reload_all()

    @property
    def beacons(self):
        import salt.loader

        if self._beacons is None:
            self._beacons = salt.loader.beacons(self.opts, self.modules, context=self.context)
        return self._beacons

    def _drop_beacons(self):
        if self._beacons is not None:
            self._beacons.clean_modules()
            self._beacons.clear()
            self._beacons = None

    def restart(self, loader=False):
        """What a minion killed (SIGKILL) does to a beacon: its __context__ is gone, the cachedir stays.

        Nothing is saved (close() is not called); with ``loader`` the beacons
        loader and its module are dropped too, as a new process would load them.
        """
        for state in self.context.values():
            source = getattr(state, "source", None)
            if source is not None:
                source.close()
        self.context.clear()
        if loader:
            self._drop_beacons()

    @property
    def modules(self):
        return _NoSync if self._starting else super().modules

    @property
    def grains(self):
        if self._grains is None:
            key = (self.opts["id"], repr(self._original_opts.get("grains")))
            if key not in _HOST_GRAINS:
                _HOST_GRAINS[key] = copy.deepcopy(dict(super().grains))
            self._grains = copy.deepcopy(_HOST_GRAINS[key])
        return self._grains
