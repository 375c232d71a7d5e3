"""Findings from one table walk, on a fixture table."""

from saltext_conntrack.report import walk_findings
from saltext_conntrack.runtime import table

STATUS = {"flavour": "nf_conntrack", "count": 400, "max": 1000, "usage": 40.0, "recent": None}


def walked(tmp_path, lines):
    path = tmp_path / "nf_conntrack"
    path.write_text("".join(f"ipv4     2 {line}\n" for line in lines))
    return table.walk(str(path), "nf_conntrack")


def udp(n):
    return (
        f"udp      17 29 src=10.0.0.{n % 250} dst=10.0.0.53 sport={1024 + n} dport=53 [UNREPLIED] "
        f"src=10.0.0.53 dst=10.0.0.{n % 250} sport=53 dport={1024 + n} mark=0 use=1"
    )


def test_unreplied_udp_to_one_port(tmp_path):
    counted = walked(tmp_path, [udp(n) for n in range(200)])
    found = walk_findings.udp_finding(counted, STATUS, {"udp": 30}, [])
    assert found[0]["id"] == "unreplied_udp_port" and found[0]["evidence"]["port"] == "udp/53"
    assert found[0]["severity"] == "warning"
    assert walk_findings.talker_findings(counted, STATUS)[0]["id"] == "top_destination"


def test_a_handful_of_flows_is_no_finding(tmp_path):
    counted = walked(tmp_path, [udp(n) for n in range(10)])
    assert walk_findings.udp_finding(counted, STATUS, {"udp": 30}, None) == []
    assert walk_findings.tcp_findings(counted, STATUS, {"tcp_time_wait": 120}) == []


def test_one_zone_holding_most_entries(tmp_path):
    lines = [udp(n).replace("mark=0 use=1", f"mark=0 zone={7 if n < 150 else 0} use=1") for n in range(200)]
    (found,) = walk_findings.zone_finding(walked(tmp_path, lines), STATUS)
    assert found["id"] == "top_zone" and found["evidence"]["zone"] == 7 and found["evidence"]["entries"] == 150
    assert found["fix_type"] == "command" and "conntrack -L -w 7" in found["fix"]
    default = [udp(n).replace("mark=0 use=1", "mark=0 zone=0 use=1") for n in range(200)]
    assert walk_findings.zone_finding(walked(tmp_path, default), STATUS) == []
