"""The beacon's machinery: the kernel log grammar, the log readers and their cursors, incidents,
the beacon's options and its runs, and the one-off count of a log file."""

from saltext_conntrack.logwatch import census, follow, grammar, incidents, options, sources, watch

__all__ = ["census", "follow", "grammar", "incidents", "options", "sources", "watch"]
