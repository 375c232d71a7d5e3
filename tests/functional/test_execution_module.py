"""The execution module through the real Salt loader, on fixture trees."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.fixtures import ERAS, build_root


@pytest.mark.parametrize("era", ERAS)
def test_status_every_era(make_loaders, tmp_path, era):
    root = build_root(tmp_path, era, count=1000, maximum=4000, buckets=500, drop=5, early_drop=3)
    st = make_loaders(root).modules.conntrack.status()
    assert st["flavour"] == ("ip_conntrack" if era == "centos5" else "nf_conntrack")
    assert (st["count"], st["max"], st["usage"]) == (1000, 4000, 25.0)
    assert st["buckets"] == 500 and st["hashsize"] == 500
    assert st["stats"]["drop"] == 5
    assert st["stats"]["early_drop"] == 3
    assert st["stats"]["entries"] == 1000  # taken once, not summed over CPUs
    assert st["stats"]["found"] == 14  # summed over the two CPUs
    assert ("search_restart" in st["stats"]) is (era != "centos5")
    assert ("clashres" in st["stats"]) is (era in ("5.15", "6.17"))


def test_check_verdicts(make_loaders, tmp_path):
    mods = make_loaders(build_root(tmp_path / "ok", count=10, maximum=100)).modules
    assert mods.conntrack.check()["verdict"] == "ok"
    mods = make_loaders(build_root(tmp_path / "warn", count=80, maximum=100)).modules
    assert mods.conntrack.check()["verdict"] == "warning"
    assert mods.conntrack.check(warning=85, critical=95)["verdict"] == "ok"
    mods = make_loaders(build_root(tmp_path / "crit", count=10, maximum=100, drop=1)).modules
    ret = mods.conntrack.check()
    assert ret["verdict"] == "critical"
    assert any("dropped" in reason for reason in ret["reasons"])
    mods = make_loaders(build_root(tmp_path / "early", count=10, maximum=100, early_drop=2)).modules
    assert mods.conntrack.check()["verdict"] == "warning"
    with pytest.raises(SaltInvocationError):
        mods.conntrack.check(warning=95, critical=90)
    with pytest.raises(SaltInvocationError):
        mods.conntrack.check(warning="lots")


def test_recommend_classic_formula(make_loaders, tmp_path):
    # 64 GiB of MemTotal on 64-bit: the textbook example.
    root = build_root(tmp_path, maximum=262144, buckets=262144, mem_kb=64 * 1024 * 1024, slab_size=320)
    ret = make_loaders(root).modules.conntrack.recommend(arch=64)
    assert ret["max"] == 2097152
    assert ret["hashsize"] == 262144
    assert ret["entry_size"] == 320
    assert ret["memory_bytes"] == 2097152 * 320 + 262144 * 8
    assert ret["needs_change"] is True
    assert "16384" in ret["rules"]["max"]
    assert make_loaders(root).modules.conntrack.recommend(ram="64G", arch=32)["max"] == 4194304
    assert make_loaders(root).modules.conntrack.recommend(ram="64G", hash_ratio=1)["hashsize"] == 2097152
    with pytest.raises(SaltInvocationError):
        make_loaders(root).modules.conntrack.recommend(ram="lots")
    with pytest.raises(SaltInvocationError):
        make_loaders(root).modules.conntrack.recommend(arch=48)


def test_recommend_already_right(make_loaders, tmp_path):
    root = build_root(tmp_path, maximum=2097152, buckets=262144, mem_kb=64 * 1024 * 1024)
    ret = make_loaders(root).modules.conntrack.recommend(arch=64)
    assert ret["needs_change"] is False


@pytest.mark.parametrize("era", ["centos5", "6.17"])
def test_timeouts_short_names(make_loaders, tmp_path, era):
    mods = make_loaders(build_root(tmp_path, era)).modules
    t = mods.conntrack.timeouts()
    assert t["tcp_established"] == 432000
    assert t["udp"] == 30 and t["udp_stream"] == 120 and t["generic"] == 600
    names = mods.conntrack.sysctl_names()
    prefix = "net.ipv4.netfilter.ip_conntrack_" if era == "centos5" else "net.netfilter.nf_conntrack_"
    assert names["tcp_established"] == prefix + "tcp_timeout_established"
    assert names["max"] == prefix + "max"


@pytest.mark.parametrize("era", ["centos5", "4.19", "6.17"])
def test_summary_on_fixture_table(make_loaders, tmp_path, era):
    mods = make_loaders(build_root(tmp_path, era)).modules
    ret = mods.conntrack.summary(top=2)
    assert ret["total"] == 6
    assert ret["by_protocol"] == {"tcp": 3, "udp": 1, "icmp": 1, "unknown": 1}
    assert ret["tcp_states"] == {"ESTABLISHED": 1, "SYN_SENT": 1, "TIME_WAIT": 1}
    assert (ret["assured"], ret["unreplied"]) == (2, 2)
    assert ret["top"]["src"][0] == ["10.0.0.1", 5]
    assert ret["top"]["dport"][0] == ["tcp/443", 2]
    assert len(ret["top"]["dst"]) == 2
    assert ret["approximate"] is False


def test_set_functions_write_and_validate(make_loaders, tmp_path):
    root = build_root(tmp_path, maximum=1000, buckets=1000, mem_kb=64 * 1024 * 1024)
    mods = make_loaders(root).modules
    assert mods.conntrack.set_max(2000) == {"old": 1000, "new": 2000}
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "2000\n"
    assert mods.conntrack.set_buckets(4096) == {"old": 1000, "new": 4096}
    assert mods.conntrack.set_timeout("tcp_established", "3600") == {"old": 432000, "new": 3600}
    for bad in (-1, 0, "12abc", 1.5, True, "1; reboot", 2**31):
        with pytest.raises(SaltInvocationError):
            mods.conntrack.set_max(bad)
    with pytest.raises(SaltInvocationError, match="ceiling"):
        mods.conntrack.set_max(2097153)
    assert mods.conntrack.set_max(2097153, force=True)["new"] == 2097153
    with pytest.raises(SaltInvocationError, match="unknown conntrack timeout"):
        mods.conntrack.set_timeout("../../max", 5)
    with pytest.raises(SaltInvocationError):
        mods.conntrack.set_timeout("udp", 0)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_udp_timeout").read_text() == "30\n"


def test_global_knobs_refused_inside_netns(make_loaders, tmp_path):
    mods = make_loaders(build_root(tmp_path, maximum=1000, netns=True)).modules
    assert mods.conntrack.status()["initial_netns"] is False
    with pytest.raises(CommandExecutionError, match="network namespace"):
        mods.conntrack.set_max(2000)
    with pytest.raises(CommandExecutionError, match="network namespace"):
        mods.conntrack.set_buckets(2000)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"


def test_dependents_in_saved_rules(make_loaders, tmp_path):
    root = build_root(tmp_path)
    rules = tmp_path / "etc/sysconfig/iptables"
    rules.parent.mkdir(parents=True)
    rules.write_text(
        "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n"
        "*filter\n:INPUT ACCEPT [0:0]\n"
        "-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n"
        "-A INPUT -p tcp --dport 22 -j ACCEPT\n"
        "-A INPUT -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n"
    )
    nft = tmp_path / "etc/nftables.conf"
    nft.write_text("table inet filter {\n chain input {\n  ct state established accept\n  tcp dport 22 accept\n }\n}\n")
    found = [d for d in make_loaders(root).modules.conntrack.dependents() if d["source"].startswith(str(tmp_path))]
    whys = sorted(d["why"] for d in found)
    assert whys == ["conntrack match (-m conntrack)", "nft ct expression", "rule in the nat table", "state match (-m state)"]
    assert not any("--dport 22" in d["rule"] for d in found)


def test_loadable_but_not_loaded_is_a_clear_error(make_loaders, tmp_path):
    release = __import__("os").uname().release
    dep = tmp_path / f"lib/modules/{release}/modules.dep"
    dep.parent.mkdir(parents=True)
    dep.write_text("kernel/net/netfilter/nf_conntrack.ko.xz: kernel/lib/libcrc32c.ko.xz\n")
    (tmp_path / "proc").mkdir()
    mods = make_loaders(tmp_path).modules
    with pytest.raises(CommandExecutionError, match="not loaded"):
        mods.conntrack.status()


def test_no_conntrack_at_all_disables_the_module(make_loaders, tmp_path):
    (tmp_path / "proc").mkdir()
    mods = make_loaders(tmp_path).modules
    assert "conntrack.status" not in mods
    assert "no connection tracking" in mods.missing_fun_string("conntrack.status")


def test_test_mode_checks_everything_and_writes_nothing(make_loaders, tmp_path):
    root = build_root(tmp_path, count=500, maximum=1000, buckets=1000, mem_kb=64 * 1024 * 1024)
    mods = make_loaders(root).modules
    assert mods.conntrack.set_max(4000, test=True) == {"old": 1000, "new": 4000}
    assert mods.conntrack.set_buckets(4096, test=True) == {"old": 1000, "new": 4096}
    assert mods.conntrack.set_timeout("udp", 60, test=True) == {"old": 30, "new": 60}
    with pytest.raises(SaltInvocationError, match="ceiling"):
        mods.conntrack.set_max(2097153, test=True)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"
    assert (tmp_path / "sys/module/nf_conntrack/parameters/hashsize").read_text() == "1000\n"
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_udp_timeout").read_text() == "30\n"


def test_max_below_the_entries_held_is_refused(make_loaders, tmp_path):
    mods = make_loaders(build_root(tmp_path, count=500, maximum=1000)).modules
    with pytest.raises(SaltInvocationError, match="500 entries"):
        mods.conntrack.set_max(100)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"
    assert mods.conntrack.set_max(100, force=True) == {"old": 1000, "new": 100}


def test_unreadable_numbers_are_command_errors(make_loaders, tmp_path):
    root = build_root(tmp_path)
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_count").write_text("garbage\n")
    with pytest.raises(CommandExecutionError, match="cannot read a number"):
        make_loaders(root).modules.conntrack.status()
