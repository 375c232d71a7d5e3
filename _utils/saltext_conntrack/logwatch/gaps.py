"""What a file reader found destroyed, or could not read, before it was read, until the beacon takes it.

``lost``: places where bytes known to be unread are gone (``lost_bytes`` of
them); ``unverified``: pieces that may hold unread lines and cannot be read
(a truncation without a copy when everything seen had been read, a
generation rotated out of sight while the minion was down: ``olddir``,
deleted, compressed with zstd or lz4), one per piece, with
``unverified_bytes`` where the unread size is known.
"""

import logging

log = logging.getLogger(__name__)
KEYS = ("lost", "lost_bytes", "unverified", "unverified_bytes")


def empty():
    return dict.fromkeys(KEYS, 0)


class Gaps:
    """The counts of one file source since the last ``take``."""

    def __init__(self, path):
        self.path = path
        self.counts = empty()

    def note(self, seen, offset, what):
        """Content from ``offset`` on is gone: lost when bytes past it had been seen, else unverified."""
        if seen > offset:
            self.counts["lost"] += 1
            self.counts["lost_bytes"] += seen - offset
            log.warning("conntrack beacon: %s: %s; %d unread bytes are gone", self.path, what, seen - offset)
        else:
            self.doubt(0, what)

    def doubt(self, nbytes, what):
        """One piece that may hold unread lines cannot be read (``nbytes`` of it known unread)."""
        self.counts["unverified"] += 1
        self.counts["unverified_bytes"] += max(0, nbytes)
        log.info(
            "conntrack beacon: %s: %s; whether anything unread was in it cannot be known (%d bytes known unread)",
            self.path,
            what,
            max(0, nbytes),
        )

    def take(self):
        """The counts since the last call, or None when nothing was destroyed."""
        counts = self.counts
        if not any(counts.values()):
            return None
        self.counts = empty()
        return counts
