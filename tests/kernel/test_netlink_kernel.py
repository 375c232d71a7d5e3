"""ctnetlink on the real kernel: the same numbers as the proc files, a root without them, flush.

Each test makes its own namespace (tracking on, loopback flows only). The
root built by ``build_procfs_less_root`` has this kernel's ``proc/sys`` but no
stat file and no table, as on Ubuntu, so only ctnetlink can answer.
"""

import re

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.runtime import flush, kernel, netlink, netlink_walk, snapshot, table
from tests.support.hostroot import build_host_root, build_procfs_less_root
from tests.support.kernel import PROC_NF, Netns, write_int


@pytest.fixture
def hidden(tmp_path):
    return build_procfs_less_root(tmp_path / "hidden")


def tool_stats(ns):
    """``conntrack -S`` summed over CPUs, and ``conntrack -C``."""
    totals = {}
    for line in ns.run("conntrack", "-S").stdout.splitlines():
        for name, value in re.findall(r"(\w+)=(\d+)", line):
            if name != "cpu":
                totals[name] = totals.get(name, 0) + int(value)
    return totals, int(ns.run("conntrack", "-C").stdout.split()[0])


def test_counters_equal_the_stat_file_and_the_tool(netns, global_knobs):
    netns.udp_flows(30, first_port=40000)
    write_int(f"{PROC_NF}/nf_conntrack_max", 30)
    # Refused (drop), unless the kernel evicted an unassured entry for it (early_drop).
    refused = 5 - netns.udp_flows(5, first_port=41000)
    with netns.entered():
        with open("/proc/thread-self/net/stat/nf_conntrack", "rb") as fh:
            proc = kernel.parse_stat(fh.read())
        sock = netlink.open_socket()
        try:
            ours, found = netlink.cpu_stats(sock), netlink.global_stats(sock)
        finally:
            sock.close()
    tool, tool_count = tool_stats(netns)
    assert found == {"count": 30, "max": 30} and proc["entries"] == tool_count == 30
    assert ours["drop"] == proc["drop"] == tool["drop"] >= refused >= 1
    for name, value in ours.items():  # nothing else moves in a namespace of our own
        assert value == proc[name], name
    assert ours["clashres"] == tool["clash_resolve"] and ours["icmp_error"] == tool["error"]


def test_a_namespace_socket_answers_for_that_namespace(netns):
    netns.udp_flows(7, first_port=42000)
    sock = netlink.open_socket(netns.path)  # setns from a thread: this thread stays home
    try:
        assert netlink.global_stats(sock)["count"] == 7
        assert sum(map(len, netlink.dump(sock))) == 7
    finally:
        sock.close()


def test_dump_gives_the_same_summary_and_findings_as_the_proc_walk(netns, make_loaders, hidden, tmp_path, monkeypatch):
    netns.udp_queries(300)
    held = netns.tcp_pairs(20)
    children = []
    real_start = netlink_walk._start_pump
    monkeypatch.setattr(netlink_walk, "_start_pump", lambda sock: children.append(real_start(sock)) or children[-1])
    try:
        proc_loaders = make_loaders(build_host_root(tmp_path / "host"))
        nl_loaders = make_loaders(hidden, **{"conntrack.netlink": True})
        with netns.entered():
            by_proc = proc_loaders.modules.conntrack.diagnose(top=5)
            by_netlink = nl_loaders.modules.conntrack.diagnose(top=5)
            path = "/proc/thread-self/net/nf_conntrack"
            walked = table.breakdown(table.walk(path, "nf_conntrack", top=5), 5)
            sock = netlink.open_socket()
            dumped = table.breakdown(table.walk_netlink(sock, top=5), 5)
            sock.close()
            # As a table of PUMP_FROM entries is walked: received by the netlink_pump child.
            sock = netlink.open_socket()
            pumped = table.breakdown(table.walk_netlink(sock, top=5, expected=netlink_walk.PUMP_FROM), 5)
            sock.close()
    finally:
        for sock in held:
            sock.close()
    assert by_proc["walk"]["source"] == "procfs" and by_netlink["walk"]["source"] == "netlink"
    assert {**dumped, "source": None} == walked and walked["total"] == 320
    assert pumped == dumped and len(children) == 1 and children[0].returncode == 0
    assert {**by_netlink["summary"], "source": "procfs"} == by_proc["summary"]
    ids = [f["id"] for f in by_netlink["findings"]]
    assert ids == [f["id"] for f in by_proc["findings"]] and "unreplied_udp_port" in ids
    udp = {f["id"]: f for f in by_netlink["findings"]}["unreplied_udp_port"]
    assert udp["evidence"]["port"] == "udp/53" and udp["evidence"]["unreplied"] == 300


def test_overflow_seen_over_netlink_where_proc_net_has_no_files(netns, make_loaders, hidden, global_knobs, tmp_path):
    loaders = make_loaders(hidden, **{"conntrack.netlink": True, "cachedir": str(tmp_path / "cache")})
    mod = loaders.modules.conntrack
    netns.udp_queries(200)  # a DNS flood: 200 queries to udp/53, none answered
    with netns.entered():
        before = mod.status(window=0)
        assert before["source"] == {"count": "procfs", "max": "procfs", "stats": "netlink"}
        assert before["stats"]["drop"] == 0 and before["stats"]["entries"] == 200
        beacons = loaders.beacons
        config = [{"source": "kmsg"}, {"min_interval": 0}, {"status_interval": 0}, {"persist": False}]
        beacons["conntrack.beacon"](config)
    write_int(f"{PROC_NF}/nf_conntrack_max", 200)
    # The table is full: each query is refused, unless the kernel evicts an unassured entry for it (early_drop).
    refused = netns.udp_queries(10, first_sport=31000)
    assert refused >= 1
    with netns.entered():
        after = mod.status(window=0)
        checked = mod.check(window=300)
        tags = [e["tag"] for e in beacons["conntrack.beacon"](config)]
        found = mod.diagnose(top=5)
    assert after["stats"]["drop"] >= refused and after["recent"]["drop"] >= refused
    assert checked["verdict"] == "critical" and any("packets dropped" in r for r in checked["reasons"])
    assert "drops" in tags
    ids = {f["id"]: f for f in found["findings"]}
    assert "drops_rising" in ids and ids["unreplied_udp_port"]["evidence"]["port"] == "udp/53"
    # The immediate relief, next to notrack: the exact command, with the filter.
    relief = ids["unreplied_udp_port"]["relief"]
    assert relief["command"] == "salt-call conntrack.flush proto=udp dport=53 unreplied=True"
    assert found["sources"] == {"count": "procfs", "max": "procfs", "stats": "netlink", "table": "netlink"}
    with netns.entered():
        summary = mod.summary(top=3)
        flushed = mod.flush(**relief["kwargs"])
        left = mod.summary(top=3)
    assert summary["source"] == "netlink" and summary["unreplied"] == summary["total"] >= 200
    assert flushed["deleted"] == summary["total"] and left["total"] == 0


def test_netlink_refused_makes_drops_unknown(netns, make_loaders, hidden):
    loaders = make_loaders(hidden, **{"conntrack.netlink": False})
    with netns.entered():
        checked = loaders.modules.conntrack.check()
    assert checked["verdict"] == "unknown" and checked["drop"] is None
    assert checked["reasons"][-1].startswith("drops unknown: procfs: ")
    assert not any("no drops" in r for r in checked["reasons"])


def test_without_cap_net_admin_drops_are_unknown(netns, hidden):
    """The real refusal: a process without CAP_NET_ADMIN gets EPERM from ctnetlink."""
    code = (
        "import json, sys; sys.path.insert(0, '_utils');"
        "from saltext_conntrack.runtime import snapshot; from saltext_conntrack.report import verdict;"
        f"st = snapshot.take(snapshot.Host({hidden!r}, '6.18', 64, True), None, 0, 0.0);"
        "print(json.dumps(verdict.checked(st, 75, 90)))"
    )
    import json
    import os
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = netns.run("setpriv", "--bounding-set", "-net_admin", sys.executable, "-c", code, cwd=repo).stdout
    checked = json.loads(out)
    assert checked["verdict"] == "unknown" and "CAP_NET_ADMIN" in checked["reasons"][-1]
    assert "Operation not permitted" in checked["reasons"][-1]


def test_proc_and_netlink_count_agree_with_the_tool(netns):
    netns.udp_flows(11, first_port=43000)
    with netns.entered():
        sock = netlink.open_socket()
        try:
            count = netlink.global_stats(sock)["count"]
        finally:
            sock.close()
    assert count == netns.count() == tool_stats(netns)[1] == 11
    assert Netns  # the fixture's class, reused


# ---------------------------------------------------------------------------
# conntrack.flush on a real table


def test_flush_deletes_exactly_the_unreplied_dns_entries(netns, modules):
    netns.udp_queries(150)  # unreplied udp/53
    netns.udp_queries(20, port=5353, first_sport=32000)  # unreplied, another port
    held = netns.tcp_pairs(10, port=53)  # tcp/53, replied: must stay
    try:
        before = netns.listed()
        dns = {line for line in before if line.startswith("udp") and "dport=53 [UNREPLIED]" in line}
        assert len(dns) == 150 and len(before) == 180
        with netns.entered():
            dry = modules.conntrack.flush(proto="udp", dport=53, unreplied=True, test=True)
            assert netns.listed() == before
            with pytest.raises(SaltInvocationError):
                modules.conntrack.flush(proto="udp", dport=99999, unreplied=True)
            with pytest.raises(SaltInvocationError, match="all=True"):
                modules.conntrack.flush()
            assert netns.listed() == before
            done = modules.conntrack.flush(proto="udp", dport=53, unreplied=True)
        after = netns.listed()
    finally:
        for sock in held:
            sock.close()
    assert dry == {
        "filter": {"proto": "udp", "dport": 53, "unreplied": True},
        "matched": 150,
        "deleted": 0,
        "gone": 0,
        "test": True,
    }
    assert done["matched"] == done["deleted"] == 150 and done["gone"] == 0
    assert after == before - dns


def test_flush_all_empties_only_this_namespace(netns):
    netns.udp_flows(25, first_port=44000)
    with Netns() as other:
        other.udp_flows(5, first_port=44000)
        with netns.entered():
            result = flush.apply(snapshot.Host("/", "", 64), flush.plan({}, flush_all=True))
        assert result["deleted"] == 25 and netns.count() == 0 and other.count() == 5


def test_namespaces_without_a_stat_file_are_read_over_netlink(netns, make_loaders, hidden):
    import os

    netns.udp_flows(9, first_port=45000)
    inode = os.stat(netns.path).st_ino
    blind = {r["inode"]: r for r in make_loaders(hidden, **{"conntrack.netlink": False}).modules.conntrack.namespaces()}
    rows = {r["inode"]: r for r in make_loaders(hidden, **{"conntrack.netlink": True}).modules.conntrack.namespaces()}
    assert blind[inode]["source"] is None and blind[inode]["count"] is None and blind[inode]["error"]
    assert rows[inode]["source"] == "netlink" and rows[inode]["count"] == 9 and rows[inode]["drop"] == 0
