"""Kernel file parsing (``runtime.kernel``): the stat table by header name, timeout names.

Moved from tests/unit/test_module_parsing.py.
"""

import pytest

from saltext_conntrack.runtime import kernel
from tests.support.fixtures import HEADERS, stat_text


@pytest.mark.parametrize("era", sorted(HEADERS))
def test_parse_stat_keys_by_header_name(era):
    stats = kernel.parse_stat(stat_text(era, cpus=4, drop=9, early_drop=10, entries=123).encode())
    assert list(stats) == HEADERS[era].split()
    assert stats["entries"] == 123
    assert stats["drop"] == 9
    assert stats["early_drop"] == 10
    assert stats["found"] == 28


def test_parse_stat_hex_and_ragged_lines():
    text = b"entries drop early_drop\n0000000a 000000ff 00000001\n0000000a 00000001 00000000\ngarbage\n\n"
    assert kernel.parse_stat(text) == {"entries": 10, "drop": 256, "early_drop": 1}


def stats(drop=0, early_drop=0, insert_failed=0):
    return {"drop": drop, "early_drop": early_drop, "insert_failed": insert_failed, "found": 1}


def test_timeout_short_names(tmp_path):
    d = tmp_path / "proc/sys/net/netfilter"
    d.mkdir(parents=True)
    for name in (
        "nf_conntrack_tcp_timeout_established",
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
        "nf_conntrack_max",
    ):
        (d / name).write_text("1\n")
    names = kernel.timeout_files(str(tmp_path), "nf_conntrack")
    assert sorted(names) == ["tcp_established", "udp", "udp_stream"]
