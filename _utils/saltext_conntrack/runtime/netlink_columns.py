"""A ctnetlink dump buffer counted by columns, in C.

A dump buffer (32 KiB at most) holds a few hundred ``IPCTNL_MSG_CT_NEW``
messages, and the kernel lays out every entry of one shape the same way: the
same attributes, in the same order, at the same offsets. So a buffer is not
parsed entry by entry. Its messages are put in runs of one length
(:func:`runs`), each run one blob of fixed-stride messages; a run's
:class:`Layout`, learned once per walk from one of its messages by walking
its attributes, says where the fields are and which bytes make that shape
(the header of every attribute a parse walks through, the address family,
the protocol). One big-integer mask compare checks every message of the run
against it; the fields are then strided slices of the blob, counted in C.

Nothing is guessed. A buffer of one length (what a dump of one kind of
traffic sends) is proven a run by three strided compares: every message's
length, type and flags and sequence number where the first one's length
says the next begins. Any other buffer is split on the sequence number and
proven by the lengths (see :func:`runs`). A run whose messages do not all
have its layout, or whose shape has no fast form (IPv6, no ports, a zone,
no timeout), is parsed attribute by attribute (``netlink.parse_entry``).
Either way the counts are the same.

Lifetimes are kept in steps of 256 s (the timeout's upper three bytes) and
counted at the end of their step, so ``idle_established`` stays a lower bound.
"""

import socket
import struct
import sys
from array import array
from collections import Counter
from itertools import groupby, repeat
from operator import add, itemgetter

from saltext_conntrack.runtime import netlink

STEP = 256
_HEAD = struct.Struct("=IHH")  # a message's length, type and flags
_NEW = netlink.NFNL_SUBSYS_CTNETLINK << 8 | netlink.MSG_NEW
_TYPE_FLAGS = struct.pack("=HH", _NEW, netlink.NLM_F_MULTI)
_TAIL = itemgetter(slice(-_HEAD.size, None))
_DONE = b"\x14\0\0\0" + struct.pack("=H", netlink.NLMSG_DONE)
_ASSURED = bytes(1 if b & netlink.IPS_ASSURED else 0 for b in range(256))
_UNREPLIED = bytes(0 if b & netlink.IPS_SEEN_REPLY else 1 for b in range(256))


class Layout:
    """Where the fields of one shape of entry are, as offsets into its message of ``length`` bytes."""

    def __init__(self, length, mask, expect, proto, fields):
        self.length = length
        self.mask, self.expect = mask, expect
        self.proto = proto
        self.src, self.dst, self.dport = fields["src"], fields["dst"], fields["dport"]
        self.status, self.timeout, self.state = fields["status"], fields["timeout"], fields.get("state")
        self._checks = {}

    def matches(self, blob, n):
        """Whether each of the first ``n`` messages of ``blob`` has this shape: one mask compare."""
        check = self._checks.get(n)
        if check is None:
            if len(self._checks) >= 16:  # a few sizes of run repeat; the others cost a rebuild
                self._checks.clear()
            check = tuple(int.from_bytes(part * n, "little") for part in (self.mask, self.expect))
            self._checks[n] = check
        return int.from_bytes(blob, "little") & check[0] == check[1]


def learn(message):
    """The :class:`Layout` of ``message`` (one whole ``IPCTNL_MSG_CT_NEW``), or None where it has
    no fast form: not IPv4, no ports, a zone, no status or no timeout."""
    length = len(message)
    if length % 4 or length < 24 or message[16] != socket.AF_INET:
        return None
    pinned = bytearray(length)
    pinned[16] = 0xFF  # the family

    def walk(start, end):
        found = {}
        while start + 4 <= end:
            size, kind = struct.unpack_from("=HH", message, start)
            pinned[start : start + 4] = b"\xff\xff\xff\xff"
            if size < 4:
                break
            found[kind & netlink.NLA_TYPE_MASK] = (start + 4, start + size)
            start += (size + 3) & ~3
        return found

    def value(attrs, kind, size):
        span = attrs.get(kind)
        return span[0] if span is not None and span[1] - span[0] == size else None

    top = walk(20, length)
    if netlink.CTA_ZONE in top or netlink.CTA_TUPLE_ORIG not in top:
        return None
    tup = walk(*top[netlink.CTA_TUPLE_ORIG])
    if netlink.CTA_TUPLE_ZONE in tup or netlink.CTA_TUPLE_IP not in tup or netlink.CTA_TUPLE_PROTO not in tup:
        return None
    ip, l4 = walk(*tup[netlink.CTA_TUPLE_IP]), walk(*tup[netlink.CTA_TUPLE_PROTO])
    fields = {
        "src": value(ip, netlink.CTA_IP_V4_SRC, 4),
        "dst": value(ip, netlink.CTA_IP_V4_DST, 4),
        "proto": value(l4, netlink.CTA_PROTO_NUM, 1),
        "sport": value(l4, netlink.CTA_PROTO_SRC_PORT, 2),
        "dport": value(l4, netlink.CTA_PROTO_DST_PORT, 2),
        "status": value(top, netlink.CTA_STATUS, 4),
        "timeout": value(top, netlink.CTA_TIMEOUT, 4),
    }
    if None in fields.values():
        return None
    proto = message[fields["proto"]]
    pinned[fields["proto"]] = 0xFF  # a TCP entry's protoinfo is read, another's not: part of the shape
    if proto == socket.IPPROTO_TCP and netlink.CTA_PROTOINFO in top:
        info = walk(*top[netlink.CTA_PROTOINFO])
        if netlink.CTA_PROTOINFO_TCP in info:
            state = value(walk(*info[netlink.CTA_PROTOINFO_TCP]), netlink.CTA_PROTOINFO_TCP_STATE, 1)
            if state is not None:
                fields["state"] = state
    mask = bytes(pinned)
    expect = bytes(m & b for m, b in zip(mask, message, strict=True))
    return Layout(length, mask, expect, proto, fields)


def runs(data, seq):
    """``[(length, blob, n)]``: the messages of ``data`` by length, each run ``n`` whole messages
    from the start of ``blob``; None where the buffer is not only ``IPCTNL_MSG_CT_NEW`` messages of
    reply ``seq`` (and the dump's end, ``NLMSG_DONE``, last).

    A run's first 8 bytes of each message (length, type, flags) may be another message's: the
    split below keeps them where they were. The layout of a little-endian kernel's header is
    assumed; on another, every proof fails and the walk parses attribute by attribute.
    """
    if data[-20:-14] == _DONE:
        data = data[:-20]
    if not data:
        return []
    needle = seq.to_bytes(4, sys.byteorder)
    length = _HEAD.unpack_from(data)[0] if len(data) >= 20 else 0
    if length >= 20 and length % 4 == 0 and len(data) % length == 0:
        n, step = len(data) // length, length // 4
        words = memoryview(data).cast("I")
        if (
            words[0::step].tobytes() == data[:4] * n
            and words[1::step].tobytes() == _TYPE_FLAGS * n
            and words[2::step].tobytes() == needle * n
        ):
            return [(length, data, n)]
    found = data.split(needle)
    if len(found) < 2 or len(found[0]) != _HEAD.size or len(data) % 4:
        return None
    # The proof of the split: before each sequence number, a header of IPCTNL_MSG_CT_NEW whose
    # length is the distance to the next sequence number found, in order, so the same four bytes
    # inside a value cut no message in two. Each piece is a message from its 13th byte on, then
    # the next message's first 8 bytes (the last one's: the first message's, copied).
    head = found[0]
    found[-1] += head
    lengths = array("I", map(add, map(len, found[1:]), repeat(4)))
    heads = array("I", bytes(_HEAD.size * len(lengths)))
    heads[0::2] = lengths
    heads[1::2] = array("I", _TYPE_FLAGS * len(lengths))
    if heads.tobytes() != b"".join(map(_TAIL, found[:-1])):
        return None
    del found[0]
    found.sort(key=len)
    # Joined on the sequence number, behind 8 bytes of a header: whole messages again.
    return [(size + 4, head + needle + needle.join(run), len(run)) for size, run in _grouped(found)]


def _grouped(pieces):
    for size, run in groupby(pieces, len):
        yield size, list(run)


class Columns:
    """What the fast path counted, on integers; :meth:`into` gives them the proc walk's keys."""

    def __init__(self, capacity, heavy_hitters, seq):
        self.seq = seq
        self.total = self.assured = self.unreplied = 0
        self.layouts = {}  # message length -> Layout, or None: parsed attribute by attribute
        # (proto, TCP state or None, lifetime step) -> entries
        self.kinds = Counter()
        # src, dst: the address as a native word; dport: the protocol, the port (big-endian), unreplied.
        self.talkers = {key: heavy_hitters(capacity) for key in ("src", "dst", "dport")}

    def add(self, data):
        """Count the buffer ``data``. The entries it left (``netlink.Entry``, for the caller to count),
        or None where the buffer is not a run of whole entries (it counted nothing then)."""
        found = runs(data, self.seq)
        if found is None:
            return None
        left = []
        for length, blob, n in found:
            if length not in self.layouts:
                self.layouts[length] = learn(blob[:length])
            layout = self.layouts[length]
            if layout is None:
                left.extend(_parsed(blob, length, n))
            elif layout.matches(blob, n):
                self._count(layout, blob, n)
            else:  # another shape of the same length among them: sorted out one message at a time
                fits = []
                for offset in range(0, n * length, length):
                    message = blob[offset : offset + length]
                    if layout.matches(message, 1):
                        fits.append(message)
                    else:
                        left.extend(_parsed(message, length, 1))
                if fits:
                    self._count(layout, b"".join(fits), len(fits))
        return left

    def _count(self, layout, blob, n):
        self.total += n
        size = layout.length
        end = n * size
        words = memoryview(blob)[:end].cast("I")
        self.talkers["src"].update(_tally(words[layout.src // 4 :: size // 4]))
        self.talkers["dst"].update(_tally(words[layout.dst // 4 :: size // 4]))
        status = blob[layout.status + 3 : end : size]
        self.assured += status.translate(_ASSURED).count(1)
        unreplied = status.translate(_UNREPLIED)
        self.unreplied += unreplied.count(1)
        port = bytearray(4 * n)
        port[0::4] = bytes([layout.proto]) * n
        port[1::4] = blob[layout.dport : end : size]
        port[2::4] = blob[layout.dport + 1 : end : size]
        port[3::4] = unreplied
        self.talkers["dport"].update(_tally(memoryview(port).cast("I")))
        self._lifetimes(layout, blob, n, end)

    def _lifetimes(self, layout, blob, n, end):
        size, at = layout.length, layout.timeout
        state = blob[layout.state : end : size] if layout.state is not None else None
        high = blob[at:end:size] + blob[at + 1 : end : size]
        if state is None and high.count(0) == 2 * n:
            # Under 65,536 s (UDP's, ICMP's): the step is the low byte, counted as a small int.
            for step, count in _counts(blob[at + 2 : end : size]).items():
                self.kinds[(layout.proto, None, step)] += count
            return
        key = bytearray(4 * n)
        key[0::4] = blob[at + 2 : end : size]
        key[1::4] = blob[at + 1 : end : size]
        key[2::4] = blob[at:end:size]
        if state is not None:
            key[3::4] = state
        for packed, count in _counts(memoryview(key).cast("I")).items():
            self.kinds[(layout.proto, packed >> 24 if state is not None else None, packed & 0xFFFFFF)] += count

    def into(self, walk):
        """Add these counts to ``walk`` (a ``table.Walk``) under the proc walk's keys."""
        for (proto, state, step), n in self.kinds.items():
            seconds = step * STEP + STEP - 1
            thousands = str(seconds // 1000).encode() if seconds >= 1000 else b""
            name = b""
            if state is not None:
                name = netlink.TCP_STATES[state] if state < len(netlink.TCP_STATES) else b"UNKNOWN"
            # A layout is of IPv4 entries without a zone attribute (zone 0).
            walk.kinds[(b"4", netlink.PROTO_NAMES.get(proto, b"unknown"), thousands, name)] += n
        walk.zones[b"0"] += self.total
        walk.total += self.total
        walk.assured += self.assured
        walk.unreplied += self.unreplied
        for key in ("src", "dst"):
            _merge(walk.talkers[key], self.talkers[key], _address)
        _merge(walk.talkers["dport"], self.talkers["dport"], _port)


def _tally(column):
    """``column`` (a memoryview of ints, or bytes) as ``Counter.update`` takes it: ``{value: n}``
    where one value fills it (one compare in C), else the column itself (counted in C)."""
    raw = column.tobytes() if isinstance(column, memoryview) else column
    n = len(column)
    if n and raw == raw[: len(raw) // n] * n:
        return {column[0]: n}
    return column


def _counts(column):
    """``{value: n}`` over ``column``."""
    tally = _tally(column)
    return tally if isinstance(tally, dict) else Counter(tally)


def _address(word):
    return socket.inet_ntop(socket.AF_INET, word.to_bytes(4, sys.byteorder)).encode()


def _port(key):
    proto, high, low, unreplied = key.to_bytes(4, "little")
    flag = b"[UNREPLIED] " if unreplied else b""
    return netlink.PROTO_NAMES.get(proto, b"unknown"), b"dport=%d %s" % (high << 8 | low, flag)


def _merge(into, counted, convert):
    for key, n in counted.counts.items():
        into.counts[convert(key)] += n
    into.pruned += counted.pruned


def _parsed(blob, length, n):
    """The entries of the first ``n`` messages of ``blob``, attribute by attribute."""
    entries = []
    for offset in range(0, n * length, length):
        entry = netlink.parse_entry(blob, offset + 20, offset + length, blob[offset + 16])
        if entry is not None:
            entries.append(entry)
    return entries
