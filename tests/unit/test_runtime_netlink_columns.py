"""A dump buffer counted by columns: the split and its proof, layouts, shapes that have none."""

import errno
import struct
import sys

from saltext_conntrack.runtime import netlink, netlink_columns, table
from tests.unit.test_runtime_netlink import ct_message, done
from tests.unit.test_runtime_netlink_walk import REAL, SEQ, both_ways, kernel_layout


def columns(data):
    counted = netlink_columns.Columns(1000, table.HeavyHitters, SEQ)
    return counted, counted.add(data)


def test_columns_count_the_kernels_layout():
    udp = [kernel_layout("10.0.0.1", f"10.0.0.{n}", dport=53 + n % 3) for n in range(40)]
    tcp = [kernel_layout("10.0.1.1", "10.0.1.2", 6, 443, 0xE, 431000 + n, 3) for n in range(10)]
    data = b"".join(udp + tcp)
    counted, left = columns(data)
    assert left == [] and counted.total == 50 and sorted(counted.layouts) == [len(udp[0]), len(tcp[0])]
    fast, slow = both_ways(data, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow)
    assert fast.total == 50 and fast.unreplied == 40 and fast.assured == 10
    # Lifetimes in 256 s steps, counted at the end of their step: never idler than they are.
    assert fast.kinds[(b"4", b"tcp", b"431", b"ESTABLISHED")] == 10


def test_records_of_one_length_but_another_shape_are_parsed_attribute_by_attribute():
    udp = kernel_layout("10.0.0.1", "10.0.0.9")
    zoned = ct_message("10.0.0.1", "10.0.0.2", zone=7, seq=SEQ)
    # The same length, mark and id swapped: the layout learned from the first does not fit it.
    swapped = udp[:132] + udp[140:148] + udp[132:140] + udp[148:]
    assert len(swapped) == len(zoned) == len(udp) and swapped != udp
    data = udp + swapped + zoned + udp
    counted, left = columns(data)
    assert counted.total == 2 and len(left) == 2 and {entry.zone for entry in left} == {0, 7}
    fast, slow = both_ways(data, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow) and fast.total == 4 and fast.zones == {b"0": 3, b"7": 1}


def test_a_buffer_of_one_length_is_one_run_without_a_split():
    data = b"".join(kernel_layout("10.0.0.1", f"10.0.0.{n}") for n in range(20))
    ((length, blob, n),) = netlink_columns.runs(data + done(SEQ), SEQ)
    assert blob == data and (length, n) == (len(data) // 20, 20)


def test_a_mixed_buffer_is_split_into_runs_of_whole_messages():
    udp = [kernel_layout("10.0.0.1", f"10.0.0.{n}") for n in range(3)]
    tcp = [kernel_layout("10.0.1.1", "10.0.1.2", 6, 443, 0xE, 431000, 3) for _ in range(2)]
    found = netlink_columns.runs(udp[0] + tcp[0] + udp[1] + tcp[1] + udp[2], SEQ)
    assert [(length, n) for length, _, n in found] == [(len(udp[0]), 3), (len(tcp[0]), 2)]
    for (length, blob, n), originals in zip(found, (udp, tcp), strict=True):
        # From the sequence number on, each is its message; before it, the header of another.
        assert [blob[i * length + 8 : (i + 1) * length] for i in range(n)] == [m[8:] for m in originals]


def test_the_sequence_number_inside_a_value_cuts_no_entry_in_two():
    # A mark that reads as the dump's sequence number: splitting there would make two bogus entries.
    planted = kernel_layout("10.0.0.1", "10.0.0.2", mark=SEQ.to_bytes(4, sys.byteorder))
    tcp = kernel_layout("10.0.1.1", "10.0.1.2", 6, 443, 0xE, 431000, 3)
    data = kernel_layout("10.0.0.1", "10.0.0.3") + planted + tcp
    assert netlink_columns.runs(data, SEQ) is None
    fast, slow = both_ways(data, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow) and fast.total == 3
    # In a buffer of one length it is not looked for: every message is where the lengths say.
    uniform = kernel_layout("10.0.0.1", "10.0.0.3") + planted
    assert netlink_columns.runs(uniform, SEQ) == [(len(planted), uniform, 2)]
    fast, slow = both_ways(uniform, done(SEQ))
    assert table.breakdown(fast) == table.breakdown(slow) and fast.total == 2


def test_a_buffer_of_another_request_or_kind_is_not_counted_by_columns():
    udp = kernel_layout("10.0.0.1", "10.0.0.2")
    tcp = kernel_layout("10.0.1.1", "10.0.1.2", 6, 443, 0xE, 431000, 3)
    other = udp[:8] + struct.pack("=I", 3) + udp[12:]
    for data in (other, udp + other, other + tcp + udp):
        assert netlink_columns.runs(data, SEQ) is None
    error = udp + done(SEQ, netlink.NLMSG_ERROR, -errno.EPERM)
    assert netlink_columns.runs(error, SEQ) is None
    assert netlink_columns.runs(done(SEQ), SEQ) == []
    get = netlink.request(netlink.MSG_GET, netlink.NLM_F_MULTI, SEQ, udp[20:], 2)  # another type
    assert netlink_columns.runs(udp + get, SEQ) is None and netlink_columns.runs(tcp + get, SEQ) is None
    for torn in (udp + udp[:-8], tcp + udp[:-4], udp[:-4]):
        assert netlink_columns.runs(torn, SEQ) is None


def test_every_shape_of_a_real_dump_is_counted_by_columns():
    counted, left = columns(REAL[0] * 3 + REAL[1] * 5 + done(SEQ))
    assert left == [] and counted.total == 8 and len(counted.layouts) == 2


def test_shapes_without_a_fast_form_are_left_to_the_parse():
    icmp = ct_message("10.0.0.1", "10.0.0.2", proto=1, sport=None, seq=SEQ)
    v6 = ct_message("::1", "::2", seq=SEQ)
    tcp = ct_message("10.0.0.1", "10.0.0.2", proto=6, dport=22, status=6, timeout=300, tcp_state=3, seq=SEQ)
    counted, left = columns(kernel_layout("10.0.0.1", "10.0.0.9") + icmp + v6 + tcp)
    assert counted.total == 2 and sorted(entry.proto for entry in left) == [1, 17]
    assert counted.layouts[len(icmp)] is None and counted.layouts[len(v6)] is None
