"""The table walk over a ctnetlink dump, at the speed of the dump itself.

Parsing each entry's attributes in Python costs several times what the
kernel spends producing it, so a buffer is counted by columns
(``netlink_columns``): the entries of one shape in one blob, checked against
their layout at once, their fields read as strided slices and counted in C.
What has no fast form there (IPv6, ICMP, zones) is parsed attribute by
attribute (``netlink.parse_entry``), so the result is the same.

The kernel fills each buffer (32 KiB at most) inside ``recv``, so in one
process the dump and the counting take turns (a reader thread waits for the
GIL the counting holds, and gained nothing when measured). A walk of a large
table therefore receives in a child (``netlink_pump``), the way the proc
walk reads through ``cat``: the dump on one CPU, the counting on another.
"""

import logging
import os
import struct
import subprocess
import sys

from saltext_conntrack.common import commands
from saltext_conntrack.runtime import netlink, netlink_columns, netlink_pump
from saltext_conntrack.runtime.netlink_pump import FRAME_HEAD

log = logging.getLogger(__name__)

_FRAME = struct.Struct("=I")  # a pump frame's length (netlink_pump)
# Entries from which a walk receives in a child: below, its start (about
# 20 ms) costs more than the overlap saves (the dump takes about 2 us an entry).
PUMP_FROM = 20_000
# The dump's sequence number, which every message carries: bytes without a zero (nor one
# alike modulo 64, for bytes.split's bloom filter) make it a quick thing to split a buffer on.
SEQ = 0x9B2D5A37


def buffers(sock, seq=SEQ, pump=False):
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


def walk(sock, counted, heavy_hitters, sample=None, expired=None, seq=SEQ, expected=None):
    """One pass over a dump into ``counted`` (a fresh ``table.Walk``); ``counted``.

    ``sample`` stops after that many entries, ``expired(total)`` (the proc
    walk's clock) when it says so, checked after each buffer; ``complete`` is
    then False when entries were left and ``stopped`` says which. Where
    ``expected`` (the count) reaches PUMP_FROM, a child receives the dump.
    """
    columns = netlink_columns.Columns(counted.talkers["src"].capacity, heavy_hitters, seq)
    large = (expected or 0) >= PUMP_FROM and (sample is None or sample >= PUMP_FROM)
    stream = buffers(sock, seq, pump=large)
    try:
        for data in stream:
            left = columns.add(data) if sample is None else None
            if left is None:
                batch = netlink.entries(data, seq)
                if sample is not None and counted.total + len(batch) >= sample:
                    keep = sample - counted.total
                    counted.complete = len(batch) == keep and next(stream, None) is None
                    counted.stopped = None if counted.complete else "sample"
                    _slow(counted, batch[:keep])
                    break
                left = batch
            if left:
                _slow(counted, left)
            if expired is not None and expired(counted.total + columns.total):
                counted.complete = next(stream, None) is None
                counted.stopped = None if counted.complete else "timeout"
                break
    finally:
        stream.close()
    columns.into(counted)
    return counted


def _slow(counted, batch):
    assured = sum(1 for entry in batch if entry.status & netlink.IPS_ASSURED)
    unreplied = sum(1 for entry in batch if not entry.status & netlink.IPS_SEEN_REPLY)
    counted.add_rows(list(map(netlink.row, batch)), assured, unreplied)
    counted.zones.update(str(entry.zone).encode() for entry in batch)
