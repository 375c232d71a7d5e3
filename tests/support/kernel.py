"""Guests on the real kernel: network namespaces the tests own, real flows on
loopback, and global conntrack sysctls saved and restored.

Everything here touches only namespaces it created itself and the loopback
addresses inside them.
"""

import contextlib
import ctypes
import os
import re
import shutil
import socket
import subprocess
import uuid

CLONE_NEWNET = 0x40000000
PROC_NF = "/proc/sys/net/netfilter"
GLOBAL_KNOBS = (
    f"{PROC_NF}/nf_conntrack_max",
    "/sys/module/nf_conntrack/parameters/hashsize",
)
_libc = ctypes.CDLL(None, use_errno=True)


def kernel_unavailable_reason():
    """Why kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, nft, global sysctls)"
    if not os.path.exists(f"{PROC_NF}/nf_conntrack_max"):
        return "this kernel has no nf_conntrack"
    for tool in ("ip", "nft", "conntrack"):
        if not shutil.which(tool):
            return f"kernel tests need the '{tool}' command (apt-get install iproute2 nftables conntrack)"
    return None


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def read_int(path):
    with open(path, encoding="ascii") as fh:
        return int(fh.read().split()[0])


def write_int(path, value):
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{value}\n")


@contextlib.contextmanager
def saved_globals(paths=GLOBAL_KNOBS):
    """Restore every global knob in ``paths`` on exit, even on failure.

    Each knob is restored on its own, so one failed write cannot leave the
    other at a test's value.
    """
    saved = {path: read_int(path) for path in paths if os.path.exists(path)}
    try:
        yield saved
    finally:
        errors = []
        for path, value in saved.items():
            try:
                if read_int(path) != value:
                    write_int(path, value)
            except OSError as err:
                errors.append(f"{path}: {err}")
        if errors:
            raise RuntimeError("could not restore " + "; ".join(errors))


class Netns:
    """A network namespace created (and deleted) by a test, tracking on."""

    def __init__(self, prefix="ctt"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.path = f"/run/netns/{self.name}"
        self.inode = None

    def ip(self, *args, **kwargs):
        return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30, **kwargs)

    def run(self, *cmd, check=True, timeout=60, **kwargs):
        """Run a command inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def create(self, udp_timeout=600):
        self.ip("netns", "add", self.name)
        self.inode = os.stat(self.path).st_ino
        self.ip("-n", self.name, "link", "set", "lo", "up")
        # Any ct expression makes the kernel track this namespace's traffic.
        self.run(
            "nft",
            "add table inet ctt; "
            "add chain inet ctt out { type filter hook output priority 0; }; "
            "add rule inet ctt out ct state new counter",
        )
        # Per-namespace timeout: flows made by a test must outlive the test.
        self.run("sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={udp_timeout}")
        return self

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=30)

    @contextlib.contextmanager
    def entered(self):
        """Move this thread into the namespace; /proc/net and /proc/sys/net follow."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield self
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def udp_flows(self, count, first_port=20000, dst_hosts=1):
        """Make ``count`` distinct UDP flows on loopback; return how many the kernel accepted.

        A send the kernel refuses (EPERM: the table is full) is counted as refused.
        Ports are spread over 127.0.0.x so more than 65k flows fit.
        """
        accepted = 0
        with self.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sent = 0
                for host in range(1, dst_hosts + 1):
                    for port in range(first_port, 65536):
                        if sent == count:
                            return accepted
                        sent += 1
                        try:
                            sock.sendto(b"x", (f"127.0.0.{host}", port))
                            accepted += 1
                        except PermissionError:
                            pass
            finally:
                sock.close()
        return accepted

    def udp_queries(self, count, port=53, first_sport=30000, dst="127.0.0.1"):
        """``count`` unanswered queries to ``dst:port`` from distinct source ports
        (a DNS flood at the default); how many the kernel refused (EPERM: full)."""
        refused = 0
        with self.entered():
            for sport in range(first_sport, first_sport + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", sport))
                    try:
                        sock.sendto(b"\x12\x34query", (dst, port))
                    except PermissionError:
                        refused += 1
        return refused

    def tcp_pairs(self, count, port=8080):
        """``count`` ESTABLISHED connections on loopback, left open; the sockets, to close later."""
        held = []
        with self.entered():
            listener = socket.socket()
            listener.bind(("127.0.0.1", port))
            listener.listen(count)
            held.append(listener)
            for _ in range(count):
                held.append(socket.create_connection(("127.0.0.1", port)))
                held.append(listener.accept()[0])
        return held

    def listed(self):
        """``conntrack -L`` as a set of lines without the ticking timeout."""
        lines = self.run("conntrack", "-L").stdout.splitlines()
        return {re.sub(r"^(\S+\s+\d+\s+)\d+ ", r"\1", line) for line in lines}

    def overflow(self, count, first_port):
        """Send ``count`` new flows at a full table; return how many the kernel refused.

        At its max the kernel may still admit a flow by evicting an unreplied entry
        in the next few hash buckets (early_drop), so a full table refuses most new
        flows, not necessarily all of them; its count stays at the max either way.
        """
        before = self.count()
        refused = count - self.udp_flows(count, first_port=first_port)
        assert refused > 0, f"a full table admitted all {count} new flows"
        assert self.count() == before, f"the table grew from {before} to {self.count()} while full"
        return refused

    def count(self):
        with self.entered():
            return read_int(f"{PROC_NF}/nf_conntrack_count")

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.delete()
