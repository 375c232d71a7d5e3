"""Pure parsing and arithmetic of _modules/conntrack.py, no loader."""

import pytest

from tests.support.fixtures import HEADERS, TABLE_LINES, stat_text
from tests.support.loaderfile import load

ct = load("_modules/conntrack.py")


@pytest.mark.parametrize("era", sorted(HEADERS))
def test_parse_stat_keys_by_header_name(era):
    stats = ct._parse_stat(stat_text(era, cpus=4, drop=9, early_drop=10, entries=123).encode())
    assert list(stats) == HEADERS[era].split()
    assert stats["entries"] == 123
    assert stats["drop"] == 9
    assert stats["early_drop"] == 10
    assert stats["found"] == 28


def test_parse_stat_hex_and_ragged_lines():
    text = b"entries drop early_drop\n0000000a 000000ff 00000001\n0000000a 00000001 00000000\ngarbage\n\n"
    assert ct._parse_stat(text) == {"entries": 10, "drop": 256, "early_drop": 1}


@pytest.mark.parametrize(
    "ram,arch,expected",
    [(64 * 2**30, 64, 2097152), (64 * 2**30, 32, 4194304), (2**30, 64, 32768), (512 * 2**20, 32, 32768)],
)
def test_classic_ceiling(ram, arch, expected):
    assert ct._ceiling(ram, arch) == expected


@pytest.mark.parametrize("text,expected", [("64G", 64 * 2**30), ("512MiB", 512 * 2**20), ("1T", 2**40), (4 * 2**30, 4 * 2**30)])
def test_parse_ram(text, expected):
    assert ct._parse_ram(text) == expected


@pytest.mark.parametrize("bad", ["64X", "-5G", "", True, "1 G B", 1000])
def test_parse_ram_refuses(bad):
    with pytest.raises(ct.SaltInvocationError):
        ct._parse_ram(bad)


@pytest.mark.parametrize("bad", [-1, 1.0, "1e3", "0x10", " 5; rm -rf /", None, [1]])
def test_integer_refuses(bad):
    with pytest.raises(ct.SaltInvocationError):
        ct._integer(bad, "max", 1, 100)


def test_timeout_short_names(tmp_path):
    d = tmp_path / "proc/sys/net/netfilter"
    d.mkdir(parents=True)
    for name in ("nf_conntrack_tcp_timeout_established", "nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream", "nf_conntrack_max"):
        (d / name).write_text("1\n")
    ct.__opts__ = {"conntrack.root": str(tmp_path)}
    try:
        names = ct._timeout_files(ct.FLAVOURS["nf_conntrack"])
    finally:
        del ct.__opts__
    assert sorted(names) == ["tcp_established", "udp", "udp_stream"]
