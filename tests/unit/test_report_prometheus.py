"""The node_exporter textfile (``report.prometheus``): bounded and escaped, and where it may go."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.report import diagnosis, prometheus


def test_textfile_render_is_bounded_and_escaped():
    summary = {
        "total": 3,
        "by_protocol": {"udp": 2, "weird": 1},
        "tcp_states": {"NEWSTATE": 1},
        "assured": 0,
        "unreplied": 2,
        "top": {"src": [['a"b\\c\nd', 2]] * 30, "dst": [], "dport": [["udp/53", 2]]},
        "by_family": {"ipv4": 2, "ipv6": 1},
        "by_zone": {str(z): 30 - z for z in range(30)},
    }
    result = {
        "findings": [{"id": "limit_low", "severity": "info"}],
        "walk": {"complete": True, "seconds": 0.5},
        "summary": summary,
    }
    text = prometheus.render(result, top=100, now=1700000000.0)
    assert text.count("saltext_conntrack_top_src_entries{") == prometheus.TOP_MAX
    assert 'address="a\\"b\\\\c\\nd"' in text
    assert 'saltext_conntrack_protocol_entries{protocol="other"} 1' in text
    assert 'saltext_conntrack_tcp_state_entries{state="other"} 1' in text
    assert text.count("saltext_conntrack_finding{") == len(diagnosis.IDS)
    assert 'saltext_conntrack_family_entries{family="ipv6"} 1' in text
    assert text.count("saltext_conntrack_zone_entries{") == prometheus.TOP_MAX
    assert 'saltext_conntrack_zone_entries{zone="0"} 30' in text
    assert 'saltext_conntrack_finding{id="limit_low"} 1' in text
    for line in text.splitlines():
        assert line.startswith(("# HELP saltext_conntrack_", "# TYPE saltext_conntrack_", "saltext_conntrack_"))


def test_target_is_a_prom_file_in_an_existing_directory_under_the_root(tmp_path):
    (tmp_path / "textfile").mkdir()
    (tmp_path / "textfile" / "dir.prom").mkdir()
    assert prometheus.target(str(tmp_path), "/textfile/conntrack.prom") == str(tmp_path / "textfile" / "conntrack.prom")
    for bad, why in [
        ("/textfile/conntrack.txt", "ending in .prom"),
        ("/textfile/.prom", "ending in .prom"),
        ("/missing/conntrack.prom", "does not exist"),
        ("/textfile/dir.prom", "is a directory"),
    ]:
        with pytest.raises(SaltInvocationError, match=why):
            prometheus.target(str(tmp_path), bad)


def test_publish_writes_what_render_gives(tmp_path):
    result = {"findings": [], "walk": {"complete": True, "seconds": 0.1}, "summary": None}
    real = prometheus.target(str(tmp_path), "/c.prom")
    out = prometheus.publish(str(tmp_path), "/c.prom", real, result, top=5, now=1700000000.0)
    assert (tmp_path / "c.prom").read_text() == prometheus.render(result, 5, 1700000000.0)
    assert out == {
        "path": "/c.prom",
        "written": real,
        "bytes": (tmp_path / "c.prom").stat().st_size,
        "findings": [],
        "walk": result["walk"],
    }


@pytest.mark.parametrize(
    ("trend", "full_in", "insert_rate"),
    [
        ({"full_in": 250.0, "count_per_s": 4.0, "insert_per_s": 6.5}, "250.0", "6.5"),
        ({"full_in": None, "count_per_s": -1.0, "insert_per_s": None}, "+Inf", "NaN"),
        ({"full_in": None, "count_per_s": None, "insert_per_s": None}, "NaN", "NaN"),
        ({"full_in": 0, "count_per_s": 0.0, "insert_per_s": 1.0}, "0", "1.0"),
    ],
)
def test_trend_gauges(trend, full_in, insert_rate):
    result = {"findings": [], "walk": {"complete": True, "seconds": 0.1}, "summary": None, "trend": trend}
    lines = prometheus.render(result, 5, 1700000000.0).splitlines()
    assert f"saltext_conntrack_full_in_seconds {full_in}" in lines
    assert f"saltext_conntrack_insert_rate {insert_rate}" in lines
    assert "saltext_conntrack_count_rate" in "\n".join(lines)
    older = {"findings": [], "walk": {"complete": True, "seconds": 0.1}, "summary": None}
    assert "full_in" not in prometheus.render(older, 5, 1.0)
