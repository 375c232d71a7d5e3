"""ctnetlink messages: built as the kernel sends them, parsed into the proc walk's rows."""

import errno
import socket
import struct

import pytest

from saltext_conntrack.runtime import kernel, netlink
from tests.support.netlink_replies import Replies

A = netlink.attr


def nest(kind, *parts):
    return A(kind | 0x8000, b"".join(parts))


def ct_message(src, dst, proto=17, sport=5353, dport=53, status=0, timeout=29, tcp_state=None, zone=0, seq=3):
    """One IPCTNL_MSG_CT_NEW as a dump sends it."""
    v6 = ":" in src
    family = socket.AF_INET6 if v6 else socket.AF_INET
    ip = (
        A(3 if v6 else 1, socket.inet_pton(family, src)),
        A(4 if v6 else 2, socket.inet_pton(family, dst)),
    )
    l4 = [A(1, bytes([proto]))]
    if sport is not None:
        l4 += [A(2, struct.pack(">H", sport)), A(3, struct.pack(">H", dport))]
    body = nest(1, nest(1, *ip), nest(2, *l4))
    body += nest(2, nest(1, *ip[::-1]), nest(2, *l4))
    body += A(3, struct.pack(">I", status)) + A(7, struct.pack(">I", timeout)) + A(8, struct.pack(">I", 0))
    if tcp_state is not None:
        body += nest(4, nest(1, A(1, bytes([tcp_state]))))
    body += A(12, struct.pack(">I", 0xDEADBEEF))
    if zone:
        body += A(18, struct.pack(">H", zone))
    msg = netlink.request(netlink.MSG_NEW, netlink.NLM_F_MULTI, seq, body, family)
    return msg


def done(seq, kind=netlink.NLMSG_DONE, code=0):
    return struct.pack("=IHHII", 20, kind, 0, seq, 0) + struct.pack("=i", code)


def test_a_udp_entry_reads_as_the_proc_walk_row():
    data = ct_message("10.0.0.1", "10.0.0.53")
    entry = netlink.parse_entry(data, 20, len(data), data[16])
    assert netlink.row(entry) == (b"4", b"udp", b"", b"", b"10.0.0.1", b"10.0.0.53", b"dport=53 [UNREPLIED] ")
    assert entry.unreplied and not entry.assured and entry.ident == b"\xde\xad\xbe\xef"


def test_tcp_state_lifetime_assured_v6_and_portless_protocols():
    tcp = ct_message("10.0.0.1", "10.0.0.2", proto=6, dport=443, status=0x6, timeout=431999, tcp_state=3)
    entry = netlink.parse_entry(tcp, 20, len(tcp), tcp[16])
    assert netlink.row(entry) == (b"4", b"tcp", b"431", b"ESTABLISHED", b"10.0.0.1", b"10.0.0.2", b"dport=443 ")
    assert entry.assured and not entry.unreplied
    v6 = ct_message("::1", "::1", zone=7)
    entry = netlink.parse_entry(v6, 20, len(v6), v6[16])
    assert entry.src == b"0000:0000:0000:0000:0000:0000:0000:0001" and entry.zone == 7  # %pI6, as proc prints
    icmp = ct_message("10.0.0.1", "10.0.0.2", proto=1, sport=None)
    assert netlink.row(netlink.parse_entry(icmp, 20, len(icmp), icmp[16]))[1::5] == (b"icmp", b"")
    gre = ct_message("10.0.0.1", "10.0.0.9", proto=47, sport=None)
    assert netlink.row(netlink.parse_entry(gre, 20, len(gre), gre[16]))[1] == b"gre"


def test_dump_streams_one_batch_per_buffer_until_done():
    first = ct_message("10.0.0.1", "10.0.0.53") + ct_message("10.0.0.2", "10.0.0.53")
    sock = Replies(first, ct_message("10.0.0.3", "10.0.0.53") + done(3))
    batches = list(netlink.dump(sock))
    assert [len(b) for b in batches] == [2, 1]
    kind, flags = struct.unpack_from("=HH", sock.sent[0], 4)
    assert kind == 0x101 and flags == netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP


def test_per_cpu_counters_are_summed_under_the_stat_file_names():
    def cpu(drop, early, clash):
        body = A(10, struct.pack(">I", drop)) + A(11, struct.pack(">I", early)) + A(14, struct.pack(">I", clash))
        return netlink.request(netlink.MSG_STATS_CPU, netlink.NLM_F_MULTI, 1, body)

    stats = netlink.cpu_stats(Replies(cpu(3, 1, 0) + cpu(4, 0, 2), done(1)))
    assert (stats["drop"], stats["early_drop"], stats["clashres"], stats["insert_failed"]) == (7, 1, 2, 0)
    assert set(stats) <= set(kernel.parse_stat(open_stat_header()))


def open_stat_header():
    from tests.support.fixtures import HEADERS

    return HEADERS["6.17"] + "\n"


def test_global_stats_and_kernel_errors():
    body = A(1, struct.pack(">I", 12)) + A(2, struct.pack(">I", 262144))
    reply = netlink.request(netlink.MSG_STATS, 0, 2, body) + done(2, netlink.NLMSG_ERROR)
    assert netlink.global_stats(Replies(reply)) == {"count": 12, "max": 262144}
    with pytest.raises(PermissionError, match="Operation not permitted"):
        netlink.global_stats(Replies(done(2, netlink.NLMSG_ERROR, -errno.EPERM)))


def test_delete_sends_the_tuple_zone_and_id_and_counts_expired_entries():
    data = ct_message("10.0.0.1", "10.0.0.53", zone=3)
    entry = netlink.parse_entry(data, 20, len(data), data[16])
    sock = Replies(done(1000, netlink.NLMSG_ERROR), done(1001, netlink.NLMSG_ERROR, -errno.ENOENT))
    assert netlink.delete(sock, [entry, entry]) == (1, 1)
    kind, flags = struct.unpack_from("=HH", sock.sent[0], 4)
    assert kind == 0x102 and flags == netlink.NLM_F_REQUEST | netlink.NLM_F_ACK
    assert entry.orig in sock.sent[0] and b"\xde\xad\xbe\xef" in sock.sent[0]


def test_a_kernel_that_never_answers_times_out_instead_of_hanging(monkeypatch):
    """A bound socket that was asked nothing gets nothing: the recv gives up after RECV_TIMEOUT."""
    monkeypatch.setattr(netlink, "RECV_TIMEOUT", 0.05)
    sock = netlink._new_socket()
    try:
        with pytest.raises(TimeoutError):
            list(netlink.messages(sock, 1))
    finally:
        sock.close()
