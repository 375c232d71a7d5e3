"""pytest-salt-factories' ``Loaders`` for opts that load this tree's own files.

``Loaders`` starts by building the execution modules, running
``saltutil.sync_all`` through them, and reloading every loader, so that
whatever the minion's ``file_roots`` hold lands in its extmods cache first.
The tests point ``module_dirs``, ``states_dirs``, ... at the working tree and
serve nothing to the functional minion's extmods: the sync finds nothing to
copy, yet it costs about 3 s an instance (a file client for each of some
twenty loader types, and a one-second wait to fire a refresh event at a
minion bus that a functional test does not have). That was most of every
functional test's time, on every Salt leg.

``TreeLoaders`` leaves out only that call. The execution modules are still
built and then cleaned by the reload: on Salt 3006 and 3007 that clean-up is
what takes the previous instance's module objects out of ``sys.modules``, so
that this instance's modules do not re-execute them under its own dunders
(two instances alive in one test, as the formula tests keep one per OS, would
otherwise render with each other's grains). The sync route itself is tested
on real daemons (``tests/integration/test_status_daemons.py``).
"""

from saltfactories.utils.functional import Loaders


class _NoSync:  # pylint: disable=too-few-public-methods
    """What ``Loaders.__init__`` reaches through the execution modules: ``saltutil.sync_all``."""

    class saltutil:  # pylint: disable=invalid-name,too-few-public-methods
        @staticmethod
        def sync_all(*args, **kwargs):  # pylint: disable=unused-argument
            return {}


class TreeLoaders(Loaders):
    def __init__(self, opts, loaded_base_name=None):
        self._starting = True
        try:
            super().__init__(opts, loaded_base_name=loaded_base_name)
        finally:
            self._starting = False

    @property
    def modules(self):
        modules = super().modules
        return _NoSync if self._starting else modules
