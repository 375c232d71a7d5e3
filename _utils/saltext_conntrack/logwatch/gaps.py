"""What a file reader found destroyed before it was read, until the beacon takes it.

``lost``: places where bytes known to be unread are gone (``lost_bytes`` of
them); ``unverified``: content gone with no way to know whether any of it was
unread (a truncation without a copy when everything seen had been read).
"""

import logging

log = logging.getLogger(__name__)


def empty():
    return {"lost": 0, "lost_bytes": 0, "unverified": 0}


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
            self.counts["unverified"] += 1
            log.info("conntrack beacon: %s: %s; whether anything unread was in it cannot be known", self.path, what)

    def take(self):
        """The counts since the last call, or None when nothing was destroyed."""
        counts = self.counts
        if not any(counts.values()):
            return None
        self.counts = empty()
        return counts
