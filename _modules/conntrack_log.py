"""
The conntrack beacon's log reader as a command: what a kernel log says about table-full incidents.

``salt-call conntrack_log.read_log /var/log/kern.log`` reads the file (under
``conntrack.root``, links resolved) with the beacon's own grammar and says
what the beacon would count: table-full lines, suppressed counts, the
namespaces named and the first and last time. A debugging command for when
an event did not arrive or its numbers look wrong.

Loading this module also imports the shared core, which the beacon then
finds in ``sys.modules`` on the ``saltutil.sync_all`` way in (the beacons
loader adds no utils directory to ``sys.path``).
"""

from collections.abc import Mapping
from typing import Any

try:
    from saltext_conntrack import common, logwatch
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

__virtualname__ = "conntrack_log"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__grains__: Mapping[str, Any]


def __virtual__():
    if __grains__.get("kernel") != "Linux":
        return False, "conntrack_log: the kernel log of netfilter exists only on Linux"
    return __virtualname__


def read_log(path="/var/log/kern.log", max_bytes=64 * 2**20):
    """
    Count the table-full incidents in a kernel log file, as the beacon would.

    path
        An absolute path of a regular file under ``conntrack.root`` (default
        ``/var/log/kern.log``); a device or a FIFO (``/dev/kmsg``) is refused:
        it has no end to read to.

    max_bytes
        Read at most this many bytes from the end of the file (default 64 MiB,
        at most 256 MiB).

    Returns ``matched`` (table-full lines), ``suppressed`` (rate-limit counts
    belonging to bursts), ``total``, ``netns`` (``{inode: lines}``, ``null``
    for lines naming none), ``first`` and ``last`` (times of the first and
    last table-full line, UTC), ``bytes`` read and ``path`` (the real file).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_log.read_log
        salt-call conntrack_log.read_log /var/log/messages
    """
    return logwatch.census.count(common.paths.root_of(__opts__), path, max_bytes)
