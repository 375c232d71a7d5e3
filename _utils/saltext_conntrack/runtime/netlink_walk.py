"""The table walk over a ctnetlink dump, at the speed of the dump itself.

Parsing each entry's attributes in Python costs about ten times what the
kernel spends producing it. The walk needs only a few fields of the
original direction, so a buffer is read the way the proc walk reads text:
one compiled pattern (``findall``, in C) over the whole buffer, for the
layout the kernel sends an IPv4 entry with ports in (original tuple, reply
tuple, status, a few 4-byte attributes, timeout, TCP state), and the counts
kept on raw bytes (``Counter``, ``map``), turned into the proc walk's keys
once, at the end. A buffer the pattern does not fully account for (IPv6,
ICMP, zones, accounting on, another kernel's attribute order) is parsed
attribute by attribute (``netlink.parse_entry``), so the result is the same.

The kernel fills each buffer (32 KiB at most) inside ``recv``, so in one
process the dump and the parse take turns (a reader thread waits for the
GIL the parse holds, and gained nothing when measured). A walk of a large
table therefore receives in a child (``netlink_pump``), the way the proc
walk reads through ``cat``: the dump on one CPU, the parse on another.

Lifetimes are kept in steps of 256 s (the timeout's upper three bytes) and
counted at the end of their step, so ``idle_established`` stays a lower bound.
"""

import logging
import os
import re
import socket
import struct
import subprocess
import sys
from collections import Counter
from operator import itemgetter

from saltext_conntrack.common import commands
from saltext_conntrack.runtime import netlink, netlink_pump
from saltext_conntrack.runtime.netlink_pump import FRAME_HEAD

log = logging.getLogger(__name__)

# One IPCTNL_MSG_CT_NEW of an IPv4 entry with ports, from the third byte of
# its nlmsghdr on (a literal first lets findall skip to each message):
# length < 64 KiB, type 0x0100, NLM_F_MULTI; nfgenmsg AF_INET; the original
# tuple (src, dst, proto, sport, dport); the reply tuple skipped; status (its
# low byte: SEEN_REPLY, ASSURED); up to 6 attributes of 8 bytes (mark, id,
# use); the timeout; the TCP state where protoinfo follows.
FAST = re.compile(
    rb"(?s)\x00\x00\x00\x01\x02\x00.{8}\x02\x00..\x34\x00\x01\x80\x14\x00\x01\x80"
    rb"\x08\x00\x01\x00(.{4})\x08\x00\x02\x00(.{4})\x1c\x00\x02\x80\x05\x00\x01\x00(.)\x00\x00\x00"
    rb"\x06\x00\x02\x00..\x00\x00\x06\x00\x03\x00(..)\x00\x00\x34\x00\x02\x80.{48}"
    rb"\x08\x00\x03\x00...(.)(?:\x08\x00[^\x07]\x00.{4}){0,6}?\x08\x00\x07\x00(...).(?:..\x04\x80..\x01\x80\x05\x00\x01\x00(.))?"
)
STEP = 256
_FRAME = struct.Struct("=I")  # a pump frame's length (netlink_pump)
# Every message of the dump carries this from the third byte of its header.
HEADER = b"\x00\x00\x00\x01\x02\x00"
# Entries from which a walk receives in a child: below, its start (about
# 20 ms) costs more than the overlap saves (the dump takes about 2 us an entry).
PUMP_FROM = 20_000
_KIND = itemgetter(2, 5, 6, 4)  # proto, timeout // 256, tcp state, status low byte
_SRC, _DST = itemgetter(0), itemgetter(1)
_PORT = itemgetter(2, 3, 4)
_STATE, _PROTO = itemgetter(6), itemgetter(2)


class RawCounts:
    """What the fast path counted, on raw bytes."""

    def __init__(self, capacity, heavy_hitters):
        self.kinds = Counter()
        self.talkers = {key: heavy_hitters(capacity) for key in ("src", "dst", "dport")}

    def add(self, rows):
        self.kinds.update(map(_KIND, rows))
        self.talkers["src"].update(map(_SRC, rows))
        self.talkers["dst"].update(map(_DST, rows))
        self.talkers["dport"].update(map(_PORT, rows))

    def into(self, walk):
        """Add these counts to ``walk`` (a ``table.Walk``) under the proc walk's keys."""
        for (proto, high, state, low), n in self.kinds.items():
            seconds = int.from_bytes(high, "big") * STEP + STEP - 1
            thousands = str(seconds // 1000).encode() if seconds >= 1000 else b""
            tcp = proto == b"\x06"
            name = netlink.TCP_STATES[state[0]] if tcp and state and state[0] < len(netlink.TCP_STATES) else b""
            # The fast path matches IPv4 entries without a zone attribute (zone 0) only.
            walk.kinds[(b"4", netlink.PROTO_NAMES.get(proto[0], b"unknown"), thousands, name)] += n
            walk.zones[b"0"] += n
            walk.total += n
            walk.assured += n if low[0] & netlink.IPS_ASSURED else 0
            walk.unreplied += 0 if low[0] & netlink.IPS_SEEN_REPLY else n
        for key in ("src", "dst"):
            _merge(walk.talkers[key], self.talkers[key], lambda raw: socket.inet_ntop(socket.AF_INET, raw).encode())
        _merge(walk.talkers["dport"], self.talkers["dport"], _port_key)


def _port_key(raw):
    proto, port, low = raw
    flag = b"" if low[0] & netlink.IPS_SEEN_REPLY else b"[UNREPLIED] "
    return netlink.PROTO_NAMES.get(proto[0], b"unknown"), b"dport=%d %s" % (int.from_bytes(port, "big"), flag)


def _merge(into, raw, convert):
    for key, n in raw.counts.items():
        into.counts[convert(key)] += n
    into.pruned += raw.pruned


def rows_of(data):
    """The fast path's rows for one buffer, or None when it does not account for every message.

    Every message must have matched once, so every TCP entry is a row; and
    every TCP row must have given its state (only TCP's protoinfo nest fills
    that group: this costs less than counting TCP tuples in the buffer).
    """
    rows = FAST.findall(data)
    if len(rows) != data.count(HEADER):
        return None
    states = list(map(_STATE, rows))
    if len(states) - states.count(b"") != list(map(_PROTO, rows)).count(b"\x06"):
        return None
    return rows


def buffers(sock, seq=3, pump=False):
    """The raw buffers of a table dump (the kernel fills each inside ``recv``); OSError as the kernel sent it.

    With ``pump``, a child receives them (``netlink_pump``) where one can be
    started; then each is a bytes copy of its frame. Otherwise, and where no
    child starts, this process receives.
    """
    sock.send(netlink.request(netlink.MSG_GET, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, seq))
    child = _start_pump(sock) if pump else None
    if child is not None:
        yield from _pumped(child, seq)
        return
    while True:
        data = sock.recv(netlink.RCVBUF)
        if netlink.dump_ended(data):
            netlink.check_end(data, seq)
            yield data
            return
        yield data


def _start_pump(sock):
    """The ``netlink_pump`` child receiving on ``sock``, or None where no Python can run it."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netlink_pump.py")
    if getattr(sys, "frozen", False) or not sys.executable or not os.path.isfile(script):
        return None
    fd = sock.fileno()
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", script, str(fd), str(netlink.RECV_TIMEOUT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(fd,),
            bufsize=0,
        )
    except OSError as err:
        log.debug("conntrack: no netlink_pump child (%s): the dump is received in this process", err)
        return None
    commands.widen_pipe(child.stdout.fileno())
    return child


def _read_into(stream, view):
    """Fill ``view`` from ``stream``; how many bytes it got (fewer at the stream's end)."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _pumped(child, seq):
    """The buffers ``child`` passes on (see ``netlink_pump``); OSError when it stops before the dump ends.

    A batch is read into one reused buffer; each frame is copied out once
    (a 32 KiB memcpy: ``bytes.count`` needs bytes, and a view would pin the buffer).
    """
    batch = bytearray(netlink_pump.BATCH + netlink_pump.FRAME + FRAME_HEAD + 4)
    view = memoryview(batch)
    try:
        while True:
            if _read_into(child.stdout, view[:4]) < 4:
                break
            size = int.from_bytes(view[:4], sys.byteorder)
            if size > len(batch) or _read_into(child.stdout, view[:size]) < size:
                break
            offset = 0
            while offset + FRAME_HEAD <= size:
                (length,) = _FRAME.unpack_from(batch, offset)
                start = offset + FRAME_HEAD
                offset = start + length
                data = bytes(view[start:offset])
                if netlink.dump_ended(data):
                    netlink.check_end(data, seq)
                    yield data
                    child.wait(netlink.RECV_TIMEOUT)  # it exits once the last batch is written
                    return
                yield data
        error = child.stderr.read().decode(errors="replace").strip()
        raise OSError(f"ctnetlink: the dump stopped early: {error or f'netlink_pump exited with {child.wait()}'}")
    except subprocess.TimeoutExpired:
        log.debug("conntrack: netlink_pump did not exit after the end of the dump")
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
        child.wait()


def walk(sock, counted, heavy_hitters, sample=None, expired=None, seq=3, expected=None):
    """One pass over a dump into ``counted`` (a fresh ``table.Walk``); ``counted``.

    ``sample`` stops after that many entries, ``expired(total)`` (the proc
    walk's clock) when it says so, checked after each buffer; ``complete`` is
    then False when entries were left and ``stopped`` says which. Where
    ``expected`` (the count) reaches PUMP_FROM, a child receives the dump.
    """
    raw = RawCounts(counted.talkers["src"].capacity, heavy_hitters)
    seen = 0
    large = (expected or 0) >= PUMP_FROM and (sample is None or sample >= PUMP_FROM)
    stream = buffers(sock, seq, pump=large)
    try:
        for data in stream:
            rows = rows_of(data) if sample is None else None
            if rows is not None:
                raw.add(rows)
                seen += len(rows)
            else:
                batch = list(netlink.entries(data, seq))
                if sample is not None and counted.total + len(batch) >= sample:
                    keep = sample - counted.total
                    counted.complete = len(batch) == keep and next(stream, None) is None
                    counted.stopped = None if counted.complete else "sample"
                    _slow(counted, batch[:keep])
                    break
                _slow(counted, batch)
            if expired is not None and expired(counted.total + seen):
                counted.complete = next(stream, None) is None
                counted.stopped = None if counted.complete else "timeout"
                break
    finally:
        stream.close()
    raw.into(counted)
    return counted


def _slow(counted, batch):
    assured = sum(1 for entry in batch if entry.status & netlink.IPS_ASSURED)
    unreplied = sum(1 for entry in batch if not entry.status & netlink.IPS_SEEN_REPLY)
    counted.add_rows(list(map(netlink.row, batch)), assured, unreplied)
    counted.zones.update(str(entry.zone).encode() for entry in batch)
