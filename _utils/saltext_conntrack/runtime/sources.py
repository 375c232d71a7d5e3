"""One named source per number: the proc files where the kernel has them, else ctnetlink.

Ubuntu's kernels have ``/proc/sys/net/netfilter/*`` but neither the stat file
nor the table (no ``CONFIG_NF_CONNTRACK_PROCFS``). Per number, the proc file
answers where it exists (a fixture tree has only files), ctnetlink where it
does not; a number neither can give is None with the reason, never a zero.

ctnetlink answers for the live kernel of this process's network namespace,
not for a tree: it is asked only where ``conntrack.root`` is ``/``, or where
the minion option ``conntrack.netlink`` is true (a root whose ``proc/sys`` is
the live one); ``conntrack.netlink: false`` never asks it.
"""

import os

from saltext_conntrack.common import files, paths
from saltext_conntrack.runtime import kernel, netlink

PROCFS, NETLINK = "procfs", "netlink"


def netlink_allowed(host):
    """Whether ctnetlink may answer for ``host`` (see the module doc)."""
    choice = getattr(host, "netlink", None)
    if choice is None:
        return os.path.realpath(host.root) == "/"
    return bool(choice)


def _why_not(err):
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, PermissionError):
        text += " (ctnetlink needs CAP_NET_ADMIN)"
    return text


class Reader:
    """The numbers of one host, each from its source; one netlink socket, opened on first need."""

    def __init__(self, host, netns=None):
        self.host = host
        self.netns = netns
        self.allowed = netlink_allowed(host)
        self._sock = None
        self._global = None

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def socket(self):
        """The ctnetlink socket; OSError (with why) where it cannot be had."""
        if not self.allowed:
            raise OSError(f"netlink not asked: conntrack.root is {self.host.root}, not / (conntrack.netlink)")
        if self._sock is None:
            self._sock = netlink.open_socket(self.netns)
        return self._sock

    def _read_proc(self, rel):
        return files.read_kernel(paths.join(self.host.root, rel))

    def knob(self, flavour, name):
        """``(value, source, reason)`` of ``count`` or ``max``: the sysctl, else ctnetlink."""
        rel = kernel.knob(flavour, name)
        try:
            return int(self._read_proc(rel).split()[0]), PROCFS, None
        except (OSError, ValueError, IndexError) as err:
            proc_reason = f"{paths.join(self.host.root, rel)}: {err}"
        try:
            if self._global is None:
                self._global = netlink.global_stats(self.socket())
            value = self._global[name]
        except OSError as err:
            return None, None, f"procfs: {proc_reason}; netlink: {_why_not(err)}"
        if value is None:
            return None, None, f"procfs: {proc_reason}; netlink: this kernel does not send the {name}"
        return value, NETLINK, None

    def counters(self, flavour):
        """``(stats, source, reason)``: the stat file summed over CPUs, else ctnetlink's per-CPU sums."""
        rel = kernel.FLAVOURS[flavour]["stat"]
        try:
            stats = kernel.parse_stat(self._read_proc(rel))
            if stats:
                return stats, PROCFS, None
            proc_reason = f"{paths.join(self.host.root, rel)} has no counters"
        except (OSError, ValueError) as err:
            proc_reason = f"{paths.join(self.host.root, rel)}: {err}"
        try:
            stats = netlink.cpu_stats(self.socket())
            if self._global is None:
                self._global = netlink.global_stats(self.socket())
        except OSError as err:
            return None, None, f"procfs: {proc_reason}; netlink: {_why_not(err)}"
        return {"entries": self._global["count"], **stats}, NETLINK, None

    def table_batches(self, flavour):
        """``(source, path or None)``: where the table walk reads; OSError with both reasons."""
        path = paths.join(self.host.root, kernel.FLAVOURS[flavour]["table"])
        if os.path.exists(path):
            return PROCFS, path
        try:
            self.socket()
        except OSError as err:
            raise OSError(f"no {path}, and netlink: {_why_not(err)}") from err
        return NETLINK, None

    def walk(self, fn):
        """``fn(socket)`` on a socket of its own: a dump cut short (a sample) leaves it unusable."""
        sock = netlink.open_socket(self.netns)
        try:
            return fn(sock)
        finally:
            sock.close()
