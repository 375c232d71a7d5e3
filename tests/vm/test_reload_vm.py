"""Checks 1 and 2 on Debian's modular kernel: conntrack.tuned, a module reload
as a firewall restart does it, and a second boot of the same guest.

The guest's values: TUNED in tests/vm/guest.py (max 49152, buckets 16384,
tcp_established 7200, udp 45), each unlike the 6.1 kernel's default for
2 GiB (max 65536, buckets 65536, 432000, 30).
"""

from tests.support.vm import check

DEFAULTS = {"max": 65536, "buckets": 65536, "hashsize": 65536, "tcp_timeout_established": 432000, "udp_timeout": 30}
TUNED = {"max": 49152, "buckets": 16384, "hashsize": 16384, "tcp_timeout_established": 7200, "udp_timeout": 45}
GONE = dict.fromkeys(DEFAULTS)
MAX = "net.netfilter.nf_conntrack_max"
EST = "net.netfilter.nf_conntrack_tcp_timeout_established"
IPTABLES_CONFIG = '# made by the vm tier\nIPTABLES_MODULES_UNLOAD="yes"\n#IPTABLES_SYSCTL_LOAD_LIST=""\n'


def test_guest_is_debians_modular_kernel(boot1):
    assert boot1["kernel"] == "6.1.0-57-amd64" or boot1["kernel"].startswith("6.1."), boot1["kernel"]
    start = check(boot1, "start_minion")
    assert start == {"loaded_at_start": False, "udevd": True}
    chain = check(boot1, "kernel_defaults")["chain"]
    assert {"nf_conntrack", "nft_ct", "nf_defrag_ipv4", "nf_defrag_ipv6"} <= set(chain)


def test_reload_without_the_state_loses_values_and_drift_names_the_default(boot1):
    ret = check(boot1, "reload_without_state")
    assert ret["before"]["max"] == 54321 and ret["before"]["tcp_timeout_established"] == 3600
    assert [s["rc"] for s in ret["stop"]] == [0] * len(ret["stop"])
    assert ret["unloaded"] == GONE  # the knobs went with the module
    assert ret["rules"]["rc"] == 0
    assert ret["after"] == DEFAULTS  # the sysctl.d file alone does not survive a reload
    diffs = {d["key"]: d for d in ret["drift"]["differences"]}
    assert sorted(diffs) == [MAX, EST]
    assert diffs[MAX]["runtime"] == 65536 and diffs[MAX]["boot"] == "54321"
    assert diffs[EST]["runtime"] == 432000
    for diff in diffs.values():
        assert diff["cause"].startswith("the kernel default: the module was reloaded"), diff


def test_tuned_writes_every_reload_file_and_test_mode_writes_none(boot1):
    ret = check(boot1, "tuned")
    assert ret["dry"]["result"] is None, ret["dry"]
    assert ret["after_dry"]["sysctl"] is None and ret["after_dry"]["modprobe"] is None
    assert ret["after_dry"]["iptables_config"] == IPTABLES_CONFIG
    assert ret["udev_after_dry"] == ret["udev_before"]
    assert ret["real"]["result"] is True, ret["real"]
    assert "net.netfilter.nf_conntrack_max = 49152\n" in ret["files"]["sysctl"]
    assert "net.netfilter.nf_conntrack_udp_timeout = 45\n" in ret["files"]["sysctl"]
    assert "options nf_conntrack hashsize=16384\n" in ret["files"]["modprobe"]
    assert 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in ret["files"]["iptables_config"]
    rule = ret["udev"]["90-conntrack-sysctl.rules"]
    assert 'KERNEL=="nf_conntrack"' in rule and "systemd-sysctl --prefix=/net/netfilter" in rule
    assert ret["again"] == {"result": True, "comment": "conntrack tuning: already as wanted", "changes": {}}
    assert ret["knobs"] == TUNED
    assert ret["drift"]["differences"] == []


def test_values_come_back_after_a_firewall_restart_reload(boot1):
    ret = check(boot1, "reload_with_state")
    assert ret["before"] == TUNED
    assert ret["unloaded"] == GONE
    assert [s["cmd"] for s in ret["stop"]][-1] == "modprobe -r nf_conntrack"
    assert ret["rules"]["rc"] == 0
    assert ret["after"] == TUNED  # hashsize from modprobe.d, the rest from the udev rule's systemd-sysctl
    assert ret["drift"]["differences"] == []


def test_the_udev_rule_is_what_brings_the_sysctls_back(boot1):
    ret = check(boot1, "reload_without_udev_rule")
    assert ret["removed"] == ["90-conntrack-sysctl.rules"]
    # modprobe.d alone: hashsize 16384 and the kernel's 8 x hashsize max, default timeouts
    assert ret["after"] == {**DEFAULTS, "buckets": 16384, "hashsize": 16384, "max": 131072}
    assert ret["restored"] == TUNED


def test_second_boot_sysctl_before_the_module_loads(boot2):
    ret = check(boot2, "boot_order_sysctl_first")
    assert ret["loaded_at_start"] is False
    assert [s["rc"] for s in ret["steps"]] == [0, 0, 0]
    # systemd/systemd#43362's order: systemd-sysctl finds no conntrack knobs yet
    assert "nf_conntrack_max" in ret["steps"][2]["err"]
    assert ret["before_rules"] == GONE
    assert ret["rules"]["rc"] == 0
    assert ret["after"] == TUNED
    assert ret["drift"]["differences"] == []


def test_second_boot_module_before_sysctl(boot2):
    ret = check(boot2, "boot_order_module_first")
    assert ret["gone"] == GONE
    assert ret["before_sysctl"] == TUNED  # the udev rule ran on the module's load
    assert ret["after"] == TUNED
    assert ret["drift"]["differences"] == []
