"""The ctnetlink walk by columns: the same counts as the attribute-by-attribute parse, or that parse."""

import errno
import struct

import pytest

from saltext_conntrack.runtime import netlink, netlink_walk, table
from tests.support.netlink_replies import Replies
from tests.unit.test_runtime_netlink import ct_message, done

# Three messages of a real dump (kernel 6.18): an ESTABLISHED TCP entry and
# two unreplied UDP entries, in the kernel's own attribute order.
REAL = [
    bytes.fromhex(text)
    for text in (
        "d4000000000102000500000032010000020000003400018014000180080001007f000001080002007f0000011c000280"
        "050001000600000006000200d7ca0000060003001f9000003400028014000180080001007f000001080002007f000001"
        "1c0002800500010006000000060002001f90000006000300d7ca0000080003000000000e080008000000000008000c00"
        "003dd19708000b0000000001080007000006977f300004802c0001800500010003000000050002000a00000005000300"
        "0a00000006000400230000000600050023000000",
        "a4000000000102000500000032010000020000003400018014000180080001007f000001080002007f0000011c000280"
        "05000100110000000600020096f20000060003009c4000003400028014000180080001007f000001080002007f000001"
        "1c0002800500010011000000060002009c4000000600030096f200000800030000000008080008000000000008000c00"
        "a7e0f14608000b00000000010800070000000257",
    )
]
SEQ = netlink_walk.SEQ
REAL = [m[:8] + struct.pack("=I", SEQ) + m[12:] for m in REAL]  # as the reply to a walk's request


def both_ways(*buffers, top=10):
    """(fast walk, attribute-by-attribute walk) of the same buffers, as breakdowns with lifetimes."""
    fast = table.walk_netlink(Replies(*buffers), top=top)
    slow = table.Walk(top)
    for data in buffers:
        netlink_walk._slow(slow, netlink.entries(data, SEQ))
    return fast, slow


def kernel_layout(src, dst, proto=17, dport=53, status=8, timeout=87, state=None, mark=b"\0" * 4):
    """A message in the 6.18 kernel's order: status, mark, id, use, timeout, protoinfo."""
    raw = ct_message(src, dst, proto=proto, dport=dport)
    entry = netlink.parse_entry(raw, 20, len(raw), raw[16])
    A = netlink.attr
    body = entry.orig + raw[20 + len(entry.orig) :][: len(entry.orig)]  # both tuples
    body += A(3, struct.pack(">I", status)) + A(8, mark) + A(12, b"\1\2\3\4") + A(11, b"\0\0\0\1")
    body += A(7, struct.pack(">I", timeout))
    if state is not None:
        body += A(4 | 0x8000, A(1 | 0x8000, A(1, bytes([state])) + A(2, b"\x0a")))
    return netlink.request(netlink.MSG_NEW, netlink.NLM_F_MULTI, SEQ, body, 2)


def test_a_real_dump_reads_the_same_both_ways():
    data = REAL[0] * 3 + REAL[1] * 5
    fast, slow = both_ways(data, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow)
    assert table.breakdown(fast)["tcp_states"] == {"ESTABLISHED": 3} and fast.unreplied == 5


def test_what_has_no_fast_form_is_parsed_attribute_by_attribute():
    icmp = ct_message("10.0.0.1", "10.0.0.2", proto=1, sport=None, seq=SEQ)
    v6 = ct_message("::1", "::2", seq=SEQ)
    # Another order (timeout, mark, then protoinfo) is another layout, learned as well.
    tcp = ct_message("10.0.0.1", "10.0.0.2", proto=6, dport=22, status=6, timeout=300, tcp_state=3, seq=SEQ)
    udp = kernel_layout("10.0.0.1", "10.0.0.9")
    data = udp + icmp + v6 + tcp + udp
    fast, slow = both_ways(data, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow) and fast.total == 5
    assert table.breakdown(fast)["tcp_states"] == {"ESTABLISHED": 1}


def test_a_sample_stops_early_and_says_so():
    data = b"".join(kernel_layout("10.0.0.1", "10.0.0.2", dport=n) for n in range(30))
    counted = table.walk_netlink(Replies(data, data, done(SEQ)), sample=45)
    assert counted.total == 45 and not counted.complete


def test_the_kernels_error_is_raised():
    with pytest.raises(OSError) as err:
        table.walk_netlink(Replies(done(SEQ, netlink.NLMSG_ERROR, -errno.EPERM)))
    assert err.value.errno == errno.EPERM
    mid = kernel_layout("10.0.0.1", "10.0.0.2") + done(SEQ, code=-errno.EINTR)
    with pytest.raises(OSError, match="dump stopped"):
        table.walk_netlink(Replies(mid))
