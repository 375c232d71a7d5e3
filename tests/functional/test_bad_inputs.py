"""Bad inputs found by the outside battery after the refactor, one per class: each is a
clear error, and nothing changes on the fixture host (file bytes and the kernel knob)."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers
from saltext_conntrack.persistence import sysctl_boot
from saltext_conntrack.runtime import sizing
from tests.support.fixtures import build_root
from tests.support.loaderfile import load

ERRORS = (SaltInvocationError, CommandExecutionError)
MAX = "proc/sys/net/netfilter/nf_conntrack_max"


def snapshot(root):
    found = {}
    for top, _, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    found[path] = fh.read()
    return found


@pytest.fixture
def host(tmp_path, make_loaders):
    root = build_root(tmp_path / "host", count=10, maximum=1000, buckets=1000)
    os.makedirs(os.path.join(root, "etc", "sysctl.d"))
    loaders = make_loaders(root, cachedir=str(tmp_path / "cache"))
    return root, loaders.modules


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.conntrack.set_max(999999999, force="ture"),  # a truthy string skipped every guard
        lambda m: m.conntrack.set_max(2000, test=0),
        lambda m: m.conntrack.set_buckets(2000, force=1),
        lambda m: m.conntrack.set_timeout(["tcp_established"], 60),  # raised TypeError
        lambda m: m.conntrack.set_timeout("udp", 60, test="ture"),
        lambda m: m.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 5000}, path=""),
        lambda m: m.conntrack_files.persist_sysctl({"net.netfilter.nf_conntrack_max": 5000}, path=False),
        lambda m: m.conntrack_files.module_options(["nf_conntrack", "xt_state"], {"hashsize": 1}),
        lambda m: m.conntrack_remediate.remediate(persist=False, sysctl_file="/etc/passwd", fire_event=False),
        lambda m: m.conntrack_remediate.remediate(persist=False, modprobe_file={"x": 1}, fire_event=False),
        lambda m: m.conntrack_fw.notrack_persist(
            [{"proto": "udp", "port": 53}], backend="iptables", path="/etc/nftables.d/x.nft"
        ),
        lambda m: m.conntrack_fw.notrack_persist(
            [{"proto": "udp", "port": 53}], backend="iptables", path="/etc/iptables/iptables.rules"
        ),  # Arch's own saved rules
        lambda m: m.conntrack_fw.notrack([{"proto": "tcp", "ports": list(range(1, 65536))}], backend="nft"),
        lambda m: m.conntrack_log.read_log("/proc/sys/net/netfilter/nf_conntrack_max", max_bytes=2**31),
        lambda m: m.conntrack.diagnose(timeout=-1),
        lambda m: m.conntrack.summary(timeout="soon"),
        lambda m: m.conntrack.check(full_in_warning=60, full_in_critical=120),
    ],
)
def test_refused_and_nothing_changed(host, call):
    root, mods = host
    before = snapshot(root)
    with pytest.raises(ERRORS):
        call(mods)
    assert snapshot(root) == before


def test_read_log_refuses_what_has_no_end(host, tmp_path):
    root, mods = host
    os.mkfifo(os.path.join(root, "fifo"))
    with pytest.raises(SaltInvocationError, match="not a regular file"):
        mods.conntrack_log.read_log("/fifo")


def test_number_rule_takes_no_unicode_space_and_ram_no_unicode_digits():
    for value in ("\u30005\u2003", "\x1c7\x85", "\u0665"):
        with pytest.raises(SaltInvocationError):
            numbers.integer(value, "x", 0, 100)
    with pytest.raises(SaltInvocationError):
        numbers.number("\x1c7.5\x85", "x", 0, 100)
    assert numbers.integer(" 42 ", "x", 0, 100) == 42
    with pytest.raises(SaltInvocationError):
        sizing.parse_ram("\u300064G")


def test_boot_values_ignore_a_link_out_of_the_root(tmp_path):
    outside = tmp_path / "outside.conf"
    outside.write_text("net.netfilter.nf_conntrack_max = 7\n")
    root = tmp_path / "root"
    (root / "etc" / "sysctl.d").mkdir(parents=True)
    (root / "etc" / "sysctl.d" / "90-x.conf").symlink_to(outside)
    (root / "etc" / "sysctl.d" / "80-y.conf").write_text("net.netfilter.nf_conntrack_max = 5\n")
    assert sysctl_boot.boot_values(str(root)) == {
        "net.netfilter.nf_conntrack_max": {"value": "5", "file": "/etc/sysctl.d/80-y.conf"}
    }


def test_runner_refuses_unhashable_verdict_and_bad_timeout():
    runner = load("_runners/conntrack.py", "unit_runner_bad_inputs")
    with pytest.raises(SaltInvocationError):
        runner._arguments("*", "glob", 75, 90, ["critical"], None)
    with pytest.raises(SaltInvocationError):
        runner._arguments([1, 2], "list", 75, 90, None, None)
