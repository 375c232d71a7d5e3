"""The beacon"s machinery: the kernel log grammar, the log readers and their cursors, incidents."""

from saltext_conntrack.logwatch import follow, grammar, incidents, sources

__all__ = ["follow", "grammar", "incidents", "sources"]
