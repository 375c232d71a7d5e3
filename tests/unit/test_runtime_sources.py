"""One named source per number: proc files first, ctnetlink where they are missing, null with a reason."""

import os

import pytest

from saltext_conntrack.runtime import snapshot, sources
from tests.support.fixtures import build_root


def host(root, netlink=None):
    return snapshot.Host(str(root), "6.17.0-1-amd64", 64, netlink)


def test_netlink_is_asked_only_for_the_live_root_unless_told():
    assert sources.netlink_allowed(host("/")) is True
    assert sources.netlink_allowed(host("/tmp")) is False
    assert sources.netlink_allowed(host("/tmp", True)) is True
    assert sources.netlink_allowed(host("/", False)) is False


def test_proc_files_answer_where_they_exist(tmp_path):
    root = build_root(tmp_path, count=100, maximum=400, drop=2)
    st = snapshot.take(host(root), None, 300, 0.0)
    assert st["source"] == {"count": "procfs", "max": "procfs", "stats": "procfs"} and st["unknown"] == {}


def test_no_stat_file_and_no_netlink_is_null_with_the_reasons(tmp_path):
    root = build_root(tmp_path, count=100, maximum=400, drop=2)
    os.unlink(tmp_path / "proc/net/stat/nf_conntrack")
    st = snapshot.take(host(root), None, 300, 0.0)
    assert st["stats"] is None and st["source"]["stats"] is None
    assert "nf_conntrack" in st["unknown"]["stats"] and "netlink not asked" in st["unknown"]["stats"]


def test_no_table_file_and_no_netlink_names_both(tmp_path):
    root = build_root(tmp_path)
    os.unlink(tmp_path / "proc/net/nf_conntrack")
    with sources.Reader(host(root)) as reader, pytest.raises(OSError, match="netlink not asked"):
        reader.table_batches("nf_conntrack")


@pytest.mark.skipif(os.geteuid() != 0, reason="ctnetlink needs CAP_NET_ADMIN")
def test_netlink_answers_for_a_root_whose_proc_net_lacks_the_files(tmp_path):
    root = build_root(tmp_path, count=100, maximum=400, drop=2)
    os.unlink(tmp_path / "proc/net/stat/nf_conntrack")
    os.unlink(tmp_path / "proc/net/nf_conntrack")
    st = snapshot.take(host(root, True), None, 300, 0.0)
    assert st["source"] == {"count": "procfs", "max": "procfs", "stats": "netlink"}
    assert isinstance(st["stats"]["drop"], int) and isinstance(st["stats"]["entries"], int)
    with sources.Reader(host(root, True)) as reader:
        assert reader.table_batches("nf_conntrack") == ("netlink", None)
