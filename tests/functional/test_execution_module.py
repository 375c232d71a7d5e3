"""The execution module through the real Salt loader, on fixture trees."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack import report
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
    assert ret["verdict"] == "critical" and ret["recent"] is None  # first sample: since boot counts
    assert any("dropped since boot" in reason for reason in ret["reasons"])
    mods = make_loaders(build_root(tmp_path / "early", count=10, maximum=100, early_drop=2)).modules
    assert mods.conntrack.check()["verdict"] == "warning"
    for bad in (
        {"warning": 95, "critical": 90},
        {"warning": "lots"},
        {"critical": float("nan")},
        {"warning": True},
        {"window": 5.0},
        {"window": -1},
    ):
        with pytest.raises(SaltInvocationError):
            mods.conntrack.check(**bad)


def test_check_follows_current_drops(make_loaders, tmp_path):
    """Drops count while they are new; a recovered host is ok with a note.
    (A fresh Loaders wipes the cachedir; the kernel tier shows separate salt-call runs.)"""
    root = build_root(tmp_path, count=10, maximum=100, drop=5)
    mods = make_loaders(root).modules
    assert mods.conntrack.status()["recent"] is None
    ret = mods.conntrack.check(window=0)
    assert ret["verdict"] == "ok" and ret["recent"]["drop"] == 0 and ret["drop"] == 5
    assert any("the 5 since boot are past" in r for r in ret["reasons"]), ret
    build_root(root, count=10, maximum=100, drop=9, early_drop=2)
    ret = mods.conntrack.check(window=0)
    assert ret["verdict"] == "critical" and (ret["recent"]["drop"], ret["recent"]["early_drop"]) == (4, 2)
    assert any(r.startswith("4 packets dropped in the last") and "9 since boot" in r for r in ret["reasons"]), ret
    st = mods.conntrack.status(window=0)
    assert st["recent"]["drop"] == 0 and st["stats"]["drop"] == 9
    # A module reload resets the counters: a new baseline, not a negative rise.
    build_root(root, count=10, maximum=100, drop=1)
    assert mods.conntrack.status(window=0)["recent"] is None
    assert mods.conntrack.status(window=0)["recent"]["drop"] == 0
    history = os.listdir(os.path.join(mods.conntrack.status.__globals__["__opts__"]["cachedir"], "conntrack"))
    assert [name for name in history if name.startswith("status-") and name.endswith(".jsonl")]


# The verdict lives once: check, the fleet runner's row and the beacon's
# usage_high event give the same level for the same status.
VERDICT_CASES = [
    # count, max, warning, critical, level
    (10, 1000, 75, 90, "ok"),
    (749, 1000, 75, 90, "ok"),
    (750, 1000, 75, 90, "warning"),
    (899, 1000, 75, 90, "warning"),
    (900, 1000, 75, 90, "critical"),
    (1000, 1000, 75, 90, "critical"),
    (600, 1000, 60, 60, "critical"),
    (500, 1000, 40, 80, "warning"),
    (333, 1000, 33.3, 90, "warning"),
    (332, 1000, 33.3, 90, "ok"),
]


@pytest.mark.parametrize("count,maximum,warning,critical,level", VERDICT_CASES)
def test_one_verdict_for_check_runner_and_beacon(make_loaders, tmp_path, count, maximum, warning, critical, level):
    root = build_root(tmp_path, count=count, maximum=maximum)
    os.makedirs(f"{root}/var/log")
    open(f"{root}/var/log/kern.log", "w", encoding="utf-8").close()
    mods = make_loaders(root).modules
    checked = mods.conntrack.check(warning=warning, critical=critical)
    status = mods.conntrack.status()
    row = report.fleet.row("m1", status, warning, critical, "mine")
    assert checked["reasons"] == row["reasons"]  # the same words, not only the same level
    checked, row = checked["verdict"], row["verdict"]
    events = make_loaders(root).beacons["conntrack.beacon"](
        [{"source": "auto"}, {"usage_warning": warning}, {"usage_critical": critical}, {"status_interval": 0}]
    )
    beacon = next((e["level"] for e in events if e["tag"] == "usage_high"), "ok")
    assert (checked, row, beacon) == (level, level, level)


@pytest.mark.parametrize(
    "era,release,ratio",
    [("centos5", "2.6.18-419.el5", 8), ("4.19", "4.19.0-26-amd64", 4), ("6.17", "6.17.0-1-amd64", 1)],
)
def test_recommend_follows_the_kernels_own_ratio(make_loaders, tmp_path, era, release, ratio):
    # 64 GiB of MemTotal on 64-bit: max 2097152 (the textbook example).
    root = build_root(tmp_path, era, maximum=65536, buckets=8192, mem_kb=64 * 1024 * 1024, slab_size=320)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text(release + "\n")
    ret = make_loaders(root).modules.conntrack.recommend(arch=64)
    assert ret["max"] == 2097152
    assert ret["hashsize"] == 2097152 // ratio
    assert ret["rules"]["hashsize"] == ret["bucket_rule"]
    assert {8: "2.6-era ip_conntrack", 4: "before 5.15", 1: "5.15 and later"}[ratio] in ret["bucket_rule"]
    assert ret["entry_size"] == 320
    assert ret["memory_bytes"] == 2097152 * 320 + ret["hashsize"] * 8
    assert ret["needs_change"] is True
    assert "16384" in ret["rules"]["max"]


def test_recommend_never_fewer_buckets_and_overrides(make_loaders, tmp_path):
    # This machine's shape: 24 GiB, kernel 6.18, 262144 buckets = max.
    root = build_root(tmp_path, maximum=262144, buckets=262144, mem_kb=24 * 1024 * 1024)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.18.0-1-amd64\n")
    mods = make_loaders(root).modules
    ret = mods.conntrack.recommend(arch=64)
    assert (ret["max"], ret["hashsize"]) == (786432, 786432)
    ret = mods.conntrack.recommend(arch=64, hash_ratio=8)
    assert (
        ret["hashsize"] == 262144
        and "never fewer buckets" in ret["bucket_rule"]
        and "hash_ratio=8" in ret["bucket_rule"]
    )
    assert mods.conntrack.recommend(ram="64G", arch=32)["max"] == 4194304
    assert mods.conntrack.recommend(ram="64G", hash_ratio="2")["hashsize"] == 1048576
    for bad in ({"ram": "lots"}, {"arch": 48}, {"hash_ratio": 0}, {"hash_ratio": 8.0}, {"ram": 64.0}):
        with pytest.raises(SaltInvocationError):
            mods.conntrack.recommend(**bad)


def test_recommend_already_right(make_loaders, tmp_path):
    root = build_root(tmp_path, maximum=2097152, buckets=2097152, mem_kb=64 * 1024 * 1024)
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
    with pytest.raises(CommandExecutionError, match="ceiling"):
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
    found = [d for d in make_loaders(root).modules.conntrack_fw.dependents() if d["source"].startswith(str(tmp_path))]
    whys = sorted(d["why"] for d in found)
    assert whys == [
        "conntrack match (-m conntrack)",
        "nft ct expression",
        "rule in the nat table",
        "state match (-m state)",
    ]
    assert not any("--dport 22" in d["rule"] for d in found)
    view = make_loaders(root).modules.conntrack.dependents()
    assert view["rules"] == make_loaders(root).modules.conntrack_fw.dependents()
    assert str(tmp_path / "etc/nftables.conf") in view["read"]
    assert "rule(s) need conntrack, in " in view["comment"] and str(nft) in view["comment"]


def test_no_dependents_says_what_was_read(make_loaders, tmp_path, monkeypatch):
    """An empty answer names what was checked, so 'nothing' is not mistaken for 'not looked'."""
    from saltext_conntrack.common import commands
    from saltext_conntrack.firewall.dependents import SAVED_RULES

    root = build_root(tmp_path)
    for saved in SAVED_RULES:
        (tmp_path / saved.lstrip("/")).unlink(missing_ok=True)
    monkeypatch.setattr(commands, "which", lambda name: None)  # no live ruleset tool on this "host"
    view = make_loaders(root).modules.conntrack.dependents()
    assert view == {
        "rules": [],
        "read": [],
        "comment": "nothing to read: no iptables-save, ip6tables-save or nft answered and no saved rules "
        "file exists, so no rule was checked",
    }
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/nftables.conf").write_text("table inet filter {\n chain input {\n  tcp dport 22 accept\n }\n}\n")
    view = make_loaders(root).modules.conntrack.dependents()
    assert view["rules"] == [] and view["comment"] == f"no rule needs conntrack in {tmp_path}/etc/nftables.conf"


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
    test = {"test": True}
    assert mods.conntrack.set_max(4000, test=True) == {
        "old": 1000, "new": 4000, **test, "comment": "test=True: max would be 4000 (now 1000); nothing written"
    }  # fmt: skip
    assert mods.conntrack.set_buckets(4096, test=True)["comment"].startswith("test=True: buckets would be 4096")
    assert mods.conntrack.set_timeout("udp", 60, test=True)["comment"] == (
        "test=True: timeout udp would be 60 (now 30); nothing written"
    )
    assert (
        mods.conntrack.set_timeout("udp", 30, test=True)["comment"] == "test=True: timeout udp already; nothing written"
    )
    with pytest.raises(CommandExecutionError, match="ceiling"):
        mods.conntrack.set_max(2097153, test=True)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"
    assert (tmp_path / "sys/module/nf_conntrack/parameters/hashsize").read_text() == "1000\n"
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_udp_timeout").read_text() == "30\n"


def test_max_below_the_entries_held_is_refused(make_loaders, tmp_path):
    mods = make_loaders(build_root(tmp_path, count=500, maximum=1000)).modules
    with pytest.raises(CommandExecutionError, match="500 entries"):
        mods.conntrack.set_max(100)
    assert (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"
    assert mods.conntrack.set_max(100, force=True) == {"old": 1000, "new": 100}


def test_unreadable_numbers_are_command_errors(make_loaders, tmp_path):
    root = build_root(tmp_path)
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_count").write_text("garbage\n")
    with pytest.raises(CommandExecutionError, match="cannot read a number"):
        make_loaders(root).modules.conntrack.status()


class _Time:
    """A clock the test sets."""

    def __init__(self, now):
        self.now = now

    def time(self):
        return self.now


def test_check_warns_of_a_table_filling_before_the_first_drop(make_loaders, tmp_path, monkeypatch):
    root = build_root(tmp_path, count=100, maximum=1000)
    mods = make_loaders(root).modules
    clock = _Time(1700000000.0)
    monkeypatch.setattr("time.time", clock.time)  # every loaded copy of the module reads this clock
    for step in range(6):  # 10 entries/s, a sample every 10 s
        build_root(root, count=100 + 100 * step, maximum=1000)
        clock.now = 1700000000.0 + 10 * step
        st = mods.conntrack.status()
    assert st["trend"]["count_per_s"] == 10.0 and st["trend"]["full_in"] == 40.0 and st["trend"]["samples"] == 6
    ret = mods.conntrack.check()
    assert ret["verdict"] == "critical" and ret["drop"] == 0, ret  # 60%: usage alone says ok
    assert ret["reasons"][0].startswith("the table is full in 40 s at the current rise of 10.0 entries/s")
    assert ret["trend"]["full_in"] == 40.0
    assert mods.conntrack.check(full_in_critical=30)["verdict"] == "warning"
    assert mods.conntrack.check(full_in_warning=None, full_in_critical=None)["verdict"] == "ok"
    assert any("below the" in note and "conntrack.recommend" in note for note in ret["notes"]), ret
    result = mods.conntrack.diagnose(walk=False)
    found = {f["id"]: f for f in result["findings"]}
    assert result["trend"]["full_in"], result
    assert found["filling"]["severity"] == "critical" and found["filling"]["evidence"]["full_in"] == 40.0
    (tmp_path / "textfile").mkdir()
    mods.conntrack.textfile(path="/textfile/c.prom", walk=False)
    text = (tmp_path / "textfile" / "c.prom").read_text()
    assert "saltext_conntrack_full_in_seconds 40.0" in text and "saltext_conntrack_count_rate 10.0" in text
    assert 'saltext_conntrack_finding{id="filling"} 3' in text
