"""The states on this machine's real kernel: runtime values in a namespace the
test creates, global knobs saved and restored, files only under a tmp root.

The tmp root links proc, sys and lib to the real ones and has its own etc, so
``conntrack.root`` sends every /etc write to the tmp tree.
"""

import os
import subprocess
import time

import pytest

from tests.support.kernel import PROC_NF, read_int, write_int


def test_notrack_in_namespace_exempts_only_its_flows(netns, real_root, make_loaders):
    loaders = make_loaders(real_root)
    flows = [{"proto": "udp", "ports": [20000, 20001, 20002]}]
    with netns.entered():
        dry = loaders.states.conntrack.notrack(name="dns", flows=flows, persist=True, test=True)
        assert dry.result is None, dry.comment
        assert "nft" in dry.comment
        assert netns.run("nft", "list", "tables").stdout.count("conntrack_notrack") == 0
        ret = loaders.states.conntrack.notrack(name="dns", flows=flows, persist=True)
        assert ret.result is True, ret.comment
        assert ret.changes == dry.changes
        listing = netns.run("nft", "list", "table", "inet", "conntrack_notrack").stdout
        assert "priority raw" in listing  # raw is -300
        assert "udp sport 20001 notrack" in listing and "udp dport 20001 notrack" in listing
    # ports 20000..20004: the first three are exempt, the other two tracked
    assert netns.udp_flows(5, first_port=20000) == 5
    assert netns.count() == 2
    table = netns.run("conntrack", "-L", "-p", "udp", check=False).stdout
    assert "dport=20003" in table and "dport=20004" in table
    for port in (20000, 20001, 20002):
        assert f"dport={port} " not in table
    persisted = (real_root / "etc/nftables.d/conntrack-notrack.nft").read_text()
    assert "udp dport 20002 notrack" in persisted and "priority -300" in persisted
    check = netns.run("nft", "-c", "-f", str(real_root / "etc/nftables.d/conntrack-notrack.nft"), check=False)
    assert check.returncode == 0, check.stderr
    with netns.entered():
        again = loaders.states.conntrack.notrack(name="dns", flows=flows, persist=True)
        assert again.result is True and again.changes == {}
        bad = loaders.states.conntrack.notrack(name="dns", flows=[{"proto": "udp", "port": 70000}])
        assert bad.result is False and "from 1 to 65535" in bad.comment
    # the bad call left the live rules alone
    assert "udp dport 20000 notrack" in netns.run("nft", "list", "table", "inet", "conntrack_notrack").stdout


def test_tuned_timeouts_are_per_namespace(netns, real_root, make_loaders):
    host_value = read_int(f"{PROC_NF}/nf_conntrack_tcp_timeout_established")
    loaders = make_loaders(real_root)
    wanted = 4321 if host_value != 4321 else 4322
    args = {"name": "t", "timeouts": {"tcp_established": wanted, "udp": 77}}
    with netns.entered():
        ret = loaders.states.conntrack.tuned(**args)
        assert ret.result is True, ret.comment
        assert ret.changes["timeout tcp_established"]["new"] == wanted
        assert read_int(f"{PROC_NF}/nf_conntrack_tcp_timeout_established") == wanted
        assert read_int(f"{PROC_NF}/nf_conntrack_udp_timeout") == 77
        assert loaders.states.conntrack.tuned(**args).changes == {}
        # max is global, read-only in this namespace: an honest failure
        ro = loaders.states.conntrack.tuned(name="t", max=read_int(f"{PROC_NF}/nf_conntrack_max") + 1)
        assert ro.result is False and "read-only in this network namespace" in ro.comment
    assert read_int(f"{PROC_NF}/nf_conntrack_tcp_timeout_established") == host_value
    text = (real_root / "etc/sysctl.d/90-conntrack.conf").read_text()
    assert f"net.netfilter.nf_conntrack_tcp_timeout_established = {wanted}\n" in text


def test_tuned_max_and_buckets_on_host(global_knobs, real_root, make_loaders):
    loaders = make_loaders(real_root)
    ceiling = loaders.modules.conntrack.recommend()["max"]
    old_max = read_int(f"{PROC_NF}/nf_conntrack_max")
    old_hash = read_int("/sys/module/nf_conntrack/parameters/hashsize")
    new_max = old_max + 1024 if old_max + 1024 <= ceiling else old_max - 1024
    new_hash = old_hash + 1024 if old_hash + 1024 <= ceiling else old_hash - 1024
    ret = loaders.states.conntrack.tuned(name="size", max=new_max, buckets=new_hash)
    assert ret.result is True, ret.comment
    assert ret.changes["max"] == {"old": old_max, "new": new_max}
    assert ret.changes["buckets"] == {"old": old_hash, "new": new_hash}
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == new_max
    assert read_int("/sys/module/nf_conntrack/parameters/hashsize") == new_hash
    text = (real_root / "etc/sysctl.d/90-conntrack.conf").read_text()
    assert f"net.netfilter.nf_conntrack_max = {new_max}\n" in text
    # buckets is writable on this kernel: persisted as a sysctl too; modprobe.d options
    # and the udev rule do nothing for a built-in module, so they are not written
    assert f"net.netfilter.nf_conntrack_buckets = {new_hash}\n" in text
    if not os.path.exists("/proc/modules"):
        assert not (real_root / "etc/modprobe.d/conntrack.conf").exists()
        assert not (real_root / "etc/udev/rules.d/90-conntrack-sysctl.rules").exists()
        assert "built into this kernel" in ret.comment
    else:
        assert f"options nf_conntrack hashsize={new_hash}" in (real_root / "etc/modprobe.d/conntrack.conf").read_text()
    assert loaders.states.conntrack.tuned(name="size", max=new_max, buckets=new_hash).changes == {}
    # the persisted file is one the real sysctl accepts
    check = subprocess.run(["sysctl", "-p", str(real_root / "etc/sysctl.d/90-conntrack.conf")],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stderr


@pytest.mark.skipif(
    os.path.exists("/proc/modules"), reason="conntrack is modular here: this test is for built-in kernels"
)
def test_unloaded_on_builtin_kernel_fails_and_says_so(real_root, make_loaders):
    ret = make_loaders(real_root).states.conntrack.unloaded(name="ct", force=True)
    assert ret.result is False
    assert "built in" in ret.comment and ret.changes == {}
    assert os.path.exists(f"{PROC_NF}/nf_conntrack_max")


def test_dependents_found_with_a_path_without_sbin(netns, real_root, make_loaders, monkeypatch):
    """A minion started without sbin on PATH must still see the rules that need
    conntrack: iptables-save and nft live in sbin."""
    netns.run("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    loaders = make_loaders(real_root)
    with netns.entered():
        found = loaders.modules.conntrack_fw.dependents()
    live = {(d["source"], d["why"]) for d in found}
    assert ("iptables-save", "conntrack match (-m conntrack)") in live, found
    # the namespace's own nft table (ct state new) is found too
    assert ("nft list ruleset", "nft ct expression") in live, found


def test_drift_after_tuned_value_is_undone(global_knobs, real_root, make_loaders, tmp_path):
    """conntrack.tuned sets the max; something writes the old value back (as a module reload
    or kube-proxy would): conntrack.drift lists it, and the beacon sends one drift event."""
    (real_root / "dev").symlink_to("/dev")
    loaders = make_loaders(real_root, cachedir=str(tmp_path / "cache"))
    old_max = read_int(f"{PROC_NF}/nf_conntrack_max")
    ceiling = loaders.modules.conntrack.recommend()["max"]
    new_max = old_max + 1024 if old_max + 1024 <= ceiling else old_max - 1024
    assert loaders.states.conntrack.tuned(name="size", max=new_max).result is True
    assert loaders.modules.conntrack.drift()["differences"] == []
    write_int(f"{PROC_NF}/nf_conntrack_max", old_max)

    found = loaders.modules.conntrack.drift()["differences"]
    assert [(d["key"], d["runtime"], d["tuned"], d["boot"]) for d in found] == [
        ("net.netfilter.nf_conntrack_max", old_max, new_max, str(new_max))
    ]
    assert found[0]["differs_from"] == ["tuned", "boot"]
    assert found[0]["boot_file"] == "/etc/sysctl.d/90-conntrack.conf"

    config = [{"source": "kmsg"}, {"drift_interval": 0.2}, {"persist": False}]
    runs = []
    for _ in range(4):
        runs.append(loaders.beacons["conntrack.beacon"](config))
        time.sleep(0.3)
    drift_events = [e for run in runs for e in run if e["tag"] == "drift"]
    assert len(drift_events) == 1, runs
    assert drift_events[0]["differences"] == found
