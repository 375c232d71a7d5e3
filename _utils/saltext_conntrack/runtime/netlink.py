"""ctnetlink: the kernel's own interface to conntrack, for kernels without the proc table.

Ubuntu's kernels are built without ``CONFIG_NF_CONNTRACK_PROCFS``: no
``/proc/net/stat/nf_conntrack`` and no ``/proc/net/nf_conntrack``. The same
numbers come over ``NETLINK_NETFILTER`` (what ``conntrack -S``/``-C``/``-L``
read), with the standard library's ``socket.AF_NETLINK``:

- :func:`cpu_stats`: ``IPCTNL_MSG_CT_GET_STATS_CPU``, one message per CPU,
  summed and named as the stat file's header names them;
- :func:`global_stats`: ``IPCTNL_MSG_CT_GET_STATS``, the count and the max;
- :func:`dump`: ``IPCTNL_MSG_CT_GET`` with ``NLM_F_DUMP``, the table as a
  stream of batches of entries, in the shape of the proc walk's rows;
- :func:`delete`: ``IPCTNL_MSG_CT_DELETE`` for entries a dump found.

A socket answers for the network namespace of the thread that opened it
(``netns`` opens it from a short-lived thread that entered a namespace with
``setns``). Every request needs ``CAP_NET_ADMIN``; errors are ``OSError``.
Constants: ``linux/netfilter/nfnetlink_conntrack.h`` and ``nfnetlink.h``.
"""

import ctypes
import os
import socket
import struct
import threading

# The pump child (standard library only) holds what it needs of the protocol; shared, not copied.
from saltext_conntrack.runtime.netlink_pump import NLMSG_DONE, NLMSG_ERROR
from saltext_conntrack.runtime.netlink_pump import dump_ended as dump_ended

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
MSG_NEW, MSG_GET, MSG_DELETE, MSG_STATS_CPU, MSG_STATS = 0, 1, 2, 4, 5
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NFNETLINK_V0 = 0
NLA_TYPE_MASK = 0x3FFF
CLONE_NEWNET = 0x40000000

# ctattr_type and its nests.
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO = 1, 2, 3, 4
CTA_TIMEOUT, CTA_MARK, CTA_ID, CTA_ZONE = 7, 8, 12, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_TUPLE_ZONE = 1, 2, 3
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
IPS_SEEN_REPLY, IPS_ASSURED = 0x2, 0x4

# ctattr_stats_cpu by the stat file's header name (error is icmp_error there).
CPU_COUNTERS = {
    2: "found",
    4: "invalid",
    8: "insert",
    9: "insert_failed",
    10: "drop",
    11: "early_drop",
    12: "icmp_error",
    13: "search_restart",
    14: "clashres",
    15: "chainlength",
}
GLOBAL_ENTRIES, GLOBAL_MAX = 1, 2

# The proc table's names: l4proto_name() and tcp_conntrack_names[].
PROTO_NAMES = {6: b"tcp", 17: b"udp", 1: b"icmp", 58: b"icmpv6", 132: b"sctp", 33: b"dccp", 47: b"gre", 136: b"udplite"}
TCP_STATES = (
    b"NONE",
    b"SYN_SENT",
    b"SYN_RECV",
    b"ESTABLISHED",
    b"FIN_WAIT",
    b"CLOSE_WAIT",
    b"LAST_ACK",
    b"TIME_WAIT",
    b"CLOSE",
    b"SYN_SENT2",
)
RCVBUF = 1 << 22
# The kernel answers a request or fills the next dump buffer in microseconds:
# a recv that waits this long will not be answered, and a minion must not hang on it.
RECV_TIMEOUT = 10.0
_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_BE16, _BE32 = struct.Struct(">H"), struct.Struct(">I")


class Entry:
    """One conntrack entry as a dump reads it: the original tuple and what the filters match on."""

    __slots__ = ("family", "proto", "src", "dst", "sport", "dport", "status", "timeout", "state", "mark", "zone")
    __slots__ += ("orig", "ident")

    @property
    def unreplied(self):
        return not self.status & IPS_SEEN_REPLY

    @property
    def assured(self):
        return bool(self.status & IPS_ASSURED)


def _attrs(data, start, end):
    """``{type: (offset, end)}`` of the attributes in ``data[start:end]``."""
    found = {}
    while start + 4 <= end:
        length, kind = _NLA.unpack_from(data, start)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found


def _address(raw):
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw).encode()
    # The proc table prints IPv6 as %pI6: eight groups of four digits, uncompressed.
    return b":".join(b"%04x" % g for g in struct.unpack(">8H", raw))


def parse_entry(data, start, end, family):
    """An :class:`Entry` from one ``IPCTNL_MSG_CT_NEW`` payload (after its nfgenmsg), or None."""
    top = _attrs(data, start, end)
    if CTA_TUPLE_ORIG not in top:
        return None
    entry = Entry()
    entry.family = family
    entry.orig = data[top[CTA_TUPLE_ORIG][0] - 4 : top[CTA_TUPLE_ORIG][1]]
    tup = _attrs(data, *top[CTA_TUPLE_ORIG])
    ip = _attrs(data, *tup[CTA_TUPLE_IP]) if CTA_TUPLE_IP in tup else {}
    src = ip.get(CTA_IP_V4_SRC) or ip.get(CTA_IP_V6_SRC)
    dst = ip.get(CTA_IP_V4_DST) or ip.get(CTA_IP_V6_DST)
    entry.src = _address(data[src[0] : src[1]]) if src else b""
    entry.dst = _address(data[dst[0] : dst[1]]) if dst else b""
    proto = _attrs(data, *tup[CTA_TUPLE_PROTO]) if CTA_TUPLE_PROTO in tup else {}
    entry.proto = data[proto[CTA_PROTO_NUM][0]] if CTA_PROTO_NUM in proto else 0
    entry.sport = _BE16.unpack_from(data, proto[CTA_PROTO_SRC_PORT][0])[0] if CTA_PROTO_SRC_PORT in proto else None
    entry.dport = _BE16.unpack_from(data, proto[CTA_PROTO_DST_PORT][0])[0] if CTA_PROTO_DST_PORT in proto else None
    entry.status = _BE32.unpack_from(data, top[CTA_STATUS][0])[0] if CTA_STATUS in top else 0
    entry.timeout = _BE32.unpack_from(data, top[CTA_TIMEOUT][0])[0] if CTA_TIMEOUT in top else 0
    entry.mark = _BE32.unpack_from(data, top[CTA_MARK][0])[0] if CTA_MARK in top else 0
    entry.zone = _BE16.unpack_from(data, top[CTA_ZONE][0])[0] if CTA_ZONE in top else 0
    entry.ident = data[top[CTA_ID][0] : top[CTA_ID][1]] if CTA_ID in top else None
    entry.state = None
    if CTA_PROTOINFO in top and entry.proto == 6:
        info = _attrs(data, *top[CTA_PROTOINFO])
        if CTA_PROTOINFO_TCP in info:
            tcp = _attrs(data, *info[CTA_PROTOINFO_TCP])
            if CTA_PROTOINFO_TCP_STATE in tcp:
                number = data[tcp[CTA_PROTOINFO_TCP_STATE][0]]
                entry.state = TCP_STATES[number] if number < len(TCP_STATES) else b"UNKNOWN"
    return entry


def row(entry):
    """The proc walk's row for ``entry``: ``(family, proto, lifetime // 1000, state, src, dst, dport flag)``,
    the family ``b"4"`` or ``b"6"`` as the proc table's ``ipv4``/``ipv6``."""
    thousands = str(entry.timeout // 1000).encode() if entry.timeout >= 1000 else b""
    port = b""
    if entry.sport is not None and entry.dport is not None:
        port = b"dport=%d %s" % (entry.dport, b"[UNREPLIED] " if entry.unreplied else b"")
    family = b"6" if entry.family == socket.AF_INET6 else b"4"
    return (family, PROTO_NAMES.get(entry.proto, b"unknown"), thousands, entry.state or b"", entry.src, entry.dst, port)


# ---------------------------------------------------------------------------
# The socket


def _enter(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def open_socket(netns=None):
    """A bound ``NETLINK_NETFILTER`` socket of this namespace, or of the one at path ``netns``.

    A socket belongs to the namespace it was opened in, so for ``netns`` a
    short-lived thread enters it (``setns`` moves only that thread), opens
    the socket and ends; the socket keeps answering for that namespace.
    """
    if netns is None:
        return _new_socket()
    result = {}

    def worker():
        try:
            _enter(netns)
            result["sock"] = _new_socket()
        except OSError as err:
            result["error"] = err

    thread = threading.Thread(target=worker, name="conntrack-netlink", daemon=True)
    thread.start()
    thread.join(10)
    if "sock" in result:
        return result["sock"]
    raise result.get("error") or OSError(f"timed out entering the network namespace {netns}")


def _new_socket():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
        sock.settimeout(RECV_TIMEOUT)
    except OSError:
        sock.close()
        raise
    return sock


def request(msg, flags, seq, payload=b"", family=socket.AF_UNSPEC):
    """One nfnetlink message of ctnetlink type ``msg``."""
    body = struct.pack("=BBH", family, NFNETLINK_V0, 0) + payload
    return _HDR.pack(16 + len(body), (NFNL_SUBSYS_CTNETLINK << 8) | msg, flags, seq, 0) + body


def attr(kind, value):
    """One netlink attribute, padded."""
    data = _NLA.pack(4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def messages(sock, seq):
    """Yield ``(type, data, start, end)`` for each reply to ``seq`` until the dump or the ack ends.

    An error reply raises OSError with the kernel's errno; an ack (error 0) ends the stream.
    """
    while True:
        data = sock.recv(RCVBUF)
        ended = yield from in_buffer(data, seq)
        if ended:
            return


def in_buffer(data, seq):
    """Yield the messages of one buffer as :func:`messages` does; return True where the reply ended."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, got_seq, _pid = _HDR.unpack_from(data, offset)
        if length < 16:
            return True
        end = offset + length
        if got_seq == seq:
            if kind == NLMSG_DONE:
                errno = -struct.unpack_from("=i", data, offset + 16)[0] if length >= 20 else 0
                if errno > 0:
                    raise OSError(errno, f"ctnetlink: dump stopped: {os.strerror(errno)}")
                return True
            if kind == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", data, offset + 16)[0]
                if errno:
                    raise OSError(errno, f"ctnetlink: {os.strerror(errno)}")
                return True
            yield kind & 0xFF, data, offset + 16, end
        offset = (end + 3) & ~3
    return False


def entries(data, seq):
    """The :class:`Entry` list of one dump buffer (OSError where it carries the kernel's error)."""
    found = []
    for kind, _, start, end in in_buffer(data, seq):
        if kind == MSG_NEW:
            entry = parse_entry(data, start + 4, end, data[start])
            if entry is not None:
                found.append(entry)
    return found


def check_end(data, seq):
    """Raise the kernel's error where the buffer that ended a dump carries one."""
    if _HDR.unpack_from(data, 0)[1] in (NLMSG_ERROR, NLMSG_DONE):
        entries(data, seq)
        return
    errno = -struct.unpack_from("=i", data, len(data) - 4)[0]
    if errno > 0:
        raise OSError(errno, f"ctnetlink: dump stopped: {os.strerror(errno)}")


def cpu_stats(sock, seq=1):
    """The per-CPU counters summed, by the stat file's names (``drop``, ``early_drop``, ...)."""
    sock.send(request(MSG_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP, seq))
    totals = dict.fromkeys(CPU_COUNTERS.values(), 0)
    for _kind, data, start, end in messages(sock, seq):
        for kind, (lo, hi) in _attrs(data, start + 4, end).items():
            if kind in CPU_COUNTERS and hi - lo == 4:
                totals[CPU_COUNTERS[kind]] += _BE32.unpack_from(data, lo)[0]
    return totals


def global_stats(sock, seq=2):
    """``{"count", "max"}`` of the table (``max`` None on kernels that do not send it)."""
    sock.send(request(MSG_STATS, NLM_F_REQUEST | NLM_F_ACK, seq))
    found = {"count": None, "max": None}
    for _kind, data, start, end in messages(sock, seq):
        values = _attrs(data, start + 4, end)
        for name, kind in (("count", GLOBAL_ENTRIES), ("max", GLOBAL_MAX)):
            if kind in values:
                found[name] = _BE32.unpack_from(data, values[kind][0])[0]
    if found["count"] is None:
        raise OSError("ctnetlink: the stats reply has no entry count")
    return found


def dump(sock, seq=3):
    """Yield the table as lists of :class:`Entry`, one list per buffer the kernel filled.

    Memory stays at one buffer: the kernel sends the table in pieces as it is read.
    """
    sock.send(request(MSG_GET, NLM_F_REQUEST | NLM_F_DUMP, seq))
    batch, current = [], None
    for kind, data, start, end in messages(sock, seq):
        if data is not current and batch:
            yield batch
            batch = []
        current = data
        if kind == MSG_NEW:
            entry = parse_entry(data, start + 4, end, data[start])
            if entry is not None:
                batch.append(entry)
    if batch:
        yield batch


def delete(sock, entries, seq=1000):
    """Delete ``entries`` (from a dump) by their original tuple, zone and id; ``(deleted, gone)``.

    ``gone`` counts entries that had already expired (ENOENT). The id makes
    sure a new entry that reuses a tuple is never the one deleted.
    """
    deleted = gone = 0
    for offset, entry in enumerate(entries):
        payload = entry.orig
        if entry.zone:
            payload += attr(CTA_ZONE, _BE16.pack(entry.zone))
        if entry.ident is not None:
            payload += attr(CTA_ID, entry.ident)
        sock.send(request(MSG_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq + offset, payload, entry.family))
        try:
            for _ in messages(sock, seq + offset):
                pass
            deleted += 1
        except FileNotFoundError:
            gone += 1
    return deleted, gone
