"""The execution module against the real kernel, inside a namespace the test owns."""

import datetime
import json
import os
import sys
import time

import pytest

from tests.conftest import REPO
from tests.support.kernel import PROC_NF, read_int, write_int


def test_status_counts_real_flows(netns, modules):
    assert netns.udp_flows(37) == 37
    with netns.entered():
        st = modules.conntrack.status()
    assert st["flavour"] == "nf_conntrack"
    assert st["count"] == 37
    assert st["initial_netns"] is False  # global knobs are 0444 in a child netns
    assert st["stats"]["drop"] == 0


def test_summary_matches_conntrack_tool(netns, modules):
    netns.udp_flows(25, first_port=30000)
    # A TCP flow that completes: SYN, SYN-ACK, ACK.
    netns.run(
        "python3",
        "-c",
        "import socket;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();"
        "c=socket.create_connection(s.getsockname());a,_=s.accept();c.send(b'x');a.recv(1)",
    )
    with netns.entered():
        ret = modules.conntrack.summary(top=5)
    listed = netns.run("conntrack", "-L").stdout.splitlines()
    by_proto = {}
    for line in listed:
        proto = line.split()[0]
        by_proto[proto] = by_proto.get(proto, 0) + 1
    assert ret["total"] == len(listed) == 26
    assert ret["by_protocol"] == by_proto
    assert sum(ret["tcp_states"].values()) == by_proto["tcp"]
    assert ret["unreplied"] == sum("[UNREPLIED]" in line for line in listed)
    assert ret["top"]["src"][0] == ["127.0.0.1", 26]


def test_overflow_is_critical_while_current_then_past(netns, make_loaders, global_knobs, tmp_path):
    """check(window=5) is critical for drops inside the window; seconds later,
    with no new drops and the limit back, it is not, and says the drops are past.

    A cachedir of its own: the status history is keyed by netns inode, and the
    kernel reuses a freed namespace's inode number, so the session's cachedir
    may hold an earlier test's samples for "this" netns. A full table may
    early-drop an unreplied entry near a new flow's hash bucket instead of
    refusing it: such a flow is admitted, counted in early_drop, not in drop.
    """
    modules = make_loaders("/", cachedir=str(tmp_path / "cache")).modules
    with netns.entered():
        assert modules.conntrack.status(window=5)["recent"] is None  # the first sample of this netns
    netns.udp_flows(20, first_port=40000)
    write_int(f"{PROC_NF}/nf_conntrack_max", 20)
    refused = 30 - netns.udp_flows(30, first_port=41000)
    with netns.entered():
        st = modules.conntrack.status(window=5)
        verdict = modules.conntrack.check(window=5)
    assert refused + st["stats"]["early_drop"] == 30 and refused > 0
    assert st["count"] == 20 and st["max"] == 20 and st["usage"] == 100.0
    assert st["stats"]["drop"] >= refused and st["recent"]["drop"] >= refused
    assert verdict["verdict"] == "critical"
    assert any("packets dropped in the last" in r for r in verdict["reasons"]), verdict
    # Recovered: the limit is back (the table is no longer full) and no flow is refused.
    write_int(f"{PROC_NF}/nf_conntrack_max", global_knobs[f"{PROC_NF}/nf_conntrack_max"])
    time.sleep(6)
    with netns.entered():
        later = modules.conntrack.check(window=5)
    assert later["verdict"] == "ok", later
    assert later["recent"]["drop"] == 0 and 5 <= later["recent"]["seconds"] < 30
    assert later["drop"] == st["stats"]["drop"]
    assert any(f"the {later['drop']} since boot are past" in r for r in later["reasons"]), later


def test_separate_salt_call_runs_share_the_history(netns):
    """Two salt-call processes in the namespace: the second compares with the first's sample (the cachedir)."""
    netns.udp_flows(3, first_port=52000)
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    args = (
        salt_call,
        "--local",
        "-c",
        "conf",
        "-m",
        str(REPO / "_modules"),
        "--out=json",
        "conntrack.status",
        "window=0",
    )
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    first = json.loads(netns.run(*args, timeout=120, cwd=REPO).stdout)["local"]
    second = json.loads(netns.run(*args, timeout=120, cwd=REPO).stdout)["local"]
    assert first["count"] == second["count"] == 3
    assert second["recent"]["drop"] == 0 and second["recent"]["seconds"] > 0
    assert datetime.datetime.fromisoformat(second["recent"]["since"]) >= started


def test_global_write_refused_in_netns(netns, modules, global_knobs):
    before = read_int(f"{PROC_NF}/nf_conntrack_max")
    with netns.entered(), pytest.raises(Exception, match="network namespace"):
        modules.conntrack.set_max(before + 1)
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == before


def test_set_max_and_buckets_on_host(modules, global_knobs):
    before = global_knobs[f"{PROC_NF}/nf_conntrack_max"]
    target = before + 1024
    assert modules.conntrack.set_max(target)["new"] == target
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == target
    hashsize = global_knobs["/sys/module/nf_conntrack/parameters/hashsize"]
    assert modules.conntrack.set_buckets(hashsize // 2)["new"] == hashsize // 2
    assert read_int(f"{PROC_NF}/nf_conntrack_buckets") == hashsize // 2


def test_set_timeout_is_per_namespace(netns, modules):
    host = read_int(f"{PROC_NF}/nf_conntrack_tcp_timeout_established")
    with netns.entered():
        assert modules.conntrack.set_timeout("tcp_established", 3600)["new"] == 3600
        assert modules.conntrack.timeouts()["tcp_established"] == 3600
    assert read_int(f"{PROC_NF}/nf_conntrack_tcp_timeout_established") == host


def test_salt_call_inside_namespace(netns):
    """The README's masterless command (pip-installed entry point), inside the namespace."""
    netns.udp_flows(12, first_port=50000)
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    out = netns.run(salt_call, "--local", "-c", "conf", "--out=json", "conntrack.status", timeout=120, cwd=REPO).stdout
    assert json.loads(out)["local"]["count"] == 12
