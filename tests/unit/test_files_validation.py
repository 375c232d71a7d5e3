"""The pure parts of the persistence and firewall core: what a file may hold,
the notrack renderer and the one iptables-save reader."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack.firewall import iptables_save, notrack
from saltext_conntrack.persistence import iptables_config, plans, sysctl_plan


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("IPTABLES_MODULES_UNLOAD", False, "no"),
        ("IPTABLES_MODULES_UNLOAD", "yes", "yes"),
        ("IP6TABLES_SAVE_COUNTER", True, "yes"),
        ("IPTABLES_MODULES", ["nf_nat_ftp", "nf_conntrack_ftp"], "nf_nat_ftp nf_conntrack_ftp"),
        ("IPTABLES_MODULES", "", ""),
        ("IPTABLES_SYSCTL_LOAD_LIST", ".nf_conntrack .ip_conntrack", ".nf_conntrack .ip_conntrack"),
        ("IPTABLES_RESTORE_WAIT_INTERVAL", 1000000, "1000000"),
    ],
)
def test_iptables_values_accepted(key, value, expected):
    assert iptables_config.valid_value(key, value) == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("IPTABLES_MODULES_UNLOAD", "Yes"),
        ("IPTABLES_MODULES_UNLOAD", 1),
        ("IPTABLES_MODULES", "nf_nat\nreboot"),
        ("IPTABLES_MODULES", "nf_nat;reboot"),
        ("IPTABLES_SYSCTL_LOAD_LIST", "${IFS}"),
        ("IPTABLES_RESTORE_WAIT", -1),
        ("IPTABLES_RESTORE_WAIT", "0x10"),
        ("IPTABLES_RESTORE_WAIT", True),
        ("iptables_modules", "x"),
        ("PATH", "/tmp"),
    ],
)
def test_iptables_values_refused(key, value):
    with pytest.raises(SaltInvocationError):
        iptables_config.valid_value(key, value)


@pytest.mark.parametrize(
    "key, ok",
    [
        ("net.netfilter.nf_conntrack_max", True),
        ("net.nf_conntrack_max", True),
        ("net.ipv4.netfilter.ip_conntrack_tcp_timeout_established", True),
        ("net.ipv4.ip_forward", False),
        ("net.netfilter.nf_conntrack_max/../../ip_forward", False),
        ("net.netfilter.nf_log.2", False),
        ("kernel.core_pattern", False),
    ],
)
def test_sysctl_keys_stay_in_conntrack(key, ok):
    if ok:
        assert sysctl_plan.valid_key(key) == key
    else:
        with pytest.raises(SaltInvocationError, match="not a conntrack sysctl key"):
            sysctl_plan.valid_key(key)


def test_timeout_keys_for_both_flavours():
    assert sysctl_plan.timeout_key("tcp_established") == "net.netfilter.nf_conntrack_tcp_timeout_established"
    assert sysctl_plan.timeout_key("udp") == "net.netfilter.nf_conntrack_udp_timeout"
    assert sysctl_plan.timeout_key("udp_stream", "ip_conntrack") == "net.ipv4.netfilter.ip_conntrack_udp_timeout_stream"


def test_notrack_rules_both_directions_and_validation():
    rules = notrack.rules([{"proto": "udp", "port": 53}, {"proto": "tcp", "ports": [80, 80, 443]}])
    assert rules == ["udp dport 53 notrack", "udp sport 53 notrack", "tcp dport 80 notrack",
                     "tcp sport 80 notrack", "tcp dport 443 notrack", "tcp sport 443 notrack"]  # fmt: skip
    ipt = notrack.rules({"proto": "udp", "port": 53}, "iptables")
    assert ipt == ["-A CONNTRACK_NOTRACK -p udp -m udp --dport 53 -j CT --notrack",
                   "-A CONNTRACK_NOTRACK -p udp -m udp --sport 53 -j CT --notrack"]  # fmt: skip
    script = notrack.script([{"proto": "udp", "port": 53}])
    assert script.count("priority -300") == 2
    for bad in ([{"proto": "icmp", "port": 1}], [{"proto": "udp"}], [{"proto": "udp", "port": "53; drop"}],
                [{"proto": "udp", "port": 0}], [{"proto": "udp", "port": 53, "iface": "eth0"}], []):  # fmt: skip
        with pytest.raises(SaltInvocationError):
            notrack.rules(bad)
    with pytest.raises(SaltInvocationError):
        notrack.rules([{"proto": "udp", "port": 53}], "pf")


@pytest.mark.parametrize("value", ["-r --force", "-r", "--force nf_nat", "-", "-a"])
def test_module_names_never_start_with_a_dash(value):
    """The init script runs ``modprobe $mod``: a leading '-' would be an option."""
    with pytest.raises(SaltInvocationError, match="only module names"):
        iptables_config.valid_value("IPTABLES_MODULES", value)
    with pytest.raises(SaltInvocationError, match="not a kernel module name"):
        plans.modules(value.split()[0])


def test_module_names_accepted():
    assert plans.modules(["nf_conntrack", "nf-nat", "9p"]) == ["nf_conntrack", "nf-nat", "9p"]
    with pytest.raises(SaltInvocationError):
        plans.modules("x" * 65)


@pytest.mark.parametrize(
    "key, value, ok",
    [
        ("net.netfilter.nf_conntrack_max", 0, False),
        ("net.netfilter.nf_conntrack_max", 2**31 - 1, True),
        ("net.nf_conntrack_max", 1, True),
        ("net.netfilter.nf_conntrack_expect_max", 0, False),
        ("net.netfilter.nf_conntrack_buckets", (2**31 - 1) // 8, True),
        ("net.netfilter.nf_conntrack_buckets", (2**31 - 1) // 8 + 1, False),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", 0, False),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", (2**31 - 1) // 1000, True),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", (2**31 - 1) // 1000 + 1, False),
        ("net.ipv4.netfilter.ip_conntrack_udp_timeout_stream", 2**31 - 1, False),
        ("net.netfilter.nf_conntrack_tcp_loose", 0, True),
        ("net.netfilter.nf_conntrack_tcp_loose", 2, False),
        ("net.netfilter.nf_conntrack_count", 5, False),  # read-only: no bounds known, refused
        ("net.netfilter.nf_conntrack_whatever", 1, False),
    ],
)
def test_persisted_sysctl_values_bounded_per_key(key, value, ok):
    if ok:
        assert sysctl_plan.valid_value(key, value) == value
    else:
        with pytest.raises(SaltInvocationError):
            sysctl_plan.valid_value(key, value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("IPTABLES_MODULES", " ".join(["nf_nat_ftp"] * 100000)),  # 1 MB
        ("IPTABLES_MODULES", ["nf_nat"] * 65),
        ("IPTABLES_SYSCTL_LOAD_LIST", "." + "a" * 1100),
        ("IPTABLES_MODULES", "nf_nat\x00"),
        ("IPTABLES_RESTORE_WAIT", "1_000"),
        ("IPTABLES_RESTORE_WAIT", "\uff11\uff10"),
        ("IPTABLES_RESTORE_WAIT", 10**9),
        ("IPTABLES_RESTORE_WAIT", 5.0),
    ],
)
def test_iptables_values_are_bounded(key, value):
    with pytest.raises(SaltInvocationError) as err:
        iptables_config.valid_value(key, value)
    assert len(str(err.value)) < 700


def test_one_iptables_save_reader():
    text = (
        "# Generated by iptables-save\n*raw\n:PREROUTING ACCEPT [0:0]\n:CONNTRACK_NOTRACK - [0:0]\n"
        "-A PREROUTING -j CONNTRACK_NOTRACK\n-A CONNTRACK_NOTRACK -p udp -m udp --dport 53 -j CT --notrack\nCOMMIT\n"
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -m state --state ESTABLISHED -j ACCEPT\n-A INPUT -j REJECT\nCOMMIT\n"
    )
    parsed = iptables_save.parse(text)
    assert [line["kind"] for line in parsed][:4] == ["other", "table", "chain", "chain"]
    assert iptables_save.policies(parsed) == {("raw", "PREROUTING"): "ACCEPT", ("raw", "CONNTRACK_NOTRACK"): "-",
                                         ("filter", "INPUT"): "DROP"}  # fmt: skip
    assert iptables_save.last_rules(parsed)[("filter", "INPUT")] == "-A INPUT -j REJECT"
    assert [r["chain"] for r in iptables_save.rules(text, "raw")] == ["PREROUTING", "CONNTRACK_NOTRACK"]
    assert iptables_save.target("-A INPUT -m state --state NEW -j ACCEPT") == "ACCEPT"


@pytest.mark.parametrize(
    "path, ok",
    [
        ("/etc/sysctl.d/90-conntrack.conf", True),
        ("/etc/sysctl.conf", True),
        ("/etc/sysctl.d/.hidden.conf", False),
        ("/etc/sysctl.d/" + "x" * 250 + ".conf", False),
        ("/etc/sysctl.d/a b.conf", False),
        ("etc/sysctl.conf", False),
        ("/etc/sysctl.d/x.conf\n", False),
    ],
)
def test_allowed_paths(path, ok):
    if ok:
        assert plans.allowed(path, "sysctl") == path
    else:
        with pytest.raises(SaltInvocationError):
            plans.allowed(path, "sysctl")
