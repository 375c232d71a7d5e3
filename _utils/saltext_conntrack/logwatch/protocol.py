"""What every kernel log reader of the beacon is: ``/dev/kmsg``, journald, a syslog file.

``watch.Watch`` and the state file (``incidents``) rely on nothing else, so a
new reader is a subclass that fills in these five methods.
"""

import abc


class LogReader(abc.ABC):
    """A kernel log read run by run from a cursor that survives restarts.

    ``kind`` names the reader in its saved cursor (``state()["kind"]``);
    ``name`` is what events and log lines call the source.
    """

    kind: str
    name: str

    @abc.abstractmethod
    def read(self, budget, now=None):
        """The hits written since the last call, in order (``grammar.scan_message``'s
        ``(netns, suppressed count or None, time or None)``), reading about ``budget`` bytes at most.
        """

    @abc.abstractmethod
    def state(self):
        """The cursor as JSON-able data for the state file, or None when there is none yet."""

    @abc.abstractmethod
    def cursor_key(self):
        """A value that changes whenever the cursor moves: the state file is written only then."""

    @abc.abstractmethod
    def take_gaps(self):
        """``{lost, lost_bytes, unverified}`` destroyed before it was read since the last call, or None."""

    @abc.abstractmethod
    def close(self):
        """Release the descriptors; the reader may not be read again."""
