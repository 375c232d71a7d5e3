"""The conntrack states through the real Salt loader (state.single), on fixture hosts."""

import os
import stat

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.persistence import tuning
from tests.support.hosts import MODULES_IN_USE, SAVED_RULES, fake_bin, host_root, modular_kernel, tree_snapshot


def read(root, rel):
    with open(os.path.join(str(root), rel), encoding="utf-8") as fh:
        return fh.read()


def knob(root, name):
    return int(read(root, f"proc/sys/net/netfilter/nf_conntrack_{name}"))


@pytest.fixture
def host(tmp_path, make_loaders):
    # a modular kernel: modprobe.d options and the udev rule apply on module load
    root = modular_kernel(host_root(tmp_path / "root", udev=True, rhel=True, maximum=65536, buckets=16384,
                                    mem_kb=16 * 1024 * 1024))  # fmt: skip
    return root, make_loaders(root)


def test_tuned_builtin_kernel_skips_modprobe_and_udev(tmp_path, make_loaders):
    """No /proc/modules, /sys/module/nf_conntrack present: conntrack is built in (as on this VM)."""
    root = host_root(tmp_path / "root", udev=True, rhel=True, maximum=65536, buckets=16384, mem_kb=16 * 1024 * 1024)
    assert not os.path.exists(os.path.join(root, "proc/modules"))
    states = make_loaders(root).states
    args = {"name": "size", "max": 131072, "buckets": 32768}
    dry = states.conntrack.tuned(test=True, **args)
    ret = states.conntrack.tuned(**args)
    assert ret.result is True, ret.comment
    assert dry.changes == ret.changes
    assert "built into this kernel" in ret.comment and "built into this kernel" in dry.comment
    assert not os.path.exists(os.path.join(root, "etc/modprobe.d/conntrack.conf"))
    assert not os.path.exists(os.path.join(root, "etc/udev/rules.d/90-conntrack-sysctl.rules"))
    assert not any(path.startswith(("/etc/modprobe.d", "/etc/udev")) for path in ret.changes)
    assert "net.netfilter.nf_conntrack_max = 131072\n" in read(root, "etc/sysctl.d/90-conntrack.conf")


def test_tuned_applies_persists_and_survives_reload(host):
    root, loaders = host
    states = loaders.states
    # sysctl.d file with a foreign line that must stay byte for byte
    with open(os.path.join(root, "etc/sysctl.d/90-conntrack.conf"), "w", encoding="utf-8") as fh:
        fh.write("# mine\nnet.netfilter.nf_conntrack_max=1000\nvm.overcommit_memory = 1\n")
    os.chmod(os.path.join(root, "etc/sysctl.d/90-conntrack.conf"), 0o640)
    args = {"name": "size", "max": "auto", "buckets": 131072, "timeouts": {"tcp_established": 3600, "udp": 45}}
    before = tree_snapshot(root)
    dry = states.conntrack.tuned(test=True, **args)
    assert dry.result is None
    assert tree_snapshot(root) == before, "test=True wrote something"
    ret = states.conntrack.tuned(**args)
    assert ret.result is True, ret.comment
    # test=True reported exactly what the real run changed
    assert dry.changes == ret.changes
    # 16 GiB on 64-bit: 16 GiB / 16384 / 2
    assert ret.changes["max"] == {"old": 65536, "new": 524288}
    assert ret.changes["timeout tcp_established"] == {"old": 432000, "new": 3600}
    assert knob(root, "max") == 524288 and knob(root, "tcp_timeout_established") == 3600
    assert knob(root, "udp_timeout") == 45
    assert int(read(root, "sys/module/nf_conntrack/parameters/hashsize")) == 131072
    sysctl = read(root, "etc/sysctl.d/90-conntrack.conf")
    assert sysctl.startswith("# mine\nnet.netfilter.nf_conntrack_max = 524288\nvm.overcommit_memory = 1\n")
    assert "net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n" in sysctl
    assert "net.netfilter.nf_conntrack_udp_timeout = 45\n" in sysctl
    assert stat.S_IMODE(os.stat(os.path.join(root, "etc/sysctl.d/90-conntrack.conf")).st_mode) == 0o640
    assert "options nf_conntrack hashsize=131072\n" in read(root, "etc/modprobe.d/conntrack.conf")
    rule = read(root, "etc/udev/rules.d/90-conntrack-sysctl.rules")
    assert 'KERNEL=="nf_conntrack"' in rule and "--prefix=/net/netfilter" in rule
    cfg = read(root, "etc/sysconfig/iptables-config")
    assert 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"\n' in cfg and "#IPTABLES_SYSCTL_LOAD_LIST" not in cfg
    assert 'IP6TABLES_SYSCTL_LOAD_LIST=".nf_conntrack"' in read(root, "etc/sysconfig/ip6tables-config")
    again = states.conntrack.tuned(**args)
    assert again.result is True and again.changes == {}
    assert states.conntrack.tuned(test=True, **args).result is True


def test_tuned_test_mode_sees_a_wrong_file_value(host):
    """sysctl.present's test mode misses a wrong value in the file; this does not."""
    root, loaders = host
    args = {"name": "t", "timeouts": {"tcp_established": 3600}, "survive_reload": False}
    assert loaders.states.conntrack.tuned(**args).result is True
    path = os.path.join(root, "etc/sysctl.d/90-conntrack.conf")
    text = read(root, "etc/sysctl.d/90-conntrack.conf").replace("= 3600", "= 99")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    dry = loaders.states.conntrack.tuned(test=True, **args)
    assert dry.result is None
    assert dry.changes == {"/etc/sysctl.d/90-conntrack.conf": {
        "old": {"net.netfilter.nf_conntrack_tcp_timeout_established": "99"},
        "new": {"net.netfilter.nf_conntrack_tcp_timeout_established": "3600"}}}  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        ({"max": -5}, "max must be a whole number from 1"),
        ({"max": "lots"}, "max must be a whole number"),
        ({"max": 1.5}, "max must be a whole number"),
        ({"max": "1_000"}, "max must be a whole number"),
        ({"max": "\uff11\uff10\uff10\uff10"}, "max must be a whole number"),
        ({"max": True}, "max must be a whole number"),
        ({"timeouts": {"tcp_forever": 10}}, "unknown conntrack timeout"),
        ({"timeouts": {"udp": 0}}, "from 1 to"),
        ({"timeouts": {"udp": float("nan")}}, "whole number"),
        ({"timeouts": "udp=30"}, "timeouts must be a mapping"),
        ({"max": 1000, "persist": "/etc/../root/x"}, "'..'"),
        ({"max": 1000, "persist": "/etc/passwd"}, "file must be"),
        ({"max": 1000, "persist": "/etc/sysctl.d/x\x00.conf"}, "NUL"),
        ({"max": 1000, "persist": 5}, "persist must be a string"),
        ({"max": 1000, "survive_reload": "false"}, "survive_reload must be true or false"),
        ({"max": 1000, "force": "yes"}, "force must be true or false"),
    ],
)
def test_tuned_bad_input_touches_nothing(host, args, message):
    root, loaders = host
    before = tree_snapshot(root)
    ret = loaders.states.conntrack.tuned(name="bad", **args)
    assert ret.result is False
    assert message in ret.comment
    assert tree_snapshot(root) == before


def test_tuned_not_loaded_is_pending_centos5_sysctl_conf(tmp_path, make_loaders):
    root = host_root(tmp_path / "r", era="centos5", sysctl_d=False, loaded=False)
    states = make_loaders(root).states
    ret = states.conntrack.tuned(name="pending", max=131072, timeouts={"tcp_established": 3600}, survive_reload=False)
    assert ret.result is True, ret.comment
    assert "pending" in ret.comment
    text = read(root, "etc/sysctl.conf")
    # centos5 has no sysctl.d: /etc/sysctl.conf, original lines kept
    assert text.startswith("# System defaults\nvm.swappiness = 10\n")
    # ip_conntrack.ko is what modules.dep has: the legacy names, which sysctl -p knows there
    assert "net.ipv4.netfilter.ip_conntrack_max = 131072\n" in text
    assert "net.ipv4.netfilter.ip_conntrack_tcp_timeout_established = 3600\n" in text
    assert "nf_conntrack" not in text
    again = states.conntrack.tuned(name="pending", max=131072, timeouts={"tcp_established": 3600}, survive_reload=False)
    assert again.result is True and again.changes == {}
    # timeouts ip_conntrack never had are refused, not persisted for sysctl -p to fail on
    before = tree_snapshot(root)
    for short in ("icmpv6", "dccp_open", "gre", "sctp_established", "tcp_unacknowledged"):
        ret = states.conntrack.tuned(name="pending", timeouts={short: 30}, survive_reload=False)
        assert ret.result is False and "unknown conntrack timeout" in ret.comment, short
    assert tree_snapshot(root) == before
    ok = states.conntrack.tuned(name="pending", timeouts={"udp_stream": 180, "generic": 600}, survive_reload=False)
    assert ok.result is True, ok.comment
    assert "net.ipv4.netfilter.ip_conntrack_udp_timeout_stream = 180\n" in read(root, "etc/sysctl.conf")


def test_tuned_not_loaded_modern_knows_every_timeout(tmp_path, make_loaders):
    root = host_root(tmp_path / "r", loaded=False)
    ret = make_loaders(root).states.conntrack.tuned(name="p", timeouts={"icmpv6": 30}, survive_reload=False)
    assert ret.result is True, ret.comment
    assert "net.netfilter.nf_conntrack_icmpv6_timeout = 30\n" in read(root, "etc/sysctl.d/90-conntrack.conf")


def test_tuned_legacy_names_on_centos5(tmp_path, make_loaders):
    root = host_root(tmp_path / "r", era="centos5", sysctl_d=False, maximum=65536)
    ret = make_loaders(root).states.conntrack.tuned(
        name="c5", max=70000, timeouts={"tcp_established": 7200}, survive_reload=False
    )
    assert ret.result is True, ret.comment
    text = read(root, "etc/sysctl.conf")
    assert "net.ipv4.netfilter.ip_conntrack_max = 70000\n" in text
    assert "net.ipv4.netfilter.ip_conntrack_tcp_timeout_established = 7200\n" in text
    assert int(read(root, "proc/sys/net/ipv4/netfilter/ip_conntrack_max")) == 70000


def test_iptables_config(host):
    root, loaders = host
    states = loaders.states
    path = "/etc/sysconfig/iptables-config"
    original = read(root, "etc/sysconfig/iptables-config")
    settings = {"IPTABLES_MODULES_UNLOAD": False, "IPTABLES_SYSCTL_LOAD_LIST": ".nf_conntrack",
                "IPTABLES_RESTORE_WAIT": 600, "IPTABLES_MODULES": "nf_conntrack_ftp nf_nat_ftp"}  # fmt: skip
    dry = states.conntrack.iptables_config(name=path, settings=settings, test=True)
    assert dry.result is None and read(root, "etc/sysconfig/iptables-config") == original
    ret = states.conntrack.iptables_config(name=path, settings=settings)
    assert ret.result is True, ret.comment
    assert ret.changes == dry.changes
    assert ret.changes["IPTABLES_MODULES_UNLOAD"] == {"old": "yes", "new": "no"}
    text = read(root, "etc/sysconfig/iptables-config")
    expected = (
        original.replace('IPTABLES_MODULES=""', 'IPTABLES_MODULES="nf_conntrack_ftp nf_nat_ftp"')
        .replace('IPTABLES_MODULES_UNLOAD="yes"', 'IPTABLES_MODULES_UNLOAD="no"')
        .replace('#IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"', 'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack"')
        .replace("#IPTABLES_RESTORE_WAIT=600", 'IPTABLES_RESTORE_WAIT="600"')
    )
    assert text == expected  # commented defaults replaced in place, everything else byte for byte
    assert stat.S_IMODE(os.stat(os.path.join(root, "etc/sysconfig/iptables-config")).st_mode) == 0o600
    assert states.conntrack.iptables_config(name=path, settings=settings).changes == {}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"IPTABLES_MODULES_UNLOAD": "no; rm -rf /"}, "only yes or no"),
        ({"IPTABLES_MODULES": "nf_nat $(reboot)"}, "only module names"),
        ({"IPTABLES_MODULES": "nf_nat`id`"}, "only module names"),
        ({"IPTABLES_RESTORE_WAIT": "10s"}, "only digits"),
        ({"IPTABLES_SYSCTL_LOAD_LIST": '.nf_conntrack"; echo pwned; "'}, "sysctl name parts"),
        ({"IPTABLES_BOGUS": "yes"}, "unknown iptables-config key"),
        ({"IPTABLES_SAVE_ON_STOP": "yes", "IPTABLES_MODULES": "a|b"}, "only module names"),
    ],
)
def test_iptables_config_refuses_shell(host, settings, message):
    root, loaders = host
    before = tree_snapshot(root)
    ret = loaders.states.conntrack.iptables_config(name="/etc/sysconfig/iptables-config", settings=settings)
    assert ret.result is False and message in ret.comment
    assert tree_snapshot(root) == before


def test_iptables_config_unquoted_value_already_held_is_no_change(host):
    root, loaders = host
    path = os.path.join(root, "etc/sysconfig/iptables-config")
    text = read(root, "etc/sysconfig/iptables-config").replace('IPTABLES_SAVE_ON_STOP="no"', "IPTABLES_SAVE_ON_STOP=no")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    before = tree_snapshot(root)
    for test in (True, False):
        ret = loaders.states.conntrack.iptables_config(
            name="/etc/sysconfig/iptables-config", settings={"IPTABLES_SAVE_ON_STOP": False}, test=test
        )
        assert ret.result is True and ret.changes == {}, ret.changes
    assert tree_snapshot(root) == before  # the line stays as the operator wrote it


def test_persist_sysctl_bounds_per_key(host):
    root, loaders = host
    files = loaders.modules.conntrack_files
    before = tree_snapshot(root)
    for values in ({"net.netfilter.nf_conntrack_max": 0}, {"net.netfilter.nf_conntrack_udp_timeout": 0},
                   {"net.netfilter.nf_conntrack_buckets": 2**31 - 1},
                   {"net.netfilter.nf_conntrack_tcp_timeout_established": 2**31 - 1}):  # fmt: skip
        with pytest.raises(SaltInvocationError):
            files.persist_sysctl(values)
    assert tree_snapshot(root) == before
    assert files.persist_sysctl({"net.netfilter.nf_conntrack_max": 1})["written"] is True


def test_blacklist_and_lift(host):
    root, loaders = host
    states = loaders.states
    path = os.path.join(root, "etc/modprobe.d/conntrack-blacklist.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# local\nblacklist pcspkr\n")
    ret = states.conntrack.blacklisted(name="nf_conntrack", names=["nf_conntrack", "xt_state"], hard=True)
    assert ret.result is True, ret.comment
    assert read(root, "etc/modprobe.d/conntrack-blacklist.conf") == (
        "# local\nblacklist pcspkr\nblacklist nf_conntrack\ninstall nf_conntrack /bin/false\n"
        "blacklist xt_state\ninstall xt_state /bin/false\n"
    )
    assert set(ret.changes) == {"blacklist nf_conntrack", "install nf_conntrack /bin/false",
                                "blacklist xt_state", "install xt_state /bin/false"}  # fmt: skip
    assert states.conntrack.blacklisted(name="x", names=["nf_conntrack", "xt_state"], hard=True).changes == {}
    # hard: false drops the install line it no longer wants
    soft = states.conntrack.blacklisted(name="x", names=["nf_conntrack"], hard=False)
    assert soft.changes == {"install nf_conntrack /bin/false": {"old": "present", "new": "absent"}}
    assert soft.result is True and "a soft blacklist does not stop dependency loads" in soft.comment
    lift = states.conntrack.not_blacklisted(name="nf_conntrack", test=True)
    assert lift.result is None and "blacklist nf_conntrack" in read(root, "etc/modprobe.d/conntrack-blacklist.conf")
    lift = states.conntrack.not_blacklisted(name="nf_conntrack")
    assert lift.result is True and lift.changes == {"blacklist nf_conntrack": {"old": "present", "new": "absent"}}
    assert read(root, "etc/modprobe.d/conntrack-blacklist.conf") == (
        "# local\nblacklist pcspkr\nblacklist xt_state\ninstall xt_state /bin/false\n"
    )
    # a blacklist in a file the state does not own: reported, not hidden
    with open(os.path.join(root, "etc/modprobe.d/other.conf"), "w", encoding="utf-8") as fh:
        fh.write("blacklist xt_state\n")
    ret = states.conntrack.not_blacklisted(name="xt_state")
    assert ret.result is False and "other.conf" in ret.comment
    before = tree_snapshot(root)
    for bad in ("nf conntrack", "../../etc/passwd", "nf_conntrack/x", ""):
        ret = states.conntrack.blacklisted(name=bad)
        assert ret.result is False and "not a kernel module name" in ret.comment, bad
    assert tree_snapshot(root) == before


def test_unloaded_follows_refcounts(tmp_path, make_loaders, monkeypatch):
    root = modular_kernel(host_root(tmp_path / "r"))
    bindir, log = fake_bin(tmp_path, root)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    loaders = make_loaders(root)
    plan = loaders.modules.conntrack_fw.unload_plan()
    order = plan["order"]
    assert order == ["iptable_nat", "nf_conntrack_ipv4", "nf_conntrack_netlink", "xt_CT", "xt_MASQUERADE",
                     "xt_conntrack", "xt_state", "nf_nat", "nf_conntrack", "nf_defrag_ipv4"]  # fmt: skip
    assert "x_tables" not in order  # held by modules outside the chain; nf_defrag_ipv4 only by nf_conntrack
    assert plan["in_use"] == []
    dry = loaders.states.conntrack.unloaded(name="ct", test=True)
    assert dry.result is None and not os.path.exists(log)
    ret = loaders.states.conntrack.unloaded(name="ct")
    assert ret.result is True, ret.comment
    assert ret.changes == {"loaded modules": {"old": order, "new": []}}
    with open(log, encoding="utf-8") as fh:
        assert fh.read().split() == order
    assert "nf_conntrack " not in read(root, "proc/modules")
    again = loaders.states.conntrack.unloaded(name="ct")
    assert again.result is True and again.changes == {} and "not loaded" in again.comment


def test_unloaded_refuses_with_dependents_and_stops_on_rmmod_failure(tmp_path, make_loaders, monkeypatch):
    root = modular_kernel(host_root(tmp_path / "r"), MODULES_IN_USE)
    bindir, log = fake_bin(tmp_path, root)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    os.makedirs(os.path.join(root, "etc/sysconfig"), exist_ok=True)
    with open(os.path.join(root, "etc/sysconfig/iptables"), "w", encoding="utf-8") as fh:
        fh.write(SAVED_RULES)
    states = make_loaders(root).states
    ret = states.conntrack.unloaded(name="ct")
    assert ret.result is False and "need conntrack" in ret.comment and "force" in ret.comment
    assert not os.path.exists(log)
    plan = make_loaders(root).modules.conntrack_fw.unload_plan()
    # rules hold xt_conntrack: it goes last among the consumers, and is flagged
    assert plan["order"][-4:] == ["nf_nat", "xt_conntrack", "nf_conntrack", "nf_defrag_ipv4"]
    assert plan["in_use"] == ["xt_conntrack"]
    # force passes the rule check, but rmmod would refuse xt_conntrack (rules hold it)
    # after unloading the consumers before it: refused before the first rmmod, in
    # test mode too, and nothing is reported as changed.
    for test in (True, False):
        ret = states.conntrack.unloaded(name="ct", force=True, test=test)
        assert ret.result is False, test
        assert "xt_conntrack (refcnt 3) in use" in ret.comment and "nothing was unloaded" in ret.comment
        assert ret.changes == {}
    assert not os.path.exists(log)
    assert make_loaders(root).modules.conntrack_fw.unload_plan()["order"] == plan["order"]


def test_unloaded_builtin_fails_honestly(tmp_path, make_loaders):
    root = host_root(tmp_path / "r")  # no /proc/modules, /sys/module/nf_conntrack exists
    assert not os.path.exists(os.path.join(root, "proc/modules"))
    ret = make_loaders(root).states.conntrack.unloaded(name="ct")
    assert ret.result is False and "built in" in ret.comment and ret.changes == {}


def saved(root, text=SAVED_RULES):
    path = os.path.join(root, "etc/sysconfig/iptables")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path


def test_stateless_refuses_the_lockout(tmp_path, make_loaders):
    """INPUT's policy is DROP: taking out the ESTABLISHED,RELATED ACCEPT would cut
    the host off from the replies to its own connections after the next restore."""
    root = host_root(tmp_path / "r")
    saved(root)
    states = make_loaders(root).states
    before = tree_snapshot(root)
    for test in (True, False):
        ret = states.conntrack.stateless(name="/etc/sysconfig/iptables", test=test)
        assert ret.result is False, test
        assert "replies to its own connections" in ret.comment and "force" in ret.comment
        assert "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT" in ret.comment
        assert ret.changes == {}
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("tail", ["", "-A INPUT -j REJECT --reject-with icmp-host-prohibited\n"])
def test_stateless_keeps_ssh_rule_without_its_new_match(tmp_path, make_loaders, tail):
    """A NEW-only ACCEPT keeps its place without the match; an ESTABLISHED ACCEPT in a chain
    that accepts by policy may go, unless the chain ends with a REJECT."""
    rules = (
        "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT\n"
        "-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n" + tail + "COMMIT\n"
    )
    root = host_root(tmp_path / "r")
    path = saved(root, rules)
    ret = make_loaders(root).states.conntrack.stateless(name="/etc/sysconfig/iptables")
    if tail:
        assert ret.result is False and "line 5" in ret.comment and "line 4" not in ret.comment
        assert open(path, encoding="utf-8").read() == rules
        return
    assert ret.result is True, ret.comment
    assert ret.changes["line 4"] == {"old": "-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT",
                                     "new": "-A INPUT -m tcp -p tcp --dport 22 -j ACCEPT"}  # fmt: skip
    text = open(path, encoding="utf-8").read()
    assert "-A INPUT -m tcp -p tcp --dport 22 -j ACCEPT\n" in text


@pytest.mark.parametrize("mode", ["comment", "remove"])
def test_stateless_rewrites_saved_rules_with_force(tmp_path, make_loaders, mode):
    root = host_root(tmp_path / "r")
    path = saved(root)
    states = make_loaders(root).states
    args = {"name": "/etc/sysconfig/iptables", "mode": mode, "force": True}
    dry = states.conntrack.stateless(test=True, **args)
    assert dry.result is None and read(root, "etc/sysconfig/iptables") == SAVED_RULES
    ret = states.conntrack.stateless(**args)
    assert ret.result is True, ret.comment
    assert ret.changes == dry.changes
    assert set(ret.changes) == {"line 6", "line 8", "line 10"}
    assert ret.changes["line 6"]["old"] == "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT"
    # the SSH rule keeps its place: only its NEW match goes
    assert ret.changes["line 8"]["new"] == "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"
    text = read(root, "etc/sysconfig/iptables")
    active = [line for line in text.splitlines() if line.startswith("-A")]
    assert active == ["-A INPUT -i lo -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                      "-A INPUT -p udp --sport 53 -j ACCEPT"]  # fmt: skip
    if mode == "comment":
        assert "# conntrack.stateless: -A FORWARD -m conntrack --ctstate INVALID -j DROP\n" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "iptables-restore --test" in ret.comment
    assert states.conntrack.stateless(**args).changes == {}
    # nothing stateful left: a run without force has nothing to refuse
    assert states.conntrack.stateless(name="/etc/sysconfig/iptables", mode=mode).result is True


def test_stateless_never_writes_what_restore_rejects(tmp_path, make_loaders):
    root = host_root(tmp_path / "r")
    path = os.path.join(root, "etc/sysconfig/iptables")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    broken = SAVED_RULES.replace("-A INPUT -i lo -j ACCEPT", "-A INPUT -i lo --no-such-option -j ACCEPT")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(broken)
    ret = make_loaders(root).states.conntrack.stateless(name="/etc/sysconfig/iptables", force=True)
    assert ret.result is False and "--test rejects" in ret.comment
    assert read(root, "etc/sysconfig/iptables") == broken


@pytest.mark.parametrize("test", [True, False])
def test_tuned_refusal_reports_no_change_in_either_mode(tmp_path, make_loaders, test):
    """A max below the entries held is refused by set_max: test mode says so too, and the
    failed real run reports no change it never made."""
    root = host_root(tmp_path / "r", maximum=65536, count=50000, mem_kb=16 * 1024 * 1024)
    states = make_loaders(root).states
    before = tree_snapshot(root)
    ret = states.conntrack.tuned(name="size", max=40000, survive_reload=False, test=test)
    assert ret.result is False, ret.comment
    assert "below the 50000 entries" in ret.comment
    assert ret.changes == {}
    assert knob(root, "max") == 65536
    assert tree_snapshot(root) == before
    # above the RAM ceiling: the same verdict in both modes
    ret = states.conntrack.tuned(name="size", max=10**9, survive_reload=False, test=test)
    assert ret.result is False and "ceiling" in ret.comment and ret.changes == {}


def tuning_plan(loaders, root, **request):
    """The core plan behind ``conntrack_files.tune``, with the loader's own runtime calls."""
    request = {"max": None, "buckets": None, "timeouts": None, "persist": None, "survive_reload": True,
               "force": False, **request}  # fmt: skip
    return tuning.plan(str(root), os.uname().release, tuning.RuntimeCalls.of(loaders.modules), request)


def test_tuned_auto_never_lowers(tmp_path, make_loaders):
    """24 GiB on 4.19: max 786432, whose kernel ratio (4) gives 196608 buckets, fewer than the 262144 the host has."""
    root = host_root(tmp_path / "r", maximum=262144, buckets=262144, mem_kb=24 * 1024 * 1024)
    os.makedirs(os.path.join(root, "proc/sys/kernel"), exist_ok=True)
    with open(os.path.join(root, "proc/sys/kernel/osrelease"), "w", encoding="utf-8") as fh:
        fh.write("4.19.0-26-amd64\n")
    loaders = make_loaders(root)
    rec = loaders.modules.conntrack.recommend()
    assert rec["hashsize"] == 262144 and "never fewer buckets" in rec["bucket_rule"]
    plan = tuning_plan(loaders, root, max="auto", buckets="auto")
    assert plan["buckets"] == 262144
    assert plan["max"] == loaders.modules.conntrack.recommend()["max"] > 262144
    ret = loaders.states.conntrack.tuned(name="size", max="auto", buckets="auto", survive_reload=False)
    assert ret.result is True, ret.comment
    assert "buckets" not in ret.changes
    assert int(read(root, "sys/module/nf_conntrack/parameters/hashsize")) == 262144
    # a max above the recommendation stays too
    with open(os.path.join(root, "proc/sys/net/netfilter/nf_conntrack_max"), "w", encoding="utf-8") as fh:
        fh.write("900000\n")
    assert tuning_plan(loaders, root, max="auto")["max"] == 900000
    # an explicit integer is the operator's choice: it may lower
    assert tuning_plan(loaders, root, buckets=65536)["buckets"] == 65536


FAKE_IPT = """\
#!{python}
import os, sys
me = os.path.basename(sys.argv[0])
state = os.path.join({bindir!r}, me.split("-")[0] + ".raw")
rules = open(state).read().splitlines() if os.path.exists(state) else []
if me.endswith("-save"):
    print("*raw")
    print("\\n".join(rules))
    print("COMMIT")
    sys.exit(0)
with open(os.path.join({bindir!r}, "restore.log"), "a") as log:
    text = sys.stdin.read()
    log.write(me + "\\n" + text)
for line in text.splitlines():
    words = line.split()
    if line.startswith("-F "):
        rules = [r for r in rules if not r.startswith("-A " + words[1] + " ")]
    elif line.startswith("-A "):
        rules.append(line)
    elif line.startswith("-I "):
        rules.insert(0, "-A " + line[3:])
    elif line.startswith("-D "):
        rules.remove("-A " + line[3:])
open(state, "w").write("\\n".join(rules) + "\\n")
"""


def test_notrack_iptables_removes_duplicate_jumps(tmp_path, make_loaders, monkeypatch):
    import sys

    root = host_root(tmp_path / "r")
    bindir = tmp_path / "ipt"
    bindir.mkdir()
    for cmd in ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        (bindir / cmd).write_text(FAKE_IPT.format(python=sys.executable, bindir=str(bindir)))
        (bindir / cmd).chmod(0o755)
    for fam in ("iptables", "ip6tables"):
        (bindir / f"{fam}.raw").write_text(
            "-A PREROUTING -j CONNTRACK_NOTRACK\n-A OUTPUT -j CONNTRACK_NOTRACK\n"
            "-A PREROUTING -j CONNTRACK_NOTRACK\n-A OUTPUT -j CONNTRACK_NOTRACK\n"
            "-A OUTPUT -j CONNTRACK_NOTRACK\n"
        )
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    states = make_loaders(root).states
    flows = [{"proto": "udp", "port": 53}]
    ret = states.conntrack.notrack(name="dns", flows=flows, backend="iptables")
    assert ret.result is True and ret.changes, ret.comment
    for fam in ("iptables", "ip6tables"):
        saved = (bindir / f"{fam}.raw").read_text().splitlines()
        assert saved.count("-A PREROUTING -j CONNTRACK_NOTRACK") == 1, saved
        assert saved.count("-A OUTPUT -j CONNTRACK_NOTRACK") == 1, saved
    again = states.conntrack.notrack(name="dns", flows=flows, backend="iptables")
    assert again.result is True and again.changes == {}, again.changes


DEBIAN_NFTABLES_CONF = """\
#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter;
\t}
}
"""
NOTRACK_NFT = "/etc/nftables.d/conntrack-notrack.nft"
INCLUDE = f'include "{NOTRACK_NFT}"\n'


@pytest.mark.parametrize("conf", ["etc/nftables.conf", "etc/sysconfig/nftables.conf"])
def test_notrack_nft_persist_is_included_by_the_boot_config(tmp_path, make_loaders, monkeypatch, conf):
    """Debian's nftables.conf (RHEL's sysconfig/nftables.conf) starts with flush ruleset and
    includes nothing: the persisted file must be included at its end, or boot never loads it."""
    root = host_root(tmp_path / "r")
    bindir, _ = fake_bin(tmp_path, root)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    path = os.path.join(root, conf)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(DEBIAN_NFTABLES_CONF.rstrip("\n"))  # no final newline: the include must not glue on
    os.chmod(path, 0o700)
    states = make_loaders(root).states
    flows = [{"proto": "udp", "port": 53}]
    before = tree_snapshot(root)
    dry = states.conntrack.notrack(name="dns", flows=flows, backend="nft", persist=True, test=True)
    assert dry.result is None, dry.comment
    assert tree_snapshot(root) == before, "test=True wrote something"
    host_conf = "/" + conf
    assert dry.changes[host_conf] == {"old": None, "new": INCLUDE.strip()}
    ret = states.conntrack.notrack(name="dns", flows=flows, backend="nft", persist=True)
    assert ret.result is True, ret.comment
    assert ret.changes == dry.changes
    assert read(root, conf) == DEBIAN_NFTABLES_CONF + INCLUDE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert f"loads {NOTRACK_NFT}" in ret.comment and host_conf in ret.comment
    assert "udp dport 53 notrack" in read(root, NOTRACK_NFT.lstrip("/"))
    again = states.conntrack.notrack(name="dns", flows=flows, backend="nft", persist=True)
    assert again.result is True and again.changes == {}, again.changes
    assert read(root, conf) == DEBIAN_NFTABLES_CONF + INCLUDE


def test_nft_include_moves_an_include_flushed_by_the_ruleset(tmp_path, make_loaders):
    """An include before `flush ruleset` is flushed at boot: it moves to the end, once."""
    root = host_root(tmp_path / "r")
    conf = os.path.join(root, "etc/nftables.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(INCLUDE + DEBIAN_NFTABLES_CONF + INCLUDE + "# end\n" + INCLUDE.replace(".nft", "-x.nft"))
    files = make_loaders(root).modules.conntrack_fw
    res = files.nft_include(test=True)
    assert res["changes"] == {"/etc/nftables.conf": {"old": "not last", "new": INCLUDE.strip()}}
    assert res["written"] == []
    res = files.nft_include()
    assert res["written"] == ["/etc/nftables.conf"]
    assert read(root, "etc/nftables.conf") == (
        DEBIAN_NFTABLES_CONF + "# end\n" + INCLUDE.replace(".nft", "-x.nft") + INCLUDE
    )
    assert files.nft_include()["changes"] == {}
    # no config, nothing created; only the nftables configs may be edited
    os.unlink(conf)
    assert files.nft_include() == {"changes": {}, "written": [], "configs": []}
    assert not os.path.exists(conf)
    with pytest.raises(SaltInvocationError, match="file must be"):
        files.nft_include(path="/etc/profile")
    with pytest.raises(SaltInvocationError, match="file must be"):
        files.nft_include(include="/etc/passwd")


def test_notrack_persist_says_what_boot_does_not_load(tmp_path, make_loaders, monkeypatch):
    """No nftables config, or the iptables backend: the comment says nothing loads the file."""
    import sys

    root = host_root(tmp_path / "r")
    bindir, _ = fake_bin(tmp_path, root)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    states = make_loaders(root).states
    flows = [{"proto": "udp", "port": 53}]
    ret = states.conntrack.notrack(name="dns", flows=flows, backend="nft", persist=True)
    assert ret.result is True, ret.comment
    assert f"At boot nothing loads {NOTRACK_NFT}" in ret.comment
    assert not os.path.exists(os.path.join(root, "etc/nftables.conf"))

    ipt = tmp_path / "ipt"
    ipt.mkdir()
    for cmd in ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        (ipt / cmd).write_text(FAKE_IPT.format(python=sys.executable, bindir=str(ipt)))
        (ipt / cmd).chmod(0o755)
    monkeypatch.setenv("PATH", f"{ipt}:{os.environ['PATH']}")
    ret = states.conntrack.notrack(name="dns", flows=flows, backend="iptables", persist=True)
    assert ret.result is True, ret.comment
    rules = "/etc/iptables/conntrack-notrack.rules"
    assert f"At boot nothing loads {rules}" in ret.comment
    assert f"iptables-restore --noflush < {rules}" in ret.comment
    assert "/etc/nftables.conf" not in ret.changes


@pytest.mark.parametrize("test", [True, False])
def test_tuned_reports_later_sysctl_files_that_win_at_boot(tmp_path, make_loaders, test):
    """systemd-sysctl applies files in name order, the last wins: 99-sysctl.conf (-> sysctl.conf)
    setting the alias, or a later file's `-key` line, undoes 90-conntrack.conf at boot."""
    root = host_root(tmp_path / "r", maximum=65536, mem_kb=16 * 1024 * 1024)
    with open(os.path.join(root, "etc/sysctl.conf"), "a", encoding="utf-8") as fh:
        fh.write("net.nf_conntrack_max = 1000\n")
    os.symlink("../sysctl.conf", os.path.join(root, "etc/sysctl.d/99-sysctl.conf"))
    with open(os.path.join(root, "etc/sysctl.d/95-tuning.conf"), "w", encoding="utf-8") as fh:
        fh.write("-net.netfilter.nf_conntrack_max = 2000\n")
    with open(os.path.join(root, "etc/sysctl.d/10-early.conf"), "w", encoding="utf-8") as fh:
        fh.write("net.netfilter.nf_conntrack_max = 7\n")
    states = make_loaders(root).states
    ret = states.conntrack.tuned(name="size", max=131072, survive_reload=False, test=test)
    assert ret.result is False, ret.comment
    assert "/etc/sysctl.d/95-tuning.conf sets net.netfilter.nf_conntrack_max = 2000" in ret.comment
    assert "/etc/sysctl.d/99-sysctl.conf sets net.nf_conntrack_max = 1000" in ret.comment
    assert "10-early" not in ret.comment
    assert "/etc/sysctl.d/90-conntrack.conf" in ret.changes  # persisted (or would be) all the same
    # the other files are not ours: left as they were
    assert read(root, "etc/sysctl.d/95-tuning.conf") == "-net.netfilter.nf_conntrack_max = 2000\n"
    if not test:
        assert knob(root, "max") == 131072
        assert "net.netfilter.nf_conntrack_max = 131072\n" in read(root, "etc/sysctl.d/90-conntrack.conf")
        # once the later files agree, the state passes
        os.unlink(os.path.join(root, "etc/sysctl.d/95-tuning.conf"))
        with open(os.path.join(root, "etc/sysctl.conf"), "w", encoding="utf-8") as fh:
            fh.write("vm.swappiness = 10\n")
        again = states.conntrack.tuned(name="size", max=131072, survive_reload=False)
        assert again.result is True and again.changes == {}, again.comment


# ---------------------------------------------------------------------------
# Plan, then apply: every input and every path is checked before the first
# change, in test mode too. Each case below changed something (or read through
# a link out of the root, or reported success in test mode) before the fix.


def _link_out(root, tmp_path, rel, text="# not ours\n"):
    """``rel`` under ``root`` as a symlink to a file outside it; returns the outside file."""
    outside = tmp_path / f"outside-{os.path.basename(rel)}"
    outside.write_text(text)
    link = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(str(outside), link)
    return outside


@pytest.mark.parametrize("test", [True, False])
def test_tuned_persist_link_out_of_root_changes_nothing(tmp_path, make_loaders, test):
    root = host_root(tmp_path / "root", maximum=65536, mem_kb=16 * 1024 * 1024)
    outside = _link_out(root, tmp_path, "etc/sysctl.d/90-conntrack.conf")
    before = tree_snapshot(root)
    ret = make_loaders(root).states.conntrack.tuned(name="size", max=131072, timeouts={"udp": 45}, test=test)
    assert ret.result is False and "outside" in ret.comment, ret.comment
    assert ret.changes == {}
    assert knob(root, "max") == 65536 and knob(root, "udp_timeout") != 45
    assert outside.read_text() == "# not ours\n"
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("rel", ["etc/nftables.d/conntrack-notrack.nft", "etc/nftables.conf"])
@pytest.mark.parametrize("test", [True, False])
def test_notrack_persist_link_out_of_root_loads_nothing(nft_host, tmp_path, rel, test):
    """The notrack file, or the nftables config that would include it, leads out of the root:
    refused before the live rules change."""
    root, states = nft_host
    outside = _link_out(root, tmp_path, rel, DEBIAN_NFTABLES_CONF)
    ret = states.conntrack.notrack(
        name="dns", flows=[{"proto": "udp", "port": 53}], backend="nft", persist=True, test=test
    )
    assert ret.result is False and "outside" in ret.comment, ret.comment
    assert not os.path.exists(os.path.join(root, ".nft-state")), "the live rules were loaded"
    assert outside.read_text() == DEBIAN_NFTABLES_CONF


def test_stateless_test_mode_never_reads_through_a_link_out_of_root(tmp_path, make_loaders):
    root = host_root(tmp_path / "r")
    secret = SAVED_RULES.replace("--dport 22", "--dport 2222")
    outside = _link_out(root, tmp_path, "etc/sysconfig/iptables", secret)
    ret = make_loaders(root).states.conntrack.stateless(name="/etc/sysconfig/iptables", force=True, test=True)
    assert ret.result is False and "outside" in ret.comment, ret.comment
    assert ret.changes == {} and "2222" not in ret.comment
    assert outside.read_text() == secret


@pytest.mark.parametrize(
    "settings",
    [
        {"IPTABLES_MODULES": " ".join(["nf_nat_ftp"] * 100000)},  # 1 MB of module names
        {"IPTABLES_MODULES": ["nf_nat_ftp"] * 100000},
        {"IPTABLES_SYSCTL_LOAD_LIST": "." + "a" * 2000},
        {"IPTABLES_MODULES": "nf_nat\x00"},
    ],
)
def test_iptables_config_values_are_bounded(host, settings):
    root, loaders = host
    before = tree_snapshot(root)
    for test in (True, False):
        ret = loaders.states.conntrack.iptables_config(
            name="/etc/sysconfig/iptables-config", settings=settings, test=test
        )
        assert ret.result is False and ret.changes == {}, ret.comment[:200]
        assert len(ret.comment) < 1000
    assert tree_snapshot(root) == before


WRITERS = {
    "persist_sysctl": (
        "conntrack_files",
        ({"net.netfilter.nf_conntrack_max": 4096},),
        "/etc/sysctl.d/90-conntrack.conf",
    ),
    "module_options": ("conntrack_files", ("nf_conntrack", {"hashsize": 4096}), "/etc/modprobe.d/conntrack.conf"),
    "blacklist": ("conntrack_files", ("nf_conntrack",), "/etc/modprobe.d/conntrack-blacklist.conf"),
    "udev_rule": ("conntrack_files", (), "/etc/udev/rules.d/90-conntrack-sysctl.rules"),
    "iptables_config": ("conntrack_files", ({"IPTABLES_MODULES_UNLOAD": "no"},), "/etc/sysconfig/iptables-config"),
    "stateless": ("conntrack_fw", (), "/etc/sysconfig/iptables"),
    "notrack_persist": ("conntrack_fw", ([{"proto": "udp", "port": 53}],), "/etc/nftables.d/conntrack-notrack.nft"),
    "nft_include": ("conntrack_fw", (), "/etc/nftables.conf"),
}


@pytest.mark.parametrize("call", sorted(WRITERS))
@pytest.mark.parametrize("test", [True, False])
def test_every_writer_refuses_a_link_out_of_root_in_its_plan(tmp_path, make_loaders, call, test):
    module, args, path = WRITERS[call]
    root = host_root(tmp_path / "r")
    outside = _link_out(root, tmp_path, path.lstrip("/"), SAVED_RULES)
    func = getattr(getattr(make_loaders(root).modules, module), call)
    with pytest.raises(CommandExecutionError, match="outside"):
        func(*args, path=path, test=test)
    assert outside.read_text() == SAVED_RULES
    assert os.path.islink(os.path.join(root, path.lstrip("/")))


BOOLS = {
    "persist_sysctl": ("conntrack_files", ({"net.netfilter.nf_conntrack_max": 4096},), ("lower", "test")),
    "module_options": ("conntrack_files", ("nf_conntrack", {"hashsize": 4096}), ("lower", "test")),
    "blacklist": ("conntrack_files", ("nf_conntrack",), ("hard", "present", "test")),
    "udev_rule": ("conntrack_files", (), ("present", "test")),
    "iptables_config": ("conntrack_files", ({"IPTABLES_MODULES_UNLOAD": "no"},), ("test",)),
    "stateless": ("conntrack_fw", (), ("force", "test")),
    "notrack_persist": ("conntrack_fw", ([{"proto": "udp", "port": 53}],), ("test",)),
    "nft_include": ("conntrack_fw", (), ("test",)),
    "unload": ("conntrack_fw", (), ("force", "test")),
    "tune": ("conntrack_files", (), ("survive_reload", "force", "test")),
}


@pytest.mark.parametrize("call, flag", [(c, f) for c in sorted(BOOLS) for f in BOOLS[c][2]])
@pytest.mark.parametrize("value", ["ture", "false", 1, None])
def test_every_switch_takes_only_a_real_bool(tmp_path, make_loaders, call, flag, value):
    """'false' is truthy and 'ture' is a typo: neither may be guessed, and nothing is written."""
    module, args, _ = BOOLS[call]
    root = host_root(tmp_path / "r", udev=True, rhel=True)
    saved(root)
    with open(os.path.join(root, "etc/nftables.conf"), "w", encoding="utf-8") as fh:
        fh.write(DEBIAN_NFTABLES_CONF)
    before = tree_snapshot(root)
    func = getattr(getattr(make_loaders(root).modules, module), call)
    with pytest.raises(SaltInvocationError, match=f"{flag} must be true or false"):
        func(*args, **{flag: value})
    assert tree_snapshot(root) == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"names": [f"m{i}" for i in range(1000)]}, "at most 64"),
        ({"names": "nf_conntrack", "path": "/etc/modprobe.d/" + "x" * 300 + ".conf"}, "file must be"),
    ],
)
def test_blacklist_bounds(host, kwargs, message):
    root, loaders = host
    before = tree_snapshot(root)
    ret = loaders.states.conntrack.blacklisted(name="bl", **kwargs)
    assert ret.result is False and message in ret.comment
    assert tree_snapshot(root) == before


@pytest.fixture
def nft_host(tmp_path, make_loaders, monkeypatch):
    """A fixture host with the fake nft first on PATH: ``(root, states)``."""
    root = host_root(tmp_path / "r")
    monkeypatch.setenv("PATH", f"{fake_bin(tmp_path, root)[0]}:{os.environ['PATH']}")
    return root, make_loaders(root).states


def test_notrack_bad_persist_refused_before_live_rules(nft_host):
    root, states = nft_host
    flows = [{"proto": "udp", "port": 53}]
    for persist, message in (("/etc/cron.d/x", "file must be"), (["x"], "persist must be"),
                             ("/etc/nftables.d/a\x00.nft", "NUL")):  # fmt: skip
        ret = states.conntrack.notrack(name="dns", flows=flows, backend="nft", persist=persist)
        assert ret.result is False and message in ret.comment, ret.comment
        assert not os.path.exists(os.path.join(root, ".nft-state"))
    ret = states.conntrack.notrack(name="dns", flows=[{"proto": "udp", "ports": list(range(1, 1000))}], backend="nft")
    assert ret.result is False and "at most 256 ports" in ret.comment
