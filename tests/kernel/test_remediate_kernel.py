"""conntrack_remediate.remediate on the real kernel: it confirms from the
host's own counters (including child namespaces under /run/netns), sizes from
the host's own RAM, persists under the test's root and rate-limits itself."""

import os

import pytest

from tests.support.hostroot import build_host_root
from tests.support.kernel import PROC_NF, read_int, write_int

HASHSIZE = "/sys/module/nf_conntrack/parameters/hashsize"


@pytest.fixture
def host_root(tmp_path):
    return build_host_root(tmp_path / "root")


@pytest.fixture
def rmod(make_loaders, host_root, tmp_path):
    loaders = make_loaders(host_root, cachedir=str(tmp_path / "cache"))
    return loaders.modules


def _fill(netns, global_knobs, entries=20):
    """Fill the namespace's table for real: ``entries`` flows, global max = entries."""
    assert netns.udp_flows(entries, first_port=40000) == entries
    write_int(f"{PROC_NF}/nf_conntrack_max", entries)
    netns.overflow(10, first_port=41000)


def test_full_child_netns_is_confirmed_and_raised(netns, global_knobs, rmod, host_root):
    _fill(netns, global_knobs)
    # A small hash table, to see it grow (set after the fill: with few buckets
    # the kernel's early_drop would evict unassured entries to make room).
    write_int(HASHSIZE, 1024)
    ret = rmod.conntrack_remediate.remediate(cap=65536, fire_event=False)
    assert ret["remediated"] is True, ret
    assert any(netns.name in ev and "usage 100.0%" in ev for ev in ret["evidence"]), ret
    # min(cap 65536, max(2 x 20, RAM recommendation)) = 65536; buckets 65536 / 8.
    assert ret["old"] == {"max": 20, "buckets": 1024}
    assert ret["new"] == {"max": 65536, "buckets": 8192}
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == 65536
    assert read_int(HASHSIZE) == 8192
    with open(f"{host_root}/etc/sysctl.d/90-conntrack.conf", encoding="ascii") as fh:
        assert "net.netfilter.nf_conntrack_max = 65536\n" in fh.read()
    # conntrack is built into this kernel: like conntrack.tuned, no modprobe options.
    assert not os.path.exists(f"{host_root}/etc/modprobe.d/conntrack.conf")
    assert "built into this kernel" in ret["persisted"]["modprobe"]["skipped"]
    assert netns.udp_flows(5, first_port=42000) == 5  # tracked again

    # A second call inside the interval is refused, and changes nothing.
    write_int(f"{PROC_NF}/nf_conntrack_max", 25)
    again = rmod.conntrack_remediate.remediate(cap=65536, fire_event=False)
    assert again["remediated"] is False and again["refused"] == "rate_limited", again
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == 25


def test_healthy_host_is_not_touched(netns, global_knobs, rmod, host_root):
    netns.udp_flows(5)
    before = read_int(f"{PROC_NF}/nf_conntrack_max")
    ret = rmod.conntrack_remediate.remediate(fire_event=False)
    assert ret["refused"] == "not_confirmed" and ret["remediated"] is False, ret
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == before
    names = [ns["name"] for ns in ret["namespaces"]]
    assert "(host)" in names and netns.name in names
    assert not os.path.exists(f"{host_root}/etc/sysctl.d/90-conntrack.conf")


def test_rising_drops_confirm_after_the_table_emptied(netns, global_knobs, rmod, host_root):
    # First look: healthy, records this namespace's drop counter as the baseline.
    assert rmod.conntrack_remediate.remediate(fire_event=False)["refused"] == "not_confirmed"
    _fill(netns, global_knobs, entries=10)
    # The incident is over by the time we look (table flushed), but drops rose.
    netns.run("conntrack", "-F", check=False)
    assert netns.count() == 0
    ret = rmod.conntrack_remediate.remediate(target=30, fire_event=False)
    assert ret["remediated"] is True, ret
    assert any("drop counter rose from 0 to" in ev for ev in ret["evidence"]), ret
    # min(ceiling, max(2 x 10, target 30)) = 30; buckets never lowered.
    assert ret["new"]["max"] == 30 == read_int(f"{PROC_NF}/nf_conntrack_max")
    assert ret["new"]["buckets"] == global_knobs[HASHSIZE]


def test_at_ceiling_is_refused(netns, global_knobs, rmod):
    _fill(netns, global_knobs)
    ret = rmod.conntrack_remediate.remediate(cap=20, fire_event=False)
    assert ret["refused"] == "at_ceiling" and ret["result"] is False, ret
    assert read_int(f"{PROC_NF}/nf_conntrack_max") == 20


def test_persisted_value_is_never_lowered(netns, global_knobs, rmod, host_root):
    path = f"{host_root}/etc/sysctl.d/90-conntrack.conf"
    with open(path, "w", encoding="ascii") as fh:
        fh.write("# operator's\nnet.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_max = 999999\n")
    modprobe = f"{host_root}/etc/modprobe.d/conntrack.conf"
    with open(modprobe, "w", encoding="ascii") as fh:
        fh.write("options nf_conntrack hashsize=512 acct=1\n")
    _fill(netns, global_knobs)
    ret = rmod.conntrack_remediate.remediate(cap=4096, fire_event=False)
    assert ret["remediated"] is True
    with open(modprobe, encoding="ascii") as fh:
        # built in here: an operator's modprobe file is not touched at all
        assert fh.read() == "options nf_conntrack hashsize=512 acct=1\n"
    with open(path, encoding="ascii") as fh:
        text = fh.read()
    assert text == "# operator's\nnet.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_max = 999999\n"
    assert ret["persisted"]["sysctl"]["changes"] == {}
