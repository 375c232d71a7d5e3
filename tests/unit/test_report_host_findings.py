"""Findings from the cheap facts, each family on its own."""

from saltext_conntrack.report import host_findings

STATUS = {"flavour": "nf_conntrack", "count": 990, "max": 1000, "usage": 99.0, "buckets": 100, "stats": {}}


def test_counters_now_and_since_boot():
    recent = {"drop": 5, "early_drop": 0, "insert_failed": 2, "seconds": 300.0}
    found = host_findings.counter_findings({**STATUS, "recent": recent}, {"max": 2000})
    assert [f["id"] for f in found] == ["drops_rising", "insert_failed_rising"]
    since = host_findings.counter_findings({**STATUS, "recent": None, "stats": {"drop": 3}}, {"max": 2000})
    assert [f["id"] for f in since] == ["drops_since_boot"] and "max: 2000" in since[0]["fix"]


def test_sizing_and_chains():
    found = host_findings.sizing_findings({**STATUS, "recent": None}, {"max": 2000})
    assert [(f["id"], f["severity"]) for f in found] == [("limit_low", "critical"), ("hash_chains_long", "warning")]


def test_iptables_config_without_the_load_list():
    facts = {"iptables_configs": {"/etc/sysconfig/iptables-config": 'IPTABLES_SYSCTL_LOAD_LIST=""\n'}}
    found = host_findings.persistence_findings(STATUS, {}, {}, facts)
    assert [f["id"] for f in found] == ["iptables_restart_resets"]
    assert ".nf_conntrack" in found[0]["fix"]


def test_no_dependents_only_under_pressure():
    assert host_findings.dependents_finding(STATUS, [])[0]["fix_type"] == "nft"
    assert host_findings.dependents_finding({**STATUS, "usage": 10.0}, []) == []
    assert host_findings.dependents_finding(STATUS, None) == []


def test_namespace_fix_quotes_the_name_for_the_shell():
    """Class: fix texts. Before: ``ip netns exec blue;reboot salt-call ...`` ran reboot when pasted."""
    import shlex

    rows = [{"inode": 2, "names": ["/run/netns/blue;reboot $(id)"], "owner": None, "count": 95, "usage": 95.0}]
    found = host_findings.namespace_findings({"max": 100}, {"namespaces": rows, "self_inode": 1})
    command = found[0]["fix"].splitlines()[1]
    assert shlex.split(command) == ["ip", "netns", "exec", "blue;reboot $(id)", "salt-call", "--local",
                                    "conntrack.diagnose"]  # fmt: skip
    rows = [{"inode": 3, "names": [], "owner": {"pid": "1;reboot"}, "count": 95, "usage": 95.0}]
    command = host_findings.namespace_findings({"max": 100}, {"namespaces": rows, "self_inode": 1})[0]["fix"]
    assert "'1;reboot'" in command
