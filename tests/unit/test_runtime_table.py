"""The table parser of the core (saltext_conntrack.runtime.table): one pass,
bounded memory, what summary shows and what diagnose judges."""

import re

import pytest

from saltext_conntrack.runtime import table
from tests.support.fixtures import TABLE_LINES


def walk_of(tmp_path, lines, flavour="nf_conntrack", **kwargs):
    path = tmp_path / "table"
    prefix = "ipv4     2 " if flavour == "nf_conntrack" else ""
    path.write_text("".join(prefix + line + "\n" for line in lines))
    return table.walk(str(path), flavour, **kwargs)


@pytest.mark.parametrize("flavour", ["nf_conntrack", "ip_conntrack"])
def test_walk_counts_what_summary_shows(tmp_path, flavour):
    counted = walk_of(tmp_path, TABLE_LINES, flavour)
    out = table.breakdown(counted, top=2)
    assert out["total"] == 6 and out["by_protocol"] == {"tcp": 3, "udp": 1, "icmp": 1, "unknown": 1}
    assert out["tcp_states"] == {"ESTABLISHED": 1, "SYN_SENT": 1, "TIME_WAIT": 1}
    assert (out["assured"], out["unreplied"]) == (2, 2)
    assert out["top"]["dport"] == [["tcp/443", 2], ["tcp/80", 1]]
    # the [UNREPLIED] flag is read per entry where the tuple has ports
    assert counted.ports(unreplied=True) == {("tcp", 443): 1, ("udp", 53): 1}
    assert counted.count(b"tcp", b"ESTABLISHED") == 1


def test_lifetime_buckets(tmp_path):
    line = (
        "tcp      6 {t} ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport={p} dport=443 "
        "src=10.0.0.2 dst=10.0.0.1 sport=443 dport={p} [ASSURED] mark=0 use=1"
    )
    lifetimes = [5, 999, 1000, 428399, 428400, 431999]
    counted = walk_of(tmp_path, [line.format(t=t, p=1000 + i) for i, t in enumerate(lifetimes)])
    # idle >= 3600 at timeout 432000 means remaining <= 428400; bucket 428 (428000..428999)
    # straddles the line, so only whole buckets below it count: 5, 999, 1000.
    assert table.idle_established(counted, 432000, 3600) == 3
    assert table.idle_established(counted, 432000, 0) == 6
    assert table.idle_established(counted, 3600, 3600) == 0


def test_sample_stops_on_a_line_and_says_so(tmp_path):
    lines = TABLE_LINES * 50
    counted = walk_of(tmp_path, lines, sample=7)
    assert counted.total == 7 and counted.complete is False
    # flags of the first 7 lines only: the six, then the ESTABLISHED one again
    assert (counted.assured, counted.unreplied) == (3, 2)
    whole = walk_of(tmp_path, lines, sample=len(lines))
    assert whole.total == len(lines) and whole.complete is True


def test_heavy_hitters_bounded_and_lower_bounds():
    hh = table.HeavyHitters(10)
    hh.update([b"big"] * 1000)
    hh.update([str(i).encode() for i in range(5000)])
    assert len(hh.counts) <= 21 and hh.pruned > 0
    assert hh.top(1)[0][0] == b"big" and hh.top(1)[0][1] <= 1000


def test_entry_regex_both_layouts():
    legacy = "\n".join(TABLE_LINES).encode()
    modern = "\n".join("ipv4     2 " + line for line in TABLE_LINES).encode()
    ipv6 = (
        b"ipv6     10 tcp      6 300 ESTABLISHED src=2001:db8::1 dst=2001:db8::2 sport=1 dport=22 "
        b"src=2001:db8::2 dst=2001:db8::1 sport=22 dport=1 [ASSURED] mark=0 zone=0 use=2"
    )
    for flavour, text, family in (("ip_conntrack", legacy, b""), ("nf_conntrack", modern, b"4")):
        rows = re.compile(table.PATTERNS[flavour]).findall(text)
        assert [r[1] for r in rows] == [b"tcp", b"tcp", b"tcp", b"udp", b"icmp", b"unknown"]
        # family, protocol, lifetime in thousands of seconds, state, src, dst, "dport=N [UNREPLIED] "
        assert rows[0] == (family, b"tcp", b"431", b"ESTABLISHED", b"10.0.0.1", b"10.0.0.2", b"dport=443 ")
        assert rows[1] == (family, b"tcp", b"", b"SYN_SENT", b"10.0.0.1", b"10.0.0.3", b"dport=443 [UNREPLIED] ")
        assert rows[4] == (family, b"icmp", b"", b"", b"10.0.0.1", b"10.0.0.2", b"")
    assert re.compile(table.PATTERNS["nf_conntrack"]).findall(ipv6) == [
        (b"6", b"tcp", b"", b"ESTABLISHED", b"2001:db8::1", b"2001:db8::2", b"dport=22 ")
    ]


def test_heavy_hitters_exact_when_small():
    hh = table.HeavyHitters(capacity=10)
    hh.update([b"a"] * 5 + [b"b"] * 3 + [b"c"])
    assert hh.top(2) == [(b"a", 5), (b"b", 3)]
    assert hh.pruned == 0


def test_heavy_hitters_bounded_and_keeps_the_heavy():
    hh = table.HeavyHitters(capacity=50)
    heavy = [b"heavy"] * 5000
    for start in range(0, 100000, 1000):
        hh.update([str(i).encode() for i in range(start, start + 1000)])
        hh.update(heavy[:50])
    assert len(hh.counts) <= 2 * 50 + 1000
    assert hh.top(1)[0][0] == b"heavy"
    assert hh.pruned > 0
    # A lower bound, off by at most what was pruned.
    assert 5000 - hh.pruned <= hh.top(1)[0][1] <= 5000


@pytest.mark.parametrize("with_cat", [True, False])
def test_chunks_end_on_lines_with_and_without_cat(tmp_path, monkeypatch, with_cat):
    lines = [("ipv4     2 " + TABLE_LINES[i % len(TABLE_LINES)]).encode() for i in range(20000)]
    path = tmp_path / "table"
    path.write_bytes(b"\n".join(lines) + b"\n")
    if not with_cat:
        monkeypatch.setattr(table.shutil, "which", lambda name: None)
    monkeypatch.setattr(table, "CHUNK", 4096)
    chunks = list(table.chunks(str(path)))
    assert len(chunks) > 10
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks).split(b"\n")[:-1] == lines


def test_chunks_missing_file_is_an_error(tmp_path):
    with pytest.raises(OSError, match="No such file"):
        list(table.chunks(str(tmp_path / "missing")))


class _FakeClock:
    """time.monotonic that moves ``step`` seconds at every look."""

    def __init__(self, step):
        self.now, self.step = 1000.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_timeout_stops_between_chunks_and_logs_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(table, "CHUNK", 4096)
    monkeypatch.setattr(table, "monotonic", _FakeClock(2.0))
    lines = TABLE_LINES * 2000  # 12000 entries, about 270 chunks
    with caplog.at_level("INFO", logger=table.__name__):
        counted = walk_of(tmp_path, lines, timeout=9, expected=len(lines))
    assert 0 < counted.total < len(lines) and counted.complete is False and counted.stopped == "timeout"
    assert 0 < table.share(counted, len(lines)) < 100
    assert any("walking the table" in r.message and "of about 12000 entries" in r.message for r in caplog.records)
    assert "stopped at its" in caplog.records[-1].message
    whole = walk_of(tmp_path, lines, timeout=None)
    assert whole.total == len(lines) and whole.complete is True and whole.stopped is None
    assert table.share(whole, None) == 100.0


def test_sample_says_it_stopped_for_the_sample(tmp_path):
    counted = walk_of(tmp_path, TABLE_LINES * 50, sample=7, timeout=60)
    assert counted.stopped == "sample" and table.share(counted, 300) == 2.3 and table.share(counted, 0) is None


def test_families_and_zones(tmp_path):
    v4 = (
        "ipv4     2 udp      17 20 src=10.0.0.{h} dst=10.0.0.53 sport={p} dport=53 [UNREPLIED] "
        "src=10.0.0.53 dst=10.0.0.{h} sport=53 dport={p} mark=0 zone={z} use=2"
    )
    v6 = (
        "ipv6     10 tcp      6 431999 ESTABLISHED src=::1 dst=::1 sport={p} dport=443 "
        "src=::1 dst=::1 sport=443 dport={p} [ASSURED] mark=0 zone={z} use=2"
    )
    orig = (
        "ipv4     2 udp      17 20 src=10.0.0.1 dst=10.0.0.2 sport=5 dport=6 zone-orig=9 [UNREPLIED] "
        "src=10.0.0.2 dst=10.0.0.1 sport=6 dport=5 mark=0 use=2"
    )
    lines = [v4.format(h=1, p=1000 + i, z=0) for i in range(5)] + [v4.format(h=2, p=2000 + i, z=7) for i in range(3)]
    lines += [v6.format(p=3000 + i, z=0) for i in range(4)] + [orig]
    path = tmp_path / "table"
    path.write_text("".join(line + "\n" for line in lines))
    out = table.breakdown(table.walk(str(path), "nf_conntrack"))
    assert out["by_family"] == {"ipv4": 9, "ipv6": 4}
    assert out["by_zone"] == {"0": 9, "7": 3, "9": 1}
    assert out["by_protocol"] == {"udp": 9, "tcp": 4} and out["tcp_states"] == {"ESTABLISHED": 4}
    plain = table.breakdown(walk_of(tmp_path, TABLE_LINES))  # a kernel without zones prints none
    assert plain["by_zone"] == {} and plain["by_family"] == {"ipv4": 6, "ipv6": 0}
