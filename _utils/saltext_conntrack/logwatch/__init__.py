"""The beacon's machinery: the kernel log grammar, the log readers and their cursors (a file's
jobs one module each: lines, generations, truncation, resume, gaps), incidents, the beacon's
options and its runs, and the one-off count of a log file."""

from saltext_conntrack.logwatch import (
    census,
    copies,
    follow,
    gaps,
    generations,
    grammar,
    incidents,
    lines,
    options,
    protocol,
    resume,
    sources,
    truncation,
    watch,
)

__all__ = [
    "census",
    "copies",
    "follow",
    "gaps",
    "generations",
    "grammar",
    "incidents",
    "lines",
    "options",
    "protocol",
    "resume",
    "sources",
    "truncation",
    "watch",
]
