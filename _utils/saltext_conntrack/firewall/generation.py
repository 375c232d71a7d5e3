"""A cheap fingerprint of the firewall rules ``dependents`` reads, to know when its answer is stale.

``dependents.survey`` runs ``iptables-save``, ``ip6tables-save`` and ``nft list
ruleset`` (milliseconds each, tens under load). What it answers changes only
when a rule or a saved rules file does, and each of those shows in something
cheap to read:

- nftables (and iptables-nft, whose rules live there): the ruleset's
  generation id, which the kernel bumps on every committed change, asked with
  one netlink message (``NFT_MSG_GETGEN``, about 0.1 ms);
- iptables-legacy: per table listed in the live ``/proc/net/ip{,6}_tables_names``, its
  rule count and blob size (``IPT_SO_GET_INFO``; a rule replaced by one of the
  same size is not seen: hence ``Rules.ttl``);
- the saved rules files: ``(inode, size, mtime)``;
- the search path's directories (``commands.path_stamp``): a tool installed or
  removed changes one's mtime.

``Rules`` keeps one ``dependents`` answer and asks again when the fingerprint
changes, cannot be read, or the answer is ``ttl`` seconds old.
"""

import ctypes
import os
import socket
import struct

from saltext_conntrack.common import commands, paths
from saltext_conntrack.firewall import dependents

NETLINK_NETFILTER = 12
NFT_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
NFT_NEWGEN = (10 << 8) | 15
NLMSG_ERROR = 2
NFTA_GEN_ID = 1
SO_GET_INFO = 64  # IPT_SO_GET_INFO and IP6T_SO_GET_INFO
GETINFO = struct.Struct("=32sI5I5III")  # struct ipt_getinfo / ip6t_getinfo
LEGACY = (("net/ip_tables_names", socket.AF_INET, socket.IPPROTO_IP),
          ("net/ip6_tables_names", socket.AF_INET6, socket.IPPROTO_IPV6))  # fmt: skip
# The live kernel's, as seen from the calling thread's namespace (like the commands dependents runs).
LIVE_PROC = "/proc/thread-self"
NAMES_MAX = 4096  # bytes of a *_tables_names file read


def parse_gen(data):
    """The generation id in a netlink reply, ``("error", errno)`` for an error reply, else None."""
    if len(data) < 16:
        return None
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR and len(data) >= 20:
        return ("error", -struct.unpack_from("=i", data, 16)[0])
    if kind != NFT_NEWGEN:
        return None
    off = 20  # nlmsghdr + nfgenmsg
    while off + 4 <= min(length, len(data)):
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            return None
        if atype & 0x3FFF == NFTA_GEN_ID and alen >= 8:
            return struct.unpack_from(">I", data, off + 4)[0]
        off += (alen + 3) & ~3
    return None


def nft_generation(timeout=0.2):
    """nftables' generation id in this network namespace; ``("error", errno)`` where the kernel
    refuses or lacks it (stable while that lasts); None when no answer came."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError as err:
        return ("error", err.errno)
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHIIBBH", 20, NFT_GETGEN, 1, 1, 0, socket.AF_UNSPEC, 0, 0))
        return parse_gen(sock.recv(65536))
    except TimeoutError:
        return None
    except OSError as err:
        return ("error", err.errno)
    finally:
        sock.close()


def _table_names(proc, rel):
    try:
        with open(os.path.join(proc, rel), "rb") as fh:
            return fh.read(NAMES_MAX).decode("ascii", "replace").split()
    except OSError:
        return None


def _get_info(sock, level, name):
    """``IPT_SO_GET_INFO`` for table ``name`` (the name goes in the buffer: not possible through Python's
    ``getsockopt``)."""
    buf = ctypes.create_string_buffer(GETINFO.pack(name.encode()[:31], *[0] * 13), GETINFO.size)
    size = ctypes.c_uint32(GETINFO.size)
    if _libc().getsockopt(sock.fileno(), level, SO_GET_INFO, buf, ctypes.byref(size)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return GETINFO.unpack(buf.raw)


_LIBC = []


def _libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def legacy_tables(proc=LIVE_PROC):
    """``((family, table, rules, size), ...)`` of the loaded iptables-legacy tables; errors as values.

    ``proc``: where ``net/ip_tables_names`` is read (the live kernel's, as the sockets ask it).
    """
    found = []
    for rel, family, level in LEGACY:
        names = _table_names(proc, rel)
        if not names:
            continue
        try:
            sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except OSError as err:
            found.append((family, None, "error", err.errno))
            continue
        with sock:
            for name in names[:32]:
                try:
                    fields = _get_info(sock, level, name)
                    found.append((family, name, fields[-2], fields[-1]))
                except OSError as err:
                    found.append((family, name, "error", err.errno))
    return tuple(found)


def saved_files(root):
    """``(inode, size, mtime_ns)`` of each saved rules file ``dependents`` reads (None: missing)."""
    out = []
    for host_path in dependents.SAVED_RULES:
        try:
            st = os.stat(paths.join(root, host_path))
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def fingerprint(root):
    """What changes when ``dependents.survey``'s answer may; None when it cannot be told."""
    gen = nft_generation()
    if gen is None:
        return None
    return (gen, legacy_tables(), saved_files(root), commands.path_stamp())


class Rules:
    """One ``dependents`` answer, asked again only when the rules may have changed."""

    def __init__(self, ttl=600.0):
        self.ttl = ttl
        self.kept = None  # (fingerprint, when, answer)
        self.asked = 0  # how many times ``compute`` ran (bench and tests)

    def get(self, root, compute, now):
        """``compute()``'s answer, reused while ``fingerprint(root)`` is unchanged and younger than ``ttl``."""
        mark = fingerprint(root)
        kept = self.kept
        if mark is not None and kept and kept[0] == mark and 0 <= now - kept[1] < self.ttl:
            return kept[2]
        answer = compute()  # an error is raised, never kept
        self.asked += 1
        self.kept = (mark, now, answer) if mark is not None else None
        return answer
