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


def test_entry_regex_both_layouts():
    legacy = "\n".join(TABLE_LINES).encode()
    modern = "\n".join("ipv4     2 " + line for line in TABLE_LINES).encode()
    ipv6 = (
        b"ipv6     10 tcp      6 300 ESTABLISHED src=2001:db8::1 dst=2001:db8::2 sport=1 dport=22 "
        b"src=2001:db8::2 dst=2001:db8::1 sport=22 dport=1 [ASSURED] mark=0 zone=0 use=2"
    )
    for flavour, text in (("ip_conntrack", legacy), ("nf_conntrack", modern)):
        rows = ct._ENTRY[flavour].findall(text)
        assert [r[0] for r in rows] == [b"tcp", b"tcp", b"tcp", b"udp", b"icmp", b"unknown"]
        assert rows[0] == (b"tcp", b"ESTABLISHED", b"10.0.0.1", b"10.0.0.2", b"443")
        assert rows[4] == (b"icmp", b"", b"10.0.0.1", b"10.0.0.2", b"")
    assert ct._ENTRY["nf_conntrack"].findall(ipv6) == [(b"tcp", b"ESTABLISHED", b"2001:db8::1", b"2001:db8::2", b"22")]


def test_heavy_hitters_exact_when_small():
    hh = ct._HeavyHitters(capacity=10)
    hh.update([b"a"] * 5 + [b"b"] * 3 + [b"c"])
    assert hh.top(2) == [[b"a", 5], [b"b", 3]]
    assert hh.pruned == 0


def test_heavy_hitters_bounded_and_keeps_the_heavy():
    hh = ct._HeavyHitters(capacity=50)
    heavy = [b"heavy"] * 5000
    for start in range(0, 100000, 1000):
        hh.update([str(i).encode() for i in range(start, start + 1000)])
        hh.update(heavy[:50])
    assert len(hh.counts) <= 2 * 50 + 1000
    assert hh.top(1)[0][0] == b"heavy"
    assert hh.pruned > 0
    # A lower bound, off by at most what was pruned.
    assert 5000 - hh.pruned <= hh.top(1)[0][1] <= 5000


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


@pytest.mark.parametrize("with_cat", [True, False])
def test_chunks_end_on_lines_with_and_without_cat(tmp_path, monkeypatch, with_cat):
    lines = [("ipv4     2 " + TABLE_LINES[i % len(TABLE_LINES)]).encode() for i in range(20000)]
    path = tmp_path / "table"
    path.write_bytes(b"\n".join(lines) + b"\n")
    if not with_cat:
        monkeypatch.setattr(ct.shutil, "which", lambda name: None)
    monkeypatch.setattr(ct, "_CHUNK", 4096)
    chunks = list(ct._chunks(str(path)))
    assert len(chunks) > 10
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks).split(b"\n")[:-1] == lines


def test_chunks_missing_file_is_an_error(tmp_path):
    with pytest.raises(OSError, match="No such file"):
        list(ct._chunks(str(tmp_path / "missing")))
