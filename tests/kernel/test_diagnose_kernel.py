"""conntrack.diagnose on the real kernel: each scenario makes the traffic in a
namespace of its own, diagnose names the cause with its fix, and the offered
SLS, applied through the real loader's states inside that namespace, makes the
finding go away, with new flows untracked or expiring sooner.

The root is a temp tree (proc, sys, lib, run linked to the host's own, etc of
its own), so what the states persist lands under the test's tree.
"""

import os
import socket
import time

import pytest
import yaml

from tests.support.hostroot import build_host_root
from tests.support.kernel import PROC_NF, Netns, read_int, write_int

HASHSIZE = "/sys/module/nf_conntrack/parameters/hashsize"


@pytest.fixture
def root(tmp_path):
    return build_host_root(tmp_path / "root")


@pytest.fixture
def loaders(make_loaders, root):
    return make_loaders(root)


def by_id(result):
    return {f["id"]: f for f in result["findings"]}


def apply_fix(loaders, fix):
    """Apply an offered SLS snippet through the real states loader; the state's return."""
    [(state_id, body)] = yaml.safe_load(fix).items()
    [(function, arglist)] = body.items()
    module, name = function.split(".")
    assert module == "conntrack"
    args = {k: v for item in arglist for k, v in item.items()}
    ret = getattr(loaders.states.conntrack, name)(name=state_id, **args)
    assert ret.result is True, ret.comment
    return ret


def table_lines(ns, *args):
    return ns.run("conntrack", "-L", *args, check=False).stdout.splitlines()


def remaining(line):
    """The remaining lifetime (3rd field of conntrack -L: proto, number, seconds)."""
    return int(line.split()[2])


def tcp_pairs(ns, count, close=True):
    """``count`` real TCP connections on loopback; closed (TIME_WAIT) or kept open (returned)."""
    kept = []
    with ns.entered():
        server = socket.socket()
        server.bind(("127.0.0.2", 0))
        server.listen(128)
        for _ in range(count):
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
            client.sendall(b"x")
            peer.recv(1)
            peer.sendall(b"y")
            client.recv(1)
            if close:
                client.close()
                peer.close()
            else:
                kept += [client, peer]
        server.close()
    time.sleep(0.2)  # the last FIN/ACKs
    return kept


def test_unreplied_udp_to_one_port_then_notrack(loaders):
    # Unreplied UDP lives udp_timeout seconds: 8 here, to watch the old entries go.
    ns = Netns("ctdiag").create(udp_timeout=8)
    try:
        ns.udp_queries(3000)
        assert ns.udp_flows(300, first_port=40000) == 300  # other traffic, other ports
        with ns.entered():
            result = loaders.modules.conntrack.diagnose()
        found = by_id(result)
        assert "unreplied_udp_port" in found, result["findings"]
        udp = found["unreplied_udp_port"]
        assert udp["evidence"]["port"] == "udp/53"
        assert 3000 <= udp["evidence"]["unreplied"] <= 3300
        assert udp["evidence"]["walked"] == result["walk"]["entries"] >= 3300
        assert udp["evidence"]["udp_timeout"] == 8
        assert any("NAT" in s for s in udp["side_effects"])
        assert result["walk"]["complete"] is True
        # Everything went to 127.0.0.1 from 127.0.0.1: one destination holds the table.
        assert found["top_destination"]["evidence"]["address"] == "127.0.0.1"

        with ns.entered():
            ret = apply_fix(loaders, udp["fix"])
        assert "udp dport 53 notrack" in ns.run("nft", "list", "table", "inet", "conntrack_notrack").stdout
        assert ret.changes
        time.sleep(9)  # the old entries expire
        ns.udp_queries(3000, first_sport=34000)
        assert not any("dport=53 " in line for line in table_lines(ns, "-p", "udp")), "new queries are tracked"
        with ns.entered():
            after = by_id(loaders.modules.conntrack.diagnose())
        assert "unreplied_udp_port" not in after, after
    finally:
        ns.delete()


def test_unreplied_udp_then_shorter_udp_timeout(loaders, netns):
    netns.udp_queries(1000)
    with netns.entered():
        udp = by_id(loaders.modules.conntrack.diagnose())["unreplied_udp_port"]
    assert udp["evidence"]["udp_timeout"] == 600  # the namespace's udp timeout
    assert all(remaining(line) > 500 for line in table_lines(netns, "-p", "udp", "--dport", "53"))
    # The commented alternative after '# or': the same snippet without the '# '.
    _, after_or = udp["fix"].split("# or, keeping them tracked but shorter-lived:\n")
    alternative = "\n".join(line[2:] for line in after_or.splitlines())
    with netns.entered():
        ret = apply_fix(loaders, alternative)
    assert ret.changes["timeout udp"] == {"old": 600, "new": 10}
    netns.udp_queries(200, first_sport=36000)
    fresh = [line for line in table_lines(netns, "-p", "udp", "--dport", "53") if "sport=36" in line]
    assert len(fresh) == 200
    assert all(remaining(line) <= 10 for line in fresh)  # new flows expire within 10 s


def test_time_wait_churn_then_shorter_time_wait(loaders, netns):
    tcp_pairs(netns, 300)
    states = [line.split()[3] for line in table_lines(netns, "-p", "tcp")]
    assert states.count("TIME_WAIT") >= 290, states[:5]
    with netns.entered():
        churn = by_id(loaders.modules.conntrack.diagnose())["time_wait_churn"]
    assert churn["evidence"]["time_wait"] >= 290 and churn["evidence"]["tcp_time_wait"] == 120
    with netns.entered():
        ret = apply_fix(loaders, churn["fix"])
        assert ret.changes["timeout tcp_time_wait"] == {"old": 120, "new": 30}
    tcp_pairs(netns, 20)
    waits = [line for line in table_lines(netns, "-p", "tcp") if " TIME_WAIT " in line]
    assert sum(remaining(line) <= 30 for line in waits) >= 20  # the new ones expire in 30 s
    with netns.entered():
        assert "time_wait_churn" not in by_id(loaders.modules.conntrack.diagnose())


def test_idle_established_then_shorter_timeout(loaders, netns):
    # Entries keep the expiry they got at their last packet. Made while the
    # namespace's timeout is 400000 s, then read against the 5-day default,
    # they are what 32000 s (about 9 h) of idleness leaves: the kernel's own
    # remaining lifetimes, with the clock moved instead of waited for.
    netns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=400000")
    kept = tcp_pairs(netns, 150, close=False)
    try:
        netns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=432000")
        with netns.entered():
            idle = by_id(loaders.modules.conntrack.diagnose())["idle_established"]
        assert idle["evidence"]["idle_over_1h"] == idle["evidence"]["established"] == 150
        assert idle["evidence"]["tcp_established"] == 432000
        with netns.entered():
            ret = apply_fix(loaders, idle["fix"])
        assert ret.changes["timeout tcp_established"] == {"old": 432000, "new": 3600}
        kept += tcp_pairs(netns, 5, close=False)
        fresh = [
            line for line in table_lines(netns, "-p", "tcp") if " ESTABLISHED " in line and remaining(line) <= 3600
        ]
        assert len(fresh) == 5  # new connections are held 1 h idle, not 5 days
        with netns.entered():
            assert "idle_established" not in by_id(loaders.modules.conntrack.diagnose())
    finally:
        for sock in kept:
            sock.close()


def test_drops_while_full(loaders, netns, global_knobs):
    with netns.entered():
        loaders.modules.conntrack.status()  # an earlier sample, where status keeps them
    assert netns.udp_flows(20, first_port=40000) == 20
    write_int(f"{PROC_NF}/nf_conntrack_max", 20)
    # Unassured entries may be evicted (early_drop) to admit a few; the rest are refused.
    refused = 30 - netns.udp_flows(30, first_port=41000)
    assert refused >= 20
    with netns.entered():
        status = loaders.modules.conntrack.status()
        result = loaders.modules.conntrack.diagnose(walk=False)
    found = by_id(result)
    assert result["walk"]["walked"] is False and result["summary"] is None
    if status.get("recent") is not None:
        drops = found["drops_rising"]
        assert drops["severity"] == "critical" and drops["evidence"]["drop"] >= refused
        if status["recent"].get("early_drop"):
            assert found["early_drop_rising"]["evidence"]["early_drop"] >= status["recent"]["early_drop"]
    else:
        drops = found["drops_since_boot"]
        assert drops["evidence"]["drop_since_boot"] >= refused
    assert result["findings"][0] is drops or result["findings"][0]["severity"] == "critical"
    # The limit is global: the offered size is the host's RAM recommendation or twice the limit.
    recommended = loaders.modules.conntrack.recommend()["max"]
    assert f"max: {max(40, recommended)}" in drops["fix"]
    assert found["limit_low"]["severity"] == "critical"


def test_long_hash_chains_then_buckets(loaders, global_knobs):
    write_int(f"{PROC_NF}/nf_conntrack_max", 262144)
    write_int(HASHSIZE, 16384)
    chains = by_id(loaders.modules.conntrack.diagnose(walk=False))["hash_chains_long"]
    assert chains["evidence"]["max_per_bucket"] == 16.0
    ret = apply_fix(loaders, chains["fix"])
    assert ret.changes["buckets"] == {"old": 16384, "new": 262144}
    assert read_int(HASHSIZE) == 262144
    assert "hash_chains_long" not in by_id(loaders.modules.conntrack.diagnose(walk=False))


def test_runtime_not_what_boot_sets_then_persisted(loaders, netns, root):
    netns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=7200")
    with open(f"{root}/etc/sysctl.d/50-site.conf", "w", encoding="ascii") as fh:
        fh.write("net.netfilter.nf_conntrack_udp_timeout = 45\n")
    with netns.entered():
        found = by_id(loaders.modules.conntrack.diagnose(walk=False))["not_persisted"]
    values = {v["key"]: v for v in found["evidence"]["values"]}
    est = values["net.netfilter.nf_conntrack_tcp_timeout_established"]
    assert (est["runtime"], est["boot"]) == (7200, None)
    udp = values["net.netfilter.nf_conntrack_udp_timeout"]
    assert (udp["runtime"], udp["boot"], udp["boot_file"]) == (600, "45", "/etc/sysctl.d/50-site.conf")
    with netns.entered():
        apply_fix(loaders, found["fix"])
        assert "not_persisted" not in by_id(loaders.modules.conntrack.diagnose(walk=False))
    with open(f"{root}/etc/sysctl.d/90-conntrack.conf", encoding="ascii") as fh:
        text = fh.read()
    assert "nf_conntrack_tcp_timeout_established = 7200" in text and "nf_conntrack_udp_timeout = 600" in text


def test_iptables_restart_would_reset_then_load_list(loaders, root):
    os.makedirs(f"{root}/etc/sysconfig")
    with open(f"{root}/etc/sysconfig/iptables-config", "w", encoding="ascii") as fh:
        fh.write('IPTABLES_MODULES=""\nIPTABLES_MODULES_UNLOAD="yes"\nIPTABLES_SYSCTL_LOAD_LIST=""\n')
    found = by_id(loaders.modules.conntrack.diagnose(walk=False))["iptables_restart_resets"]
    assert found["evidence"]["file"] == "/etc/sysconfig/iptables-config"
    apply_fix(loaders, found["fix"])
    with open(f"{root}/etc/sysconfig/iptables-config", encoding="ascii") as fh:
        assert 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in fh.read()
    assert "iptables_restart_resets" not in by_id(loaders.modules.conntrack.diagnose(walk=False))


def test_tracking_with_no_rule_needing_it(loaders, netns, global_knobs):
    # The rule that needed conntrack is gone; the entries it made still fill the table.
    write_int(f"{PROC_NF}/nf_conntrack_max", 4000)
    assert netns.udp_flows(3000, first_port=20000) == 3000
    netns.run("nft", "delete", "table", "inet", "ctt")
    with netns.entered():
        assert loaders.modules.conntrack_fw.dependents() == []
        found = by_id(loaders.modules.conntrack.diagnose(walk=False))["no_dependents"]
    assert found["evidence"]["count"] == 3000 and found["evidence"]["usage"] == 75.0
    assert found["fix_type"] == "nft"
    check = netns.run("nft", "-c", "-f", "-", input=found["fix"], check=False)
    assert check.returncode == 0, check.stderr


def test_sample_stops_early_and_says_so(loaders, netns):
    assert netns.udp_flows(5000, first_port=20000) == 5000
    with netns.entered():
        full = loaders.modules.conntrack.diagnose(top=3)
        part = loaders.modules.conntrack.diagnose(sample=1000, top=3)
    assert full["walk"]["entries"] == 5000 and full["walk"]["complete"] is True
    assert part["walk"] == {**part["walk"], "entries": 1000, "complete": False, "sample": 1000, "count": 5000}
    assert part["summary"]["total"] == 1000
    # The sample is a prefix of the same table: its protocol mix is the table's.
    assert part["summary"]["by_protocol"] == {"udp": 1000}
