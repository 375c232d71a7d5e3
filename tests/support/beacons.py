"""The beacon loader that pytest-salt-factories' ``Loaders`` lacks, and a fake clock.

``BeaconLoaders(opts).beacons`` is ``salt.loader.beacons`` over the same
opts, execution modules and ``__context__`` the minion would give it, so a
beacon under test reaches ``__salt__["conntrack.status"]`` for real.
"""

from saltfactories.utils.functional import Loaders


class BeaconLoaders(Loaders):
    _beacons = None

    @property
    def beacons(self):
        import salt.loader  # pylint: disable=import-outside-toplevel

        if self._beacons is None:
            self._beacons = salt.loader.beacons(self.opts, self.modules, context=self.context)
        return self._beacons

    def reload_all(self):
        if self._beacons is not None:
            self._beacons.clean_modules()
            self._beacons.clear()
            self._beacons = None
        super().reload_all()

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
        if loader and self._beacons is not None:
            self._beacons.clean_modules()
            self._beacons.clear()
            self._beacons = None


class Clock:
    """A settable wall clock for the beacon's ``_now``."""

    def __init__(self, start=1_800_000_000.0):
        self.now = start

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds
        return self.now
