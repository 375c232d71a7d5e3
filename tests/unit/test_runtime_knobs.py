"""Runtime knob plans: every check before the write, test plans write nothing."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.runtime import knobs, snapshot
from tests.support.fixtures import build_root

MAX = "proc/sys/net/netfilter/nf_conntrack_max"


def host(root):
    return snapshot.Host(str(root), "6.17.0-1-amd64", 64)


def test_plan_then_apply_max(tmp_path):
    root = build_root(tmp_path, count=10, maximum=1000, mem_kb=1024 * 1024)
    plan = knobs.plan_max(host(root), "2000", False, False)
    assert plan == {"file": MAX, "old": 1000, "new": 2000, "test": False, "what": "max"}
    assert knobs.apply(host(root), {**plan, "test": True}) == {
        "old": 1000, "new": 2000, "test": True, "comment": "test=True: max would be 2000 (now 1000); nothing written"
    }  # fmt: skip
    assert (tmp_path / MAX).read_text() == "1000\n"
    assert knobs.apply(host(root), plan) == {"old": 1000, "new": 2000}
    assert (tmp_path / MAX).read_text() == "2000\n"


@pytest.mark.parametrize(
    "value,error,words",
    [
        # Policy refusals are command errors (Salt prints the reason), bad syntax invocation errors (and the docs).
        (10**7, CommandExecutionError, "above this host's ceiling"),
        (5, CommandExecutionError, "below the 10 entries"),
        (0, SaltInvocationError, "max must be"),
    ],
)
def test_plan_max_refuses(tmp_path, value, error, words):
    root = build_root(tmp_path, count=10, maximum=1000, mem_kb=1024 * 1024)
    with pytest.raises(error, match=words):
        knobs.plan_max(host(root), value, False, False)
    assert knobs.plan_max(host(root), 5, True, False)["new"] == 5


def test_global_knobs_are_read_only_in_a_namespace(tmp_path):
    root = build_root(tmp_path, netns=True)
    with pytest.raises(CommandExecutionError, match="read-only in this network namespace"):
        knobs.plan_max(host(root), 1000, False, False)
    with pytest.raises(CommandExecutionError, match="read-only in this network namespace"):
        knobs.plan_buckets(host(root), 1000, False, False)


def test_plan_buckets_needs_a_writable_hashsize(tmp_path):
    root = build_root(tmp_path, buckets=64)
    assert knobs.plan_buckets(host(root), 128, False, True)["old"] == 64
    (tmp_path / "sys/module/nf_conntrack/parameters/hashsize").chmod(0o444)
    with pytest.raises(CommandExecutionError, match="hashsize can only be set when the module loads"):
        knobs.plan_buckets(host(root), 128, False, True)


def test_timeouts_by_short_name(tmp_path):
    root = build_root(tmp_path)
    found = knobs.timeouts(host(root))
    assert found["tcp_established"] == 432000 and found["udp"] == 30
    assert knobs.sysctl_names(host(root))["udp"] == "net.netfilter.nf_conntrack_udp_timeout"
    assert knobs.plan_timeout(host(root), "udp", 10, False)["new"] == 10
    with pytest.raises(SaltInvocationError, match="unknown conntrack timeout 'nope'"):
        knobs.plan_timeout(host(root), "nope", 10, False)
