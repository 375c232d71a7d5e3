"""saltext_conntrack.persistence.sysctl_boot: the sysctl.conf grammar and what
boot will set, in systemd-sysctl's order."""

import os

import pytest

from saltext_conntrack.persistence import sysctl_boot
from tests.support.fixtures import _write


@pytest.mark.parametrize(
    ("name", "key"),
    [("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_max"),
     ("-net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_max"),
     ("net/netfilter/nf_conntrack_tcp_timeout_established", "net.netfilter.nf_conntrack_tcp_timeout_established")],
)  # fmt: skip
def test_key_of(name, key):
    assert sysctl_boot.key_of(name) == key


def test_canonical():
    assert sysctl_boot.canonical("net.nf_conntrack_max") == "net.netfilter.nf_conntrack_max"
    assert sysctl_boot.canonical("net.ipv4.ip_conntrack_max") == "net.ipv4.netfilter.ip_conntrack_max"
    assert sysctl_boot.canonical("net.netfilter.nf_conntrack_buckets") == "net.netfilter.nf_conntrack_buckets"


def test_assignments():
    text = (
        "# net.netfilter.nf_conntrack_max = 1\n"
        "; vm.swappiness = 1\n"
        "\n"
        "net.netfilter.nf_conntrack_max=262144\n"
        "  -net/netfilter/nf_conntrack_acct =  1  \n"
        "not a setting\n"
        "kernel.domainname = example.com\n"
    )
    assert sysctl_boot.assignments(text) == [
        (3, "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_max", "262144"),
        (4, "-net/netfilter/nf_conntrack_acct", "net.netfilter.nf_conntrack_acct", "1"),
        (6, "kernel.domainname", "kernel.domainname", "example.com"),
    ]


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "root"
    top.mkdir()
    return os.path.realpath(top)


def test_boot_files_follow_systemd_sysctl_order(root):
    for rel in (
        "etc/sysctl.d/10-a.conf",
        "run/sysctl.d/20-b.conf",
        "usr/local/lib/sysctl.d/30-c.conf",
        "usr/lib/sysctl.d/10-a.conf",
        "usr/lib/sysctl.d/05-d.conf",
        "lib/sysctl.d/99-e.conf",
        "lib/sysctl.d/20-b.conf",
        "etc/sysctl.d/README",
        "etc/sysctl.conf",
    ):
        _write(root, rel, "")
    os.makedirs(os.path.join(root, "etc/sysctl.d/50-dir.conf"))
    assert sysctl_boot.boot_files(root) == [
        "/usr/lib/sysctl.d/05-d.conf",
        "/etc/sysctl.d/10-a.conf",
        "/run/sysctl.d/20-b.conf",
        "/usr/local/lib/sysctl.d/30-c.conf",
        "/lib/sysctl.d/99-e.conf",
        "/etc/sysctl.conf",
    ]


def test_boot_files_apply_sysctl_conf_once_when_sysctl_d_links_it(root):
    _write(root, "etc/sysctl.conf", "")
    _write(root, "usr/lib/sysctl.d/50-default.conf", "")
    os.makedirs(os.path.join(root, "etc/sysctl.d"))
    os.symlink("../sysctl.conf", os.path.join(root, "etc/sysctl.d/99-sysctl.conf"))
    assert sysctl_boot.boot_files(root) == ["/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/99-sysctl.conf"]


def test_boot_files_of_an_empty_root(root):
    assert sysctl_boot.boot_files(root) == []


def test_boot_values_last_file_wins_under_the_long_name(root, tmp_path):
    _write(root, "usr/lib/sysctl.d/50-default.conf", "net.netfilter.nf_conntrack_max = 65536\nvm.swappiness = 60\n")
    _write(root, "etc/sysctl.d/90-ct.conf", "net.nf_conntrack_max=262144\nnet.netfilter.nf_conntrack_acct = 1\n")
    _write(root, "etc/sysctl.conf", "vm.swappiness = 10\n")
    outside = tmp_path / "outside.conf"
    outside.write_text("net.netfilter.nf_conntrack_max = 1\n")
    os.symlink(outside, os.path.join(root, "etc/sysctl.d/95-out.conf"))
    assert "/etc/sysctl.d/95-out.conf" in sysctl_boot.boot_files(root)
    assert sysctl_boot.boot_values(root, "net.netfilter.") == {
        "net.netfilter.nf_conntrack_max": {"value": "262144", "file": "/etc/sysctl.d/90-ct.conf"},
        "net.netfilter.nf_conntrack_acct": {"value": "1", "file": "/etc/sysctl.d/90-ct.conf"},
    }
    assert sysctl_boot.boot_values(root)["vm.swappiness"] == {"value": "10", "file": "/etc/sysctl.conf"}
