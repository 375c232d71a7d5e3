"""What a kernel log file says about table-full incidents, read once from its end.

The debugging twin of the beacon (``conntrack_log.read_log``): the same
grammar and coalescing over a whole file, with nothing kept between calls.
"""

import os
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.logwatch import grammar, incidents

MAX_BYTES = 256 * 2**20


def _tail(real, limit):
    """The last ``limit`` bytes of a regular file, from a whole line on."""
    try:
        with open(real, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise SaltInvocationError(f"{real} is not a regular file: give a log file such as /var/log/kern.log")
            size = st.st_size
            fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError as err:
        raise CommandExecutionError(f"cannot read {real}: {err.strerror or err}") from err
    if size > limit:
        data = data[data.find(b"\n") + 1 :]  # start at a whole line
    return data


def count(root, path, max_bytes):
    """Table-full lines, suppressed counts, namespaces and times in the file at ``path`` under ``root``.

    A path that leaves the root is the caller's mistake, so it is a
    SaltInvocationError, like every other bad argument.
    """
    limit = numbers.integer(max_bytes, "max_bytes", 1, MAX_BYTES)
    try:
        real = paths.resolve(root, path, "path")
    except CommandExecutionError as err:
        raise SaltInvocationError(str(err)) from err
    data = _tail(real, limit)
    acc = incidents.new_acc()
    incidents.coalesce(acc, grammar.scan_text(data[: data.rfind(b"\n") + 1]), None, False)
    return {
        "path": real,
        "bytes": len(data),
        "matched": acc["matched"],
        "suppressed": acc["suppressed"],
        "total": acc["matched"] + acc["suppressed"],
        "netns": {("null" if ns is None else str(ns)): n for ns, n in acc["netns"].items()},
        "first": grammar.iso(acc["first"]),
        "last": grammar.iso(acc["last"]),
    }
