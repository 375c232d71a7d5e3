"""The dump-receiving child: framing, the end of a dump, a silent kernel, and the parent's side.

A datagram socket pair stands in for the ctnetlink socket (each read returns
one datagram, as a netlink socket's does); the child is the real script.
"""

import os
import socket
import struct
import sys

import pytest

from saltext_conntrack.runtime import netlink, netlink_pump, netlink_walk, table
from tests.support.netlink_replies import Replies
from tests.unit.test_runtime_netlink import ct_message, done
from tests.unit.test_runtime_netlink_walk import SEQ, kernel_layout


def unframe(raw):
    """The buffers in the pump's output: batches of length-prefixed frames."""
    found = []
    while raw:
        size = int.from_bytes(raw[:4], sys.byteorder)
        batch, raw = raw[4 : 4 + size], raw[4 + size :]
        while batch:
            (n,) = struct.unpack_from("=I", batch)
            found.append(batch[4 : 4 + n])
            batch = batch[4 + n :]
    return found


def drain(fd):
    parts = []
    while part := os.read(fd, 1 << 16):
        parts.append(part)
    return b"".join(parts)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield ours, theirs
    ours.close()
    theirs.close()


def dump_buffers(entries=300, per_buffer=100):
    messages = [ct_message("10.0.0.1", f"10.0.{n // 250}.{n % 250}", dport=53 + n % 7, seq=SEQ) for n in range(entries)]
    buffers = [b"".join(messages[i : i + per_buffer]) for i in range(0, entries, per_buffer)]
    return buffers + [done(SEQ)]


def test_dump_ended_knows_both_ends():
    assert netlink_pump.dump_ended(ct_message("10.0.0.1", "10.0.0.2") + done(3))
    assert netlink_pump.dump_ended(done(3, kind=netlink.NLMSG_ERROR, code=-1) + b"\0" * 16)
    assert netlink_pump.dump_ended(memoryview(done(3)))
    assert not netlink_pump.dump_ended(ct_message("10.0.0.1", "10.0.0.2"))
    assert not netlink_pump.dump_ended(b"")


def test_every_buffer_goes_through_once_in_order_and_the_pump_stops_at_the_end(pair, monkeypatch):
    ours, theirs = pair
    # Less than a socket's and a pipe's buffer: nothing reads beside the pump here.
    sent = dump_buffers(300, 30)
    monkeypatch.setattr(netlink_pump, "BATCH", 8 * 1024)  # several batches
    for data in sent:
        theirs.send(data)
    theirs.send(b"after the end: never read")
    r, w = os.pipe()
    try:
        assert netlink_pump.pump(ours.fileno(), w, timeout=5)
        os.close(w)
        w = None
        assert unframe(drain(r)) == sent
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    assert ours.recv(100) == b"after the end: never read"


def test_a_silent_kernel_ends_the_pump_after_its_timeout(pair):
    ours, theirs = pair
    theirs.send(dump_buffers(10)[0])
    r, w = os.pipe()
    try:
        assert not netlink_pump.pump(ours.fileno(), w, timeout=0.2)
    finally:
        os.close(r)
        os.close(w)


def test_a_buffer_too_large_to_read_whole_is_an_error_not_a_short_count(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(netlink_pump, "FRAME", 256)
    theirs.send(b"\0" * 300)  # a read of FRAME bytes drops the rest of the datagram
    r, w = os.pipe()
    try:
        with pytest.raises(OSError, match="256 bytes or more"):
            netlink_pump.pump(ours.fileno(), w, timeout=1)
    finally:
        os.close(r)
        os.close(w)


def test_the_walk_through_the_child_counts_what_the_walk_in_process_counts(pair, monkeypatch):
    ours, theirs = pair
    sent = dump_buffers(600, 50)
    started = []
    real_start = netlink_walk._start_pump

    def spy(sock):
        child = real_start(sock)
        started.append(child)
        return child

    monkeypatch.setattr(netlink_walk, "_start_pump", spy)
    for data in sent:
        theirs.send(data)
    pumped = table.walk_netlink(ours, top=5, expected=netlink_walk.PUMP_FROM)
    assert len(started) == 1 and started[0] is not None and started[0].returncode == 0
    assert theirs.recv(1 << 16) == netlink.request(netlink.MSG_GET, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, SEQ)
    in_process = table.walk_netlink(Replies(*sent), top=5)
    assert table.breakdown(pumped, 5) == table.breakdown(in_process, 5)
    assert pumped.total == 600 and pumped.complete


def test_buffers_through_the_child_stay_on_the_fast_path(pair, monkeypatch):
    ours, theirs = pair
    udp = [kernel_layout("10.0.0.1", f"10.0.0.{n}", dport=53 + n % 3) for n in range(60)]
    tcp = [kernel_layout("10.0.1.1", "10.0.1.2", 6, 443, 0xE, 431000 + n, 3) for n in range(15)]
    sent = [b"".join(udp[:30] + tcp[:5]), b"".join(udp[30:] + tcp[5:]), done(SEQ)]
    monkeypatch.setattr(netlink_walk, "_slow", lambda *a: pytest.fail("a buffer left the fast path"))
    for data in sent:
        theirs.send(data)
    pumped = table.walk_netlink(ours, top=5, expected=netlink_walk.PUMP_FROM)
    assert pumped.total == 75 and table.breakdown(pumped, 5)["tcp_states"] == {"ESTABLISHED": 15}


def test_a_small_table_is_received_in_process(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(netlink_walk, "_start_pump", lambda sock: pytest.fail("a child for 300 entries"))
    for data in dump_buffers(300):
        theirs.send(data)
    assert table.walk_netlink(ours, top=5, expected=300).total == 300


def test_a_dump_the_child_cannot_finish_is_an_error_naming_why(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(netlink, "RECV_TIMEOUT", 0.3)
    theirs.send(dump_buffers(10)[0])
    with pytest.raises(OSError, match="dump stopped early: the kernel sent nothing for 0.3 s"):
        list(netlink_walk.buffers(ours, pump=True))


def test_the_kernels_error_at_the_end_of_a_dump_comes_through_the_child(pair):
    ours, theirs = pair
    theirs.send(dump_buffers(10)[0] + struct.pack("=IHHII", 20, netlink.NLMSG_DONE, 2, SEQ, 0) + struct.pack("=i", -16))
    with pytest.raises(OSError, match="dump stopped"):
        list(netlink_walk.buffers(ours, pump=True))


def test_without_a_python_to_run_it_the_dump_is_received_in_process(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(sys, "executable", "")
    for data in dump_buffers(120):
        theirs.send(data)
    got = list(netlink_walk.buffers(ours, pump=True))
    assert sum(len(netlink.entries(data, SEQ)) for data in got) == 120


def test_a_walk_stopped_early_kills_the_child(pair, monkeypatch):
    ours, theirs = pair
    started = []
    real_start = netlink_walk._start_pump
    monkeypatch.setattr(netlink_walk, "_start_pump", lambda sock: started.append(real_start(sock)) or started[-1])
    theirs.send(dump_buffers(10)[0])  # no end: the child waits for more
    stream = netlink_walk.buffers(ours, pump=True)
    assert next(stream)
    stream.close()
    assert started[0].returncode is not None and started[0].returncode != 0
