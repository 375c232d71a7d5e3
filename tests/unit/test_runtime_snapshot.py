"""The status snapshot on fixture trees: counts, knobs, counters and their rise."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.runtime import snapshot
from tests.support.fixtures import build_root


def host(root, release="6.17.0-1-amd64"):
    return snapshot.Host(str(root), release, 64)


def test_take_reads_counts_knobs_and_counters(tmp_path):
    root = build_root(tmp_path, count=100, maximum=400, buckets=50, drop=2)
    st = snapshot.take(host(root), None, 300, 1000.0)
    assert (st["flavour"], st["count"], st["max"], st["usage"]) == ("nf_conntrack", 100, 400, 25.0)
    assert st["buckets"] == st["hashsize"] == 50 and st["initial_netns"] is True
    assert st["stats"]["drop"] == 2 and st["recent"] is None  # no cachedir: no history


def test_take_compares_with_the_history_in_the_cachedir(tmp_path):
    root = build_root(tmp_path / "root", drop=2)
    cachedir = str(tmp_path / "cache")
    assert snapshot.take(host(root), cachedir, 0, 1000.0)["recent"] is None
    assert snapshot.take(host(root), cachedir, 0, 1010.0)["recent"]["drop"] == 0


def test_buckets_and_hashsize_stand_for_each_other(tmp_path):
    root = build_root(tmp_path, buckets=64)
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_buckets").unlink()
    st = snapshot.take(host(root), None, 300, 0.0)
    assert st["buckets"] == st["hashsize"] == 64


def test_window_is_checked_before_the_kernel_is_read(tmp_path):
    with pytest.raises(SaltInvocationError, match="window"):
        snapshot.take(host(tmp_path), None, -1, 0.0)


def test_not_loaded_says_why(tmp_path):
    modules = tmp_path / "lib/modules/6.17.0-1-amd64"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text("kernel/net/netfilter/nf_conntrack.ko:\n")
    with pytest.raises(CommandExecutionError, match="not loaded on this host"):
        snapshot.loaded(host(tmp_path))
    assert snapshot.known_flavour(host(tmp_path)) == "nf_conntrack"
    with pytest.raises(CommandExecutionError, match="no connection tracking at all"):
        snapshot.loaded(host(tmp_path, release="other"))


def test_read_int_names_the_file(tmp_path):
    (tmp_path / "x").write_text("nope\n")
    with pytest.raises(CommandExecutionError, match=f"cannot read a number from {tmp_path}/x"):
        snapshot.read_int(str(tmp_path), "x")
